//! Payments per second from one holding kept as 1 state vs pre-split into 8 (R7): eight
//! concurrent payers spend from the same account through the notary on SQLite. With one state
//! the payments queue on its soft lock (each waits for the previous change); with eight they
//! proceed in parallel. Also the latency of a single payment (p50/p99). Prints JSON.
//! In process there is no network round trip in a payment, so the one-state case loses little
//! and both cases are bound by the two cores; the split pays off fully once flows between nodes
//! add round trips (the flow-level bench of the next slice).
//! Run: `cargo bench -p kh-ledger --bench payments`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kh_ledger::*;

const PAYMENTS: usize = 400;
const WORKERS: usize = 8;

async fn setup(
    parts: usize,
    tag: &str,
) -> (Vault, Notary, uuid::Uuid, PublicKey, BTreeSet<PublicKey>) {
    let dir = std::env::temp_dir().join(format!("kh-pay-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite:{}", dir.join("node.db").display()))
        .await
        .unwrap();
    let key = KeyPair::generate();
    let notary_party = Party {
        name: "O=Notary, L=Tokyo, C=JP".parse().unwrap(),
        owning_key: key.public(),
    };
    let notary = Notary::start(
        notary_party.clone(),
        key,
        store.clone(),
        None,
        NotaryConfig::default(),
    );
    let vault = Vault::open(store).await.unwrap();
    let alice = vault.create_account("alice").await.unwrap();
    let bob = vault.create_account("bob").await.unwrap();
    let bank = Party {
        name: "O=Bank, L=Tokyo, C=JP".parse().unwrap(),
        owning_key: KeyPair::generate().public(),
    };
    let outputs = (0..parts)
        .map(|_| {
            let coin = StablecoinState {
                amount: 1_000_000,
                currency: "JPY".into(),
                issuer: bank.name.clone(),
                issuer_key: bank.owning_key,
                owner: alice.public_key,
            };
            TransactionState {
                contract: stablecoin_id(),
                notary: notary_party.clone(),
                participants: vec![alice.public_key],
                data: bcs::to_bytes(&coin).unwrap(),
            }
        })
        .collect();
    let issue = SignedTransaction {
        tx: WireTransaction {
            inputs: vec![],
            references: vec![],
            outputs,
            commands: vec![Command {
                contract: stablecoin_id(),
                data: bcs::to_bytes(&StablecoinCommand::Issue).unwrap(),
                signers: vec![bank.owning_key],
            }],
            notary: Some(notary_party),
            time_window: None,
            privacy_salt: [7; 32],
        },
        sigs: vec![],
    };
    let keys: BTreeSet<PublicKey> = [alice.public_key, bob.public_key].into();
    vault.record(&issue, &keys).await.unwrap();
    (vault, notary, alice.id, bob.public_key, keys)
}

async fn run(parts: usize) -> (u64, u128, u128) {
    let (vault, notary, from, payee, keys) = setup(parts, &parts.to_string()).await;
    let keys = Arc::new(keys);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..WORKERS {
        let (vault, notary, keys) = (vault.clone(), notary.clone(), keys.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..PAYMENTS / WORKERS {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let t = Instant::now();
                    match pay_local(&vault, &notary, from, payee, 1, &keys).await {
                        Ok(_) => {
                            latencies.push(t.elapsed().as_micros());
                            break;
                        }
                        // Every coin is locked by another payer: wait for its change.
                        Err(PaymentError::Vault(VaultError::InsufficientFunds { .. }))
                            if Instant::now() < deadline =>
                        {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(e) => panic!("payment failed: {e}"),
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(vault.balance(&payee).await.unwrap(), PAYMENTS as u64);
    latencies.sort_unstable();
    let per_sec = (PAYMENTS as u128 * 1_000_000 / elapsed.as_micros().max(1)) as u64;
    (
        per_sec,
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (one, one_p50, one_p99) = run(1).await;
        let (eight, eight_p50, eight_p99) = run(8).await;
        let report = serde_json::json!({
            "payments": PAYMENTS,
            "concurrent_payers": WORKERS,
            "one_state": { "payments_per_second": one, "p50_us": one_p50, "p99_us": one_p99 },
            "pre_split_8": { "payments_per_second": eight, "p50_us": eight_p50, "p99_us": eight_p99 },
            "speedup_x100": eight * 100 / one.max(1),
        });
        println!("{report}");
    });
}
