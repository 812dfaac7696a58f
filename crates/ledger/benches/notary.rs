#![allow(missing_docs)] // criterion macros generate undocumented items
//! Notarisations per second: non-validating requests (one input, signed by its owner, revealed
//! through its producing transaction) sent concurrently to a notary on SQLite in a temporary
//! directory; batches of 1,000 per iteration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kh_ledger::{
    Command, ContractId, KeyPair, NotarisationRequest, Notary, NotaryConfig, Party, SecureHash,
    SignedTransaction, StateRef, Store, TransactionState, WireTransaction,
};

const BATCH: u64 = 1000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::env::temp_dir().join(format!("kh-notary-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite:{}", dir.join("notary.db").display());
    let key = KeyPair::generate();
    let party = Party {
        name: "O=Notary, L=Tokyo, C=JP".parse().expect("name"),
        owning_key: key.public(),
    };
    let notary = rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        Notary::start(party.clone(), key, store, None, NotaryConfig::default())
    });
    let owner = KeyPair::generate();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("notary");
    group
        .throughput(Throughput::Elements(BATCH))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("non_validating_sqlite_1000", |b| {
        b.to_async(&rt).iter(|| {
            let base = counter.fetch_add(BATCH, Ordering::Relaxed);
            let requests: Vec<NotarisationRequest> = (base..base + BATCH)
                .map(|i| {
                    let contract = ContractId("bench".into());
                    let producer = SignedTransaction {
                        tx: WireTransaction {
                            inputs: vec![],
                            references: vec![],
                            outputs: vec![TransactionState {
                                contract: contract.clone(),
                                notary: party.clone(),
                                participants: vec![owner.public()],
                                data: i.to_be_bytes().to_vec(),
                            }],
                            commands: vec![],
                            notary: None,
                            time_window: None,
                            privacy_salt: SecureHash::of(&[b"issue", &i.to_be_bytes()]).0,
                        },
                        sigs: vec![],
                    };
                    let wtx = WireTransaction {
                        inputs: vec![StateRef {
                            tx_id: producer.id(),
                            index: 0,
                        }],
                        references: vec![],
                        outputs: vec![],
                        commands: vec![Command {
                            contract,
                            data: vec![],
                            signers: vec![owner.public()],
                        }],
                        notary: Some(party.clone()),
                        time_window: None,
                        privacy_salt: SecureHash::of(&[b"salt", &i.to_be_bytes()]).0,
                    };
                    let stx = SignedTransaction::signed_by(wtx, &owner);
                    NotarisationRequest::non_validating(&stx, |_| Some(producer.clone()))
                        .expect("producer")
                })
                .collect();
            let notary = notary.clone();
            async move {
                let handles: Vec<_> = requests
                    .into_iter()
                    .map(|r| {
                        let n = notary.clone();
                        let requester = n.identity().name.clone();
                        tokio::spawn(async move { n.notarise(&requester, r).await })
                    })
                    .collect();
                for h in handles {
                    h.await.expect("task").expect("notarised");
                }
            }
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
