//! DCAP quote verification (feature `dcap`) on the sample quote and collateral published with
//! the `dcap-qvl` crate (`vectors/dcap/`): the quote verifies at the collateral's issue time with
//! status ConfigurationAndSWHardeningNeeded and advisories INTEL-SA-00289, INTEL-SA-00615; the
//! LCP policy then applies (status and advisory allow lists, MRENCLAVE pin), and its report data,
//! not made by an LCP enclave, is refused. Changed bytes and expired collateral are refused.
#![cfg(feature = "dcap")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kh_lcp::AttestationPolicy;
use kh_lcp::client::{LcpClient, LcpClientError, LcpClientState};
use kh_lcp::dcap::{DcapError, verify_quote};

/// The TCB info's issue date, 2025-06-19T10:56:11Z.
const ISSUED: u64 = 1_750_330_571;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/dcap")
}

fn quote() -> Vec<u8> {
    std::fs::read(dir().join("sgx_quote")).unwrap()
}

fn collateral() -> Vec<u8> {
    std::fs::read(dir().join("sgx_quote_collateral.json")).unwrap()
}

fn permissive() -> AttestationPolicy {
    AttestationPolicy {
        mrenclave: None,
        allowed_quote_statuses: BTreeSet::from(["ConfigurationAndSWHardeningNeeded".to_owned()]),
        allowed_advisory_ids: BTreeSet::from([
            "INTEL-SA-00289".to_owned(),
            "INTEL-SA-00615".to_owned(),
        ]),
        allow_debug: true,
        key_expiration: None,
    }
}

#[test]
fn the_sample_quote_verifies_and_its_report_data_is_not_lcp_v1() {
    let err = verify_quote(&quote(), &collateral(), &permissive(), ISSUED).unwrap_err();
    assert!(matches!(err, DcapError::ReportData(_)), "{err}");
}

#[test]
fn the_lcp_policy_applies_to_the_quote() {
    let mut strict = permissive();
    strict.allowed_quote_statuses.clear();
    assert_eq!(
        verify_quote(&quote(), &collateral(), &strict, ISSUED),
        Err(DcapError::StatusNotAllowed(
            "ConfigurationAndSWHardeningNeeded".into()
        ))
    );
    let mut one_advisory = permissive();
    one_advisory.allowed_advisory_ids.remove("INTEL-SA-00615");
    assert_eq!(
        verify_quote(&quote(), &collateral(), &one_advisory, ISSUED),
        Err(DcapError::AdvisoryNotAllowed("INTEL-SA-00615".into()))
    );
    let mut pinned = permissive();
    pinned.mrenclave = Some([0x42; 32]);
    assert!(matches!(
        verify_quote(&quote(), &collateral(), &pinned, ISSUED),
        Err(DcapError::MrenclaveMismatch { .. })
    ));
}

#[test]
fn changed_bytes_and_expired_collateral_are_refused() {
    // Report data (quote header 48 + report body offset 320), MRENCLAVE (48 + 64), a byte of the
    // signature data: each breaks the QE's signature or the chain.
    for offset in [48 + 320, 48 + 64, 48 + 384 + 10] {
        let mut q = quote();
        q[offset] ^= 1;
        assert!(
            matches!(
                verify_quote(&q, &collateral(), &permissive(), ISSUED),
                Err(DcapError::Quote(_))
            ),
            "offset {offset}"
        );
    }
    // Two months after issue, the collateral (next update a month after issue) is stale.
    assert!(matches!(
        verify_quote(&quote(), &collateral(), &permissive(), ISSUED + 60 * 86_400),
        Err(DcapError::Quote(_))
    ));
    assert!(matches!(
        verify_quote(&quote(), b"{}", &permissive(), ISSUED),
        Err(DcapError::Collateral(_))
    ));
}

#[test]
fn the_lcp_client_refuses_a_quote_without_lcp_report_data() {
    let mut state = LcpClientState::new([0; 32], 3600);
    state.allowed_quote_statuses = permissive().allowed_quote_statuses;
    state.allowed_advisory_ids = permissive().allowed_advisory_ids;
    state.development_mode = true;
    let root = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/lcp/certs/simulation_rootca.der"),
    )
    .unwrap();
    let mut client = LcpClient::new(root, state).unwrap();
    // Pinned to another MRENCLAVE: refused before the report data is read.
    assert!(matches!(
        client.register_enclave_key_dcap(&quote(), &collateral(), None, ISSUED),
        Err(LcpClientError::Dcap(DcapError::MrenclaveMismatch { .. }))
    ));
    assert!(client.enclave_keys.is_empty());
}
