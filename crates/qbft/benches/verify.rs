#![allow(missing_docs)] // criterion macros generate undocumented items
//! Full QBFT header verification (decode + seal digest + recover every seal + quorum) for
//! N = 4, 7 and 21 validators, on the Besu block 7528 header re-sealed with generated keys.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use kh_qbft::{ExtraData, Header, address_of, quorum, sign_seal, verify_commit_seals};

fn sealed_header(n: usize) -> (Vec<u8>, Vec<kh_qbft::Address>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/qbft/besu-block-7528.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json");
    let hex = json["header_rlp_with_seals"].as_str().expect("header hex");
    let base =
        Header::decode(&hex::decode(hex.trim_start_matches("0x")).expect("hex")).expect("header");
    let keys: Vec<SigningKey> = (1..=n)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[24..].copy_from_slice(&(i as u64 + 1000).to_be_bytes());
            SigningKey::from_slice(&secret).expect("key")
        })
        .collect();
    let validators: Vec<_> = keys.iter().map(|k| address_of(k.verifying_key())).collect();
    let mut extra = ExtraData {
        validators: validators.clone(),
        seals: vec![],
        ..base.extra_data().clone()
    };
    let unsealed = base.with_extra_data(&extra);
    let digest = unsealed.seal_digest();
    extra.seals = keys
        .iter()
        .take(quorum(n))
        .map(|k| sign_seal(digest, k))
        .collect();
    (unsealed.with_extra_data(&extra).encode(), validators)
}

fn bench_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("qbft_header_verify");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for n in [4usize, 7, 21] {
        let (rlp, validators) = sealed_header(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &rlp, |b, rlp| {
            b.iter(|| {
                let header = Header::decode(black_box(rlp)).expect("decode");
                verify_commit_seals(&header, &validators).expect("verify")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
