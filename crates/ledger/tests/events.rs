//! The event stream of recorded transactions on SQLite and (with KH_TEST_POSTGRES_URL)
//! PostgreSQL: concurrent recorders (overlapping, so some record a transaction another is
//! recording) give one event per transaction, with cursors 1..N and no gap, read live by a
//! follower while they record; the events match the vault; reading after a cursor works across
//! a reopen of the database, cursors continue after it, and archiving keeps the events; the
//! events of a network's flows name the flow, those of transactions from peers do not.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kh_app_stablecoin::{StablecoinApp, StablecoinFlow};
use kh_ledger::*;

/// Concurrent recorders, and transactions each.
const RECORDERS: usize = 6;
const PER_RECORDER: usize = 20;
/// Each recorder also records this many of the next recorder's transactions.
const OVERLAP: usize = 5;
const WAIT: Duration = Duration::from_secs(60);

fn party(name: &str) -> Party {
    Party {
        name: name.parse().unwrap(),
        owning_key: KeyPair::generate().public(),
    }
}

/// A transaction producing `outputs` states for `owner` (consuming `inputs`), with a salt that
/// makes it unique.
fn transaction(
    notary: &Party,
    owner: PublicKey,
    inputs: Vec<StateRef>,
    outputs: usize,
    salt: u64,
) -> SignedTransaction {
    let state = |i: usize| TransactionState {
        contract: ContractId(if i.is_multiple_of(2) { "kh.a" } else { "kh.b" }.into()),
        notary: notary.clone(),
        participants: vec![owner],
        data: vec![i as u8],
    };
    let mut privacy_salt = [0u8; 32];
    privacy_salt[..8].copy_from_slice(&salt.to_be_bytes());
    SignedTransaction {
        tx: WireTransaction {
            inputs,
            references: vec![],
            outputs: (0..outputs).map(state).collect(),
            commands: vec![],
            notary: Some(notary.clone()),
            time_window: None,
            privacy_salt,
        },
        sigs: vec![],
    }
}

/// Every event after 0, paging.
async fn all_events(vault: &Vault) -> Vec<LedgerEvent> {
    let mut out: Vec<LedgerEvent> = vec![];
    loop {
        let after = out.last().map_or(0, |e| e.cursor);
        let page = vault.events_after(after, 7).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The event agrees with the transaction the vault holds under its id.
async fn check_against_vault(vault: &Vault, event: &LedgerEvent) {
    let stx = vault.transaction(&event.tx_id).await.unwrap().unwrap();
    assert_eq!(stx.id(), event.tx_id);
    assert_eq!(event.consumed, stx.tx.inputs);
    let produced: Vec<ProducedState> = stx
        .tx
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| ProducedState {
            reference: StateRef {
                tx_id: event.tx_id,
                index: i as u32,
            },
            contract: o.contract.clone(),
        })
        .collect();
    assert_eq!(event.produced, produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_recorders_give_each_transaction_one_event_in_order() {
    for (backend, store) in common::stores().await {
        let vault = Vault::open(store, &KeyPair::generate()).await.unwrap();
        let notary = party("O=Notary, L=Tokyo, C=JP");
        let owner = vault.create_account("owner").await.unwrap().public_key;
        let keys: Arc<BTreeSet<PublicKey>> = Arc::new([owner].into());
        let txs: Vec<SignedTransaction> = (0..RECORDERS * PER_RECORDER)
            .map(|i| transaction(&notary, owner, vec![], 1 + i % 3, i as u64))
            .collect();
        let total = txs.len();

        // A follower reads live while the recorders run.
        let follower = {
            let vault = vault.clone();
            tokio::spawn(async move {
                let mut seen: Vec<LedgerEvent> = vec![];
                let deadline = tokio::time::Instant::now() + WAIT;
                while seen.len() < total && tokio::time::Instant::now() < deadline {
                    let after = seen.last().map_or(0, |e| e.cursor);
                    let page = vault
                        .wait_events(after, 16, Duration::from_secs(2))
                        .await
                        .unwrap();
                    seen.extend(page);
                }
                seen
            })
        };
        let mut recorders = vec![];
        for r in 0..RECORDERS {
            let vault = vault.clone();
            let keys = keys.clone();
            let mine: Vec<SignedTransaction> = (0..PER_RECORDER + OVERLAP)
                .map(|k| txs[(r * PER_RECORDER + k) % total].clone())
                .collect();
            recorders.push(tokio::spawn(async move {
                for stx in mine {
                    vault.record(&stx, &keys).await.unwrap();
                }
            }));
        }
        for r in recorders {
            r.await.unwrap();
        }
        let live = follower.await.unwrap();
        let stored = all_events(&vault).await;
        assert_eq!(live, stored, "{backend}: the follower saw what is stored");
        assert_eq!(stored.len(), total, "{backend}: one event per transaction");
        let cursors: Vec<u64> = stored.iter().map(|e| e.cursor).collect();
        assert_eq!(
            cursors,
            (1..=total as u64).collect::<Vec<_>>(),
            "{backend}: cursors without gap"
        );
        let ids: BTreeSet<TxId> = stored.iter().map(|e| e.tx_id).collect();
        let expected: BTreeSet<TxId> = txs.iter().map(|t| t.id()).collect();
        assert_eq!(ids, expected, "{backend}: every transaction, none twice");
        assert_eq!(vault.transaction_count().await.unwrap(), total as u64);
        for e in &stored {
            assert_eq!(e.flow, None, "recorded outside a flow");
            check_against_vault(&vault, e).await;
        }
        // Recording again adds nothing.
        vault.record(&txs[0], &keys).await.unwrap();
        assert!(
            vault
                .events_after(total as u64, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // A wait with nothing new ends empty after its time.
        assert!(
            vault
                .wait_events(total as u64, 10, Duration::from_millis(50))
                .await
                .unwrap()
                .is_empty()
        );
        // Paging: a limit is honoured, and capped.
        assert_eq!(vault.events_after(0, 3).await.unwrap().len(), 3);
        assert!(vault.events_after(0, usize::MAX).await.unwrap().len() <= MAX_EVENTS_PAGE);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_reopen_and_archiving() {
    for (backend, urls) in common::database_urls(1).await {
        let identity = KeyPair::generate();
        let notary = party("O=Notary, L=Tokyo, C=JP");
        let store = Store::connect(&urls[0]).await.unwrap();
        let vault = Vault::open(store, &identity).await.unwrap();
        let owner = vault.create_account("owner").await.unwrap().public_key;
        let keys: BTreeSet<PublicKey> = [owner].into();
        let issue = transaction(&notary, owner, vec![], 2, 1);
        let spend = transaction(
            &notary,
            owner,
            vec![StateRef {
                tx_id: issue.id(),
                index: 0,
            }],
            1,
            2,
        );
        vault.record(&issue, &keys).await.unwrap();
        vault.record(&spend, &keys).await.unwrap();
        let first = all_events(&vault).await;
        assert_eq!(first.len(), 2, "{backend}");
        assert_eq!(first[1].consumed, spend.tx.inputs);
        drop(vault);

        // Reopened on the same database: the same events after the same cursors.
        let store = Store::connect(&urls[0]).await.unwrap();
        let vault = Vault::open(store, &identity).await.unwrap();
        assert_eq!(all_events(&vault).await, first, "{backend}");
        assert_eq!(vault.events_after(1, 10).await.unwrap(), first[1..]);
        // A waiting reader is woken by a recording in this process.
        let waiter = {
            let vault = vault.clone();
            tokio::spawn(async move { vault.wait_events(2, 10, WAIT).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let third = transaction(&notary, owner, vec![], 1, 3);
        vault.record(&third, &keys).await.unwrap();
        let woken = waiter.await.unwrap();
        assert_eq!(woken.len(), 1);
        assert_eq!((woken[0].cursor, woken[0].tx_id), (3, third.id()));

        // Archiving moves the spent issuance's consumed state and the spend stays; the events
        // all stay, and the transactions they name stay readable.
        let archived = vault.archive_consumed(i64::MAX).await.unwrap();
        assert_eq!(archived.states, 1, "{backend}");
        let after = all_events(&vault).await;
        assert_eq!(after.len(), 3);
        assert_eq!(after[..2], first[..]);
        for e in &after {
            check_against_vault(&vault, e).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_events_name_their_flow() {
    for (backend, urls) in common::database_urls(4).await {
        flow_events_on(backend, urls).await;
    }
}

async fn flow_events_on(backend: &str, urls: Vec<String>) {
    let names = [
        "O=Notary, L=Tokyo, C=JP",
        "O=Bank, L=Tokyo, C=JP",
        "O=PartyA, L=Tokyo, C=JP",
        "O=PartyB, L=Osaka, C=JP",
    ];
    let keys: Vec<(PartyName, KeyPair)> = names
        .iter()
        .map(|n| (n.parse().unwrap(), KeyPair::generate()))
        .collect();
    let parties: Vec<Party> = keys
        .iter()
        .map(|(n, k)| Party {
            name: n.clone(),
            owning_key: k.public(),
        })
        .collect();
    let params = NetworkParameters {
        notary: parties[0].clone(),
        nodes: parties,
        max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
        notary_validating: false,
        validators: vec![],
    };
    let transport = InMemoryNetwork::new();
    let mut nodes = vec![];
    for (i, (name, key)) in keys.iter().enumerate() {
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: urls[i].clone(),
            role: if i == 0 {
                NodeRole::Notary
            } else {
                NodeRole::Regular
            },
            network: params.clone(),
            apps: vec![StablecoinApp::arc()],
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        };
        let node = Node::open(config, transport.clone()).await.unwrap();
        transport.register(name.clone(), node.receiver());
        nodes.push(node);
    }
    let (bank, a, b) = (&nodes[1], &nodes[2], &nodes[3]);
    let alice = a.create_account("alice").await.unwrap();
    let bob = b.create_account("bob").await.unwrap();
    let issue_flow = bank
        .start_flow(StablecoinFlow::Issue {
            amount: 50,
            currency: "JPY".into(),
            to_node: a.name().clone(),
            to_account: alice.id,
        })
        .await
        .unwrap();
    let FlowStatus::Completed { tx_id: issued } = bank.wait_flow(issue_flow, WAIT).await.unwrap()
    else {
        panic!("issue failed")
    };
    let mut flows = BTreeMap::new();
    // PartyA hears of the issuance from the bank: no flow of its own recorded it.
    let at_a = a.vault().wait_events(0, 10, WAIT).await.unwrap();
    assert_eq!(at_a.len(), 1, "{backend}");
    assert_eq!((at_a[0].tx_id, at_a[0].flow), (issued, None));
    for amount in [5, 7] {
        let flow = a
            .start_flow(StablecoinFlow::Pay {
                amount,
                from: alice.id,
                to_node: b.name().clone(),
                to_account: bob.id,
                validator: None,
            })
            .await
            .unwrap();
        let FlowStatus::Completed { tx_id } = a.wait_flow(flow, WAIT).await.unwrap() else {
            panic!("payment failed")
        };
        flows.insert(tx_id, flow);
    }
    // The bank's issuance event names the bank's flow; PartyA's payments name PartyA's flows.
    let at_bank = all_events(bank.vault()).await;
    assert_eq!(at_bank.len(), 1);
    assert_eq!(at_bank[0].flow, Some(issue_flow));
    let at_a = all_events(a.vault()).await;
    assert_eq!(at_a.len(), 3, "{backend}");
    for e in &at_a[1..] {
        assert_eq!(e.flow, flows.get(&e.tx_id).copied());
        assert!(e.flow.is_some());
        assert_eq!(e.consumed.len(), 1);
        check_against_vault(a.vault(), e).await;
    }
    for n in &nodes {
        n.shutdown();
    }
}
