//! The simulation authority issues reports that verify against its root exactly as Intel's
//! reports verify against Intel's root, and only against its root.

use std::sync::OnceLock;

use alloy_primitives::Address;
use kh_lcp::{AttestationError, AttestationPolicy, EnclaveKey, SignedReport, SimulationCa};

const NOT_BEFORE: u64 = 1_700_000_000; // 2023-11-14
const NOT_AFTER: u64 = 4_102_444_800; // 2100-01-01
const AT: u64 = 1_718_464_245;

/// One authority per test binary (RSA key generation takes a moment).
fn ca() -> &'static SimulationCa {
    static CA: OnceLock<SimulationCa> = OnceLock::new();
    CA.get_or_init(|| SimulationCa::generate(NOT_BEFORE, NOT_AFTER).expect("generate"))
}

fn policy(mrenclave: [u8; 32], allow_debug: bool) -> AttestationPolicy {
    AttestationPolicy {
        mrenclave: Some(mrenclave),
        allow_debug,
        ..AttestationPolicy::default()
    }
}

#[test]
fn simulated_reports_verify_against_the_simulation_root() {
    let key = EnclaveKey::generate();
    let operator: Address = "0xc1eae5ef781f4ee5867ec6725630e7dc17fa3436"
        .parse()
        .expect("address");
    let mrenclave = [0x5a; 32];
    for (op, debug) in [
        (None, false),
        (Some(operator), false),
        (Some(operator), true),
    ] {
        let report = ca()
            .simulate(key.address(), op, mrenclave, AT, debug)
            .expect("simulate");
        // Through the JSON form, as files travel.
        let report = SignedReport::from_json(report.to_json().as_bytes()).expect("parse");
        let v = report
            .verify(ca().root(), &policy(mrenclave, true), AT)
            .expect("verify");
        assert_eq!(v.report_data.enclave_key, key.address());
        assert_eq!(v.report_data.operator, op);
        assert_eq!(v.quote.mrenclave(), mrenclave);
        assert_eq!(v.quote.is_debug(), debug);
        assert_eq!(v.attestation_time, AT);
        assert_eq!(v.quote_status, "OK");
        assert!(v.advisory_ids.is_empty());
        // A production-mode client refuses the debug enclave only.
        let strict = report.verify(ca().root(), &policy(mrenclave, false), AT);
        if debug {
            assert!(matches!(strict, Err(AttestationError::DebugEnclave { .. })));
        } else {
            strict.expect("production enclave");
        }
        // Another measurement is refused.
        assert!(matches!(
            report.verify(ca().root(), &policy([0x5b; 32], true), AT),
            Err(AttestationError::MrenclaveMismatch { .. })
        ));
    }
}

#[test]
fn simulated_reports_follow_the_ias_field_order() {
    let report = ca()
        .simulate(Address::repeat_byte(0x11), None, [1; 32], AT, true)
        .expect("simulate");
    let order = [
        "\"id\"",
        "\"timestamp\"",
        "\"version\":4",
        "\"isvEnclaveQuoteStatus\"",
        "\"isvEnclaveQuoteBody\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| report.avr.find(k).unwrap_or_else(|| panic!("{k} missing")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", report.avr);
    assert!(
        report
            .avr
            .contains("\"timestamp\":\"2024-06-15T15:10:45.000000\"")
    );
}

#[test]
fn a_fresh_authority_does_not_vouch_for_another_one() {
    let other = SimulationCa::generate(NOT_BEFORE, NOT_AFTER).expect("generate");
    let report = other
        .simulate(Address::repeat_byte(0x22), None, [2; 32], AT, false)
        .expect("simulate");
    // Same subject names, different keys: the signature check refuses it.
    let err = report
        .verify(ca().root(), &policy([2; 32], true), AT)
        .expect_err("other root");
    assert!(
        matches!(err, AttestationError::BadCertificateSignature),
        "{err}"
    );
    // The zero enclave key is refused.
    let zero = ca()
        .simulate(Address::ZERO, None, [2; 32], AT, false)
        .expect("simulate");
    assert!(matches!(
        zero.verify(ca().root(), &policy([2; 32], true), AT),
        Err(AttestationError::ZeroEnclaveKey)
    ));
}

#[test]
fn validity_of_the_simulation_certificates_is_enforced() {
    let report = ca()
        .simulate(Address::repeat_byte(0x33), None, [3; 32], AT, false)
        .expect("simulate");
    let p = policy([3; 32], false);
    report
        .verify(ca().root(), &p, NOT_BEFORE)
        .expect("first second");
    report
        .verify(ca().root(), &p, NOT_AFTER)
        .expect("last second");
    for t in [NOT_BEFORE - 1, NOT_AFTER + 1] {
        assert!(matches!(
            report.verify(ca().root(), &p, t),
            Err(AttestationError::CertificateNotValid { .. })
        ));
    }
    assert!(SimulationCa::generate(10, 10).is_err());
}

#[test]
fn an_authority_reloads_from_its_parts() {
    let key = ca().signing_key_pkcs8_der().expect("key");
    let loaded =
        SimulationCa::from_parts(ca().root_der(), ca().signing_cert_der(), &key).expect("load");
    let report = loaded
        .simulate(Address::repeat_byte(0x44), None, [4; 32], AT, false)
        .expect("simulate");
    report
        .verify(ca().root(), &policy([4; 32], false), AT)
        .expect("verify");
    // A signing key that does not match the certificate is refused.
    let other = SimulationCa::generate(NOT_BEFORE, NOT_AFTER).expect("generate");
    let other_key = other.signing_key_pkcs8_der().expect("key");
    assert!(
        SimulationCa::from_parts(ca().root_der(), ca().signing_cert_der(), &other_key).is_err()
    );
    // A signing certificate of another root is refused.
    assert!(
        SimulationCa::from_parts(ca().root_der(), other.signing_cert_der(), &other_key).is_err()
    );
    assert!(SimulationCa::from_parts(b"garbage", ca().signing_cert_der(), &key).is_err());
}

#[test]
fn keys_expire_key_expiration_seconds_after_attestation() {
    let report = ca()
        .simulate(Address::repeat_byte(0x55), None, [5; 32], AT, false)
        .expect("simulate");
    let p = AttestationPolicy {
        key_expiration: Some(604_800),
        ..policy([5; 32], false)
    };
    report
        .verify(ca().root(), &p, AT + 604_799)
        .expect("last second");
    assert!(matches!(
        report.verify(ca().root(), &p, AT + 604_800),
        Err(AttestationError::KeyExpired {
            expires_at,
            ..
        }) if expires_at == AT + 604_800
    ));
}
