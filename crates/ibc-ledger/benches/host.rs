#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! Store updates per second through the host-state chain: a notary and two host operators
//! (PartyA, PartyB) in one process on the in-memory transport, each on its own SQLite
//! database; PartyA applies host transactions one after the other (each co-signed by PartyB,
//! notarised, recorded by both), first with one update per transaction, then with 50. Each
//! update stands for one IBC message's store write until the ibc-rs contexts carry real
//! messages. Prints JSON. Run: `cargo bench -p kh-ibc-ledger --bench host`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kh_ibc_ledger::*;
use kh_ledger::*;

const WAIT: Duration = Duration::from_secs(60);
const NAMES: [&str; 3] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
];

async fn network(tag: &str) -> Vec<Node> {
    let dir = std::env::temp_dir().join(format!("kh-bench-host-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let transport = InMemoryNetwork::new();
    let mut out = vec![];
    for (i, (name, key)) in keys.iter().enumerate() {
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: format!("sqlite:{}", dir.join(format!("n{i}.db")).display()),
            role: if i == 0 {
                NodeRole::Notary
            } else {
                NodeRole::Regular
            },
            network: params.clone(),
            apps: vec![IbcHostApp::arc() as Arc<dyn App>],
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        };
        let node = Node::open(config, transport.clone()).await.unwrap();
        transport.register(name.clone(), node.receiver());
        out.push(node);
    }
    out
}

async fn run(node: &Node, name: &str, args: serde_json::Value) {
    let flow = node.start_flow(FlowStart::new(name, args)).await.unwrap();
    match node.wait_flow(flow, WAIT).await.unwrap() {
        FlowStatus::Completed { .. } => {}
        other => panic!("{name}: {other:?}"),
    }
}

async fn measure(per_tx: usize, txs: usize) -> serde_json::Value {
    let nodes = network(&format!("{per_tx}")).await;
    let a = &nodes[1];
    run(
        a,
        GENESIS_FLOW,
        serde_json::json!({"operators": ["PartyA", "PartyB"]}),
    )
    .await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(txs);
    for t in 0..txs {
        let updates: Vec<(String, Option<String>)> = (0..per_tx)
            .map(|i| {
                let path = format!(
                    "commitments/ports/ping/channels/channel-0/sequences/{}",
                    t * per_tx + i
                );
                (hex::encode(path), Some(hex::encode([t as u8; 32])))
            })
            .collect();
        let one = Instant::now();
        run(a, APPLY_FLOW, serde_json::json!({ "updates": updates })).await;
        latencies.push(one.elapsed().as_micros() as u64);
    }
    let micros = started.elapsed().as_micros().max(1);
    latencies.sort_unstable();
    for n in &nodes {
        n.shutdown();
    }
    serde_json::json!({
        "updates_per_transaction": per_tx,
        "transactions": txs,
        "updates_per_second": (per_tx * txs) as u128 * 1_000_000 / micros,
        "transactions_per_second": txs as u128 * 1_000_000 / micros,
        "host_tx_latency_p50_us": latencies[latencies.len() / 2],
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let single = measure(1, 100).await;
        let batched = measure(50, 40).await;
        println!(
            "{}",
            serde_json::json!({ "one_per_tx": single, "fifty_per_tx": batched })
        );
    });
}
