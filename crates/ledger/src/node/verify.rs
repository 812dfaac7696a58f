//! What a node checks before it co-signs or records a transaction: the signatures, the
//! transactions that produced its inputs (its backchain), the contracts and the apps' rules.

use std::collections::{BTreeSet, HashMap};

use crate::TxId;
use crate::contract::{ContractError, LedgerTransaction};
use crate::identity::PublicKey;
use crate::store::StoreError;
use crate::tx::{SignedTransaction, TransactionSignature};

use super::{Inner, NodeRole};

impl Inner {
    /// The keys whose states this node keeps: its accounts' and its own.
    pub(super) async fn relevant_keys(&self) -> Result<BTreeSet<PublicKey>, StoreError> {
        let mut keys: BTreeSet<PublicKey> = self
            .hub
            .vault
            .accounts()
            .await?
            .into_iter()
            .map(|a| a.public_key)
            .collect();
        keys.insert(self.hub.key.public());
        Ok(keys)
    }

    /// The transactions that produced `stx`'s inputs and references, from this node's store.
    pub(super) async fn backchain(
        &self,
        stx: &SignedTransaction,
    ) -> Result<Result<Vec<SignedTransaction>, String>, StoreError> {
        let ids: BTreeSet<TxId> = stx
            .tx
            .inputs
            .iter()
            .chain(&stx.tx.references)
            .map(|r| r.tx_id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.hub.vault.transaction(&id).await? {
                Some(dep) => out.push(dep),
                None => {
                    return Ok(Err(format!(
                        "transaction {id}, which produced an input, is not in this node's store"
                    )));
                }
            }
        }
        Ok(Ok(out))
    }

    /// Resolves `stx`'s inputs and references from `backchain`, each of whose transactions must
    /// be completely signed (notary included when it consumed states), runs the contracts (a
    /// contract this node does not have is refused by name), and applies the rules of the apps
    /// involved.
    pub(super) fn verify_with_backchain(
        &self,
        stx: &SignedTransaction,
        backchain: &[SignedTransaction],
    ) -> Result<LedgerTransaction, String> {
        let max = self.hub.network.max_transaction_size;
        let mut deps = HashMap::with_capacity(backchain.len());
        for dep in backchain {
            dep.verify(max, &[])
                .map_err(|e| format!("input transaction {}: {e}", dep.id()))?;
            deps.insert(dep.id(), dep);
        }
        let ltx = LedgerTransaction::resolve(stx, |r| {
            deps.get(&r.tx_id)
                .and_then(|dep| dep.tx.outputs.get(r.index as usize).cloned())
        })
        .map_err(|e| e.to_string())?;
        self.apps.registry.verify(&ltx).map_err(|e| match e {
            ContractError::UnknownContract(c) => format!(
                "{} does not run an app with contract {c}; it refuses the transaction",
                self.hub.name.organisation()
            ),
            other => other.to_string(),
        })?;
        let mut contracts: BTreeSet<_> = ltx.outputs.iter().map(|s| s.contract.clone()).collect();
        contracts.extend(ltx.inputs.iter().map(|s| s.state.contract.clone()));
        contracts.extend(ltx.references.iter().map(|s| s.state.contract.clone()));
        contracts.extend(ltx.commands.iter().map(|c| c.contract.clone()));
        let mut checked = BTreeSet::new();
        for c in &contracts {
            if let Some(app) = self.apps.for_contract(c)
                && checked.insert(app.name().to_string())
            {
                app.check(&self.hub.network, &ltx)?;
            }
        }
        Ok(ltx)
    }

    /// Decides whether this node co-signs `stx`. Either way the transaction must be signed by
    /// everyone but this node and the notary, its inputs must come from completely signed
    /// transactions in `backchain`, and its contracts and apps' rules must hold. A Validator
    /// then co-signs any such transaction that names it as a signer; any other node co-signs
    /// only when the app of every command agrees.
    pub(super) fn cosign(
        &self,
        stx: &SignedTransaction,
        backchain: &[SignedTransaction],
    ) -> Result<TransactionSignature, String> {
        let me = self.hub.key.public();
        if !stx.tx.required_signers().contains(&me) {
            return Err("this node is not a required signer".into());
        }
        stx.verify(
            self.hub.network.max_transaction_size,
            &[me, self.hub.network.notary.owning_key],
        )
        .map_err(|e| e.to_string())?;
        let ltx = self.verify_with_backchain(stx, backchain)?;
        if self.hub.role != NodeRole::Validator {
            let mut asked = BTreeSet::new();
            for c in &stx.tx.commands {
                let app = self
                    .apps
                    .for_contract(&c.contract)
                    .ok_or_else(|| format!("no app for contract {}", c.contract))?;
                if asked.insert(app.name().to_string()) {
                    app.cosign(&self.hub, &ltx)?;
                }
            }
            if asked.is_empty() {
                return Err("a transaction without commands is not co-signed".into());
            }
        }
        Ok(TransactionSignature::sign(&self.hub.key, &stx.id()))
    }
}
