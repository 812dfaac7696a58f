//! Cold-standby fencing on SQLite and (with KH_TEST_POSTGRES_URL) PostgreSQL: a second node on
//! a database held by a live node is refused with a typed error; a standby waiting on it does
//! not open while the holder lives, takes over once the holder shuts down, and then works (a
//! payment from the taken-over node completes). On PostgreSQL, a node whose fence session is
//! terminated stops, and the database can be opened again.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use kh_app_stablecoin::{CoinVault, StablecoinApp, StablecoinFlow};
use kh_ledger::*;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_database_is_refused_and_a_standby_takes_over() {
    for (backend, urls) in common::database_urls(4).await {
        scenario(backend, &urls).await;
    }
}

async fn scenario(backend: &str, urls: &[String]) {
    let keys: Vec<(PartyName, KeyPair)> = ["Notary", "Bank", "PartyA", "PartyB"]
        .iter()
        .map(|o| {
            (
                format!("O={o}, L=Tokyo, C=JP").parse().unwrap(),
                KeyPair::generate(),
            )
        })
        .collect();
    let parties: Vec<Party> = keys
        .iter()
        .map(|(n, k)| Party {
            name: n.clone(),
            owning_key: k.public(),
        })
        .collect();
    let params = NetworkParameters {
        notary: parties[0].clone(),
        nodes: parties,
        max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
        notary_validating: false,
        validators: vec![],
    };
    let config = |i: usize| NodeConfig {
        name: keys[i].0.clone(),
        key: keys[i].1.clone(),
        database_url: urls[i].clone(),
        role: if i == 0 {
            NodeRole::Notary
        } else {
            NodeRole::Regular
        },
        network: params.clone(),
        apps: vec![StablecoinApp::arc()],
        flow_timeout: DEFAULT_FLOW_TIMEOUT,
        failpoint: None,
    };
    let transport = InMemoryNetwork::new();
    let mut nodes = vec![];
    for (i, (name, _)) in keys.iter().enumerate() {
        let node = Node::open(config(i), transport.clone()).await.unwrap();
        transport.register(name.clone(), node.receiver());
        nodes.push(node);
    }
    let (bank, a, b) = (&nodes[1], &nodes[2], &nodes[3]);
    let alice = a.create_account("alice").await.unwrap();
    let bob = b.create_account("bob").await.unwrap();
    let issue = bank
        .start_flow(StablecoinFlow::Issue {
            amount: 50,
            currency: "JPY".into(),
            to_node: a.name().clone(),
            to_account: alice.id,
        })
        .await
        .unwrap();
    assert!(matches!(
        bank.wait_flow(issue, WAIT).await.unwrap(),
        FlowStatus::Completed { .. }
    ));

    // A second PartyA on the same database is refused while the first lives.
    match Node::open(config(2), transport.clone()).await {
        Err(NodeError::Fence(FenceError::Held { .. })) => {}
        Err(e) => panic!("{backend}: expected a held database, got {e}"),
        Ok(_) => panic!("{backend}: a second node opened a held database"),
    }
    // A standby waits and does not open while the holder lives.
    let standby = tokio::spawn(Node::open_standby(config(2), transport.clone()));
    tokio::time::sleep(STANDBY_POLL * 4).await;
    assert!(
        !standby.is_finished(),
        "{backend}: the standby opened a held database"
    );

    // The holder goes away; the standby takes over and works.
    a.shutdown();
    let a2 = tokio::time::timeout(WAIT, standby)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    transport.register(keys[2].0.clone(), a2.receiver());
    assert_eq!(
        a2.vault().balance(&alice.public_key).await.unwrap(),
        50,
        "{backend}"
    );
    let pay = a2
        .start_flow(StablecoinFlow::Pay {
            amount: 20,
            from: alice.id,
            to_node: b.name().clone(),
            to_account: bob.id,
            validator: None,
        })
        .await
        .unwrap();
    assert!(
        matches!(
            a2.wait_flow(pay, WAIT).await.unwrap(),
            FlowStatus::Completed { .. }
        ),
        "{backend}"
    );
    assert_eq!(a2.vault().balance(&alice.public_key).await.unwrap(), 30);
    // And the new holder is fenced in turn.
    assert!(matches!(
        Node::open(config(2), transport.clone()).await,
        Err(NodeError::Fence(FenceError::Held { .. }))
    ));
    if backend == "postgres" {
        // The fence session dies under a live node (e.g. a network cut to the server): the
        // lock is gone, so the node stops rather than work next to a standby that takes over.
        use sqlx::Executor;
        let admin = Store::connect(&urls[2]).await.unwrap();
        let killed = admin
            .pool()
            .fetch_all(
                "SELECT pg_terminate_backend(pid) FROM pg_locks \
                 WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .await
            .unwrap();
        assert_eq!(killed.len(), 1, "one fence session");
        let deadline = tokio::time::Instant::now() + WAIT;
        while !a2.is_stopped() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node kept working"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let a3 = Node::open(config(2), transport.clone()).await.unwrap();
        a3.shutdown();
    }
    a2.shutdown();
    for n in &nodes {
        n.shutdown();
    }
}
