//! DCAP quote verification (feature `dcap`): the production attestation path of the Rust LCP
//! client (DESIGN §5: Intel retires EPID/IAS; LCP moved to DCAP). A quote with its collateral
//! (`QuoteCollateralV3` JSON: TCB info, QE identity, CRLs, issuer chains) is verified with the
//! `dcap-qvl` crate against Intel's SGX root at a given time; then the same policy as for IAS
//! reports applies: the TCB status (`UpToDate`, or an allowed status whose advisories are all
//! allowed), the DEBUG attribute, the MRENCLAVE pin, and report data v1
//! (`0x01 ‖ enclave key ‖ operator ‖ zeros`).

use crate::attestation::{AttestationPolicy, ReportData, SGX_FLAG_DEBUG};

/// The TCB status that needs no allow-list entry.
pub const STATUS_UP_TO_DATE: &str = "UpToDate";
/// Largest collateral JSON accepted, bytes.
pub const MAX_COLLATERAL_LEN: usize = 256 * 1024;
/// Largest quote accepted, bytes.
pub const MAX_QUOTE_LEN: usize = 64 * 1024;

/// Why a DCAP quote was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcapError {
    /// An input is larger than its limit.
    #[error("{0} is too large")]
    TooLarge(&'static str),
    /// The collateral does not parse.
    #[error("collateral: {0}")]
    Collateral(String),
    /// Quote verification failed (signatures, chains, CRLs, TCB, QE identity, times).
    #[error("quote verification: {0}")]
    Quote(String),
    /// The quote is not an SGX enclave quote (TDX).
    #[error("not an SGX enclave quote")]
    NotSgx,
    /// The TCB status is not allowed.
    #[error("TCB status {0} is not allowed")]
    StatusNotAllowed(String),
    /// An advisory is not allowed.
    #[error("advisory {0} is not allowed")]
    AdvisoryNotAllowed(String),
    /// A debug enclave outside development mode.
    #[error("debug enclave")]
    DebugEnclave,
    /// Another enclave build.
    #[error("MRENCLAVE {actual} is not the pinned {expected}")]
    MrenclaveMismatch {
        /// Pinned.
        expected: String,
        /// In the quote.
        actual: String,
    },
    /// The report data is not LCP report data v1.
    #[error("report data: {0}")]
    ReportData(String),
}

/// What a verified DCAP quote attests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The TCB status.
    pub status: String,
    /// The advisories.
    pub advisory_ids: Vec<String>,
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// Whether the enclave is a debug enclave.
    pub debug: bool,
    /// The enclave key and operator.
    pub report_data: ReportData,
}

/// Verifies `quote` with its collateral JSON at Unix time `now` under `policy` (its
/// `key_expiration` is not consulted: a quote carries no attestation time; the caller dates
/// the key from `now`).
pub fn verify_quote(
    quote: &[u8],
    collateral_json: &[u8],
    policy: &AttestationPolicy,
    now: u64,
) -> Result<VerifiedQuote, DcapError> {
    if quote.len() > MAX_QUOTE_LEN {
        return Err(DcapError::TooLarge("quote"));
    }
    if collateral_json.len() > MAX_COLLATERAL_LEN {
        return Err(DcapError::TooLarge("collateral"));
    }
    let collateral: dcap_qvl::QuoteCollateralV3 = serde_json::from_slice(collateral_json)
        .map_err(|e| DcapError::Collateral(e.to_string()))?;
    let verified = dcap_qvl::verify::verify(quote, &collateral, now)
        .map_err(|e| DcapError::Quote(format!("{e:#}")))?;
    let dcap_qvl::quote::Report::SgxEnclave(report) = verified.report else {
        return Err(DcapError::NotSgx);
    };
    if verified.status != STATUS_UP_TO_DATE {
        if !policy.allowed_quote_statuses.contains(&verified.status) {
            return Err(DcapError::StatusNotAllowed(verified.status));
        }
        if let Some(bad) = verified
            .advisory_ids
            .iter()
            .find(|a| !policy.allowed_advisory_ids.contains(a.as_str()))
        {
            return Err(DcapError::AdvisoryNotAllowed(bad.clone()));
        }
    }
    let debug = u64::from(report.attributes[0]) & SGX_FLAG_DEBUG != 0;
    if debug && !policy.allow_debug {
        return Err(DcapError::DebugEnclave);
    }
    if let Some(pinned) = policy.mrenclave
        && pinned != report.mr_enclave
    {
        return Err(DcapError::MrenclaveMismatch {
            expected: hex::encode(pinned),
            actual: hex::encode(report.mr_enclave),
        });
    }
    let report_data =
        ReportData::parse(&report.report_data).map_err(|e| DcapError::ReportData(e.to_string()))?;
    Ok(VerifiedQuote {
        status: verified.status,
        advisory_ids: verified.advisory_ids,
        mrenclave: report.mr_enclave,
        debug,
        report_data,
    })
}
