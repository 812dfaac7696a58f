//! The host-state chain and its proofs: a genesis and host transactions applying store updates
//! pass the host contract; height, operators, signatures, time window and root are each
//! enforced; a ledger proof of `path = value` (and of an absent path) verifies with only the
//! trusted keys, and changing any byte of it — filtered transaction, signature, ICS-23 proof,
//! value — is refused.
#![allow(clippy::unwrap_used)]

use kh_ibc_ledger::*;
use kh_ledger::{KeyPair, SignedTransaction, StateRef, TimeWindow};
use kh_test_support::host_chain::{Host, T0, kv};

#[test]
fn host_transactions_follow_the_contract() {
    let mut host = Host::new(2);
    host.apply(vec![kv("clients/07-tendermint-0/clientState", "cs0")]);
    host.apply(vec![
        kv("connections/connection-0", "conn0"),
        kv("clients/07-tendermint-0/clientState", "cs1"),
    ]);
    host.apply(vec![]);
    host.apply(vec![(b"connections/connection-0".to_vec(), None)]);
    assert_eq!(host.chain.len(), 5);

    // Every way of breaking the chain is refused by the contract.
    let prev = host.chain.last().unwrap().clone();
    let prepared = host.store.prepare(5, vec![kv("a", "1")]).unwrap();
    let apply = HostCommand::Apply {
        updates: prepared.updates.clone(),
        proof: prepared.proof.clone(),
    };
    let ts = T0 + 5_000;
    let refused = |stx: SignedTransaction, want: &str| {
        let err = host.check(&stx).unwrap_err();
        assert!(err.contains(want), "{err}");
    };
    // A height that skips.
    refused(
        host.tx(Some(&prev), apply.clone(), 6, prepared.root, ts),
        "does not follow",
    );
    // A root the updates do not lead to.
    refused(
        host.tx(Some(&prev), apply.clone(), 5, [7; 32], ts),
        "store root does not follow",
    );
    // Updates other than those proven.
    let forged = HostCommand::Apply {
        updates: vec![kv("a", "2")],
        proof: prepared.proof.clone(),
    };
    refused(
        host.tx(Some(&prev), forged, 5, prepared.root, ts),
        "store root does not follow",
    );
    // A second genesis (no input) claiming a later height, or a genesis with content.
    refused(
        host.tx(None, HostCommand::Genesis, 5, prepared.root, ts),
        "genesis host state is height 0",
    );
    refused(
        host.tx(None, apply.clone(), 5, prepared.root, ts),
        "consumes exactly one host state",
    );
    // A timestamp outside the window, or going back.
    let mut late = host.tx(Some(&prev), apply.clone(), 5, prepared.root, ts);
    late.tx.time_window = Some(TimeWindow {
        from_ms: Some(ts + 1),
        until_ms: Some(ts + 2),
    });
    refused(late, "outside the transaction's time window");
    refused(
        host.tx(Some(&prev), apply.clone(), 5, prepared.root, T0),
        "goes back",
    );
    // An operator who does not sign (command without its key).
    let mut unsigned = host.tx(Some(&prev), apply.clone(), 5, prepared.root, ts);
    unsigned.tx.commands[0].signers.pop();
    refused(unsigned, "does not sign");
    // Two host outputs (a fork inside one transaction).
    let mut two = host.tx(Some(&prev), apply, 5, prepared.root, ts);
    two.tx.outputs.push(two.tx.outputs[0].clone());
    refused(two, "exactly one host state");
}

#[test]
fn ledger_proofs_verify_with_public_keys_only_and_any_change_is_refused() {
    let mut host = Host::new(3);
    let key = b"commitments/ports/ping/channels/channel-0/sequences/1".to_vec();
    let value = b"\x01packet-commitment".to_vec();
    host.apply(vec![(key.clone(), Some(value.clone())), kv("other", "x")]);
    let stx = host.apply(vec![kv("later", "y")]);
    let height = 2;
    let (got, commitment) = host.store.prove(&key, height).unwrap();
    assert_eq!(got.as_deref(), Some(value.as_slice()));
    let proof = LedgerProof::new(&stx, &commitment).unwrap();
    let trust = host.trust();
    proof
        .verify_membership(&trust, height, &key, &value)
        .unwrap();
    // Through bytes, as a relayer carries it.
    let proof = LedgerProof::from_bytes(&proof.to_bytes()).unwrap();
    proof
        .verify_membership(&trust, height, &key, &value)
        .unwrap();
    // Another value, another key, another height: refused.
    assert!(
        proof
            .verify_membership(&trust, height, &key, b"other")
            .is_err()
    );
    assert!(
        proof
            .verify_membership(&trust, height, b"other", b"x")
            .is_err()
    );
    assert!(matches!(
        proof.verify_membership(&trust, height + 1, &key, &value),
        Err(ProofError::Height { .. })
    ));
    // Untrusted keys: another notary, another operator set.
    let mut other = trust.clone();
    other.notary = KeyPair::generate().public();
    assert!(
        proof
            .verify_membership(&other, height, &key, &value)
            .is_err()
    );
    let mut other = trust.clone();
    other.operators[0] = KeyPair::generate().public();
    assert!(
        proof
            .verify_membership(&other, height, &key, &value)
            .is_err()
    );
    // Changing any byte of the encoded proof is refused (or leaves an undecodable proof).
    let bytes = proof.to_bytes();
    let mut accepted = 0;
    for i in 0..bytes.len() {
        let mut changed = bytes.clone();
        changed[i] ^= 0x01;
        if let Ok(p) = LedgerProof::from_bytes(&changed)
            && p.verify_membership(&trust, height, &key, &value).is_ok()
        {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 0, "a changed proof was accepted");
    // A missing signature (the notary's) is refused.
    let mut unsigned = proof.clone();
    unsigned.host.tx.signatures.pop();
    assert!(
        unsigned
            .verify_membership(&trust, height, &key, &value)
            .is_err()
    );

    // An absent key: non-membership verifies, membership does not.
    let absent = b"receipts/ports/ping/channels/channel-0/sequences/9".to_vec();
    let (none, commitment) = host.store.prove(&absent, height).unwrap();
    assert!(none.is_none());
    let proof = LedgerProof::new(&stx, &commitment).unwrap();
    proof
        .verify_non_membership(&trust, height, &absent)
        .unwrap();
    assert!(proof.verify_non_membership(&trust, height, &key).is_err());

    // Continuity: height 2's transaction consumed height 1's host state.
    let h1 = &host.chain[1];
    let p2 = HostStateProof::of(&stx).unwrap();
    assert!(
        p2.consumes(&StateRef {
            tx_id: h1.id(),
            index: 0
        })
        .unwrap()
    );
}
