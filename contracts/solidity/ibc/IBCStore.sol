// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./IBCTypes.sol";
import {ProtoEncoder} from "./ProtoEncoder.sol";

/// @title IBCStore: the handler's storage, shared by the entry contract and every module (the
/// modules run by delegatecall in the handler's storage), and the helpers that read it.
///
/// Layout (ERC-7201, namespace "ibc.commitment"): the struct `Store` lives at
/// keccak256(abi.encode(uint256(keccak256("ibc.commitment")) - 1)) & ~0xff
/// = 0x1ee222554989dda120e26ecacf756fe1235cd8d726706b57517715dde4f0c900; its first member, the
/// commitment mapping, is therefore at that base slot: commitment of ICS-24 path `p` is at
/// keccak256(keccak256(p) ‖ base) and holds keccak256(commitment bytes). This is the
/// yui-ibc-solidity layout the QBFT light client proves with `eth_getProof`. New members may
/// only be appended to `Store`.
abstract contract IBCStore {
    /// @custom:storage-location erc7201:ibc.commitment
    struct Store {
        /// keccak256(ICS-24 path) => keccak256(commitment bytes); zero = absent.
        mapping(bytes32 => bytes32) commitments;
        /// The account allowed to register client types and bind ports.
        address owner;
        uint64 nextClientSequence;
        uint64 nextConnectionSequence;
        uint64 nextChannelSequence;
        /// client type => light-client contract.
        mapping(string => address) clientRegistry;
        /// client id => light-client contract.
        mapping(string => address) clientImpls;
        /// client id => client type.
        mapping(string => string) clientTypes;
        /// connection id => connection end.
        mapping(string => ConnectionEnd) connections;
        /// port id => channel id => channel end.
        mapping(string => mapping(string => ChannelEnd)) channels;
        /// port id => the app contract bound to it.
        mapping(string => address) portApps;
    }

    /// @notice The base slot of `Store` (and of its commitment mapping).
    bytes32 internal constant STORE_SLOT = 0x1ee222554989dda120e26ecacf756fe1235cd8d726706b57517715dde4f0c900;

    /// @notice The commitment prefix of this chain's store (the counterparty's client proves
    /// paths under it).
    bytes internal constant COMMITMENT_PREFIX = "ibc";

    /// @notice Receipt value of a received packet on an unordered channel (as ibc-go: 0x01).
    bytes internal constant RECEIPT = hex"01";

    /// @notice This contract's own address: a module refuses to run outside a delegatecall.
    address private immutable SELF = address(this);

    /// @notice Only through the handler's delegatecall (a module called directly would act on
    /// its own, unused storage).
    modifier onlyDelegated() {
        if (address(this) == SELF) revert IBCNotDelegateCall();
        _;
    }

    /// @notice Only the handler's owner.
    modifier onlyOwner() {
        if (msg.sender != _store().owner) revert IBCNotOwner(msg.sender);
        _;
    }

    function _store() internal pure returns (Store storage s) {
        bytes32 slot = STORE_SLOT;
        assembly {
            s.slot := slot
        }
    }

    // ---- ICS-24 identifiers ----------------------------------------------------------------

    /// @notice Whether `id` is an ICS-24 identifier of `min`..`max` characters of
    /// [a-zA-Z0-9._+#[]<>-] (so a counterparty identifier cannot inject "/" into a path).
    function _validIdentifier(string memory id, uint256 min, uint256 max) internal pure returns (bool) {
        bytes memory b = bytes(id);
        if (b.length < min || b.length > max) return false;
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "."
                || c == "_" || c == "+" || c == "-" || c == "#" || c == "[" || c == "]" || c == "<" || c == ">";
            if (!ok) return false;
        }
        return true;
    }

    /// @notice Reverts unless `id` is an ICS-24 identifier of `min`..`max` characters.
    function _checkIdentifier(string memory id, uint256 min, uint256 max) internal pure {
        if (!_validIdentifier(id, min, max)) revert IBCInvalidIdentifier(id);
    }

    // ---- ICS-24 paths --------------------------------------------------------------------

    /// @notice The decimal representation of `v`.
    function _itoa(uint256 v) internal pure returns (bytes memory out) {
        if (v == 0) return "0";
        uint256 n;
        for (uint256 t = v; t != 0; t /= 10) {
            n++;
        }
        out = new bytes(n);
        for (; v != 0; v /= 10) {
            out[--n] = bytes1(uint8(48 + (v % 10)));
        }
    }

    function _clientStatePath(string memory clientId) internal pure returns (bytes memory) {
        return abi.encodePacked("clients/", clientId, "/clientState");
    }

    function _consensusStatePath(string memory clientId, Height memory h) internal pure returns (bytes memory) {
        return abi.encodePacked(
            "clients/", clientId, "/consensusStates/", _itoa(h.revisionNumber), "-", _itoa(h.revisionHeight)
        );
    }

    function _connectionPath(string memory connectionId) internal pure returns (bytes memory) {
        return abi.encodePacked("connections/", connectionId);
    }

    function _channelPath(string memory portId, string memory channelId) internal pure returns (bytes memory) {
        return abi.encodePacked("channelEnds/ports/", portId, "/channels/", channelId);
    }

    function _packetPath(string memory kind, string memory portId, string memory channelId, uint64 sequence)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodePacked(kind, "/ports/", portId, "/channels/", channelId, "/sequences/", _itoa(sequence));
    }

    function _nextSequenceRecvPath(string memory portId, string memory channelId) internal pure returns (bytes memory) {
        return abi.encodePacked("nextSequenceRecv/ports/", portId, "/channels/", channelId);
    }

    // ---- commitments ---------------------------------------------------------------------

    function _commit(bytes memory path, bytes memory value) internal {
        _store().commitments[keccak256(path)] = keccak256(value);
    }

    /// @notice sha256(timeout_timestamp ‖ revision_number ‖ revision_height ‖ sha256(data)), u64s big-endian.
    function _packetCommitment(Packet calldata p) internal pure returns (bytes32) {
        return sha256(
            abi.encodePacked(
                p.timeoutTimestamp, p.timeoutHeight.revisionNumber, p.timeoutHeight.revisionHeight, sha256(p.data)
            )
        );
    }

    // ---- clients and proofs --------------------------------------------------------------

    function _client(string memory clientId) internal view returns (ILightClient lc) {
        lc = ILightClient(_store().clientImpls[clientId]);
        if (address(lc) == address(0)) revert IBCClientNotFound(clientId);
    }

    function _verifyMembership(
        ConnectionEnd storage conn,
        Height calldata height,
        bytes calldata proof,
        bytes memory path,
        bytes memory value
    ) internal view {
        if (
            !ILightClient(conn.lightClient)
                .verifyMembership(conn.clientId, height, conn.delayPeriod, 0, proof, conn.counterpartyPrefix, path, value)
        ) revert IBCProofVerificationFailed(string(path));
    }

    function _verifyNonMembership(
        ConnectionEnd storage conn,
        Height calldata height,
        bytes calldata proof,
        bytes memory path
    ) internal view {
        if (
            !ILightClient(conn.lightClient)
                .verifyNonMembership(conn.clientId, height, conn.delayPeriod, 0, proof, conn.counterpartyPrefix, path)
        ) revert IBCProofVerificationFailed(string(path));
    }

    // ---- lookups -------------------------------------------------------------------------

    function _connection(string memory connectionId) internal view returns (ConnectionEnd storage c) {
        c = _store().connections[connectionId];
        if (c.state == ConnectionState.UNINITIALIZED) revert IBCConnectionNotFound(connectionId);
    }

    function _openConnection(string memory connectionId) internal view returns (ConnectionEnd storage c) {
        c = _connection(connectionId);
        if (c.state != ConnectionState.OPEN) {
            revert IBCConnectionStateUnexpected(connectionId, c.state, ConnectionState.OPEN);
        }
    }

    function _channel(string memory portId, string memory channelId, ChannelState expected)
        internal
        view
        returns (ChannelEnd storage ch)
    {
        ch = _store().channels[portId][channelId];
        ChannelState actual = ch.state;
        if (actual == ChannelState.UNINITIALIZED) revert IBCChannelNotFound(portId, channelId);
        if (actual != expected) revert IBCChannelStateUnexpected(portId, channelId, actual, expected);
    }

    function _app(string memory portId) internal view returns (IIBCModule app) {
        app = IIBCModule(_store().portApps[portId]);
        if (address(app) == address(0)) revert IBCPortNotBound(portId);
    }

    function _commitChannel(string memory portId, string memory channelId, ChannelEnd storage ch) internal {
        _commit(
            _channelPath(portId, channelId),
            ProtoEncoder.channel(
                ch.state, ch.ordering, ch.counterpartyPortId, ch.counterpartyChannelId, ch.connectionId, ch.version
            )
        );
    }
}
