//! The Solidity LCP client (`solidity/lcp/`) run in revm against every case of `vectors/lcp`
//! (lcp-solidity's test data: a real Intel IAS report, simulation reports, a four-operator
//! set) with the documented results and block times, and against fresh reports, keys and proxy
//! messages made with kh-lcp (expiry, key rotation, misbehaviour, tampered bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lcp_support;
mod revm_chain;

use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::SolError;
use kh_contracts::{LCPAttestation, LCPClient as L};
use kh_lcp::{
    CommitmentProofs, EnclaveKey, Height, ProxyMessage, SimulationCa, StateId,
    TrustingPeriodContext, UpdateStateMessage, ValidationContext, VerifyMembershipMessage,
};
use lcp_support::*;

const INTEL_ROOT: &str = "certs/Intel_SGX_Attestation_RootCA.der";
const SIM_ROOT: &str = "certs/simulation_rootca.der";
const CLIENT_ID: &str = "lcp-1";

fn dataset_files(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(vector_path(&format!("client/{dir}")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// (message, signature) of a `*_result` file.
fn result(dir: &str, name: &str) -> (Vec<u8>, Vec<u8>) {
    let j = json(&format!("client/{dir}/{name}"));
    (b64(&j["message"]), b64(&j["signature"]))
}

fn update_state(message: &[u8]) -> UpdateStateMessage {
    match ProxyMessage::decode(message).unwrap() {
        ProxyMessage::UpdateState(u) => u,
        other => panic!("not an update: {other:?}"),
    }
}

fn verify_message(message: &[u8]) -> VerifyMembershipMessage {
    match ProxyMessage::decode(message).unwrap() {
        ProxyMessage::VerifyMembership(m) => m,
        other => panic!("not a membership message: {other:?}"),
    }
}

fn proof(message: &[u8], sigs: Vec<Vec<u8>>) -> Vec<u8> {
    CommitmentProofs {
        message: message.to_vec(),
        signatures: sigs,
    }
    .encode()
}

/// The post state of the dataset's init_client result: (height, state id, timestamp ns).
fn init_state(dir: &str, file: &str) -> (Height, [u8; 32], u64) {
    let j = json(&format!("client/{dir}/{file}"));
    let u = update_state(&b64(&j["proof"]["message"]));
    (u.post_height, u.post_state_id.0, u.timestamp_ns as u64)
}

/// Runs the dataset's commands from `first` on (updates and verifications) with one signature
/// each, checking every stored state; returns the messages of the updates.
fn run_commands(lcp: &mut Lcp, dir: &str, first: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut updates = vec![];
    for name in dataset_files(dir) {
        let Some(stem) = name.strip_suffix("_input") else {
            continue;
        };
        let n: u32 = stem[..3].parse().unwrap();
        if n < first {
            continue;
        }
        let (message, sig) = result(dir, &format!("{stem}_result"));
        let input = json(&format!("client/{dir}/{name}"));
        if stem.ends_with("update_client") {
            let u = update_state(&message);
            let r = lcp
                .update(CLIENT_ID, &message, std::slice::from_ref(&sig))
                .unwrap();
            assert_eq!(r.updates.len(), 1, "{name}");
            assert_eq!(
                r.updates[0].consensusState.to_vec(),
                consensus_state_any(u.post_state_id.0, u.timestamp_ns as u64),
                "{name}"
            );
            assert_eq!(
                lcp.consensus(CLIENT_ID, u.post_height),
                (u.post_state_id.0, u.timestamp_ns as u64)
            );
            assert_eq!(lcp.latest(CLIENT_ID), u.post_height);
            // The client state returned is the canonical encoding of the stored one.
            let any =
                <ibc_proto::google::protobuf::Any as prost::Message>::decode(&r.clientState[..])
                    .unwrap();
            assert_eq!(any.type_url, CLIENT_STATE_URL, "{name}");
            let cs = <LcpClientState as prost::Message>::decode(&any.value[..]).unwrap();
            assert_eq!(prost::Message::encode_to_vec(&cs), any.value, "{name}");
            let latest = cs.latest_height.unwrap();
            assert_eq!(
                Height::new(latest.revision_number, latest.revision_height),
                u.post_height,
                "{name}"
            );
            updates.push((message, sig));
        } else {
            let m = verify_message(&message);
            let prefix = b64(&input["prefix"]);
            let path = input["path"].as_str().unwrap().as_bytes().to_vec();
            let value = input.get("value").map(b64);
            let p = proof(&message, vec![sig.clone()]);
            assert!(
                lcp.verify_membership(
                    CLIENT_ID,
                    m.height,
                    p.clone(),
                    &prefix,
                    &path,
                    value.as_deref()
                )
                .unwrap(),
                "{name}"
            );
            // A different path, value or height is not proven by the same message.
            let mut other_path = path.clone();
            other_path.push(b'x');
            assert!(
                !lcp.verify_membership(
                    CLIENT_ID,
                    m.height,
                    p.clone(),
                    &prefix,
                    &other_path,
                    value.as_deref()
                )
                .unwrap()
            );
            let wrong_value = match &value {
                Some(_) => None,
                None => Some(&b"x"[..]),
            };
            assert!(
                !lcp.verify_membership(CLIENT_ID, m.height, p.clone(), &prefix, &path, wrong_value)
                    .unwrap()
            );
            let other_height = Height::new(m.height.revision_number, m.height.revision_height + 1);
            assert!(
                !lcp.verify_membership(
                    CLIENT_ID,
                    other_height,
                    p,
                    &prefix,
                    &path,
                    value.as_deref()
                )
                .unwrap()
            );
        }
    }
    updates
}

/// Dataset 01/02: the lcp-solidity flow (client at height zero, first update skips the
/// previous-state check) and the handler flow (client at the init result's post state).
fn client_flow(dir: &str, root: &str, at: u64, zero_height_init: bool) {
    let avr = Avr::read(&format!("client/{dir}/001-avr"));
    let mut lcp = Lcp::deploy(&der(root), 1_692_703_263, true);
    lcp.warp(at);
    if zero_height_init {
        let cs = client_state(&avr, Height::default(), &[], (0, 0));
        let h = lcp
            .init(CLIENT_ID, &cs, any(CONSENSUS_STATE_URL, vec![]))
            .unwrap();
        assert_eq!((h.revisionNumber, h.revisionHeight), (0, 0));
    } else {
        let (h, id, ts) = init_state(dir, "002-init_client_result");
        let cs = client_state(&avr, h, &[], (0, 0));
        let got = lcp
            .init(CLIENT_ID, &cs, consensus_state_any(id, ts))
            .unwrap();
        assert_eq!(got.revisionHeight, h.revision_height);
        assert_eq!(lcp.consensus(CLIENT_ID, h), (id, ts));
    }
    // Before registration every update is refused.
    let (m3, s3) = result(dir, "003-update_client_result");
    let err = lcp
        .update(CLIENT_ID, &m3, std::slice::from_ref(&s3))
        .unwrap_err();
    assert!(is::<L::LCPClientEnclaveKeyNotRegistered>(&err));

    lcp.register(CLIENT_ID, &avr, &[]).unwrap();
    let key = Address::from_slice(&b64(&json(&format!("client/{dir}/001-avr"))["enclave_key"]));
    let (expired_at, operator) = lcp.key_info(CLIENT_ID, key);
    assert_eq!(operator, Address::ZERO);
    let attested = json("lcp-expected.derived.json")["reports_and_avrs"]
        [format!("client/{dir}/001-avr")]["attestation_time_unix"]
        .as_u64()
        .unwrap();
    assert_eq!(expired_at, attested + 604_800);
    // A second registration of the same report is a no-op.
    lcp.register(CLIENT_ID, &avr, &[]).unwrap();
    assert_eq!(lcp.key_info(CLIENT_ID, key), (expired_at, operator));

    let updates = run_commands(&mut lcp, dir, 3);
    // Repeating an update is a no-op.
    let latest = lcp.latest(CLIENT_ID);
    let (m, s) = updates.last().unwrap();
    lcp.update(CLIENT_ID, m, std::slice::from_ref(s)).unwrap();
    assert_eq!(lcp.latest(CLIENT_ID), latest);
}

#[test]
fn client_01_real_ias_report_zero_height_init() {
    client_flow("01", INTEL_ROOT, 1_718_464_245, true);
}

#[test]
fn client_01_real_ias_report_trusted_init() {
    client_flow("01", INTEL_ROOT, 1_718_464_245, false);
}

#[test]
fn client_02_simulation_zero_height_init() {
    client_flow("02", SIM_ROOT, 1_718_461_269, true);
}

#[test]
fn client_02_simulation_trusted_init() {
    client_flow("02", SIM_ROOT, 1_718_461_269, false);
}

#[test]
fn client_01_key_expiry_from_attestation_time() {
    // AVR timestamp 2024-06-15T14:54:05 = 1718463245; key_expiration 604800.
    let avr = Avr::read("client/01/001-avr");
    let mut lcp = Lcp::deploy(&der(INTEL_ROOT), 1_692_703_263, true);
    lcp.warp(1_718_464_245);
    let (h, id, ts) = init_state("01", "002-init_client_result");
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, h, &[], (0, 0)),
        consensus_state_any(id, ts),
    )
    .unwrap();
    lcp.register(CLIENT_ID, &avr, &[]).unwrap();
    let key: Address = "0x836Fec0cC99Ed0242ed02fBAAb648652B2372E41"
        .parse()
        .unwrap();
    assert_eq!(lcp.key_info(CLIENT_ID, key).0, 1_718_463_245 + 604_800);
    // After expiry, the key no longer signs updates (the trusting period still holds).
    lcp.warp(1_718_463_245 + 604_800);
    let (m, s) = result("01", "003-update_client_result");
    let err = lcp.update(CLIENT_ID, &m, &[s]).unwrap_err();
    assert!(is::<L::LCPClientKeyExpired>(&err), "{err}");
    // Nor can the report register it again.
    let err = lcp.register(CLIENT_ID, &avr, &[]).unwrap_err();
    assert!(is::<L::LCPClientKeyExpired>(&err), "{err}");
}

#[test]
fn client_01_debug_enclave_rejected_outside_development_mode() {
    let avr = Avr::read("client/01/001-avr");
    let mut lcp = Lcp::deploy(&der(INTEL_ROOT), 1_692_703_263, false);
    lcp.warp(1_718_464_245);
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, Height::default(), &[], (0, 0)),
        any(CONSENSUS_STATE_URL, vec![]),
    )
    .unwrap();
    let err = lcp.register(CLIENT_ID, &avr, &[]).unwrap_err();
    assert!(is::<L::LCPClientDebugEnclave>(&err), "{err}");
}

#[test]
fn client_01_policy_rejections() {
    let avr = Avr::read("client/01/001-avr");
    let mut lcp = Lcp::deploy(&der(INTEL_ROOT), 1_692_703_263, true);
    lcp.warp(1_718_464_245);
    // Status not allowed.
    let mut cs = client_state(&avr, Height::default(), &[], (0, 0));
    cs.allowed_quote_statuses = vec![];
    lcp.init("lcp-status", &cs, any(CONSENSUS_STATE_URL, vec![]))
        .unwrap();
    let err = lcp.register("lcp-status", &avr, &[]).unwrap_err();
    assert!(is::<L::LCPClientQuoteStatusNotAllowed>(&err), "{err}");
    // One advisory missing from the allow list.
    let mut cs = client_state(&avr, Height::default(), &[], (0, 0));
    cs.allowed_advisory_ids.pop();
    lcp.init("lcp-adv", &cs, any(CONSENSUS_STATE_URL, vec![]))
        .unwrap();
    let err = lcp.register("lcp-adv", &avr, &[]).unwrap_err();
    assert!(is::<L::LCPClientAdvisoryNotAllowed>(&err), "{err}");
    // Another MRENCLAVE pinned.
    let mut cs = client_state(&avr, Height::default(), &[], (0, 0));
    cs.mrenclave = vec![7; 32];
    lcp.init("lcp-mr", &cs, any(CONSENSUS_STATE_URL, vec![]))
        .unwrap();
    let err = lcp.register("lcp-mr", &avr, &[]).unwrap_err();
    assert!(is::<L::LCPClientMrenclaveMismatch>(&err), "{err}");
    // The signing certificate expired (Intel's expires 2026-11-20T09:36:58Z).
    let mut lcp = Lcp::deploy(&der(INTEL_ROOT), 1_692_703_263, true);
    lcp.warp(1_795_167_419);
    let mut cs = client_state(&avr, Height::default(), &[], (0, 0));
    cs.key_expiration = 10 * 365 * 86_400;
    lcp.init(CLIENT_ID, &cs, any(CONSENSUS_STATE_URL, vec![]))
        .unwrap();
    let err = lcp.register(CLIENT_ID, &avr, &[]).unwrap_err();
    assert!(
        is::<LCPAttestation::LCPAttestationCertificateNotValid>(&err),
        "{err}"
    );
    // A report under another root.
    let mut lcp = Lcp::deploy(&der(SIM_ROOT), 1_692_703_263, true);
    lcp.warp(1_718_464_245);
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, Height::default(), &[], (0, 0)),
        any(CONSENSUS_STATE_URL, vec![]),
    )
    .unwrap();
    let err = lcp.register(CLIENT_ID, &avr, &[]).unwrap_err();
    assert!(
        is::<LCPAttestation::LCPAttestationBadCertificateSignature>(&err),
        "{err}"
    );
}

#[test]
fn a_changed_byte_is_rejected() {
    let avr = Avr::read("client/02/001-avr");
    let mut lcp = Lcp::deploy(&der(SIM_ROOT), 1_692_703_263, true);
    lcp.warp(1_718_461_269);
    let (h, id, ts) = init_state("02", "002-init_client_result");
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, h, &[], (0, 0)),
        consensus_state_any(id, ts),
    )
    .unwrap();
    // AVR text, AVR signature, signing certificate.
    let mut bad = avr.clone();
    bad.avr = bad.avr.replacen("\"version\":4", "\"version\":5", 1);
    assert!(lcp.register(CLIENT_ID, &bad, &[]).is_err());
    let mut bad = avr.clone();
    bad.signature[100] ^= 1;
    let err = lcp.register(CLIENT_ID, &bad, &[]).unwrap_err();
    assert!(
        is::<LCPAttestation::LCPAttestationBadReportSignature>(&err),
        "{err}"
    );
    let mut bad = avr.clone();
    let n = bad.signing_cert.len();
    bad.signing_cert[n - 10] ^= 1; // inside the certificate's signature
    let err = lcp.register(CLIENT_ID, &bad, &[]).unwrap_err();
    assert!(
        is::<LCPAttestation::LCPAttestationBadCertificateSignature>(&err),
        "{err}"
    );
    lcp.register(CLIENT_ID, &avr, &[]).unwrap();

    // Proxy message and its signature.
    let (m, s) = result("02", "003-update_client_result");
    let mut bad = m.clone();
    let last = bad.len() - 40;
    bad[last] ^= 1;
    assert!(
        lcp.update(CLIENT_ID, &bad, std::slice::from_ref(&s))
            .is_err()
    );
    let mut bad_sig = s.clone();
    bad_sig[10] ^= 1;
    assert!(lcp.update(CLIENT_ID, &m, &[bad_sig]).is_err());
    lcp.update(CLIENT_ID, &m, &[s]).unwrap();

    // Membership proof message and signature.
    let (vm, vs) = result("02", "004-verify_channel_result");
    let input = json("client/02/004-verify_channel_input");
    let msg = verify_message(&vm);
    let path = input["path"].as_str().unwrap().as_bytes().to_vec();
    let value = b64(&input["value"]);
    let mut bad = vm.clone();
    let k = bad.len() - 20;
    bad[k] ^= 1;
    assert!(!matches!(
        lcp.verify_membership(
            CLIENT_ID,
            msg.height,
            proof(&bad, vec![vs.clone()]),
            b"ibc",
            &path,
            Some(&value)
        ),
        Ok(true)
    ));
    let mut bad_sig = vs.clone();
    bad_sig[40] ^= 1;
    assert!(!matches!(
        lcp.verify_membership(
            CLIENT_ID,
            msg.height,
            proof(&vm, vec![bad_sig]),
            b"ibc",
            &path,
            Some(&value)
        ),
        Ok(true)
    ));
    assert!(
        lcp.verify_membership(
            CLIENT_ID,
            msg.height,
            proof(&vm, vec![vs]),
            b"ibc",
            &path,
            Some(&value)
        )
        .unwrap()
    );
}

// ---- client/03: four operators, threshold 2/3 --------------------------------------------------

fn operator_wallets() -> Vec<(Address, EnclaveKey)> {
    let d = json("lcp-expected.derived.json");
    d["datasets"]["03"]["operators"]["wallets_sorted_by_address"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            // Forge's vm.createWallet(label): the private key is keccak256(label).
            let secret = keccak256(w["label"].as_str().unwrap().as_bytes());
            let key = EnclaveKey::from_secret(&secret.0).unwrap();
            assert_eq!(
                key.address(),
                w["address"].as_str().unwrap().parse::<Address>().unwrap()
            );
            (key.address(), key)
        })
        .collect()
}

/// The operator's EIP-712 approval of `avr` (v ∈ {27, 28}).
fn operator_sig(key: &EnclaveKey, avr: &str) -> Vec<u8> {
    let digest = kh_lcp::operator::register_enclave_key_digest(avr);
    let mut sig = key.sign_prehash(digest).unwrap().to_vec();
    sig[64] += 27;
    sig
}

fn operators_client() -> (Lcp, Vec<Address>) {
    let wallets = operator_wallets();
    let ops: Vec<Address> = wallets.iter().map(|w| w.0).collect();
    let avr1 = Avr::read("client/03/001-avr");
    let mut lcp = Lcp::deploy(&der(SIM_ROOT), 1_718_465_726, true);
    let (h, id, ts) = init_state("03", "005-init_client_result");
    lcp.init(
        CLIENT_ID,
        &client_state(&avr1, h, &ops, (2, 3)),
        consensus_state_any(id, ts),
    )
    .unwrap();
    for (i, (op, key)) in wallets.iter().enumerate() {
        let avr = Avr::read(&format!("client/03/00{}-avr", i + 1));
        // The digest the vectors give.
        let d = json("lcp-expected.derived.json");
        let expected: B256 = d["reports_and_avrs"][format!("client/03/00{}-avr", i + 1)]
            ["eip712_register_enclave_key_digest_derived"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let (digest, _) = lcp
            .chain
            .call(
                SUBMITTER,
                lcp.client,
                L::registerEnclaveKeyDigestCall {
                    avr: avr.avr.clone(),
                },
            )
            .unwrap();
        assert_eq!(digest, expected);
        lcp.register(CLIENT_ID, &avr, &operator_sig(key, &avr.avr))
            .unwrap();
        let enclave_key = Address::from_slice(&b64(
            &json(&format!("client/03/00{}-avr", i + 1))["enclave_key"],
        ));
        assert_eq!(lcp.key_info(CLIENT_ID, enclave_key).1, *op);
    }
    (lcp, ops)
}

fn multi_sigs(first: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut message = None;
    let mut sigs = vec![];
    for n in first..first + 4 {
        let (m, s) = result("03", &format!("{n:03}-update_client_result"));
        if let Some(prev) = &message {
            assert_eq!(prev, &m);
        }
        message = Some(m);
        sigs.push(s);
    }
    (message.unwrap(), sigs)
}

#[test]
fn client_03_operators_threshold() {
    let (mut lcp, ops) = operators_client();
    let (m1, sigs1) = multi_sigs(6);
    // Two signatures dropped: 2 of 4 < 2/3.
    let mut two = sigs1.clone();
    two[0].clear();
    two[1].clear();
    let err = lcp.update(CLIENT_ID, &m1, &two).unwrap_err();
    assert_eq!(
        err[..],
        L::LCPClientOperatorSignaturesInsufficient {
            success: alloy_primitives::U256::from(2)
        }
        .abi_encode()[..]
    );
    // Swapped order: the key of operators[1] at position 0.
    let mut swapped = sigs1.clone();
    swapped.swap(0, 1);
    let err = lcp.update(CLIENT_ID, &m1, &swapped).unwrap_err();
    assert_eq!(
        err[..],
        L::LCPClientEnclaveKeyUnexpectedOperator {
            got: ops[1],
            expected: ops[0]
        }
        .abi_encode()[..]
    );
    // A single signature where four are expected.
    let err = lcp.update(CLIENT_ID, &m1, &sigs1[..1]).unwrap_err();
    assert!(is::<L::LCPClientSignaturesLength>(&err));
    // One dropped: 3 of 4 is enough.
    let mut three = sigs1.clone();
    three[0].clear();
    lcp.update(CLIENT_ID, &m1, &three).unwrap();
    let u1 = update_state(&m1);
    assert_eq!(lcp.latest(CLIENT_ID), u1.post_height);
    // The next update with all four, then repeated (no-op).
    let (m2, sigs2) = multi_sigs(10);
    lcp.update(CLIENT_ID, &m2, &sigs2).unwrap();
    lcp.update(CLIENT_ID, &m2, &sigs2).unwrap();
    let u2 = update_state(&m2);
    assert_eq!(lcp.latest(CLIENT_ID), u2.post_height);
    assert_eq!(
        lcp.consensus(CLIENT_ID, u2.post_height).0,
        u2.post_state_id.0
    );
}

#[test]
fn client_03_registration_needs_a_member_operator() {
    let wallets = operator_wallets();
    let ops: Vec<Address> = wallets.iter().map(|w| w.0).collect();
    let avr = Avr::read("client/03/001-avr");
    let mut lcp = Lcp::deploy(&der(SIM_ROOT), 1_718_465_726, true);
    let (h, id, ts) = init_state("03", "005-init_client_result");
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, h, &ops[..2], (1, 2)),
        consensus_state_any(id, ts),
    )
    .unwrap();
    // Not signed by any operator, then signed by a non-member.
    let err = lcp.register(CLIENT_ID, &avr, &[]).unwrap_err();
    assert!(is::<L::LCPClientOperatorNotInSet>(&err));
    let err = lcp
        .register(CLIENT_ID, &avr, &operator_sig(&wallets[3].1, &avr.avr))
        .unwrap_err();
    assert!(is::<L::LCPClientOperatorNotInSet>(&err));
    lcp.register(CLIENT_ID, &avr, &operator_sig(&wallets[1].1, &avr.avr))
        .unwrap();
    // The same key cannot move to another operator.
    let err = lcp
        .register(CLIENT_ID, &avr, &operator_sig(&wallets[0].1, &avr.avr))
        .unwrap_err();
    assert!(is::<L::LCPClientEnclaveKeyOperatorChanged>(&err));
}

#[test]
fn client_03_single_key_flow_permissionless() {
    // The 014-017 messages are signed by key 1 alone: run them on a permissionless client.
    let avr = Avr::read("client/03/001-avr");
    let mut lcp = Lcp::deploy(&der(SIM_ROOT), 1_718_465_726, true);
    let (h, id, ts) = init_state("03", "005-init_client_result");
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, h, &[], (0, 0)),
        consensus_state_any(id, ts),
    )
    .unwrap();
    lcp.register(CLIENT_ID, &avr, &[]).unwrap();
    let (m1, s1) = multi_sigs(6);
    lcp.update(CLIENT_ID, &m1, &s1[..1]).unwrap();
    let (m2, s2) = multi_sigs(10);
    lcp.update(CLIENT_ID, &m2, &s2[..1]).unwrap();
    run_commands(&mut lcp, "03", 14);
}

#[test]
fn operator_bound_report() {
    // reports/valid/operator_0xc1ea…: bound to operator 0xc1ea…3436 (wallet-1).
    let wallets = operator_wallets();
    let avr = Avr::read("reports/valid/operator_0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436");
    let op = wallets[0].0;
    assert_eq!(
        op,
        "0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436"
            .parse::<Address>()
            .unwrap()
    );
    let mut lcp = Lcp::deploy(&der(SIM_ROOT), 1_718_465_726, true);
    let (h, id, ts) = init_state("03", "005-init_client_result");
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, h, &[], (0, 0)),
        consensus_state_any(id, ts),
    )
    .unwrap();
    let err = lcp.register(CLIENT_ID, &avr, &[]).unwrap_err();
    assert_eq!(
        err[..],
        L::LCPClientAVRUnexpectedOperator {
            signer: Address::ZERO,
            operator: op
        }
        .abi_encode()[..]
    );
    let err = lcp
        .register(CLIENT_ID, &avr, &operator_sig(&wallets[1].1, &avr.avr))
        .unwrap_err();
    assert_eq!(
        err[..],
        L::LCPClientAVRUnexpectedOperator {
            signer: wallets[1].0,
            operator: op
        }
        .abi_encode()[..]
    );
    lcp.register(CLIENT_ID, &avr, &operator_sig(&wallets[0].1, &avr.avr))
        .unwrap();
    let key: Address = json("lcp-expected.derived.json")["reports_and_avrs"]
        ["reports/valid/operator_0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436"]["enclave_key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(lcp.key_info(CLIENT_ID, key).1, op);
}

// ---- reports and certificates ------------------------------------------------------------------

fn attestation_at(t: u64) -> (Lcp, Address) {
    let lcp = Lcp::deploy(&der(INTEL_ROOT), t, true);
    let a = lcp.attestation;
    (lcp, a)
}

fn cert_info(lcp: &mut Lcp, der_bytes: &[u8]) -> LCPAttestation::Certificate {
    let a = lcp.attestation;
    lcp.chain
        .call(
            SUBMITTER,
            a,
            LCPAttestation::parseCertificateCall {
                der: der_bytes.to_vec().into(),
            },
        )
        .unwrap()
        .0
}

fn verify_cert(
    lcp: &mut Lcp,
    cert: &[u8],
    issuer: &[u8],
    t: u64,
) -> Result<LCPAttestation::Certificate, alloy_primitives::Bytes> {
    let i = cert_info(lcp, issuer);
    let a = lcp.attestation;
    lcp.chain
        .call(
            SUBMITTER,
            a,
            LCPAttestation::verifyCertificateCall {
                der: cert.to_vec().into(),
                issuerModulus: i.modulus,
                issuerExponent: i.exponent,
                issuerSubjectHash: i.subjectHash,
                time: alloy_primitives::U256::from(t),
            },
        )
        .map(|(c, _)| c)
}

#[test]
fn certificates_chain_and_validity() {
    let (mut lcp, _) = attestation_at(1_692_703_263);
    let root = der(INTEL_ROOT);
    let signing = der("certs/intel_signing.der");
    // The Intel root is self-signed: valid at notAfter, not a second later.
    let r = verify_cert(&mut lcp, &root, &root, 2_524_607_999).unwrap();
    assert_eq!(r.notAfter, 2_524_607_999);
    assert_eq!(r.modulus.len(), 384);
    assert_eq!(r.exponent.to_vec(), vec![1, 0, 1]);
    let err = verify_cert(&mut lcp, &root, &root, 2_524_608_000).unwrap_err();
    assert!(is::<LCPAttestation::LCPAttestationCertificateNotValid>(
        &err
    ));
    let s = verify_cert(&mut lcp, &signing, &root, 1_692_703_263).unwrap();
    assert_eq!(s.notAfter, 1_795_167_418);
    let err = verify_cert(&mut lcp, &signing, &root, 1_795_167_419).unwrap_err();
    assert!(is::<LCPAttestation::LCPAttestationCertificateNotValid>(
        &err
    ));
    // The simulation certificates.
    let sroot = der(SIM_ROOT);
    let ssign = der("certs/simulation_signing.der");
    assert_eq!(
        verify_cert(&mut lcp, &ssign, &sroot, 1_718_461_269)
            .unwrap()
            .notAfter,
        2_550_130_947
    );
    assert_eq!(
        verify_cert(&mut lcp, &sroot, &sroot, 2_550_130_947)
            .unwrap()
            .notAfter,
        2_550_130_947
    );
    // Not chained: the simulation signing cert under the Intel root.
    let err = verify_cert(&mut lcp, &ssign, &root, 1_718_461_269).unwrap_err();
    assert!(is::<LCPAttestation::LCPAttestationBadCertificateSignature>(
        &err
    ));
}

fn verify_report(
    lcp: &mut Lcp,
    avr: &Avr,
) -> Result<LCPAttestation::Report, alloy_primitives::Bytes> {
    let c = cert_info(lcp, &avr.signing_cert);
    let a = lcp.attestation;
    lcp.chain
        .call(
            SUBMITTER,
            a,
            LCPAttestation::verifyReportCall {
                avr: avr.avr.clone(),
                signature: avr.signature.clone().into(),
                modulus: c.modulus,
                exponent: c.exponent,
            },
        )
        .map(|(r, _)| r)
}

#[test]
fn reports_valid_and_invalid() {
    let (mut lcp, _) = attestation_at(1_692_703_263);
    let d = json("lcp-expected.derived.json");
    for name in [
        "reports/valid/001-avr",
        "reports/valid/002-avr",
        "reports/valid/operator_0xc1eae5EF781f4EE5867eC6725630E7dC17fa3436",
        "client/01/001-avr",
        "client/02/001-avr",
        "client/03/001-avr",
        "client/03/002-avr",
        "client/03/003-avr",
        "client/03/004-avr",
    ] {
        let e = &d["reports_and_avrs"][name];
        let avr = Avr::read(name);
        let r = verify_report(&mut lcp, &avr).unwrap();
        assert_eq!(
            r.attestationTime,
            e["attestation_time_unix"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(r.quoteStatus, e["quote_status"].as_str().unwrap(), "{name}");
        let adv: Vec<String> = e["advisoryIDs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        assert_eq!(r.advisoryIds, adv, "{name}");
        assert_eq!(
            format!("{}", r.mrenclave),
            e["mrenclave"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(r.debug, e["debug"].as_bool().unwrap(), "{name}");
        assert_eq!(
            r.enclaveKey,
            e["enclave_key"]
                .as_str()
                .unwrap()
                .parse::<Address>()
                .unwrap()
        );
        assert_eq!(
            r.operator,
            e["operator"].as_str().unwrap().parse::<Address>().unwrap()
        );
    }
    // Same report as valid/001 with a wrong signature.
    let err = verify_report(&mut lcp, &Avr::read("reports/invalid/001-avr")).unwrap_err();
    assert!(is::<LCPAttestation::LCPAttestationBadReportSignature>(&err));
}

// ---- fresh reports and messages made with kh-lcp -------------------------------------------------

const T0: u64 = 1_800_000_000;
const MRENCLAVE: [u8; 32] = [0x42; 32];

struct Fresh {
    lcp: Lcp,
    ca: SimulationCa,
    h1: Height,
    s1: StateId,
    ts1: u64,
}

fn fresh_client() -> Fresh {
    let ca = SimulationCa::generate(T0 - 86_400, T0 + 10 * 365 * 86_400).unwrap();
    let mut lcp = Lcp::deploy(ca.root_der(), T0, false);
    let h1 = Height::new(1, 10);
    let s1 = StateId([1; 32]);
    let ts1 = (T0 - 60) * 1_000_000_000;
    let report = ca
        .simulate(Address::repeat_byte(1), None, MRENCLAVE, T0, false)
        .unwrap();
    let avr = Avr::from_signed(&report, MRENCLAVE);
    lcp.init(
        CLIENT_ID,
        &client_state(&avr, h1, &[], (0, 0)),
        consensus_state_any(s1.0, ts1),
    )
    .unwrap();
    Fresh {
        lcp,
        ca,
        h1,
        s1,
        ts1,
    }
}

fn register_fresh(f: &mut Fresh, attested: u64) -> EnclaveKey {
    let key = EnclaveKey::generate();
    let report =
        f.ca.simulate(key.address(), None, MRENCLAVE, attested, false)
            .unwrap();
    f.lcp
        .register(CLIENT_ID, &Avr::from_signed(&report, MRENCLAVE), &[])
        .unwrap();
    key
}

fn update_msg(prev: (Height, StateId, u64), post: (Height, StateId, u64)) -> Vec<u8> {
    ProxyMessage::UpdateState(UpdateStateMessage {
        prev: Some((prev.0, prev.1)),
        post_height: post.0,
        post_state_id: post.1,
        timestamp_ns: u128::from(post.2),
        context: ValidationContext::TrustingPeriod(TrustingPeriodContext {
            untrusted_header_timestamp_ns: u128::from(post.2),
            trusted_state_timestamp_ns: u128::from(prev.2),
            trusting_period_ns: 1_209_600_000_000_000,
            clock_drift_ns: 5_000_000_000,
        }),
        emitted_states: vec![],
    })
    .encode()
}

#[test]
fn fresh_keys_rotation_and_expiry() {
    let mut f = fresh_client();
    let old = register_fresh(&mut f, T0);
    let prev = (f.h1, f.s1, f.ts1);
    let h2 = (
        Height::new(1, 11),
        StateId([2; 32]),
        (T0 - 30) * 1_000_000_000,
    );
    let m = update_msg(prev, h2);
    // A second registration with a known signing certificate; both keys sign.
    let new = register_fresh(&mut f, T0 + 3_600);
    f.lcp.warp(T0 + 3_600);
    f.lcp
        .update(CLIENT_ID, &m, &[old.sign(&m).unwrap().to_vec()])
        .unwrap();
    let h3 = (
        Height::new(1, 12),
        StateId([3; 32]),
        (T0 + 3_500) * 1_000_000_000,
    );
    let m3 = update_msg(h2, h3);
    f.lcp
        .update(CLIENT_ID, &m3, &[new.sign(&m3).unwrap().to_vec()])
        .unwrap();
    // After the old key's expiry (7 days) the new one takes over.
    f.lcp.warp(T0 + 604_800);
    let h4 = (
        Height::new(1, 13),
        StateId([4; 32]),
        (T0 + 604_000) * 1_000_000_000,
    );
    let m4 = update_msg(h3, h4);
    let err = f
        .lcp
        .update(CLIENT_ID, &m4, &[old.sign(&m4).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientKeyExpired>(&err));
    f.lcp
        .update(CLIENT_ID, &m4, &[new.sign(&m4).unwrap().to_vec()])
        .unwrap();
    assert_eq!(f.lcp.latest(CLIENT_ID), h4.0);
    // An unknown key.
    let stranger = EnclaveKey::generate();
    let h5 = (
        Height::new(1, 14),
        StateId([5; 32]),
        (T0 + 604_100) * 1_000_000_000,
    );
    let m5 = update_msg(h4, h5);
    let err = f
        .lcp
        .update(CLIENT_ID, &m5, &[stranger.sign(&m5).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientEnclaveKeyNotRegistered>(&err));
}

#[test]
fn fresh_update_rules() {
    let mut f = fresh_client();
    let key = register_fresh(&mut f, T0);
    let prev = (f.h1, f.s1, f.ts1);
    let post = (
        Height::new(1, 11),
        StateId([2; 32]),
        (T0 - 30) * 1_000_000_000,
    );
    // Wrong previous state id.
    let m = update_msg((f.h1, StateId([9; 32]), f.ts1), post);
    let err = f
        .lcp
        .update(CLIENT_ID, &m, &[key.sign(&m).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientPrevStateMismatch>(&err));
    // Outside the trusting period of the trusted state.
    // (the context carries the trusted state's time: 14 days and 1 s before now).
    let m = update_msg((f.h1, f.s1, (T0 - 1_209_601) * 1_000_000_000), post);
    let err = f
        .lcp
        .update(CLIENT_ID, &m, &[key.sign(&m).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientContextExpired>(&err));
    // A header from the future (beyond the clock drift).
    let fut = (
        Height::new(1, 11),
        StateId([2; 32]),
        (T0 + 6) * 1_000_000_000,
    );
    let m = update_msg(prev, fut);
    let err = f
        .lcp
        .update(CLIENT_ID, &m, &[key.sign(&m).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientContextFuture>(&err));
    // Accepted, then a conflicting state at the same height.
    let m = update_msg(prev, post);
    f.lcp
        .update(CLIENT_ID, &m, &[key.sign(&m).unwrap().to_vec()])
        .unwrap();
    let conflict = update_msg(prev, (post.0, StateId([7; 32]), post.2));
    let err = f
        .lcp
        .update(
            CLIENT_ID,
            &conflict,
            &[key.sign(&conflict).unwrap().to_vec()],
        )
        .unwrap_err();
    assert!(is::<L::LCPClientConsensusStateConflict>(&err));
    // A membership message is not an update.
    let vm = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
        b"ibc".to_vec(),
        b"p".to_vec(),
        b"v",
        post.0,
        post.1,
    ))
    .encode();
    let err = f
        .lcp
        .update(CLIENT_ID, &vm, &[key.sign(&vm).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientBadHeader>(&err));
}

#[test]
fn fresh_registration_through_update_client_and_misbehaviour_freezes() {
    let mut f = fresh_client();
    let key = EnclaveKey::generate();
    let report =
        f.ca.simulate(key.address(), None, MRENCLAVE, T0, false)
            .unwrap();
    use prost::Message as _;
    let msg = any(
        REGISTER_URL,
        RegisterEnclaveKeyMessage {
            report: report.avr.clone(),
            signature: report.signature.clone(),
            signing_cert: report.signing_cert.clone(),
            operator_signature: vec![],
        }
        .encode_to_vec(),
    );
    let r = f.lcp.update_raw(CLIENT_ID, msg).unwrap();
    assert!(r.updates.is_empty());
    assert_eq!(f.lcp.key_info(CLIENT_ID, key.address()).0, T0 + 604_800);
    // The client state returned decodes (prost) to what was set up.
    let any_cs = ibc_proto::google::protobuf::Any::decode(&r.clientState[..]).unwrap();
    assert_eq!(any_cs.type_url, CLIENT_STATE_URL);
    let cs = LcpClientState::decode(&any_cs.value[..]).unwrap();
    assert_eq!(cs.mrenclave, MRENCLAVE.to_vec());
    assert_eq!(cs.latest_height.unwrap().revision_height, 10);
    assert!(!cs.frozen);
    // A DEBUG report is refused outside development mode.
    let dbg =
        f.ca.simulate(Address::repeat_byte(9), None, MRENCLAVE, T0, true)
            .unwrap();
    let err = f
        .lcp
        .register(CLIENT_ID, &Avr::from_signed(&dbg, MRENCLAVE), &[])
        .unwrap_err();
    assert!(is::<L::LCPClientDebugEnclave>(&err));

    // Before freezing, a statement at the trusted state is proven.
    let statement = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
        b"ibc".to_vec(),
        b"p".to_vec(),
        b"v",
        f.h1,
        f.s1,
    ))
    .encode();
    let p = proof(&statement, vec![key.sign(&statement).unwrap().to_vec()]);
    assert!(
        f.lcp
            .verify_membership(CLIENT_ID, f.h1, p, b"ibc", b"p", Some(b"v"))
            .unwrap()
    );
    // Misbehaviour naming a state the client does not hold is refused.
    let wrong = ProxyMessage::Misbehaviour(kh_lcp::MisbehaviourMessage {
        prev_states: vec![kh_lcp::PrevState {
            height: f.h1,
            state_id: StateId([0xee; 32]),
        }],
        context: ValidationContext::Empty,
        client_message: b"evidence".to_vec(),
    })
    .encode();
    let err = f
        .lcp
        .update(CLIENT_ID, &wrong, &[key.sign(&wrong).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientPrevStateMismatch>(&err));
    // Misbehaviour against the trusted state freezes the client.
    let mb = ProxyMessage::Misbehaviour(kh_lcp::MisbehaviourMessage {
        prev_states: vec![kh_lcp::PrevState {
            height: f.h1,
            state_id: f.s1,
        }],
        context: ValidationContext::Empty,
        client_message: b"evidence".to_vec(),
    })
    .encode();
    let r = f
        .lcp
        .update(CLIENT_ID, &mb, &[key.sign(&mb).unwrap().to_vec()])
        .unwrap();
    let cs = LcpClientState::decode(
        &ibc_proto::google::protobuf::Any::decode(&r.clientState[..])
            .unwrap()
            .value[..],
    )
    .unwrap();
    assert!(cs.frozen);
    let post = (
        Height::new(1, 11),
        StateId([2; 32]),
        (T0 - 30) * 1_000_000_000,
    );
    let m = update_msg((f.h1, f.s1, f.ts1), post);
    let err = f
        .lcp
        .update(CLIENT_ID, &m, &[key.sign(&m).unwrap().to_vec()])
        .unwrap_err();
    assert!(is::<L::LCPClientFrozenState>(&err));
    // A frozen client proves nothing.
    let statement = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
        b"ibc".to_vec(),
        b"p".to_vec(),
        b"v",
        f.h1,
        f.s1,
    ))
    .encode();
    let p = proof(&statement, vec![key.sign(&statement).unwrap().to_vec()]);
    let err = f
        .lcp
        .verify_membership(CLIENT_ID, f.h1, p, b"ibc", b"p", Some(b"v"))
        .unwrap_err();
    assert!(is::<L::LCPClientFrozenState>(&err));
    let _ = f.ts1;
}

#[test]
fn strict_report_parsing() {
    // Reports signed by the simulation authority as given, so only the parser can refuse them.
    let mut f = fresh_client();
    let key = EnclaveKey::generate();
    let good =
        f.ca.simulate(key.address(), None, MRENCLAVE, T0, false)
            .unwrap();
    let j: serde_json::Value = serde_json::from_str(&good.avr).unwrap();
    let body = j["isvEnclaveQuoteBody"].as_str().unwrap().to_string();
    let id = j["id"].as_str().unwrap().to_string();
    let ts = j["timestamp"].as_str().unwrap().to_string();
    let avr = |text: String| {
        let r = f.ca.sign_avr(text).unwrap();
        Avr::from_signed(&r, MRENCLAVE)
    };
    let make = |ts: &str, version: &str, status: &str, body: &str| {
        format!(
            "{{\"id\":\"{id}\",\"timestamp\":\"{ts}\",\"version\":{version},\"isvEnclaveQuoteStatus\":\"{status}\",\"isvEnclaveQuoteBody\":\"{body}\"}}"
        )
    };
    // The same fields rebuilt here are accepted (and the quote body has no padding).
    assert_eq!(make(&ts, "4", "OK", &body), good.avr);
    let (mut body_pad, mut body_bad) = (body.clone(), body.clone());
    body_bad.replace_range(100..101, "*");
    body_pad.truncate(body.len() - 4);
    body_pad.push_str("AA==");
    let cases: Vec<(&str, String)> = vec![
        ("version 5", make(&ts, "5", "OK", &body)),
        ("version 04", make(&ts, "04", "OK", &body)),
        (
            "timestamp with zone",
            make(&format!("{ts}Z"), "4", "OK", &body),
        ),
        (
            "timestamp without seconds",
            make(&ts[..16], "4", "OK", &body),
        ),
        (
            "escape in a skipped value",
            good.avr.replacen("{", "{\"advisoryURL\":\"a\\/b\",", 1),
        ),
        (
            "control byte in a skipped value",
            good.avr.replacen("{", "{\"x\":\"a\tb\",", 1),
        ),
        (
            "escape after two words",
            good.avr
                .replacen("{", &format!("{{\"x\":\"{}\\/b\",", "a".repeat(70)), 1),
        ),
        ("bad base64 character", make(&ts, "4", "OK", &body_bad)),
        ("quote of another length", make(&ts, "4", "OK", &body_pad)),
        (
            "whitespace",
            good.avr.replacen(",\"version\"", ", \"version\"", 1),
        ),
        (
            "duplicate key",
            good.avr
                .replacen("{", &format!("{{\"timestamp\":\"{ts}\","), 1),
        ),
        (
            "missing body",
            good.avr
                .replacen(&format!(",\"isvEnclaveQuoteBody\":\"{body}\""), "", 1),
        ),
        ("trailing bytes", format!("{} ", good.avr)),
        ("not an object", format!("[{}]", good.avr)),
    ];
    for (what, text) in cases {
        assert!(
            f.lcp.register(CLIENT_ID, &avr(text), &[]).is_err(),
            "{what} accepted"
        );
    }
    // Unknown fields, null and number values and string arrays are skipped.
    let extended = good.avr.replacen(
        "{",
        "{\"platformInfoBlob\":null,\"n\":12,\"advisoryURL\":\"https://example.com/a\",",
        1,
    );
    f.lcp.register(CLIENT_ID, &avr(extended), &[]).unwrap();
    assert_eq!(f.lcp.key_info(CLIENT_ID, key.address()).0, T0 + 604_800);
}
