//! LCP service latency over gRPC with mutual TLS (loopback, in-process enclave behind the
//! framed pipe protocol): UpdateClient of one QBFT devnet header (4 validators) and
//! VerifyNonMembership of one storage slot, each a full round trip including the enclave's
//! verification and signature; UpdateClient includes the host's durable client store write
//! (file + fsync).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Bytes, U256};
use criterion::{Criterion, criterion_group, criterion_main};
use k256::ecdsa::SigningKey;
use kh_elc::{QbftClientState, QbftConsensusState, QbftHeader, StorageLayout, StorageProof};
use kh_evm_chain::{Chain, ChainSpec, PoolLimits};
use kh_lcp_service::enclave::Enclave;
use kh_lcp_service::host::unix_now;
use kh_lcp_service::proto;
use kh_lcp_service::seal::{PlatformSecret, Sealer};
use kh_lcp_service::{EnclaveHandle, LcpNode};

const BLOCKS: u64 = 200;

fn key(i: u8) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[0] = 0x42;
    secret[31] = i;
    SigningKey::from_slice(&secret).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let t0 = unix_now().as_secs() - 1000;
    let mut chain = Chain::new(ChainSpec {
        chain_id: 1337,
        validator_keys: (1..=4).map(key).collect(),
        // The "IBC handler" account exists (empty storage) so absence proofs verify.
        alloc: vec![(alloy_primitives::Address::repeat_byte(0x11), U256::from(1))],
        genesis_timestamp: t0,
        gas_limit: 30_000_000,
        history: BLOCKS as usize + 1,
        contract_size_limit: 24_576,
        pool: PoolLimits::default(),
    })
    .unwrap();
    for i in 1..=BLOCKS {
        chain.produce_block(t0 + i).unwrap();
    }
    let headers: Vec<Vec<u8>> = (0..=BLOCKS)
        .map(|n| {
            bcs::to_bytes(&QbftHeader {
                header_rlp: Bytes::from(alloy_rlp::encode(&chain.block(n).unwrap().header)),
                trusted_height: n.saturating_sub(1),
            })
            .unwrap()
        })
        .collect();
    let b1 = chain.block(1).unwrap();
    let cs = bcs::to_bytes(&QbftClientState {
        chain_id: 1337,
        ibc_address: alloy_primitives::Address::repeat_byte(0x11),
        layout: StorageLayout::YuiIbcStore,
        trusting_period: Duration::from_secs(3600),
        max_clock_drift: Duration::from_secs(5),
        latest_height: 1,
        frozen: false,
    })
    .unwrap();
    let cons = bcs::to_bytes(&QbftConsensusState {
        block_hash: b1.hash,
        state_root: b1.header.state_root,
        timestamp: b1.header.timestamp,
        validators: b1.validators.clone(),
    })
    .unwrap();
    let slot = StorageLayout::YuiIbcStore.slot(b"commitments/ports/p/channels/c/sequences/1");
    let answer = chain
        .state_at(1)
        .unwrap()
        .proof(alloy_primitives::Address::repeat_byte(0x11), &[slot]);
    let proof = bcs::to_bytes(&StorageProof {
        account_proof: answer.account_proof,
        storage_proof: answer.storage_proofs[0].2.clone(),
    })
    .unwrap();

    let home = tempfile::tempdir().unwrap();
    let platform = PlatformSecret::generate();
    let enclave = EnclaveHandle::in_process(Enclave::new(Sealer::new(&platform, [1; 32]))).unwrap();
    let node = LcpNode::open(home.path(), enclave, 3600).unwrap();
    node.generate_key(None).unwrap();
    let ca = kh_ledger_node::NetworkCa::generate("bench").unwrap();
    let (server, client) = (ca.issue("lcp").unwrap(), ca.issue("relayer").unwrap());
    let root = ca.root_pem();
    let (handle, mut grpc) = rt.block_on(async {
        let h = kh_lcp_service::service::serve(
            "127.0.0.1:0".parse().unwrap(),
            &server.cert_pem,
            &server.key_pem,
            &root,
            Arc::new(node),
        )
        .await
        .unwrap();
        let c = kh_lcp_service::service::connect(h.addr, &client.cert_pem, &client.key_pem, &root)
            .await
            .unwrap();
        (h, c)
    });

    let mut generation = 0u64;
    let mut next = BLOCKS + 1;
    let mut id = String::new();
    let mut g = c.benchmark_group("lcp_grpc");
    g.sample_size(30);
    g.bench_function("update_client_qbft_header", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if next > BLOCKS {
                    id = format!("bench-{generation}");
                    generation += 1;
                    rt.block_on(grpc.create_client(proto::CreateClientRequest {
                        client_id: id.clone(),
                        client_type: "qbft".into(),
                        client_state: cs.clone(),
                        consensus_state: cons.clone(),
                    }))
                    .unwrap();
                    next = 2;
                }
                let req = proto::UpdateClientRequest {
                    client_id: id.clone(),
                    header: headers[next as usize].clone(),
                    now_unix_ns: 0,
                };
                let start = Instant::now();
                rt.block_on(grpc.update_client(req)).unwrap();
                total += start.elapsed();
                next += 1;
            }
            total
        })
    });
    rt.block_on(grpc.create_client(proto::CreateClientRequest {
        client_id: "verify".into(),
        client_type: "qbft".into(),
        client_state: cs.clone(),
        consensus_state: cons.clone(),
    }))
    .unwrap();
    g.bench_function("verify_non_membership_storage_slot", |b| {
        b.iter(|| {
            rt.block_on(
                grpc.verify_non_membership(proto::VerifyNonMembershipRequest {
                    client_id: "verify".into(),
                    height: 1,
                    proof: proof.clone(),
                    path: b"commitments/ports/p/channels/c/sequences/1".to_vec(),
                }),
            )
            .unwrap()
        })
    });
    g.finish();
    rt.block_on(handle.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
