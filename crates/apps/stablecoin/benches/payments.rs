//! Payments per second from one holding kept as 1 state vs pre-split into 8 (R7), and flow
//! latency p50/p99: a notary, a bank, PartyA and PartyB in one process on the in-memory
//! transport, each node on its own SQLite database. Eight concurrent payers run Pay flows from
//! one account at PartyA to PartyB; with one state each payment waits for the previous change
//! (a payer whose coins are all locked retries), with eight they proceed in parallel.
//! Then the cost of backchain resolution on a chain of 100 payments (cold, then cached).
//! Prints JSON. Run: `cargo bench -p kh-app-stablecoin --bench payments`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kh_app_stablecoin::*;
use kh_ledger::*;

const PAYMENTS: usize = 400;
const PAYERS: usize = 8;

/// Concurrent payers (`KH_BENCH_PAYERS`, default 8).
fn payers() -> usize {
    std::env::var("KH_BENCH_PAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(PAYERS)
}
const WAIT: Duration = Duration::from_secs(60);

const NAMES: [&str; 4] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=Bank, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
];

async fn network(tag: &str) -> Vec<Node> {
    let dir = std::env::temp_dir().join(format!("kh-pay-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys: Vec<(PartyName, KeyPair)> = NAMES
        .iter()
        .map(|n| (n.parse().unwrap(), KeyPair::generate()))
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
    let transport = InMemoryNetwork::new();
    let mut nodes = vec![];
    for (i, (name, key)) in keys.into_iter().enumerate() {
        let config = NodeConfig {
            name: name.clone(),
            key,
            database_url: format!("sqlite:{}", dir.join(format!("node{i}.db")).display()),
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
        let node = Node::open(config, transport.clone()).await.unwrap();
        transport.register(name, node.receiver());
        nodes.push(node);
    }
    nodes
}

async fn run(parts: u32) -> serde_json::Value {
    let nodes = network(&parts.to_string()).await;
    let (bank, a, b) = (nodes[1].clone(), nodes[2].clone(), nodes[3].clone());
    let alice = a.create_account("alice").await.unwrap();
    let bob = b.create_account("bob").await.unwrap();
    let issue = bank
        .start_flow(StablecoinFlow::Issue {
            amount: 1_000_000,
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
    let deadline = Instant::now() + WAIT;
    while a.vault().balance(&alice.public_key).await.unwrap() != 1_000_000 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if parts > 1 {
        let split = a
            .start_flow(StablecoinFlow::Split {
                account: alice.id,
                parts,
            })
            .await
            .unwrap();
        assert!(matches!(
            a.wait_flow(split, WAIT).await.unwrap(),
            FlowStatus::Completed { .. }
        ));
    }
    let to_node = b.name().clone();
    let started = Instant::now();
    let mut handles = vec![];
    for _ in 0..payers() {
        let (a, to_node) = (a.clone(), to_node.clone());
        let (from, to) = (alice.id, bob.id);
        handles.push(tokio::spawn(async move {
            let mut latencies = vec![];
            let mut retries = 0u64;
            for _ in 0..PAYMENTS / payers() {
                loop {
                    let t = Instant::now();
                    let flow = a
                        .start_flow(StablecoinFlow::Pay {
                            amount: 1,
                            from,
                            to_node: to_node.clone(),
                            to_account: to,
                            validator: None,
                        })
                        .await
                        .unwrap();
                    match a.wait_flow(flow, WAIT).await.unwrap() {
                        FlowStatus::Completed { .. } => {
                            latencies.push(t.elapsed().as_micros());
                            break;
                        }
                        FlowStatus::Failed { reason } if reason.contains("insufficient") => {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        other => panic!("payment failed: {other:?}"),
                    }
                }
            }
            (latencies, retries)
        }));
    }
    let mut latencies = vec![];
    let mut retries = 0;
    for h in handles {
        let (l, r) = h.await.unwrap();
        latencies.extend(l);
        retries += r;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    for n in &nodes {
        n.shutdown();
    }
    serde_json::json!({
        "states": parts,
        "payments_per_second": (PAYMENTS as u128 * 1_000_000 / elapsed.as_micros().max(1)) as u64,
        "flow_latency_p50_us": latencies[latencies.len() / 2],
        "flow_latency_p99_us": latencies[latencies.len() * 99 / 100],
        "retries_on_locked_coins": retries,
    })
}

/// The cost of backchain resolution: a Validator that never saw a coin is asked to co-sign a
/// payment of it whose backchain is an issuance and `CHAIN` payments (all sent, all verified:
/// signatures, notary, contracts, rules), then a payment one step further (only the new
/// ancestor sent; the rest is cached).
async fn resolution() -> serde_json::Value {
    const CHAIN: usize = 100;
    let names = [
        "O=Notary, L=Tokyo, C=JP",
        "O=Bank, L=Tokyo, C=JP",
        "O=Validator, L=Tokyo, C=JP",
    ];
    let keys: Vec<KeyPair> = names.iter().map(|_| KeyPair::generate()).collect();
    let nodes: Vec<Party> = names
        .iter()
        .zip(&keys)
        .map(|(n, k)| Party {
            name: n.parse().unwrap(),
            owning_key: k.public(),
        })
        .collect();
    let params = NetworkParameters {
        notary: nodes[0].clone(),
        notary_validating: false,
        validators: vec![nodes[2].name.clone()],
        nodes: nodes.clone(),
        max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
    };
    let dir = std::env::temp_dir().join(format!("kh-bench-resolve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let validator = Node::open(
        NodeConfig {
            name: nodes[2].name.clone(),
            key: keys[2].clone(),
            database_url: format!("sqlite:{}", dir.join("validator.db").display()),
            role: NodeRole::Validator,
            network: params.clone(),
            apps: vec![StablecoinApp::arc()],
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        },
        InMemoryNetwork::new(),
    )
    .await
    .unwrap();
    let owner = KeyPair::generate();
    let coin = StablecoinState {
        amount: 1_000,
        currency: "JPY".into(),
        issuer: nodes[1].name.clone(),
        issuer_key: nodes[1].owning_key,
        owner: owner.public(),
    };
    let issue = SignedTransaction::signed_by(
        WireTransaction {
            inputs: vec![],
            references: vec![],
            outputs: vec![TransactionState {
                contract: stablecoin_id(),
                notary: params.notary.clone(),
                participants: vec![owner.public()],
                data: bcs::to_bytes(&coin).unwrap(),
            }],
            commands: vec![Command {
                contract: stablecoin_id(),
                data: bcs::to_bytes(&StablecoinCommand::Issue).unwrap(),
                signers: vec![nodes[1].owning_key],
            }],
            notary: None,
            time_window: None,
            privacy_salt: [1; 32],
        },
        &keys[1],
    );
    let step = |dep: &SignedTransaction, cosigner: Option<PublicKey>| {
        let input = StateAndRef {
            reference: StateRef {
                tx_id: dep.id(),
                index: 0,
            },
            state: dep.tx.outputs[0].clone(),
        };
        let mut tx = build_payment(
            &[input],
            owner.public(),
            owner.public(),
            1_000,
            &params.notary,
        )
        .unwrap();
        tx.commands[0].signers.extend(cosigner);
        let mut stx = SignedTransaction::signed_by(tx, &owner);
        stx.sigs
            .push(TransactionSignature::sign(&keys[0], &stx.id()));
        stx
    };
    let mut chain = vec![issue];
    for _ in 0..CHAIN {
        let next = step(chain.last().unwrap(), None);
        chain.push(next);
    }
    let from: PartyName = "O=PartyA, L=Tokyo, C=JP".parse().unwrap();
    let pay = step(chain.last().unwrap(), Some(keys[2].public()));
    let cold = Instant::now();
    validator
        .cosign_check(&from, &pay, chain.clone())
        .await
        .unwrap()
        .unwrap();
    let cold_us = cold.elapsed().as_micros();
    let more = step(chain.last().unwrap(), None);
    let pay2 = step(&more, Some(keys[2].public()));
    let warm = Instant::now();
    validator
        .cosign_check(&from, &pay2, vec![more])
        .await
        .unwrap()
        .unwrap();
    let warm_us = warm.elapsed().as_micros();
    validator.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::json!({
        "chain_of_payments": CHAIN,
        "cold_resolution_us": cold_us,
        "per_ancestor_us": cold_us / (CHAIN as u128 + 1),
        "cached_resolution_us": warm_us,
    })
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let one = run(1).await;
        let eight = run(8).await;
        let speedup = eight["payments_per_second"].as_u64().unwrap() * 100 / one["payments_per_second"].as_u64().unwrap().max(1);
        let resolution = resolution().await;
        println!("{}", serde_json::json!({ "payments": PAYMENTS, "concurrent_payers": payers(), "one_state": one, "pre_split_8": eight, "speedup_x100": speedup, "backchain_resolution": resolution }));
    });
}
