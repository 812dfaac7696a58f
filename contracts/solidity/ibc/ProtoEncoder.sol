// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ConnectionState, ChannelState, ChannelOrder} from "./IBCTypes.sol";

/// @title ProtoEncoder: the protobuf (proto3) encodings of the ibc-go messages the handler
/// commits: ibc.core.connection.v1.ConnectionEnd and ibc.core.channel.v1.Channel. Fields holding
/// their default value (0, empty) are omitted, except the non-nullable sub-messages
/// (counterparty, prefix), which are always written, as gogoproto and prost both do.
library ProtoEncoder {
    /// @notice The varint encoding of `v`.
    function varint(uint64 v) internal pure returns (bytes memory out) {
        uint256 n = 1;
        for (uint64 t = v >> 7; t != 0; t >>= 7) {
            n++;
        }
        out = new bytes(n);
        for (uint256 i = 0; i < n; i++) {
            uint8 b = uint8(v & 0x7f);
            v >>= 7;
            out[i] = bytes1(i + 1 < n ? b | 0x80 : b);
        }
    }

    /// @notice Field `field` as a length-delimited value (written even when empty).
    function lenField(uint64 field, bytes memory value) internal pure returns (bytes memory) {
        return abi.encodePacked(varint((field << 3) | 2), varint(uint64(value.length)), value);
    }

    /// @notice Field `field` as a length-delimited value, omitted when empty (proto3 scalar).
    function optLenField(uint64 field, bytes memory value) internal pure returns (bytes memory) {
        return value.length == 0 ? bytes("") : lenField(field, value);
    }

    /// @notice Field `field` as a varint, omitted when zero (proto3 scalar).
    function varintField(uint64 field, uint64 value) internal pure returns (bytes memory) {
        return value == 0 ? bytes("") : abi.encodePacked(varint(field << 3), varint(value));
    }

    /// @notice The ibc-go default connection version: Version{identifier: "1", features:
    /// ["ORDER_ORDERED", "ORDER_UNORDERED"]}, as the bytes of the message.
    function defaultVersion() internal pure returns (bytes memory) {
        return abi.encodePacked(
            lenField(1, bytes("1")), lenField(2, bytes("ORDER_ORDERED")), lenField(2, bytes("ORDER_UNORDERED"))
        );
    }

    /// @notice ibc.core.connection.v1.ConnectionEnd with the default version.
    function connectionEnd(
        string memory clientId,
        ConnectionState state,
        string memory counterpartyClientId,
        string memory counterpartyConnectionId,
        bytes memory counterpartyPrefix,
        uint64 delayPeriod
    ) internal pure returns (bytes memory) {
        bytes memory counterparty = abi.encodePacked(
            optLenField(1, bytes(counterpartyClientId)),
            optLenField(2, bytes(counterpartyConnectionId)),
            lenField(3, optLenField(1, counterpartyPrefix))
        );
        return abi.encodePacked(
            optLenField(1, bytes(clientId)),
            lenField(2, defaultVersion()),
            varintField(3, uint64(state)),
            lenField(4, counterparty),
            varintField(5, delayPeriod)
        );
    }

    /// @notice ibc.core.channel.v1.Channel with one connection hop and upgrade sequence 0.
    function channel(
        ChannelState state,
        ChannelOrder ordering,
        string memory counterpartyPortId,
        string memory counterpartyChannelId,
        string memory connectionId,
        string memory version
    ) internal pure returns (bytes memory) {
        bytes memory counterparty =
            abi.encodePacked(optLenField(1, bytes(counterpartyPortId)), optLenField(2, bytes(counterpartyChannelId)));
        return abi.encodePacked(
            varintField(1, uint64(state)),
            varintField(2, uint64(ordering)),
            lenField(3, counterparty),
            lenField(4, bytes(connectionId)),
            optLenField(5, bytes(version))
        );
    }
}
