// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

// Types, errors, events and the two plug-in interfaces (light clients, app modules) shared by
// the IBC handler modules. Connection and channel ends are kept in storage as these structs and
// committed as their ibc-go protobuf encodings (see ProtoEncoder.sol).

/// @notice ibc.core.client.v1.Height. Heights compare by revision number, then height.
struct Height {
    uint64 revisionNumber;
    uint64 revisionHeight;
}

/// @notice ibc.core.connection.v1.State.
enum ConnectionState {
    UNINITIALIZED,
    INIT,
    TRYOPEN,
    OPEN
}

/// @notice ibc.core.channel.v1.State (upgrade states FLUSHING/FLUSHCOMPLETE are not used).
enum ChannelState {
    UNINITIALIZED,
    INIT,
    TRYOPEN,
    OPEN,
    CLOSED
}

/// @notice ibc.core.channel.v1.Order.
enum ChannelOrder {
    NONE,
    UNORDERED,
    ORDERED
}

/// @notice A connection end as stored by the handler. Its only version is the ibc-go default
/// (identifier "1", features ORDER_ORDERED and ORDER_UNORDERED).
/// `lightClient` caches the client's light-client contract (state, delay and it share a slot).
struct ConnectionEnd {
    ConnectionState state;
    uint64 delayPeriod;
    address lightClient;
    string clientId;
    string counterpartyClientId;
    string counterpartyConnectionId;
    bytes counterpartyPrefix;
}

/// @notice A channel end as stored by the handler (one connection hop).
struct ChannelEnd {
    ChannelState state;
    ChannelOrder ordering;
    uint64 nextSequenceSend;
    uint64 nextSequenceRecv;
    uint64 nextSequenceAck;
    string connectionId;
    string counterpartyPortId;
    string counterpartyChannelId;
    string version;
}

/// @notice ibc.core.channel.v1.Packet. `timeoutTimestamp` is in nanoseconds since the Unix epoch.
struct Packet {
    uint64 sequence;
    string sourcePort;
    string sourceChannel;
    string destinationPort;
    string destinationChannel;
    bytes data;
    Height timeoutHeight;
    uint64 timeoutTimestamp;
}

/// @notice MsgCreateClient: the client state and consensus state are protobuf `Any` bytes that
/// the light client registered for `clientType` understands.
struct MsgCreateClient {
    string clientType;
    bytes clientState;
    bytes consensusState;
}

/// @notice MsgConnectionOpenInit.
struct MsgConnectionOpenInit {
    string clientId;
    string counterpartyClientId;
    bytes counterpartyPrefix;
    uint64 delayPeriod;
}

/// @notice MsgConnectionOpenTry: `proofInit` proves the counterparty's connection end in INIT.
struct MsgConnectionOpenTry {
    string clientId;
    string counterpartyClientId;
    string counterpartyConnectionId;
    bytes counterpartyPrefix;
    uint64 delayPeriod;
    bytes proofInit;
    Height proofHeight;
}

/// @notice MsgConnectionOpenAck: `proofTry` proves the counterparty's connection end in TRYOPEN.
struct MsgConnectionOpenAck {
    string connectionId;
    string counterpartyConnectionId;
    bytes proofTry;
    Height proofHeight;
}

/// @notice MsgConnectionOpenConfirm: `proofAck` proves the counterparty's connection end OPEN.
struct MsgConnectionOpenConfirm {
    string connectionId;
    bytes proofAck;
    Height proofHeight;
}

/// @notice MsgChannelOpenInit.
struct MsgChannelOpenInit {
    string portId;
    ChannelOrder ordering;
    string connectionId;
    string counterpartyPortId;
    string version;
}

/// @notice MsgChannelOpenTry: `proofInit` proves the counterparty's channel end in INIT.
struct MsgChannelOpenTry {
    string portId;
    ChannelOrder ordering;
    string connectionId;
    string counterpartyPortId;
    string counterpartyChannelId;
    string counterpartyVersion;
    bytes proofInit;
    Height proofHeight;
}

/// @notice MsgChannelOpenAck: `proofTry` proves the counterparty's channel end in TRYOPEN.
struct MsgChannelOpenAck {
    string portId;
    string channelId;
    string counterpartyChannelId;
    string counterpartyVersion;
    bytes proofTry;
    Height proofHeight;
}

/// @notice MsgChannelOpenConfirm / MsgChannelCloseConfirm: the proof shows the counterparty's
/// channel end OPEN (open confirm) or CLOSED (close confirm).
struct MsgChannelProof {
    string portId;
    string channelId;
    bytes proof;
    Height proofHeight;
}

/// @notice MsgRecvPacket: `proof` proves the packet commitment on the sending chain.
struct MsgRecvPacket {
    Packet packet;
    bytes proof;
    Height proofHeight;
}

/// @notice MsgAcknowledgement: `proof` proves the acknowledgement commitment on the receiving chain.
struct MsgAcknowledgement {
    Packet packet;
    bytes acknowledgement;
    bytes proof;
    Height proofHeight;
}

/// @notice MsgTimeout: `proof` proves the packet unreceived (unordered: receipt absent; ordered:
/// nextSequenceRecv == `nextSequenceRecv` <= packet sequence) at `proofHeight`.
struct MsgTimeout {
    Packet packet;
    bytes proof;
    Height proofHeight;
    uint64 nextSequenceRecv;
}

/// @notice MsgTimeoutOnClose: as MsgTimeout, plus `proofClose` of the counterparty channel CLOSED.
struct MsgTimeoutOnClose {
    Packet packet;
    bytes proofUnreceived;
    bytes proofClose;
    Height proofHeight;
    uint64 nextSequenceRecv;
}

/// @notice The arguments of the onChanOpenInit / onChanOpenTry app callbacks.
struct ChannelOpenCallback {
    ChannelOrder ordering;
    string connectionId;
    string portId;
    string channelId;
    string counterpartyPortId;
    string counterpartyChannelId;
    string version;
}

/// @notice A consensus state a light client stored during an update, to be committed.
struct ConsensusStateUpdate {
    Height height;
    bytes consensusState;
}

/// @title ILightClient: a light-client contract, registered with the handler for one client type
/// and holding the state of every client of that type. Only the handler calls its mutators.
interface ILightClient {
    /// @notice Creates client `clientId` from protobuf `Any` bytes; returns its latest height.
    function initializeClient(string calldata clientId, bytes calldata clientState, bytes calldata consensusState)
        external
        returns (Height memory latestHeight);

    /// @notice Verifies `clientMessage` and updates client `clientId`; returns the new client
    /// state bytes and every consensus state stored (the handler commits them).
    function updateClient(string calldata clientId, bytes calldata clientMessage)
        external
        returns (bytes memory clientState, ConsensusStateUpdate[] memory consensusStates);

    /// @notice The timestamp (ns) of the consensus state of `clientId` at `height`; reverts if none.
    function getTimestampAtHeight(string calldata clientId, Height calldata height) external view returns (uint64);

    /// @notice The latest height of `clientId`.
    function getLatestHeight(string calldata clientId) external view returns (Height memory);

    /// @notice True iff `proof` shows `value` stored at `prefix`/`path` on the counterparty at `height`.
    function verifyMembership(
        string calldata clientId,
        Height calldata height,
        uint64 delayTimePeriod,
        uint64 delayBlockPeriod,
        bytes calldata proof,
        bytes calldata prefix,
        bytes calldata path,
        bytes calldata value
    ) external view returns (bool);

    /// @notice True iff `proof` shows nothing stored at `prefix`/`path` on the counterparty at `height`.
    function verifyNonMembership(
        string calldata clientId,
        Height calldata height,
        uint64 delayTimePeriod,
        uint64 delayBlockPeriod,
        bytes calldata proof,
        bytes calldata prefix,
        bytes calldata path
    ) external view returns (bool);
}

/// @title IIBCModule: the callbacks of an app contract bound to a port (ICS-26). A callback that
/// reverts aborts the handshake step or packet operation.
interface IIBCModule {
    /// @notice A channel is opened from this side (`c.version` is the proposed version, may be
    /// empty; `c.counterpartyChannelId` is empty); returns the version the app accepts.
    function onChanOpenInit(ChannelOpenCallback calldata c) external returns (string memory);

    /// @notice The counterparty opened a channel to this port (`c.version` is the counterparty's
    /// version); returns this side's version.
    function onChanOpenTry(ChannelOpenCallback calldata c) external returns (string memory);

    /// @notice The counterparty accepted the channel with `counterpartyVersion`.
    function onChanOpenAck(
        string calldata portId,
        string calldata channelId,
        string calldata counterpartyChannelId,
        string calldata counterpartyVersion
    ) external;

    /// @notice The channel is open on both sides.
    function onChanOpenConfirm(string calldata portId, string calldata channelId) external;

    /// @notice The app closes the channel (only the app bound to the port may start a close).
    function onChanCloseInit(string calldata portId, string calldata channelId) external;

    /// @notice The counterparty closed the channel.
    function onChanCloseConfirm(string calldata portId, string calldata channelId) external;

    /// @notice A packet arrived; a non-empty return is written as its acknowledgement, an empty
    /// one means the app acknowledges later through `writeAcknowledgement`.
    function onRecvPacket(Packet calldata packet, address relayer) external returns (bytes memory);

    /// @notice The counterparty acknowledged a packet this app sent.
    function onAcknowledgementPacket(Packet calldata packet, bytes calldata acknowledgement, address relayer)
        external;

    /// @notice A packet this app sent timed out (or its channel closed) unreceived.
    function onTimeoutPacket(Packet calldata packet, address relayer) external;
}

// ---- errors -------------------------------------------------------------------------------

/// @notice The caller is not the handler's owner.
error IBCNotOwner(address caller);
/// @notice A module was called directly instead of through the handler (delegatecall).
error IBCNotDelegateCall();
/// @notice The handler has no module for this function selector.
error IBCUnknownSelector(bytes4 selector);
/// @notice Element `index` of a multicall reverted with `reason` (its revert data); nothing of
/// the multicall was kept.
error IBCMulticallFailed(uint256 index, bytes reason);
/// @notice Element `index` of a multicall is itself a multicall (refused: one level only).
error IBCMulticallNested(uint256 index);
/// @notice No light client is registered for `clientType`.
error IBCClientTypeNotRegistered(string clientType);
/// @notice A light client is already registered for `clientType`.
error IBCClientTypeAlreadyRegistered(string clientType);
/// @notice Invalid client type (empty, too long, or with characters outside [a-z0-9-]).
error IBCInvalidClientType(string clientType);
/// @notice No client with this identifier.
error IBCClientNotFound(string clientId);
/// @notice The light client refused to create the client.
error IBCClientCreateFailed(string clientId);
/// @notice A proof did not verify against the client's consensus state (wrong proof).
error IBCProofVerificationFailed(string path);
/// @notice No connection with this identifier.
error IBCConnectionNotFound(string connectionId);
/// @notice A connection handshake step was sent while the connection end was in another state.
error IBCConnectionStateUnexpected(string connectionId, ConnectionState actual, ConnectionState expected);
/// @notice The counterparty's commitment prefix is empty.
error IBCInvalidCounterparty();
/// @notice Not an ICS-24 identifier (length, or characters outside [a-zA-Z0-9._+#[]<>-]).
error IBCInvalidIdentifier(string identifier);
/// @notice No channel with this port and identifier.
error IBCChannelNotFound(string portId, string channelId);
/// @notice A channel handshake step or packet operation was sent while the channel end was in another state.
error IBCChannelStateUnexpected(string portId, string channelId, ChannelState actual, ChannelState expected);
/// @notice The channel ordering is neither ORDERED nor UNORDERED.
error IBCInvalidChannelOrdering();
/// @notice No app is bound to `portId`.
error IBCPortNotBound(string portId);
/// @notice `portId` is already bound.
error IBCPortAlreadyBound(string portId);
/// @notice `caller` is not the app bound to `portId` (it may not send or close on its channels).
error IBCPortNotOwned(string portId, address caller);
/// @notice Invalid port identifier (empty, too long, or with characters outside [a-zA-Z0-9._+#-[]<>]).
error IBCInvalidPortId(string portId);
/// @notice The packet's source or destination does not match the channel's counterparty.
error IBCPacketCounterpartyMismatch();
/// @notice A packet without any timeout (height and timestamp both zero).
error IBCPacketTimeoutMissing();
/// @notice The packet was already received (replay).
error IBCPacketAlreadyReceived(uint64 sequence);
/// @notice An ordered channel received `sequence` while it expected `expected`.
error IBCPacketSequenceOutOfOrder(uint64 expected, uint64 sequence);
/// @notice The packet's timeout height or timestamp has passed on this chain (no receive after timeout).
error IBCPacketTimedOut(uint64 sequence);
/// @notice No commitment for this packet: unknown, already acknowledged, or already timed out.
error IBCPacketCommitmentNotFound(uint64 sequence);
/// @notice The packet differs from the one committed when it was sent.
error IBCPacketCommitmentMismatch(uint64 sequence);
/// @notice A timeout was submitted for a packet that has not timed out at the proof height.
error IBCPacketNotTimedOut(uint64 sequence);
/// @notice The counterparty's nextSequenceRecv shows the packet received (no timeout possible).
error IBCPacketReceivedOnCounterparty(uint64 sequence, uint64 nextSequenceRecv);
/// @notice No receipt for this packet: an acknowledgement cannot be written.
error IBCPacketReceiptNotFound(uint64 sequence);
/// @notice An acknowledgement for this packet was already written.
error IBCAcknowledgementAlreadyWritten(uint64 sequence);
/// @notice An empty acknowledgement cannot be written.
error IBCAcknowledgementEmpty();

// ---- events (one per step, with what a relayer needs for the next datagram) -----------------

/// @notice A light client contract was registered for `clientType`.
event RegisterClient(string clientType, address lightClient);
/// @notice A client was created; the client state and consensus state are in the create message.
event CreateClient(string clientId, string clientType, Height latestHeight);
/// @notice A client was updated with `clientMessage`; `heights` lists the consensus states stored.
event UpdateClient(string clientId, bytes clientMessage, Height[] heights);
/// @notice An app was bound to a port.
event BindPort(string portId, address app);
/// @notice Connection handshake steps: the identifiers both ends need for the next step.
event ConnectionOpenInit(string connectionId, string clientId, string counterpartyClientId, uint64 delayPeriod);
/// @notice See ConnectionOpenInit.
event ConnectionOpenTry(
    string connectionId, string clientId, string counterpartyClientId, string counterpartyConnectionId
);
/// @notice See ConnectionOpenInit.
event ConnectionOpenAck(
    string connectionId, string clientId, string counterpartyClientId, string counterpartyConnectionId
);
/// @notice See ConnectionOpenInit.
event ConnectionOpenConfirm(
    string connectionId, string clientId, string counterpartyClientId, string counterpartyConnectionId
);
/// @notice Channel handshake steps: the identifiers, ordering and version both ends need.
event ChannelOpenInit(
    string portId, string channelId, ChannelOrder ordering, string connectionId, string counterpartyPortId, string version
);
/// @notice See ChannelOpenInit.
event ChannelOpenTry(
    string portId,
    string channelId,
    ChannelOrder ordering,
    string connectionId,
    string counterpartyPortId,
    string counterpartyChannelId,
    string version
);
/// @notice See ChannelOpenInit.
event ChannelOpenAck(
    string portId, string channelId, string connectionId, string counterpartyPortId, string counterpartyChannelId
);
/// @notice See ChannelOpenInit.
event ChannelOpenConfirm(
    string portId, string channelId, string connectionId, string counterpartyPortId, string counterpartyChannelId
);
/// @notice The channel was closed by its app (the counterparty is to confirm).
event ChannelCloseInit(
    string portId, string channelId, string connectionId, string counterpartyPortId, string counterpartyChannelId
);
/// @notice The channel was closed after the counterparty closed it.
event ChannelCloseConfirm(
    string portId, string channelId, string connectionId, string counterpartyPortId, string counterpartyChannelId
);
/// @notice A packet was sent (the whole packet, to build MsgRecvPacket or MsgTimeout).
event SendPacket(Packet packet);
/// @notice A packet was received (the whole packet is in WriteAcknowledgement, or in the
/// sender's SendPacket event for an asynchronous ack).
event RecvPacket(string destinationPort, string destinationChannel, uint64 sequence);
/// @notice An acknowledgement was written (with the packet, to build MsgAcknowledgement).
event WriteAcknowledgement(Packet packet, bytes acknowledgement);
/// @notice A packet's acknowledgement was processed; its commitment is deleted (the end of its
/// life: no further datagram).
event AcknowledgePacket(string sourcePort, string sourceChannel, uint64 sequence);
/// @notice A packet timed out (or its channel closed) unreceived; its commitment is deleted.
event TimeoutPacket(string sourcePort, string sourceChannel, uint64 sequence);
