// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import "./IBCTypes.sol";
import {IBCStore} from "./IBCStore.sol";

/// @title IBCClient: ICS-02 client registry (light-client contracts by client type), client
/// creation and update, and ICS-05 port binding. Runs by delegatecall from IBCHandler.
contract IBCClient is IBCStore {
    /// @notice Registers `lightClient` for `clientType` (owner only, once per type).
    function registerClient(string calldata clientType, address lightClient) external onlyDelegated onlyOwner {
        _checkClientType(clientType);
        Store storage s = _store();
        if (s.clientRegistry[clientType] != address(0)) revert IBCClientTypeAlreadyRegistered(clientType);
        if (lightClient.code.length == 0) revert IBCClientTypeNotRegistered(clientType);
        s.clientRegistry[clientType] = lightClient;
        emit RegisterClient(clientType, lightClient);
    }

    /// @notice Binds `portId` to the app contract `app` (owner only, once per port).
    function bindPort(string calldata portId, address app) external onlyDelegated onlyOwner {
        if (!_validIdentifier(portId, 2, 128)) revert IBCInvalidPortId(portId);
        Store storage s = _store();
        if (s.portApps[portId] != address(0)) revert IBCPortAlreadyBound(portId);
        if (app.code.length == 0) revert IBCPortNotBound(portId);
        s.portApps[portId] = app;
        emit BindPort(portId, app);
    }

    /// @notice Creates a client `{clientType}-{n}` with the light client registered for its type,
    /// and commits its client state and consensus state (their `Any` bytes, as given).
    function createClient(MsgCreateClient calldata msg_) external onlyDelegated returns (string memory clientId) {
        Store storage s = _store();
        address lc = s.clientRegistry[msg_.clientType];
        if (lc == address(0)) revert IBCClientTypeNotRegistered(msg_.clientType);
        clientId = string(abi.encodePacked(msg_.clientType, "-", _itoa(s.nextClientSequence++)));
        s.clientImpls[clientId] = lc;
        s.clientTypes[clientId] = msg_.clientType;
        Height memory latest = ILightClient(lc).initializeClient(clientId, msg_.clientState, msg_.consensusState);
        if (latest.revisionHeight == 0) revert IBCClientCreateFailed(clientId);
        _commit(_clientStatePath(clientId), msg_.clientState);
        _commit(_consensusStatePath(clientId, latest), msg_.consensusState);
        emit CreateClient(clientId, msg_.clientType, latest);
    }

    /// @notice Updates client `clientId` with `clientMessage` (header, proxy message, ...), and
    /// commits the new client state and every consensus state the light client stored.
    function updateClient(string calldata clientId, bytes calldata clientMessage) external onlyDelegated {
        ILightClient lc = _client(clientId);
        (bytes memory clientState, ConsensusStateUpdate[] memory updates) = lc.updateClient(clientId, clientMessage);
        _commit(_clientStatePath(clientId), clientState);
        Height[] memory heights = new Height[](updates.length);
        for (uint256 i = 0; i < updates.length; i++) {
            heights[i] = updates[i].height;
            _commit(_consensusStatePath(clientId, updates[i].height), updates[i].consensusState);
        }
        emit UpdateClient(clientId, clientMessage, heights);
    }

    /// Client types: 1..32 characters of [a-z0-9-] (they prefix client identifiers).
    function _checkClientType(string calldata clientType) private pure {
        bytes calldata b = bytes(clientType);
        if (b.length == 0 || b.length > 32) revert IBCInvalidClientType(clientType);
        for (uint256 i = 0; i < b.length; i++) {
            bytes1 c = b[i];
            if (!((c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "-")) {
                revert IBCInvalidClientType(clientType);
            }
        }
    }
}
