// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LCPAttestation: stateless checks of Intel IAS attestation verification reports (AVRs)
/// for the LCP client (split out so each contract stays under the 24 KiB code limit).
///
/// - X.509 (DER) certificates signed with sha256WithRSAEncryption: the fields the client needs
///   (issuer/subject, validity, RSA public key) and the signature check against an issuer key.
/// - RSASSA-PKCS1-v1_5 with SHA-256 through the modexp precompile (0x05).
/// - The AVR JSON, parsed strictly (no whitespace, no escapes, no duplicate known keys,
///   version 4), and its base64 quote body (432 bytes): DEBUG flag, MRENCLAVE and report data
///   v1 `0x01 ‖ enclave key ‖ operator ‖ zeros`.
contract LCPAttestation {
    /// @notice What the client needs from a certificate.
    struct Certificate {
        bytes32 issuerHash;
        bytes32 subjectHash;
        uint64 notBefore;
        uint64 notAfter;
        bytes modulus;
        bytes exponent;
        /// @notice keccak256 of the DER bytes.
        bytes32 certHash;
        /// @notice Where `modulus` and `exponent` are in the DER bytes.
        uint256 modulusOffset;
        uint256 exponentOffset;
    }

    /// @notice The fields of a verified AVR.
    struct Report {
        /// @notice The AVR's timestamp (Unix seconds, fraction dropped).
        uint64 attestationTime;
        string quoteStatus;
        string[] advisoryIds;
        bytes32 mrenclave;
        bool debug;
        address enclaveKey;
        address operator;
    }

    /// @notice Malformed DER at byte `offset`.
    error LCPAttestationBadDer(uint256 offset);
    /// @notice The certificate uses an algorithm other than sha256WithRSAEncryption / rsaEncryption.
    error LCPAttestationUnsupportedAlgorithm();
    /// @notice A malformed time in a certificate.
    error LCPAttestationBadTime();
    /// @notice The certificate is not signed by the issuer key / not issued by that name.
    error LCPAttestationBadCertificateSignature();
    /// @notice The certificate is not valid at `time`.
    error LCPAttestationCertificateNotValid(uint256 time);
    /// @notice The AVR signature does not verify.
    error LCPAttestationBadReportSignature();
    /// @notice The AVR JSON is malformed at byte `offset`.
    error LCPAttestationBadJson(uint256 offset);
    /// @notice A required AVR field is missing or has a bad value.
    error LCPAttestationBadReportField(string field);
    /// @notice Malformed base64.
    error LCPAttestationBadBase64();
    /// @notice The quote body is not 432 bytes or its report data is not version 1.
    error LCPAttestationBadQuote();

    bytes private constant OID_SHA256_RSA = hex"06092a864886f70d01010b";
    bytes private constant OID_RSA = hex"06092a864886f70d010101";
    /// @dev DigestInfo prefix of SHA-256 (RFC 8017 §9.2).
    bytes19 private constant SHA256_DIGEST_INFO = hex"3031300d060960864801650304020105000420";

    uint256 private constant QUOTE_LEN = 432;

    // ------------------------------------------------------------------ certificates

    /// @notice Parses `der` (no signature check).
    function parseCertificate(bytes calldata der) external pure returns (Certificate memory cert) {
        (cert,,) = _parseCertificate(der);
    }

    /// @notice Parses `der` and checks it is signed by the RSA key (`issuerModulus`,
    /// `issuerExponent`) of the issuer named `issuerSubjectHash`, and valid at `time`.
    function verifyCertificate(
        bytes calldata der,
        bytes calldata issuerModulus,
        bytes calldata issuerExponent,
        bytes32 issuerSubjectHash,
        uint256 time
    ) external view returns (Certificate memory cert) {
        uint256 tbsEnd;
        uint256 sigStart;
        (cert, tbsEnd, sigStart) = _parseCertificate(der);
        if (cert.issuerHash != issuerSubjectHash) revert LCPAttestationBadCertificateSignature();
        // the TBSCertificate starts after the outer SEQUENCE header (4 bytes: 30 82 LL LL, or fewer)
        (uint256 tbsStart,) = _expect(der, 0, 0x30);
        if (!rsaVerify(sha256(der[tbsStart:tbsEnd]), der[sigStart:], issuerModulus, issuerExponent)) {
            revert LCPAttestationBadCertificateSignature();
        }
        if (time < cert.notBefore || time > cert.notAfter) revert LCPAttestationCertificateNotValid(time);
    }

    /// @dev The certificate's fields, the end of the TBSCertificate and the start of the
    /// signature bytes (they run to the end of `derCd`).
    function _parseCertificate(bytes calldata derCd)
        private
        pure
        returns (Certificate memory cert, uint256 tbsEnd, uint256 sigStart)
    {
        bytes memory der = derCd;
        cert.certHash = keccak256(der);
        (uint256 s, uint256 end) = _expect(der, 0, 0x30);
        if (end != der.length) revert LCPAttestationBadDer(end);
        (uint256 ts, uint256 tend) = _expect(der, s, 0x30);
        tbsEnd = tend;
        _parseTbs(der, ts, tend, cert);
        // outer signature algorithm and value
        (uint256 os, uint256 oend) = _expect(der, tend, 0x30);
        _checkOid(der, os, oend, OID_SHA256_RSA);
        (uint256 ss, uint256 send) = _expect(der, oend, 0x03);
        if (send != end || der[ss] != 0x00) revert LCPAttestationBadDer(ss);
        sigStart = ss + 1;
    }

    function _parseTbs(bytes memory der, uint256 p, uint256 tend, Certificate memory cert) private pure {
        // [0] EXPLICIT version (optional), serial number.
        (uint8 tag,,,) = _tlv(der, p);
        if (tag == 0xa0) (, p) = _expect(der, p, 0xa0);
        (, p) = _expect(der, p, 0x02);
        // signature algorithm
        (uint256 s, uint256 e) = _expect(der, p, 0x30);
        _checkOid(der, s, e, OID_SHA256_RSA);
        p = e;
        // issuer
        (, e) = _expect(der, p, 0x30);
        cert.issuerHash = keccak256(_slice(der, p, e - p));
        p = e;
        // validity
        (s, e) = _expect(der, p, 0x30);
        (cert.notBefore, s) = _time(der, s);
        (cert.notAfter, s) = _time(der, s);
        if (s != e) revert LCPAttestationBadDer(s);
        p = e;
        // subject
        (, e) = _expect(der, p, 0x30);
        cert.subjectHash = keccak256(_slice(der, p, e - p));
        p = e;
        // subjectPublicKeyInfo
        (s, e) = _expect(der, p, 0x30);
        if (e > tend) revert LCPAttestationBadDer(p);
        _parseRsaKey(der, s, e, cert);
    }

    function _parseRsaKey(bytes memory der, uint256 p, uint256 kend, Certificate memory cert) private pure {
        (uint256 s, uint256 e) = _expect(der, p, 0x30);
        _checkOid(der, s, e, OID_RSA);
        (s, e) = _expect(der, e, 0x03);
        if (e != kend || der[s] != 0x00) revert LCPAttestationBadDer(s);
        uint256 bend = e;
        (s, e) = _expect(der, s + 1, 0x30);
        if (e != bend) revert LCPAttestationBadDer(e);
        (s, e) = _expect(der, s, 0x02);
        (cert.modulus, cert.modulusOffset) = _unsigned(der, s, e);
        (s, e) = _expect(der, e, 0x02);
        if (e != bend) revert LCPAttestationBadDer(e);
        (cert.exponent, cert.exponentOffset) = _unsigned(der, s, e);
    }

    /// @dev An INTEGER's content without its sign byte; rejects negative/empty values.
    function _unsigned(bytes memory der, uint256 s, uint256 e) private pure returns (bytes memory, uint256) {
        if (e <= s || uint8(der[s]) & 0x80 != 0) revert LCPAttestationBadDer(s);
        if (der[s] == 0x00 && e - s > 1) s++;
        return (_slice(der, s, e - s), s);
    }

    /// @dev An AlgorithmIdentifier holding `oid` followed by nothing or NULL.
    function _checkOid(bytes memory der, uint256 s, uint256 e, bytes memory oid) private pure {
        uint256 n = oid.length;
        if (e < s + n || keccak256(_slice(der, s, n)) != keccak256(oid)) {
            revert LCPAttestationUnsupportedAlgorithm();
        }
        if (e == s + n) return;
        if (e != s + n + 2 || der[s + n] != 0x05 || der[s + n + 1] != 0x00) revert LCPAttestationUnsupportedAlgorithm();
    }

    /// @dev UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) at `p`.
    function _time(bytes memory der, uint256 p) private pure returns (uint64 t, uint256 next) {
        (uint8 tag, uint256 s, uint256 len, uint256 n) = _tlv(der, p);
        uint256 year;
        if (tag == 0x17 && len == 13) {
            year = _digits(der, s, 2);
            year += year >= 50 ? 1900 : 2000;
            s += 2;
        } else if (tag == 0x18 && len == 15) {
            year = _digits(der, s, 4);
            s += 4;
        } else {
            revert LCPAttestationBadTime();
        }
        if (der[s + 10] != "Z") revert LCPAttestationBadTime();
        t = uint64(
            _timestamp(
                year,
                _digits(der, s, 2),
                _digits(der, s + 2, 2),
                _digits(der, s + 4, 2),
                _digits(der, s + 6, 2),
                _digits(der, s + 8, 2)
            )
        );
        next = n;
    }

    // ------------------------------------------------------------------ RSA

    /// @notice RSASSA-PKCS1-v1_5 verification of `signature` over the SHA-256 `digest`.
    function rsaVerify(bytes32 digest, bytes memory signature, bytes memory modulus, bytes memory exponent)
        public
        view
        returns (bool)
    {
        uint256 k = modulus.length;
        if (k < 62 || signature.length != k) return false;
        bytes memory input = abi.encodePacked(signature.length, exponent.length, k, signature, exponent, modulus);
        bytes memory em = new bytes(k);
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(gas(), 0x05, add(input, 0x20), mload(input), add(em, 0x20), k)
        }
        if (!ok) return false;
        // em = 0x00 0x01 PS(0xff..) 0x00 DigestInfo digest; tLen = 51.
        if (em[0] != 0x00 || em[1] != 0x01 || em[k - 52] != 0x00) return false;
        bytes32 w;
        for (uint256 i = 2; i < k - 52; i += 32) {
            uint256 left = k - 52 - i;
            assembly ("memory-safe") {
                w := mload(add(add(em, 0x20), i))
            }
            if (left >= 32) {
                if (w != bytes32(type(uint256).max)) return false;
            } else {
                bytes32 mask = bytes32(type(uint256).max << (8 * (32 - left)));
                if (w & mask != mask) return false;
            }
        }
        bytes19 info;
        bytes32 h;
        assembly ("memory-safe") {
            info := mload(add(add(em, 0x20), sub(k, 51)))
            h := mload(add(add(em, 0x20), sub(k, 32)))
        }
        return info == SHA256_DIGEST_INFO && h == digest;
    }

    // ------------------------------------------------------------------ AVR

    /// @notice Verifies the AVR signature with the signing key and parses the report.
    function verifyReport(string calldata avr, bytes calldata signature, bytes calldata modulus, bytes calldata exponent)
        external
        view
        returns (Report memory report)
    {
        if (!rsaVerify(sha256(bytes(avr)), signature, modulus, exponent)) revert LCPAttestationBadReportSignature();
        return parseReport(avr);
    }

    /// @notice Parses the AVR JSON and its quote body (no signature check).
    function parseReport(string calldata avrCd) public pure returns (Report memory report) {
        bytes memory j = bytes(avrCd);
        uint256 n = j.length;
        if (n < 2 || j[0] != "{") revert LCPAttestationBadJson(0);
        uint256 p = 1;
        uint256 seen; // bit 0 timestamp, 1 version, 2 status, 3 body, 4 advisoryIDs
        bytes memory body;
        report.advisoryIds = new string[](0);
        if (j[p] == "}") revert LCPAttestationBadJson(p);
        while (true) {
            (uint256 ks, uint256 ke) = _jsonString(j, p);
            if (ke + 1 >= n || j[ke + 1] != ":") revert LCPAttestationBadJson(ke + 1);
            p = ke + 2;
            bytes32 key = _hashRange(j, ks, ke - ks);
            uint256 bit;
            if (key == keccak256("timestamp")) bit = 1;
            else if (key == keccak256("version")) bit = 2;
            else if (key == keccak256("isvEnclaveQuoteStatus")) bit = 4;
            else if (key == keccak256("isvEnclaveQuoteBody")) bit = 8;
            else if (key == keccak256("advisoryIDs")) bit = 16;
            if (seen & bit != 0) revert LCPAttestationBadJson(ks);
            seen |= bit;
            if (bit == 1) {
                (uint256 vs, uint256 ve) = _jsonString(j, p);
                report.attestationTime = _avrTime(j, vs, ve);
                p = ve + 1;
            } else if (bit == 2) {
                uint256 v;
                (v, p) = _jsonNumber(j, p);
                if (v != 4) revert LCPAttestationBadReportField("version");
            } else if (bit == 4) {
                (uint256 vs, uint256 ve) = _jsonString(j, p);
                report.quoteStatus = string(_slice(j, vs, ve - vs));
                p = ve + 1;
            } else if (bit == 8) {
                (uint256 vs, uint256 ve) = _jsonString(j, p);
                body = _base64(j, vs, ve);
                p = ve + 1;
            } else if (bit == 16) {
                (report.advisoryIds, p) = _jsonStringArray(j, p);
            } else {
                p = _jsonSkipValue(j, p);
            }
            if (p >= n) revert LCPAttestationBadJson(p);
            if (j[p] == "}") {
                if (p + 1 != n) revert LCPAttestationBadJson(p + 1);
                break;
            }
            if (j[p] != ",") revert LCPAttestationBadJson(p);
            p++;
        }
        if (seen & 15 != 15) revert LCPAttestationBadReportField("missing");
        _parseQuote(body, report);
    }

    function _parseQuote(bytes memory q, Report memory report) private pure {
        if (q.length != QUOTE_LEN || q[368] != 0x01) revert LCPAttestationBadQuote();
        report.debug = uint8(q[96]) & 0x02 != 0;
        bytes32 mr;
        bytes32 w1;
        bytes32 w2;
        assembly ("memory-safe") {
            mr := mload(add(q, add(0x20, 112)))
            w1 := mload(add(q, add(0x20, 369)))
            w2 := mload(add(q, add(0x20, 389)))
        }
        report.mrenclave = mr;
        report.enclaveKey = address(bytes20(w1));
        report.operator = address(bytes20(w2));
        for (uint256 i = 409; i < QUOTE_LEN; i++) {
            if (q[i] != 0) revert LCPAttestationBadQuote();
        }
    }

    /// @dev A JSON string at `p`: returns the content range [s, e) (e = the closing quote).
    /// Escapes and control characters are refused.
    function _jsonString(bytes memory j, uint256 p) private pure returns (uint256 s, uint256 e) {
        if (p >= j.length || j[p] != '"') revert LCPAttestationBadJson(p);
        s = p + 1;
        bool bad;
        assembly ("memory-safe") {
            let base := add(j, 0x20)
            let n := mload(j)
            let lo := 0x7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f
            let ones := 0x0101010101010101010101010101010101010101010101010101010101010101
            e := s
            // 32 bytes at a time: a word with no '"', '\\' or control byte is skipped whole
            // (exact per-byte zero test: ~(((v & 0x7f..) + 0x7f..) | v | 0x7f..)).
            for {} lt(add(e, 32), add(n, 1)) { e := add(e, 32) } {
                let w := mload(add(base, e))
                let q := xor(w, mul(0x22, ones))
                let b := xor(w, mul(0x5c, ones))
                let c := and(w, mul(0xe0, ones))
                let hit := or(
                    or(not(or(or(add(and(q, lo), lo), q), lo)), not(or(or(add(and(b, lo), lo), b), lo))),
                    not(or(or(add(and(c, lo), lo), c), lo))
                )
                if hit { break }
            }
            for {} lt(e, n) { e := add(e, 1) } {
                let c := byte(0, mload(add(base, e)))
                if eq(c, 0x22) { break }
                if or(eq(c, 0x5c), lt(c, 0x20)) {
                    bad := 1
                    break
                }
            }
            if iszero(lt(e, n)) { bad := 1 }
        }
        if (bad) revert LCPAttestationBadJson(e);
    }

    function _jsonNumber(bytes memory j, uint256 p) private pure returns (uint256 v, uint256 next) {
        uint256 s = p;
        while (p < j.length && j[p] >= "0" && j[p] <= "9" && p - s < 20) {
            v = v * 10 + uint8(j[p]) - 48;
            p++;
        }
        if (p == s || (j[s] == "0" && p - s > 1)) revert LCPAttestationBadJson(s);
        next = p;
    }

    function _jsonStringArray(bytes memory j, uint256 p) private pure returns (string[] memory out, uint256 next) {
        if (p >= j.length || j[p] != "[") revert LCPAttestationBadJson(p);
        // count the items first
        uint256 count;
        uint256 q = p + 1;
        if (q < j.length && j[q] != "]") {
            while (true) {
                (, uint256 e) = _jsonString(j, q);
                count++;
                q = e + 1;
                if (q < j.length && j[q] == ",") {
                    q++;
                    continue;
                }
                break;
            }
        }
        if (q >= j.length || j[q] != "]") revert LCPAttestationBadJson(q);
        out = new string[](count);
        q = p + 1;
        for (uint256 i = 0; i < count; i++) {
            (uint256 s, uint256 e) = _jsonString(j, q);
            out[i] = string(_slice(j, s, e - s));
            q = e + 2;
        }
        next = count == 0 ? p + 2 : q;
    }

    /// @dev Skips a string, number, null or string array.
    function _jsonSkipValue(bytes memory j, uint256 p) private pure returns (uint256) {
        if (p >= j.length) revert LCPAttestationBadJson(p);
        bytes1 c = j[p];
        if (c == '"') {
            (, uint256 e) = _jsonString(j, p);
            return e + 1;
        }
        if (c == "[") {
            (, uint256 next) = _jsonStringArray(j, p);
            return next;
        }
        if (c == "n") {
            if (p + 4 > j.length || _hashRange(j, p, 4) != keccak256("null")) revert LCPAttestationBadJson(p);
            return p + 4;
        }
        (, uint256 n) = _jsonNumber(j, p);
        return n;
    }

    /// @dev "YYYY-MM-DDTHH:MM:SS[.ffffff]" (UTC) as Unix seconds.
    function _avrTime(bytes memory j, uint256 s, uint256 e) private pure returns (uint64) {
        if (
            e < s + 19 || j[s + 4] != "-" || j[s + 7] != "-" || j[s + 10] != "T" || j[s + 13] != ":"
                || j[s + 16] != ":"
        ) revert LCPAttestationBadReportField("timestamp");
        if (e > s + 19) {
            if (j[s + 19] != "." || e == s + 20) revert LCPAttestationBadReportField("timestamp");
            for (uint256 i = s + 20; i < e; i++) {
                if (j[i] < "0" || j[i] > "9") revert LCPAttestationBadReportField("timestamp");
            }
        }
        return uint64(
            _timestamp(
                _digits(j, s, 4),
                _digits(j, s + 5, 2),
                _digits(j, s + 8, 2),
                _digits(j, s + 11, 2),
                _digits(j, s + 14, 2),
                _digits(j, s + 17, 2)
            )
        );
    }

    // ------------------------------------------------------------------ helpers

    function _digits(bytes memory b, uint256 s, uint256 n) private pure returns (uint256 v) {
        for (uint256 i = s; i < s + n; i++) {
            uint8 c = uint8(b[i]);
            if (c < 48 || c > 57) revert LCPAttestationBadTime();
            v = v * 10 + c - 48;
        }
    }

    /// @dev Unix seconds of a UTC civil time (days-from-civil, proleptic Gregorian).
    function _timestamp(uint256 y, uint256 m, uint256 d, uint256 hh, uint256 mm, uint256 ss)
        private
        pure
        returns (uint256)
    {
        if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) {
            revert LCPAttestationBadTime();
        }
        if (m <= 2) y -= 1;
        uint256 era = y / 400;
        uint256 yoe = y - era * 400;
        uint256 mp = m > 2 ? m - 3 : m + 9;
        uint256 doy = (153 * mp + 2) / 5 + d - 1;
        uint256 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        uint256 days_ = era * 146097 + doe - 719468;
        return days_ * 86400 + hh * 3600 + mm * 60 + ss;
    }

    /// @dev A TLV at `p`: tag, content start, content length, next offset (definite lengths only).
    function _tlv(bytes memory der, uint256 p) private pure returns (uint8 tag, uint256 s, uint256 len, uint256 next) {
        if (p + 2 > der.length) revert LCPAttestationBadDer(p);
        tag = uint8(der[p]);
        uint8 l0 = uint8(der[p + 1]);
        s = p + 2;
        if (l0 < 0x80) {
            len = l0;
        } else {
            uint256 nb = l0 & 0x7f;
            if (nb == 0 || nb > 3 || s + nb > der.length) revert LCPAttestationBadDer(p);
            for (uint256 i = 0; i < nb; i++) {
                len = (len << 8) | uint8(der[s + i]);
            }
            s += nb;
        }
        next = s + len;
        if (next > der.length) revert LCPAttestationBadDer(p);
    }

    function _expect(bytes memory der, uint256 p, uint8 tag) private pure returns (uint256 s, uint256 next) {
        uint8 t;
        (t, s,, next) = _tlv(der, p);
        if (t != tag) revert LCPAttestationBadDer(p);
    }

    function _slice(bytes memory b, uint256 s, uint256 n) private pure returns (bytes memory out) {
        out = new bytes(n);
        assembly ("memory-safe") {
            mcopy(add(out, 0x20), add(add(b, 0x20), s), n)
        }
    }

    function _hashRange(bytes memory b, uint256 s, uint256 n) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            h := keccak256(add(add(b, 0x20), s), n)
        }
    }

    /// @dev Decoding table for '+' (43) .. 'z' (122): the 6-bit value, 0xff if not in the alphabet.
    bytes private constant B64_TABLE =
        hex"3effffff3f3435363738393a3b3c3dffffffffffffff000102030405060708090a0b0c0d0e0f10111213141516171819ffffffffffff1a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233";

    /// @dev Standard base64 with padding of j[s..e) (canonical: unused bits zero).
    function _base64(bytes memory j, uint256 s, uint256 e) private pure returns (bytes memory out) {
        uint256 n = e - s;
        if (n == 0 || n % 4 != 0) revert LCPAttestationBadBase64();
        uint256 pad = j[e - 1] == "=" ? (j[e - 2] == "=" ? 2 : 1) : 0;
        // A 256-entry table (0xff = invalid), so a lookup needs no range check.
        bytes memory table = new bytes(256);
        bytes memory t80 = B64_TABLE;
        out = new bytes((n / 4) * 3 - pad);
        bool bad;
        assembly ("memory-safe") {
            let tbl := add(table, 0x20)
            for { let k := 0 } lt(k, 256) { k := add(k, 32) } {
                mstore(add(tbl, k), not(0))
            }
            mcopy(add(tbl, 43), add(t80, 0x20), 80)
            // '=' decodes to 0 only in the padding positions, checked below
            let src := add(add(j, 0x20), s)
            let dst := add(out, 0x20)
            let end := add(src, n)
            let last := sub(end, 4)
            for {} lt(src, last) { src := add(src, 4) } {
                let w := mload(src)
                let v0 := byte(0, mload(add(tbl, byte(0, w))))
                let v1 := byte(0, mload(add(tbl, byte(1, w))))
                let v2 := byte(0, mload(add(tbl, byte(2, w))))
                let v3 := byte(0, mload(add(tbl, byte(3, w))))
                bad := or(bad, and(or(or(v0, v1), or(v2, v3)), 0xc0))
                let acc := or(or(shl(18, v0), shl(12, v1)), or(shl(6, v2), v3))
                mstore(dst, or(shl(232, acc), and(mload(dst), 0x000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffff)))
                dst := add(dst, 3)
            }
            // the last group, with its padding
            let w := mload(src)
            let acc := 0
            for { let k := 0 } lt(k, 4) { k := add(k, 1) } {
                let c := byte(k, w)
                let v := 0xff
                switch lt(k, sub(4, pad))
                case 1 { v := byte(0, mload(add(tbl, c))) }
                default { if eq(c, 0x3d) { v := 0 } }
                bad := or(bad, and(v, 0xc0))
                acc := or(shl(6, acc), v)
            }
            mstore8(dst, shr(16, acc))
            if lt(pad, 2) { mstore8(add(dst, 1), and(shr(8, acc), 0xff)) }
            if lt(pad, 1) { mstore8(add(dst, 2), and(acc, 0xff)) }
            // unused bits must be zero
            if eq(pad, 1) { bad := or(bad, and(acc, 0xff)) }
            if eq(pad, 2) { bad := or(bad, and(acc, 0xffff)) }
            bad := iszero(iszero(bad))
        }
        if (bad) revert LCPAttestationBadBase64();
    }
}
