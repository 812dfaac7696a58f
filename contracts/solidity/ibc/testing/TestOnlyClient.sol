// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "../IBCTypes.sol";
import {ProtoEncoder} from "../ProtoEncoder.sol";

/// @title TestOnlyClient: a light client FOR TESTS ONLY (client type "kh-test-only"). It
/// verifies nothing about a real chain: a test tells it each consensus state (height,
/// timestamp, root), and a membership proof is accepted iff it equals
/// keccak256(abi.encode(height, prefix, path, value)) (non-membership: keccak256(abi.encode(
/// height, prefix, path))) at a height it holds, so a wrong proof is still rejected. The gas
/// bench uses it so the figures are the handler's own cost. Never register it on a real network.
///
/// States are protobuf `Any`: "/kakehashi.testonly.v1.ClientState" {1: latest_height
/// (ibc.core.client.v1.Height)} and "/kakehashi.testonly.v1.ConsensusState" {1: timestamp (ns),
/// 2: root (32 bytes)}. An update message is abi.encode(Height height, uint64 timestamp, bytes32 root).
contract TestOnlyClient is ILightClient {
    /// @notice The client type this contract is registered under.
    string public constant CLIENT_TYPE = "kh-test-only";
    string private constant CLIENT_STATE_URL = "/kakehashi.testonly.v1.ClientState";
    string private constant CONSENSUS_STATE_URL = "/kakehashi.testonly.v1.ConsensusState";

    struct Consensus {
        uint64 timestamp;
        bytes32 root;
    }

    /// @notice The only caller of initializeClient/updateClient.
    address public immutable handler;
    mapping(string => Height) private latest;
    mapping(string => mapping(uint128 => Consensus)) private consensus;

    /// @notice Not called by the handler.
    error TestOnlyClientNotHandler(address caller);
    /// @notice Malformed client state, consensus state or update.
    error TestOnlyClientMalformed();
    /// @notice The client exists already / does not exist.
    error TestOnlyClientState(string clientId);
    /// @notice No consensus state at the height.
    error TestOnlyClientNoConsensusState(Height height);

    constructor(address handler_) {
        handler = handler_;
    }

    modifier onlyHandler() {
        if (msg.sender != handler) revert TestOnlyClientNotHandler(msg.sender);
        _;
    }

    /// @inheritdoc ILightClient
    function initializeClient(string calldata clientId, bytes calldata clientState, bytes calldata consensusState)
        external
        onlyHandler
        returns (Height memory)
    {
        if (latest[clientId].revisionHeight != 0) revert TestOnlyClientState(clientId);
        Height memory h = _decodeHeight(_unpackAny(clientState, CLIENT_STATE_URL));
        (uint64 timestamp, bytes32 root) = _decodeConsensus(_unpackAny(consensusState, CONSENSUS_STATE_URL));
        if (h.revisionHeight == 0 || timestamp == 0) revert TestOnlyClientMalformed();
        latest[clientId] = h;
        consensus[clientId][_key(h)] = Consensus(timestamp, root);
        return h;
    }

    /// @inheritdoc ILightClient
    function updateClient(string calldata clientId, bytes calldata clientMessage)
        external
        onlyHandler
        returns (bytes memory clientState, ConsensusStateUpdate[] memory updates)
    {
        if (latest[clientId].revisionHeight == 0) revert TestOnlyClientState(clientId);
        (Height memory h, uint64 timestamp, bytes32 root) = abi.decode(clientMessage, (Height, uint64, bytes32));
        if (h.revisionHeight == 0 || timestamp == 0) revert TestOnlyClientMalformed();
        consensus[clientId][_key(h)] = Consensus(timestamp, root);
        if (_key(h) > _key(latest[clientId])) latest[clientId] = h;
        clientState = encodeClientState(latest[clientId]);
        updates = new ConsensusStateUpdate[](1);
        updates[0] = ConsensusStateUpdate(h, encodeConsensusState(timestamp, root));
    }

    /// @inheritdoc ILightClient
    function getTimestampAtHeight(string calldata clientId, Height calldata height) external view returns (uint64) {
        return _consensus(clientId, height).timestamp;
    }

    /// @inheritdoc ILightClient
    function getLatestHeight(string calldata clientId) external view returns (Height memory) {
        return latest[clientId];
    }

    /// @inheritdoc ILightClient
    function verifyMembership(
        string calldata clientId,
        Height calldata height,
        uint64,
        uint64,
        bytes memory proof,
        bytes memory prefix,
        bytes memory path,
        bytes memory value
    ) external view returns (bool) {
        _consensus(clientId, height);
        return proof.length == 32 && bytes32(proof) == keccak256(abi.encode(height, prefix, path, value));
    }

    /// @inheritdoc ILightClient
    function verifyNonMembership(
        string calldata clientId,
        Height calldata height,
        uint64,
        uint64,
        bytes memory proof,
        bytes memory prefix,
        bytes memory path
    ) external view returns (bool) {
        _consensus(clientId, height);
        return proof.length == 32 && bytes32(proof) == keccak256(abi.encode(height, prefix, path));
    }

    /// @notice The client state `Any` for `latestHeight`.
    function encodeClientState(Height memory latestHeight) public pure returns (bytes memory) {
        bytes memory height = abi.encodePacked(
            ProtoEncoder.varintField(1, latestHeight.revisionNumber),
            ProtoEncoder.varintField(2, latestHeight.revisionHeight)
        );
        return _any(CLIENT_STATE_URL, ProtoEncoder.lenField(1, height));
    }

    /// @notice The consensus state `Any` for (`timestamp`, `root`).
    function encodeConsensusState(uint64 timestamp, bytes32 root) public pure returns (bytes memory) {
        return _any(
            CONSENSUS_STATE_URL,
            abi.encodePacked(ProtoEncoder.varintField(1, timestamp), ProtoEncoder.lenField(2, abi.encodePacked(root)))
        );
    }

    function _any(string memory url, bytes memory value) private pure returns (bytes memory) {
        return abi.encodePacked(ProtoEncoder.lenField(1, bytes(url)), ProtoEncoder.optLenField(2, value));
    }

    function _consensus(string calldata clientId, Height calldata height) private view returns (Consensus storage c) {
        c = consensus[clientId][_key(height)];
        if (c.timestamp == 0) revert TestOnlyClientNoConsensusState(height);
    }

    function _key(Height memory h) private pure returns (uint128) {
        return (uint128(h.revisionNumber) << 64) | h.revisionHeight;
    }

    // ---- a minimal protobuf reader (varint and length-delimited fields only) ----------------

    function _varint(bytes memory b, uint256 i) private pure returns (uint64, uint256) {
        uint256 acc;
        for (uint256 shift = 0; shift < 70; shift += 7) {
            if (i >= b.length) revert TestOnlyClientMalformed();
            uint8 c = uint8(b[i++]);
            acc |= uint256(c & 0x7f) << shift;
            if (c & 0x80 == 0) {
                if (acc > type(uint64).max) revert TestOnlyClientMalformed();
                return (uint64(acc), i);
            }
        }
        revert TestOnlyClientMalformed();
    }

    function _slice(bytes memory b, uint256 i) private pure returns (bytes memory out, uint256 next) {
        uint64 len;
        (len, i) = _varint(b, i);
        if (len > b.length - i) revert TestOnlyClientMalformed();
        out = new bytes(len);
        for (uint256 k = 0; k < len; k++) {
            out[k] = b[i + k];
        }
        next = i + len;
    }

    function _unpackAny(bytes memory any, string memory url) private pure returns (bytes memory value) {
        bool urlSeen;
        for (uint256 i = 0; i < any.length;) {
            uint64 tag;
            (tag, i) = _varint(any, i);
            bytes memory field;
            if (tag == (1 << 3) | 2) {
                (field, i) = _slice(any, i);
                if (keccak256(field) != keccak256(bytes(url))) revert TestOnlyClientMalformed();
                urlSeen = true;
            } else if (tag == (2 << 3) | 2) {
                (value, i) = _slice(any, i);
            } else {
                revert TestOnlyClientMalformed();
            }
        }
        if (!urlSeen) revert TestOnlyClientMalformed();
    }

    function _decodeHeight(bytes memory state) private pure returns (Height memory h) {
        for (uint256 i = 0; i < state.length;) {
            uint64 tag;
            (tag, i) = _varint(state, i);
            if (tag != (1 << 3) | 2) revert TestOnlyClientMalformed();
            bytes memory height;
            (height, i) = _slice(state, i);
            for (uint256 j = 0; j < height.length;) {
                uint64 t;
                uint64 v;
                (t, j) = _varint(height, j);
                (v, j) = _varint(height, j);
                if (t == (1 << 3)) h.revisionNumber = v;
                else if (t == (2 << 3)) h.revisionHeight = v;
                else revert TestOnlyClientMalformed();
            }
        }
    }

    function _decodeConsensus(bytes memory state) private pure returns (uint64 timestamp, bytes32 root) {
        for (uint256 i = 0; i < state.length;) {
            uint64 tag;
            (tag, i) = _varint(state, i);
            if (tag == (1 << 3)) {
                (timestamp, i) = _varint(state, i);
            } else if (tag == (2 << 3) | 2) {
                bytes memory r;
                (r, i) = _slice(state, i);
                if (r.length != 32) revert TestOnlyClientMalformed();
                root = bytes32(r);
            } else {
                revert TestOnlyClientMalformed();
            }
        }
    }
}
