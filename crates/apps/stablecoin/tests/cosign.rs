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

#[tokio::test]
async fn a_validator_cosigns_a_payment_whose_backchain_and_contracts_check_out() {
    let f = Fixture::new();
    let validator = f.open(3, NodeRole::Validator).await;
    let owner = KeyPair::generate();
    let issue = f.issuance(&f.keys[1], owner.public(), 100);
    let pay = f.payment(&issue, &owner, 60, Some(f.keys[3].public()));
    let sig = validator
        .cosign_check(&pay, std::slice::from_ref(&issue))
        .unwrap();
    assert_eq!(sig.by, f.keys[3].public());
    sig.verify(&pay.id()).unwrap();

    // Without the transaction that produced the input, it cannot check the input.
    let err = validator.cosign_check(&pay, &[]).unwrap_err();
    assert!(err.contains("unknown"), "{err}");

    // A backchain transaction changed in any byte no longer produces the input.
    let mut forged = issue.clone();
    forged.tx.privacy_salt[0] ^= 1;
    assert!(validator.cosign_check(&pay, &[forged]).is_err());

    // An input transaction missing its signature.
    let mut unsigned = issue.clone();
    unsigned.sigs.clear();
    let err = validator.cosign_check(&pay, &[unsigned]).unwrap_err();
    assert!(err.contains("missing"), "{err}");

    // Coins "issued by the Bank" under a key that is not the Bank's.
    let rogue = KeyPair::generate();
    let fake = f.issuance(&rogue, owner.public(), 100);
    let pay_fake = f.payment(&fake, &owner, 60, Some(f.keys[3].public()));
    let err = validator.cosign_check(&pay_fake, &[fake]).unwrap_err();
    assert!(err.contains("not that node"), "{err}");

    // The payer did not sign.
    let mut no_payer = pay.clone();
    no_payer.sigs.clear();
    let err = validator
        .cosign_check(&no_payer, std::slice::from_ref(&issue))
        .unwrap_err();
    assert!(err.contains("missing"), "{err}");

    // A payment that creates value breaks the contract.
    let mut inflated = pay.clone();
    let mut coin: StablecoinState = inflated.tx.outputs[0].decode().unwrap();
    coin.amount = 90;
    inflated.tx.outputs[0].data = bcs::to_bytes(&coin).unwrap();
    let inflated = SignedTransaction::signed_by(inflated.tx, &owner);
    let err = validator
        .cosign_check(&inflated, std::slice::from_ref(&issue))
        .unwrap_err();
    assert!(err.contains("conserv") || err.contains("amount"), "{err}");

    // A transaction that does not name the Validator.
    let unnamed = f.payment(&issue, &owner, 60, None);
    let err = validator
        .cosign_check(&unnamed, std::slice::from_ref(&issue))
        .unwrap_err();
    assert!(err.contains("not a required signer"), "{err}");
}

#[tokio::test]
async fn a_regular_node_cosigns_only_redemptions_of_its_own_coins() {
    let f = Fixture::new();
    let party_a = f.open(2, NodeRole::Regular).await;
    let owner = KeyPair::generate();
    let issue = f.issuance(&f.keys[1], owner.public(), 100);
    let pay = f.payment(&issue, &owner, 60, Some(f.keys[2].public()));
    let err = party_a.cosign_check(&pay, &[issue]).unwrap_err();
    assert!(err.contains("only co-signs redemptions"), "{err}");
    assert!(party_a.validations().await.unwrap().is_empty());
}
