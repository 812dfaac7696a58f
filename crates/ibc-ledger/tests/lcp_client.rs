//! The `lcp-client` type on a ledger network (a notary and two host operators, see `common`):
//! a client created empty (latest height zero), a key registered from a report of the
//! simulation attestation authority, a first UpdateState with emitted states, a second chained
//! to it (one with a wrong previous state id refused), then a signed Misbehaviour freezing the
//! client (one naming a state the client does not hold refused), after which updates are
//! refused; and a client with an operator set (registrations approved by the report's operator,
//! updates needing the threshold in operator slot order). The proxy messages are signed by an enclave key attested as the enclave's are (the
//! enclave and its ELCs run in `kakehashi --test ledger_lcp`); this test is about the ledger's
//! handling of every message kind.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ibc_core::primitives::proto::Any;
use ibc_proto::ibc::core::client::v1::{MsgCreateClient, MsgUpdateClient};
use kh_ibc_ledger::LcpClientState;
use kh_lcp::message::{
    EmittedState, EnclaveKey, Height, MisbehaviourMessage, PrevState, ProxyMessage, StateId,
    UpdateStateMessage, ValidationContext,
};
use kh_lcp::operator::register_enclave_key_digest;
use kh_lcp::{SimulationCa, wire};
use prost::Message;

fn now() -> u64 {
    u64::try_from(kh_ledger::util::now_ms()).unwrap() / 1000
}

fn refused(result: Result<u64, String>, want: &str) {
    match result {
        Err(reason) => assert!(reason.contains(want), "{want:?} not in: {reason}"),
        Ok(h) => panic!("accepted at height {h}; expected a refusal with {want:?}"),
    }
}

fn lcp_any<M: Message>(url: &str, m: &M) -> Any {
    Any {
        type_url: url.into(),
        value: m.encode_to_vec(),
    }
}

fn update(message: Any) -> Any {
    update_of("lcp-client-0", message)
}

fn update_of(client_id: &str, message: Any) -> Any {
    any(&MsgUpdateClient {
        client_id: client_id.into(),
        client_message: Some(message),
        signer: SIGNER.into(),
    })
}

fn signed(key: &EnclaveKey, m: ProxyMessage) -> Any {
    signed_by(&[Some(key)], m)
}

/// `m` with one signature slot per entry (`None`: an empty slot).
fn signed_by(keys: &[Option<&EnclaveKey>], m: ProxyMessage) -> Any {
    let message = m.encode();
    let signatures = keys
        .iter()
        .map(|k| {
            k.map(|k| k.sign(&message).unwrap().to_vec())
                .unwrap_or_default()
        })
        .collect();
    lcp_any(
        wire::UPDATE_CLIENT_URL,
        &wire::UpdateClientMessage {
            proxy_message: message,
            signatures,
        },
    )
}

fn state(prev: Option<(u64, u8)>, post: (u64, u8), emitted: bool) -> ProxyMessage {
    ProxyMessage::UpdateState(UpdateStateMessage {
        prev: prev.map(|(h, id)| (Height::new(0, h), StateId([id; 32]))),
        post_height: Height::new(0, post.0),
        post_state_id: StateId([post.1; 32]),
        timestamp_ns: u128::from(now()) * 1_000_000_000,
        context: ValidationContext::Empty,
        emitted_states: if emitted {
            vec![EmittedState {
                height: Height::new(0, post.0),
                state: vec![1, 2, 3],
            }]
        } else {
            vec![]
        },
    })
}

fn misbehaviour(prev: (u64, u8)) -> ProxyMessage {
    ProxyMessage::Misbehaviour(MisbehaviourMessage {
        prev_states: vec![PrevState {
            height: Height::new(0, prev.0),
            state_id: StateId([prev.1; 32]),
        }],
        context: ValidationContext::Empty,
        client_message: b"two headers of one height".to_vec(),
    })
}

async fn client_state(side: &Side) -> LcpClientState {
    client_state_of(side, "lcp-client-0").await
}

async fn client_state_of(side: &Side, client_id: &str) -> LcpClientState {
    let bytes = side
        .value(&format!("clients/{client_id}/clientState"))
        .await
        .unwrap();
    LcpClientState::try_from(<Any as Message>::decode(bytes.as_slice()).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lcp_client_updates_then_freezes_on_misbehaviour() {
    let (_backend, urls) = kh_test_support::database_urls(3)
        .await
        .into_iter()
        .next()
        .unwrap();
    let t = now();
    let ca = SimulationCa::generate(t - 86_400, t + 86_400).unwrap();
    let mrenclave = [0x5a; 32];
    let key = EnclaveKey::generate();
    let report = ca
        .simulate(key.address(), None, mrenclave, t, false)
        .unwrap();
    let side = Side::with_lcp_root("ledger-lcp", &urls, Some(ca.root_der().to_vec())).await;
    side.submit(vec![]).await.unwrap();

    // Created empty: latest height zero, no consensus state.
    let create = any(&MsgCreateClient {
        client_state: Some(lcp_any(
            wire::CLIENT_STATE_URL,
            &wire::ClientState {
                mrenclave: mrenclave.to_vec(),
                key_expiration: 3600,
                ..Default::default()
            },
        )),
        consensus_state: Some(lcp_any(
            wire::CONSENSUS_STATE_URL,
            &wire::ConsensusState::default(),
        )),
        signer: SIGNER.into(),
    });
    side.submit(vec![create]).await.unwrap();
    side.submit(vec![update(lcp_any(
        wire::REGISTER_URL,
        &wire::RegisterEnclaveKeyMessage {
            report: report.avr.clone(),
            signature: report.signature.clone(),
            signing_cert: report.signing_cert.clone(),
            operator_signature: vec![],
        },
    ))])
    .await
    .unwrap();
    assert!(
        client_state(&side)
            .await
            .enclave_keys
            .contains_key(&key.address())
    );

    // The first update must emit states; then one chained to it.
    refused(
        side.submit(vec![update(signed(&key, state(None, (10, 1), false)))])
            .await,
        "must emit states",
    );
    side.submit(vec![update(signed(&key, state(None, (10, 1), true)))])
        .await
        .unwrap();
    refused(
        side.submit(vec![update(signed(
            &key,
            state(Some((10, 9)), (11, 2), false),
        ))])
        .await,
        "does not match the stored one",
    );
    side.submit(vec![update(signed(
        &key,
        state(Some((10, 1)), (11, 2), false),
    ))])
    .await
    .unwrap();
    let cs = client_state(&side).await;
    assert_eq!(cs.state.latest_height, Height::new(0, 11));
    assert!(
        side.value("clients/lcp-client-0/consensusStates/0-11")
            .await
            .is_some()
    );

    // Misbehaviour naming a state the client does not hold, then a proper one.
    refused(
        side.submit(vec![update(signed(&key, misbehaviour((11, 7))))])
            .await,
        "does not match the stored one",
    );
    side.submit(vec![update(signed(&key, misbehaviour((11, 2))))])
        .await
        .unwrap();
    assert!(client_state(&side).await.state.frozen);
    refused(
        side.submit(vec![update(signed(
            &key,
            state(Some((11, 2)), (12, 3), false),
        ))])
        .await,
        "Frozen",
    );
    side.shutdown().await;
}

/// A registration message: `report`, approved by `operator` if given.
fn register(report: &kh_lcp::SignedReport, operator: Option<&EnclaveKey>) -> Any {
    let operator_signature = operator
        .map(|op| {
            op.sign_prehash(register_enclave_key_digest(&report.avr))
                .unwrap()
                .to_vec()
        })
        .unwrap_or_default();
    lcp_any(
        wire::REGISTER_URL,
        &wire::RegisterEnclaveKeyMessage {
            report: report.avr.clone(),
            signature: report.signature.clone(),
            signing_cert: report.signing_cert.clone(),
            operator_signature,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lcp_client_with_an_operator_set_needs_the_threshold_in_slot_order() {
    let (_backend, urls) = kh_test_support::database_urls(3)
        .await
        .into_iter()
        .next()
        .unwrap();
    let t = now();
    let ca = SimulationCa::generate(t - 86_400, t + 86_400).unwrap();
    let mrenclave = [0x5a; 32];
    // Two operators, in ascending address order, threshold 2/2; an enclave key for each.
    let mut ops = [EnclaveKey::generate(), EnclaveKey::generate()];
    ops.sort_by_key(EnclaveKey::address);
    let keys = [EnclaveKey::generate(), EnclaveKey::generate()];
    let reports: Vec<_> = keys
        .iter()
        .zip(&ops)
        .map(|(k, op)| {
            ca.simulate(k.address(), Some(op.address()), mrenclave, t, false)
                .unwrap()
        })
        .collect();
    let side = Side::with_lcp_root("ledger-ops", &urls, Some(ca.root_der().to_vec())).await;
    side.submit(vec![]).await.unwrap();
    let create = any(&MsgCreateClient {
        client_state: Some(lcp_any(
            wire::CLIENT_STATE_URL,
            &wire::ClientState {
                mrenclave: mrenclave.to_vec(),
                key_expiration: 3600,
                operators: ops.iter().map(|o| o.address().to_vec()).collect(),
                operators_nonce: 1,
                operators_threshold_numerator: 2,
                operators_threshold_denominator: 2,
                ..Default::default()
            },
        )),
        consensus_state: Some(lcp_any(
            wire::CONSENSUS_STATE_URL,
            &wire::ConsensusState::default(),
        )),
        signer: SIGNER.into(),
    });
    side.submit(vec![create]).await.unwrap();
    let id = "lcp-client-0";

    // A report bound to an operator needs that operator's approval; a stranger's approval of an
    // unbound report is refused too.
    refused(
        side.submit(vec![update_of(id, register(&reports[0], None))])
            .await,
        "approved by 0x0000000000000000000000000000000000000000",
    );
    let stranger = EnclaveKey::generate();
    let unbound = ca
        .simulate(EnclaveKey::generate().address(), None, mrenclave, t, false)
        .unwrap();
    refused(
        side.submit(vec![update_of(id, register(&unbound, Some(&stranger)))])
            .await,
        "is not an operator of this client",
    );
    side.submit(vec![
        update_of(id, register(&reports[0], Some(&ops[0]))),
        update_of(id, register(&reports[1], Some(&ops[1]))),
    ])
    .await
    .unwrap();
    let cs = client_state_of(&side, id).await;
    assert_eq!(cs.state.operators, vec![ops[0].address(), ops[1].address()]);
    assert_eq!(
        cs.enclave_keys[&keys[1].address()].operator,
        Some(ops[1].address())
    );

    let first = state(None, (5, 1), true);
    // One slot empty: below 2/2.
    refused(
        side.submit(vec![update_of(
            id,
            signed_by(&[Some(&keys[0]), None], first.clone()),
        )])
        .await,
        "below the threshold",
    );
    // The keys in each other's slots.
    refused(
        side.submit(vec![update_of(
            id,
            signed_by(&[Some(&keys[1]), Some(&keys[0])], first.clone()),
        )])
        .await,
        "signed in the slot of operator",
    );
    // One slot only.
    refused(
        side.submit(vec![update_of(
            id,
            signed_by(&[Some(&keys[0])], first.clone()),
        )])
        .await,
        "1 signatures, expected 2",
    );
    side.submit(vec![update_of(
        id,
        signed_by(&[Some(&keys[0]), Some(&keys[1])], first),
    )])
    .await
    .unwrap();
    assert_eq!(
        client_state_of(&side, id).await.state.latest_height,
        Height::new(0, 5)
    );
    side.shutdown().await;
}
