//! Backchain resolution (what Corda's ResolveTransactionsFlow does): whoever receives a
//! transaction to co-sign, to record or (validating notary) to notarise also receives the
//! ancestors it does not hold yet, and verifies the whole dependency graph down to issuance —
//! every ancestor completely signed (the network's notary included when it consumed,
//! referenced or had a time window), its contracts and the apps' rules run on its resolved
//! inputs — before it trusts the transaction.
//!
//! Verified ancestors are cached (`verified_transactions`), so a long chain is verified once;
//! a sender remembers which transactions each peer is known to hold verified
//! (`peer_transactions`: the peer sent them, co-signed a transaction spending them, or
//! confirmed recording them) and sends only the rest of the graph. Transfers are bounded in
//! count, bytes and depth.
//!
//! Privacy (as in Corda): a recipient learns the ancestors of the states it receives — earlier
//! owners, amounts and transactions of those states — and nothing else: only transactions
//! reachable from the inputs and references are ever sent.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use sqlx::Row;

use crate::TxId;
use crate::contract::{ContractError, LedgerTransaction};
use crate::identity::PartyName;
use crate::store::{StoreError, WriteTx, db};
use crate::tx::{SignedTransaction, TransactionState};
use crate::util::now_ms;

use super::Inner;

pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS verified_transactions (
        tx_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        verified_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS peer_transactions (
        peer TEXT NOT NULL,
        tx_id TEXT NOT NULL,
        PRIMARY KEY (peer, tx_id))",
];

/// Most ancestors sent (or accepted) with one transaction.
pub const MAX_BACKCHAIN_TRANSACTIONS: usize = 10_000;
/// Most bytes of ancestors sent (or accepted) with one transaction; with the transaction itself
/// this stays under the node link's 64 MiB message limit.
pub const MAX_BACKCHAIN_BYTES: usize = 48 * 1024 * 1024;
/// Longest dependency path walked through unverified ancestors.
pub const MAX_BACKCHAIN_DEPTH: usize = 5_000;

/// The ids of the transactions that produced `stx`'s inputs and references.
pub(super) fn dependencies(stx: &SignedTransaction) -> BTreeSet<TxId> {
    stx.tx
        .inputs
        .iter()
        .chain(&stx.tx.references)
        .map(|r| r.tx_id)
        .collect()
}

/// A transaction resolved against its backchain.
pub(super) struct Resolved {
    /// The transaction with its inputs and references resolved.
    pub ltx: LedgerTransaction,
    /// Ancestors verified for the first time (to cache).
    pub fresh: Vec<SignedTransaction>,
}

impl Inner {
    /// A transaction this node holds verified: recorded in its vault (live or archived) or
    /// cached from an earlier backchain.
    pub(super) async fn verified_transaction(
        &self,
        id: &TxId,
    ) -> Result<Option<SignedTransaction>, StoreError> {
        if let Some(stx) = self.hub.vault.transaction(id).await? {
            return Ok(Some(stx));
        }
        let row = sqlx::query("SELECT body FROM verified_transactions WHERE tx_id = $1")
            .bind(id.to_string())
            .fetch_optional(self.hub.store.pool())
            .await
            .map_err(db("reading verified transactions"))?;
        let Some(row) = row else { return Ok(None) };
        let body: String = row
            .try_get(0)
            .map_err(db("reading verified transactions"))?;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "verified_transactions",
            reason,
        };
        let bytes = hex::decode(body).map_err(|e| corrupt(e.to_string()))?;
        SignedTransaction::from_bytes(&bytes, usize::MAX)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    async fn peer_holds(&self, peer: &PartyName, id: &TxId) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM peer_transactions WHERE peer = $1 AND tx_id = $2")
                .bind(peer.to_string())
                .bind(id.to_string())
                .fetch_optional(self.hub.store.pool())
                .await
                .map_err(db("reading peer_transactions"))?
                .is_some(),
        )
    }

    /// The ancestors of `stx` that `peer` is not known to hold, dependencies before the
    /// transactions that spend them. `Err` (with the reason) when an ancestor is not in this
    /// node's store or the backchain exceeds the limits.
    pub(super) async fn backchain_for(
        &self,
        peer: &PartyName,
        stx: &SignedTransaction,
    ) -> Result<Result<Vec<SignedTransaction>, String>, StoreError> {
        let mut queue: VecDeque<(TxId, usize)> =
            dependencies(stx).into_iter().map(|id| (id, 1)).collect();
        let mut seen: HashSet<TxId> = queue.iter().map(|(id, _)| *id).collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while let Some((id, depth)) = queue.pop_front() {
            if self.peer_holds(peer, &id).await? {
                continue;
            }
            let Some(dep) = self.verified_transaction(&id).await? else {
                return Ok(Err(format!(
                    "transaction {id}, an ancestor of {}, is not in this node's store",
                    stx.id()
                )));
            };
            bytes += dep.to_bytes().len();
            if out.len() >= MAX_BACKCHAIN_TRANSACTIONS
                || bytes > MAX_BACKCHAIN_BYTES
                || depth > MAX_BACKCHAIN_DEPTH
            {
                return Ok(Err(limit_reason(
                    &stx.id(),
                    out.len() + 1,
                    bytes,
                    depth,
                    peer,
                )));
            }
            for next in dependencies(&dep) {
                if seen.insert(next) {
                    queue.push_back((next, depth + 1));
                }
            }
            out.push(dep);
        }
        // Breadth-first from the transaction: reversed, every dependency precedes its spender.
        out.reverse();
        Ok(Ok(out))
    }

    /// Resolves `stx` against this node's verified transactions and the ancestors `from` sent,
    /// verifying every ancestor this node did not hold: complete signatures, the network's
    /// notary, the contracts and the apps' rules, down to transactions it already trusts or to
    /// issuance. Then checks `stx`'s own contracts and rules (not its signatures: the caller
    /// knows which may still be missing). `Ok(Err(reason))` refuses.
    pub(super) async fn resolve(
        &self,
        from: &PartyName,
        stx: &SignedTransaction,
        provided: Vec<SignedTransaction>,
    ) -> Result<Result<Resolved, String>, StoreError> {
        if provided.len() > MAX_BACKCHAIN_TRANSACTIONS {
            return Ok(Err(format!(
                "{from} sent {} ancestors, over the limit of {MAX_BACKCHAIN_TRANSACTIONS}",
                provided.len()
            )));
        }
        let bytes: usize = provided.iter().map(|t| t.to_bytes().len()).sum();
        if bytes > MAX_BACKCHAIN_BYTES {
            return Ok(Err(format!(
                "{from} sent {bytes} bytes of ancestors, over the limit of {MAX_BACKCHAIN_BYTES}"
            )));
        }
        let mut sent: HashMap<TxId, SignedTransaction> =
            provided.into_iter().map(|t| (t.id(), t)).collect();
        // Walk the graph: transactions this node trusts end the walk, the others must have
        // been sent and are verified below.
        let mut trusted: HashMap<TxId, SignedTransaction> = HashMap::new();
        let mut unverified: HashMap<TxId, SignedTransaction> = HashMap::new();
        let mut queue: VecDeque<(TxId, usize)> =
            dependencies(stx).into_iter().map(|id| (id, 1)).collect();
        let mut seen: HashSet<TxId> = queue.iter().map(|(id, _)| *id).collect();
        while let Some((id, depth)) = queue.pop_front() {
            if let Some(known) = self.verified_transaction(&id).await? {
                trusted.insert(id, known);
                continue;
            }
            let Some(dep) = sent.remove(&id) else {
                return Ok(Err(format!(
                    "ancestor {id} of {} is missing: {from} did not send it and this node does not hold it",
                    stx.id()
                )));
            };
            if depth > MAX_BACKCHAIN_DEPTH {
                return Ok(Err(format!(
                    "the backchain of {} is deeper than {MAX_BACKCHAIN_DEPTH} unverified transactions",
                    stx.id()
                )));
            }
            for next in dependencies(&dep) {
                if seen.insert(next) {
                    queue.push_back((next, depth + 1));
                }
            }
            unverified.insert(id, dep);
        }
        // Verify dependencies first (post-order over the unverified part of the graph).
        let order = topological(&unverified);
        let max = self.hub.network.max_transaction_size;
        let mut fresh = Vec::with_capacity(order.len());
        for id in order {
            let Some(dep) = unverified.get(&id) else {
                continue;
            };
            let checked = dep
                .verify(max, &[])
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    self.check_resolved(dep, |r| {
                        trusted
                            .get(&r.tx_id)
                            .and_then(|t| t.tx.outputs.get(r.index as usize).cloned())
                    })
                });
            if let Err(reason) = checked {
                return Ok(Err(format!("ancestor {id} does not verify: {reason}")));
            }
            trusted.insert(id, dep.clone());
            fresh.push(dep.clone());
        }
        let ltx = self.check_resolved(stx, |r| {
            trusted
                .get(&r.tx_id)
                .and_then(|t| t.tx.outputs.get(r.index as usize).cloned())
        });
        Ok(ltx.map(|ltx| Resolved { ltx, fresh }))
    }

    /// The platform's rules, the contracts and the apps' rules on `stx` with its inputs and
    /// references resolved by `lookup`.
    pub(super) fn check_resolved(
        &self,
        stx: &SignedTransaction,
        lookup: impl FnMut(&crate::tx::StateRef) -> Option<TransactionState>,
    ) -> Result<LedgerTransaction, String> {
        let ltx = LedgerTransaction::resolve(stx, lookup).map_err(|e| e.to_string())?;
        platform_rules(&self.hub.network, stx, &ltx)?;
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

    /// Caches newly verified ancestors, and remembers that `peer` holds `held` verified.
    pub(super) async fn remember(
        &self,
        t: &mut WriteTx,
        fresh: &[SignedTransaction],
        peer: Option<&PartyName>,
        held: impl IntoIterator<Item = TxId>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for dep in fresh {
            sqlx::query(
                "INSERT INTO verified_transactions (tx_id, body, verified_ms) VALUES ($1, $2, $3) ON CONFLICT (tx_id) DO NOTHING",
            )
            .bind(dep.id().to_string())
            .bind(hex::encode(dep.to_bytes()))
            .bind(now)
            .execute(&mut **t)
            .await
            .map_err(db("caching verified transactions"))?;
        }
        if let Some(peer) = peer {
            for id in held {
                sqlx::query(
                    "INSERT INTO peer_transactions (peer, tx_id) VALUES ($1, $2) ON CONFLICT (peer, tx_id) DO NOTHING",
                )
                .bind(peer.to_string())
                .bind(id.to_string())
                .execute(&mut **t)
                .await
                .map_err(db("remembering what a peer holds"))?;
            }
        }
        Ok(())
    }

    /// [`Inner::remember`] in a write transaction of its own.
    pub(super) async fn remember_now(
        &self,
        fresh: &[SignedTransaction],
        peer: Option<&PartyName>,
        held: impl IntoIterator<Item = TxId>,
    ) -> Result<(), StoreError> {
        let mut t = self.hub.store.begin_write().await?;
        self.remember(&mut t, fresh, peer, held).await?;
        t.commit()
            .await
            .map_err(db("caching verified transactions"))
    }
}

fn limit_reason(tx: &TxId, count: usize, bytes: usize, depth: usize, peer: &PartyName) -> String {
    format!(
        "the backchain of {tx} for {peer} exceeds the limits ({count} transactions of at most \
         {MAX_BACKCHAIN_TRANSACTIONS}, {bytes} bytes of at most {MAX_BACKCHAIN_BYTES}, depth \
         {depth} of at most {MAX_BACKCHAIN_DEPTH})"
    )
}

/// The ids of `txs` ordered so that each comes after those of `txs` it depends on.
fn topological(txs: &HashMap<TxId, SignedTransaction>) -> Vec<TxId> {
    let mut order = Vec::with_capacity(txs.len());
    let mut done: HashSet<TxId> = HashSet::with_capacity(txs.len());
    let mut roots: Vec<&TxId> = txs.keys().collect();
    roots.sort();
    for root in roots {
        if done.contains(root) {
            continue;
        }
        // Iterative post-order: (id, dependencies expanded?).
        let mut stack = vec![(*root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if done.contains(&id) {
                continue;
            }
            if expanded {
                done.insert(id);
                order.push(id);
                continue;
            }
            stack.push((id, true));
            if let Some(tx) = txs.get(&id) {
                for dep in dependencies(tx) {
                    if txs.contains_key(&dep) && !done.contains(&dep) {
                        stack.push((dep, false));
                    }
                }
            }
        }
    }
    order
}

/// Rules every transaction of the network obeys, whatever its apps: a transaction that
/// consumes, references or has a time window names the network's notary; its inputs and
/// references are states of that notary; its outputs name it; and every participant of every
/// consumed state signs (so that nobody consumes — burns — a state they could not spend; the
/// non-validating notary checks the same from the revealed inputs).
pub(crate) fn platform_rules(
    network: &super::NetworkParameters,
    stx: &SignedTransaction,
    ltx: &LedgerTransaction,
) -> Result<(), String> {
    let notary = &network.notary;
    let needs_notary =
        !stx.tx.inputs.is_empty() || !stx.tx.references.is_empty() || stx.tx.time_window.is_some();
    if needs_notary && stx.tx.notary.as_ref() != Some(notary) {
        return Err(format!(
            "the transaction does not name the network's notary {}",
            notary.name
        ));
    }
    for s in ltx.inputs.iter().chain(&ltx.references) {
        if &s.state.notary != notary {
            return Err(format!(
                "state {} belongs to notary {}, not the network's",
                s.reference, s.state.notary.name
            ));
        }
    }
    if let Some(o) = ltx.outputs.iter().find(|o| &o.notary != notary) {
        return Err(format!(
            "an output names notary {}, not the network's",
            o.notary.name
        ));
    }
    for s in &ltx.inputs {
        if let Some(p) = s
            .state
            .participants
            .iter()
            .find(|p| !ltx.signers.contains(p))
        {
            return Err(format!(
                "participant {p} of consumed state {} does not sign the transaction",
                s.reference
            ));
        }
    }
    Ok(())
}
