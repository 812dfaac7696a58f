//! Every case of `vectors/lcp` (lcp-solidity's data: real Intel IAS reports and the
//! simulation data sets) gives the result `vectors/lcp/README.md` documents.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, keccak256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kh_lcp::{
    AttestationError, AttestationPolicy, MessageError, ProxyMessage, RootCa, SignedReport, StateId,
    ValidationContext, recover_signer,
};
use prost::Message as _;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/lcp")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn derived() -> Value {
    serde_json::from_slice(&read("lcp-expected.derived.json")).expect("derived json")
}

fn root(name: &str) -> RootCa {
    RootCa::from_der(&read(&format!("certs/{name}"))).expect("root")
}

fn hex32(v: &Value) -> [u8; 32] {
    let s = v.as_str().expect("hex string");
    hex::decode(s.trim_start_matches("0x"))
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

fn addr(v: &Value) -> Address {
    v.as_str().expect("address").parse().expect("address")
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// The policy of an LCP client built from the AVR itself, as the lcp-solidity tests do.
fn policy_for(expect: &Value, allow_debug: bool) -> AttestationPolicy {
    AttestationPolicy {
        mrenclave: Some(hex32(&expect["mrenclave"])),
        allowed_quote_statuses: [expect["quote_status"].as_str().expect("status").to_owned()]
            .into_iter()
            .collect(),
        allowed_advisory_ids: strings(&expect["advisoryIDs"]),
        allow_debug,
        // The clients of the data sets are built with key_expiration 604800 (7 days).
        key_expiration: Some(604_800),
    }
}

/// Every AVR in the vectors, with the time the README says to verify it at.
fn avr_cases() -> Vec<(&'static str, u64)> {
    vec![
        ("reports/valid/001-avr", 1_692_703_263),
        ("reports/valid/002-avr", 1_692_703_263),
        (
            "reports/valid/operator_0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436",
            1_718_465_726,
        ),
        ("client/01/001-avr", 1_718_464_245),
        ("client/02/001-avr", 1_718_461_269),
        ("client/03/001-avr", 1_718_465_726),
        ("client/03/002-avr", 1_718_465_726),
        ("client/03/003-avr", 1_718_465_726),
        ("client/03/004-avr", 1_718_465_726),
    ]
}

#[test]
fn every_valid_report_verifies_with_the_documented_elements() {
    let d = derived();
    for (file, at) in avr_cases() {
        let expect = &d["reports_and_avrs"][file];
        let root = root(expect["chains_to"].as_str().expect("root name"));
        let report = SignedReport::from_json(&read(file)).expect(file);
        let v = report
            .verify(&root, &policy_for(expect, true), at)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            v.report_data.enclave_key,
            addr(&expect["enclave_key"]),
            "{file}"
        );
        let op = addr(&expect["operator"]);
        assert_eq!(
            v.report_data.operator,
            (!op.is_zero()).then_some(op),
            "{file}"
        );
        assert_eq!(v.quote.mrenclave(), hex32(&expect["mrenclave"]), "{file}");
        assert_eq!(
            v.attestation_time,
            expect["attestation_time_unix"].as_u64().expect("time"),
            "{file}"
        );
        assert_eq!(v.quote_status, expect["quote_status"].as_str().expect("s"));
        assert_eq!(
            v.advisory_ids.iter().cloned().collect::<BTreeSet<_>>(),
            strings(&expect["advisoryIDs"])
        );
        assert_eq!(
            v.quote.flags() & 0xff,
            expect["attributes_flags"].as_u64().expect("flags")
        );
        assert!(v.quote.is_debug());
        assert_eq!(v.id, expect["id"].as_str().expect("id"));
        // Seven days after attestation the key has expired.
        let expiry = expect["key_expiration_if_7_days"].as_u64().expect("expiry");
        if expiry <= 1_795_167_418 {
            let err = report
                .verify(&root, &policy_for(expect, true), expiry)
                .expect_err("expired");
            assert!(
                matches!(err, AttestationError::KeyExpired { expires_at, .. } if expires_at == expiry),
                "{file}: {err}"
            );
            report
                .verify(&root, &policy_for(expect, true), expiry - 1)
                .expect("last second");
        }
        // The file's informational fields agree with what the signature covers.
        let file_json: Value = serde_json::from_slice(&read(file)).expect("json");
        let enclave_key = B64
            .decode(file_json["enclave_key"].as_str().expect("enclave_key"))
            .expect("b64");
        assert_eq!(enclave_key, v.report_data.enclave_key.as_slice());
        let mrenclave = B64
            .decode(file_json["mrenclave"].as_str().expect("mrenclave"))
            .expect("b64");
        assert_eq!(mrenclave, v.quote.mrenclave());
    }
}

#[test]
fn debug_enclaves_are_refused_outside_development_mode() {
    let d = derived();
    for (file, at) in avr_cases() {
        let expect = &d["reports_and_avrs"][file];
        let root = root(expect["chains_to"].as_str().expect("root name"));
        let report = SignedReport::from_json(&read(file)).expect(file);
        let err = report
            .verify(&root, &policy_for(expect, false), at)
            .expect_err(file);
        assert!(
            matches!(err, AttestationError::DebugEnclave { flags: 7 }),
            "{file}: {err}"
        );
    }
}

#[test]
fn the_wrong_signature_report_is_refused() {
    let d = derived();
    let expect = &d["reports_and_avrs"]["reports/invalid/001-avr"];
    let report = SignedReport::from_json(&read("reports/invalid/001-avr")).expect("parse");
    let err = report
        .verify(
            &root("Intel_SGX_Attestation_RootCA.der"),
            &policy_for(expect, true),
            1_692_703_263,
        )
        .expect_err("wrong signature");
    assert!(matches!(err, AttestationError::BadReportSignature), "{err}");
    // Same AVR text as valid/001: only the signature differs.
    let valid = SignedReport::from_json(&read("reports/valid/001-avr")).expect("parse");
    assert_eq!(valid.avr, report.avr);
    assert_ne!(valid.signature, report.signature);
}

#[test]
fn certificate_validity_is_judged_at_the_given_time() {
    let d = derived();
    let v = &d["rules"]["cert_validity"];
    let intel_root = root("Intel_SGX_Attestation_RootCA.der");
    let root_after = v["Intel_SGX_Attestation_RootCA_notAfter"]
        .as_u64()
        .expect("t");
    assert_eq!(intel_root.not_after(), root_after);
    intel_root
        .check_valid_at(root_after)
        .expect("valid at notAfter");
    assert!(matches!(
        intel_root.check_valid_at(root_after + 1),
        Err(AttestationError::CertificateNotValid { which: "root", .. })
    ));
    let sim_root = root("simulation_rootca.der");
    let sim_after = v["simulation_rootca_notAfter"].as_u64().expect("t");
    assert_eq!(sim_root.not_after(), sim_after);
    sim_root.check_valid_at(sim_after).expect("valid");
    assert!(sim_root.check_valid_at(sim_after + 1).is_err());

    // The Intel signing certificate expires on 2026-11-20.
    let signing_after = v["intel_signing_notAfter"].as_u64().expect("t");
    let expect = &d["reports_and_avrs"]["reports/valid/001-avr"];
    let report = SignedReport::from_json(&read("reports/valid/001-avr")).expect("parse");
    // Certificate validity only: no key expiry.
    let policy = AttestationPolicy {
        key_expiration: None,
        ..policy_for(expect, true)
    };
    report
        .verify(&intel_root, &policy, signing_after)
        .expect("valid at notAfter");
    let err = report
        .verify(&intel_root, &policy, signing_after + 1)
        .expect_err("expired");
    assert!(
        matches!(
            err,
            AttestationError::CertificateNotValid {
                which: "signing",
                not_after,
                ..
            } if not_after == signing_after
        ),
        "{err}"
    );
    // Before the signing certificate's notBefore.
    let err = report
        .verify(&intel_root, &policy, 0)
        .expect_err("too early");
    assert!(
        matches!(err, AttestationError::CertificateNotValid { .. }),
        "{err}"
    );
    // The copied signing certificate is the one inside the reports.
    assert_eq!(report.signing_cert, read("certs/intel_signing.der"));
    let sim = SignedReport::from_json(&read("client/02/001-avr")).expect("parse");
    assert_eq!(sim.signing_cert, read("certs/simulation_signing.der"));
}

#[test]
fn reports_do_not_verify_under_the_other_root() {
    let d = derived();
    for (file, at) in avr_cases() {
        let expect = &d["reports_and_avrs"][file];
        let other = if expect["chains_to"] == "simulation_rootca.der" {
            "Intel_SGX_Attestation_RootCA.der"
        } else {
            "simulation_rootca.der"
        };
        let report = SignedReport::from_json(&read(file)).expect(file);
        let err = report
            .verify(&root(other), &policy_for(expect, true), at)
            .expect_err(file);
        assert!(
            matches!(
                err,
                AttestationError::IssuerMismatch | AttestationError::BadCertificateSignature
            ),
            "{file}: {err}"
        );
    }
}

#[test]
fn quote_status_advisories_and_mrenclave_are_checked() {
    let d = derived();
    let file = "reports/valid/002-avr";
    let expect = &d["reports_and_avrs"][file];
    let root = root("Intel_SGX_Attestation_RootCA.der");
    let report = SignedReport::from_json(&read(file)).expect("parse");
    let at = 1_692_703_263;

    let mut p = policy_for(expect, true);
    p.allowed_quote_statuses.clear();
    let err = report.verify(&root, &p, at).expect_err("status");
    assert!(
        matches!(&err, AttestationError::QuoteStatusNotAllowed(s) if s == "GROUP_OUT_OF_DATE"),
        "{err}"
    );

    for advisory in strings(&expect["advisoryIDs"]) {
        let mut p = policy_for(expect, true);
        p.allowed_advisory_ids.remove(&advisory);
        let err = report.verify(&root, &p, at).expect_err("advisory");
        assert!(
            matches!(&err, AttestationError::AdvisoryNotAllowed(a) if *a == advisory),
            "{err}"
        );
    }

    let mut p = policy_for(expect, true);
    let mut other = hex32(&expect["mrenclave"]);
    other[31] ^= 1;
    p.mrenclave = Some(other);
    let err = report.verify(&root, &p, at).expect_err("mrenclave");
    assert!(
        matches!(err, AttestationError::MrenclaveMismatch { .. }),
        "{err}"
    );

    // No pin accepts any measurement.
    let mut p = policy_for(expect, true);
    p.mrenclave = None;
    report.verify(&root, &p, at).expect("no pin");

    // A simulation report with status OK needs no allow-list entry.
    let sim_expect = &d["reports_and_avrs"]["client/02/001-avr"];
    let sim = SignedReport::from_json(&read("client/02/001-avr")).expect("parse");
    let p = AttestationPolicy {
        allow_debug: true,
        ..AttestationPolicy::default()
    };
    let v = sim
        .verify(&crate::root("simulation_rootca.der"), &p, 1_718_461_269)
        .expect("OK status");
    assert_eq!(v.report_data.enclave_key, addr(&sim_expect["enclave_key"]));
}

#[test]
fn any_changed_byte_of_the_report_is_refused() {
    let d = derived();
    let file = "client/02/001-avr";
    let expect = &d["reports_and_avrs"][file];
    let root = root("simulation_rootca.der");
    let policy = policy_for(expect, true);
    let at = 1_718_461_269;
    let report = SignedReport::from_json(&read(file)).expect("parse");
    report.verify(&root, &policy, at).expect("valid");

    // Every byte of the AVR text (kept valid UTF-8 by flipping a low bit of ASCII bytes).
    let avr = report.avr.as_bytes().to_vec();
    for i in 0..avr.len() {
        let mut bytes = avr.clone();
        bytes[i] ^= 0x01;
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        let mutated = SignedReport {
            avr: text,
            ..report.clone()
        };
        assert!(
            matches!(
                mutated.verify(&root, &policy, at),
                Err(AttestationError::BadReportSignature)
            ),
            "avr byte {i}"
        );
    }
    for i in 0..report.signature.len() {
        let mut mutated = report.clone();
        mutated.signature[i] ^= 0x80;
        assert!(mutated.verify(&root, &policy, at).is_err(), "sig byte {i}");
    }
    for i in 0..report.signing_cert.len() {
        let mut mutated = report.clone();
        mutated.signing_cert[i] ^= 0x01;
        assert!(mutated.verify(&root, &policy, at).is_err(), "cert byte {i}");
    }
    // A truncated or extended signature.
    let mut short = report.clone();
    short.signature.pop();
    assert!(short.verify(&root, &policy, at).is_err());
    let mut long = report.clone();
    long.signature.push(0);
    assert!(long.verify(&root, &policy, at).is_err());
}

#[test]
fn roots_must_verify_their_own_signature() {
    let der = read("certs/simulation_rootca.der");
    for i in (0..der.len()).step_by(7) {
        let mut bad = der.clone();
        bad[i] ^= 0x01;
        assert!(RootCa::from_der(&bad).is_err(), "root byte {i}");
    }
    // A signing certificate is not a root (not self-signed).
    assert!(RootCa::from_der(&read("certs/simulation_signing.der")).is_err());
    assert!(RootCa::from_der(&read("certs/intel_signing.der")).is_err());
}

#[test]
fn malformed_report_files_are_refused() {
    for (bytes, what) in [
        (&b""[..], "empty"),
        (b"{}", "no fields"),
        (b"[1,2]", "array"),
        (
            b"{\"avr\":\"x\",\"signature\":\"!!\",\"signing_cert\":\"\"}",
            "bad base64",
        ),
    ] {
        assert!(
            matches!(
                SignedReport::from_json(bytes),
                Err(AttestationError::MalformedFile(_))
            ),
            "{what}"
        );
    }
    let huge = vec![b' '; kh_lcp::attestation::MAX_REPORT_FILE_LEN + 1];
    assert!(matches!(
        SignedReport::from_json(&huge),
        Err(AttestationError::TooLarge { .. })
    ));
}

/// The proxy message and signature of a `*_result` file (init results nest them in `proof`).
fn result_message(v: &Value) -> (Vec<u8>, Vec<u8>) {
    let p = if v.get("proof").is_some() {
        &v["proof"]
    } else {
        v
    };
    let message = B64
        .decode(p["message"].as_str().expect("message"))
        .expect("b64");
    let signature = B64
        .decode(p["signature"].as_str().expect("signature"))
        .expect("b64");
    (message, signature)
}

fn height(v: &Value) -> kh_lcp::Height {
    kh_lcp::Height::new(
        v[0].as_u64().expect("revision"),
        v[1].as_u64().expect("height"),
    )
}

#[test]
fn every_signed_proxy_message_decodes_and_recovers_its_enclave_key() {
    let d = derived();
    let mut checked = 0;
    for set in ["01", "02", "03"] {
        for m in d["datasets"][set]["messages"].as_array().expect("messages") {
            let file = m["file"].as_str().expect("file");
            let rel = format!("client/{set}/{file}");
            let result: Value = serde_json::from_slice(&read(&rel)).expect("json");
            let (message, signature) = result_message(&result);
            assert_eq!(
                format!("{}", keccak256(&message)),
                m["message_keccak256"].as_str().expect("hash"),
                "{rel}"
            );
            let decoded = ProxyMessage::decode(&message).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(decoded.encode(), message, "{rel}: canonical");
            assert_eq!(
                u64::from(decoded.message_type()),
                m["msg_type"].as_u64().expect("type")
            );
            if let Some(signer) = m.get("recovered_signer") {
                assert_eq!(
                    recover_signer(&message, &signature).expect("recover"),
                    addr(signer),
                    "{rel}"
                );
                assert_eq!(
                    u64::from(signature[64]),
                    m["sig_v"].as_u64().expect("v"),
                    "{rel}"
                );
            } else {
                assert!(signature.is_empty(), "{rel}: init results are unsigned");
            }
            match decoded {
                ProxyMessage::UpdateState(u) => {
                    let e = &m["update_state"];
                    let prev_h = height(&e["prev_height"]);
                    let prev_id = hex32(&e["prev_state_id"]);
                    match u.prev {
                        None => assert!(prev_h.is_zero() && prev_id == [0u8; 32]),
                        Some((h, id)) => {
                            assert_eq!(h, prev_h);
                            assert_eq!(id.0, prev_id);
                        }
                    }
                    assert_eq!(u.post_height, height(&e["post_height"]));
                    assert_eq!(u.post_state_id.0, hex32(&e["post_state_id"]));
                    assert_eq!(
                        u.timestamp_ns,
                        u128::from(e["timestamp_ns"].as_u64().expect("ts"))
                    );
                    assert_eq!(
                        format!("0x{}", hex::encode(u.context.encode())),
                        e["context"].as_str().expect("context")
                    );
                    let c = &e["context_decoded"];
                    match u.context {
                        ValidationContext::Empty => assert_eq!(c["context_type"], 0),
                        ValidationContext::TrustingPeriod(t) => {
                            assert_eq!(c["context_type"], 1);
                            let n = |k: &str| u128::from(c[k].as_u64().expect(k));
                            assert_eq!(
                                t.untrusted_header_timestamp_ns,
                                n("untrusted_header_timestamp_ns")
                            );
                            assert_eq!(
                                t.trusted_state_timestamp_ns,
                                n("trusted_state_timestamp_ns")
                            );
                            assert_eq!(t.trusting_period_ns, 1_209_600 * 1_000_000_000);
                            assert_eq!(t.clock_drift_ns, 5 * 1_000_000_000);
                            // Valid at the data set's block time, as the client checks it.
                            let now = u128::from(
                                d["datasets"][set]["block_timestamp"].as_u64().expect("t"),
                            ) * 1_000_000_000;
                            t.validate(now).expect("within the trusting period");
                        }
                    }
                    assert_eq!(
                        u.emitted_states.len() as u64,
                        e["emitted_state_count"].as_u64().expect("count")
                    );
                }
                ProxyMessage::VerifyMembership(vm) => {
                    let e = &m["verify_membership"];
                    assert_eq!(vm.prefix, e["prefix"].as_str().expect("prefix").as_bytes());
                    assert_eq!(vm.path, e["path"].as_str().expect("path").as_bytes());
                    assert_eq!(vm.value.unwrap_or_default(), hex32(&e["value"]));
                    assert_eq!(vm.height, height(&e["height"]));
                    assert_eq!(vm.state_id.0, hex32(&e["state_id"]));
                    // The value is keccak256 of the input's value (zero for absence).
                    let input_rel = rel.replace("_result", "_input");
                    let input: Value = serde_json::from_slice(&read(&input_rel)).expect("json");
                    match input.get("value").and_then(Value::as_str) {
                        Some(b64) => {
                            let raw = B64.decode(b64).expect("b64");
                            assert_eq!(vm.value, Some(keccak256(&raw).0), "{rel}");
                        }
                        None => assert_eq!(vm.value, None, "{rel}"),
                    }
                    assert_eq!(
                        vm.prefix,
                        B64.decode(input["prefix"].as_str().expect("p"))
                            .expect("b64")
                    );
                }
                ProxyMessage::Misbehaviour(_) => panic!("{rel}: no misbehaviour vectors"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 + 6 + 13);
}

#[test]
fn init_messages_emit_the_given_client_state_and_chain_their_state_ids() {
    let d = derived();
    for (set, init) in [("01", "002"), ("02", "002"), ("03", "005")] {
        let input: Value =
            serde_json::from_slice(&read(&format!("client/{set}/{init}-init_client_input")))
                .expect("json");
        let client_state = prost_types::Any {
            type_url: input["any_client_state"]["type_url"]
                .as_str()
                .expect("type_url")
                .to_owned(),
            value: B64
                .decode(input["any_client_state"]["value"].as_str().expect("v"))
                .expect("b64"),
        };
        let result: Value =
            serde_json::from_slice(&read(&format!("client/{set}/{init}-init_client_result")))
                .expect("json");
        let (message, _) = result_message(&result);
        let ProxyMessage::UpdateState(init_msg) = ProxyMessage::decode(&message).expect("decode")
        else {
            panic!("init is an update state");
        };
        assert_eq!(init_msg.prev, None);
        assert_eq!(init_msg.context, ValidationContext::Empty);
        // The emitted state is the client state as given (its protobuf `Any`).
        assert_eq!(init_msg.emitted_states.len(), 1);
        assert_eq!(
            init_msg.emitted_states[0].state,
            client_state.encode_to_vec()
        );
        assert_eq!(init_msg.emitted_states[0].height, init_msg.post_height);
        // Each update starts from the state the previous update (of the same key) ended in.
        let mut last = (init_msg.post_height, init_msg.post_state_id);
        for m in d["datasets"][set]["messages"].as_array().expect("messages") {
            let Some(u) = m.get("update_state") else {
                continue;
            };
            if u["prev_height"] == serde_json::json!([0, 0]) {
                continue;
            }
            let prev = (
                height(&u["prev_height"]),
                StateId(hex32(&u["prev_state_id"])),
            );
            if prev != last {
                // client/03 repeats one update under four keys.
                assert_eq!(set, "03");
            }
            last = (
                height(&u["post_height"]),
                StateId(hex32(&u["post_state_id"])),
            );
        }
    }
}

#[test]
fn state_id_hashes_the_two_encoded_anys() {
    let cs = prost_types::Any {
        type_url: "/ibc.lightclients.tendermint.v1.ClientState".to_owned(),
        value: vec![0x0a, 0x05, b'i', b'b', b'c', b'-', b'1'],
    };
    let cons = prost_types::Any {
        type_url: "/x".to_owned(),
        value: vec![],
    };
    // Protobuf by hand: field 1 (type_url) and field 2 (value, omitted when empty).
    let mut pre = vec![0x0a, 43];
    pre.extend_from_slice(cs.type_url.as_bytes());
    pre.extend_from_slice(&[0x12, 7]);
    pre.extend_from_slice(&cs.value);
    pre.extend_from_slice(&[0x0a, 2, b'/', b'x']);
    use sha2::Digest as _;
    let expect: [u8; 32] = sha2::Sha256::digest(&pre).into();
    assert_eq!(StateId::from_any(&cs, &cons).0, expect);
    assert_ne!(StateId::from_any(&cons, &cs).0, expect);
}

#[test]
fn changed_signed_messages_do_not_recover_the_enclave_key() {
    let result: Value =
        serde_json::from_slice(&read("client/01/003-update_client_result")).expect("json");
    let (message, signature) = result_message(&result);
    let key: Address = "0x836fec0cc99ed0242ed02fbaab648652b2372e41"
        .parse()
        .expect("addr");
    assert_eq!(recover_signer(&message, &signature).expect("recover"), key);
    for i in 0..message.len() {
        let mut m = message.clone();
        m[i] ^= 0x01;
        // Either the strict decoder refuses it, or it is another message the key never signed.
        if ProxyMessage::decode(&m).is_ok() {
            assert_ne!(recover_signer(&m, &signature).ok(), Some(key), "byte {i}");
        }
    }
    for i in 0..64 {
        let mut s = signature.clone();
        s[i] ^= 0x01;
        assert_ne!(recover_signer(&message, &s).ok(), Some(key), "sig byte {i}");
    }
    let mut s = signature.clone();
    s[64] = 2;
    assert_eq!(
        recover_signer(&message, &s),
        Err(MessageError::BadRecoveryId(2))
    );
    // v in {27, 28} is the same signature.
    let mut s = signature.clone();
    s[64] += 27;
    assert_eq!(recover_signer(&message, &s).expect("v+27"), key);
}

#[test]
fn operator_approvals_use_the_documented_eip712_digests() {
    let d = derived();
    for (file, _) in avr_cases() {
        let expect = &d["reports_and_avrs"][file];
        let report = SignedReport::from_json(&read(file)).expect(file);
        assert_eq!(
            format!(
                "{}",
                kh_lcp::operator::register_enclave_key_digest(&report.avr)
            ),
            expect["eip712_register_enclave_key_digest_derived"]
                .as_str()
                .expect("digest"),
            "{file}"
        );
    }
    // The operator of the operator-bound report (forge wallet-1, key = keccak256("wallet-1"))
    // approves it; another wallet's approval names another operator.
    let file = "reports/valid/operator_0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436";
    let report = SignedReport::from_json(&read(file)).expect("parse");
    let wallets = &d["datasets"]["03"]["operators"]["wallets_sorted_by_address"];
    let key = |i: usize| {
        kh_lcp::EnclaveKey::from_secret(&hex32(&wallets[i]["private_key_test_only"])).expect("key")
    };
    let digest = kh_lcp::operator::register_enclave_key_digest(&report.avr);
    let mut sig = key(0).sign_prehash(digest).expect("sign");
    sig[64] += 27;
    let operator = kh_lcp::operator::recover_register_operator(&report.avr, &sig).expect("recover");
    assert_eq!(operator, addr(&wallets[0]["address"]));
    let v = report
        .verify(
            &root("simulation_rootca.der"),
            &policy_for(&d["reports_and_avrs"][file], true),
            1_718_465_726,
        )
        .expect("verify");
    assert_eq!(v.report_data.operator, Some(operator));
    let other = kh_lcp::operator::recover_register_operator(
        &report.avr,
        &key(1).sign_prehash(digest).expect("sign"),
    )
    .expect("recover");
    assert_ne!(v.report_data.operator, Some(other));
    // "alice" of data sets 01/02.
    let alice = &d["datasets"]["01"]["client_state_to_build"]["permissioned"]["operator_wallet"];
    let alice_key =
        kh_lcp::EnclaveKey::from_secret(&hex32(&alice["private_key_test_only"])).expect("key");
    assert_eq!(alice_key.address(), addr(&alice["address"]));
}
