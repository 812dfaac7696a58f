// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LCPProto: a strict protobuf (proto3) reader for the LCP client's messages: varints
/// (at most 10 bytes), length-delimited fields and `google.protobuf.Any`. Wire types other than
/// 0 (varint) and 2 (length-delimited) are refused.
library LCPProto {
    /// @notice Malformed protobuf at byte `offset`.
    error LCPProtoMalformed(uint256 offset);
    /// @notice An `Any` whose type URL is not the expected one.
    error LCPProtoUnexpectedType();

    /// @notice The varint at `p`; returns it and the next offset.
    function varint(bytes memory b, uint256 p) internal pure returns (uint256 v, uint256 next) {
        for (uint256 i = 0; i < 10; i++) {
            if (p + i >= b.length) revert LCPProtoMalformed(p);
            uint8 c = uint8(b[p + i]);
            v |= uint256(c & 0x7f) << (7 * i);
            if (c & 0x80 == 0) return (v, p + i + 1);
        }
        revert LCPProtoMalformed(p);
    }

    /// @notice The key at `p`: field number, wire type, next offset.
    function key(bytes memory b, uint256 p) internal pure returns (uint256 field, uint256 wireType, uint256 next) {
        uint256 k;
        (k, next) = varint(b, p);
        field = k >> 3;
        wireType = k & 7;
        if (field == 0 || (wireType != 0 && wireType != 2)) revert LCPProtoMalformed(p);
    }

    /// @notice The length-delimited value at `p` (after the key): start, length, next offset.
    function lenDelim(bytes memory b, uint256 p) internal pure returns (uint256 s, uint256 len, uint256 next) {
        (len, s) = varint(b, p);
        next = s + len;
        if (next > b.length) revert LCPProtoMalformed(p);
    }

    /// @notice A copy of b[s..s+n).
    function slice(bytes memory b, uint256 s, uint256 n) internal pure returns (bytes memory out) {
        out = new bytes(n);
        assembly ("memory-safe") {
            mcopy(add(out, 0x20), add(add(b, 0x20), s), n)
        }
    }

    /// @notice The type URL and value of an `Any`.
    function any(bytes memory b) internal pure returns (bytes memory typeUrl, bytes memory value) {
        uint256 p;
        uint256 last;
        while (p < b.length) {
            (uint256 f, uint256 wt, uint256 q) = key(b, p);
            if (wt != 2 || f > 2 || f <= last) revert LCPProtoMalformed(p);
            last = f;
            (uint256 s, uint256 n, uint256 next) = lenDelim(b, q);
            if (f == 1) typeUrl = slice(b, s, n);
            else value = slice(b, s, n);
            p = next;
        }
    }

    /// @notice The value of an `Any` whose type URL must be `url`.
    function unpack(bytes memory b, string memory url) internal pure returns (bytes memory value) {
        bytes memory typeUrl;
        (typeUrl, value) = any(b);
        if (keccak256(typeUrl) != keccak256(bytes(url))) revert LCPProtoUnexpectedType();
    }

    // ---- the same readers on calldata (no copies) ----

    /// @notice The varint at `p` of calldata `b`.
    function varintCd(bytes calldata b, uint256 p) internal pure returns (uint256 v, uint256 next) {
        assembly ("memory-safe") {
            let len := b.length
            let q := p
            for { let shift := 0 } 1 { shift := add(shift, 7) } {
                // at most 10 bytes, all inside b
                if or(iszero(lt(q, len)), eq(shift, 70)) {
                    mstore(0, 0xd2387b4e) // LCPProtoMalformed(uint256)
                    mstore(0x20, p)
                    revert(28, 36)
                }
                let c := byte(0, calldataload(add(b.offset, q)))
                v := or(v, shl(shift, and(c, 0x7f)))
                q := add(q, 1)
                if lt(c, 0x80) { break }
            }
            next := q
        }
    }

    /// @notice A length-delimited field at `p` of calldata `b`: field number, value start and
    /// end. Any other wire type is refused.
    function lenFieldCd(bytes calldata b, uint256 p) internal pure returns (uint256 field, uint256 s, uint256 e) {
        uint256 k;
        (k, s) = varintCd(b, p);
        field = k >> 3;
        if (field == 0 || k & 7 != 2) revert LCPProtoMalformed(p);
        uint256 len;
        (len, s) = varintCd(b, s);
        e = s + len;
        if (e > b.length) revert LCPProtoMalformed(p);
    }

    /// @notice keccak256 of the type URL and the value range of the `Any` in calldata `b`.
    function anyCd(bytes calldata b) internal pure returns (bytes32 typeUrlHash, uint256 vs, uint256 ve) {
        uint256 p;
        uint256 last;
        while (p < b.length) {
            (uint256 f, uint256 s, uint256 e) = lenFieldCd(b, p);
            if (f > 2 || f <= last) revert LCPProtoMalformed(p);
            last = f;
            if (f == 1) typeUrlHash = keccak256(b[s:e]);
            else (vs, ve) = (s, e);
            p = e;
        }
        if (last == 0) revert LCPProtoMalformed(0);
        if (typeUrlHash == bytes32(0)) typeUrlHash = keccak256("");
    }
}
