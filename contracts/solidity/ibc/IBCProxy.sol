// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IBCProxy: the ERC-1967 proxy in front of IBCHandler. It holds the IBC store (the
/// handler's ERC-7201 namespace, so the commitment slots relayers prove are this contract's)
/// and delegates every call to the implementation in the ERC-1967 implementation slot. The
/// implementation (IBCHandler) decides upgrades (`upgradeTo`, owner only, UUPS style): an
/// upgrade replaces the code and keeps the store.
contract IBCProxy {
    /// @notice bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1).
    bytes32 internal constant IMPLEMENTATION_SLOT = 0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;

    /// @notice ERC-1967: the implementation changed.
    event Upgraded(address indexed implementation);

    /// @notice The implementation has no code.
    error IBCProxyNotAContract(address implementation);

    /// @notice Points at `implementation` and runs `initData` (IBCHandler.initialize) on it by
    /// delegatecall, in the same transaction, so nobody can initialize in between.
    constructor(address implementation, bytes memory initData) {
        if (implementation.code.length == 0) revert IBCProxyNotAContract(implementation);
        assembly {
            sstore(IMPLEMENTATION_SLOT, implementation)
        }
        emit Upgraded(implementation);
        (bool ok, bytes memory ret) = implementation.delegatecall(initData);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    /// @notice Delegates to the implementation.
    fallback() external {
        assembly {
            let impl := sload(IMPLEMENTATION_SLOT)
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), impl, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }
}
