//! A host-state chain for tests of the ledger's IBC host and its light client: a genesis, then
//! host transactions applying store updates, each signed by the operators and the notary and
//! checked by the host contract before it joins the chain.

use kh_ibc_host_chain::*;
use kh_ledger::{
    Command, ContractRegistry, KeyPair, LedgerTransaction, Party, SecureHash, SignedTransaction,
    StateRef, TimeWindow, TransactionSignature, TransactionState, WireTransaction,
};

/// A host with its operators, its store and its transactions.
#[derive(Debug)]
pub struct Host {
    /// The notary.
    pub notary: Party,
    /// The notary's key.
    pub notary_key: KeyPair,
    /// The host operators' keys.
    pub operators: Vec<KeyPair>,
    /// The IBC store, following the chain.
    pub store: HostStore,
    /// Host transactions by height.
    pub chain: Vec<SignedTransaction>,
}

/// The genesis timestamp (Unix ms).
pub const T0: u64 = 1_800_000_000_000;

impl Host {
    /// A host with `operators` operators and its genesis.
    pub fn new(operators: usize) -> Self {
        let notary_key = KeyPair::generate();
        let notary = Party {
            name: "O=Notary, L=Tokyo, C=JP".parse().unwrap(),
            owning_key: notary_key.public(),
        };
        let mut host = Self {
            notary,
            notary_key,
            operators: (0..operators).map(|_| KeyPair::generate()).collect(),
            store: HostStore::new(),
            chain: vec![],
        };
        let genesis = host.tx(None, HostCommand::Genesis, 0, empty_root(), T0);
        host.check(&genesis).unwrap();
        host.chain.push(genesis);
        host
    }

    /// What a light client of this host trusts.
    pub fn trust(&self) -> HostTrust {
        HostTrust {
            notary: self.notary.owning_key,
            operators: self.operators.iter().map(KeyPair::public).collect(),
        }
    }

    /// A host state output.
    pub fn state(&self, height: u64, root: [u8; 32], timestamp_ms: u64) -> TransactionState {
        let operators: Vec<_> = self.operators.iter().map(KeyPair::public).collect();
        TransactionState {
            contract: host_contract_id(),
            notary: self.notary.clone(),
            participants: operators.clone(),
            data: bcs::to_bytes(&HostState {
                height,
                store_root: root,
                timestamp_ms,
                operators,
            })
            .unwrap(),
        }
    }

    /// A host transaction consuming `prev`'s host output, signed by the operators and the
    /// notary.
    pub fn tx(
        &self,
        prev: Option<&SignedTransaction>,
        command: HostCommand,
        height: u64,
        root: [u8; 32],
        timestamp_ms: u64,
    ) -> SignedTransaction {
        let tx = WireTransaction {
            inputs: prev
                .map(|p| {
                    vec![StateRef {
                        tx_id: p.id(),
                        index: 0,
                    }]
                })
                .unwrap_or_default(),
            references: vec![],
            outputs: vec![self.state(height, root, timestamp_ms)],
            commands: vec![Command {
                contract: host_contract_id(),
                data: bcs::to_bytes(&command).unwrap(),
                signers: self.operators.iter().map(KeyPair::public).collect(),
            }],
            notary: Some(self.notary.clone()),
            time_window: Some(TimeWindow {
                from_ms: Some(timestamp_ms - 10_000),
                until_ms: Some(timestamp_ms + 10_000),
            }),
            privacy_salt: [height as u8; 32],
        };
        let id = tx.id();
        SignedTransaction {
            tx,
            sigs: self.sign_all(&id),
        }
    }

    /// Every operator's and the notary's signature over `id`.
    pub fn sign_all(&self, id: &SecureHash) -> Vec<TransactionSignature> {
        let mut sigs: Vec<TransactionSignature> = self
            .operators
            .iter()
            .map(|k| TransactionSignature::sign(k, id))
            .collect();
        sigs.push(TransactionSignature::sign(&self.notary_key, id));
        sigs
    }

    /// Runs the host contract on `stx` with its input resolved from the chain.
    pub fn check(&self, stx: &SignedTransaction) -> Result<(), String> {
        let mut registry = ContractRegistry::default();
        registry.install(std::sync::Arc::new(HostContract));
        let ltx = LedgerTransaction::resolve(stx, |r| {
            self.chain
                .iter()
                .find(|t| t.id() == r.tx_id)
                .and_then(|t| t.tx.outputs.get(r.index as usize).cloned())
        })
        .map_err(|e| e.to_string())?;
        registry.verify(&ltx).map_err(|e| e.to_string())
    }

    /// Applies `updates` as the next host transaction.
    pub fn apply(&mut self, updates: Vec<Update>) -> SignedTransaction {
        let height = self.chain.len() as u64;
        let prepared = self.store.prepare(height, updates).unwrap();
        let stx = self.tx(
            self.chain.last(),
            HostCommand::Apply {
                updates: prepared.updates.clone(),
                proof: prepared.proof.clone(),
            },
            height,
            prepared.root,
            T0 + height * 1_000,
        );
        self.check(&stx).unwrap();
        self.store.apply(&prepared).unwrap();
        self.chain.push(stx.clone());
        stx
    }
}

/// A store update writing `v` at `k`.
pub fn kv(k: &str, v: &str) -> Update {
    (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
}
