//! What a co-signer (Validator or issuer) accepts, and what it refuses: the signature checks,
//! the backchain, the contract and the stablecoin's issuer rule, through the node's public
//! co-signing check (the same one a co-sign request runs).
#![allow(clippy::unwrap_used)]

use kh_app_stablecoin::*;
use kh_ledger::*;
use uuid::Uuid;

struct Fixture {
    params: NetworkParameters,
    keys: Vec<KeyPair>,
}

const NAMES: [&str; 4] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=Bank, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=Validator, L=Tokyo, C=JP",
];

impl Fixture {
    fn new() -> Self {
        let keys: Vec<KeyPair> = NAMES.iter().map(|_| KeyPair::generate()).collect();
        let nodes: Vec<Party> = NAMES
            .iter()
            .zip(&keys)
            .map(|(n, k)| Party {
                name: n.parse().unwrap(),
                owning_key: k.public(),
            })
            .collect();
        let params = NetworkParameters {
            notary: nodes[0].clone(),
            notary_validating: false,
            validators: vec![NAMES[3].parse().unwrap()],
            nodes,
            max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
        };
        Self { params, keys }
    }

    async fn open(&self, i: usize, role: NodeRole) -> Node {
        let config = NodeConfig {
            name: NAMES[i].parse().unwrap(),
            key: self.keys[i].clone(),
            database_url: format!(
                "sqlite:{}",
                std::env::temp_dir()
                    .join(format!("kh-cosign-{}.db", Uuid::new_v4()))
                    .display()
            ),
            role,
            network: self.params.clone(),
            apps: vec![StablecoinApp::arc()],
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        };
        Node::open(config, InMemoryNetwork::new()).await.unwrap()
    }

    /// An issuance by `signer` of `amount` to `owner`, claiming to come from the Bank.
    fn issuance(&self, signer: &KeyPair, owner: PublicKey, amount: u64) -> SignedTransaction {
        let coin = StablecoinState {
            amount,
            currency: "JPY".into(),
            issuer: NAMES[1].parse().unwrap(),
            issuer_key: signer.public(),
            owner,
        };
        let tx = WireTransaction {
            inputs: vec![],
            references: vec![],
            outputs: vec![TransactionState {
                contract: stablecoin_id(),
                notary: self.params.notary.clone(),
                participants: vec![owner],
                data: bcs::to_bytes(&coin).unwrap(),
            }],
            commands: vec![Command {
                contract: stablecoin_id(),
                data: bcs::to_bytes(&StablecoinCommand::Issue).unwrap(),
                signers: vec![signer.public()],
            }],
            notary: Some(self.params.notary.clone()),
            time_window: None,
            privacy_salt: [7; 32],
        };
        SignedTransaction::signed_by(tx, signer)
    }

    /// A payment of `amount` out of `dep`'s first output, signed by `owner`, naming
    /// `cosigner` as a signer.
    fn payment(
        &self,
        dep: &SignedTransaction,
        owner: &KeyPair,
        amount: u64,
        cosigner: Option<PublicKey>,
    ) -> SignedTransaction {
        let input = StateAndRef {
            reference: StateRef {
                tx_id: dep.id(),
                index: 0,
            },
            state: dep.tx.outputs[0].clone(),
        };
        let payee = KeyPair::generate().public();
        let mut tx =
            build_payment(&[input], owner.public(), payee, amount, &self.params.notary).unwrap();
        tx.commands[0].signers.extend(cosigner);
        SignedTransaction::signed_by(tx, owner)
    }
}

impl Fixture {
    /// `stx` with the network notary's signature, as if it had been notarised.
    fn notarised(&self, mut stx: SignedTransaction) -> SignedTransaction {
        stx.sigs
            .push(TransactionSignature::sign(&self.keys[0], &stx.id()));
        stx
    }

    /// A move of all of `dep`'s first output to `to`, signed by `owner`, notarised.
    fn moved(&self, dep: &SignedTransaction, owner: &KeyPair, to: PublicKey) -> SignedTransaction {
        let coin: StablecoinState = dep.tx.outputs[0].decode().unwrap();
        let input = StateAndRef {
            reference: StateRef {
                tx_id: dep.id(),
                index: 0,
            },
            state: dep.tx.outputs[0].clone(),
        };
        let tx = build_payment(
            &[input],
            owner.public(),
            to,
            coin.amount,
            &self.params.notary,
        )
        .unwrap();
        self.notarised(SignedTransaction::signed_by(tx, owner))
    }
}

fn party_a() -> PartyName {
    NAMES[2].parse().unwrap()
}

async fn refused(
    node: &Node,
    stx: &SignedTransaction,
    backchain: Vec<SignedTransaction>,
) -> String {
    match node.cosign_check(&party_a(), stx, backchain).await.unwrap() {
        Ok(_) => panic!("co-signed {}", stx.id()),
        Err(reason) => reason,
    }
}

#[tokio::test]
async fn a_validator_cosigns_a_payment_whose_backchain_and_contracts_check_out() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let owner = KeyPair::generate();
    let issue = f.issuance(&f.keys[1], owner.public(), 100);
    let pay = f.payment(&issue, &owner, 60, Some(f.keys[3].public()));

    // Without the transaction that produced the input, it cannot check the input.
    let err = refused(&validator, &pay, vec![]).await;
    assert!(err.contains("is missing"), "{err}");

    // A backchain transaction changed in any byte no longer produces the input.
    let mut forged = issue.clone();
    forged.tx.privacy_salt[0] ^= 1;
    let err = refused(&validator, &pay, vec![forged]).await;
    assert!(err.contains("is missing"), "{err}");

    // An input transaction missing its signature.
    let mut unsigned = issue.clone();
    unsigned.sigs.clear();
    let err = refused(&validator, &pay, vec![unsigned]).await;
    assert!(err.contains("missing"), "{err}");

    // Coins "issued by the Bank" under a key that is not the Bank's.
    let rogue = KeyPair::generate();
    let fake = f.issuance(&rogue, owner.public(), 100);
    let pay_fake = f.payment(&fake, &owner, 60, Some(f.keys[3].public()));
    let err = refused(&validator, &pay_fake, vec![fake]).await;
    assert!(err.contains("not that node"), "{err}");

    // The payer did not sign.
    let mut no_payer = pay.clone();
    no_payer.sigs.clear();
    let err = refused(&validator, &no_payer, vec![issue.clone()]).await;
    assert!(err.contains("missing"), "{err}");

    // A payment that creates value breaks the contract.
    let mut inflated = pay.clone();
    let mut coin: StablecoinState = inflated.tx.outputs[0].decode().unwrap();
    coin.amount = 90;
    inflated.tx.outputs[0].data = bcs::to_bytes(&coin).unwrap();
    let inflated = SignedTransaction::signed_by(inflated.tx, &owner);
    let err = refused(&validator, &inflated, vec![issue.clone()]).await;
    assert!(err.contains("conserv") || err.contains("amount"), "{err}");

    // A transaction that does not name the Validator.
    let unnamed = f.payment(&issue, &owner, 60, None);
    let err = refused(&validator, &unnamed, vec![issue.clone()]).await;
    assert!(err.contains("not a required signer"), "{err}");

    // The good one is co-signed; its verified ancestor is cached, so it need not be sent again.
    let sig = validator
        .cosign_check(&party_a(), &pay, vec![issue.clone()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sig.by, f.keys[3].public());
    sig.verify(&pay.id()).unwrap();
    let sig = validator
        .cosign_check(&party_a(), &pay, vec![])
        .await
        .unwrap()
        .unwrap();
    sig.verify(&pay.id()).unwrap();
}

/// Attack: an invented input — a payment spending a state of a transaction that exists
/// nowhere — is refused, whoever signed the payment.
#[tokio::test]
async fn an_invented_input_is_refused() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let owner = KeyPair::generate();
    let invented = f.issuance(&f.keys[1], owner.public(), 1_000);
    let pay = f.payment(&invented, &owner, 60, Some(f.keys[3].public()));
    let err = refused(&validator, &pay, vec![]).await;
    assert!(
        err.starts_with(&format!(
            "ancestor {} of {} is missing",
            invented.id(),
            pay.id()
        )),
        "{err}"
    );
}

/// Attack: a fabricated ancestor two levels down. A move whose input comes from an issuance
/// the Bank never signed is notarised (a non-validating notary cannot tell), then the coin is
/// paid on. The Validator walks the whole chain and refuses at the fabricated issuance; with
/// only the direct parent checked (one level, as before) the payment would pass.
#[tokio::test]
async fn a_fabricated_ancestor_deep_in_the_backchain_is_refused() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let mallory = KeyPair::generate();
    // The "Bank" issuance, with the Bank's key named as issuer but signed by Mallory.
    let mut fabricated = f.issuance(&f.keys[1], mallory.public(), 1_000_000);
    fabricated.sigs = vec![TransactionSignature::sign(&mallory, &fabricated.id())];
    let laundered = f.moved(&fabricated, &mallory, mallory.public());
    let pay = f.payment(&laundered, &mallory, 500, Some(f.keys[3].public()));
    let err = refused(
        &validator,
        &pay,
        vec![fabricated.clone(), laundered.clone()],
    )
    .await;
    assert!(
        err.starts_with(&format!("ancestor {} does not verify", fabricated.id())),
        "{err}"
    );
    assert!(err.contains("missing signatures"), "{err}");
    // Leaving the fabricated issuance out does not help.
    let err = refused(&validator, &pay, vec![laundered]).await;
    assert!(
        err.contains(&format!("ancestor {} of", fabricated.id())),
        "{err}"
    );
    assert!(validator.validations().await.unwrap().is_empty());
}

/// Attack: an ancestor that moved a Bank coin but rewrote its issuer key to the mover's own
/// (so that it could later redeem it itself) is refused by the issuer rule, deep in the chain.
#[tokio::test]
async fn an_issuer_key_rewritten_in_a_move_is_refused() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let mallory = KeyPair::generate();
    let issue = f.issuance(&f.keys[1], mallory.public(), 100);
    let mut rewritten = f.moved(&issue, &mallory, mallory.public()).tx;
    for out in &mut rewritten.outputs {
        let mut coin: StablecoinState = out.decode().unwrap();
        coin.issuer_key = mallory.public();
        out.data = bcs::to_bytes(&coin).unwrap();
    }
    let rewritten = f.notarised(SignedTransaction::signed_by(rewritten, &mallory));
    let pay = f.payment(&rewritten, &mallory, 50, Some(f.keys[3].public()));
    let err = refused(&validator, &pay, vec![issue, rewritten.clone()]).await;
    assert!(err.contains("not that node"), "{err}");
}

/// An ancestor that consumed states without the notary's signature, or under a notary that is
/// not the network's, is not final and is refused.
#[tokio::test]
async fn an_ancestor_without_the_networks_notary_is_refused() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let owner = KeyPair::generate();
    let issue = f.issuance(&f.keys[1], owner.public(), 100);
    let mut unnotarised = f.moved(&issue, &owner, owner.public());
    unnotarised.sigs.truncate(1);
    let pay = f.payment(&unnotarised, &owner, 10, Some(f.keys[3].public()));
    let err = refused(&validator, &pay, vec![issue.clone(), unnotarised]).await;
    assert!(err.contains("missing signatures"), "{err}");
    // A "notary" of the attacker's own.
    let rogue = KeyPair::generate();
    let rogue_notary = Party {
        name: "O=Notary, L=Osaka, C=JP".parse().unwrap(),
        owning_key: rogue.public(),
    };
    let mut tx = f.moved(&issue, &owner, owner.public()).tx;
    tx.notary = Some(rogue_notary);
    tx.privacy_salt = [9; 32];
    let mut own_notary = SignedTransaction::signed_by(tx, &owner);
    own_notary
        .sigs
        .push(TransactionSignature::sign(&rogue, &own_notary.id()));
    let pay = f.payment(&own_notary, &owner, 10, Some(f.keys[3].public()));
    let err = refused(&validator, &pay, vec![issue, own_notary]).await;
    assert!(err.contains("does not name the network's notary"), "{err}");
}

/// Attack: the Bank is asked to co-sign the redemption of a counterfeit coin — one whose
/// issuance it never signed — and refuses because the backchain does not verify.
#[tokio::test]
async fn the_bank_refuses_to_redeem_a_counterfeit_coin() {
    let f = Fixture::new();
    let bank = f.open(1, NodeRole::Regular).await;
    let mallory = KeyPair::generate();
    let mut counterfeit = f.issuance(&f.keys[1], mallory.public(), 1_000);
    counterfeit.sigs = vec![TransactionSignature::sign(&mallory, &counterfeit.id())];
    let laundered = f.moved(&counterfeit, &mallory, mallory.public());
    let coin: StablecoinState = laundered.tx.outputs[0].decode().unwrap();
    let redeem = WireTransaction {
        inputs: vec![StateRef {
            tx_id: laundered.id(),
            index: 0,
        }],
        references: vec![],
        outputs: vec![],
        commands: vec![Command {
            contract: stablecoin_id(),
            data: bcs::to_bytes(&StablecoinCommand::Redeem {
                amount: coin.amount,
            })
            .unwrap(),
            signers: vec![mallory.public(), f.keys[1].public()],
        }],
        notary: Some(f.params.notary.clone()),
        time_window: None,
        privacy_salt: [3; 32],
    };
    let redeem = SignedTransaction::signed_by(redeem, &mallory);
    let err = refused(&bank, &redeem, vec![counterfeit.clone(), laundered.clone()]).await;
    assert!(
        err.starts_with(&format!("ancestor {} does not verify", counterfeit.id())),
        "{err}"
    );
    // The same redemption of a real coin is co-signed.
    let real = f.issuance(&f.keys[1], mallory.public(), 1_000);
    let moved = f.moved(&real, &mallory, mallory.public());
    let mut tx = redeem.tx.clone();
    tx.inputs[0].tx_id = moved.id();
    let redeem = SignedTransaction::signed_by(tx, &mallory);
    bank.cosign_check(&party_a(), &redeem, vec![real, moved])
        .await
        .unwrap()
        .unwrap();
}

/// A chain of 100 payments is verified once: sent whole the first time, then each new payment
/// needs only itself.
#[tokio::test]
async fn a_long_backchain_is_verified_once_and_cached() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let owner = KeyPair::generate();
    let mut chain = vec![f.issuance(&f.keys[1], owner.public(), 100)];
    for _ in 0..100 {
        let next = f.moved(chain.last().unwrap(), &owner, owner.public());
        chain.push(next);
    }
    let pay = f.payment(chain.last().unwrap(), &owner, 10, Some(f.keys[3].public()));
    // Shuffled order is fine: the receiver orders the graph itself.
    let mut sent = chain.clone();
    sent.reverse();
    validator
        .cosign_check(&party_a(), &pay, sent)
        .await
        .unwrap()
        .unwrap();
    let more = f.moved(chain.last().unwrap(), &owner, owner.public());
    let pay2 = f.payment(&more, &owner, 10, Some(f.keys[3].public()));
    validator
        .cosign_check(&party_a(), &pay2, vec![more])
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_regular_node_cosigns_only_redemptions_of_its_own_coins() {
    let f = Fixture::new();
    let party_a = f.open(2, NodeRole::Regular).await;
    let owner = KeyPair::generate();
    let issue = f.issuance(&f.keys[1], owner.public(), 100);
    let pay = f.payment(&issue, &owner, 60, Some(f.keys[2].public()));
    let err = refused(&party_a, &pay, vec![issue]).await;
    assert!(err.contains("only co-signs redemptions"), "{err}");
    assert!(party_a.validations().await.unwrap().is_empty());
}
