//! The QBFT ELC on headers sealed here: a validator set replaced through an intermediate
//! header (and refused in one step), trusting period and clock drift boundaries, adjacency,
//! heights and timestamps that do not advance, non-BFT headers, misbehaviour, and the client
//! instance surviving a serde round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use k256::ecdsa::SigningKey;
use kh_elc::*;
use kh_qbft::{BFT_MIX_HASH, EMPTY_OMMERS_HASH, ExtraData, Header, QbftError};

fn keys(n: usize, offset: u8) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let mut secret = [0u8; 32];
            secret[0] = 7;
            secret[30] = offset;
            secret[31] = u8::try_from(i + 1).unwrap();
            SigningKey::from_slice(&secret).unwrap()
        })
        .collect()
}

fn addresses(keys: &[SigningKey]) -> Vec<Address> {
    keys.iter()
        .map(|k| kh_qbft::address_of(k.verifying_key()))
        .collect()
}

struct Block {
    number: u64,
    timestamp: u64,
    parent: B256,
    difficulty: u64,
    validators: Vec<Address>,
}

/// A 15-field QBFT header sealed by `signers`; returns its RLP and block hash.
fn seal(b: &Block, signers: &[SigningKey]) -> (Bytes, B256) {
    let extra = ExtraData {
        vanity: [0; 32],
        validators: b.validators.clone(),
        vote: None,
        round: 0,
        seals: vec![],
    };
    let items: Vec<Vec<u8>> = vec![
        alloy_rlp::encode(b.parent),
        alloy_rlp::encode(EMPTY_OMMERS_HASH),
        alloy_rlp::encode(b.validators[0]),
        alloy_rlp::encode(B256::repeat_byte(u8::try_from(b.number % 256).unwrap())),
        alloy_rlp::encode(B256::repeat_byte(0x11)),
        alloy_rlp::encode(B256::repeat_byte(0x22)),
        alloy_rlp::encode(&[0u8; 256][..]),
        alloy_rlp::encode(b.difficulty),
        alloy_rlp::encode(b.number),
        alloy_rlp::encode(30_000_000u64),
        alloy_rlp::encode(0u64),
        alloy_rlp::encode(b.timestamp),
        alloy_rlp::encode(&extra.encode()[..]),
        alloy_rlp::encode(BFT_MIX_HASH),
        alloy_rlp::encode(&[0u8; 8][..]),
    ];
    let payload: Vec<u8> = items.concat();
    let mut rlp = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut rlp);
    rlp.extend_from_slice(&payload);
    let header = Header::decode(&rlp).unwrap();
    let digest = header.seal_digest();
    let sealed = header.with_extra_data(&ExtraData {
        seals: signers
            .iter()
            .map(|k| kh_qbft::sign_seal(digest, k))
            .collect(),
        ..extra
    });
    (Bytes::from(sealed.encode()), sealed.block_hash())
}

const T0: u64 = 1_800_000_000;
const PERIOD: u64 = 100;
const DRIFT: u64 = 10;

fn client(validators: Vec<Address>) -> ClientInstance<QbftClient> {
    ClientInstance::create(
        QbftClientState {
            chain_id: 1337,
            ibc_address: Address::repeat_byte(0xaa),
            layout: StorageLayout::YuiIbcStore,
            trusting_period: Duration::from_secs(PERIOD),
            max_clock_drift: Duration::from_secs(DRIFT),
            latest_height: 10,
            frozen: false,
        },
        QbftConsensusState {
            block_hash: B256::repeat_byte(0x10),
            state_root: B256::repeat_byte(0x10),
            timestamp: T0,
            validators,
        },
    )
    .unwrap()
}

fn block(number: u64, timestamp: u64, validators: &[Address]) -> Block {
    Block {
        number,
        timestamp,
        parent: B256::repeat_byte(0x10),
        difficulty: 1,
        validators: validators.to_vec(),
    }
}

fn at(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

#[test]
fn a_validator_set_is_replaced_through_an_intermediate_header() {
    let old = keys(4, 0);
    let new = keys(4, 1);
    let mut c = client(addresses(&old));
    // Straight to an all-new set: no trusted validator signed.
    let (rlp, _) = seal(&block(20, T0 + 10, &addresses(&new)), &new[..3]);
    let direct = QbftHeader {
        header_rlp: rlp,
        trusted_height: 10,
    };
    assert_eq!(
        c.update(&direct, at(T0 + 10)),
        Err(QbftElcError::Header(
            QbftError::InsufficientTrustedOverlap {
                height: 20,
                got: 0,
                need: 2
            }
        ))
    );
    // Intermediate set {old0, old1, new0, new1} sealed by old0, old1, new0: 2 of the trusted 4
    // and 3 of its own 4.
    let mid_keys = vec![
        old[0].clone(),
        old[1].clone(),
        new[0].clone(),
        new[1].clone(),
    ];
    let (rlp, _) = seal(&block(15, T0 + 5, &addresses(&mid_keys)), &mid_keys[..3]);
    let mid = QbftHeader {
        header_rlp: rlp,
        trusted_height: 10,
    };
    assert!(matches!(
        c.update(&mid, at(T0 + 5)).unwrap(),
        UpdateOutcome::Updated { .. }
    ));
    assert_eq!(c.consensus_states[&15].validators, addresses(&mid_keys));
    // From the intermediate state, the new set (new0, new1 are trusted there) is reachable.
    let from_mid = QbftHeader {
        trusted_height: 15,
        ..direct.clone()
    };
    assert!(matches!(
        c.update(&from_mid, at(T0 + 10)).unwrap(),
        UpdateOutcome::Updated { .. }
    ));
    assert_eq!(c.consensus_states[&20].validators, addresses(&new));
    assert_eq!(c.client_state.latest_height, 20);
    // The old set alone can no longer move a client trusting height 20.
    let (rlp, _) = seal(&block(25, T0 + 20, &addresses(&old)), &old);
    let back = QbftHeader {
        header_rlp: rlp,
        trusted_height: 20,
    };
    assert!(matches!(
        c.update(&back, at(T0 + 20)),
        Err(QbftElcError::Header(
            QbftError::InsufficientTrustedOverlap { .. }
        ))
    ));
}

#[test]
fn trusting_period_and_clock_drift_boundaries() {
    let k = keys(4, 0);
    let vals = addresses(&k);
    // Not adjacent: verified from 10 as a skip.
    let upd = QbftHeader {
        header_rlp: seal(&block(12, T0 + 50, &vals), &k[..3]).0,
        trusted_height: 10,
    };
    let c = client(vals.clone());
    // Trusted state at T0 with a 100 s period: usable until T0 + 99.
    assert_eq!(
        c.clone().update(&upd, at(T0 + PERIOD)),
        Err(QbftElcError::TrustedStateExpired { height: 10 })
    );
    assert!(c.clone().update(&upd, at(T0 + PERIOD - 1)).is_ok());
    // The header (T0 + 50) may be at most DRIFT seconds ahead of now.
    assert_eq!(
        c.clone().update(&upd, at(T0 + 50 - DRIFT - 1)),
        Err(QbftElcError::HeaderFromFuture { timestamp: T0 + 50 })
    );
    assert!(c.clone().update(&upd, at(T0 + 50 - DRIFT)).is_ok());
    // The consensus state stored: the header's hash, state root, timestamp and validators.
    let (rlp, hash) = seal(&block(12, T0 + 1, &vals), &k[..3]);
    let early = QbftHeader {
        header_rlp: rlp,
        trusted_height: 10,
    };
    assert_eq!(
        c.clone().update(&early, at(T0 + PERIOD - 1)),
        Ok(UpdateOutcome::Updated {
            client_state: QbftClientState {
                latest_height: 12,
                ..c.client_state.clone()
            },
            trusted_height: 10,
            consensus_states: vec![(
                12,
                QbftConsensusState {
                    block_hash: hash,
                    state_root: B256::repeat_byte(12),
                    timestamp: T0 + 1,
                    validators: vals.clone(),
                }
            )],
        })
    );
}

#[test]
fn a_header_out_of_time_order_with_stored_states_freezes() {
    let k = keys(4, 0);
    let vals = addresses(&k);
    let now = at(T0 + 50);
    let upd = |number: u64, ts: u64| QbftHeader {
        header_rlp: seal(&block(number, ts, &vals), &k[..3]).0,
        trusted_height: 10,
    };
    let mut c = client(vals.clone());
    c.update(&upd(20, T0 + 20), now).unwrap();
    // Between 10 and 20 in time: accepted.
    let mut ok = c.clone();
    assert!(matches!(
        ok.update(&upd(15, T0 + 10), now).unwrap(),
        UpdateOutcome::Updated { .. }
    ));
    // Height 15 later than 20: a fork.
    assert!(matches!(
        c.clone().update(&upd(15, T0 + 21), now).unwrap(),
        UpdateOutcome::Frozen { height: 15, .. }
    ));
    // Height 15 in the same second as 20 (sub-second blocks): not evidence.
    assert!(matches!(
        c.clone().update(&upd(15, T0 + 20), now).unwrap(),
        UpdateOutcome::Updated { .. }
    ));
    // Height 16 at an earlier time than 15 (both from 10).
    let mut below = ok.clone();
    let outcome = below.update(&upd(16, T0 + 9), now).unwrap();
    assert!(matches!(outcome, UpdateOutcome::Frozen { height: 16, .. }));
    assert!(below.client_state.frozen);
    // A header too large to be real is refused before decoding.
    let huge = QbftHeader {
        header_rlp: Bytes::from(vec![0u8; qbft::MAX_HEADER_BYTES + 1]),
        trusted_height: 10,
    };
    assert!(matches!(
        ok.update(&huge, now),
        Err(QbftElcError::HeaderTooLarge { .. })
    ));
}

#[test]
fn heights_timestamps_adjacency_and_bft_constants() {
    let k = keys(4, 0);
    let vals = addresses(&k);
    let c = client(vals.clone());
    let now = at(T0 + 30);
    let upd = |b: Block| QbftHeader {
        header_rlp: seal(&b, &k[..3]).0,
        trusted_height: 10,
    };
    assert_eq!(
        c.clone().update(&upd(block(10, T0 + 5, &vals)), now),
        Err(QbftElcError::HeightNotAfterTrusted {
            height: 10,
            trusted: 10
        })
    );
    assert_eq!(
        c.clone().update(&upd(block(12, T0, &vals)), now),
        Err(QbftElcError::TimestampNotAfterTrusted {
            header: T0,
            trusted: T0
        })
    );
    // Adjacent: the parent must be the trusted block.
    assert!(
        c.clone()
            .update(&upd(block(11, T0 + 5, &vals)), now)
            .is_ok()
    );
    let mut orphan = block(11, T0 + 5, &vals);
    orphan.parent = B256::repeat_byte(0x99);
    assert_eq!(
        c.clone().update(&upd(orphan), now),
        Err(QbftElcError::ParentHashMismatch { height: 11 })
    );
    let mut pow = block(12, T0 + 5, &vals);
    pow.difficulty = 2;
    assert_eq!(
        c.clone().update(&upd(pow), now),
        Err(QbftElcError::Header(QbftError::NotBftHeader("difficulty")))
    );
    // An unknown trusted height.
    let mut from_nowhere = upd(block(12, T0 + 5, &vals));
    from_nowhere.trusted_height = 9;
    assert_eq!(
        c.clone().update(&from_nowhere, now),
        Err(QbftElcError::NoConsensusState(9))
    );
    // Creation refuses unusable states.
    let mut bad = c.client_state.clone();
    bad.trusting_period = Duration::ZERO;
    assert!(ClientInstance::<QbftClient>::create(bad, c.consensus_states[&10].clone()).is_err());
    let mut dup = c.consensus_states[&10].clone();
    dup.validators.push(vals[0]);
    assert!(ClientInstance::<QbftClient>::create(c.client_state.clone(), dup).is_err());
}

#[test]
fn misbehaviour_freezes_and_the_instance_round_trips() {
    let k = keys(4, 0);
    let vals = addresses(&k);
    let mut c = client(vals.clone());
    let now = at(T0 + 30);
    let a = QbftHeader {
        header_rlp: seal(&block(12, T0 + 5, &vals), &k[..3]).0,
        trusted_height: 10,
    };
    let b = QbftHeader {
        header_rlp: seal(&block(12, T0 + 6, &vals), &k[1..]).0,
        trusted_height: 10,
    };
    c.update(&a, now).unwrap();
    // The instance is what the LCP host persists.
    let json = serde_json::to_string(&c).unwrap();
    let restored: ClientInstance<QbftClient> = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, c);
    // The same block with other seals (a different quorum) is the same block.
    let a2 = QbftHeader {
        header_rlp: seal(&block(12, T0 + 5, &vals), &k[1..]).0,
        trusted_height: 10,
    };
    assert_eq!(
        c.update(&a2, now),
        Ok(UpdateOutcome::Unchanged { height: 12 })
    );
    let mut evidence_client = restored.clone();
    evidence_client
        .submit_misbehaviour(
            &QbftMisbehaviour {
                header_1: a.clone(),
                header_2: b.clone(),
            },
            now,
        )
        .unwrap();
    assert!(evidence_client.client_state.frozen);
    assert!(matches!(
        c.update(&b, now).unwrap(),
        UpdateOutcome::Frozen { height: 12, .. }
    ));
    assert_eq!(c.update(&a, now), Err(QbftElcError::Frozen));
    let proof = StorageProof {
        account_proof: vec![],
        storage_proof: vec![],
    };
    assert_eq!(
        c.verify_non_membership(12, &proof, b"x"),
        Err(QbftElcError::Frozen)
    );
}
