//! The Ledger ELC on a host-state chain built as `kh-ibc-ledger`'s tests build it (genesis,
//! then host transactions applying store updates, each checked by the host contract): updates
//! one height and several heights at a time, a gap, a transaction that does not consume the
//! trusted state, a missing operator signature, a second notary component (properly signed),
//! membership bound to the trusted host state, clock drift, and two signed host transactions
//! for one height freezing the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kh_elc::*;
use kh_ibc_host_chain::*;
use kh_ledger::{
    ComponentGroup, FilteredComponent, KeyPair, SecureHash, StateRef, TransactionSignature,
};

use kh_test_support::host_chain::{Host, T0, kv};

// ---- the light client ----

fn proof(host: &Host, height: u64) -> HostStateProof {
    HostStateProof::of(&host.chain[height as usize]).unwrap()
}

/// A client trusting `host` at `height` (its operator checked that host state).
fn client(host: &Host, height: u64) -> ClientInstance<LedgerClient> {
    let (h, consensus) = LedgerClient::consensus_state_of(&host.trust(), &proof(host, height))
        .expect("a host state proof");
    assert_eq!(h, height);
    ClientInstance::create(
        LedgerClientState {
            trust: host.trust(),
            max_clock_drift: Duration::from_secs(10),
            latest_height: height,
            frozen: false,
        },
        consensus,
    )
    .unwrap()
}

fn now() -> Duration {
    Duration::from_millis(T0 + 3_600_000)
}

fn header(
    host: &Host,
    trusted_height: u64,
    heights: std::ops::RangeInclusive<u64>,
) -> LedgerHeader {
    LedgerHeader {
        trusted_height,
        proofs: heights.map(|h| proof(host, h)).collect(),
    }
}

const KEY: &[u8] = b"commitments/ports/ping/channels/channel-0/sequences/1";

fn host_with_chain() -> Host {
    let mut host = Host::new(3);
    host.apply(vec![kv("clients/07-tendermint-0/clientState", "cs0")]);
    host.apply(vec![(KEY.to_vec(), Some(b"commitment-1".to_vec()))]);
    host.apply(vec![kv("connections/connection-0", "conn0")]);
    host.apply(vec![(KEY.to_vec(), None)]);
    host
}

#[test]
fn updates_follow_the_host_chain_one_or_several_heights_at_a_time() {
    let host = host_with_chain();
    let mut c = client(&host, 0);
    // One height.
    let outcome = c.update(&header(&host, 0, 1..=1), now()).unwrap();
    let UpdateOutcome::Updated {
        consensus_states, ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(consensus_states.len(), 1);
    let h1 = &host.chain[1];
    assert_eq!(
        consensus_states[0],
        (
            1,
            LedgerConsensusState {
                store_root: bcs::from_bytes::<HostState>(&h1.tx.outputs[0].data)
                    .unwrap()
                    .store_root,
                timestamp_ms: T0 + 1_000,
                state_ref: StateRef {
                    tx_id: h1.id(),
                    index: 0
                },
            }
        )
    );
    // Three heights in one update.
    let outcome = c.update(&header(&host, 1, 2..=4), now()).unwrap();
    let UpdateOutcome::Updated {
        consensus_states, ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        consensus_states.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert_eq!(c.client_state.latest_height, 4);
    // Again: nothing new.
    assert_eq!(
        c.update(&header(&host, 1, 2..=4), now()),
        Ok(UpdateOutcome::Unchanged { height: 4 })
    );

    // Membership at height 2, absence at height 4 (the key was deleted), each proven from the
    // host state the client trusts at that height.
    let (value, commitment) = host.store.prove(KEY, 2).unwrap();
    assert_eq!(value.as_deref(), Some(&b"commitment-1"[..]));
    let p2 = LedgerProof::new(&host.chain[2], &commitment).unwrap();
    c.verify_membership(2, &p2, KEY, b"commitment-1").unwrap();
    assert!(c.verify_membership(2, &p2, KEY, b"commitment-2").is_err());
    assert!(c.verify_non_membership(2, &p2, KEY).is_err());
    // The same proof presented for another height: not the host state trusted there.
    assert_eq!(
        c.verify_membership(3, &p2, KEY, b"commitment-1"),
        Err(LedgerElcError::NotTrustedState { height: 3 })
    );
    assert_eq!(
        c.verify_membership(9, &p2, KEY, b"commitment-1"),
        Err(LedgerElcError::NoConsensusState(9))
    );
    let (none, commitment) = host.store.prove(KEY, 4).unwrap();
    assert!(none.is_none());
    let p4 = LedgerProof::new(&host.chain[4], &commitment).unwrap();
    c.verify_non_membership(4, &p4, KEY).unwrap();
    assert!(c.verify_membership(4, &p4, KEY, b"commitment-1").is_err());

    // The instance is what the LCP host persists.
    let json = serde_json::to_string(&c).unwrap();
    let restored: ClientInstance<LedgerClient> = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, c);
}

#[test]
fn a_gap_or_a_broken_chain_is_refused() {
    let host = host_with_chain();
    let mut c = client(&host, 1);
    assert_eq!(
        c.update(&header(&host, 1, 3..=3), now()),
        Err(LedgerElcError::Gap {
            expected: 2,
            got: 3
        })
    );
    let mut skipping = header(&host, 1, 2..=2);
    skipping.proofs.push(proof(&host, 4));
    assert_eq!(
        c.update(&skipping, now()),
        Err(LedgerElcError::Gap {
            expected: 3,
            got: 4
        })
    );
    // Properly signed and at height 2, but consuming height 0's state instead of height 1's.
    let stray = host.tx(
        Some(&host.chain[0]),
        HostCommand::Genesis,
        2,
        [5; 32],
        T0 + 2_000,
    );
    let stray = LedgerHeader {
        trusted_height: 1,
        proofs: vec![HostStateProof::of(&stray).unwrap()],
    };
    assert_eq!(
        c.update(&stray, now()),
        Err(LedgerElcError::Discontinuity { height: 2 })
    );
    // An unknown trusted height, an empty update.
    assert_eq!(
        c.update(&header(&host, 2, 3..=3), now()),
        Err(LedgerElcError::NoConsensusState(2))
    );
    assert!(matches!(
        c.update(
            &LedgerHeader {
                trusted_height: 1,
                proofs: vec![]
            },
            now()
        ),
        Err(LedgerElcError::UpdateSize { got: 0, .. })
    ));
    // Nothing was stored.
    assert_eq!(c.consensus_states.len(), 1);
    // Host timestamps beyond now + the clock drift.
    assert!(matches!(
        c.update(
            &header(&host, 1, 2..=2),
            Duration::from_millis(T0 + 2_000 - 10_001)
        ),
        Err(LedgerElcError::FromFuture { height: 2, .. })
    ));
    c.update(
        &header(&host, 1, 2..=2),
        Duration::from_millis(T0 + 2_000 - 10_000),
    )
    .unwrap();
}

#[test]
fn every_signature_is_required() {
    let host = host_with_chain();
    let c = client(&host, 1);
    let good = header(&host, 1, 2..=2);
    // Each single signature missing (each operator's, the notary's) is refused.
    for i in 0..good.proofs[0].tx.signatures.len() {
        let mut h = good.clone();
        h.proofs[0].tx.signatures.remove(i);
        assert!(
            matches!(
                c.clone().update(&h, now()),
                Err(LedgerElcError::Proof(ProofError::Transaction(_)))
            ),
            "signature {i} missing and accepted"
        );
    }
    // A signature by a stranger in place of an operator's.
    let mut h = good.clone();
    let id = h.proofs[0].tx_id();
    h.proofs[0].tx.signatures[0] = TransactionSignature::sign(&KeyPair::generate(), &id);
    assert!(c.clone().update(&h, now()).is_err());
    // The same for membership.
    let (_, commitment) = host.store.prove(KEY, 2).unwrap();
    let mut c2 = c.clone();
    c2.update(&good, now()).unwrap();
    let mut p = LedgerProof::new(&host.chain[2], &commitment).unwrap();
    c2.verify_membership(2, &p, KEY, b"commitment-1").unwrap();
    p.host.tx.signatures.remove(1);
    assert!(c2.verify_membership(2, &p, KEY, b"commitment-1").is_err());
    // Any changed byte of an update's proof is refused.
    let bytes = bcs::to_bytes(&good).unwrap();
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        if let Ok(h) = bcs::from_bytes::<LedgerHeader>(&changed) {
            assert!(
                c.clone().update(&h, now()).is_err(),
                "byte {i} changed and accepted"
            );
        }
    }
}

/// SHA-256 Merkle root of two leaves (the ledger's component tree) and the group root over it.
fn two_leaf_group_root(a: SecureHash, b: SecureHash) -> SecureHash {
    let inner = SecureHash::of(&[&a.0, &b.0]);
    SecureHash::of(&[&2u32.to_be_bytes(), &inner.0])
}

/// SHA-256 Merkle root of the 6 group roots, padded with zero hashes to 8 (the transaction id).
fn id_of(group_roots: &[SecureHash]) -> SecureHash {
    let mut level = group_roots.to_vec();
    level.resize(8, SecureHash::ZERO);
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| SecureHash::of(&[&p[0].0, &p[1].0]))
            .collect();
    }
    level[0]
}

#[test]
fn a_second_notary_component_is_refused_even_when_signed() {
    let host = host_with_chain();
    let c = client(&host, 1);
    let mut p = proof(&host, 2);
    // Rebuild height 2's filtered transaction with a notary group of two components, recompute
    // the id, and have every trusted key sign the new id.
    let ftx = &mut p.tx.filtered;
    let group = ftx
        .groups
        .iter_mut()
        .find(|g| g.group == ComponentGroup::Notary)
        .unwrap();
    let first = group.components[0].clone();
    let second_nonce = SecureHash::of(&[b"second notary"]);
    let leaf = |c: &FilteredComponent| SecureHash::of(&[&c.nonce.0, &c.bytes]);
    let second = FilteredComponent {
        index: 1,
        bytes: first.bytes.clone(),
        nonce: second_nonce,
        path: vec![],
    };
    let (l0, l1) = (leaf(&first), leaf(&second));
    group.count = 2;
    group.components = vec![
        FilteredComponent {
            path: vec![l1],
            ..first
        },
        FilteredComponent {
            path: vec![l0],
            ..second
        },
    ];
    ftx.group_roots[ComponentGroup::Notary as usize] = two_leaf_group_root(l0, l1);
    ftx.id = id_of(&ftx.group_roots);
    ftx.verify()
        .expect("the forged filtered transaction is consistent");
    let id = ftx.id;
    p.tx.signatures = host.sign_all(&id);
    let refused = c.clone().update(
        &LedgerHeader {
            trusted_height: 1,
            proofs: vec![p.clone()],
        },
        now(),
    );
    assert!(
        matches!(&refused, Err(LedgerElcError::Proof(ProofError::NotHost(m))) if m.contains("2 notary components")),
        "{refused:?}"
    );
    // And as a membership proof.
    let (_, commitment) = host.store.prove(KEY, 2).unwrap();
    let mut c2 = c.clone();
    c2.update(&header(&host, 1, 2..=2), now()).unwrap();
    let mut lp = LedgerProof::new(&host.chain[2], &commitment).unwrap();
    lp.host = p;
    assert!(c2.verify_membership(2, &lp, KEY, b"commitment-1").is_err());
}

#[test]
fn two_signed_host_transactions_for_one_height_freeze_the_client() {
    let host = host_with_chain();
    // A second height-2 transaction consuming height 1's state, signed by every trusted key
    // (a notary that signed twice).
    let fork = host.tx(
        Some(&host.chain[1]),
        HostCommand::Genesis,
        2,
        [9; 32],
        T0 + 2_500,
    );
    let fork = HostStateProof::of(&fork).unwrap();

    // As evidence.
    let mut c = client(&host, 1);
    let evidence = LedgerMisbehaviour {
        proof_1: proof(&host, 2),
        proof_2: fork.clone(),
    };
    c.submit_misbehaviour(&evidence, now()).unwrap();
    assert!(c.client_state.frozen);
    assert_eq!(
        c.update(&header(&host, 1, 2..=2), now()),
        Err(LedgerElcError::Frozen)
    );
    // Not evidence: one proof twice, two heights, an unsigned one.
    let c = client(&host, 1);
    for (a, b) in [
        (proof(&host, 2), proof(&host, 2)),
        (proof(&host, 2), proof(&host, 3)),
    ] {
        assert!(matches!(
            c.clone().submit_misbehaviour(
                &LedgerMisbehaviour {
                    proof_1: a,
                    proof_2: b
                },
                now()
            ),
            Err(LedgerElcError::NotMisbehaviour(_))
        ));
    }
    let mut unsigned = fork.clone();
    unsigned.tx.signatures.pop();
    assert!(matches!(
        c.clone().submit_misbehaviour(
            &LedgerMisbehaviour {
                proof_1: proof(&host, 2),
                proof_2: unsigned
            },
            now()
        ),
        Err(LedgerElcError::Proof(_))
    ));

    // A chain for heights 2..3 whose end is later in time than the stored height 4.
    let mut c = client(&host, 1);
    c.update(&header(&host, 1, 2..=4), now()).unwrap();
    let mut late = client(&host, 1);
    late.consensus_states
        .insert(4, c.consensus_states[&4].clone());
    late.consensus_states.get_mut(&4).unwrap().timestamp_ms = T0 + 2_500;
    assert!(matches!(
        late.update(&header(&host, 1, 2..=3), now()).unwrap(),
        UpdateOutcome::Frozen { height: 3, .. }
    ));
    // With the real height 4 stored, the same chain is fine.
    let mut fine = client(&host, 1);
    fine.consensus_states
        .insert(4, c.consensus_states[&4].clone());
    assert!(matches!(
        fine.update(&header(&host, 1, 2..=3), now()).unwrap(),
        UpdateOutcome::Updated { .. }
    ));

    // As an update conflicting with a stored height.
    let mut c = client(&host, 1);
    c.update(&header(&host, 1, 2..=3), now()).unwrap();
    let outcome = c
        .update(
            &LedgerHeader {
                trusted_height: 1,
                proofs: vec![fork],
            },
            now(),
        )
        .unwrap();
    assert!(matches!(outcome, UpdateOutcome::Frozen { height: 2, .. }));
    assert!(c.client_state.frozen);
    let (_, commitment) = host.store.prove(KEY, 2).unwrap();
    let p = LedgerProof::new(&host.chain[2], &commitment).unwrap();
    assert_eq!(
        c.verify_membership(2, &p, KEY, b"commitment-1"),
        Err(LedgerElcError::Frozen)
    );
}
