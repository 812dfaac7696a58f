//! The shared-record app on a network where some nodes run it and one does not: records created
//! and updated across nodes (both vaults and both app tables agree), a node without the app
//! refusing its transactions by name, the app's table written atomically with the checkpoint,
//! and a cold standby finishing an update after its predecessor stopped mid-flow.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use kh_app_record::{RecordApp, SharedRecord, latest, record_contract, started_by};
use kh_ledger::*;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// Notary, PartyA and PartyB run the app; PartyC does not.
const NAMES: [&str; 4] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
    "O=PartyC, L=Nagoya, C=JP",
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
        let params = NetworkParameters {
            notary: nodes[0].clone(),
            nodes,
            max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
            notary_validating: false,
            validators: vec![],
        };
        Self {
            transport: InMemoryNetwork::new(),
            params,
            keys,
            urls,
        }
    }

    async fn open(&self, i: usize, failpoint: Option<Failpoint>) -> Node {
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
            apps: if i == 3 {
                vec![]
            } else {
                vec![RecordApp::arc()]
            },
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint,
        };
        let node = Node::open(config, self.transport.clone()).await.unwrap();
        self.transport.register(name.clone(), node.receiver());
        node
    }
}

fn completed(status: FlowStatus) -> TxId {
    match status {
        FlowStatus::Completed { tx_id } => tx_id,
        other => panic!("flow did not complete: {other:?}"),
    }
}

async fn current(node: &Node, id: Uuid) -> Option<SharedRecord> {
    let q = StateQuery {
        contract: Some(record_contract()),
        participant: Some(node.hub().identity_key().public()),
        ..StateQuery::default()
    };
    node.vault()
        .query(&q)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| s.state.decode::<SharedRecord>().ok())
        .find(|r| r.id == id)
}

async fn wait_version(node: &Node, id: Uuid, version: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if latest(node.hub().store(), id).await.unwrap().map(|l| l.0) == Some(version) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never saw version {version}",
            node.name()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_created_and_updated_by_both_parties_and_refused_without_the_app() {
    for (backend, urls) in common::database_urls(4).await {
        let net = Net::new(urls);
        let notary = net.open(0, None).await;
        let (a, b, c) = (
            net.open(1, None).await,
            net.open(2, None).await,
            net.open(3, None).await,
        );
        assert_eq!(a.apps(), vec!["record".to_string()]);
        assert!(c.flow_names().is_empty());

        // Created by A, co-signed by B: both vaults hold it, both app tables have version 1,
        // and A's table says which flow started it (written with A's checkpoint).
        let id = Uuid::new_v4();
        let flow = a
            .start_flow(kh_app_record::create(b.name(), id, "first"))
            .await
            .unwrap();
        let created = completed(a.wait_flow(flow, WAIT).await.unwrap());
        wait_version(&b, id, 1).await;
        assert_eq!(
            latest(a.hub().store(), id).await.unwrap(),
            Some((1, "first".into()))
        );
        assert_eq!(started_by(a.hub().store(), id).await.unwrap(), Some(flow));
        let stx = b.vault().transaction(&created).await.unwrap().unwrap();
        assert_eq!(stx.sigs.len(), 2, "{backend}: both parties signed");
        assert_eq!(current(&b, id).await.unwrap().text, "first");

        // Updated by B: notarised (it consumes version 1), co-signed by A.
        let flow = b
            .start_flow(kh_app_record::update(id, "second"))
            .await
            .unwrap();
        let updated = completed(b.wait_flow(flow, WAIT).await.unwrap());
        wait_version(&a, id, 2).await;
        let stx = a.vault().transaction(&updated).await.unwrap().unwrap();
        assert_eq!(stx.sigs.len(), 3, "{backend}: both parties and the notary");
        assert_eq!(current(&a, id).await.unwrap().version, 2);
        let consumed = a
            .vault()
            .query(&StateQuery {
                contract: Some(record_contract()),
                status: StateStatus::Consumed,
                ..StateQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(consumed.len(), 1, "{backend}: version 1 is consumed");

        // Paging: one state a page.
        for i in 0..3 {
            let flow = a
                .start_flow(kh_app_record::create(
                    b.name(),
                    Uuid::new_v4(),
                    &format!("r{i}"),
                ))
                .await
                .unwrap();
            completed(a.wait_flow(flow, WAIT).await.unwrap());
        }
        let mut seen = vec![];
        for offset in 0.. {
            let page = a
                .vault()
                .query(&StateQuery {
                    contract: Some(record_contract()),
                    offset,
                    limit: 1,
                    ..StateQuery::default()
                })
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            assert_eq!(page.len(), 1);
            seen.push(page[0].reference);
        }
        assert_eq!(seen.len(), 4, "{backend}: every unconsumed record, once");

        // C does not run the app: it refuses to co-sign, and the flow says why.
        let flow = a
            .start_flow(kh_app_record::create(c.name(), Uuid::new_v4(), "nope"))
            .await
            .unwrap();
        match a.wait_flow(flow, WAIT).await.unwrap() {
            FlowStatus::Failed { reason } => assert!(
                reason.contains("PartyC refused to co-sign")
                    && reason.contains("does not run an app with contract kakehashi.record.v1"),
                "{backend}: {reason}"
            ),
            other => panic!("{backend}: {other:?}"),
        }
        // And C cannot start the app's flows at all.
        let err = c
            .start_flow(kh_app_record::update(id, "x"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no flow named \"record.update\""),
            "{err}"
        );

        // The inbox of handled message ids is bounded: pruning forgets them, and a node whose
        // inbox was pruned keeps working.
        assert!(b.prune_inbox(i64::MAX).await.unwrap() > 0, "{backend}");
        assert_eq!(b.prune_inbox(i64::MAX).await.unwrap(), 0);
        let flow = b
            .start_flow(kh_app_record::update(id, "third"))
            .await
            .unwrap();
        completed(b.wait_flow(flow, WAIT).await.unwrap());
        wait_version(&a, id, 3).await;

        // An update of a record that does not exist ends Failed with the reason.
        let flow = a
            .start_flow(kh_app_record::update(Uuid::new_v4(), "x"))
            .await
            .unwrap();
        match a.wait_flow(flow, WAIT).await.unwrap() {
            FlowStatus::Failed { reason } => {
                assert!(reason.contains("no current version"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        for n in [&notary, &a, &b, &c] {
            n.shutdown();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_finishes_an_update_its_predecessor_left_at_the_notary() {
    for (backend, urls) in common::database_urls(4).await {
        let net = Net::new(urls);
        let notary = net.open(0, None).await;
        let b = net.open(2, None).await;
        let a = net.open(1, None).await;
        let id = Uuid::new_v4();
        let flow = a
            .start_flow(kh_app_record::create(b.name(), id, "v1"))
            .await
            .unwrap();
        completed(a.wait_flow(flow, WAIT).await.unwrap());
        a.shutdown();

        // A stops as soon as its notarisation request is on the wire.
        let crashing = net
            .open(1, Some(Failpoint::CrashAfterNotariseRequest))
            .await;
        let flow = crashing
            .start_flow(kh_app_record::update(id, "v2"))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !crashing.is_stopped() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "failpoint not reached"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The standby on the same database finishes it.
        let standby = net.open(1, None).await;
        completed(standby.wait_flow(flow, WAIT).await.unwrap());
        wait_version(&b, id, 2).await;
        wait_version(&standby, id, 2).await;
        assert_eq!(current(&standby, id).await.unwrap().text, "v2", "{backend}");
        for n in [&notary, &b, &standby] {
            n.shutdown();
        }
    }
}

/// A message its receiver refuses (here: the link to PartyB reaches a node that is not PartyB)
/// fails the flow at once with the receiver's reason, instead of leaving it waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_fails_its_flow_with_the_reason() {
    for (backend, urls) in common::database_urls(4).await {
        let net = Net::new(urls);
        let notary = net.open(0, None).await;
        let a = net.open(1, None).await;
        let c = net.open(3, None).await;
        // Deliveries meant for PartyB reach PartyC, which refuses what is not addressed to it.
        net.transport.register(net.keys[2].0.clone(), c.receiver());
        let flow = a
            .start_flow(kh_app_record::create(&net.keys[2].0, Uuid::new_v4(), "x"))
            .await
            .unwrap();
        match a.wait_flow(flow, WAIT).await.unwrap() {
            FlowStatus::Failed { reason } => assert!(
                reason.starts_with("PartyB refused the message: not addressed to this node"),
                "{backend}: {reason}"
            ),
            other => panic!("{backend}: {other:?}"),
        }
        for n in [&notary, &a, &c] {
            n.shutdown();
        }
    }
}
