//! The QBFT ELC on the project's own QBFT chain (`kh-evm-chain`, in process): its real sealed
//! headers (Cancun-era fields, 4 validators) update the client, a validator added by vote is
//! followed, and its real `eth_getProof` answers prove a commitment stored at the DESIGN §5
//! slot (membership) and an empty slot (non-membership) against the verified state roots.
//!
//! The commitment is written by a 20-byte test contract (`SSTORE(calldata[0..32],
//! calldata[32..64])`): the IBC handler contracts are not in this crate's dependencies; the
//! storage layout proven is the handler's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use k256::ecdsa::SigningKey;
use kh_elc::*;
use kh_evm_chain::{Chain, ChainSpec, PoolLimits};

const CHAIN_ID: u64 = 1337;
const T0: u64 = 1_800_000_000;

fn key(i: u8) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[0] = 0x42;
    secret[31] = i;
    SigningKey::from_slice(&secret).unwrap()
}

fn tx(signer: &PrivateKeySigner, nonce: u64, to: TxKind, input: Vec<u8>) -> Bytes {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::from(input),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    Bytes::from(envelope.encoded_2718())
}

/// Init code returning the runtime `PUSH1 32 CALLDATALOAD PUSH1 0 CALLDATALOAD SSTORE STOP`.
fn slot_writer() -> Vec<u8> {
    let runtime = [0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00];
    let mut init = vec![
        0x60, 0x08, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, 0x08, 0x60, 0x00, 0xf3,
    ];
    init.extend_from_slice(&runtime);
    init
}

fn header_of(chain: &Chain, number: u64, trusted_height: u64) -> QbftHeader {
    let block = chain.block(number).unwrap();
    QbftHeader {
        header_rlp: Bytes::from(alloy_rlp::encode(&block.header)),
        trusted_height,
    }
}

#[test]
fn the_devnet_headers_and_proofs_verify() {
    let validator_keys: Vec<SigningKey> = (1..=4).map(key).collect();
    let sender = PrivateKeySigner::from_signing_key(key(99));
    let mut chain = Chain::new(ChainSpec {
        chain_id: CHAIN_ID,
        validator_keys: validator_keys.clone(),
        alloc: vec![(sender.address(), U256::from(10u128.pow(21)))],
        genesis_timestamp: T0,
        gas_limit: 30_000_000,
        history: 64,
        contract_size_limit: 24_576,
        pool: PoolLimits::default(),
    })
    .unwrap();

    // Block 1 deploys the slot writer; block 2 stores a commitment at the DESIGN §5 slot.
    let contract = sender.address().create(0);
    chain
        .submit(&tx(&sender, 0, TxKind::Create, slot_writer()))
        .unwrap();
    chain.produce_block(T0 + 1).unwrap();
    let layout = StorageLayout::YuiIbcStore;
    let path = b"commitments/ports/ping/channels/channel-0/sequences/1";
    let commitment = b"a packet commitment";
    let slot = layout.slot(path);
    let mut call = slot.to_vec();
    call.extend_from_slice(layout.stored_value(commitment).unwrap().as_slice());
    chain
        .submit(&tx(&sender, 1, TxKind::Call(contract), call))
        .unwrap();
    chain.produce_block(T0 + 2).unwrap();
    assert_eq!(
        chain
            .state_at(2)
            .unwrap()
            .proof(contract, &[slot])
            .storage_proofs[0]
            .1,
        U256::from_be_bytes(keccak256(commitment).0)
    );

    // A client trusting genesis.
    let genesis = chain.block(0).unwrap();
    let mut c = ClientInstance::<QbftClient>::create(
        QbftClientState {
            chain_id: CHAIN_ID,
            ibc_address: contract,
            layout,
            trusting_period: Duration::from_secs(3600),
            max_clock_drift: Duration::from_secs(5),
            latest_height: 0,
            frozen: false,
        },
        QbftConsensusState {
            block_hash: genesis.hash,
            state_root: genesis.header.state_root,
            timestamp: genesis.header.timestamp,
            validators: genesis.validators.clone(),
        },
    )
    .unwrap();
    let now = Duration::from_secs(T0 + 10);
    // Adjacent (block 1 names genesis as parent), then a skip from 0 to 2.
    c.update(&header_of(&chain, 1, 0), now).unwrap();
    c.update(&header_of(&chain, 2, 0), now).unwrap();
    let block2 = chain.block(2).unwrap();
    assert_eq!(c.consensus_states[&2].block_hash, block2.hash);
    assert_eq!(c.consensus_states[&2].state_root, block2.header.state_root);
    assert_eq!(c.consensus_states[&2].validators, block2.validators);

    // eth_getProof at height 2: membership of the commitment, absence of another path.
    let other = layout.slot(b"receipts/ports/ping/channels/channel-0/sequences/1");
    let answer = chain.state_at(2).unwrap().proof(contract, &[slot, other]);
    let present = StorageProof {
        account_proof: answer.account_proof.clone(),
        storage_proof: answer.storage_proofs[0].2.clone(),
    };
    let absent = StorageProof {
        account_proof: answer.account_proof.clone(),
        storage_proof: answer.storage_proofs[1].2.clone(),
    };
    c.verify_membership(2, &present, path, commitment).unwrap();
    assert!(c.verify_membership(2, &present, path, b"another").is_err());
    assert!(c.verify_non_membership(2, &present, path).is_err());
    let receipt = b"receipts/ports/ping/channels/channel-0/sequences/1";
    c.verify_non_membership(2, &absent, receipt).unwrap();
    assert!(
        c.verify_membership(2, &absent, receipt, commitment)
            .is_err()
    );
    // At height 1 the slot was still empty: the height-2 proof does not verify there.
    assert!(c.verify_membership(1, &present, path, commitment).is_err());
    let at1 = chain.state_at(1).unwrap().proof(contract, &[slot]);
    c.verify_non_membership(
        1,
        &StorageProof {
            account_proof: at1.account_proof,
            storage_proof: at1.storage_proofs[0].2.clone(),
        },
        path,
    )
    .unwrap();

    // A validator voted in (the devnet's validators propose it until it is added; quorum of
    // 5 is 4, which the devnet's 4 keys still seal). The client follows from height 2 to the
    // first block of the grown set: all 4 trusted validators sealed it.
    let joining = kh_qbft::address_of(key(5).verifying_key());
    let mut chain = chain;
    chain.propose_vote(joining, true).unwrap();
    let mut grown = None;
    for i in 3..=20 {
        let block = chain.produce_block(T0 + i).unwrap();
        if block.validators.contains(&joining) {
            grown = Some(block.header.number);
            break;
        }
    }
    let n = grown.expect("the vote passed within 18 blocks");
    assert_eq!(chain.block(n).unwrap().validators.len(), 5);
    let outcome = c.update(&header_of(&chain, n, 2), now).unwrap();
    assert!(matches!(outcome, UpdateOutcome::Updated { .. }));
    assert!(c.consensus_states[&n].validators.contains(&joining));
    // The same header keeping only one of its seals is refused.
    let mut lone = chain.block(n).unwrap().header.clone();
    assert!(
        kh_qbft::ExtraData::decode(&lone.extra_data)
            .unwrap()
            .seals
            .len()
            >= 4
    );
    let mut extra = kh_qbft::ExtraData::decode(&lone.extra_data).unwrap();
    extra.seals.truncate(1);
    lone.extra_data = Bytes::from(extra.encode());
    let lone = QbftHeader {
        header_rlp: Bytes::from(alloy_rlp::encode(&lone)),
        trusted_height: 2,
    };
    assert!(c.clone().update(&lone, now).is_err());
}
