//! The QBFT ELC on the vectors of `vectors/qbft/` (README there): the live Besu QBFT fixture of
//! cosmos/ibc-contracts (valid updates accepted, low quorum and low overlap rejected, a
//! conflicting header freezes the client, membership and non-membership of its storage
//! proofs), Besu block 7528, and the IBFT2 block a QBFT client must refuse. Changing any byte of
//! a header or of a proof is rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use kh_elc::qbft::decode_proof_nodes;
use kh_elc::*;
use kh_qbft::QbftError;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!(
        "../../../vectors/qbft/ibc-contracts-qbft-fixture.json"
    ))
    .unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

fn b256(v: &Value) -> B256 {
    B256::from_slice(&bytes(v))
}

fn address(v: &Value) -> Address {
    Address::from_slice(&bytes(v))
}

fn addresses(v: &Value) -> Vec<Address> {
    v.as_array().unwrap().iter().map(address).collect()
}

fn update(case: &Value) -> QbftHeader {
    QbftHeader {
        header_rlp: Bytes::from(bytes(&case["headerRlp"])),
        trusted_height: case["trustedHeight"].as_u64().unwrap(),
    }
}

/// The fixture's client at height 33. The fixture gives no header 33, so its state root is
/// unknown (zero here; nothing is proven at 33) and its block hash is header 34's parent hash.
fn client(f: &Value) -> ClientInstance<QbftClient> {
    let header34 = kh_qbft::Header::decode(&bytes(&f["updateHeight11"]["headerRlp"])).unwrap();
    ClientInstance::create(
        QbftClientState {
            chain_id: 0,
            ibc_address: address(&f["routerAddress"]),
            layout: StorageLayout::Ics26Router,
            trusting_period: Duration::from_secs(f["trustingPeriod"].as_u64().unwrap()),
            max_clock_drift: Duration::from_secs(f["maxClockDrift"].as_u64().unwrap()),
            latest_height: f["initialTrustedHeight"].as_u64().unwrap(),
            frozen: false,
        },
        QbftConsensusState {
            block_hash: header34.parent_hash(),
            state_root: B256::ZERO,
            timestamp: f["initialTrustedTimestamp"].as_u64().unwrap(),
            validators: addresses(&f["initialTrustedValidators"]),
        },
    )
    .unwrap()
}

/// The fixture's block time: the initial trusted timestamp + 1.
fn now(f: &Value) -> Duration {
    Duration::from_secs(f["initialTrustedTimestamp"].as_u64().unwrap() + 1)
}

fn expect_updated(c: &mut ClientInstance<QbftClient>, f: &Value, name: &str) -> QbftConsensusState {
    let case = &f[name];
    let height = case["height"].as_u64().unwrap();
    let outcome = c.update(&update(case), now(f)).unwrap();
    let UpdateOutcome::Updated {
        consensus_states, ..
    } = outcome
    else {
        panic!("{name}: {outcome:?}")
    };
    assert_eq!(consensus_states.len(), 1);
    assert_eq!(consensus_states[0].0, height);
    let state = consensus_states[0].1.clone();
    assert_eq!(state.timestamp, case["expectedTimestamp"].as_u64().unwrap());
    assert_eq!(state.validators, addresses(&case["expectedValidators"]));
    assert_eq!(c.client_state.latest_height, height);
    // The account proof of the update proves the expected storage root under the header's
    // state root.
    let account_proof = decode_proof_nodes(&bytes(&case["accountProof"])).unwrap();
    let root =
        QbftClient::storage_root(&c.client_state, &c.consensus_states, height, &account_proof)
            .unwrap();
    assert_eq!(root, b256(&case["expectedStorageRoot"]), "{name}");
    state
}

#[test]
fn valid_updates_are_accepted() {
    let f = fixture();
    let mut c = client(&f);
    expect_updated(&mut c, &f, "updateHeight11");
    // Non-adjacent from 33 again.
    expect_updated(&mut c, &f, "updateHeight12");
    // The same header again changes nothing.
    assert_eq!(
        c.update(&update(&f["updateHeight12"]), now(&f)).unwrap(),
        UpdateOutcome::Unchanged { height: 35 }
    );
    // Adjacent: 35 from 34 (its parent hash is header 34's block hash).
    let mut c = client(&f);
    expect_updated(&mut c, &f, "updateHeight11");
    let mut from34 = update(&f["updateHeight12"]);
    from34.trusted_height = 34;
    assert!(matches!(
        c.update(&from34, now(&f)).unwrap(),
        UpdateOutcome::Updated { .. }
    ));
}

#[test]
fn low_quorum_and_low_overlap_are_rejected() {
    let f = fixture();
    let mut c = client(&f);
    assert_eq!(
        c.update(&update(&f["lowQuorumHeight12"]), now(&f)),
        Err(QbftElcError::Header(QbftError::InsufficientSeals {
            height: 35,
            got: 2,
            need: 3
        }))
    );
    assert_eq!(
        c.update(&update(&f["lowOverlapHeight13"]), now(&f)),
        Err(QbftElcError::Header(
            QbftError::InsufficientTrustedOverlap {
                height: 36,
                got: 1,
                need: 2
            }
        ))
    );
    assert_eq!(c.consensus_states.len(), 1, "nothing was stored");
}

#[test]
fn a_conflicting_header_freezes_the_client() {
    let f = fixture();
    let mut c = client(&f);
    expect_updated(&mut c, &f, "updateHeight12");
    assert_eq!(
        c.update(&update(&f["conflictingHeight12"]), now(&f))
            .unwrap(),
        UpdateOutcome::Frozen {
            client_state: QbftClientState {
                frozen: true,
                ..c.client_state.clone()
            },
            height: 35
        }
    );
    assert!(c.client_state.frozen);
    // A frozen client refuses everything, the valid header and proofs included.
    assert_eq!(
        c.update(&update(&f["updateHeight11"]), now(&f)),
        Err(QbftElcError::Frozen)
    );
    let proof = membership_proof(&f, "membership");
    let value = bytes(&f["membership"]["value"]);
    let path = bytes(&f["membership"]["path"]);
    assert_eq!(
        c.verify_membership(35, &proof, &path, &value),
        Err(QbftElcError::Frozen)
    );

    // The same two headers as misbehaviour evidence freeze a client that has seen neither.
    let mut c = client(&f);
    let evidence = QbftMisbehaviour {
        header_1: update(&f["updateHeight12"]),
        header_2: update(&f["conflictingHeight12"]),
    };
    c.submit_misbehaviour(&evidence, now(&f)).unwrap();
    assert!(c.client_state.frozen);
    assert_eq!(
        c.submit_misbehaviour(&evidence, now(&f)),
        Err(QbftElcError::Frozen)
    );
    // Not misbehaviour: one header twice, two heights, or a header below quorum.
    let c = client(&f);
    let mut probe = c.clone();
    let same = QbftMisbehaviour {
        header_1: update(&f["updateHeight12"]),
        header_2: update(&f["updateHeight12"]),
    };
    assert!(matches!(
        probe.submit_misbehaviour(&same, now(&f)),
        Err(QbftElcError::NotMisbehaviour(_))
    ));
    let heights = QbftMisbehaviour {
        header_1: update(&f["updateHeight11"]),
        header_2: update(&f["updateHeight12"]),
    };
    assert!(matches!(
        probe.submit_misbehaviour(&heights, now(&f)),
        Err(QbftElcError::NotMisbehaviour(_))
    ));
    let weak = QbftMisbehaviour {
        header_1: update(&f["updateHeight12"]),
        header_2: update(&f["lowQuorumHeight12"]),
    };
    assert!(matches!(
        probe.submit_misbehaviour(&weak, now(&f)),
        Err(QbftElcError::Header(_))
    ));
    assert!(!probe.client_state.frozen);
}

/// The fixture's storage proof of `case`, with the account proof of header 35.
fn membership_proof(f: &Value, case: &str) -> StorageProof {
    StorageProof {
        account_proof: decode_proof_nodes(&bytes(&f["updateHeight12"]["accountProof"])).unwrap(),
        storage_proof: decode_proof_nodes(&bytes(&f[case]["proof"])).unwrap(),
    }
}

#[test]
fn membership_and_non_membership_at_height_35() {
    let f = fixture();
    let mut c = client(&f);
    expect_updated(&mut c, &f, "updateHeight12");
    let height = f["membership"]["proofHeight"].as_u64().unwrap();
    let proof = membership_proof(&f, "membership");
    let path = bytes(&f["membership"]["path"]);
    let value = bytes(&f["membership"]["value"]);
    c.verify_membership(height, &proof, &path, &value).unwrap();
    assert_eq!(
        c.consensus_states[&height].timestamp,
        f["membership"]["expectedTimestamp"].as_u64().unwrap()
    );
    // A wrong value, another path, another height, non-membership of a present path.
    let mut wrong = value.clone();
    wrong[31] ^= 1;
    assert!(c.verify_membership(height, &proof, &path, &wrong).is_err());
    assert!(
        c.verify_membership(height, &proof, b"other", &value)
            .is_err()
    );
    assert_eq!(
        c.verify_membership(36, &proof, &path, &value),
        Err(QbftElcError::NoConsensusState(36))
    );
    assert!(c.verify_non_membership(height, &proof, &path).is_err());

    let absent = membership_proof(&f, "nonMembership");
    let absent_path = bytes(&f["nonMembership"]["path"]);
    c.verify_non_membership(height, &absent, &absent_path)
        .unwrap();
    assert!(
        c.verify_membership(height, &absent, &absent_path, &value)
            .is_err()
    );

    // Changing any byte of either proof is rejected.
    for (proof, present) in [(proof, true), (absent, false)] {
        let parts = [proof.account_proof.clone(), proof.storage_proof.clone()];
        for (part, nodes) in parts.iter().enumerate() {
            for (n, node) in nodes.iter().enumerate() {
                for i in 0..node.len() {
                    let mut changed = proof.clone();
                    let target = if part == 0 {
                        &mut changed.account_proof
                    } else {
                        &mut changed.storage_proof
                    };
                    let mut b = node.to_vec();
                    b[i] ^= 0x01;
                    target[n] = Bytes::from(b);
                    let result = if present {
                        c.verify_membership(height, &changed, &path, &value)
                    } else {
                        c.verify_non_membership(height, &changed, &absent_path)
                    };
                    assert!(result.is_err(), "part {part} node {n} byte {i} accepted");
                }
            }
        }
    }
}

#[test]
fn trusting_period_and_clock_drift_on_the_fixture() {
    let f = fixture();
    let trusted_ts = f["initialTrustedTimestamp"].as_u64().unwrap();
    let period = f["trustingPeriod"].as_u64().unwrap();
    // now >= trusted timestamp + trusting period: expired.
    let mut c = client(&f);
    assert_eq!(
        c.update(
            &update(&f["updateHeight12"]),
            Duration::from_secs(trusted_ts + period)
        ),
        Err(QbftElcError::TrustedStateExpired { height: 33 })
    );
    c.update(
        &update(&f["updateHeight12"]),
        Duration::from_secs(trusted_ts + period - 1),
    )
    .unwrap();
    // Header 35 (timestamp trusted + 4) is beyond now + 15 s of drift when now = trusted - 12.
    let mut c = client(&f);
    let header_ts = f["updateHeight12"]["expectedTimestamp"].as_u64().unwrap();
    assert_eq!(
        c.update(
            &update(&f["updateHeight12"]),
            Duration::from_secs(header_ts - 16)
        ),
        Err(QbftElcError::HeaderFromFuture {
            timestamp: header_ts
        })
    );
    c.update(
        &update(&f["updateHeight12"]),
        Duration::from_secs(header_ts - 15),
    )
    .unwrap();
}

#[test]
fn any_changed_header_byte_is_rejected() {
    let f = fixture();
    let c = client(&f);
    let good = update(&f["updateHeight12"]);
    for i in 0..good.header_rlp.len() {
        let mut b = good.header_rlp.to_vec();
        b[i] ^= 0x01;
        let changed = QbftHeader {
            header_rlp: Bytes::from(b),
            trusted_height: good.trusted_height,
        };
        let mut probe = c.clone();
        assert!(
            probe.update(&changed, now(&f)).is_err(),
            "byte {i} changed and accepted"
        );
    }
}

#[test]
fn besu_block_7528_and_an_ibft2_block() {
    let v: Value =
        serde_json::from_str(include_str!("../../../vectors/qbft/besu-block-7528.json")).unwrap();
    let header_rlp = bytes(&v["header_rlp_with_seals"]);
    let header = kh_qbft::Header::decode(&header_rlp).unwrap();
    let ts = header.timestamp();
    let state = |validators: Vec<Address>, hash: B256| QbftConsensusState {
        block_hash: hash,
        state_root: B256::ZERO,
        timestamp: ts - 1,
        validators,
    };
    let cs = QbftClientState {
        chain_id: 0,
        ibc_address: Address::repeat_byte(1),
        layout: StorageLayout::YuiIbcStore,
        trusting_period: Duration::from_secs(3600),
        max_clock_drift: Duration::from_secs(15),
        latest_height: 7527,
        frozen: false,
    };
    // Trusting block 7527 with the block's validator set: 7528 is accepted (3 of 4 sealed).
    let mut c = ClientInstance::<QbftClient>::create(
        cs.clone(),
        state(addresses(&v["validators"]), header.parent_hash()),
    )
    .unwrap();
    let upd = QbftHeader {
        header_rlp: Bytes::from(header_rlp.clone()),
        trusted_height: 7527,
    };
    let UpdateOutcome::Updated {
        consensus_states, ..
    } = c.update(&upd, Duration::from_secs(ts)).unwrap()
    else {
        panic!("7528 not accepted")
    };
    assert_eq!(
        consensus_states[0].1.state_root,
        b256(&v["decoded"]["stateRoot"])
    );
    assert_eq!(
        consensus_states[0].1.block_hash,
        b256(&v["block_hash_onchain_derived"]["value"])
    );
    // The sealing form (no seals) is below quorum.
    let mut c = ClientInstance::<QbftClient>::create(
        cs.clone(),
        state(addresses(&v["validators"]), header.parent_hash()),
    )
    .unwrap();
    let unsealed = QbftHeader {
        header_rlp: Bytes::from(bytes(&v["header_rlp_sealing"])),
        trusted_height: 7527,
    };
    assert!(matches!(
        c.update(&unsealed, Duration::from_secs(ts)),
        Err(QbftElcError::Header(
            QbftError::InsufficientTrustedOverlap { got: 0, .. }
        ))
    ));
    // A parent other than the trusted block is refused for an adjacent header.
    let mut c = ClientInstance::<QbftClient>::create(
        cs.clone(),
        state(addresses(&v["validators"]), B256::repeat_byte(7)),
    )
    .unwrap();
    assert_eq!(
        c.update(&upd, Duration::from_secs(ts)),
        Err(QbftElcError::ParentHashMismatch { height: 7528 })
    );

    // The IBFT2 block: refused by the QBFT client even when trusting its validators.
    let v: Value = serde_json::from_str(include_str!(
        "../../../vectors/qbft/ibft2-mainnet-block-5618555.json"
    ))
    .unwrap();
    let rlp = bytes(&v["header_rlp"]);
    let mut c = ClientInstance::<QbftClient>::create(
        QbftClientState {
            latest_height: 5_618_000,
            ..cs
        },
        QbftConsensusState {
            block_hash: B256::ZERO,
            state_root: B256::ZERO,
            timestamp: v["decoded"]["timestamp"].as_u64().unwrap_or(1_656_557_082) - 1,
            validators: addresses(&v["validators"]),
        },
    )
    .unwrap();
    let upd = QbftHeader {
        header_rlp: Bytes::from(rlp),
        trusted_height: 5_618_000,
    };
    assert!(c.update(&upd, Duration::from_secs(1_656_557_082)).is_err());
}
