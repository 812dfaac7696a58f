// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./IBCTypes.sol";
import {IBCStore} from "./IBCStore.sol";
import {ProtoEncoder} from "./ProtoEncoder.sol";

/// @title IBCConnection: the ICS-03 connection handshake (Init, Try, Ack, Confirm). Each step
/// checks the counterparty's connection end, rebuilt as the ConnectionEnd protobuf it must have
/// committed, through the client's verifyMembership. Only the default ibc-go version is offered
/// and accepted. Runs by delegatecall from IBCHandler.
contract IBCConnection is IBCStore {
    /// @notice Starts a handshake on this chain: a new connection end in INIT.
    function connectionOpenInit(MsgConnectionOpenInit calldata m)
        external
        onlyDelegated
        returns (string memory connectionId)
    {
        address lc = address(_client(m.clientId));
        _checkIdentifier(m.counterpartyClientId, 9, 64);
        if (m.counterpartyPrefix.length == 0) revert IBCInvalidCounterparty();
        connectionId = _newConnectionId();
        ConnectionEnd storage c = _store().connections[connectionId];
        c.clientId = m.clientId;
        c.lightClient = lc;
        c.state = ConnectionState.INIT;
        c.delayPeriod = m.delayPeriod;
        c.counterpartyClientId = m.counterpartyClientId;
        c.counterpartyPrefix = m.counterpartyPrefix;
        _commitConnection(connectionId, c);
        emit ConnectionOpenInit(connectionId, m.clientId, m.counterpartyClientId, m.delayPeriod);
    }

    /// @notice Answers the counterparty's Init: verifies its connection end in INIT and creates
    /// this end in TRYOPEN.
    function connectionOpenTry(MsgConnectionOpenTry calldata m)
        external
        onlyDelegated
        returns (string memory connectionId)
    {
        address lc = address(_client(m.clientId));
        _checkIdentifier(m.counterpartyClientId, 9, 64);
        _checkIdentifier(m.counterpartyConnectionId, 10, 64);
        if (m.counterpartyPrefix.length == 0) revert IBCInvalidCounterparty();
        connectionId = _newConnectionId();
        ConnectionEnd storage c = _store().connections[connectionId];
        c.clientId = m.clientId;
        c.lightClient = lc;
        c.state = ConnectionState.TRYOPEN;
        c.delayPeriod = m.delayPeriod;
        c.counterpartyClientId = m.counterpartyClientId;
        c.counterpartyConnectionId = m.counterpartyConnectionId;
        c.counterpartyPrefix = m.counterpartyPrefix;
        bytes memory expected = ProtoEncoder.connectionEnd(
            m.counterpartyClientId, ConnectionState.INIT, m.clientId, "", COMMITMENT_PREFIX, m.delayPeriod
        );
        _verifyMembership(c, m.proofHeight, m.proofInit, _connectionPath(m.counterpartyConnectionId), expected);
        _commitConnection(connectionId, c);
        emit ConnectionOpenTry(connectionId, m.clientId, m.counterpartyClientId, m.counterpartyConnectionId);
    }

    /// @notice Completes Init: verifies the counterparty's end in TRYOPEN and opens this end.
    function connectionOpenAck(MsgConnectionOpenAck calldata m) external onlyDelegated {
        ConnectionEnd storage c = _connectionIn(m.connectionId, ConnectionState.INIT);
        _checkIdentifier(m.counterpartyConnectionId, 10, 64);
        bytes memory expected = ProtoEncoder.connectionEnd(
            c.counterpartyClientId, ConnectionState.TRYOPEN, c.clientId, m.connectionId, COMMITMENT_PREFIX, c.delayPeriod
        );
        _verifyMembership(c, m.proofHeight, m.proofTry, _connectionPath(m.counterpartyConnectionId), expected);
        c.state = ConnectionState.OPEN;
        c.counterpartyConnectionId = m.counterpartyConnectionId;
        _commitConnection(m.connectionId, c);
        emit ConnectionOpenAck(m.connectionId, c.clientId, c.counterpartyClientId, m.counterpartyConnectionId);
    }

    /// @notice Completes Try: verifies the counterparty's end OPEN and opens this end.
    function connectionOpenConfirm(MsgConnectionOpenConfirm calldata m) external onlyDelegated {
        ConnectionEnd storage c = _connectionIn(m.connectionId, ConnectionState.TRYOPEN);
        string memory cpConnectionId = c.counterpartyConnectionId;
        bytes memory expected = ProtoEncoder.connectionEnd(
            c.counterpartyClientId, ConnectionState.OPEN, c.clientId, m.connectionId, COMMITMENT_PREFIX, c.delayPeriod
        );
        _verifyMembership(c, m.proofHeight, m.proofAck, _connectionPath(cpConnectionId), expected);
        c.state = ConnectionState.OPEN;
        _commitConnection(m.connectionId, c);
        emit ConnectionOpenConfirm(m.connectionId, c.clientId, c.counterpartyClientId, cpConnectionId);
    }

    function _newConnectionId() private returns (string memory) {
        return string(abi.encodePacked("connection-", _itoa(_store().nextConnectionSequence++)));
    }

    function _connectionIn(string calldata connectionId, ConnectionState expected)
        private
        view
        returns (ConnectionEnd storage c)
    {
        c = _connection(connectionId);
        if (c.state != expected) revert IBCConnectionStateUnexpected(connectionId, c.state, expected);
    }

    function _commitConnection(string memory connectionId, ConnectionEnd storage c) private {
        _commit(
            _connectionPath(connectionId),
            ProtoEncoder.connectionEnd(
                c.clientId,
                c.state,
                c.counterpartyClientId,
                c.counterpartyConnectionId,
                c.counterpartyPrefix,
                c.delayPeriod
            )
        );
    }
}
