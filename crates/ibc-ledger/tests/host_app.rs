//! The `ibc-host` app on a network of nodes (in-memory transport, each node on its own
//! database; SQLite, and PostgreSQL when KH_TEST_POSTGRES_URL is set): PartyA creates the host
//! with PartyA and PartyB as operators, both submit host transactions in turn, both serve proofs
//! that verify with the notary's and the operators' keys only, a node that is not an operator
//! cannot move the host, two updates racing for one host state do not fork it, and a node
//! reopened on its database co-signs the next host transaction and serves the same proofs.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kh_ibc_ledger::*;
use kh_ledger::*;

const WAIT: Duration = Duration::from_secs(30);
const NAMES: [&str; 4] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
    "O=PartyC, L=Osaka, C=JP",
];

struct Net {
    transport: Arc<InMemoryNetwork>,
    params: NetworkParameters,
    keys: Vec<(PartyName, KeyPair)>,
    urls: Vec<String>,
}

impl Net {
    fn new(urls: Vec<String>) -> Self {
        let keys: Vec<(PartyName, KeyPair)> = NAMES
            .iter()
            .map(|n| (n.parse().unwrap(), KeyPair::generate()))
            .collect();
        let nodes: Vec<Party> = keys
            .iter()
            .map(|(n, k)| Party {
                name: n.clone(),
                owning_key: k.public(),
            })
            .collect();
        Self {
            transport: InMemoryNetwork::new(),
            params: NetworkParameters {
                notary: nodes[0].clone(),
                nodes,
                max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
                notary_validating: false,
                validators: vec![],
            },
            keys,
            urls,
        }
    }

    async fn open(&self, i: usize) -> (Node, Arc<IbcHostApp>) {
        let app = IbcHostApp::arc();
        let (name, key) = &self.keys[i];
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: self.urls[i].clone(),
            role: if i == 0 {
                NodeRole::Notary
            } else {
                NodeRole::Regular
            },
            network: self.params.clone(),
            apps: vec![app.clone() as Arc<dyn App>],
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        };
        let node = Node::open(config, self.transport.clone()).await.unwrap();
        self.transport.register(name.clone(), node.receiver());
        (node, app)
    }

    fn trust(&self) -> HostTrust {
        HostTrust {
            notary: self.keys[0].1.public(),
            operators: vec![self.keys[1].1.public(), self.keys[2].1.public()],
        }
    }
}

async fn run(node: &Node, name: &str, args: serde_json::Value) -> FlowStatus {
    let flow = node.start_flow(FlowStart::new(name, args)).await.unwrap();
    node.wait_flow(flow, WAIT).await.unwrap()
}

fn submit() -> serde_json::Value {
    SubmitArgs::of(&[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_move_the_host_and_serve_proofs() {
    for (backend, urls) in kh_test_support::database_urls(4).await {
        let net = Net::new(urls);
        let _notary = net.open(0).await;
        let (a, a_app) = net.open(1).await;
        let (b, b_app) = net.open(2).await;
        let (c, _) = net.open(3).await;
        let genesis = run(
            &a,
            GENESIS_FLOW,
            serde_json::json!({"operators": ["PartyA", "PartyB"]}),
        )
        .await;
        assert!(
            matches!(genesis, FlowStatus::Completed { .. }),
            "{backend}: {genesis:?}"
        );
        // Host transactions without IBC messages still move the host: each records the
        // consumed host state under `kakehashi/hostStates/{height}`.
        let key = host_state_key(0);
        let s1 = run(&a, SUBMIT_FLOW, submit()).await;
        assert!(
            matches!(s1, FlowStatus::Completed { .. }),
            "{backend}: {s1:?}"
        );
        // PartyB moves the host next: it recorded height 1 as a co-signer and a recipient.
        let s2 = run(&b, SUBMIT_FLOW, submit()).await;
        assert!(
            matches!(s2, FlowStatus::Completed { .. }),
            "{backend}: {s2:?}"
        );

        // Both operators prove the same facts; the proofs verify with public keys only.
        let trust = net.trust();
        let mut seen = None;
        for (who, node, app) in [("A", &a, &a_app), ("B", &b, &b_app)] {
            let (value, proof) = app.proof(node.hub(), &key, 1).await.unwrap();
            let value = value.unwrap();
            proof.verify_membership(&trust, 1, &key, &value).unwrap();
            assert!(seen.as_ref().is_none_or(|s| s == &value), "{backend} {who}");
            seen = Some(value);
            let (value, proof) = app.proof(node.hub(), b"absent", 2).await.unwrap();
            assert!(value.is_none(), "{backend} {who}");
            proof.verify_non_membership(&trust, 2, b"absent").unwrap();
        }

        // PartyC is no operator: it holds no host state and cannot move the host.
        match run(&c, SUBMIT_FLOW, submit()).await {
            FlowStatus::Failed { reason } => {
                assert!(
                    reason.contains("current host states"),
                    "{backend}: {reason}"
                )
            }
            other => panic!("{backend}: {other:?}"),
        }

        // Two submissions racing from both operators: at most one moves the host to height 3,
        // never both (no fork: the notary refuses the second spend of the host state), and
        // the stores agree afterwards.
        let (fa, fb) = tokio::join!(
            a.start_flow(FlowStart::new(SUBMIT_FLOW, submit())),
            b.start_flow(FlowStart::new(SUBMIT_FLOW, submit()))
        );
        let ra = a.wait_flow(fa.unwrap(), WAIT).await.unwrap();
        let rb = b.wait_flow(fb.unwrap(), WAIT).await.unwrap();
        let done = [&ra, &rb]
            .iter()
            .filter(|s| matches!(s, FlowStatus::Completed { .. }))
            .count();
        assert!(
            done <= 1,
            "{backend}: both racing updates completed: {ra:?} {rb:?}"
        );
        let height = 2 + done as u64;
        let next = run(&a, SUBMIT_FLOW, submit()).await;
        assert!(
            matches!(next, FlowStatus::Completed { .. }),
            "{backend}: {next:?}"
        );
        let after = host_state_key(height);
        let (va, pa) = a_app.proof(a.hub(), &after, height + 1).await.unwrap();
        let (vb, _) = b_app.proof(b.hub(), &after, height + 1).await.unwrap();
        assert_eq!(va, vb, "{backend}");
        pa.verify_membership(&trust, height + 1, &after, &va.unwrap())
            .unwrap();

        // PartyB reopened on its database (a standby) rebuilds its store and proves the same.
        b.shutdown();
        net.transport.unregister(&net.keys[2].0);
        drop(b);
        let (b2, b2_app) = net.open(2).await;
        // It co-signs the next host transaction before anything else loaded its store.
        let again = run(&a, SUBMIT_FLOW, submit()).await;
        assert!(
            matches!(again, FlowStatus::Completed { .. }),
            "{backend}: {again:?}"
        );
        let (value, proof) = b2_app.proof(b2.hub(), &key, 1).await.unwrap();
        assert_eq!(value, seen, "{backend}");
        proof
            .verify_membership(&trust, 1, &key, &value.unwrap())
            .unwrap();
    }
}

/// An operator co-signs a host transaction only if running its IBC messages on its own store
/// gives exactly its store updates: PartyB refuses a height-2 transaction whose updates add a
/// write the (empty) message list does not make, and accepts the honest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_refuse_updates_the_messages_do_not_produce() {
    let (_backend, urls) = kh_test_support::database_urls(4)
        .await
        .into_iter()
        .next()
        .unwrap();
    let net = Net::new(urls);
    let _notary = net.open(0).await;
    let (a, _a_app) = net.open(1).await;
    let (b, b_app) = net.open(2).await;
    let genesis = run(
        &a,
        GENESIS_FLOW,
        serde_json::json!({"operators": ["PartyA", "PartyB"]}),
    )
    .await;
    assert!(matches!(genesis, FlowStatus::Completed { .. }));
    assert!(matches!(
        run(&a, SUBMIT_FLOW, submit()).await,
        FlowStatus::Completed { .. }
    ));
    // The current host state (height 1) and the store as it is at height 1.
    let current = a
        .hub()
        .vault()
        .query(&StateQuery {
            contract: Some(host_contract_id()),
            status: StateStatus::Unconsumed,
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0);
    let prev: HostState = current.state.decode().unwrap();
    assert_eq!(prev.height, 1);
    let h1 = a
        .hub()
        .vault()
        .transaction(&current.reference.tx_id)
        .await
        .unwrap()
        .unwrap();
    let Some(HostCommand::Apply { updates, .. }) = h1
        .tx
        .commands
        .iter()
        .find_map(|c| bcs::from_bytes::<HostCommand>(&c.data).ok())
    else {
        panic!("height 1 applies updates")
    };
    let mut store = HostStore::new();
    let p1 = store.prepare(1, updates).unwrap();
    store.apply(&p1).unwrap();

    let own = kh_elc::LedgerConsensusState {
        store_root: prev.store_root,
        timestamp_ms: prev.timestamp_ms,
        state_ref: current.reference,
    };
    let honest = vec![(host_state_key(1), Some(bcs::to_bytes(&own).unwrap()))];
    let mut forged = honest.clone();
    forged.push((
        b"commitments/ports/ping/channels/channel-0/sequences/1".to_vec(),
        Some(vec![1; 32]),
    ));
    let cosign = |updates: Vec<Update>, events: Vec<HostEvent>| {
        let prepared = store.prepare(2, updates).unwrap();
        let next = HostState {
            height: 2,
            store_root: prepared.root,
            timestamp_ms: prev.timestamp_ms + 1,
            operators: prev.operators.clone(),
        };
        let tx = WireTransaction {
            inputs: vec![current.reference],
            references: vec![],
            outputs: vec![TransactionState {
                contract: host_contract_id(),
                notary: current.state.notary.clone(),
                participants: prev.operators.clone(),
                data: bcs::to_bytes(&next).unwrap(),
            }],
            commands: vec![
                Command {
                    contract: host_contract_id(),
                    data: bcs::to_bytes(&HostCommand::Apply {
                        updates: prepared.updates,
                        proof: prepared.proof,
                    })
                    .unwrap(),
                    signers: prev.operators.clone(),
                },
                Command {
                    contract: ContractId(MESSAGES_CONTRACT.into()),
                    data: bcs::to_bytes(&MessagesCommand {
                        messages: vec![],
                        events,
                    })
                    .unwrap(),
                    signers: prev.operators.clone(),
                },
            ],
            notary: Some(current.state.notary.clone()),
            time_window: None,
            privacy_salt: [9; 32],
        };
        let stx = SignedTransaction { tx, sigs: vec![] };
        let ltx = LedgerTransaction::resolve(&stx, |r| {
            (r == &current.reference).then(|| current.state.clone())
        })
        .unwrap();
        b_app.cosign(b.hub(), &ltx)
    };
    let err = cosign(forged, vec![]).unwrap_err();
    assert!(err.contains("not those the IBC messages produce"), "{err}");
    // Events the messages do not emit (a packet a relayer would then deliver) are refused too.
    let invented = HostEvent {
        kind: "send_packet".into(),
        attributes: vec![("packet_sequence".into(), "1".into())],
    };
    let err = cosign(honest.clone(), vec![invented]).unwrap_err();
    assert!(err.contains("recorded IBC events are not those"), "{err}");
    cosign(honest, vec![]).unwrap();
}
