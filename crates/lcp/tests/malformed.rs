//! Reports a genuine authority signed but whose content is wrong are refused with the exact
//! reason, and arbitrary bytes never make the decoders panic.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kh_lcp::attestation::QuoteBody;
use kh_lcp::{
    AttestationError, AttestationPolicy, EmittedState, Height, MisbehaviourMessage, PrevState,
    ProxyMessage, SignedReport, SimulationCa, StateId, TrustingPeriodContext, UpdateStateMessage,
    ValidationContext, VerifyMembershipMessage,
};
use proptest::prelude::*;

const AT: u64 = 1_718_464_245;

fn ca() -> &'static SimulationCa {
    static CA: OnceLock<SimulationCa> = OnceLock::new();
    CA.get_or_init(|| SimulationCa::generate(1_700_000_000, 4_102_444_800).expect("generate"))
}

fn good_report_data() -> [u8; 64] {
    let mut rd = [0u8; 64];
    rd[0] = 1;
    rd[1..21].copy_from_slice(&[0x11; 20]);
    rd
}

fn quote_b64(report_data: [u8; 64]) -> String {
    B64.encode(QuoteBody::new_simulated(0x05, 0x07, [9; 32], report_data).as_bytes())
}

fn avr(version: &str, timestamp: &str, status: &str, extra: &str, quote: &str) -> String {
    format!(
        r#"{{"id":"1","timestamp":"{timestamp}","version":{version}{extra},"isvEnclaveQuoteStatus":"{status}","isvEnclaveQuoteBody":"{quote}"}}"#
    )
}

fn check(avr_text: String, policy: &AttestationPolicy) -> Result<(), AttestationError> {
    let report = ca().sign_avr(avr_text).expect("sign");
    report.verify(ca().root(), policy, AT).map(|_| ())
}

#[test]
fn signed_but_malformed_reports_are_refused_with_the_reason() {
    let p = AttestationPolicy::default();
    let q = quote_b64(good_report_data());
    let ts = "2024-06-15T14:54:05.076187";
    check(avr("4", ts, "OK", "", &q), &p).expect("the well-formed variant verifies");

    assert!(matches!(
        check(avr("3", ts, "OK", "", &q), &p),
        Err(AttestationError::UnsupportedVersion(3))
    ));
    assert!(matches!(
        check(avr("4", "2024-06-15 14:54:05", "OK", "", &q), &p),
        Err(AttestationError::BadTimestamp(_))
    ));
    assert!(matches!(
        check("not json".to_owned(), &p),
        Err(AttestationError::MalformedReport(_))
    ));
    assert!(matches!(
        check(avr("4", ts, "OK", r#","version":4"#, &q), &p),
        Err(AttestationError::MalformedReport(m)) if m.contains("duplicate")
    ));
    assert!(matches!(
        check(r#"{"id":"1","timestamp":"2024-06-15T14:54:05","version":4,"isvEnclaveQuoteStatus":"OK"}"#.to_owned(), &p),
        Err(AttestationError::MalformedReport(_))
    ));
    let short = B64.encode([0u8; 431]);
    assert!(matches!(
        check(avr("4", ts, "OK", "", &short), &p),
        Err(AttestationError::BadQuoteBody(_))
    ));
    assert!(matches!(
        check(avr("4", ts, "OK", "", "***"), &p),
        Err(AttestationError::BadQuoteBody(_))
    ));

    let mut rd = good_report_data();
    rd[0] = 2;
    assert!(matches!(
        check(avr("4", ts, "OK", "", &quote_b64(rd)), &p),
        Err(AttestationError::UnsupportedReportDataVersion(2))
    ));
    let mut rd = good_report_data();
    rd[63] = 1;
    assert!(matches!(
        check(avr("4", ts, "OK", "", &quote_b64(rd)), &p),
        Err(AttestationError::ReportDataReservedNotZero)
    ));
}

#[test]
fn quote_status_and_advisory_rules() {
    let q = quote_b64(good_report_data());
    let ts = "2024-06-15T14:54:05";
    let advisories = r#","advisoryIDs":["INTEL-SA-00001","INTEL-SA-00002"]"#;
    let mut p = AttestationPolicy::default();
    // A non-OK status needs an allow-list entry...
    assert!(matches!(
        check(avr("4", ts, "SW_HARDENING_NEEDED", advisories, &q), &p),
        Err(AttestationError::QuoteStatusNotAllowed(s)) if s == "SW_HARDENING_NEEDED"
    ));
    p.allowed_quote_statuses
        .insert("SW_HARDENING_NEEDED".into());
    // ...and then every advisory must be allowed.
    p.allowed_advisory_ids.insert("INTEL-SA-00001".into());
    assert!(matches!(
        check(avr("4", ts, "SW_HARDENING_NEEDED", advisories, &q), &p),
        Err(AttestationError::AdvisoryNotAllowed(a)) if a == "INTEL-SA-00002"
    ));
    p.allowed_advisory_ids.insert("INTEL-SA-00002".into());
    check(avr("4", ts, "SW_HARDENING_NEEDED", advisories, &q), &p).expect("all allowed");
    // OK needs nothing (its advisories are not consulted, as LCP clients do).
    check(
        avr("4", ts, "OK", advisories, &q),
        &AttestationPolicy::default(),
    )
    .expect("OK");
    // Statuses that no allow list names are refused.
    assert!(matches!(
        check(avr("4", ts, "SIGNATURE_INVALID", "", &q), &p),
        Err(AttestationError::QuoteStatusNotAllowed(_))
    ));
}

fn height() -> impl Strategy<Value = Height> {
    (any::<u64>(), any::<u64>()).prop_map(|(r, h)| Height::new(r, h))
}

fn nonzero_height() -> impl Strategy<Value = Height> {
    (any::<u64>(), 1..u64::MAX).prop_map(|(r, h)| Height::new(r, h))
}

fn state_id() -> impl Strategy<Value = StateId> {
    any::<[u8; 32]>().prop_map(StateId)
}

fn context() -> impl Strategy<Value = ValidationContext> {
    prop_oneof![
        Just(ValidationContext::Empty),
        any::<[u128; 4]>().prop_map(
            |w| ValidationContext::TrustingPeriod(TrustingPeriodContext {
                untrusted_header_timestamp_ns: w[0],
                trusted_state_timestamp_ns: w[1],
                trusting_period_ns: w[2],
                clock_drift_ns: w[3],
            })
        ),
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..80)
}

fn message() -> impl Strategy<Value = ProxyMessage> {
    let update = (
        proptest::option::of((
            nonzero_height(),
            state_id().prop_filter("non-zero", |s| !s.is_zero()),
        )),
        height(),
        state_id(),
        any::<u128>(),
        context(),
        proptest::collection::vec((height(), bytes()), 0..3),
    )
        .prop_map(
            |(prev, post_height, post_state_id, timestamp_ns, context, emitted)| {
                ProxyMessage::UpdateState(UpdateStateMessage {
                    prev,
                    post_height,
                    post_state_id,
                    timestamp_ns,
                    context,
                    emitted_states: emitted
                        .into_iter()
                        .map(|(height, state)| EmittedState { height, state })
                        .collect(),
                })
            },
        );
    let membership = (
        bytes(),
        bytes(),
        proptest::option::of(any::<[u8; 32]>().prop_filter("non-zero", |v| *v != [0; 32])),
        height(),
        state_id(),
    )
        .prop_map(|(prefix, path, value, height, state_id)| {
            ProxyMessage::VerifyMembership(VerifyMembershipMessage {
                prefix,
                path,
                value,
                height,
                state_id,
            })
        });
    let misbehaviour = (
        proptest::collection::vec((height(), state_id()), 0..3),
        context(),
        bytes(),
    )
        .prop_map(|(prev, context, client_message)| {
            ProxyMessage::Misbehaviour(MisbehaviourMessage {
                prev_states: prev
                    .into_iter()
                    .map(|(height, state_id)| PrevState { height, state_id })
                    .collect(),
                context,
                client_message,
            })
        });
    prop_oneof![update, membership, misbehaviour]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn messages_round_trip(m in message()) {
        let bytes = m.encode();
        prop_assert_eq!(ProxyMessage::decode(&bytes), Ok(m));
    }

    /// Whatever decodes is canonical: re-encoding gives the same bytes.
    #[test]
    fn decoding_is_canonical_on_changed_messages(m in message(), i in any::<usize>(), x in 1u8..) {
        let mut bytes = m.encode();
        let at = i % bytes.len();
        bytes[at] ^= x;
        if let Ok(decoded) = ProxyMessage::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
            prop_assert_ne!(decoded, m);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ProxyMessage::decode(&b);
        let _ = kh_lcp::CommitmentProofs::decode(&b);
        let _ = ValidationContext::decode(&b);
        let _ = SignedReport::from_json(&b);
    }
}
