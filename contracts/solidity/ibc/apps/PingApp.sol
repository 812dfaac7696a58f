// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "../IBCTypes.sol";

/// @notice The packet functions of IBCHandler an app calls (served by the IBCChannelPacket and
/// IBCChannelHandshake modules at the handler's address).
interface IIBCHandlerApp {
    function sendPacket(
        string calldata sourcePort,
        string calldata sourceChannel,
        Height calldata timeoutHeight,
        uint64 timeoutTimestamp,
        bytes calldata data
    ) external returns (uint64);

    function writeAcknowledgement(Packet calldata packet, bytes calldata acknowledgement) external;

    function channelCloseInit(string calldata portId, string calldata channelId) external;
}

/// @title PingApp: the ping/echo IBC test app. Its owner sends pings on a channel of its port;
/// on receive it echoes the data back as the acknowledgement ("echo:" ‖ data), or, in async
/// mode, keeps the packet and acknowledges when the owner says so. It counts the packets
/// received, acknowledgements and timeouts, and emits an event for each (with the data / ack). Channel versions must be "ping-1".
contract PingApp is IIBCModule {
    /// @notice The channel version this app speaks.
    string public constant VERSION = "ping-1";

    /// @notice The IBC handler whose callbacks this app accepts.
    address public immutable handler;
    /// @notice The account allowed to send, close channels and write async acks.
    address public immutable owner;
    /// @notice The port this app is bound to on the handler.
    string public portId;
    /// @notice When true, received packets are acknowledged later by `acknowledge`.
    bool public asyncAcks;

    /// @notice Counters of packets received, acknowledgements and timeouts processed.
    uint64 public received;
    uint64 public acknowledged;
    uint64 public timedOut;
    /// @notice Packets received in async mode, by sequence, waiting for `acknowledge`.
    mapping(uint64 => bytes) public pendingPackets;

    /// @notice Not the handler / not the owner.
    error PingNotHandler(address caller);
    error PingNotOwner(address caller);
    /// @notice The proposed channel version is not "ping-1".
    error PingBadVersion(string version);
    /// @notice No pending packet with this sequence.
    error PingNoPendingPacket(uint64 sequence);

    /// @notice A packet was received / an ack processed / a timeout processed.
    event PingReceived(uint64 sequence, bytes data);
    event PingAcknowledged(uint64 sequence, bytes acknowledgement);
    event PingTimedOut(uint64 sequence);

    constructor(address handler_, string memory portId_) {
        handler = handler_;
        owner = msg.sender;
        portId = portId_;
    }

    modifier onlyHandler() {
        if (msg.sender != handler) revert PingNotHandler(msg.sender);
        _;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert PingNotOwner(msg.sender);
        _;
    }

    /// @notice Sends `data` on `channelId` of this app's port; returns the packet sequence.
    function ping(string calldata channelId, bytes calldata data, Height calldata timeoutHeight, uint64 timeoutTimestamp)
        external
        onlyOwner
        returns (uint64)
    {
        return IIBCHandlerApp(handler).sendPacket(portId, channelId, timeoutHeight, timeoutTimestamp, data);
    }

    /// @notice Switches between synchronous echo acks and asynchronous acks.
    function setAsyncAcks(bool on) external onlyOwner {
        asyncAcks = on;
    }

    /// @notice Writes the acknowledgement `ack` of a packet received in async mode.
    function acknowledge(Packet calldata packet, bytes calldata ack) external onlyOwner {
        if (pendingPackets[packet.sequence].length == 0) revert PingNoPendingPacket(packet.sequence);
        delete pendingPackets[packet.sequence];
        IIBCHandlerApp(handler).writeAcknowledgement(packet, ack);
    }

    /// @notice Closes `channelId` of this app's port.
    function closeChannel(string calldata channelId) external onlyOwner {
        IIBCHandlerApp(handler).channelCloseInit(portId, channelId);
    }

    function onChanOpenInit(ChannelOpenCallback calldata c) external view onlyHandler returns (string memory) {
        if (bytes(c.version).length != 0) _checkVersion(c.version);
        return VERSION;
    }

    function onChanOpenTry(ChannelOpenCallback calldata c) external view onlyHandler returns (string memory) {
        _checkVersion(c.version);
        return VERSION;
    }

    function onChanOpenAck(string calldata, string calldata, string calldata, string calldata counterpartyVersion)
        external
        view
        onlyHandler
    {
        _checkVersion(counterpartyVersion);
    }

    function _checkVersion(string calldata version) private pure {
        if (keccak256(bytes(version)) != keccak256(bytes(VERSION))) revert PingBadVersion(version);
    }

    function onChanOpenConfirm(string calldata, string calldata) external view onlyHandler {}

    function onChanCloseInit(string calldata, string calldata) external view onlyHandler {}

    function onChanCloseConfirm(string calldata, string calldata) external view onlyHandler {}

    function onRecvPacket(Packet calldata packet, address) external onlyHandler returns (bytes memory) {
        received++;
        emit PingReceived(packet.sequence, packet.data);
        if (asyncAcks) {
            pendingPackets[packet.sequence] = abi.encodePacked(bytes1(0x01), packet.data);
            return "";
        }
        return abi.encodePacked("echo:", packet.data);
    }

    function onAcknowledgementPacket(Packet calldata packet, bytes calldata acknowledgement, address)
        external
        onlyHandler
    {
        acknowledged++;
        emit PingAcknowledged(packet.sequence, acknowledgement);
    }

    function onTimeoutPacket(Packet calldata packet, address) external onlyHandler {
        timedOut++;
        emit PingTimedOut(packet.sequence);
    }
}
