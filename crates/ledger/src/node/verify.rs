//! What a node checks before it co-signs a transaction: the signatures, its backchain (see
//! `backchain`), the contracts and the apps' rules, then the co-signing rule of its role.

use std::collections::BTreeSet;

use crate::contract::LedgerTransaction;
use crate::identity::{PartyName, PublicKey};
use crate::notary::NotarisationRequest;
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

    /// Decides whether this node co-signs `stx`. Either way the transaction must be signed by
    /// everyone but this node and the notary, its inputs must come from completely signed
    /// transactions in `backchain`, and its contracts and apps' rules must hold. A Validator
    /// then co-signs any such transaction that names it as a signer; any other node co-signs
    /// only when the app of every command agrees.
    pub(super) async fn cosign(
        &self,
        from: &PartyName,
        stx: &SignedTransaction,
        backchain: Vec<SignedTransaction>,
    ) -> Result<Result<TransactionSignature, String>, StoreError> {
        let me = self.hub.key.public();
        if !stx.tx.required_signers().contains(&me) {
            return Ok(Err("this node is not a required signer".into()));
        }
        if let Err(e) = stx.verify(
            self.hub.network.max_transaction_size,
            &[me, self.hub.network.notary.owning_key],
        ) {
            return Ok(Err(e.to_string()));
        }
        let resolved = match self.resolve(from, stx, backchain).await? {
            Ok(r) => r,
            Err(reason) => return Ok(Err(reason)),
        };
        // The ancestors verified; cache them whatever the decision, and note that `from`
        // holds them (it sent them from its verified store).
        let sent: Vec<_> = resolved.fresh.iter().map(SignedTransaction::id).collect();
        self.remember_now(&resolved.fresh, Some(from), sent).await?;
        Ok(self.cosign_decision(stx, &resolved.ltx))
    }

    fn cosign_decision(
        &self,
        stx: &SignedTransaction,
        ltx: &LedgerTransaction,
    ) -> Result<TransactionSignature, String> {
        if self.hub.role != NodeRole::Validator {
            let mut asked = BTreeSet::new();
            for c in &stx.tx.commands {
                let app = self
                    .apps
                    .for_contract(&c.contract)
                    .ok_or_else(|| format!("no app for contract {}", c.contract))?;
                if asked.insert(app.name().to_string()) {
                    app.cosign(&self.hub, ltx)?;
                }
            }
            if asked.is_empty() {
                return Err("a transaction without commands is not co-signed".into());
            }
        }
        Ok(TransactionSignature::sign(&self.hub.key, &stx.id()))
    }
}

impl Inner {
    /// The non-validating notarisation request for `stx`, revealing each input to the notary
    /// through the transaction that produced it.
    pub(super) async fn non_validating_request(
        &self,
        stx: &SignedTransaction,
    ) -> Result<Result<NotarisationRequest, String>, StoreError> {
        let mut producers = std::collections::HashMap::new();
        for id in stx.tx.inputs.iter().map(|r| r.tx_id) {
            if let std::collections::hash_map::Entry::Vacant(e) = producers.entry(id)
                && let Some(p) = self.verified_transaction(&id).await?
            {
                e.insert(p);
            }
        }
        Ok(
            NotarisationRequest::non_validating(stx, |id| producers.get(id).cloned()).map_err(
                |r| {
                    format!(
                        "input {r}: the transaction that produced it is not in this node's store"
                    )
                },
            ),
        )
    }

    /// The notary service's answer to `from`: a validating notary first resolves and verifies
    /// the transaction's whole backchain as any recipient does, then resolves the inputs from
    /// it; a non-validating notary checks what the filtered transaction reveals.
    pub(super) async fn notarise_for(
        &self,
        from: &PartyName,
        request: NotarisationRequest,
    ) -> Result<Result<TransactionSignature, String>, StoreError> {
        let Some(notary) = &self.notary else {
            return Ok(Err("this node is not a notary".into()));
        };
        let request = match request {
            NotarisationRequest::Validating { tx, backchain } => {
                let resolved = match self.resolve(from, &tx, backchain).await? {
                    Ok(r) => r,
                    Err(reason) => return Ok(Err(reason)),
                };
                let held: Vec<_> = resolved.fresh.iter().map(SignedTransaction::id).collect();
                self.remember_now(&resolved.fresh, Some(from), held).await?;
                let mut producers = Vec::new();
                for id in super::backchain::dependencies(&tx) {
                    if let Some(p) = self.verified_transaction(&id).await? {
                        producers.push(p);
                    }
                }
                NotarisationRequest::Validating {
                    tx,
                    backchain: producers,
                }
            }
            other => other,
        };
        match notary.notarise(from, request).await {
            Ok(sig) => Ok(Ok(sig)),
            Err(crate::notary::NotaryError::Store(e)) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}
