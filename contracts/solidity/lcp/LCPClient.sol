// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "../ibc/IBCTypes.sol";
import {ProtoEncoder} from "../ibc/ProtoEncoder.sol";
import {LCPProto} from "./LCPProto.sol";
import {LCPAttestation} from "./LCPAttestation.sol";

/// @title LCPClient: the on-chain client of a Light Client Proxy (client type "lcp"). It trusts
/// what enclave keys sign: a key is registered from an IAS attestation verification report
/// (RSA-SHA256 by a signing certificate chained to the root configured at construction; the
/// MRENCLAVE pinned in the client state; quote status and advisory allow lists; the DEBUG
/// attribute only in development mode; expiry = attestation time + key_expiration), optionally
/// bound to the operator who approves it with an EIP-712 signature (who must be the operator
/// the report names, if it names one, and a member of the client's operator set, if any). Updates (UpdateState),
/// membership proofs (VerifyMembership) and misbehaviour (which freezes the client) are proxy
/// messages signed by one registered key, or, when the client has an operator set, by keys of
/// distinct operators in the set's order reaching the threshold.
///
/// Wire formats are Datachain LCP's (lcp-solidity): `ibc.lightclients.lcp.v1` ClientState
/// {1 mrenclave, 2 key_expiration (s), 3 frozen, 4 latest_height, 5 allowed_quote_statuses,
/// 6 allowed_advisory_ids, 7 operators, 8 operators_nonce, 9/10 threshold numerator and
/// denominator}, ConsensusState {1 state_id, 2 timestamp (ns)}, UpdateClientMessage
/// {1 proxy_message, 2 signatures}, RegisterEnclaveKeyMessage {1 report, 2 signature,
/// 3 signing_cert, 4 operator_signature}; proxy messages are ABI-encoded (see the structs).
///
/// A client is created either at latest height zero with an empty consensus state (then its
/// first update skips the previous-state check and must emit states), or, as the IBC handler
/// requires, at a non-zero height with the trusted consensus state (state id, timestamp).
contract LCPClient is ILightClient {
    /// @notice The client type this contract is registered under.
    string public constant CLIENT_TYPE = "lcp";
    string private constant CLIENT_STATE_URL = "/ibc.lightclients.lcp.v1.ClientState";
    string private constant CONSENSUS_STATE_URL = "/ibc.lightclients.lcp.v1.ConsensusState";
    string private constant UPDATE_CLIENT_URL = "/ibc.lightclients.lcp.v1.UpdateClientMessage";
    string private constant REGISTER_URL = "/ibc.lightclients.lcp.v1.RegisterEnclaveKeyMessage";

    /// @notice LCP's universal EIP-712 domain (name "LCPClient", version "1", chain id 0, no
    /// verifying contract, zero salt).
    bytes32 public constant DOMAIN_SEPARATOR = 0x7fd21c2453e80741907e7ff11fd62ae1daa34c6fc0c2eced821f1c1d3fe88a4c;
    bytes32 private constant REGISTER_TYPEHASH = keccak256("RegisterEnclaveKey(string avr)");

    uint16 private constant TYPE_UPDATE_STATE = 1;
    uint16 private constant TYPE_VERIFY_MEMBERSHIP = 2;
    uint16 private constant TYPE_MISBEHAVIOUR = 3;
    uint256 private constant SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    struct HeaderedProxyMessage {
        bytes32 header;
        bytes message;
    }

    struct EmittedState {
        Height height;
        bytes state;
    }

    struct UpdateStateProxyMessage {
        Height prevHeight;
        bytes32 prevStateId;
        Height postHeight;
        bytes32 postStateId;
        uint128 timestamp;
        bytes context;
        EmittedState[] emittedStates;
    }

    struct VerifyMembershipProxyMessage {
        bytes prefix;
        bytes path;
        bytes32 value;
        Height height;
        bytes32 stateId;
    }

    struct PrevState {
        Height height;
        bytes32 stateId;
    }

    struct MisbehaviourProxyMessage {
        PrevState[] prevStates;
        bytes context;
        bytes clientMessage;
    }

    struct ValidationContext {
        bytes32 header;
        bytes context;
    }

    /// @notice A membership proof: a proxy message and the enclave keys' signatures.
    struct CommitmentProofs {
        bytes message;
        bytes[] signatures;
    }

    /// @notice An enclave key registration (AVR text, its RSA signature, the signing
    /// certificate DER, and the operator's EIP-712 signature or empty).
    struct RegisterEnclaveKeyMessage {
        string report;
        bytes signature;
        bytes signingCert;
        bytes operatorSignature;
    }

    struct EnclaveKey {
        uint64 expiredAt;
        address operator;
    }

    struct ConsensusState {
        bytes32 stateId;
        uint64 timestamp;
    }

    /// @dev Slot 0 holds what every update and proof reads (existence = keyExpiration != 0),
    /// the latest height included (a `Height` member would take a slot of its own).
    struct Client {
        uint64 keyExpiration;
        bool frozen;
        uint8 operatorCount;
        /// @dev Whether `tail` is non-empty (else the client state's encoding skips reading it).
        bool hasTail;
        uint64 latestRevisionNumber;
        uint64 latestRevisionHeight;
        uint64 thresholdNumerator;
        uint64 thresholdDenominator;
        bytes32 mrenclave;
        address[] operators;
        /// @dev The client state's encoded fields 5-10 (canonical, re-encoded).
        bytes tail;
        mapping(bytes32 => bool) allowedStatus;
        mapping(bytes32 => bool) allowedAdvisory;
        mapping(uint128 => ConsensusState) consensus;
        mapping(address => EnclaveKey) keys;
    }

    /// @notice The only caller of initializeClient/updateClient.
    address public immutable handler;
    /// @notice The AVR/certificate checker.
    LCPAttestation public immutable attestation;
    /// @notice Whether DEBUG enclaves are accepted (never on a production network).
    bool public immutable developmentMode;

    bytes private rootModulus;
    bytes private rootExponent;
    bytes32 private rootSubjectHash;
    uint64 private rootNotBefore;
    uint64 private rootNotAfter;
    /// @dev keccak256(signing cert DER) => notBefore, notAfter and where its RSA key is in the
    /// DER, for certificates already verified against the root (the key is then read in place).
    mapping(bytes32 => uint256) private signingCerts;
    mapping(string => Client) private clients;

    /// @notice An enclave key was registered (or its expiry extended).
    event LCPClientRegisteredEnclaveKey(string clientId, address enclaveKey, uint64 expiredAt, address operator);
    /// @notice The client was frozen by a misbehaviour message.
    event LCPClientFrozen(string clientId);

    error LCPClientNotHandler(address caller);
    error LCPClientExists(string clientId);
    error LCPClientNotFound(string clientId);
    error LCPClientFrozenState(string clientId);
    error LCPClientBadClientState();
    error LCPClientBadConsensusState();
    error LCPClientUnknownMessage();
    error LCPClientRootNotValid(uint256 time);
    error LCPClientSigningCertNotValid(uint256 time);
    error LCPClientMrenclaveMismatch(bytes32 got);
    error LCPClientDebugEnclave();
    error LCPClientQuoteStatusNotAllowed(string status);
    error LCPClientAdvisoryNotAllowed(string advisoryId);
    error LCPClientKeyExpired(address key, uint64 expiredAt);
    error LCPClientZeroKey();
    error LCPClientAVRUnexpectedOperator(address signer, address operator);
    error LCPClientOperatorNotInSet(address operator);
    error LCPClientEnclaveKeyOperatorChanged(address key);
    error LCPClientBadSignature();
    error LCPClientEnclaveKeyNotRegistered(address key);
    error LCPClientEnclaveKeyUnexpectedOperator(address got, address expected);
    error LCPClientSignaturesLength(uint256 got, uint256 expected);
    error LCPClientOperatorSignaturesInsufficient(uint256 success);
    error LCPClientBadHeader(bytes32 header);
    error LCPClientPrevStateMismatch(Height height);
    error LCPClientNoEmittedStates();
    error LCPClientBadUpdate();
    error LCPClientConsensusStateConflict(Height height);
    error LCPClientContextExpired();
    error LCPClientContextFuture();
    error LCPClientBadContext();
    error LCPClientNoConsensusState(Height height);
    error LCPClientMalformedMessage();

    /// @param handler_ the IBC handler (the only caller of initializeClient/updateClient)
    /// @param attestation_ the AVR/certificate checker
    /// @param rootCert the attestation root certificate (DER)
    /// @param developmentMode_ accept DEBUG enclaves (tests and simulation only)
    constructor(address handler_, LCPAttestation attestation_, bytes memory rootCert, bool developmentMode_) {
        handler = handler_;
        attestation = attestation_;
        developmentMode = developmentMode_;
        LCPAttestation.Certificate memory root = attestation_.parseCertificate(rootCert);
        rootModulus = root.modulus;
        rootExponent = root.exponent;
        rootSubjectHash = root.subjectHash;
        rootNotBefore = root.notBefore;
        rootNotAfter = root.notAfter;
    }

    modifier onlyHandler() {
        if (msg.sender != handler) revert LCPClientNotHandler(msg.sender);
        _;
    }

    // ------------------------------------------------------------------ ILightClient

    /// @inheritdoc ILightClient
    function initializeClient(string calldata clientId, bytes calldata clientState, bytes calldata consensusState)
        external
        onlyHandler
        returns (Height memory)
    {
        Client storage c = clients[clientId];
        if (c.keyExpiration != 0) revert LCPClientExists(clientId);
        _decodeClientState(c, LCPProto.unpack(clientState, CLIENT_STATE_URL));
        (bytes32 stateId, uint64 timestamp) = _decodeConsensusState(LCPProto.unpack(consensusState, CONSENSUS_STATE_URL));
        if (c.latestRevisionNumber == 0 && c.latestRevisionHeight == 0) {
            if (stateId != bytes32(0) || timestamp != 0) revert LCPClientBadConsensusState();
        } else {
            if (stateId == bytes32(0) || timestamp == 0) revert LCPClientBadConsensusState();
            c.consensus[_key(c.latestRevisionNumber, c.latestRevisionHeight)] = ConsensusState(stateId, timestamp);
        }
        return Height(c.latestRevisionNumber, c.latestRevisionHeight);
    }

    /// @inheritdoc ILightClient
    /// @dev `clientMessage` is an `Any`: UpdateClientMessage (UpdateState or Misbehaviour) or
    /// RegisterEnclaveKeyMessage.
    function updateClient(string calldata clientId, bytes calldata clientMessage)
        external
        onlyHandler
        returns (bytes memory clientState, ConsensusStateUpdate[] memory updates)
    {
        Client storage c = _client(clientId);
        (bytes32 t, uint256 vs, uint256 ve) = LCPProto.anyCd(clientMessage);
        if (t == keccak256(bytes(UPDATE_CLIENT_URL))) {
            (uint256 ms, uint256 me, uint256[] memory signatures) = _decodeUpdateClientMessage(clientMessage[vs:ve]);
            return _routeProxyMessage(clientId, c, clientMessage[vs:ve][ms:me], signatures);
        } else if (t == keccak256(bytes(REGISTER_URL))) {
            _registerEnclaveKey(clientId, c, _decodeRegisterMessage(clientMessage[vs:ve]));
            return (_encodeClientState(c), new ConsensusStateUpdate[](0));
        }
        revert LCPClientUnknownMessage();
    }

    /// @inheritdoc ILightClient
    function getTimestampAtHeight(string calldata clientId, Height calldata height) external view returns (uint64) {
        ConsensusState storage cs = clients[clientId].consensus[_key(height.revisionNumber, height.revisionHeight)];
        if (cs.stateId == bytes32(0)) revert LCPClientNoConsensusState(height);
        return cs.timestamp;
    }

    /// @inheritdoc ILightClient
    function getLatestHeight(string calldata clientId) external view returns (Height memory) {
        Client storage c = clients[clientId];
        return Height(c.latestRevisionNumber, c.latestRevisionHeight);
    }

    /// @inheritdoc ILightClient
    /// @dev `proof` is abi.encode(CommitmentProofs) of a VerifyMembership proxy message.
    function verifyMembership(
        string calldata clientId,
        Height calldata height,
        uint64,
        uint64,
        bytes calldata proof,
        bytes memory prefix,
        bytes calldata path,
        bytes memory value
    ) external view returns (bool) {
        return _verifyState(clientId, height, proof, keccak256(prefix), keccak256(path), keccak256(value));
    }

    /// @inheritdoc ILightClient
    function verifyNonMembership(
        string calldata clientId,
        Height calldata height,
        uint64,
        uint64,
        bytes calldata proof,
        bytes calldata prefix,
        bytes calldata path
    ) external view returns (bool) {
        return _verifyState(clientId, height, proof, keccak256(prefix), keccak256(path), bytes32(0));
    }

    // ------------------------------------------------------------------ direct entry points

    /// @notice Registers the enclave key an AVR attests (anyone may submit it: the report,
    /// its signature chain and the operator's signature prove it).
    function registerEnclaveKey(string calldata clientId, RegisterEnclaveKeyMessage calldata message) external {
        _registerEnclaveKey(clientId, _client(clientId), message);
    }

    /// @notice An enclave key's expiry (0 if unknown) and operator.
    function getEnclaveKeyInfo(string calldata clientId, address key) external view returns (uint64, address) {
        EnclaveKey storage k = clients[clientId].keys[key];
        return (k.expiredAt, k.operator);
    }

    /// @notice The consensus state (state id, timestamp ns) at `height` (zero if none).
    function getConsensusState(string calldata clientId, Height calldata height)
        external
        view
        returns (bytes32, uint64)
    {
        ConsensusState storage cs = clients[clientId].consensus[_key(height.revisionNumber, height.revisionHeight)];
        return (cs.stateId, cs.timestamp);
    }

    /// @notice The client state `Any` of `clientId`.
    function getClientState(string calldata clientId) external view returns (bytes memory) {
        return _encodeClientState(_client(clientId));
    }

    /// @notice Whether `clientId` is frozen.
    function isFrozen(string calldata clientId) external view returns (bool) {
        return clients[clientId].frozen;
    }

    /// @notice The digest an operator signs to approve the key attested by `avr`.
    function registerEnclaveKeyDigest(string memory avr) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                hex"1901", DOMAIN_SEPARATOR, keccak256(abi.encode(REGISTER_TYPEHASH, keccak256(bytes(avr))))
            )
        );
    }

    // ------------------------------------------------------------------ registration

    function _registerEnclaveKey(string calldata clientId, Client storage c, RegisterEnclaveKeyMessage memory m)
        private
    {
        if (c.frozen) revert LCPClientFrozenState(clientId);
        (bytes memory modulus, bytes memory exponent) = _signingKey(m.signingCert);
        LCPAttestation.Report memory r = attestation.verifyReport(m.report, m.signature, modulus, exponent);
        if (r.mrenclave != c.mrenclave) revert LCPClientMrenclaveMismatch(r.mrenclave);
        if (r.debug && !developmentMode) revert LCPClientDebugEnclave();
        if (keccak256(bytes(r.quoteStatus)) != keccak256("OK") && !c.allowedStatus[keccak256(bytes(r.quoteStatus))]) {
            revert LCPClientQuoteStatusNotAllowed(r.quoteStatus);
        }
        for (uint256 i = 0; i < r.advisoryIds.length; i++) {
            if (!c.allowedAdvisory[keccak256(bytes(r.advisoryIds[i]))]) revert LCPClientAdvisoryNotAllowed(r.advisoryIds[i]);
        }
        if (r.enclaveKey == address(0)) revert LCPClientZeroKey();
        uint64 expiredAt = r.attestationTime + c.keyExpiration;
        if (expiredAt <= block.timestamp) revert LCPClientKeyExpired(r.enclaveKey, expiredAt);
        // The key's operator: the EIP-712 signer if any, which must be the operator the report
        // names (when it names one).
        address operator = m.operatorSignature.length == 0
            ? address(0)
            : _recover(registerEnclaveKeyDigest(m.report), m.operatorSignature);
        if (r.operator != address(0) && operator != r.operator) revert LCPClientAVRUnexpectedOperator(operator, r.operator);
        if (c.operatorCount != 0) {
            bool found;
            for (uint256 i = 0; i < c.operators.length; i++) {
                if (c.operators[i] == operator) found = true;
            }
            if (!found) revert LCPClientOperatorNotInSet(operator);
        }
        EnclaveKey storage k = c.keys[r.enclaveKey];
        if (k.expiredAt != 0) {
            if (k.operator != operator) revert LCPClientEnclaveKeyOperatorChanged(r.enclaveKey);
            if (k.expiredAt >= expiredAt) return;
        }
        k.expiredAt = expiredAt;
        k.operator = operator;
        emit LCPClientRegisteredEnclaveKey(clientId, r.enclaveKey, expiredAt, operator);
    }

    /// @dev The RSA key of a signing certificate chained to the root (cached after the first check).
    function _signingKey(bytes memory cert) private returns (bytes memory, bytes memory) {
        bytes32 h = keccak256(cert);
        uint256 cached = signingCerts[h];
        if (cached != 0) {
            // notBefore(64) | notAfter(64) | modulus offset, length | exponent offset, length (16 each)
            if (block.timestamp < cached >> 192 || block.timestamp > uint64(cached >> 128)) {
                revert LCPClientSigningCertNotValid(block.timestamp);
            }
            return (
                LCPProto.slice(cert, uint16(cached >> 48), uint16(cached >> 32)),
                LCPProto.slice(cert, uint16(cached >> 16), uint16(cached))
            );
        }
        if (block.timestamp < rootNotBefore || block.timestamp > rootNotAfter) {
            revert LCPClientRootNotValid(block.timestamp);
        }
        LCPAttestation.Certificate memory info =
            attestation.verifyCertificate(cert, rootModulus, rootExponent, rootSubjectHash, block.timestamp);
        if (cert.length > type(uint16).max) revert LCPClientSigningCertNotValid(block.timestamp);
        signingCerts[h] = (uint256(info.notBefore) << 192) | (uint256(info.notAfter) << 128)
            | (uint256(uint16(info.modulusOffset)) << 48) | (uint256(uint16(info.modulus.length)) << 32)
            | (uint256(uint16(info.exponentOffset)) << 16) | uint16(info.exponent.length);
        return (info.modulus, info.exponent);
    }

    // ------------------------------------------------------------------ proxy messages

    function _routeProxyMessage(
        string calldata clientId,
        Client storage c,
        bytes calldata message,
        uint256[] memory sigs
    ) private returns (bytes memory clientState, ConsensusStateUpdate[] memory updates) {
        if (c.frozen) revert LCPClientFrozenState(clientId);
        // HeaderedProxyMessage {bytes32 header; bytes message}
        bytes calldata hm = _tupleAt(message, 0);
        bytes32 header = bytes32(_word(hm, 0));
        bytes calldata inner = _tupleAt(_bytesAt(hm, 32), 0);
        _verifySigners(c, keccak256(message), sigs);
        if (header == _header(TYPE_UPDATE_STATE)) {
            _updateState(c, inner); // ends the call with its result
        } else if (header == _header(TYPE_MISBEHAVIOUR)) {
            MisbehaviourProxyMessage memory mb = abi.decode(_bytesAt(hm, 32), (MisbehaviourProxyMessage));
            if (mb.prevStates.length == 0) revert LCPClientBadUpdate();
            for (uint256 i = 0; i < mb.prevStates.length; i++) {
                Height memory h = mb.prevStates[i].height;
                ConsensusState storage cs = c.consensus[_key(h.revisionNumber, h.revisionHeight)];
                if (cs.stateId == bytes32(0) || cs.stateId != mb.prevStates[i].stateId) {
                    revert LCPClientPrevStateMismatch(h);
                }
            }
            _validateContext(_bytesAt(inner, 32));
            c.frozen = true;
            emit LCPClientFrozen(clientId);
            return (_encodeClientState(c), new ConsensusStateUpdate[](0));
        }
        revert LCPClientBadHeader(header);
    }

    /// @dev `u` is the ABI tuple UpdateStateProxyMessage {Height prevHeight; bytes32 prevStateId;
    /// Height postHeight; bytes32 postStateId; uint128 timestamp; bytes context;
    /// EmittedState[] emittedStates}, read in place (words 0-8 of the head). Ends the call,
    /// returning the new client state and the consensus state stored (`_returnUpdate`).
    function _updateState(Client storage c, bytes calldata u) private {
        uint256 emitted = _emittedStates(u);
        uint64 latestNumber = c.latestRevisionNumber;
        uint64 latestHeight = c.latestRevisionHeight;
        if (latestNumber == 0 && latestHeight == 0) {
            if (emitted == 0) revert LCPClientNoEmittedStates();
        } else {
            uint64 prevNumber = _u64(u, 0);
            uint64 prevHeight = _u64(u, 32);
            bytes32 prevStateId = c.consensus[_key(prevNumber, prevHeight)].stateId;
            if (prevStateId == bytes32(0) || prevStateId != bytes32(_word(u, 64))) {
                revert LCPClientPrevStateMismatch(Height(prevNumber, prevHeight));
            }
        }
        _validateContext(_bytesAt(u, 224));
        Height memory postHeight = Height(_u64(u, 96), _u64(u, 128));
        bytes32 postStateId = bytes32(_word(u, 160));
        uint256 timestamp = _word(u, 192);
        if (timestamp >> 128 != 0) revert LCPClientMalformedMessage();
        if (postStateId == bytes32(0) || timestamp == 0 || timestamp > type(uint64).max || postHeight.revisionHeight == 0)
        {
            revert LCPClientBadUpdate();
        }
        uint128 postKey = _key(postHeight.revisionNumber, postHeight.revisionHeight);
        ConsensusState storage post = c.consensus[postKey];
        bytes32 existing = post.stateId;
        if (existing != bytes32(0)) {
            if (existing != postStateId || post.timestamp != timestamp) {
                revert LCPClientConsensusStateConflict(postHeight);
            }
        } else {
            post.stateId = postStateId;
            post.timestamp = uint64(timestamp);
        }
        if (postKey > _key(latestNumber, latestHeight)) {
            c.latestRevisionNumber = postHeight.revisionNumber;
            c.latestRevisionHeight = postHeight.revisionHeight;
        }
        _returnUpdate(
            _encodeClientState(c),
            postHeight.revisionNumber,
            postHeight.revisionHeight,
            _encodeConsensusState(postStateId, uint64(timestamp))
        );
    }

    /// @dev Ends the call, returning what `updateClient` declares: (bytes clientState,
    /// ConsensusStateUpdate[] with the one update {height, consensusState}), ABI-encoded here
    /// directly.
    function _returnUpdate(bytes memory clientState, uint64 revisionNumber, uint64 revisionHeight, bytes memory cons)
        private
        pure
    {
        assembly ("memory-safe") {
            // Copies `b` (length word and data, zero-padded to words) to `dst`; returns the end.
            function put(dst, b) -> end {
                let n := mload(b)
                let padded := and(add(n, 31), not(31))
                mstore(dst, n)
                mstore(add(dst, padded), 0)
                mcopy(add(dst, 0x20), add(b, 0x20), n)
                end := add(add(dst, 0x20), padded)
            }
            let out := mload(0x40)
            mstore(out, 0x40)
            let array := put(add(out, 0x40), clientState)
            mstore(add(out, 0x20), sub(array, out))
            mstore(array, 1)
            mstore(add(array, 0x20), 0x20)
            mstore(add(array, 0x40), revisionNumber)
            mstore(add(array, 0x60), revisionHeight)
            mstore(add(array, 0x80), 0x60)
            let end := put(add(array, 0xa0), cons)
            return(out, sub(end, out))
        }
    }

    /// @dev The number of emitted states (word 8 of UpdateState: EmittedState[] {Height height;
    /// bytes state}), each checked to be well formed.
    function _emittedStates(bytes calldata u) private pure returns (uint256 n) {
        bytes calldata a = _tupleAt(u, 256);
        n = _word(a, 0);
        if (n > a.length) revert LCPClientMalformedMessage();
        bytes calldata elems = a[32:];
        for (uint256 i = 0; i < n; i++) {
            bytes calldata e = _tupleAt(elems, i * 32);
            _u64(e, 0);
            _u64(e, 32);
            _bytesAt(e, 64);
        }
    }

    /// @dev `context` is abi.encode(ValidationContext {bytes32 header; bytes context}): empty
    /// (type 0), or trusting period (type 1, two words: untrusted header and trusted state
    /// timestamps, trusting period and clock drift, ns, 128 bits each): now must be within the
    /// trusting period of the trusted state and not before the untrusted header (with drift).
    function _validateContext(bytes calldata context) private view {
        bytes calldata vc = _tupleAt(context, 0);
        bytes32 header = bytes32(_word(vc, 0));
        bytes calldata body = _bytesAt(vc, 32);
        if (header == bytes32(0)) {
            if (body.length != 0) revert LCPClientBadContext();
            return;
        }
        if (header != bytes32(uint256(1) << 240) || body.length != 64) revert LCPClientBadContext();
        uint256 w0 = _word(body, 0);
        uint256 w1 = _word(body, 32);
        uint256 untrusted = w0 >> 128;
        uint256 trusted = uint128(w0);
        uint256 period = w1 >> 128;
        uint256 drift = uint128(w1);
        uint256 now_ = block.timestamp * 1e9;
        if (now_ >= trusted + period) revert LCPClientContextExpired();
        if (now_ + drift <= untrusted) revert LCPClientContextFuture();
    }

    function _verifyState(
        string calldata clientId,
        Height calldata height,
        bytes calldata proof,
        bytes32 prefixHash,
        bytes32 pathHash,
        bytes32 valueHash
    ) private view returns (bool) {
        Client storage c = _client(clientId);
        if (c.frozen) revert LCPClientFrozenState(clientId);
        return _verifyProof(c, height, proof, [prefixHash, pathHash, valueHash]);
    }

    /// @dev `proof` is abi.encode(CommitmentProofs {bytes message; bytes[] signatures}), read in
    /// place; `expected` the hashes of prefix, path and value (zero: absence).
    function _verifyProof(
        Client storage c,
        Height calldata height,
        bytes calldata proof,
        bytes32[3] memory expected
    ) private view returns (bool) {
        (bytes calldata message, uint256[] memory sigs) = _commitmentProofs(proof);
        (bool matches, bytes32 stateId) = _membershipMatches(message, height, expected);
        if (!matches || !_hasStateId(c, height, stateId)) return false;
        _verifySigners(c, keccak256(message), sigs);
        return true;
    }

    /// @dev The message and the signatures' calldata references of abi.encode(CommitmentProofs).
    function _commitmentProofs(bytes calldata proof)
        private
        pure
        returns (bytes calldata message, uint256[] memory sigs)
    {
        bytes calldata p = _tupleAt(proof, 0);
        message = _bytesAt(p, 0);
        sigs = _abiSignatures(_tupleAt(p, 32));
    }

    /// @dev Whether the consensus state at `height` has state id `stateId`.
    function _hasStateId(Client storage c, Height calldata height, bytes32 stateId) private view returns (bool) {
        bytes32 stored = c.consensus[_key(height.revisionNumber, height.revisionHeight)].stateId;
        return stored != bytes32(0) && stored == stateId;
    }

    /// @dev Whether the VerifyMembership proxy message {bytes prefix; bytes path; bytes32 value;
    /// Height height; bytes32 stateId} in `message` (a HeaderedProxyMessage) is about these
    /// prefix, path, value and height; and its state id.
    function _membershipMatches(
        bytes calldata message,
        Height calldata height,
        bytes32[3] memory expected
    ) private pure returns (bool, bytes32) {
        bytes calldata hm = _tupleAt(message, 0);
        bytes32 header = bytes32(_word(hm, 0));
        if (header != _header(TYPE_VERIFY_MEMBERSHIP)) revert LCPClientBadHeader(header);
        bytes calldata m = _tupleAt(_bytesAt(hm, 32), 0);
        bool matches = bytes32(_word(m, 64)) == expected[2] && _u64(m, 96) == height.revisionNumber
            && _u64(m, 128) == height.revisionHeight && keccak256(_bytesAt(m, 0)) == expected[0]
            && keccak256(_bytesAt(m, 32)) == expected[1];
        return (matches, bytes32(_word(m, 160)));
    }

    /// @dev One registered, unexpired key (no operator set), or keys of the operators in set
    /// order (empty signature = operator absent) reaching the threshold. `sigs` are calldata
    /// references (see `_ref`).
    function _verifySigners(Client storage c, bytes32 digest, uint256[] memory sigs) private view {
        uint256 n = c.operatorCount;
        if (n == 0) {
            if (sigs.length != 1) revert LCPClientSignaturesLength(sigs.length, 1);
            _checkKey(c, _recoverCd(digest, sigs[0]));
            return;
        }
        if (sigs.length != n) revert LCPClientSignaturesLength(sigs.length, n);
        uint256 success;
        for (uint256 i = 0; i < n; i++) {
            if (uint128(sigs[i]) == 0) continue;
            EnclaveKey storage k = _checkKey(c, _recoverCd(digest, sigs[i]));
            if (k.operator != c.operators[i]) revert LCPClientEnclaveKeyUnexpectedOperator(k.operator, c.operators[i]);
            success++;
        }
        if (success * c.thresholdDenominator < uint256(c.thresholdNumerator) * n) {
            revert LCPClientOperatorSignaturesInsufficient(success);
        }
    }

    function _checkKey(Client storage c, address signer) private view returns (EnclaveKey storage k) {
        k = c.keys[signer];
        uint64 expiredAt = k.expiredAt;
        if (expiredAt == 0) revert LCPClientEnclaveKeyNotRegistered(signer);
        if (expiredAt <= block.timestamp) revert LCPClientKeyExpired(signer, expiredAt);
    }

    /// @dev ecrecover of a 65-byte r‖s‖v signature (v ∈ {0, 1, 27, 28}, low s).
    function _recover(bytes32 digest, bytes memory sig) private pure returns (address) {
        if (sig.length != 65) revert LCPClientBadSignature();
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            r := mload(add(sig, 0x20))
            s := mload(add(sig, 0x40))
            v := byte(0, mload(add(sig, 0x60)))
        }
        return _ecrecover(digest, v, r, s);
    }

    /// @dev `_recover` of the signature in calldata referenced by `ref`.
    function _recoverCd(bytes32 digest, uint256 ref) private pure returns (address) {
        if (uint128(ref) != 65) revert LCPClientBadSignature();
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            let o := shr(128, ref)
            r := calldataload(o)
            s := calldataload(add(o, 0x20))
            v := byte(0, calldataload(add(o, 0x40)))
        }
        return _ecrecover(digest, v, r, s);
    }

    function _ecrecover(bytes32 digest, uint8 v, bytes32 r, bytes32 s) private pure returns (address signer) {
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > SECP256K1_HALF_N) revert LCPClientBadSignature();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert LCPClientBadSignature();
    }

    // ------------------------------------------------------------------ ABI in calldata
    // Strict readers of ABI-encoded proxy messages where they lie (no copies): every offset and
    // length is checked against the enclosing data, as abi.decode does.

    /// @dev The word at `o` of `b`.
    function _word(bytes calldata b, uint256 o) private pure returns (uint256 w) {
        assembly ("memory-safe") {
            if or(gt(o, b.length), lt(sub(b.length, o), 32)) {
                mstore(0, 0xf51d1215) // LCPClientMalformedMessage()
                revert(28, 4)
            }
            w := calldataload(add(b.offset, o))
        }
    }

    /// @dev The word at `o` of `b`, which must be a uint64.
    function _u64(bytes calldata b, uint256 o) private pure returns (uint64 v) {
        assembly ("memory-safe") {
            if or(gt(o, b.length), lt(sub(b.length, o), 32)) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            let w := calldataload(add(b.offset, o))
            if gt(w, 0xffffffffffffffff) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            v := w
        }
    }

    /// @dev The dynamic tuple (or array) whose offset from the start of `b` is the word at `head`:
    /// `b` from there on.
    function _tupleAt(bytes calldata b, uint256 head) private pure returns (bytes calldata t) {
        assembly ("memory-safe") {
            let len := b.length
            if or(gt(head, len), lt(sub(len, head), 32)) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            let o := calldataload(add(b.offset, head))
            if gt(o, len) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            t.offset := add(b.offset, o)
            t.length := sub(len, o)
        }
    }

    /// @dev The `bytes` whose offset from the start of `b` is the word at `head`.
    function _bytesAt(bytes calldata b, uint256 head) private pure returns (bytes calldata t) {
        assembly ("memory-safe") {
            let len := b.length
            if or(gt(head, len), lt(sub(len, head), 32)) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            let o := calldataload(add(b.offset, head))
            // o + 32 + n <= len
            if or(gt(o, len), lt(sub(len, o), 32)) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            let n := calldataload(add(b.offset, o))
            if gt(n, sub(sub(len, o), 32)) {
                mstore(0, 0xf51d1215)
                revert(28, 4)
            }
            t.offset := add(add(b.offset, o), 32)
            t.length := n
        }
    }

    /// @dev The calldata references of the `bytes[]` at `a` (length, then offsets from `a`+32).
    function _abiSignatures(bytes calldata a) private pure returns (uint256[] memory refs) {
        uint256 n = _word(a, 0);
        if (n > a.length) revert LCPClientMalformedMessage();
        bytes calldata elems = a[32:];
        refs = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            refs[i] = _ref(_bytesAt(elems, i * 32));
        }
    }

    /// @dev A calldata reference: absolute offset (high 128 bits) and length.
    function _ref(bytes calldata b) private pure returns (uint256 r) {
        assembly ("memory-safe") {
            r := or(shl(128, b.offset), b.length)
        }
    }

    function _header(uint16 messageType) private pure returns (bytes32) {
        return bytes32((uint256(1) << 240) | (uint256(messageType) << 224));
    }

    // ------------------------------------------------------------------ protobuf

    function _decodeClientState(Client storage c, bytes memory b) private {
        uint256 p;
        uint256 last;
        uint256 nonce;
        while (p < b.length) {
            (uint256 f, uint256 wt, uint256 q) = LCPProto.key(b, p);
            bool repeated = f >= 5 && f <= 7;
            if (f < last || (f == last && !repeated) || f > 10) revert LCPClientBadClientState();
            last = f;
            uint256 v;
            uint256 s;
            uint256 n;
            if (f == 2 || f == 3 || f >= 8) {
                if (wt != 0) revert LCPClientBadClientState();
                (v, p) = LCPProto.varint(b, q);
                if (v > type(uint64).max) revert LCPClientBadClientState();
            } else {
                if (wt != 2) revert LCPClientBadClientState();
                (s, n, p) = LCPProto.lenDelim(b, q);
            }
            if (f == 1) {
                if (n != 32) revert LCPClientBadClientState();
                bytes32 mr;
                assembly ("memory-safe") {
                    mr := mload(add(add(b, 0x20), s))
                }
                c.mrenclave = mr;
            } else if (f == 2) {
                c.keyExpiration = uint64(v);
            } else if (f == 3) {
                if (v != 0) revert LCPClientBadClientState();
            } else if (f == 4) {
                Height memory h = _decodeHeight(LCPProto.slice(b, s, n));
                c.latestRevisionNumber = h.revisionNumber;
                c.latestRevisionHeight = h.revisionHeight;
            } else if (f == 5) {
                bytes memory status = LCPProto.slice(b, s, n);
                c.allowedStatus[keccak256(status)] = true;
                c.tail = abi.encodePacked(c.tail, ProtoEncoder.lenField(5, status));
            } else if (f == 6) {
                bytes memory adv = LCPProto.slice(b, s, n);
                c.allowedAdvisory[keccak256(adv)] = true;
                c.tail = abi.encodePacked(c.tail, ProtoEncoder.lenField(6, adv));
            } else if (f == 7) {
                if (n != 20) revert LCPClientBadClientState();
                address op;
                assembly ("memory-safe") {
                    op := shr(96, mload(add(add(b, 0x20), s)))
                }
                uint256 count = c.operators.length;
                if (op == address(0) || count == 255 || (count != 0 && c.operators[count - 1] >= op)) {
                    revert LCPClientBadClientState();
                }
                c.operators.push(op);
                c.tail = abi.encodePacked(c.tail, ProtoEncoder.lenField(7, abi.encodePacked(op)));
            } else if (f == 8) {
                nonce = v;
            } else if (f == 9) {
                c.thresholdNumerator = uint64(v);
            } else {
                c.thresholdDenominator = uint64(v);
            }
        }
        if (c.mrenclave == bytes32(0) || c.keyExpiration == 0) revert LCPClientBadClientState();
        if (c.operators.length == 0) {
            if (c.thresholdNumerator != 0 || c.thresholdDenominator != 0) revert LCPClientBadClientState();
        } else if (c.thresholdNumerator == 0 || c.thresholdNumerator > c.thresholdDenominator) {
            revert LCPClientBadClientState();
        }
        c.operatorCount = uint8(c.operators.length);
        c.tail = abi.encodePacked(
            c.tail,
            ProtoEncoder.varintField(8, uint64(nonce)),
            ProtoEncoder.varintField(9, c.thresholdNumerator),
            ProtoEncoder.varintField(10, c.thresholdDenominator)
        );
        c.hasTail = c.tail.length != 0;
    }

    function _decodeHeight(bytes memory b) private pure returns (Height memory h) {
        uint256 p;
        uint256 last;
        while (p < b.length) {
            (uint256 f, uint256 wt, uint256 q) = LCPProto.key(b, p);
            if (wt != 0 || f > 2 || f <= last) revert LCPClientBadClientState();
            last = f;
            uint256 v;
            (v, p) = LCPProto.varint(b, q);
            if (v > type(uint64).max) revert LCPClientBadClientState();
            if (f == 1) h.revisionNumber = uint64(v);
            else h.revisionHeight = uint64(v);
        }
    }

    function _decodeConsensusState(bytes memory b) private pure returns (bytes32 stateId, uint64 timestamp) {
        uint256 p;
        uint256 last;
        while (p < b.length) {
            (uint256 f, uint256 wt, uint256 q) = LCPProto.key(b, p);
            if (f > 2 || f <= last) revert LCPClientBadConsensusState();
            last = f;
            if (f == 1) {
                if (wt != 2) revert LCPClientBadConsensusState();
                (uint256 s, uint256 n, uint256 next) = LCPProto.lenDelim(b, q);
                if (n != 32) revert LCPClientBadConsensusState();
                assembly ("memory-safe") {
                    stateId := mload(add(add(b, 0x20), s))
                }
                p = next;
            } else {
                if (wt != 0) revert LCPClientBadConsensusState();
                uint256 v;
                (v, p) = LCPProto.varint(b, q);
                if (v > type(uint64).max) revert LCPClientBadConsensusState();
                timestamp = uint64(v);
            }
        }
    }

    /// @dev UpdateClientMessage {1 proxy_message, 2 repeated signatures}: the message's range
    /// in `b` and the signatures' calldata references (see `_ref`). Strict as LCPProto's
    /// readers (varints of at most 10 bytes, length-delimited fields only, inside `b`); field 1
    /// once and first, then field 2 any number of times.
    function _decodeUpdateClientMessage(bytes calldata b)
        private
        pure
        returns (uint256 ms, uint256 me, uint256[] memory signatures)
    {
        assembly ("memory-safe") {
            function malformed(at) {
                mstore(0, 0xd2387b4e) // LCPProto.LCPProtoMalformed(uint256)
                mstore(0x20, at)
                revert(28, 36)
            }
            function readVarint(base, len, q, at) -> v, next {
                for { let shift := 0 } 1 { shift := add(shift, 7) } {
                    if or(iszero(lt(q, len)), eq(shift, 70)) { malformed(at) }
                    let c := byte(0, calldataload(add(base, q)))
                    v := or(v, shl(shift, and(c, 0x7f)))
                    q := add(q, 1)
                    if lt(c, 0x80) { break }
                }
                next := q
            }
            let base := b.offset
            let len := b.length
            signatures := mload(0x40)
            let count := 0
            let last := 0
            for { let p := 0 } lt(p, len) {} {
                let k, s := readVarint(base, len, p, p)
                let f := shr(3, k)
                if or(iszero(f), iszero(eq(and(k, 7), 2))) { malformed(p) }
                let n, start := readVarint(base, len, s, p)
                if gt(n, sub(len, start)) { malformed(p) }
                let e := add(start, n)
                if or(gt(f, 2), or(lt(f, last), and(eq(f, 1), eq(last, 1)))) {
                    mstore(0, 0x20c1a3f7) // LCPClientUnknownMessage()
                    revert(28, 4)
                }
                last := f
                switch f
                case 1 {
                    ms := start
                    me := e
                }
                default {
                    count := add(count, 1)
                    mstore(add(signatures, shl(5, count)), or(shl(128, add(base, start)), n))
                }
                p := e
            }
            mstore(signatures, count)
            mstore(0x40, add(signatures, shl(5, add(count, 1))))
        }
    }

    function _decodeRegisterMessage(bytes memory b) private pure returns (RegisterEnclaveKeyMessage memory m) {
        uint256 p;
        uint256 last;
        while (p < b.length) {
            (uint256 f, uint256 wt, uint256 q) = LCPProto.key(b, p);
            if (wt != 2 || f > 4 || f <= last) revert LCPClientUnknownMessage();
            last = f;
            (uint256 s, uint256 n, uint256 next) = LCPProto.lenDelim(b, q);
            bytes memory v = LCPProto.slice(b, s, n);
            if (f == 1) m.report = string(v);
            else if (f == 2) m.signature = v;
            else if (f == 3) m.signingCert = v;
            else m.operatorSignature = v;
            p = next;
        }
    }

    /// @dev The client state `Any`: {1 mrenclave, 2 key_expiration, 3 frozen (if set),
    /// 4 latest_height, then the stored tail (fields 5-10)}.
    function _encodeClientState(Client storage c) private view returns (bytes memory out) {
        uint64 revisionNumber = c.latestRevisionNumber;
        uint64 revisionHeight = c.latestRevisionHeight;
        uint64 keyExpiration = c.keyExpiration;
        bool frozen = c.frozen;
        bytes memory tail = c.hasTail ? c.tail : bytes("");
        uint256 heightLength =
            (revisionNumber == 0 ? 0 : 1 + _varintLength(revisionNumber)) + (revisionHeight == 0 ? 0 : 1 + _varintLength(revisionHeight));
        // 0a20 mrenclave, 10 key_expiration, [1801], 22 len height, tail
        uint256 valueLength = 35 + _varintLength(keyExpiration) + (frozen ? 2 : 0) + 2 + heightLength + tail.length;
        // Any{1: url (36 bytes), 2: value}
        out = new bytes(39 + _varintLength(valueLength) + valueLength);
        bytes memory url = bytes(CLIENT_STATE_URL);
        bytes32 mrenclave = c.mrenclave;
        uint256 p;
        assembly ("memory-safe") {
            p := add(out, 0x20)
            mstore8(p, 0x0a)
            mstore8(add(p, 1), 0x24)
            mcopy(add(p, 2), add(url, 0x20), 36)
            mstore8(add(p, 38), 0x12)
            p := add(p, 39)
        }
        p = _putVarint(p, valueLength);
        assembly ("memory-safe") {
            mstore8(p, 0x0a)
            mstore8(add(p, 1), 0x20)
            mstore(add(p, 2), mrenclave)
            mstore8(add(p, 34), 0x10)
            p := add(p, 35)
        }
        p = _putVarint(p, keyExpiration);
        assembly ("memory-safe") {
            if frozen {
                mstore8(p, 0x18)
                mstore8(add(p, 1), 0x01)
                p := add(p, 2)
            }
            mstore8(p, 0x22)
            mstore8(add(p, 1), heightLength)
            p := add(p, 2)
            if revisionNumber {
                mstore8(p, 0x08)
                p := add(p, 1)
            }
        }
        if (revisionNumber != 0) p = _putVarint(p, revisionNumber);
        if (revisionHeight != 0) {
            assembly ("memory-safe") {
                mstore8(p, 0x10)
                p := add(p, 1)
            }
            p = _putVarint(p, revisionHeight);
        }
        assembly ("memory-safe") {
            mcopy(p, add(tail, 0x20), mload(tail))
        }
    }

    /// @dev The consensus state `Any`: {1: url (39 bytes), 2: {1: state_id, 2: timestamp}};
    /// timestamp > 0.
    function _encodeConsensusState(bytes32 stateId, uint64 timestamp) private pure returns (bytes memory out) {
        uint256 tsLength = _varintLength(timestamp);
        out = new bytes(78 + tsLength);
        bytes memory url = bytes(CONSENSUS_STATE_URL);
        uint256 p;
        assembly ("memory-safe") {
            p := add(out, 0x20)
            mstore8(p, 0x0a)
            mstore8(add(p, 1), 0x27)
            mcopy(add(p, 2), add(url, 0x20), 39)
            mstore8(add(p, 41), 0x12)
            mstore8(add(p, 42), add(35, tsLength))
            mstore8(add(p, 43), 0x0a)
            mstore8(add(p, 44), 0x20)
            mstore(add(p, 45), stateId)
            mstore8(add(p, 77), 0x10)
            p := add(p, 78)
        }
        _putVarint(p, timestamp);
    }

    /// @dev The length of the varint of `v`.
    function _varintLength(uint256 v) private pure returns (uint256 n) {
        assembly ("memory-safe") {
            n := 1
            for {} gt(v, 0x7f) {} {
                v := shr(7, v)
                n := add(n, 1)
            }
        }
    }

    /// @dev Writes the varint of `v` at memory `p` (inside an allocated buffer); returns the
    /// position after it.
    function _putVarint(uint256 p, uint256 v) private pure returns (uint256) {
        assembly ("memory-safe") {
            for {} gt(v, 0x7f) {} {
                mstore8(p, or(and(v, 0x7f), 0x80))
                v := shr(7, v)
                p := add(p, 1)
            }
            mstore8(p, v)
            p := add(p, 1)
        }
        return p;
    }

    function _client(string calldata clientId) private view returns (Client storage c) {
        c = clients[clientId];
        if (c.keyExpiration == 0) revert LCPClientNotFound(clientId);
    }

    function _key(uint64 revisionNumber, uint64 revisionHeight) private pure returns (uint128) {
        return (uint128(revisionNumber) << 64) | revisionHeight;
    }
}
