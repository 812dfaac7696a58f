#![allow(missing_docs)] // criterion macros generate undocumented items
//! The QBFT ELC's costs on the live Besu fixture of `vectors/qbft/`: one header update
//! (decode, seal digest, 3 signer recoveries, skipping rule) and one membership check (account
//! proof + storage proof).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use criterion::{Criterion, criterion_group, criterion_main};
use kh_elc::qbft::decode_proof_nodes;
use kh_elc::*;
use serde_json::Value;

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex").trim_start_matches("0x")).expect("hex")
}

fn bench(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/qbft/ibc-contracts-qbft-fixture.json"
    );
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json");
    let client_state = QbftClientState {
        chain_id: 0,
        ibc_address: Address::from_slice(&bytes(&f["routerAddress"])),
        layout: StorageLayout::Ics26Router,
        trusting_period: Duration::from_secs(1_209_600),
        max_clock_drift: Duration::from_secs(15),
        latest_height: 33,
        frozen: false,
    };
    let validators = f["initialTrustedValidators"]
        .as_array()
        .expect("validators")
        .iter()
        .map(|v| Address::from_slice(&bytes(v)))
        .collect();
    let mut states = BTreeMap::from([(
        33,
        QbftConsensusState {
            block_hash: B256::ZERO,
            state_root: B256::ZERO,
            timestamp: f["initialTrustedTimestamp"].as_u64().expect("ts"),
            validators,
        },
    )]);
    let now = Duration::from_secs(f["initialTrustedTimestamp"].as_u64().expect("ts") + 1);
    let header = QbftHeader {
        header_rlp: Bytes::from(bytes(&f["updateHeight12"]["headerRlp"])),
        trusted_height: 33,
    };
    c.bench_function("qbft_update_4_validators", |b| {
        b.iter(|| {
            QbftClient::update(&client_state, &states, black_box(&header), now).expect("update")
        })
    });
    let UpdateOutcome::Updated {
        consensus_states, ..
    } = QbftClient::update(&client_state, &states, &header, now).expect("update")
    else {
        panic!("not updated")
    };
    states.extend(consensus_states);
    let proof = StorageProof {
        account_proof: decode_proof_nodes(&bytes(&f["updateHeight12"]["accountProof"]))
            .expect("nodes"),
        storage_proof: decode_proof_nodes(&bytes(&f["membership"]["proof"])).expect("nodes"),
    };
    let key = bytes(&f["membership"]["path"]);
    let value = bytes(&f["membership"]["value"]);
    c.bench_function("qbft_verify_membership", |b| {
        b.iter(|| {
            QbftClient::verify_membership(
                &client_state,
                &states,
                35,
                black_box(&proof),
                &key,
                &value,
            )
            .expect("membership")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).sample_size(30);
    targets = bench
}
criterion_main!(benches);
