// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./IBCTypes.sol";
import {IBCStore} from "./IBCStore.sol";
import {ProtoEncoder} from "./ProtoEncoder.sol";

/// @title IBCChannelHandshake: the ICS-04 channel handshake (Init, Try, Ack, Confirm) and
/// closing (CloseInit by the port's app, CloseConfirm on proof of the counterparty's close),
/// with the ICS-26 callbacks of the app bound to the port. Each step checks the counterparty's
/// channel end, rebuilt as the Channel protobuf it must have committed, through the client of
/// the channel's connection. Runs by delegatecall from IBCHandler.
contract IBCChannelHandshake is IBCStore {
    /// @notice Opens a channel from this side (INIT) on `connectionId` for the app on `portId`.
    function channelOpenInit(MsgChannelOpenInit calldata m) external onlyDelegated returns (string memory channelId) {
        IIBCModule app = _app(m.portId);
        _checkOrdering(m.ordering);
        _connection(m.connectionId);
        _checkIdentifier(m.counterpartyPortId, 2, 128);
        channelId = _newChannelId();
        ChannelEnd storage ch = _store().channels[m.portId][channelId];
        ch.state = ChannelState.INIT;
        ch.ordering = m.ordering;
        ch.connectionId = m.connectionId;
        ch.counterpartyPortId = m.counterpartyPortId;
        _initSequences(m.portId, channelId, ch);
        string memory version = app.onChanOpenInit(
            ChannelOpenCallback(m.ordering, m.connectionId, m.portId, channelId, m.counterpartyPortId, "", m.version)
        );
        ch.version = version;
        _commitChannel(m.portId, channelId, ch);
        emit ChannelOpenInit(m.portId, channelId, m.ordering, m.connectionId, m.counterpartyPortId, version);
    }

    /// @notice Answers the counterparty's Init: verifies its channel end in INIT and creates this
    /// end in TRYOPEN.
    function channelOpenTry(MsgChannelOpenTry calldata m) external onlyDelegated returns (string memory channelId) {
        _checkOrdering(m.ordering);
        _verifyCounterpartyInit(m);
        channelId = _newChannelId();
        ChannelEnd storage ch = _store().channels[m.portId][channelId];
        ch.state = ChannelState.TRYOPEN;
        ch.ordering = m.ordering;
        ch.connectionId = m.connectionId;
        ch.counterpartyPortId = m.counterpartyPortId;
        ch.counterpartyChannelId = m.counterpartyChannelId;
        _initSequences(m.portId, channelId, ch);
        string memory version = _onTry(m, channelId);
        ch.version = version;
        _commitChannel(m.portId, channelId, ch);
        emit ChannelOpenTry(
            m.portId,
            channelId,
            m.ordering,
            m.connectionId,
            m.counterpartyPortId,
            m.counterpartyChannelId,
            version
        );
    }

    function _verifyCounterpartyInit(MsgChannelOpenTry calldata m) private view {
        ConnectionEnd storage conn = _openConnection(m.connectionId);
        _checkIdentifier(m.counterpartyPortId, 2, 128);
        _checkIdentifier(m.counterpartyChannelId, 8, 64);
        bytes memory expected = ProtoEncoder.channel(
            ChannelState.INIT, m.ordering, m.portId, "", conn.counterpartyConnectionId, m.counterpartyVersion
        );
        _verifyMembership(
            conn, m.proofHeight, m.proofInit, _channelPath(m.counterpartyPortId, m.counterpartyChannelId), expected
        );
    }

    function _onTry(MsgChannelOpenTry calldata m, string memory channelId) private returns (string memory) {
        return _app(m.portId).onChanOpenTry(
            ChannelOpenCallback(
                m.ordering,
                m.connectionId,
                m.portId,
                channelId,
                m.counterpartyPortId,
                m.counterpartyChannelId,
                m.counterpartyVersion
            )
        );
    }

    /// @notice Completes Init: verifies the counterparty's end in TRYOPEN and opens this end.
    function channelOpenAck(MsgChannelOpenAck calldata m) external onlyDelegated {
        ChannelEnd storage ch = _channel(m.portId, m.channelId, ChannelState.INIT);
        ConnectionEnd storage conn = _openConnection(ch.connectionId);
        _checkIdentifier(m.counterpartyChannelId, 8, 64);
        bytes memory expected = ProtoEncoder.channel(
            ChannelState.TRYOPEN,
            ch.ordering,
            m.portId,
            m.channelId,
            conn.counterpartyConnectionId,
            m.counterpartyVersion
        );
        string memory cpPort = ch.counterpartyPortId;
        _verifyMembership(conn, m.proofHeight, m.proofTry, _channelPath(cpPort, m.counterpartyChannelId), expected);
        ch.state = ChannelState.OPEN;
        ch.version = m.counterpartyVersion;
        ch.counterpartyChannelId = m.counterpartyChannelId;
        _commitChannel(m.portId, m.channelId, ch);
        _app(m.portId).onChanOpenAck(m.portId, m.channelId, m.counterpartyChannelId, m.counterpartyVersion);
        emit ChannelOpenAck(m.portId, m.channelId, ch.connectionId, cpPort, m.counterpartyChannelId);
    }

    /// @notice Completes Try: verifies the counterparty's end OPEN and opens this end.
    function channelOpenConfirm(MsgChannelProof calldata m) external onlyDelegated {
        ChannelEnd storage ch = _channel(m.portId, m.channelId, ChannelState.TRYOPEN);
        (string memory cpPort, string memory cpChannel) = _verifyCounterpartyChannel(m, ch, ChannelState.OPEN);
        ch.state = ChannelState.OPEN;
        _commitChannel(m.portId, m.channelId, ch);
        _app(m.portId).onChanOpenConfirm(m.portId, m.channelId);
        emit ChannelOpenConfirm(m.portId, m.channelId, ch.connectionId, cpPort, cpChannel);
    }

    /// @notice Closes an open channel; only the app bound to the port may close its channels.
    function channelCloseInit(string calldata portId, string calldata channelId) external onlyDelegated {
        IIBCModule app = _app(portId);
        if (msg.sender != address(app)) revert IBCPortNotOwned(portId, msg.sender);
        ChannelEnd storage ch = _channel(portId, channelId, ChannelState.OPEN);
        _openConnection(ch.connectionId);
        ch.state = ChannelState.CLOSED;
        _commitChannel(portId, channelId, ch);
        app.onChanCloseInit(portId, channelId);
        emit ChannelCloseInit(portId, channelId, ch.connectionId, ch.counterpartyPortId, ch.counterpartyChannelId);
    }

    /// @notice Closes this end after verifying the counterparty's end CLOSED.
    function channelCloseConfirm(MsgChannelProof calldata m) external onlyDelegated {
        ChannelEnd storage ch = _store().channels[m.portId][m.channelId];
        ChannelState state = ch.state;
        if (state == ChannelState.UNINITIALIZED) revert IBCChannelNotFound(m.portId, m.channelId);
        if (state == ChannelState.CLOSED) {
            revert IBCChannelStateUnexpected(m.portId, m.channelId, state, ChannelState.OPEN);
        }
        (string memory cpPort, string memory cpChannel) = _verifyCounterpartyChannel(m, ch, ChannelState.CLOSED);
        ch.state = ChannelState.CLOSED;
        _commitChannel(m.portId, m.channelId, ch);
        _app(m.portId).onChanCloseConfirm(m.portId, m.channelId);
        emit ChannelCloseConfirm(m.portId, m.channelId, ch.connectionId, cpPort, cpChannel);
    }

    /// Verifies the counterparty's channel end in `state`, mirroring this end.
    function _verifyCounterpartyChannel(MsgChannelProof calldata m, ChannelEnd storage ch, ChannelState state)
        private
        view
        returns (string memory cpPort, string memory cpChannel)
    {
        ConnectionEnd storage conn = _openConnection(ch.connectionId);
        cpPort = ch.counterpartyPortId;
        cpChannel = ch.counterpartyChannelId;
        bytes memory expected = ProtoEncoder.channel(
            state, ch.ordering, m.portId, m.channelId, conn.counterpartyConnectionId, ch.version
        );
        _verifyMembership(conn, m.proofHeight, m.proof, _channelPath(cpPort, cpChannel), expected);
    }

    function _checkOrdering(ChannelOrder ordering) private pure {
        if (ordering != ChannelOrder.ORDERED && ordering != ChannelOrder.UNORDERED) revert IBCInvalidChannelOrdering();
    }

    function _newChannelId() private returns (string memory) {
        return string(abi.encodePacked("channel-", _itoa(_store().nextChannelSequence++)));
    }

    /// Sequences start at 1; an ordered channel commits nextSequenceRecv so the counterparty can
    /// prove a timeout.
    function _initSequences(string calldata portId, string memory channelId, ChannelEnd storage ch) private {
        ch.nextSequenceSend = 1;
        ch.nextSequenceRecv = 1;
        ch.nextSequenceAck = 1;
        if (ch.ordering == ChannelOrder.ORDERED) {
            _commit(_nextSequenceRecvPath(portId, channelId), abi.encodePacked(uint64(1)));
        }
    }
}
