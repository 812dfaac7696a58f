//! The vault on SQLite and (with KH_TEST_POSTGRES_URL) PostgreSQL: recording, queries,
//! balances, soft-locked coin selection under concurrency, payments of one coin built past the
//! soft locks, sealed account secrets, and archiving.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

mod common;

use common::stores;
use kh_app_stablecoin::*;
use kh_ledger::*;
use uuid::Uuid;

fn issue(
    bank: &Party,
    notary: &Party,
    owner: PublicKey,
    amounts: &[u64],
    salt: u8,
) -> SignedTransaction {
    let outputs = amounts
        .iter()
        .map(|a| {
            let s = StablecoinState {
                amount: *a,
                currency: "JPY".into(),
                issuer: bank.name.clone(),
                issuer_key: bank.owning_key,
                owner,
            };
            TransactionState {
                contract: stablecoin_id(),
                notary: notary.clone(),
                participants: vec![owner],
                data: bcs::to_bytes(&s).unwrap(),
            }
        })
        .collect();
    let tx = WireTransaction {
        inputs: vec![],
        references: vec![],
        outputs,
        commands: vec![Command {
            contract: stablecoin_id(),
            data: bcs::to_bytes(&StablecoinCommand::Issue).unwrap(),
            signers: vec![bank.owning_key],
        }],
        notary: Some(notary.clone()),
        time_window: None,
        privacy_salt: [salt; 32],
    };
    SignedTransaction { tx, sigs: vec![] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_queries_locks_and_archives() {
    for (backend, store) in stores().await {
        let vault = Vault::open_with(store, &KeyPair::generate(), &[StablecoinApp::arc()])
            .await
            .unwrap();
        let notary = Party {
            name: "O=Notary, L=Tokyo, C=JP".parse().unwrap(),
            owning_key: KeyPair::generate().public(),
        };
        let bank = Party {
            name: "O=Bank, L=Tokyo, C=JP".parse().unwrap(),
            owning_key: KeyPair::generate().public(),
        };
        let alice = vault.create_account("alice").await.unwrap();
        let bob = vault.create_account("bob").await.unwrap();
        assert_eq!(
            vault.accounts().await.unwrap(),
            vec![alice.clone(), bob.clone()]
        );
        assert_eq!(
            vault.account_key(alice.id).await.unwrap().public(),
            alice.public_key
        );
        assert!(matches!(
            vault.account_key(Uuid::new_v4()).await,
            Err(VaultError::UnknownAccount(_))
        ));

        let keys: BTreeSet<PublicKey> = [alice.public_key, bob.public_key].into();
        // Eight pre-split states of 10 for alice, one of 5 for somebody else (not recorded).
        let tx = issue(&bank, &notary, alice.public_key, &[10; 8], 1);
        vault.record(&tx, &keys).await.unwrap();
        vault.record(&tx, &keys).await.unwrap(); // idempotent
        let stranger = issue(&bank, &notary, KeyPair::generate().public(), &[5], 2);
        vault.record(&stranger, &keys).await.unwrap();
        assert_eq!(vault.balance(&alice.public_key).await.unwrap(), 80);
        assert_eq!(
            vault
                .states(&alice.public_key, StateStatus::Unconsumed)
                .await
                .unwrap()
                .len(),
            8
        );
        assert_eq!(vault.transaction(&tx.id()).await.unwrap().unwrap(), tx);
        assert_eq!(
            vault
                .transaction(&SecureHash::of(&[b"none"]))
                .await
                .unwrap(),
            None
        );

        // Eight concurrent selections of 10 each get disjoint states; a ninth finds nothing.
        let mut handles = Vec::new();
        for _ in 0..8 {
            let v = vault.clone();
            let owner = alice.public_key;
            let lock = Uuid::new_v4();
            handles.push(tokio::spawn(async move {
                (lock, v.select_coins(&owner, 10, lock, 60_000).await)
            }));
        }
        let mut seen = BTreeSet::new();
        let mut locks = Vec::new();
        for h in handles {
            let (lock, picked) = h.await.unwrap();
            let picked = picked.unwrap();
            assert_eq!(picked.len(), 1);
            assert!(
                seen.insert(picked[0].reference),
                "two selections locked the same state"
            );
            locks.push((lock, picked[0].reference));
        }
        match vault
            .select_coins(&alice.public_key, 10, Uuid::new_v4(), 60_000)
            .await
        {
            Err(VaultError::InsufficientFunds {
                available: 0,
                wanted: 10,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        // Releasing a lock frees exactly its state.
        let (released, state) = locks[0];
        vault.release(released).await.unwrap();
        let again = vault
            .select_coins(&alice.public_key, 10, Uuid::new_v4(), 0)
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(|s| s.reference).collect::<Vec<_>>(),
            vec![state]
        );
        // That lock had a zero time-to-live: it has expired, so another selection takes it over.
        let taker = Uuid::new_v4();
        let taken = vault
            .select_coins(&alice.public_key, 10, taker, 60_000)
            .await
            .unwrap();
        assert_eq!(taken[0].reference, state);
        for (lock, _) in &locks {
            vault.release(*lock).await.unwrap();
        }
        vault.release(taker).await.unwrap();
        // An overspend is refused and leaves nothing locked.
        assert!(matches!(
            vault
                .select_coins(&alice.public_key, 81, Uuid::new_v4(), 60_000)
                .await,
            Err(VaultError::InsufficientFunds { available: 80, .. })
        ));
        assert_eq!(
            vault
                .select_coins(&alice.public_key, 80, Uuid::new_v4(), 60_000)
                .await
                .unwrap()
                .len(),
            8
        );

        // Spend two states to bob: they become consumed, bob's output is recorded.
        let spent: Vec<StateRef> = vault
            .states(&alice.public_key, StateStatus::Unconsumed)
            .await
            .unwrap()
            .iter()
            .take(2)
            .map(|s| s.reference)
            .collect();
        let out = StablecoinState {
            amount: 20,
            currency: "JPY".into(),
            issuer: bank.name.clone(),
            issuer_key: bank.owning_key,
            owner: bob.public_key,
        };
        let pay = SignedTransaction {
            tx: WireTransaction {
                inputs: spent.clone(),
                references: vec![],
                outputs: vec![TransactionState {
                    contract: stablecoin_id(),
                    notary: notary.clone(),
                    participants: vec![bob.public_key],
                    data: bcs::to_bytes(&out).unwrap(),
                }],
                commands: vec![Command {
                    contract: stablecoin_id(),
                    data: bcs::to_bytes(&StablecoinCommand::Move).unwrap(),
                    signers: vec![alice.public_key],
                }],
                notary: Some(notary.clone()),
                time_window: None,
                privacy_salt: [3; 32],
            },
            sigs: vec![],
        };
        vault.record(&pay, &keys).await.unwrap();
        assert_eq!(vault.balance(&alice.public_key).await.unwrap(), 60);
        assert_eq!(vault.balance(&bob.public_key).await.unwrap(), 20);
        assert_eq!(
            vault
                .states(&alice.public_key, StateStatus::Consumed)
                .await
                .unwrap()
                .len(),
            2
        );

        // Archiving moves consumed states, then the transactions with no live state left, out
        // of the live vault.
        let none = Archived {
            states: 0,
            transactions: 0,
        };
        assert_eq!(vault.archive_consumed(0).await.unwrap(), none);
        assert_eq!(vault.transaction_count().await.unwrap(), 3);
        let archived = vault.archive_consumed(i64::MAX).await.unwrap();
        assert_eq!(
            archived,
            Archived {
                states: 2,
                transactions: 1
            },
            "{backend}"
        );
        assert!(
            vault
                .states(&alice.public_key, StateStatus::Consumed)
                .await
                .unwrap()
                .is_empty()
        );
        // The stranger's issue (no state of ours) left the live tables; the issue that still
        // has six of alice's states and the payment did not.
        assert_eq!(vault.transaction_count().await.unwrap(), 2);
        // An archived transaction is still found, and recording it again changes nothing.
        assert!(vault.transaction(&stranger.id()).await.unwrap().is_some());
        vault.record(&stranger, &keys).await.unwrap();
        vault.record(&tx, &keys).await.unwrap();
        assert_eq!(vault.transaction_count().await.unwrap(), 2);
        assert_eq!(vault.balance(&alice.public_key).await.unwrap(), 60);
        assert_eq!(vault.archive_consumed(i64::MAX).await.unwrap(), none);
    }
}

/// A notary and a vault on one store, with three accounts (alice, bob, carol) and a bank
/// that issues to them.
struct Payments {
    notary_party: Party,
    notary: Notary,
    vault: Vault,
    bank: Party,
    alice: Account,
    bob: Account,
    carol: Account,
    keys: BTreeSet<PublicKey>,
}

impl Payments {
    async fn new(store: Store) -> Self {
        let key = KeyPair::generate();
        let notary_party = Party {
            name: "O=Notary, L=Tokyo, C=JP".parse().unwrap(),
            owning_key: key.public(),
        };
        let notary = Notary::start(
            notary_party.clone(),
            key,
            store.clone(),
            None,
            NotaryConfig::default(),
        );
        let vault = Vault::open_with(store, &KeyPair::generate(), &[StablecoinApp::arc()])
            .await
            .unwrap();
        let bank = Party {
            name: "O=Bank, L=Tokyo, C=JP".parse().unwrap(),
            owning_key: KeyPair::generate().public(),
        };
        let alice = vault.create_account("alice").await.unwrap();
        let bob = vault.create_account("bob").await.unwrap();
        let carol = vault.create_account("carol").await.unwrap();
        let keys = [alice.public_key, bob.public_key, carol.public_key].into();
        Self {
            notary_party,
            notary,
            vault,
            bank,
            alice,
            bob,
            carol,
            keys,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_overspending_payments_exactly_one_succeeds_and_value_is_conserved() {
    for (_, store) in stores().await {
        let Payments {
            notary_party,
            notary,
            vault,
            bank,
            alice,
            bob,
            carol,
            keys,
        } = Payments::new(store).await;
        vault
            .record(
                &issue(&bank, &notary_party, alice.public_key, &[60, 40], 9),
                &keys,
            )
            .await
            .unwrap();
        for round in 0..3 {
            let (a, b) = tokio::join!(
                pay_local(
                    &vault,
                    &notary,
                    &notary_party.name,
                    alice.id,
                    bob.public_key,
                    70,
                    &keys
                ),
                pay_local(
                    &vault,
                    &notary,
                    &notary_party.name,
                    alice.id,
                    carol.public_key,
                    70,
                    &keys
                )
            );
            let ok = a.is_ok() as u64 + b.is_ok() as u64;
            // The first round has 100 for two payments of 70: exactly one. Later rounds have
            // 30 left: neither.
            let expected = if round == 0 { 1 } else { 0 };
            assert_eq!(ok, expected, "round {round}: {a:?} {b:?}");
            for r in [&a, &b] {
                if let Err(e) = r {
                    assert!(
                        matches!(e, PaymentError::Vault(VaultError::InsufficientFunds { .. })),
                        "{e}"
                    );
                }
            }
            let total = vault.balance(&alice.public_key).await.unwrap()
                + vault.balance(&bob.public_key).await.unwrap()
                + vault.balance(&carol.public_key).await.unwrap();
            assert_eq!(total, 100, "value is conserved");
        }
        // The payment's transaction verifies: owner and notary signed, amounts conserved.
        let paid = vault.balance(&bob.public_key).await.unwrap()
            + vault.balance(&carol.public_key).await.unwrap();
        assert_eq!(paid, 70);
        let stx = pay_local(
            &vault,
            &notary,
            &notary_party.name,
            alice.id,
            bob.public_key,
            30,
            &keys,
        )
        .await
        .unwrap();
        stx.verify(DEFAULT_MAX_TRANSACTION_SIZE, &[]).unwrap();
        assert_eq!(vault.balance(&alice.public_key).await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_secrets_are_sealed_under_the_node_identity() {
    use sqlx::Row;
    for (backend, store) in stores().await {
        let identity = KeyPair::generate();
        let vault = Vault::open_with(store.clone(), &identity, &[StablecoinApp::arc()])
            .await
            .unwrap();
        let alice = vault.create_account("alice").await.unwrap();
        let bob = vault.create_account("bob").await.unwrap();
        let key = vault.account_key(alice.id).await.unwrap();
        assert_eq!(key.public(), alice.public_key, "{backend}");

        // The stored secret is not the key: neither its hex nor anything a plain decode opens.
        let stored: String = sqlx::query("SELECT secret FROM accounts WHERE id = $1")
            .bind(alice.id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert!(!stored.contains(&hex::encode(key.secret())), "{backend}");
        assert!(stored.starts_with("sealed-v1:"), "{backend}: {stored}");

        // Another identity key does not open it.
        let other = Vault::open_with(store.clone(), &KeyPair::generate(), &[StablecoinApp::arc()])
            .await
            .unwrap();
        assert!(matches!(
            other.account_key(alice.id).await,
            Err(VaultError::Store(StoreError::Corrupt { .. }))
        ));

        // Alice's sealed secret copied into Bob's row does not open as Bob's.
        sqlx::query("UPDATE accounts SET secret = $1 WHERE id = $2")
            .bind(&stored)
            .bind(bob.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        // (a vault opened afresh: the one that created Bob keeps his key in memory).
        let reopened = Vault::open_with(store.clone(), &identity, &[StablecoinApp::arc()])
            .await
            .unwrap();
        assert!(reopened.account_key(bob.id).await.is_err(), "{backend}");
        assert_eq!(
            reopened.account_key(alice.id).await.unwrap().public(),
            alice.public_key
        );
        assert_eq!(reopened.accounts().await.unwrap().len(), 2);
        assert!(matches!(
            vault.account_key(uuid::Uuid::new_v4()).await,
            Err(VaultError::UnknownAccount(_))
        ));
    }
}

/// A faulty or malicious node builds two payments of the same coin without the vault's soft
/// locks and sends both to the notary at once: exactly one is notarised, the other is refused
/// naming the coin and the winner; the vault, fed the winner, stays consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_payments_of_one_coin_built_past_the_soft_locks() {
    for (backend, store) in stores().await {
        let Payments {
            notary_party,
            notary,
            vault,
            bank,
            alice,
            bob,
            carol,
            keys,
        } = Payments::new(store).await;
        let issued = issue(&bank, &notary_party, alice.public_key, &[100], 7);
        vault.record(&issued, &keys).await.unwrap();
        let coin = vault
            .states(&alice.public_key, StateStatus::Unconsumed)
            .await
            .unwrap();
        assert_eq!(coin.len(), 1);
        let alice_key = vault.account_key(alice.id).await.unwrap();
        let signed = |payee: PublicKey| {
            let tx = build_payment(&coin, alice.public_key, payee, 100, &notary_party).unwrap();
            SignedTransaction::signed_by(tx, &alice_key)
        };
        let (to_bob, to_carol) = (signed(bob.public_key), signed(carol.public_key));
        let request = |stx: &SignedTransaction| {
            NotarisationRequest::non_validating(stx, |_| Some(issued.clone())).unwrap()
        };
        let me = &notary_party.name;
        let (a, b) = tokio::join!(
            notary.notarise(me, request(&to_bob)),
            notary.notarise(me, request(&to_carol))
        );
        let (winner, sig, loser, refusal) = match (a, b) {
            (Ok(sig), Err(e)) => (to_bob, sig, to_carol, e),
            (Err(e), Ok(sig)) => (to_carol, sig, to_bob, e),
            other => panic!("{backend}: exactly one must be notarised: {other:?}"),
        };
        match refusal {
            NotaryError::DoubleSpend { tx, conflicts } => {
                assert_eq!(tx, loser.id());
                assert_eq!(
                    conflicts,
                    vec![Conflict {
                        state: coin[0].reference,
                        consumed_by: winner.id()
                    }]
                );
            }
            other => panic!("{backend}: {other}"),
        }
        let mut winner = winner;
        winner.sigs.push(sig);
        winner
            .verify(DEFAULT_MAX_TRANSACTION_SIZE, &[])
            .expect("the winner is completely signed");
        vault.record(&winner, &keys).await.unwrap();
        assert_eq!(vault.balance(&alice.public_key).await.unwrap(), 0);
        assert_eq!(
            vault.balance(&bob.public_key).await.unwrap()
                + vault.balance(&carol.public_key).await.unwrap(),
            100,
            "{backend}: the winner's payee holds the coin, nothing was created"
        );
        assert!(vault.transaction(&loser.id()).await.unwrap().is_none());
    }
}
