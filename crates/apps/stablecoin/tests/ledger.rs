//! Transactions, filtered transactions, the stablecoin contract and the notary, on SQLite and
//! (when KH_TEST_POSTGRES_URL is set, as scripts/test does) on PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

mod common;

use common::stores;
use kh_app_stablecoin::*;
use kh_ledger::*;

fn party(name: &str) -> (Party, KeyPair) {
    let key = KeyPair::generate();
    (
        Party {
            name: name.parse().unwrap(),
            owning_key: key.public(),
        },
        key,
    )
}

fn coin(amount: u64, bank: &Party, owner: PublicKey, notary: &Party) -> TransactionState {
    let state = StablecoinState {
        amount,
        currency: "JPY".into(),
        issuer: bank.name.clone(),
        issuer_key: bank.owning_key,
        owner,
    };
    TransactionState {
        contract: stablecoin_id(),
        notary: notary.clone(),
        participants: vec![owner],
        data: bcs::to_bytes(&state).unwrap(),
    }
}

fn command(cmd: StablecoinCommand, signers: Vec<PublicKey>) -> Command {
    Command {
        contract: stablecoin_id(),
        data: bcs::to_bytes(&cmd).unwrap(),
        signers,
    }
}

fn salt(n: u8) -> [u8; 32] {
    [n; 32]
}

fn sign(tx: WireTransaction, keys: &[&KeyPair]) -> SignedTransaction {
    let id = tx.id();
    SignedTransaction {
        tx,
        sigs: keys
            .iter()
            .map(|k| TransactionSignature::sign(k, &id))
            .collect(),
    }
}

fn sample_tx(notary: &Party) -> WireTransaction {
    let (bank, _) = party("O=Bank, L=Tokyo, C=JP");
    let owner = KeyPair::generate().public();
    WireTransaction {
        inputs: vec![
            StateRef {
                tx_id: SecureHash::of(&[b"a"]),
                index: 0,
            },
            StateRef {
                tx_id: SecureHash::of(&[b"b"]),
                index: 3,
            },
        ],
        references: vec![],
        outputs: vec![
            coin(5, &bank, owner, notary),
            coin(7, &bank, owner, notary),
            coin(9, &bank, owner, notary),
        ],
        commands: vec![command(StablecoinCommand::Move, vec![owner])],
        notary: Some(notary.clone()),
        time_window: Some(TimeWindow {
            from_ms: None,
            until_ms: Some(u64::MAX),
        }),
        privacy_salt: salt(1),
    }
}

#[test]
fn tx_id_binds_every_component_and_the_salt() {
    let (notary, _) = party("O=Notary, L=Tokyo, C=JP");
    let tx = sample_tx(&notary);
    let id = tx.id();
    let mut other = tx.clone();
    other.privacy_salt = salt(2);
    assert_ne!(other.id(), id);
    let mut other = tx.clone();
    other.outputs.swap(0, 1);
    assert_ne!(other.id(), id);
    let mut other = tx.clone();
    other.inputs.pop();
    assert_ne!(other.id(), id);
    assert_eq!(tx.clone().id(), id);
}

#[test]
fn filtered_transaction_proves_revealed_components_and_fails_on_any_byte_change() {
    let (notary, _) = party("O=Notary, L=Tokyo, C=JP");
    let tx = sample_tx(&notary);
    let ftx = tx.filter(|g, i| g == ComponentGroup::Outputs && i == 1);
    ftx.verify().unwrap();
    assert_eq!(ftx.id, tx.id());
    let revealed: TransactionState = bcs::from_bytes(&ftx.groups[0].components[0].bytes).unwrap();
    assert_eq!(revealed, tx.outputs[1]);
    // Not the whole group: a notary could not rely on it.
    assert!(matches!(
        ftx.whole_group::<TransactionState>(ComponentGroup::Outputs),
        Err(FilterError::Incomplete { .. })
    ));

    // Every byte of the revealed component, its nonce and its path matters.
    let c = &ftx.groups[0].components[0];
    for i in 0..c.bytes.len() {
        let mut bad = ftx.clone();
        bad.groups[0].components[0].bytes[i] ^= 1;
        assert!(bad.verify().is_err(), "byte {i} of the component");
    }
    for i in 0..32 {
        let mut bad = ftx.clone();
        bad.groups[0].components[0].nonce.0[i] ^= 1;
        assert!(bad.verify().is_err());
        let mut bad = ftx.clone();
        bad.groups[0].components[0].path[0].0[i] ^= 1;
        assert!(bad.verify().is_err());
        let mut bad = ftx.clone();
        bad.group_roots[3].0[i] ^= 1;
        assert!(bad.verify().is_err());
        let mut bad = ftx.clone();
        bad.id.0[i] ^= 1;
        assert!(bad.verify().is_err());
    }
    // Lying about the group size or the index is caught.
    let mut bad = ftx.clone();
    bad.groups[0].count = 2;
    assert!(bad.verify().is_err());
    let mut bad = ftx.clone();
    bad.groups[0].components[0].index = 0;
    assert!(bad.verify().is_err());

    // The notary view holds whole groups.
    let view = tx.notary_view();
    view.verify().unwrap();
    assert_eq!(
        view.whole_group::<StateRef>(ComponentGroup::Inputs)
            .unwrap(),
        tx.inputs
    );
    assert_eq!(
        view.whole_group::<StateRef>(ComponentGroup::References)
            .unwrap(),
        vec![]
    );
    assert_eq!(
        view.whole_group::<Party>(ComponentGroup::Notary).unwrap(),
        vec![notary]
    );
    // Dropping one input from the view is detected.
    let mut partial = view.clone();
    partial.groups[0].components.pop();
    assert!(matches!(
        partial.whole_group::<StateRef>(ComponentGroup::Inputs),
        Err(FilterError::Incomplete { .. })
    ));
    // A view without the inputs group cannot pass for "no inputs".
    let mut hidden = view.clone();
    hidden.groups.retain(|g| g.group != ComponentGroup::Inputs);
    assert!(matches!(
        hidden.whole_group::<StateRef>(ComponentGroup::Inputs),
        Err(FilterError::Incomplete { .. })
    ));
}

#[test]
fn signatures_and_size_limit() {
    let (notary, notary_key) = party("O=Notary, L=Tokyo, C=JP");
    let owner = KeyPair::generate();
    let mut tx = sample_tx(&notary);
    tx.commands = vec![command(StablecoinCommand::Move, vec![owner.public()])];
    let stx = sign(tx.clone(), &[&owner]);
    stx.verify(DEFAULT_MAX_TRANSACTION_SIZE, &[notary.owning_key])
        .unwrap();
    match stx.verify(DEFAULT_MAX_TRANSACTION_SIZE, &[]) {
        Err(TransactionError::MissingSignatures { missing, .. }) => {
            assert_eq!(missing, vec![notary.owning_key])
        }
        other => panic!("{other:?}"),
    }
    sign(tx.clone(), &[&owner, &notary_key])
        .verify(DEFAULT_MAX_TRANSACTION_SIZE, &[])
        .unwrap();
    // A signature by the right key over another transaction is refused.
    let mut forged = stx.clone();
    forged.sigs[0].signature = owner.sign(&SecureHash::of(&[b"other"]).0);
    assert!(matches!(
        forged.verify(DEFAULT_MAX_TRANSACTION_SIZE, &[notary.owning_key]),
        Err(TransactionError::BadSignature { .. })
    ));
    let unsigned = sign(tx.clone(), &[]);
    assert!(matches!(
        unsigned.verify(DEFAULT_MAX_TRANSACTION_SIZE, &[notary.owning_key]),
        Err(TransactionError::MissingSignatures { .. })
    ));
    // Size limit, on encode and decode.
    let bytes = stx.to_bytes();
    assert!(matches!(
        stx.verify(bytes.len() - 1, &[notary.owning_key]),
        Err(TransactionError::TooLarge { .. })
    ));
    assert!(matches!(
        SignedTransaction::from_bytes(&bytes, bytes.len() - 1),
        Err(TransactionError::TooLarge { .. })
    ));
    assert_eq!(
        SignedTransaction::from_bytes(&bytes, bytes.len()).unwrap(),
        stx
    );
    assert!(matches!(
        SignedTransaction::from_bytes(&bytes[..bytes.len() - 3], usize::MAX),
        Err(TransactionError::Decode(_))
    ));
    let mut dup = tx.clone();
    dup.inputs.push(dup.inputs[0]);
    assert!(matches!(
        sign(dup, &[&owner, &notary_key]).verify(usize::MAX, &[]),
        Err(TransactionError::DuplicateState { .. })
    ));
}

fn registry() -> ContractRegistry {
    let mut r = ContractRegistry::default();
    r.install(Arc::new(StablecoinContract));
    r
}

#[test]
fn stablecoin_rules() {
    let (notary, _) = party("O=Notary, L=Tokyo, C=JP");
    let (bank, bank_key) = party("O=Bank, L=Tokyo, C=JP");
    let alice = KeyPair::generate();
    let bob = KeyPair::generate();
    let reg = registry();
    let verify = |tx: WireTransaction, inputs: Vec<(StateRef, TransactionState)>| {
        let stx = SignedTransaction { tx, sigs: vec![] };
        let ltx = LedgerTransaction::resolve(&stx, |r| {
            inputs.iter().find(|(x, _)| x == r).map(|(_, s)| s.clone())
        })?;
        reg.verify(&ltx)
    };
    let base = |inputs, outputs, cmd| WireTransaction {
        inputs,
        references: vec![],
        outputs,
        commands: vec![cmd],
        notary: Some(notary.clone()),
        time_window: None,
        privacy_salt: salt(3),
    };
    // Issue by the bank.
    verify(
        base(
            vec![],
            vec![coin(100, &bank, alice.public(), &notary)],
            command(StablecoinCommand::Issue, vec![bank.owning_key]),
        ),
        vec![],
    )
    .unwrap();
    let err = verify(
        base(
            vec![],
            vec![coin(100, &bank, alice.public(), &notary)],
            command(StablecoinCommand::Issue, vec![alice.public()]),
        ),
        vec![],
    )
    .unwrap_err();
    assert!(err.to_string().contains("issuer"), "{err}");
    // Move conserves value and needs the owner.
    let r = StateRef {
        tx_id: SecureHash::of(&[b"issue"]),
        index: 0,
    };
    let input = (r, coin(100, &bank, alice.public(), &notary));
    verify(
        base(
            vec![r],
            vec![
                coin(60, &bank, bob.public(), &notary),
                coin(40, &bank, alice.public(), &notary),
            ],
            command(StablecoinCommand::Move, vec![alice.public()]),
        ),
        vec![input.clone()],
    )
    .unwrap();
    let err = verify(
        base(
            vec![r],
            vec![coin(101, &bank, bob.public(), &notary)],
            command(StablecoinCommand::Move, vec![alice.public()]),
        ),
        vec![input.clone()],
    )
    .unwrap_err();
    assert!(err.to_string().contains("conserve"), "{err}");
    let err = verify(
        base(
            vec![r],
            vec![coin(100, &bank, bob.public(), &notary)],
            command(StablecoinCommand::Move, vec![bob.public()]),
        ),
        vec![input.clone()],
    )
    .unwrap_err();
    assert!(err.to_string().contains("must sign"), "{err}");
    let err = verify(
        base(
            vec![r],
            vec![coin(100, &bank, bob.public(), &notary)],
            command(StablecoinCommand::Move, vec![alice.public()]),
        ),
        vec![],
    )
    .unwrap_err();
    assert_eq!(err, ContractError::UnknownState(r));
    // Redeem.
    verify(
        base(
            vec![r],
            vec![coin(30, &bank, alice.public(), &notary)],
            command(
                StablecoinCommand::Redeem { amount: 70 },
                vec![alice.public(), bank.owning_key],
            ),
        ),
        vec![input.clone()],
    )
    .unwrap();
    assert!(
        verify(
            base(
                vec![r],
                vec![coin(31, &bank, alice.public(), &notary)],
                command(
                    StablecoinCommand::Redeem { amount: 70 },
                    vec![alice.public(), bank.owning_key]
                )
            ),
            vec![input],
        )
        .is_err()
    );
    let _ = bank_key;
}

/// States owned by one key, with the transactions that produced them (what a non-validating
/// request reveals to the notary), and transactions spending them.
struct Owned {
    owner: KeyPair,
    producers: std::collections::HashMap<TxId, SignedTransaction>,
}

impl Owned {
    fn new() -> Self {
        Self {
            owner: KeyPair::generate(),
            producers: Default::default(),
        }
    }

    /// A fresh state of `notary` owned by the owner (output `index` of a new transaction).
    fn state(&mut self, notary: &Party, tag: &[u8], index: u32) -> StateRef {
        let out = TransactionState {
            contract: ContractId("kakehashi.test".into()),
            notary: notary.clone(),
            participants: vec![self.owner.public()],
            data: tag.to_vec(),
        };
        let producer = SignedTransaction {
            tx: WireTransaction {
                inputs: vec![],
                references: vec![],
                outputs: vec![out; index as usize + 1],
                commands: vec![],
                notary: None,
                time_window: None,
                privacy_salt: SecureHash::of(&[tag]).0,
            },
            sigs: vec![],
        };
        let tx_id = producer.id();
        self.producers.insert(tx_id, producer);
        StateRef { tx_id, index }
    }

    /// A transaction consuming `inputs`, whose command names `signer` (signing it).
    fn spend_by(
        &self,
        signer: &KeyPair,
        notary: &Party,
        inputs: Vec<StateRef>,
        salt_byte: u8,
    ) -> SignedTransaction {
        let tx = WireTransaction {
            inputs,
            references: vec![],
            outputs: vec![],
            commands: vec![Command {
                contract: ContractId("kakehashi.test".into()),
                data: vec![],
                signers: vec![signer.public()],
            }],
            notary: Some(notary.clone()),
            time_window: None,
            privacy_salt: salt(salt_byte),
        };
        sign(tx, &[signer])
    }

    fn spend(&self, notary: &Party, inputs: Vec<StateRef>, salt_byte: u8) -> SignedTransaction {
        self.spend_by(&self.owner, notary, inputs, salt_byte)
    }

    fn request(&self, stx: &SignedTransaction) -> NotarisationRequest {
        NotarisationRequest::non_validating(stx, |id| self.producers.get(id).cloned()).unwrap()
    }
}

fn requester() -> PartyName {
    "O=PartyA, L=Tokyo, C=JP".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_prevents_double_spends_and_persists_commits() {
    for (backend, store) in stores().await {
        let (notary_party, key) = party("O=Notary, L=Tokyo, C=JP");
        let notary = Notary::start(
            notary_party.clone(),
            key.clone(),
            store.clone(),
            None,
            NotaryConfig::default(),
        );
        let me = requester();
        let mut owned = Owned::new();
        let s1 = owned.state(&notary_party, &[backend.as_bytes(), b"1"].concat(), 0);
        let s2 = owned.state(&notary_party, &[backend.as_bytes(), b"2"].concat(), 1);
        let tx1 = owned.spend(&notary_party, vec![s1, s2], 1);
        let sig = notary.notarise(&me, owned.request(&tx1)).await.unwrap();
        sig.verify(&tx1.id()).unwrap();
        assert_eq!(sig.by, notary_party.owning_key);
        // Idempotent for the same transaction.
        notary.notarise(&me, owned.request(&tx1)).await.unwrap();
        // A second transaction spending s2 is refused, naming s2 and tx1.
        let s3 = owned.state(&notary_party, &[backend.as_bytes(), b"3"].concat(), 0);
        let tx2 = owned.spend(&notary_party, vec![s3, s2], 2);
        match notary.notarise(&me, owned.request(&tx2)).await {
            Err(NotaryError::DoubleSpend { tx, conflicts }) => {
                assert_eq!(tx, tx2.id());
                assert_eq!(
                    conflicts,
                    vec![Conflict {
                        state: s2,
                        consumed_by: tx1.id()
                    }]
                );
            }
            other => panic!("{backend}: {other:?}"),
        }
        // Nothing of the refused transaction was committed: s3 is still spendable.
        let tx3 = owned.spend(&notary_party, vec![s3], 3);
        notary.notarise(&me, owned.request(&tx3)).await.unwrap();

        // Commits survive a restart of the notary on the same database.
        drop(notary);
        let notary = Notary::start(
            notary_party.clone(),
            key.clone(),
            store.clone(),
            None,
            NotaryConfig::default(),
        );
        let again = owned.spend(&notary_party, vec![s1], 4);
        assert!(matches!(
            notary.notarise(&me, owned.request(&again)).await,
            Err(NotaryError::DoubleSpend { .. })
        ));

        // Two transactions built concurrently on the same state: exactly one is notarised.
        for round in 0..20u8 {
            let s = owned.state(
                &notary_party,
                &[backend.as_bytes(), b"race", &[round]].concat(),
                0,
            );
            let a = owned.request(&owned.spend(&notary_party, vec![s], 100 + round));
            let b = owned.request(&owned.spend(&notary_party, vec![s], 200u8.wrapping_add(round)));
            let (ra, rb) = tokio::join!(notary.notarise(&me, a), notary.notarise(&me, b));
            assert_eq!(
                ra.is_ok() as u8 + rb.is_ok() as u8,
                1,
                "{backend} round {round}"
            );
        }

        // Time window, wrong notary, malformed view.
        let late_state = owned.state(&notary_party, b"late", 0);
        let mut late = owned.spend(&notary_party, vec![late_state], 5).tx;
        late.time_window = Some(TimeWindow {
            from_ms: None,
            until_ms: Some(1),
        });
        let late = sign(late, &[&owned.owner]);
        assert!(matches!(
            notary.notarise(&me, owned.request(&late)).await,
            Err(NotaryError::OutsideTimeWindow { .. })
        ));
        let (other, _) = party("O=OtherNotary, L=Osaka, C=JP");
        let foreign_state = owned.state(&other, b"f", 0);
        let foreign = owned.spend(&other, vec![foreign_state], 6);
        assert!(matches!(
            notary.notarise(&me, owned.request(&foreign)).await,
            Err(NotaryError::WrongNotary { .. })
        ));
        let hidden_state = owned.state(&notary_party, b"hidden", 0);
        let mut hidden = owned.request(&owned.spend(&notary_party, vec![hidden_state], 7));
        if let NotarisationRequest::NonValidating { tx, .. } = &mut hidden {
            tx.groups.retain(|g| g.group != ComponentGroup::Inputs);
        }
        assert!(matches!(
            notary.notarise(&me, hidden).await,
            Err(NotaryError::Filter(_))
        ));
        // The commands (and their signers) must be revealed whole.
        let mut no_commands = owned.request(&owned.spend(&notary_party, vec![hidden_state], 8));
        if let NotarisationRequest::NonValidating { tx, .. } = &mut no_commands {
            tx.groups.retain(|g| g.group != ComponentGroup::Commands);
        }
        assert!(matches!(
            notary.notarise(&me, no_commands).await,
            Err(NotaryError::Filter(FilterError::Incomplete {
                group: ComponentGroup::Commands,
                ..
            }))
        ));
        // An input not revealed through its producing transaction.
        let mut unrevealed = owned.request(&owned.spend(&notary_party, vec![hidden_state], 9));
        if let NotarisationRequest::NonValidating { input_states, .. } = &mut unrevealed {
            input_states.clear();
        }
        assert!(matches!(
            notary.notarise(&me, unrevealed).await,
            Err(NotaryError::Malformed { .. })
        ));
        // A command signer's signature missing.
        let mut unsigned = owned.request(&owned.spend(&notary_party, vec![hidden_state], 10));
        if let NotarisationRequest::NonValidating { sigs, .. } = &mut unsigned {
            sigs.clear();
        }
        assert!(matches!(
            notary.notarise(&me, unsigned).await,
            Err(NotaryError::Transaction(
                TransactionError::MissingSignatures { .. }
            ))
        ));
        // The state is still free after all those refusals.
        let fine = owned.spend(&notary_party, vec![hidden_state], 11);
        notary.notarise(&me, owned.request(&fine)).await.unwrap();
    }
}

/// Attack: a member asks the notary to consume states it does not own (burning another
/// member's change). The request is complete and signed — by the attacker, whose key is not a
/// participant of the states — and is refused; the states stay spendable by their owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notary_refuses_to_consume_someone_elses_states() {
    for (backend, store) in stores().await {
        let (notary_party, key) = party("O=Notary, L=Tokyo, C=JP");
        let notary = Notary::start(
            notary_party.clone(),
            key,
            store,
            None,
            NotaryConfig::default(),
        );
        let mut victim = Owned::new();
        let change = victim.state(&notary_party, &[backend.as_bytes(), b"change"].concat(), 1);
        let mallory = KeyPair::generate();
        let burn = victim.spend_by(&mallory, &notary_party, vec![change], 1);
        match notary
            .notarise(
                &"O=PartyB, L=Osaka, C=JP".parse().unwrap(),
                victim.request(&burn),
            )
            .await
        {
            Err(NotaryError::NotSpendable {
                state, participant, ..
            }) => {
                assert_eq!(state, change, "{backend}");
                assert_eq!(participant, victim.owner.public(), "{backend}");
            }
            other => panic!("{backend}: {other:?}"),
        }
        let own = victim.spend(&notary_party, vec![change], 2);
        notary
            .notarise(&requester(), victim.request(&own))
            .await
            .unwrap();
    }
}

/// Attack: a request naming one input twice, sent among good requests that share the notary's
/// batch, is refused on its own; every good request is notarised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_input_is_refused_without_failing_its_batch() {
    for (backend, store) in stores().await {
        let (notary_party, key) = party("O=Notary, L=Tokyo, C=JP");
        let notary = Notary::start(
            notary_party.clone(),
            key,
            store,
            None,
            NotaryConfig::default(),
        );
        let mut owned = Owned::new();
        let mut requests = Vec::new();
        for i in 0..20u8 {
            let s = owned.state(&notary_party, &[backend.as_bytes(), &[i]].concat(), 0);
            requests.push(owned.request(&owned.spend(&notary_party, vec![s], i)));
        }
        let dup = owned.state(&notary_party, &[backend.as_bytes(), b"dup"].concat(), 0);
        let bad = owned.request(&owned.spend(&notary_party, vec![dup, dup], 99));
        requests.insert(10, bad);
        let me = requester();
        let results =
            futures::future::join_all(requests.into_iter().map(|r| notary.notarise(&me, r))).await;
        for (i, r) in results.iter().enumerate() {
            if i == 10 {
                assert!(
                    matches!(
                        r,
                        Err(NotaryError::Transaction(
                            TransactionError::DuplicateState { .. }
                        ))
                    ),
                    "{backend}: {r:?}"
                );
            } else {
                assert!(r.is_ok(), "{backend} request {i}: {r:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_notary_checks_contracts_and_signatures() {
    for (backend, store) in stores().await {
        let (notary_party, key) = party("O=Notary, L=Tokyo, C=JP");
        let notary = Notary::start(
            notary_party.clone(),
            key,
            store,
            Some(registry()),
            NotaryConfig::default(),
        );
        let (bank, bank_key) = party("O=Bank, L=Tokyo, C=JP");
        let alice = KeyPair::generate();
        let bob = KeyPair::generate();
        let me = requester();
        // The coin's issuance: the backchain the notary resolves the input from.
        let mut issue = WireTransaction {
            inputs: vec![],
            references: vec![],
            outputs: vec![coin(100, &bank, alice.public(), &notary_party)],
            commands: vec![command(StablecoinCommand::Issue, vec![bank.owning_key])],
            notary: None,
            time_window: None,
            privacy_salt: salt(0),
        };
        issue.privacy_salt = SecureHash::of(&[backend.as_bytes(), b"coin"]).0;
        let issue = sign(issue, &[&bank_key]);
        let r = StateRef {
            tx_id: issue.id(),
            index: 0,
        };
        let build = |amount: u64, salt_byte: u8| WireTransaction {
            inputs: vec![r],
            references: vec![],
            outputs: vec![coin(amount, &bank, bob.public(), &notary_party)],
            commands: vec![command(StablecoinCommand::Move, vec![alice.public()])],
            notary: Some(notary_party.clone()),
            time_window: None,
            privacy_salt: salt(salt_byte),
        };
        // A contract violation is refused and commits nothing.
        let bad = sign(build(150, 1), &[&alice]);
        assert!(matches!(
            notary
                .notarise(
                    &me,
                    NotarisationRequest::Validating {
                        tx: Box::new(bad),
                        backchain: vec![issue.clone()]
                    }
                )
                .await,
            Err(NotaryError::Contract(ContractError::Rejected { .. }))
        ));
        // Missing the owner's signature.
        let unsigned = sign(build(100, 2), &[]);
        assert!(matches!(
            notary
                .notarise(
                    &me,
                    NotarisationRequest::Validating {
                        tx: Box::new(unsigned),
                        backchain: vec![issue.clone()]
                    }
                )
                .await,
            Err(NotaryError::Transaction(
                TransactionError::MissingSignatures { .. }
            ))
        ));
        // Unknown input state.
        let good = sign(build(100, 3), &[&alice]);
        assert!(matches!(
            notary
                .notarise(
                    &me,
                    NotarisationRequest::Validating {
                        tx: Box::new(good.clone()),
                        backchain: vec![]
                    }
                )
                .await,
            Err(NotaryError::Contract(ContractError::UnknownState(_)))
        ));
        // A producing transaction that is not completely signed is not a source of states.
        let mut forged = issue.clone();
        forged.sigs.clear();
        assert!(matches!(
            notary
                .notarise(
                    &me,
                    NotarisationRequest::Validating {
                        tx: Box::new(good.clone()),
                        backchain: vec![forged]
                    }
                )
                .await,
            Err(NotaryError::Transaction(
                TransactionError::MissingSignatures { .. }
            ))
        ));
        // The valid one goes through; a filtered request is refused by a validating notary.
        notary
            .notarise(
                &me,
                NotarisationRequest::Validating {
                    tx: Box::new(good.clone()),
                    backchain: vec![issue.clone()],
                },
            )
            .await
            .unwrap();
        let filtered = NotarisationRequest::non_validating(&good, |_| Some(issue.clone())).unwrap();
        assert!(matches!(
            notary.notarise(&me, filtered).await,
            Err(NotaryError::WrongMode(_))
        ));
        let again = sign(build(100, 4), &[&alice]);
        assert!(matches!(
            notary
                .notarise(
                    &me,
                    NotarisationRequest::Validating {
                        tx: Box::new(again),
                        backchain: vec![issue]
                    }
                )
                .await,
            Err(NotaryError::DoubleSpend { .. })
        ));
    }
}
