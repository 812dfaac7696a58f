//! Block sealing and `eth_getProof` against one contract holding 1k, 100k and 1M storage slots.
//! With incremental tries both should stay flat as the slot count grows.
//!
//! The contract is deployed through an ordinary transaction whose constructor writes slots
//! `1..=N` (value = slot), so the state is built by the same path as on the devnet. Each sealed
//! block holds one call that rewrites a slot of the big contract and one plain transfer.
//! `KH_BENCH_SLOTS=1000,100000` limits the sizes (the 1M setup takes about a minute).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::Cell;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kh_evm_chain::{Chain, ChainSpec, DEFAULT_CONTRACT_SIZE_LIMIT, PoolLimits, validator_key};

const CHAIN_ID: u64 = 1337;

/// Constructor: `for i in (1..=n).rev() { sstore(i, i) }`, then returns the runtime
/// `sstore(calldata[0..32], calldata[32..64])`.
fn init_code(n: u32) -> Bytes {
    let runtime = [0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00];
    let mut code = vec![0x63];
    code.extend_from_slice(&n.to_be_bytes()); // PUSH4 n
    code.extend_from_slice(&[
        0x5b, // 5: JUMPDEST
        0x80, 0x80, 0x55, // DUP1 DUP1 SSTORE
        0x60, 0x01, 0x90, 0x03, // i - 1
        0x80, 0x60, 0x05, 0x57, // DUP1 PUSH1 5 JUMPI
        0x50, // POP
        0x60, 0x08, 0x60, 0x1e, 0x60, 0x00, 0x39, // CODECOPY(0, 30, 8)
        0x60, 0x08, 0x60, 0x00, 0xf3, // RETURN(0, 8)
    ]);
    assert_eq!(code.len(), 30);
    code.extend_from_slice(&runtime);
    Bytes::from(code)
}

fn sign(key: &PrivateKeySigner, nonce: u64, to: TxKind, gas: u64, input: Bytes) -> Bytes {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1,
        to,
        value: U256::from(u64::from(to.is_call())),
        access_list: Default::default(),
        input,
    };
    let sig = key.sign_hash_sync(&tx.signature_hash()).unwrap();
    let env: TxEnvelope = tx.into_signed(sig).into();
    Bytes::from(env.encoded_2718())
}

struct Setup {
    chain: Chain,
    key: PrivateKeySigner,
    contract: Address,
    nonce: Cell<u64>,
    time: Cell<u64>,
}

fn setup(slots: u32) -> Setup {
    let key = PrivateKeySigner::from_bytes(&keccak256("bench sender")).unwrap();
    let gas_limit = 30_000_000 + 23_000 * u64::from(slots);
    let mut chain = Chain::new(ChainSpec {
        chain_id: CHAIN_ID,
        validator_keys: (0..4).map(|i| validator_key("bench", i)).collect(),
        alloc: vec![(key.address(), U256::from(10u64).pow(U256::from(30)))],
        genesis_timestamp: 0,
        gas_limit,
        history: 64,
        contract_size_limit: DEFAULT_CONTRACT_SIZE_LIMIT,
        pool: PoolLimits::default(),
    })
    .unwrap();
    let deploy = sign(&key, 0, TxKind::Create, gas_limit, init_code(slots));
    chain.submit(&deploy).unwrap();
    chain.produce_block(1).unwrap();
    let contract = key.address().create(0);
    let receipt = &chain.head().receipts[0];
    assert!(receipt.envelope.is_success(), "deployment failed");
    assert_eq!(
        chain.state().account(&contract).unwrap().storage_len(),
        slots as usize
    );
    Setup {
        chain,
        key,
        contract,
        nonce: Cell::new(1),
        time: Cell::new(2),
    }
}

fn sizes() -> Vec<u32> {
    std::env::var("KH_BENCH_SLOTS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000])
}

fn bench(c: &mut Criterion) {
    let mut seal = c.benchmark_group("seal_block");
    seal.sample_size(30)
        .measurement_time(Duration::from_secs(10));
    let mut proofs = Vec::new();
    for n in sizes() {
        let Setup {
            mut chain,
            key,
            contract,
            nonce,
            time,
        } = setup(n);
        let sink = Address::repeat_byte(0x42);
        seal.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || {
                    let nonce_now = nonce.get();
                    nonce.set(nonce_now + 2);
                    let nonce = nonce_now;
                    let slot = U256::from(nonce % u64::from(n) + 1);
                    let mut input = B256::from(slot).to_vec();
                    input.extend_from_slice(B256::from(U256::from(nonce)).as_slice());
                    (
                        sign(&key, nonce, TxKind::Call(contract), 100_000, input.into()),
                        sign(&key, nonce + 1, TxKind::Call(sink), 21_000, Bytes::new()),
                    )
                },
                |(call, transfer)| {
                    chain.submit(&call).unwrap();
                    chain.submit(&transfer).unwrap();
                    let t = time.get();
                    time.set(t + 1);
                    let block = chain.produce_block(t).unwrap();
                    assert_eq!(block.txs.len(), 2);
                },
                criterion::BatchSize::SmallInput,
            )
        });
        proofs.push((n, chain, contract));
    }
    seal.finish();

    let mut group = c.benchmark_group("get_proof");
    group.sample_size(100);
    for (n, chain, contract) in &proofs {
        let state = chain.state();
        let counter = Cell::new(0u64);
        group.bench_with_input(BenchmarkId::new("1_slot", n), n, |b, &n| {
            b.iter(|| {
                let i = counter.get();
                counter.set(i + 1);
                let slot = B256::from(U256::from(i.wrapping_mul(7919) % u64::from(n) + 1));
                let proof = state.proof(*contract, &[slot]);
                assert!(!proof.storage_proofs[0].2.is_empty());
                proof
            })
        });
        group.bench_with_input(BenchmarkId::new("8_slots", n), n, |b, &n| {
            b.iter(|| {
                let i = counter.get();
                counter.set(i + 1);
                let slots: Vec<B256> = (0..8u64)
                    .map(|j| B256::from(U256::from((i * 8 + j) * 7919 % u64::from(n) + 1)))
                    .collect();
                state.proof(*contract, &slots)
            })
        });
    }
    group.finish();
}

/// For comparison: what sealing cost per touched contract before the tries were incremental —
/// hashing, sorting and folding every slot through alloy-trie's HashBuilder.
fn full_rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("full_rebuild_before");
    group.sample_size(10);
    for n in sizes() {
        let slots: Vec<(U256, U256)> = (1..=u64::from(n))
            .map(|i| (U256::from(i), U256::from(i)))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &slots, |b, slots| {
            b.iter(|| {
                let mut leaves: Vec<(B256, Vec<u8>)> = slots
                    .iter()
                    .map(|(k, v)| {
                        (
                            keccak256(B256::from(*k)),
                            alloy_rlp::encode_fixed_size(v).to_vec(),
                        )
                    })
                    .collect();
                leaves.sort_unstable_by_key(|l| l.0);
                let mut hb = alloy_trie::HashBuilder::default();
                for (k, v) in &leaves {
                    hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
                }
                hb.root()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, full_rebuild);
criterion_main!(benches);
