// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./IBCTypes.sol";
import {IBCStore} from "./IBCStore.sol";
import {IBCClient} from "./IBCClient.sol";
import {IBCConnection} from "./IBCConnection.sol";
import {IBCChannelHandshake} from "./IBCChannelHandshake.sol";
import {IBCChannelPacket} from "./IBCChannelPacket.sol";

/// @title IBCHandler: the IBC handler's entry contract and store. Every state-changing IBC
/// function is routed by selector to one of four module contracts (IBCClient, IBCConnection,
/// IBCChannelHandshake, IBCChannelPacket) and runs there by delegatecall on this contract's
/// storage (IBCStore's ERC-7201 struct, whose commitment mapping relayers prove with
/// `eth_getProof`); the modules' ABIs are called at this contract's address. The split keeps
/// every contract under the 24 KiB code size limit. Queries are answered here directly.
///
/// Deployment: behind IBCProxy (ERC-1967), which holds the store; the proxy's constructor calls
/// `initialize(owner)`. Upgrade: deploy new modules and a new IBCHandler pointing at them, then
/// the owner calls `upgradeTo(newHandler)` through the proxy: code changes, the store stays.
/// New store members may only be appended (IBCStore). The handler can also be deployed alone
/// (its constructor sets the owner), without upgrades. `multicall` runs several handler calls
/// in one transaction (a relayer's update and the packets it proves), all or nothing.
contract IBCHandler is IBCStore {
    /// @notice bytes32(uint256(keccak256("eip1967.proxy.implementation")) - 1).
    bytes32 internal constant IMPLEMENTATION_SLOT = 0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc;

    /// @notice ERC-1967: the implementation changed.
    event Upgraded(address indexed implementation);
    /// @notice The handler's owner changed (initialize or transferOwnership).
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    /// @notice initialize on a store that already has an owner.
    error IBCAlreadyInitialized();
    /// @notice upgradeTo a target that is not an IBCHandler (no code, or no module addresses).
    error IBCNotAHandler(address implementation);

    /// @notice The module contracts (immutable: an upgrade deploys a new handler).
    address public immutable clientModule;
    address public immutable connectionModule;
    address public immutable channelHandshakeModule;
    address public immutable channelPacketModule;

    constructor(address client, address connection, address channelHandshake, address channelPacket, address owner_) {
        clientModule = client;
        connectionModule = connection;
        channelHandshakeModule = channelHandshake;
        channelPacketModule = channelPacket;
        _store().owner = owner_;
    }

    // ---- proxy administration (through IBCProxy) -----------------------------------------

    /// @notice Sets the owner of a fresh store (the proxy's constructor calls it).
    function initialize(address owner_) external onlyDelegated {
        Store storage s = _store();
        if (s.owner != address(0) || owner_ == address(0)) revert IBCAlreadyInitialized();
        s.owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
    }

    /// @notice Points the proxy at `newImplementation` (a new IBCHandler); owner only. The store
    /// is kept.
    function upgradeTo(address newImplementation) external onlyDelegated onlyOwner {
        if (newImplementation.code.length == 0) revert IBCNotAHandler(newImplementation);
        try IBCHandler(newImplementation).channelPacketModule() returns (address m) {
            if (m.code.length == 0) revert IBCNotAHandler(newImplementation);
        } catch {
            revert IBCNotAHandler(newImplementation);
        }
        assembly {
            sstore(IMPLEMENTATION_SLOT, newImplementation)
        }
        emit Upgraded(newImplementation);
    }

    /// @notice Hands the ownership to `newOwner`; owner only.
    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert IBCNotOwner(newOwner);
        emit OwnershipTransferred(_store().owner, newOwner);
        _store().owner = newOwner;
    }

    /// @notice The implementation the proxy delegates to (0 when not behind a proxy).
    function implementation() external view returns (address impl) {
        assembly {
            impl := sload(IMPLEMENTATION_SLOT)
        }
    }

    /// @notice Routes a module function to its module by delegatecall; reverts on an unknown selector.
    fallback() external {
        bytes4 sel = msg.sig;
        address module;
        if (
            sel == IBCChannelPacket.recvPacket.selector || sel == IBCChannelPacket.sendPacket.selector
                || sel == IBCChannelPacket.acknowledgePacket.selector || sel == IBCChannelPacket.timeoutPacket.selector
                || sel == IBCChannelPacket.timeoutOnClose.selector
                || sel == IBCChannelPacket.writeAcknowledgement.selector
        ) {
            module = channelPacketModule;
        } else if (
            sel == IBCChannelHandshake.channelOpenInit.selector || sel == IBCChannelHandshake.channelOpenTry.selector
                || sel == IBCChannelHandshake.channelOpenAck.selector
                || sel == IBCChannelHandshake.channelOpenConfirm.selector
                || sel == IBCChannelHandshake.channelCloseInit.selector
                || sel == IBCChannelHandshake.channelCloseConfirm.selector
        ) {
            module = channelHandshakeModule;
        } else if (
            sel == IBCConnection.connectionOpenInit.selector || sel == IBCConnection.connectionOpenTry.selector
                || sel == IBCConnection.connectionOpenAck.selector || sel == IBCConnection.connectionOpenConfirm.selector
        ) {
            module = connectionModule;
        } else if (
            sel == IBCClient.createClient.selector || sel == IBCClient.updateClient.selector
                || sel == IBCClient.registerClient.selector || sel == IBCClient.bindPort.selector
        ) {
            module = clientModule;
        } else {
            revert IBCUnknownSelector(sel);
        }
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ---- batching ----------------------------------------------------------------------------

    /// @notice Runs each element of `data` (the calldata of one handler function: a module
    /// function such as updateClient or recvPacket, or one of this contract's) as a call on this
    /// handler, in order, in this transaction, and returns their return data. Each element runs
    /// by delegatecall to this contract's own address: behind IBCProxy that is the proxy, which
    /// delegates to the current implementation, and with the handler deployed alone it is the
    /// handler; either way on this store, with the caller's `msg.sender` (owner-only functions
    /// and the relayer address passed to apps see the real caller). Atomic: if an element
    /// reverts, the whole multicall reverts with IBCMulticallFailed(index, its revert data).
    /// A nested multicall is refused (IBCMulticallNested). Lets a relayer submit a client update
    /// and the packets it proves in one transaction.
    function multicall(bytes[] calldata data) external returns (bytes[] memory results) {
        results = new bytes[](data.length);
        for (uint256 i = 0; i < data.length; ++i) {
            bytes calldata call = data[i];
            if (call.length >= 4 && bytes4(call[:4]) == this.multicall.selector) revert IBCMulticallNested(i);
            (bool ok, bytes memory ret) = address(this).delegatecall(call);
            if (!ok) revert IBCMulticallFailed(i, ret);
            results[i] = ret;
        }
    }

    // ---- queries ---------------------------------------------------------------------------

    /// @notice The handler's owner (registers client types, binds ports).
    function owner() external view returns (address) {
        return _store().owner;
    }

    /// @notice The stored commitment (keccak256 of the commitment bytes) of ICS-24 `path`, 0 if none.
    function getCommitment(string calldata path) external view returns (bytes32) {
        return _store().commitments[keccak256(bytes(path))];
    }

    /// @notice The commitment prefix of this chain's store.
    function getCommitmentPrefix() external pure returns (bytes memory) {
        return COMMITMENT_PREFIX;
    }

    /// @notice The light-client contract registered for `clientType` (0 if none).
    function getClientByType(string calldata clientType) external view returns (address) {
        return _store().clientRegistry[clientType];
    }

    /// @notice The light-client contract and client type of `clientId` (0 and "" if none).
    function getClient(string calldata clientId) external view returns (address lightClient, string memory clientType) {
        Store storage s = _store();
        return (s.clientImpls[clientId], s.clientTypes[clientId]);
    }

    /// @notice The connection end `connectionId` (state UNINITIALIZED if none).
    function getConnection(string calldata connectionId) external view returns (ConnectionEnd memory) {
        return _store().connections[connectionId];
    }

    /// @notice The channel end `portId`/`channelId` (state UNINITIALIZED if none).
    function getChannel(string calldata portId, string calldata channelId) external view returns (ChannelEnd memory) {
        return _store().channels[portId][channelId];
    }

    /// @notice The app bound to `portId` (0 if none).
    function getPortApp(string calldata portId) external view returns (address) {
        return _store().portApps[portId];
    }

    /// @notice The next client, connection and channel sequence numbers.
    function getNextSequences() external view returns (uint64 client, uint64 connection, uint64 channel) {
        Store storage s = _store();
        return (s.nextClientSequence, s.nextConnectionSequence, s.nextChannelSequence);
    }
}
