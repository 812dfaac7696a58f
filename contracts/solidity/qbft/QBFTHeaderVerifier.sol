// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title QBFTHeaderVerifier: on-chain verification of a Besu/GoQuorum QBFT block header's
/// committed seals (DESIGN §5 QBFT bullet). It exists to measure what a chain would pay to
/// verify the other chain's consensus itself, the cost LCP moves off-chain; it is not a light
/// client (no trusted set, no trusting period): it returns the hash of the header's validator
/// list for a client to compare with its trusted one.
///
/// The header is an RLP list of 15 or more fields, kept unchanged; field 12 is extraData =
/// RLP([vanity(32), [validators], vote, round, [seals]]). The seal digest is keccak256 of the
/// header with extraData re-encoded as [vanity, validators, vote, round, []]; each seal is
/// r‖s‖v (v ∈ {0,1}) over that digest, its signer must be a distinct validator, and at least
/// ceil(2N/3) validators must have signed.
contract QBFTHeaderVerifier {
    /// @notice Malformed RLP at byte `offset` (of the header, or of extraData for extra errors).
    error QBFTMalformed(uint256 offset);
    /// @notice A seal that does not recover to a validator, or a validator that sealed twice.
    error QBFTBadSeal(uint256 index);
    /// @notice Fewer distinct validator seals than the quorum.
    error QBFTQuorum(uint256 signers, uint256 quorum);

    struct Extra {
        bytes sealing;
        address[] validators;
        uint256 sealsStart;
        uint256 sealsEnd;
    }

    struct Layout {
        uint256 payloadStart;
        uint256 end;
        uint256 extraItem;
        uint256 extraStart;
        uint256 extraLen;
        uint256 extraNext;
    }

    /// @notice Verifies `header`'s committed seals; returns the block number, the state root,
    /// keccak256 of the validator addresses (concatenated) and the number of signers.
    function verifyHeader(bytes calldata header)
        external
        pure
        returns (uint256 number, bytes32 stateRoot, bytes32 validatorsHash, uint256 signers)
    {
        Layout memory h;
        (h, number, stateRoot) = _layout(header);
        Extra memory x = _extra(header[h.extraStart:h.extraStart + h.extraLen]);
        validatorsHash = keccak256(abi.encodePacked(x.validators));
        bytes32 digest = _sealDigest(header, h, x.sealing);
        signers = _countSeals(header[h.extraStart:h.extraStart + h.extraLen], x, digest);
        uint256 quorum = x.validators.length - x.validators.length / 3;
        if (signers < quorum) revert QBFTQuorum(signers, quorum);
    }

    /// @dev keccak256 of the sealing header: the same fields, extraData replaced.
    function _sealDigest(bytes calldata header, Layout memory h, bytes memory sealingExtra)
        private
        pure
        returns (bytes32)
    {
        bytes memory payload = abi.encodePacked(
            header[h.payloadStart:h.extraItem],
            _header(0x80, sealingExtra.length),
            sealingExtra,
            header[h.extraNext:h.end]
        );
        return keccak256(abi.encodePacked(_header(0xc0, payload.length), payload));
    }

    /// @dev The header's field layout: fields 3 (stateRoot), 8 (number) and 12 (extraData).
    function _layout(bytes calldata header) private pure returns (Layout memory h, uint256 number, bytes32 stateRoot) {
        (bool isList, uint256 ps, uint256 plen,) = _item(header, 0);
        if (!isList || ps + plen != header.length) revert QBFTMalformed(0);
        h.payloadStart = ps;
        h.end = ps + plen;
        uint256 p = ps;
        uint256 fields;
        while (p < h.end) {
            (bool l, uint256 s, uint256 n, uint256 next) = _item(header, p);
            if (l) revert QBFTMalformed(p);
            if (fields == 3) {
                if (n != 32) revert QBFTMalformed(p);
                stateRoot = bytes32(header[s:s + 32]);
            } else if (fields == 8) {
                if (n > 8) revert QBFTMalformed(p);
                number = n == 0 ? 0 : uint256(bytes32(header[s:s + n])) >> (256 - 8 * n);
            } else if (fields == 12) {
                h.extraItem = p;
                h.extraStart = s;
                h.extraLen = n;
                h.extraNext = next;
            }
            fields++;
            p = next;
        }
        if (fields < 15 || p != h.end) revert QBFTMalformed(p);
    }

    /// @dev The number of distinct validators whose seal over `digest` is in extra[start..end).
    function _countSeals(bytes calldata extra, Extra memory x, bytes32 digest) private pure returns (uint256 signers) {
        uint256 seen;
        for (uint256 q = x.sealsStart; q < x.sealsEnd; signers++) {
            (bool l, uint256 s, uint256 n, uint256 next) = _item(extra, q);
            if (l || n != 65) revert QBFTMalformed(q);
            uint256 k = _validatorIndex(x.validators, _recover(digest, extra[s:s + 65]));
            if (k == x.validators.length || seen & (1 << k) != 0) revert QBFTBadSeal(signers);
            seen |= 1 << k;
            q = next;
        }
    }

    /// @dev The signer of a 65-byte r‖s‖v seal (v ∈ {0,1}); zero if invalid.
    function _recover(bytes32 digest, bytes calldata seal) private pure returns (address) {
        uint8 v = uint8(seal[64]);
        if (v > 1) return address(0);
        return ecrecover(digest, v + 27, bytes32(seal[0:32]), bytes32(seal[32:64]));
    }

    /// @dev The index of `signer` in `validators` (their length if absent or zero).
    function _validatorIndex(address[] memory validators, address signer) private pure returns (uint256) {
        if (signer == address(0)) return validators.length;
        for (uint256 i = 0; i < validators.length; i++) {
            if (validators[i] == signer) return i;
        }
        return validators.length;
    }

    /// @dev Decodes extraData strictly; returns its sealing form, the validators and the range
    /// of the seal items.
    function _extra(bytes calldata extra) private pure returns (Extra memory x) {
        (bool l, uint256 s, uint256 n, uint256 p) = _item(extra, 0);
        if (!l || p != extra.length) revert QBFTMalformed(0);
        uint256 body = s;
        // vanity
        (l, s, n, p) = _item(extra, body);
        if (l || n != 32) revert QBFTMalformed(body);
        // validators
        uint256 off = p;
        (l, s, n, p) = _item(extra, off);
        if (!l || n % 21 != 0 || n == 0 || n / 21 > 255) revert QBFTMalformed(off);
        x.validators = new address[](n / 21);
        for (uint256 i = 0; i < x.validators.length; i++) {
            uint256 a = s + 21 * i;
            if (extra[a] != 0x94) revert QBFTMalformed(a);
            x.validators[i] = address(bytes20(extra[a + 1:a + 21]));
        }
        // vote: a list (empty, or [recipient, kind])
        off = p;
        (l,,, p) = _item(extra, off);
        if (!l) revert QBFTMalformed(off);
        // round: a minimal big-endian scalar (at most 4 bytes)
        off = p;
        (l, s, n, p) = _item(extra, off);
        if (l || n > 4 || (n > 0 && extra[s] == 0)) revert QBFTMalformed(off);
        // seals
        off = p;
        (l, s, n, p) = _item(extra, off);
        if (!l || p != extra.length) revert QBFTMalformed(off);
        (x.sealsStart, x.sealsEnd) = (s, s + n);
        bytes memory sealingBody = abi.encodePacked(extra[body:off], hex"c0");
        x.sealing = abi.encodePacked(_header(0xc0, sealingBody.length), sealingBody);
    }

    /// @dev The RLP item at `p`: whether it is a list, its payload range and the next offset.
    /// Non-canonical length prefixes and single bytes encoded as strings are refused.
    function _item(bytes calldata b, uint256 p) private pure returns (bool isList, uint256 s, uint256 n, uint256 next) {
        if (p >= b.length) revert QBFTMalformed(p);
        uint8 t = uint8(b[p]);
        if (t < 0x80) {
            return (false, p, 1, p + 1);
        } else if (t < 0xb8) {
            n = t - 0x80;
            s = p + 1;
            if (n == 1 && s < b.length && uint8(b[s]) < 0x80) revert QBFTMalformed(p);
        } else if (t < 0xc0) {
            (s, n) = _longLen(b, p, t - 0xb7);
        } else if (t < 0xf8) {
            isList = true;
            n = t - 0xc0;
            s = p + 1;
        } else {
            isList = true;
            (s, n) = _longLen(b, p, t - 0xf7);
        }
        next = s + n;
        if (next > b.length) revert QBFTMalformed(p);
    }

    function _longLen(bytes calldata b, uint256 p, uint256 ll) private pure returns (uint256 s, uint256 n) {
        if (ll > 4 || p + 1 + ll > b.length || b[p + 1] == 0) revert QBFTMalformed(p);
        for (uint256 i = 0; i < ll; i++) {
            n = (n << 8) | uint8(b[p + 1 + i]);
        }
        if (n < 56) revert QBFTMalformed(p);
        s = p + 1 + ll;
    }

    /// @dev An RLP string (0x80) or list (0xc0) header for a payload of `len` bytes.
    function _header(uint8 base, uint256 len) private pure returns (bytes memory) {
        if (len < 56) return abi.encodePacked(uint8(base + len));
        uint256 ll;
        for (uint256 t = len; t != 0; t >>= 8) {
            ll++;
        }
        bytes memory out = new bytes(1 + ll);
        out[0] = bytes1(uint8(base + 55 + ll));
        for (uint256 i = 0; i < ll; i++) {
            out[ll - i] = bytes1(uint8(len >> (8 * i)));
        }
        return out;
    }
}
