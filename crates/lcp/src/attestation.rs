//! Attestation verification reports in the Intel IAS format (EPID), as LCP clients check them
//! before registering an enclave key.
//!
//! A report travels as `{avr, signature, signing_cert}` JSON (base64 for the binary fields):
//! `avr` is the exact JSON text the signing key signed (RSA PKCS#1 v1.5 over SHA-256), and
//! `signing_cert` is the DER certificate of that key, which must chain to a configured root
//! ([`RootCa`]). The report's `isvEnclaveQuoteBody` carries the enclave's measurement
//! (MRENCLAVE), its attributes (the DEBUG flag) and 64 bytes of report data, whose version 1
//! layout ([`ReportData`]) binds the enclave key's Ethereum address and, optionally, an
//! operator address.
//!
//! [`SignedReport::verify`] checks, in this order: the root and signing certificates
//! (algorithms, issuer, signature, validity at the given time), the report signature, the
//! report version and timestamp, the key expiry, the quote status and advisories against
//! [`AttestationPolicy`], the quote body, the debug flag, the MRENCLAVE pin and the report
//! data. Every refusal is an [`AttestationError`] naming the exact reason.

use std::collections::BTreeSet;
use std::fmt;

use alloy_primitives::Address;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode as _, Encode as _};

/// Largest accepted `{avr, signature, signing_cert}` JSON document, in bytes.
pub const MAX_REPORT_FILE_LEN: usize = 64 * 1024;
/// Largest accepted AVR text, in bytes (IAS reports are about 1.5 KB).
pub const MAX_AVR_LEN: usize = 16 * 1024;
/// Largest accepted certificate (root or signing), in bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Largest accepted report signature, in bytes (a 4096-bit RSA signature is 512).
pub const MAX_SIGNATURE_LEN: usize = 1024;
/// Length of the decoded `isvEnclaveQuoteBody` (an SGX quote without its signature).
pub const QUOTE_BODY_LEN: usize = 432;
/// The only report version accepted (IAS API v4).
pub const AVR_VERSION: u64 = 4;
/// The quote status that needs no allow-list entry.
pub const QUOTE_STATUS_OK: &str = "OK";
/// The SGX attribute flag of a debug enclave.
pub const SGX_FLAG_DEBUG: u64 = 0x02;

/// sha256WithRSAEncryption (1.2.840.113549.1.1.11).
pub(crate) const OID_SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// rsaEncryption (1.2.840.113549.1.1.1).
pub(crate) const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

// Offsets in the quote body (sgx_quote_t without signature_len / signature).
const OFF_VERSION: usize = 0;
const OFF_SIGN_TYPE: usize = 2;
const OFF_REPORT_BODY: usize = 48;
const OFF_FLAGS: usize = OFF_REPORT_BODY + 48; // 96
const OFF_XFRM: usize = OFF_FLAGS + 8; // 104
const OFF_MRENCLAVE: usize = OFF_REPORT_BODY + 64; // 112
const OFF_MRSIGNER: usize = OFF_REPORT_BODY + 128; // 176
const OFF_ISV_PROD_ID: usize = OFF_REPORT_BODY + 256; // 304
const OFF_ISV_SVN: usize = OFF_REPORT_BODY + 258; // 306
const OFF_REPORT_DATA: usize = OFF_REPORT_BODY + 320; // 368

/// Why a report (or a certificate) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// An input is larger than its limit.
    #[error("{what} is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The `{avr, signature, signing_cert}` document is not well formed.
    #[error("malformed report file: {0}")]
    MalformedFile(String),
    /// A certificate could not be parsed.
    #[error("malformed {which} certificate: {reason}")]
    MalformedCertificate {
        /// `root` or `signing`.
        which: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// A certificate uses another algorithm than RSA with SHA-256.
    #[error("{which} certificate: {field} is {oid}, only {expected} is accepted")]
    UnsupportedAlgorithm {
        /// `root` or `signing`.
        which: &'static str,
        /// The algorithm field.
        field: &'static str,
        /// The algorithm found.
        oid: String,
        /// The algorithm required.
        expected: &'static str,
    },
    /// The root certificate's self-signature does not verify.
    #[error("the root certificate's self-signature does not verify")]
    BadRootSignature,
    /// The signing certificate names another issuer than the root's subject.
    #[error("the signing certificate's issuer is not the configured root's subject")]
    IssuerMismatch,
    /// The signing certificate's signature does not verify with the root's key.
    #[error("the signing certificate's signature does not verify with the root's key")]
    BadCertificateSignature,
    /// A certificate is not valid at the verification time.
    #[error("{which} certificate is not valid at {at}: valid from {not_before} to {not_after}")]
    CertificateNotValid {
        /// `root` or `signing`.
        which: &'static str,
        /// The verification time (Unix seconds).
        at: u64,
        /// Start of validity (Unix seconds).
        not_before: u64,
        /// End of validity, inclusive (Unix seconds).
        not_after: u64,
    },
    /// The report signature does not verify with the signing certificate's key.
    #[error("the report signature does not verify with the signing certificate's key")]
    BadReportSignature,
    /// The signed AVR text is not a well-formed report.
    #[error("malformed report body: {0}")]
    MalformedReport(String),
    /// The report version is not 4.
    #[error("report version {0} is not supported (only {AVR_VERSION})")]
    UnsupportedVersion(u64),
    /// The report timestamp is not in the IAS format.
    #[error("report timestamp {0:?} is not an IAS timestamp")]
    BadTimestamp(String),
    /// The quote status is neither OK nor in the allow list.
    #[error("quote status {0} is not allowed")]
    QuoteStatusNotAllowed(String),
    /// An advisory id is not in the allow list.
    #[error("advisory {0} is not allowed")]
    AdvisoryNotAllowed(String),
    /// The quote body does not decode to 432 bytes.
    #[error("quote body: {0}")]
    BadQuoteBody(String),
    /// The enclave is a debug enclave and the policy refuses them.
    #[error(
        "the enclave is a debug enclave (attributes.flags {flags:#x}) and debug enclaves are not allowed"
    )]
    DebugEnclave {
        /// The attribute flags.
        flags: u64,
    },
    /// MRENCLAVE differs from the pinned value.
    #[error("MRENCLAVE 0x{actual} differs from the pinned 0x{expected}")]
    MrenclaveMismatch {
        /// The pinned value (hex).
        expected: String,
        /// The report's value (hex).
        actual: String,
    },
    /// The report data is not version 1.
    #[error("report data version {0} is not supported (only 1)")]
    UnsupportedReportDataVersion(u8),
    /// Bytes 41..64 of report data v1 are not zero.
    #[error("report data v1 reserved bytes are not zero")]
    ReportDataReservedNotZero,
    /// The key attested by the report has expired.
    #[error("the attested key expired at {expires_at} (attested at {attestation_time}), now {now}")]
    KeyExpired {
        /// Attestation time (Unix seconds).
        attestation_time: u64,
        /// Expiry (Unix seconds).
        expires_at: u64,
        /// Verification time (Unix seconds).
        now: u64,
    },
    /// The enclave key address in the report data is zero.
    #[error("the report data's enclave key address is zero")]
    ZeroEnclaveKey,
}

/// A signed attestation verification report: the exact AVR text, its signature and the
/// signing certificate (DER).
#[derive(Clone, PartialEq, Eq)]
pub struct SignedReport {
    /// The AVR JSON text exactly as signed.
    pub avr: String,
    /// RSA PKCS#1 v1.5 SHA-256 signature over `avr`.
    pub signature: Vec<u8>,
    /// The signing certificate, DER.
    pub signing_cert: Vec<u8>,
}

impl fmt::Debug for SignedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedReport")
            .field("avr_len", &self.avr.len())
            .field("signature_len", &self.signature.len())
            .field("signing_cert_len", &self.signing_cert.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct SignedReportJson {
    avr: String,
    signature: String,
    signing_cert: String,
}

#[derive(Serialize)]
struct SignedReportJsonOut<'a> {
    avr: &'a str,
    signature: String,
    signing_cert: String,
}

/// The fields of an AVR body this crate reads; unknown fields are ignored, duplicated fields
/// refused.
#[derive(Deserialize)]
struct AvrBody {
    id: String,
    timestamp: String,
    version: u64,
    #[serde(rename = "isvEnclaveQuoteStatus")]
    quote_status: String,
    #[serde(rename = "isvEnclaveQuoteBody")]
    quote_body: String,
    #[serde(rename = "advisoryIDs", default)]
    advisory_ids: Vec<String>,
}

impl SignedReport {
    /// Parses the `{avr, signature, signing_cert}` JSON form (other fields, such as the
    /// informational `mrenclave` and `enclave_key` of the vectors, are ignored: only what the
    /// signature covers is trusted).
    pub fn from_json(bytes: &[u8]) -> Result<Self, AttestationError> {
        check_len("report file", bytes.len(), MAX_REPORT_FILE_LEN)?;
        let doc: SignedReportJson = serde_json::from_slice(bytes)
            .map_err(|e| AttestationError::MalformedFile(e.to_string()))?;
        let signature = B64
            .decode(doc.signature.as_bytes())
            .map_err(|e| AttestationError::MalformedFile(format!("signature: {e}")))?;
        let signing_cert = B64
            .decode(doc.signing_cert.as_bytes())
            .map_err(|e| AttestationError::MalformedFile(format!("signing_cert: {e}")))?;
        let report = SignedReport {
            avr: doc.avr,
            signature,
            signing_cert,
        };
        report.check_sizes()?;
        Ok(report)
    }

    /// The `{avr, signature, signing_cert}` JSON form.
    pub fn to_json(&self) -> String {
        let out = SignedReportJsonOut {
            avr: &self.avr,
            signature: B64.encode(&self.signature),
            signing_cert: B64.encode(&self.signing_cert),
        };
        // Serialising strings into JSON cannot fail.
        serde_json::to_string(&out).unwrap_or_default()
    }

    fn check_sizes(&self) -> Result<(), AttestationError> {
        check_len("avr", self.avr.len(), MAX_AVR_LEN)?;
        check_len("signature", self.signature.len(), MAX_SIGNATURE_LEN)?;
        check_len("signing certificate", self.signing_cert.len(), MAX_CERT_LEN)
    }

    /// Verifies the report against `root` and `policy` at Unix time `now` (the time the
    /// certificates' validity is judged at), returning what the report attests.
    pub fn verify(
        &self,
        root: &RootCa,
        policy: &AttestationPolicy,
        now: u64,
    ) -> Result<VerifiedReport, AttestationError> {
        self.check_sizes()?;
        root.check_valid_at(now)?;
        let signing = ParsedCert::parse(&self.signing_cert, "signing")?;
        if signing.issuer_der != root.subject_der {
            return Err(AttestationError::IssuerMismatch);
        }
        if !rsa_sha256_verify(&root.key, &signing.tbs_der, &signing.signature) {
            return Err(AttestationError::BadCertificateSignature);
        }
        signing.check_valid_at(now)?;
        if !rsa_sha256_verify(&signing.key, self.avr.as_bytes(), &self.signature) {
            return Err(AttestationError::BadReportSignature);
        }
        let body: AvrBody = serde_json::from_str(&self.avr)
            .map_err(|e| AttestationError::MalformedReport(e.to_string()))?;
        if body.version != AVR_VERSION {
            return Err(AttestationError::UnsupportedVersion(body.version));
        }
        let attestation_time = crate::time::parse_avr_timestamp(&body.timestamp)
            .ok_or_else(|| AttestationError::BadTimestamp(body.timestamp.clone()))?;
        if let Some(lifetime) = policy.key_expiration {
            let expires_at = attestation_time.saturating_add(lifetime);
            if expires_at <= now {
                return Err(AttestationError::KeyExpired {
                    attestation_time,
                    expires_at,
                    now,
                });
            }
        }
        policy.check_status(&body.quote_status, &body.advisory_ids)?;
        let quote_bytes = B64
            .decode(body.quote_body.as_bytes())
            .map_err(|e| AttestationError::BadQuoteBody(format!("base64: {e}")))?;
        let quote = QuoteBody::from_bytes(&quote_bytes)?;
        if quote.is_debug() && !policy.allow_debug {
            return Err(AttestationError::DebugEnclave {
                flags: quote.flags(),
            });
        }
        if let Some(pinned) = policy.mrenclave
            && pinned != quote.mrenclave()
        {
            return Err(AttestationError::MrenclaveMismatch {
                expected: hex::encode(pinned),
                actual: hex::encode(quote.mrenclave()),
            });
        }
        let report_data = ReportData::parse(&quote.report_data())?;
        Ok(VerifiedReport {
            id: body.id,
            attestation_time,
            quote_status: body.quote_status,
            advisory_ids: body.advisory_ids,
            quote,
            report_data,
        })
    }
}

fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), AttestationError> {
    if len > max {
        return Err(AttestationError::TooLarge { what, len, max });
    }
    Ok(())
}

/// RSASSA-PKCS1-v1_5 with SHA-256.
pub(crate) fn rsa_sha256_verify(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
        .is_ok()
}

/// What a verifier accepts beyond the signature chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// The enclave measurement the report must carry; `None` accepts any.
    pub mrenclave: Option<[u8; 32]>,
    /// Quote statuses accepted besides `OK`.
    pub allowed_quote_statuses: BTreeSet<String>,
    /// Advisory ids accepted in a report whose status is not `OK`.
    pub allowed_advisory_ids: BTreeSet<String>,
    /// Accept debug enclaves (development mode).
    pub allow_debug: bool,
    /// Lifetime of a key from its attestation time, in seconds: the report is refused once
    /// `attestation_time + key_expiration <= now`. `None` leaves expiry to the caller.
    pub key_expiration: Option<u64>,
}

impl AttestationPolicy {
    /// `OK` needs no allow-list entry (and its advisories are not consulted, as LCP clients
    /// do); any other status must be allowed, and then every advisory id must be allowed.
    fn check_status(&self, status: &str, advisories: &[String]) -> Result<(), AttestationError> {
        if status == QUOTE_STATUS_OK {
            return Ok(());
        }
        if !self.allowed_quote_statuses.contains(status) {
            return Err(AttestationError::QuoteStatusNotAllowed(status.to_owned()));
        }
        if let Some(bad) = advisories
            .iter()
            .find(|a| !self.allowed_advisory_ids.contains(a.as_str()))
        {
            return Err(AttestationError::AdvisoryNotAllowed(bad.clone()));
        }
        Ok(())
    }
}

/// What a verified report attests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReport {
    /// The report id.
    pub id: String,
    /// The attestation time (Unix seconds, fraction dropped).
    pub attestation_time: u64,
    /// The quote status.
    pub quote_status: String,
    /// The advisory ids.
    pub advisory_ids: Vec<String>,
    /// The quote body.
    pub quote: QuoteBody,
    /// The report data (enclave key and operator).
    pub report_data: ReportData,
}

/// The decoded `isvEnclaveQuoteBody`: an SGX quote (version, signature type, EPID group, QE
/// and PCE SVNs, basename) followed by the enclave's report body.
#[derive(Clone, PartialEq, Eq)]
pub struct QuoteBody {
    raw: [u8; QUOTE_BODY_LEN],
}

impl fmt::Debug for QuoteBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuoteBody")
            .field("version", &self.version())
            .field("flags", &self.flags())
            .field("mrenclave", &hex::encode(self.mrenclave()))
            .field("report_data", &hex::encode(self.report_data()))
            .finish()
    }
}

impl QuoteBody {
    /// Wraps exactly 432 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AttestationError> {
        let raw: [u8; QUOTE_BODY_LEN] = bytes.try_into().map_err(|_| {
            AttestationError::BadQuoteBody(format!(
                "{} bytes, expected {QUOTE_BODY_LEN}",
                bytes.len()
            ))
        })?;
        Ok(QuoteBody { raw })
    }

    /// A quote body with the given report fields, as a simulated enclave's quote: version 2,
    /// EPID linkable signatures, everything not given zero.
    pub fn new_simulated(
        flags: u64,
        xfrm: u64,
        mrenclave: [u8; 32],
        report_data: [u8; 64],
    ) -> Self {
        let mut raw = [0u8; QUOTE_BODY_LEN];
        raw[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&2u16.to_le_bytes());
        raw[OFF_SIGN_TYPE..OFF_SIGN_TYPE + 2].copy_from_slice(&1u16.to_le_bytes());
        raw[OFF_FLAGS..OFF_FLAGS + 8].copy_from_slice(&flags.to_le_bytes());
        raw[OFF_XFRM..OFF_XFRM + 8].copy_from_slice(&xfrm.to_le_bytes());
        raw[OFF_MRENCLAVE..OFF_MRENCLAVE + 32].copy_from_slice(&mrenclave);
        raw[OFF_REPORT_DATA..OFF_REPORT_DATA + 64].copy_from_slice(&report_data);
        QuoteBody { raw }
    }

    /// The 432 bytes.
    pub fn as_bytes(&self) -> &[u8; QUOTE_BODY_LEN] {
        &self.raw
    }

    fn le_u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.raw[at], self.raw[at + 1]])
    }

    fn le_u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.raw[at..at + 8]);
        u64::from_le_bytes(b)
    }

    fn bytes32(&self, at: usize) -> [u8; 32] {
        let mut b = [0u8; 32];
        b.copy_from_slice(&self.raw[at..at + 32]);
        b
    }

    /// The quote version.
    pub fn version(&self) -> u16 {
        self.le_u16(OFF_VERSION)
    }

    /// The enclave's `attributes.flags` (byte 96 onwards, little-endian).
    pub fn flags(&self) -> u64 {
        self.le_u64(OFF_FLAGS)
    }

    /// The enclave's `attributes.xfrm`.
    pub fn xfrm(&self) -> u64 {
        self.le_u64(OFF_XFRM)
    }

    /// Whether the DEBUG attribute is set.
    pub fn is_debug(&self) -> bool {
        self.flags() & SGX_FLAG_DEBUG != 0
    }

    /// MRENCLAVE (bytes 112..144).
    pub fn mrenclave(&self) -> [u8; 32] {
        self.bytes32(OFF_MRENCLAVE)
    }

    /// MRSIGNER (bytes 176..208).
    pub fn mrsigner(&self) -> [u8; 32] {
        self.bytes32(OFF_MRSIGNER)
    }

    /// ISV product id.
    pub fn isv_prod_id(&self) -> u16 {
        self.le_u16(OFF_ISV_PROD_ID)
    }

    /// ISV security version.
    pub fn isv_svn(&self) -> u16 {
        self.le_u16(OFF_ISV_SVN)
    }

    /// The 64 bytes of report data (bytes 368..432).
    pub fn report_data(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b.copy_from_slice(&self.raw[OFF_REPORT_DATA..OFF_REPORT_DATA + 64]);
        b
    }
}

/// Report data version 1: `0x01 ‖ enclave key address (20) ‖ operator address (20) ‖ zeros`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportData {
    /// The enclave key's Ethereum address.
    pub enclave_key: Address,
    /// The operator the key is bound to; `None` (zero address) for none.
    pub operator: Option<Address>,
}

impl ReportData {
    /// The version byte of this layout.
    pub const VERSION: u8 = 1;

    /// Reads version 1 report data: the reserved bytes must be zero and the key non-zero.
    pub fn parse(bytes: &[u8; 64]) -> Result<Self, AttestationError> {
        if bytes[0] != Self::VERSION {
            return Err(AttestationError::UnsupportedReportDataVersion(bytes[0]));
        }
        if bytes[41..].iter().any(|b| *b != 0) {
            return Err(AttestationError::ReportDataReservedNotZero);
        }
        let enclave_key = Address::from_slice(&bytes[1..21]);
        if enclave_key.is_zero() {
            return Err(AttestationError::ZeroEnclaveKey);
        }
        let operator = Address::from_slice(&bytes[21..41]);
        Ok(ReportData {
            enclave_key,
            operator: (!operator.is_zero()).then_some(operator),
        })
    }

    /// The 64-byte encoding.
    pub fn encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[0] = Self::VERSION;
        out[1..21].copy_from_slice(self.enclave_key.as_slice());
        if let Some(op) = self.operator {
            out[21..41].copy_from_slice(op.as_slice());
        }
        out
    }
}

/// A parsed RSA certificate.
struct ParsedCert {
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
    issuer_der: Vec<u8>,
    subject_der: Vec<u8>,
    key: RsaPublicKey,
    not_before: u64,
    not_after: u64,
    which: &'static str,
}

impl ParsedCert {
    fn parse(der: &[u8], which: &'static str) -> Result<Self, AttestationError> {
        check_len(
            if which == "root" {
                "root certificate"
            } else {
                "signing certificate"
            },
            der.len(),
            MAX_CERT_LEN,
        )?;
        let malformed = |reason: String| AttestationError::MalformedCertificate { which, reason };
        let cert = Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
        let unsupported = |field: &'static str, oid: ObjectIdentifier, expected: &'static str| {
            AttestationError::UnsupportedAlgorithm {
                which,
                field,
                oid: oid.to_string(),
                expected,
            }
        };
        if cert.signature_algorithm.oid != OID_SHA256_WITH_RSA {
            return Err(unsupported(
                "signatureAlgorithm",
                cert.signature_algorithm.oid,
                "sha256WithRSAEncryption",
            ));
        }
        let tbs = &cert.tbs_certificate;
        if tbs.signature.oid != OID_SHA256_WITH_RSA {
            return Err(unsupported(
                "tbsCertificate.signature",
                tbs.signature.oid,
                "sha256WithRSAEncryption",
            ));
        }
        // RFC 5280 4.1.1.2: the unsigned outer algorithm must equal the signed one.
        if cert.signature_algorithm != tbs.signature {
            return Err(malformed(
                "signatureAlgorithm differs from tbsCertificate.signature".to_owned(),
            ));
        }
        let spki = &tbs.subject_public_key_info;
        if spki.algorithm.oid != OID_RSA_ENCRYPTION {
            return Err(unsupported(
                "subjectPublicKeyInfo.algorithm",
                spki.algorithm.oid,
                "rsaEncryption",
            ));
        }
        let spki_der = spki.to_der().map_err(|e| malformed(e.to_string()))?;
        let key = RsaPublicKey::from_public_key_der(&spki_der)
            .map_err(|e| malformed(format!("RSA public key: {e}")))?;
        let signature = cert
            .signature
            .as_bytes()
            .ok_or_else(|| malformed("signature has unused bits".to_owned()))?
            .to_vec();
        Ok(ParsedCert {
            tbs_der: tbs.to_der().map_err(|e| malformed(e.to_string()))?,
            signature,
            issuer_der: tbs.issuer.to_der().map_err(|e| malformed(e.to_string()))?,
            subject_der: tbs.subject.to_der().map_err(|e| malformed(e.to_string()))?,
            key,
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            which,
        })
    }

    fn check_valid_at(&self, at: u64) -> Result<(), AttestationError> {
        if at < self.not_before || at > self.not_after {
            return Err(AttestationError::CertificateNotValid {
                which: self.which,
                at,
                not_before: self.not_before,
                not_after: self.not_after,
            });
        }
        Ok(())
    }
}

/// A configured attestation root: an RSA certificate whose self-signature verifies. Its
/// validity is checked at each verification.
pub struct RootCa {
    der: Vec<u8>,
    subject_der: Vec<u8>,
    key: RsaPublicKey,
    cert: ParsedCert,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("der_len", &self.der.len())
            .field("not_before", &self.cert.not_before)
            .field("not_after", &self.cert.not_after)
            .finish()
    }
}

impl RootCa {
    /// Parses a DER root certificate and checks its self-signature.
    pub fn from_der(der: &[u8]) -> Result<Self, AttestationError> {
        let cert = ParsedCert::parse(der, "root")?;
        if cert.issuer_der != cert.subject_der
            || !rsa_sha256_verify(&cert.key, &cert.tbs_der, &cert.signature)
        {
            return Err(AttestationError::BadRootSignature);
        }
        Ok(RootCa {
            der: der.to_vec(),
            subject_der: cert.subject_der.clone(),
            key: cert.key.clone(),
            cert,
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Start of validity (Unix seconds).
    pub fn not_before(&self) -> u64 {
        self.cert.not_before
    }

    /// End of validity, inclusive (Unix seconds).
    pub fn not_after(&self) -> u64 {
        self.cert.not_after
    }

    /// Whether the root is valid at `at`.
    pub fn check_valid_at(&self, at: u64) -> Result<(), AttestationError> {
        self.cert.check_valid_at(at)
    }

    /// Checks that `signing_cert_der` is issued by this root (issuer and signature), whatever
    /// the time.
    pub(crate) fn check_issued(
        &self,
        signing_cert_der: &[u8],
    ) -> Result<RsaPublicKey, AttestationError> {
        let signing = ParsedCert::parse(signing_cert_der, "signing")?;
        if signing.issuer_der != self.subject_der {
            return Err(AttestationError::IssuerMismatch);
        }
        if !rsa_sha256_verify(&self.key, &signing.tbs_der, &signing.signature) {
            return Err(AttestationError::BadCertificateSignature);
        }
        Ok(signing.key)
    }
}
