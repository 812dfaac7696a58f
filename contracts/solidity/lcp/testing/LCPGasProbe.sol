// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LCPGasProbe: FOR MEASUREMENTS ONLY. Makes a sequence of calls to one contract in a
/// single transaction and returns the gas each call took, measured around the CALL itself
/// (the call data is in memory beforehand; no return data is copied). This is how a Forge test
/// measures: storage and accounts an earlier call touched are warm for the later ones, so
/// `kakehashi bench gas` uses it to compare the LCP client with lcp-solidity's published
/// figures. As the handler of an LCPClient it can also initialize and update it.
contract LCPGasProbe {
    /// @notice The gas of each call of a `run`, in order.
    event LCPGasProbeMeasured(uint256[] used);

    /// @notice Call `index` of the sequence reverted with `reason`.
    error LCPGasProbeCallFailed(uint256 index, bytes reason);

    /// @notice Calls `target` with each of `calls` in order; returns (and logs) the gas of each.
    function run(address target, bytes[] calldata calls) external returns (uint256[] memory used) {
        used = new uint256[](calls.length);
        for (uint256 i = 0; i < calls.length; i++) {
            bytes memory data = calls[i];
            uint256 before;
            bool ok;
            uint256 afterCall;
            assembly ("memory-safe") {
                before := gas()
                ok := call(gas(), target, 0, add(data, 0x20), mload(data), 0, 0)
                afterCall := gas()
            }
            if (!ok) {
                bytes memory reason = new bytes(0);
                assembly ("memory-safe") {
                    reason := mload(0x40)
                    mstore(reason, returndatasize())
                    returndatacopy(add(reason, 0x20), 0, returndatasize())
                    mstore(0x40, add(add(reason, 0x20), returndatasize()))
                }
                revert LCPGasProbeCallFailed(i, reason);
            }
            used[i] = before - afterCall;
        }
        emit LCPGasProbeMeasured(used);
    }
}
