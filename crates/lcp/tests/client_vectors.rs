//! The Rust LCP client ([`kh_lcp::client::LcpClient`]) on every data set of `vectors/lcp/client`
//! with the results `vectors/lcp/README.md` documents (lcp-solidity's LCPClientTest and
//! LCPClientOperatorTest).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, keccak256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kh_lcp::client::{
    LcpClient, LcpClientError, LcpClientState, RegisterEnclaveKeyMessage, UpdateClientMessage,
    UpdateResult,
};
use kh_lcp::{CommitmentProofs, EnclaveKey, Height, ProxyMessage, SignedReport};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../vectors/lcp")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(rel: &str) -> Value {
    serde_json::from_slice(&read(rel)).expect("json")
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().expect("b64 string")).expect("b64")
}

/// The client state lcp-solidity's tests build from an AVR: its MRENCLAVE, its status and
/// advisories allowed, key expiration 7 days, development mode.
fn state_from_avr(
    set: &str,
    avr: &str,
    operators: Vec<Address>,
    threshold: (u64, u64),
) -> LcpClientState {
    let file = json(&format!("client/{set}/{avr}"));
    let body: Value = serde_json::from_str(file["avr"].as_str().expect("avr")).expect("avr json");
    let mut s = LcpClientState::new(
        b64(&file["mrenclave"]).try_into().expect("32 bytes"),
        604_800,
    );
    s.allowed_quote_statuses = BTreeSet::from([body["isvEnclaveQuoteStatus"]
        .as_str()
        .expect("status")
        .to_owned()]);
    s.allowed_advisory_ids = body["advisoryIDs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().expect("id").to_owned())
                .collect()
        })
        .unwrap_or_default();
    s.development_mode = true;
    s.operators = operators;
    s.operators_threshold_numerator = threshold.0;
    s.operators_threshold_denominator = threshold.1;
    s
}

fn report(set: &str, avr: &str) -> SignedReport {
    SignedReport::from_json(&read(&format!("client/{set}/{avr}"))).expect("report")
}

fn wallet(label: &str) -> EnclaveKey {
    EnclaveKey::from_secret(&keccak256(label.as_bytes()).0).expect("key")
}

fn approve(report: &SignedReport, operator: &EnclaveKey) -> Vec<u8> {
    let digest = kh_lcp::operator::register_enclave_key_digest(&report.avr);
    let mut sig = operator.sign_prehash(digest).expect("sign").to_vec();
    sig[64] += 27;
    sig
}

fn result(set: &str, file: &str) -> (Vec<u8>, Vec<u8>) {
    let v = json(&format!("client/{set}/{file}_result"));
    (b64(&v["message"]), b64(&v["signature"]))
}

fn root_for(set: &str) -> Vec<u8> {
    let name = if set == "01" {
        "Intel_SGX_Attestation_RootCA.der"
    } else {
        "simulation_rootca.der"
    };
    read(&format!("certs/{name}"))
}

/// Processes the data set's commands from `first` on with one signature each (`slots` wraps the
/// signature into the client's slots).
fn run_commands(
    client: &mut LcpClient,
    set: &str,
    files: &[&str],
    now: u64,
    slots: &dyn Fn(Vec<u8>) -> Vec<Vec<u8>>,
) {
    for file in files {
        let (message, signature) = result(set, file);
        if file.contains("update_client") {
            let msg = UpdateClientMessage {
                proxy_message: message,
                signatures: slots(signature),
            };
            let out = client.update_client(&msg, now).expect(file);
            let ProxyMessage::UpdateState(m) = ProxyMessage::decode(&msg.proxy_message).expect("d")
            else {
                panic!("{file}: not an update");
            };
            assert_eq!(out, UpdateResult::Updated(vec![m.post_height]), "{file}");
            assert_eq!(client.state.latest_height, m.post_height);
            // A repeated update is a no-op.
            let before = client.clone();
            client.update_client(&msg, now).expect("repeat");
            assert_eq!(*client, before);
        } else {
            let input = json(&format!("client/{set}/{file}_input"));
            let ProxyMessage::VerifyMembership(m) = ProxyMessage::decode(&message).expect("d")
            else {
                panic!("{file}: not a state message");
            };
            let proof = CommitmentProofs {
                message: message.clone(),
                signatures: slots(signature),
            }
            .encode();
            let prefix = b64(&input["prefix"]);
            let path = input["path"].as_str().expect("path").as_bytes().to_vec();
            if file.contains("absence") {
                client
                    .verify_non_membership(m.height, &proof, &prefix, &path, now)
                    .expect(file);
                assert!(
                    client
                        .verify_membership(m.height, &proof, &prefix, &path, b"x", now)
                        .is_err()
                );
            } else {
                let value = b64(&input["value"]);
                client
                    .verify_membership(m.height, &proof, &prefix, &path, &value, now)
                    .expect(file);
                let mut other = value.clone();
                other.push(0);
                assert_eq!(
                    client.verify_membership(m.height, &proof, &prefix, &path, &other, now),
                    Err(LcpClientError::ProofMismatch("value"))
                );
                assert!(
                    client
                        .verify_non_membership(m.height, &proof, &prefix, &path, now)
                        .is_err()
                );
            }
        }
    }
}

const FILES_0102: [&str; 5] = [
    "003-update_client",
    "004-verify_channel",
    "005-update_client",
    "006-verify_packet",
    "007-verify_packet_receipt_absence",
];

fn single_data_set(set: &str, now: u64, signer: &str, permissioned: bool) {
    let alice = wallet("alice");
    let operators = if permissioned {
        vec![alice.address()]
    } else {
        vec![]
    };
    let threshold = if permissioned { (1, 1) } else { (0, 0) };
    let mut client = LcpClient::new(
        root_for(set),
        state_from_avr(set, "001-avr", operators, threshold),
    )
    .expect("client");
    let rep = report(set, "001-avr");
    let msg = RegisterEnclaveKeyMessage {
        operator_signature: permissioned.then(|| approve(&rep, &alice)),
        report: rep,
    };
    let key = client.register_enclave_key(&msg, now).expect("register");
    assert_eq!(key, signer.parse::<Address>().expect("addr"));
    // Registering the same key again is a no-op.
    let before = client.clone();
    client.register_enclave_key(&msg, now).expect("again");
    assert_eq!(client, before);
    run_commands(&mut client, set, &FILES_0102, now, &|s| vec![s]);
    // The state survives a serialisation round trip and keeps working.
    let restored: LcpClient =
        serde_json::from_str(&serde_json::to_string(&client).expect("ser")).expect("de");
    assert_eq!(restored, client);
}

#[test]
fn client_01_real_ias_report_permissionless_and_permissioned() {
    for permissioned in [false, true] {
        single_data_set(
            "01",
            1_718_464_245,
            "0x836fec0cc99ed0242ed02fbaab648652b2372e41",
            permissioned,
        );
    }
}

#[test]
fn client_02_simulation_report_permissionless_and_permissioned() {
    for permissioned in [false, true] {
        single_data_set(
            "02",
            1_718_461_269,
            "0xffc9bdf025ec63065572f86d8f3ee49fbc0dfb66",
            permissioned,
        );
    }
}

#[test]
fn client_01_refuses_what_lcp_solidity_refuses() {
    let now = 1_718_464_245;
    let mut state = state_from_avr("01", "001-avr", vec![], (0, 0));
    // Development mode off: the debug enclave's report is refused.
    state.development_mode = false;
    let mut client = LcpClient::new(root_for("01"), state).expect("client");
    let msg = RegisterEnclaveKeyMessage {
        report: report("01", "001-avr"),
        operator_signature: None,
    };
    assert!(matches!(
        client.register_enclave_key(&msg, now),
        Err(LcpClientError::Attestation(_))
    ));
    client.state.development_mode = true;
    // Past the key's expiry (attestation 1718463245 + 7 days) the report is refused.
    assert!(matches!(
        client.register_enclave_key(&msg, 1_718_463_245 + 604_800),
        Err(LcpClientError::AvrAlreadyExpired { .. })
    ));
    client.register_enclave_key(&msg, now).expect("register");
    // Before any update, a verify has no state to check against.
    let (m4, s4) = result("01", "004-verify_channel");
    let input4 = json("client/01/004-verify_channel_input");
    let proof = CommitmentProofs {
        message: m4,
        signatures: vec![s4],
    }
    .encode();
    assert_eq!(
        client.verify_membership(
            Height::new(1, 47),
            &proof,
            b"ibc",
            input4["path"].as_str().expect("path").as_bytes(),
            &b64(&input4["value"]),
            now
        ),
        Err(LcpClientError::MissingConsensusState(Height::new(1, 47)))
    );
    let (m3, s3) = result("01", "003-update_client");
    // A changed signature byte is refused.
    let mut bad = s3.clone();
    bad[10] ^= 1;
    assert!(
        client
            .update_client(
                &UpdateClientMessage {
                    proxy_message: m3.clone(),
                    signatures: vec![bad]
                },
                now
            )
            .is_err()
    );
    // Outside the trusting period (trusted 1718463238 + 14 days) the update is refused.
    let upd3 = UpdateClientMessage {
        proxy_message: m3,
        signatures: vec![s3],
    };
    assert!(matches!(
        client.update_client(&upd3, 1_718_463_239 + 1_209_600),
        Err(LcpClientError::Message(
            kh_lcp::MessageError::OutOfTrustingPeriod { .. }
        ))
    ));
    client.update_client(&upd3, now).expect("003");
    // After the key expired, the next update is refused.
    let (m5, s5) = result("01", "005-update_client");
    let upd5 = UpdateClientMessage {
        proxy_message: m5,
        signatures: vec![s5],
    };
    assert!(matches!(
        client.update_client(&upd5, 1_718_463_245 + 604_800),
        Err(LcpClientError::KeyExpired { .. })
    ));
    // Two signatures for a permissionless client: refused.
    let mut two = upd5.clone();
    two.signatures.push(two.signatures[0].clone());
    assert!(matches!(
        client.update_client(&two, now),
        Err(LcpClientError::SignatureCount { expected: 1, .. })
    ));
    client.update_client(&upd5, now).expect("005");
}

#[test]
fn client_02_prev_state_must_match() {
    let now = 1_718_461_269;
    let mut client = LcpClient::new(
        root_for("02"),
        state_from_avr("02", "001-avr", vec![], (0, 0)),
    )
    .expect("client");
    client
        .register_enclave_key(
            &RegisterEnclaveKeyMessage {
                report: report("02", "001-avr"),
                operator_signature: None,
            },
            now,
        )
        .expect("register");
    let upd = |f: &str| {
        let (m, s) = result("02", f);
        UpdateClientMessage {
            proxy_message: m,
            signatures: vec![s],
        }
    };
    client
        .update_client(&upd("005-update_client"), now)
        .expect("first update");
    // 003's previous state (1-49) was never stored.
    assert_eq!(
        client.update_client(&upd("003-update_client"), now),
        Err(LcpClientError::MissingConsensusState(Height::new(1, 49)))
    );
}

fn operator_wallets() -> Vec<EnclaveKey> {
    let mut w: Vec<EnclaveKey> = (0..4).map(|i| wallet(&format!("wallet-{i}"))).collect();
    w.sort_by_key(|k| k.address());
    w
}

#[test]
fn client_03_operators_with_threshold_two_thirds() {
    let now = 1_718_465_726;
    let wallets = operator_wallets();
    let operators: Vec<Address> = wallets.iter().map(|w| w.address()).collect();
    assert_eq!(
        operators[0],
        "0xc1eae5ef781f4ee5867ec6725630e7dc17fa3436"
            .parse::<Address>()
            .expect("addr")
    );
    let mut client = LcpClient::new(
        root_for("03"),
        state_from_avr("03", "001-avr", operators.clone(), (2, 3)),
    )
    .expect("client");
    // The reports are bound to no operator: any listed operator may approve, an unlisted one
    // may not.
    let rep1 = report("03", "001-avr");
    assert!(matches!(
        client.register_enclave_key(
            &RegisterEnclaveKeyMessage {
                operator_signature: Some(approve(&rep1, &wallet("alice"))),
                report: rep1.clone(),
            },
            now
        ),
        Err(LcpClientError::UnknownOperator(_))
    ));
    for (i, w) in wallets.iter().enumerate() {
        let rep = report("03", &format!("00{}-avr", i + 1));
        client
            .register_enclave_key(
                &RegisterEnclaveKeyMessage {
                    operator_signature: Some(approve(&rep, w)),
                    report: rep,
                },
                now,
            )
            .expect("register");
    }
    let multi = |files: [&str; 4]| {
        let mut msg = UpdateClientMessage {
            proxy_message: vec![],
            signatures: vec![],
        };
        for f in files {
            let (m, s) = result("03", f);
            msg.proxy_message = m;
            msg.signatures.push(s);
        }
        msg
    };
    // The first update (after init 005) needs no previous state.
    client
        .update_client(
            &multi([
                "006-update_client",
                "007-update_client",
                "008-update_client",
                "009-update_client",
            ]),
            now,
        )
        .expect("006..009");
    let next = multi([
        "010-update_client",
        "011-update_client",
        "012-update_client",
        "013-update_client",
    ]);
    client.update_client(&next, now).expect("010..013");
    client.update_client(&next, now).expect("repeat");
    let mut one_dropped = next.clone();
    one_dropped.signatures[0].clear();
    client.update_client(&one_dropped, now).expect("3 of 4");
    let mut two_dropped = one_dropped.clone();
    two_dropped.signatures[1].clear();
    assert_eq!(
        client.update_client(&two_dropped, now),
        Err(LcpClientError::OperatorSignaturesInsufficient(2))
    );
    let mut swapped = next.clone();
    swapped.signatures.swap(0, 1);
    assert_eq!(
        client.update_client(&swapped, now),
        Err(LcpClientError::EnclaveKeyUnexpectedOperator {
            actual: operators[1],
            expected: operators[0],
        })
    );
    // 014 on is signed by key 1 alone: one slot of four is below the threshold.
    let (m14, s14) = result("03", "014-verify_channel");
    let input = json("client/03/014-verify_channel_input");
    let proof = CommitmentProofs {
        message: m14,
        signatures: vec![s14, vec![], vec![], vec![]],
    }
    .encode();
    assert_eq!(
        client.verify_membership(
            Height::new(1, 48),
            &proof,
            b"ibc",
            input["path"].as_str().expect("path").as_bytes(),
            &b64(&input["value"]),
            now
        ),
        Err(LcpClientError::OperatorSignaturesInsufficient(1))
    );
}

#[test]
fn client_03_permissionless_every_key_signs_alone() {
    let now = 1_718_465_726;
    let mut client = LcpClient::new(
        root_for("03"),
        state_from_avr("03", "001-avr", vec![], (0, 0)),
    )
    .expect("client");
    for i in 1..=4 {
        client
            .register_enclave_key(
                &RegisterEnclaveKeyMessage {
                    report: report("03", &format!("00{i}-avr")),
                    operator_signature: None,
                },
                now,
            )
            .expect("register");
    }
    assert_eq!(client.active_keys(now).len(), 4);
    run_commands(
        &mut client,
        "03",
        &[
            "006-update_client",
            "007-update_client",
            "008-update_client",
            "009-update_client",
            "010-update_client",
            "011-update_client",
            "012-update_client",
            "013-update_client",
            "014-verify_channel",
            "015-update_client",
            "016-verify_packet",
            "017-verify_packet_receipt_absence",
        ],
        now,
        &|s| vec![s],
    );
    assert_eq!(client.state.latest_height, Height::new(1, 49));
}

#[test]
fn operator_bound_report_needs_that_operators_approval() {
    let now = 1_718_465_726;
    let file = "reports/valid/operator_0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436";
    let rep = SignedReport::from_json(&read(file)).expect("report");
    let mut state = LcpClientState::new(
        b64(&json(file)["mrenclave"]).try_into().expect("32"),
        604_800,
    );
    state.development_mode = true;
    let bound = operator_wallets().remove(0);
    let mut client = LcpClient::new(read("certs/simulation_rootca.der"), state).expect("client");
    let with = |sig: Option<Vec<u8>>| RegisterEnclaveKeyMessage {
        report: rep.clone(),
        operator_signature: sig,
    };
    assert_eq!(
        client.register_enclave_key(&with(None), now),
        Err(LcpClientError::AvrUnexpectedOperator {
            actual: Address::ZERO,
            expected: bound.address(),
        })
    );
    assert!(matches!(
        client.register_enclave_key(&with(Some(approve(&rep, &wallet("alice")))), now),
        Err(LcpClientError::AvrUnexpectedOperator { .. })
    ));
    client
        .register_enclave_key(&with(Some(approve(&rep, &bound))), now)
        .expect("approved by the bound operator");
}

#[test]
fn misbehaviour_freezes_the_client() {
    // A Misbehaviour message signed by a key registered from a simulation report.
    let ca = kh_lcp::SimulationCa::generate(1_700_000_000, 1_900_000_000).expect("ca");
    let key = EnclaveKey::generate();
    let now = 1_800_000_000;
    let mrenclave = [7u8; 32];
    let rep = ca
        .simulate(key.address(), None, mrenclave, now - 10, false)
        .expect("avr");
    let mut client =
        LcpClient::new(ca.root_der().to_vec(), LcpClientState::new(mrenclave, 3600)).expect("c");
    client
        .register_enclave_key(
            &RegisterEnclaveKeyMessage {
                report: rep,
                operator_signature: None,
            },
            now,
        )
        .expect("register");
    let h = Height::new(0, 5);
    let sid = kh_lcp::StateId([1; 32]);
    let upd = ProxyMessage::UpdateState(kh_lcp::UpdateStateMessage {
        prev: None,
        post_height: h,
        post_state_id: sid,
        timestamp_ns: u128::from(now) * 1_000_000_000,
        context: kh_lcp::ValidationContext::Empty,
        emitted_states: vec![kh_lcp::EmittedState {
            height: h,
            state: vec![1],
        }],
    })
    .encode();
    let sign = |m: &[u8]| key.sign(m).expect("sign").to_vec();
    client
        .update_client(
            &UpdateClientMessage {
                signatures: vec![sign(&upd)],
                proxy_message: upd,
            },
            now,
        )
        .expect("update");
    let mis = ProxyMessage::Misbehaviour(kh_lcp::MisbehaviourMessage {
        prev_states: vec![kh_lcp::PrevState {
            height: h,
            state_id: sid,
        }],
        context: kh_lcp::ValidationContext::Empty,
        client_message: vec![9, 9],
    })
    .encode();
    let unsigned = UpdateClientMessage {
        proxy_message: mis.clone(),
        signatures: vec![EnclaveKey::generate().sign(&mis).expect("s").to_vec()],
    };
    assert!(matches!(
        client.update_client(&unsigned, now),
        Err(LcpClientError::UnknownKey(_))
    ));
    assert!(!client.state.frozen);
    assert_eq!(
        client.update_client(
            &UpdateClientMessage {
                signatures: vec![sign(&mis)],
                proxy_message: mis,
            },
            now
        ),
        Ok(UpdateResult::Frozen)
    );
    assert!(client.state.frozen);
}
