//! The `ibc-host` app on a network of nodes (in-memory transport, each node on its own
//! database; SQLite, and PostgreSQL when KH_TEST_POSTGRES_URL is set): PartyA creates the host
//! with PartyA and PartyB as operators, both apply store updates in turn, both serve proofs
//! that verify with the notary's and the operators' keys only, a node that is not an operator
//! cannot move the host, two updates racing for one host state do not fork it, and a node
//! reopened on its database serves the same proofs.
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

fn apply(pairs: &[(&str, Option<&str>)]) -> serde_json::Value {
    let updates: Vec<(String, Option<String>)> = pairs
        .iter()
        .map(|(k, v)| (hex::encode(k), v.map(hex::encode)))
        .collect();
    serde_json::json!({ "updates": updates })
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
        let key = "commitments/ports/ping/channels/channel-0/sequences/1";
        let s1 = run(
            &a,
            APPLY_FLOW,
            apply(&[(key, Some("c1")), ("clients/x", Some("cs"))]),
        )
        .await;
        assert!(
            matches!(s1, FlowStatus::Completed { .. }),
            "{backend}: {s1:?}"
        );
        // PartyB moves the host next: it recorded height 1 as a co-signer and a recipient.
        let s2 = run(
            &b,
            APPLY_FLOW,
            apply(&[(key, None), ("acks/1", Some("a1"))]),
        )
        .await;
        assert!(
            matches!(s2, FlowStatus::Completed { .. }),
            "{backend}: {s2:?}"
        );

        // Both operators prove the same facts; the proofs verify with public keys only.
        let trust = net.trust();
        for (who, node, app) in [("A", &a, &a_app), ("B", &b, &b_app)] {
            let (value, proof) = app.proof(node.hub(), key.as_bytes(), 1).await.unwrap();
            assert_eq!(value.as_deref(), Some(b"c1".as_slice()), "{backend} {who}");
            proof
                .verify_membership(&trust, 1, key.as_bytes(), b"c1")
                .unwrap();
            let (value, proof) = app.proof(node.hub(), key.as_bytes(), 2).await.unwrap();
            assert!(value.is_none(), "{backend} {who}: deleted at height 2");
            proof
                .verify_non_membership(&trust, 2, key.as_bytes())
                .unwrap();
        }

        // PartyC is no operator: it holds no host state and cannot move the host.
        match run(&c, APPLY_FLOW, apply(&[("x", Some("y"))])).await {
            FlowStatus::Failed { reason } => {
                assert!(
                    reason.contains("current host states"),
                    "{backend}: {reason}"
                )
            }
            other => panic!("{backend}: {other:?}"),
        }

        // Two updates racing from both operators: at most one moves the host to height 3,
        // never both (no fork), and the stores agree afterwards.
        let (fa, fb) = tokio::join!(
            a.start_flow(FlowStart::new(APPLY_FLOW, apply(&[("race", Some("a"))]))),
            b.start_flow(FlowStart::new(APPLY_FLOW, apply(&[("race", Some("b"))])))
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
        let next = run(&a, APPLY_FLOW, apply(&[("after", Some("race"))])).await;
        assert!(
            matches!(next, FlowStatus::Completed { .. }),
            "{backend}: {next:?}"
        );
        let (va, pa) = a_app.proof(a.hub(), b"after", height + 1).await.unwrap();
        let (vb, _) = b_app.proof(b.hub(), b"after", height + 1).await.unwrap();
        assert_eq!(va, vb, "{backend}");
        pa.verify_membership(&trust, height + 1, b"after", b"race")
            .unwrap();

        // PartyB reopened on its database (a standby) rebuilds its store and proves the same.
        b.shutdown();
        net.transport.unregister(&net.keys[2].0);
        drop(b);
        let (b2, b2_app) = net.open(2).await;
        let (value, proof) = b2_app.proof(b2.hub(), b"acks/1", 2).await.unwrap();
        assert_eq!(value.as_deref(), Some(b"a1".as_slice()), "{backend}");
        proof
            .verify_membership(&trust, 2, b"acks/1", b"a1")
            .unwrap();
    }
}
