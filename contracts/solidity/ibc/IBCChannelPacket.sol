// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./IBCTypes.sol";
import {IBCStore} from "./IBCStore.sol";
import {ProtoEncoder} from "./ProtoEncoder.sol";

/// @title IBCChannelPacket: ICS-04 packets: send (only the app bound to the source port),
/// receive (replay, ordering and timeout checks, receipts, synchronous acknowledgements),
/// asynchronous acknowledgements, acknowledge, timeout by height or timestamp, and
/// timeout-on-close. Runs by delegatecall from IBCHandler.
contract IBCChannelPacket is IBCStore {
    /// @notice Sends `data` on an open channel of `sourcePort`; only the port's app may call.
    /// `timeoutTimestamp` is in nanoseconds; at least one of the two timeouts must be set.
    function sendPacket(
        string calldata sourcePort,
        string calldata sourceChannel,
        Height calldata timeoutHeight,
        uint64 timeoutTimestamp,
        bytes calldata data
    ) external onlyDelegated returns (uint64 sequence) {
        if (timeoutHeight.revisionHeight == 0 && timeoutTimestamp == 0) revert IBCPacketTimeoutMissing();
        Packet memory p;
        p.sourcePort = sourcePort;
        p.sourceChannel = sourceChannel;
        p.timeoutHeight = timeoutHeight;
        p.timeoutTimestamp = timeoutTimestamp;
        p.data = data;
        sequence = _send(p);
    }

    function _send(Packet memory p) private returns (uint64 sequence) {
        Store storage s = _store();
        if (msg.sender != s.portApps[p.sourcePort]) revert IBCPortNotOwned(p.sourcePort, msg.sender);
        ChannelEnd storage ch = s.channels[p.sourcePort][p.sourceChannel];
        if (ch.state != ChannelState.OPEN) {
            if (ch.state == ChannelState.UNINITIALIZED) revert IBCChannelNotFound(p.sourcePort, p.sourceChannel);
            revert IBCChannelStateUnexpected(p.sourcePort, p.sourceChannel, ch.state, ChannelState.OPEN);
        }
        sequence = ch.nextSequenceSend;
        ch.nextSequenceSend = sequence + 1;
        p.sequence = sequence;
        p.destinationPort = ch.counterpartyPortId;
        p.destinationChannel = ch.counterpartyChannelId;
        bytes32 commitment = sha256(
            abi.encodePacked(
                p.timeoutTimestamp, p.timeoutHeight.revisionNumber, p.timeoutHeight.revisionHeight, sha256(p.data)
            )
        );
        s.commitments[keccak256(_packetPath("commitments", p.sourcePort, p.sourceChannel, sequence))] =
            keccak256(abi.encodePacked(commitment));
        emit SendPacket(p);
    }

    /// @notice Receives a packet proven committed on the counterparty, hands it to the port's
    /// app and writes the app's acknowledgement if it returns one.
    function recvPacket(MsgRecvPacket calldata m) external onlyDelegated {
        Packet calldata p = m.packet;
        Store storage s = _store();
        ChannelEnd storage ch = _channel(p.destinationPort, p.destinationChannel, ChannelState.OPEN);
        _checkCounterparty(ch, p.sourcePort, p.sourceChannel);
        ConnectionEnd storage conn = _openConnection(ch.connectionId);
        if (
            (p.timeoutHeight.revisionNumber == 0 && p.timeoutHeight.revisionHeight != 0
                    && block.number >= p.timeoutHeight.revisionHeight)
                || (p.timeoutTimestamp != 0 && block.timestamp * 1e9 >= p.timeoutTimestamp)
        ) revert IBCPacketTimedOut(p.sequence);
        _verifyMembership(
            conn,
            m.proofHeight,
            m.proof,
            _packetPath("commitments", p.sourcePort, p.sourceChannel, p.sequence),
            abi.encodePacked(_packetCommitment(p))
        );
        if (ch.ordering == ChannelOrder.ORDERED) {
            uint64 expected = ch.nextSequenceRecv;
            if (p.sequence < expected) revert IBCPacketAlreadyReceived(p.sequence);
            if (p.sequence != expected) revert IBCPacketSequenceOutOfOrder(expected, p.sequence);
            ch.nextSequenceRecv = expected + 1;
            _commit(
                _nextSequenceRecvPath(p.destinationPort, p.destinationChannel), abi.encodePacked(uint64(expected + 1))
            );
        } else {
            bytes32 receipt = keccak256(_packetPath("receipts", p.destinationPort, p.destinationChannel, p.sequence));
            if (s.commitments[receipt] != bytes32(0)) revert IBCPacketAlreadyReceived(p.sequence);
            s.commitments[receipt] = keccak256(RECEIPT);
        }
        bytes memory ack = _app(p.destinationPort).onRecvPacket(p, msg.sender);
        if (ack.length != 0) _writeAck(s, p, ack);
        emit RecvPacket(p.destinationPort, p.destinationChannel, p.sequence);
    }

    /// @notice Writes the acknowledgement of a received packet later (asynchronous ack); only the
    /// app bound to the destination port may call, once per packet.
    function writeAcknowledgement(Packet calldata p, bytes calldata acknowledgement) external onlyDelegated {
        Store storage s = _store();
        if (msg.sender != s.portApps[p.destinationPort]) revert IBCPortNotOwned(p.destinationPort, msg.sender);
        ChannelEnd storage ch = _channel(p.destinationPort, p.destinationChannel, ChannelState.OPEN);
        _checkCounterparty(ch, p.sourcePort, p.sourceChannel);
        bool received = ch.ordering == ChannelOrder.ORDERED
            ? p.sequence < ch.nextSequenceRecv
            : s.commitments[keccak256(_packetPath("receipts", p.destinationPort, p.destinationChannel, p.sequence))]
                != bytes32(0);
        if (!received) revert IBCPacketReceiptNotFound(p.sequence);
        _writeAck(s, p, acknowledgement);
    }

    /// @notice Processes the counterparty's acknowledgement of a packet sent here: checks the
    /// packet against its commitment, verifies the ack commitment, deletes the packet commitment
    /// and calls the app.
    function acknowledgePacket(MsgAcknowledgement calldata m) external onlyDelegated {
        Packet calldata p = m.packet;
        Store storage s = _store();
        ChannelEnd storage ch = _channel(p.sourcePort, p.sourceChannel, ChannelState.OPEN);
        _checkCounterparty(ch, p.destinationPort, p.destinationChannel);
        ConnectionEnd storage conn = _openConnection(ch.connectionId);
        bytes32 key = _checkCommitment(s, p);
        _verifyMembership(
            conn,
            m.proofHeight,
            m.proof,
            _packetPath("acks", p.destinationPort, p.destinationChannel, p.sequence),
            abi.encodePacked(sha256(m.acknowledgement))
        );
        if (ch.ordering == ChannelOrder.ORDERED) {
            uint64 expected = ch.nextSequenceAck;
            if (p.sequence != expected) revert IBCPacketSequenceOutOfOrder(expected, p.sequence);
            ch.nextSequenceAck = expected + 1;
        }
        delete s.commitments[key];
        _app(p.sourcePort).onAcknowledgementPacket(p, m.acknowledgement, msg.sender);
        emit AcknowledgePacket(p.sourcePort, p.sourceChannel, p.sequence);
    }

    /// @notice Times out a packet sent here: its timeout height or timestamp passed on the
    /// counterparty at the proof height and the proof shows it unreceived there. An ordered
    /// channel closes.
    function timeoutPacket(MsgTimeout calldata m) external onlyDelegated {
        Packet calldata p = m.packet;
        Store storage s = _store();
        ChannelEnd storage ch = _channel(p.sourcePort, p.sourceChannel, ChannelState.OPEN);
        _checkCounterparty(ch, p.destinationPort, p.destinationChannel);
        ConnectionEnd storage conn = _connection(ch.connectionId);
        bytes32 key = _checkCommitment(s, p);
        bool heightPassed = p.timeoutHeight.revisionHeight != 0 && !_lt(m.proofHeight, p.timeoutHeight);
        if (!heightPassed) {
            if (
                p.timeoutTimestamp == 0
                    || ILightClient(conn.lightClient).getTimestampAtHeight(conn.clientId, m.proofHeight) < p.timeoutTimestamp
            ) revert IBCPacketNotTimedOut(p.sequence);
        }
        _verifyUnreceived(conn, ch, p, m.proof, m.proofHeight, m.nextSequenceRecv);
        _timedOut(s, ch, key, p);
    }

    /// @notice Times out a packet whose destination channel was closed unreceived (proven CLOSED
    /// on the counterparty), whatever its timeout.
    function timeoutOnClose(MsgTimeoutOnClose calldata m) external onlyDelegated {
        Packet calldata p = m.packet;
        Store storage s = _store();
        ChannelEnd storage ch = s.channels[p.sourcePort][p.sourceChannel];
        if (ch.state == ChannelState.UNINITIALIZED) revert IBCChannelNotFound(p.sourcePort, p.sourceChannel);
        _checkCounterparty(ch, p.destinationPort, p.destinationChannel);
        ConnectionEnd storage conn = _connection(ch.connectionId);
        bytes32 key = _checkCommitment(s, p);
        bytes memory expected = ProtoEncoder.channel(
            ChannelState.CLOSED, ch.ordering, p.sourcePort, p.sourceChannel, conn.counterpartyConnectionId, ch.version
        );
        _verifyMembership(
            conn, m.proofHeight, m.proofClose, _channelPath(p.destinationPort, p.destinationChannel), expected
        );
        _verifyUnreceived(conn, ch, p, m.proofUnreceived, m.proofHeight, m.nextSequenceRecv);
        _timedOut(s, ch, key, p);
    }

    function _writeAck(Store storage s, Packet calldata p, bytes memory ack) private {
        if (ack.length == 0) revert IBCAcknowledgementEmpty();
        bytes32 key = keccak256(_packetPath("acks", p.destinationPort, p.destinationChannel, p.sequence));
        if (s.commitments[key] != bytes32(0)) revert IBCAcknowledgementAlreadyWritten(p.sequence);
        s.commitments[key] = keccak256(abi.encodePacked(sha256(ack)));
        emit WriteAcknowledgement(p, ack);
    }

    /// The packet's commitment key, after checking the stored commitment is this packet's.
    function _checkCommitment(Store storage s, Packet calldata p) private view returns (bytes32 key) {
        key = keccak256(_packetPath("commitments", p.sourcePort, p.sourceChannel, p.sequence));
        bytes32 stored = s.commitments[key];
        if (stored == bytes32(0)) revert IBCPacketCommitmentNotFound(p.sequence);
        if (stored != keccak256(abi.encodePacked(_packetCommitment(p)))) {
            revert IBCPacketCommitmentMismatch(p.sequence);
        }
    }

    function _verifyUnreceived(
        ConnectionEnd storage conn,
        ChannelEnd storage ch,
        Packet calldata p,
        bytes calldata proof,
        Height calldata proofHeight,
        uint64 nextSequenceRecv
    ) private view {
        if (ch.ordering == ChannelOrder.ORDERED) {
            if (nextSequenceRecv > p.sequence) revert IBCPacketReceivedOnCounterparty(p.sequence, nextSequenceRecv);
            _verifyMembership(
                conn,
                proofHeight,
                proof,
                _nextSequenceRecvPath(p.destinationPort, p.destinationChannel),
                abi.encodePacked(nextSequenceRecv)
            );
        } else {
            _verifyNonMembership(
                conn, proofHeight, proof, _packetPath("receipts", p.destinationPort, p.destinationChannel, p.sequence)
            );
        }
    }

    function _timedOut(Store storage s, ChannelEnd storage ch, bytes32 key, Packet calldata p) private {
        delete s.commitments[key];
        if (ch.ordering == ChannelOrder.ORDERED && ch.state != ChannelState.CLOSED) {
            ch.state = ChannelState.CLOSED;
            _commitChannel(p.sourcePort, p.sourceChannel, ch);
        }
        _app(p.sourcePort).onTimeoutPacket(p, msg.sender);
        emit TimeoutPacket(p.sourcePort, p.sourceChannel, p.sequence);
    }

    /// The packet's other end must be this channel's counterparty.
    function _checkCounterparty(ChannelEnd storage ch, string calldata port, string calldata channel) private view {
        if (
            keccak256(bytes(port)) != keccak256(bytes(ch.counterpartyPortId))
                || keccak256(bytes(channel)) != keccak256(bytes(ch.counterpartyChannelId))
        ) revert IBCPacketCounterpartyMismatch();
    }

    /// a < b, comparing revision numbers first.
    function _lt(Height calldata a, Height calldata b) private pure returns (bool) {
        return a.revisionNumber < b.revisionNumber
            || (a.revisionNumber == b.revisionNumber && a.revisionHeight < b.revisionHeight);
    }
}
