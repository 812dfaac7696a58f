//! The notary: orders the consumption of states (uniqueness), checks time windows, and signs
//! transaction ids. Commits are persisted; requests are group-committed by one writer task so
//! that many notarisations share one database transaction.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info_span, warn};

use crate::TxId;
use crate::contract::{ContractError, ContractRegistry, LedgerTransaction};
use crate::identity::{KeyPair, Party, PartyName, PublicKey};
use crate::store::{Store, StoreError, db};
use crate::tx::{
    Command, ComponentGroup, FilterError, FilteredTransaction, SignedTransaction, StateRef,
    TimeWindow, TransactionError, TransactionSignature, TransactionState,
};

/// A state consumed by another transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The state.
    pub state: StateRef,
    /// The transaction that consumed it.
    pub consumed_by: TxId,
}

/// Why the notary refused.
#[derive(Debug, thiserror::Error)]
pub enum NotaryError {
    /// Inputs (or references) were already consumed by other transactions.
    #[error("double spend in transaction {tx}: {}", conflicts.iter().map(|c| format!("{} consumed by {}", c.state, c.consumed_by)).collect::<Vec<_>>().join(", "))]
    DoubleSpend {
        /// The refused transaction.
        tx: TxId,
        /// Each conflicting state and its consumer.
        conflicts: Vec<Conflict>,
    },
    /// The notary's clock is outside the transaction's time window.
    #[error("transaction {tx} is outside its time window {window:?} (notary time {now_ms} ms)")]
    OutsideTimeWindow {
        /// The transaction.
        tx: TxId,
        /// Its window.
        window: TimeWindow,
        /// Notary time.
        now_ms: u64,
    },
    /// The transaction names another notary.
    #[error("transaction {tx} is not for this notary")]
    WrongNotary {
        /// The transaction.
        tx: TxId,
    },
    /// The filtered transaction does not prove its components.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The transaction is malformed or badly signed.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// Contract verification failed (validating mode).
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The request is not well formed (e.g. two notary components, an input not revealed).
    #[error("malformed notarisation request for {tx}: {reason}")]
    Malformed {
        /// The transaction.
        tx: TxId,
        /// What is wrong.
        reason: String,
    },
    /// A participant of a consumed state did not sign: nobody consumes a state they could not
    /// spend.
    #[error(
        "transaction {tx} consumes {state} without the signature of its participant {participant}"
    )]
    NotSpendable {
        /// The transaction.
        tx: TxId,
        /// The state.
        state: StateRef,
        /// The participant whose signature is missing.
        participant: PublicKey,
    },
    /// This notary does not validate; send a filtered transaction.
    #[error("this notary is {0}")]
    WrongMode(&'static str),
    /// Storage failed; nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The group commit this request was part of failed; nothing of it was committed.
    #[error("notarisation of {tx} not committed: {reason}")]
    CommitFailed {
        /// The transaction.
        tx: TxId,
        /// The storage failure, with its causes.
        reason: String,
    },
    /// The notary is shutting down.
    #[error("notary is stopped")]
    Stopped,
}

/// What a client sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NotarisationRequest {
    /// Non-validating: the notary sees the inputs, references, notary, time window and
    /// commands (with their signers) of the transaction, the signatures collected so far, and
    /// for each input the producing transaction filtered to that one output — enough to check
    /// that everyone who must sign to consume the inputs did, and nothing of the outputs.
    NonValidating {
        /// The transaction, filtered as [`WireTransaction::notary_view`] does.
        tx: FilteredTransaction,
        /// Its signatures (everyone's but the notary's).
        sigs: Vec<TransactionSignature>,
        /// For each transaction that produced an input: that transaction revealing only the
        /// consumed outputs.
        input_states: Vec<FilteredTransaction>,
    },
    /// Validating: the whole transaction and its backchain, from which the notary resolves
    /// the input and reference states itself.
    Validating {
        /// The transaction, signed by everyone but the notary.
        tx: Box<SignedTransaction>,
        /// The ancestors the notary is not known to hold (at least the transactions that
        /// produced the inputs and references, unless it holds them).
        backchain: Vec<SignedTransaction>,
    },
}

impl NotarisationRequest {
    /// The non-validating request for `stx`, whose inputs were produced by transactions that
    /// `producer` returns (`Err` names an input whose producer it does not have).
    pub fn non_validating(
        stx: &SignedTransaction,
        mut producer: impl FnMut(&TxId) -> Option<SignedTransaction>,
    ) -> Result<Self, StateRef> {
        let mut by_tx: std::collections::BTreeMap<TxId, std::collections::BTreeSet<u32>> =
            std::collections::BTreeMap::new();
        for r in &stx.tx.inputs {
            by_tx.entry(r.tx_id).or_default().insert(r.index);
        }
        let mut input_states = Vec::with_capacity(by_tx.len());
        for (id, indices) in by_tx {
            let Some(p) = producer(&id) else {
                let index = indices.first().copied().unwrap_or(0);
                return Err(StateRef { tx_id: id, index });
            };
            input_states
                .push(p.tx.filter(|g, i| g == ComponentGroup::Outputs && indices.contains(&i)));
        }
        Ok(Self::NonValidating {
            tx: stx.tx.notary_view(),
            sigs: stx.sigs.clone(),
            input_states,
        })
    }
}

/// Notary settings.
#[derive(Debug, Clone)]
pub struct NotaryConfig {
    /// Largest transaction accepted (validating mode).
    pub max_transaction_size: usize,
    /// Most requests committed in one database transaction.
    pub batch: usize,
}

impl Default for NotaryConfig {
    fn default() -> Self {
        Self {
            max_transaction_size: crate::tx::DEFAULT_MAX_TRANSACTION_SIZE,
            batch: 512,
        }
    }
}

struct Job {
    tx: TxId,
    requester: PartyName,
    inputs: Vec<StateRef>,
    references: Vec<StateRef>,
    reply: oneshot::Sender<Result<(), NotaryError>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

/// A running notary service.
#[derive(Debug, Clone)]
pub struct Notary {
    identity: Party,
    key: KeyPair,
    registry: Option<ContractRegistry>,
    config: NotaryConfig,
    jobs: mpsc::Sender<Job>,
}

fn now_ms() -> u64 {
    u64::try_from(crate::util::now_ms()).unwrap_or(0)
}

impl Notary {
    /// Starts a notary on `store`; validating when `registry` is given.
    pub fn start(
        identity: Party,
        key: KeyPair,
        store: Store,
        registry: Option<ContractRegistry>,
        config: NotaryConfig,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(config.batch * 4);
        let span = info_span!("ledger.notary", notary = %identity.name);
        tokio::spawn(commit_loop(store, rx, config.batch).instrument(span));
        Self {
            identity,
            key,
            registry,
            config,
            jobs,
        }
    }

    /// The notary's identity.
    pub fn identity(&self) -> &Party {
        &self.identity
    }

    /// Checks the request from `requester` (a network member, authenticated by the node link),
    /// commits its inputs as consumed, and signs the transaction id. Every input must be
    /// spendable by the transaction's signers: each participant of each consumed state signed.
    pub async fn notarise(
        &self,
        requester: &PartyName,
        request: NotarisationRequest,
    ) -> Result<TransactionSignature, NotaryError> {
        let (tx, inputs, references, window, notary) = match request {
            NotarisationRequest::NonValidating {
                tx: ftx,
                sigs,
                input_states,
            } => {
                if self.registry.is_some() {
                    return Err(NotaryError::WrongMode(
                        "validating: send the whole transaction",
                    ));
                }
                ftx.verify()?;
                let inputs: Vec<StateRef> = ftx.whole_group(ComponentGroup::Inputs)?;
                let references: Vec<StateRef> = ftx.whole_group(ComponentGroup::References)?;
                let notary: Vec<Party> = ftx.whole_group(ComponentGroup::Notary)?;
                let window: Vec<TimeWindow> = ftx.whole_group(ComponentGroup::TimeWindow)?;
                let commands: Vec<Command> = ftx.whole_group(ComponentGroup::Commands)?;
                if notary.len() != 1 || window.len() > 1 {
                    return Err(NotaryError::Malformed {
                        tx: ftx.id,
                        reason: format!(
                            "{} notary components and {} time windows (one notary, at most one window)",
                            notary.len(),
                            window.len()
                        ),
                    });
                }
                distinct(ftx.id, &inputs, &references)?;
                let signed = signatures(ftx.id, &sigs)?;
                let required: BTreeSet<PublicKey> = commands
                    .iter()
                    .flat_map(|c| c.signers.iter().copied())
                    .filter(|k| *k != self.identity.owning_key)
                    .collect();
                let missing: Vec<PublicKey> = required.difference(&signed).copied().collect();
                if !missing.is_empty() {
                    return Err(TransactionError::MissingSignatures {
                        tx: ftx.id,
                        missing,
                    }
                    .into());
                }
                let mut states: HashMap<StateRef, TransactionState> = HashMap::new();
                for p in &input_states {
                    p.verify()?;
                    if let Some(g) = p.groups.iter().find(|g| g.group == ComponentGroup::Outputs) {
                        for c in &g.components {
                            let state: TransactionState =
                                bcs::from_bytes(&c.bytes).map_err(|e| FilterError::Decode {
                                    group: ComponentGroup::Outputs,
                                    reason: e.to_string(),
                                })?;
                            states.insert(
                                StateRef {
                                    tx_id: p.id,
                                    index: c.index,
                                },
                                state,
                            );
                        }
                    }
                }
                for r in &inputs {
                    let state = states.get(r).ok_or(NotaryError::Malformed {
                        tx: ftx.id,
                        reason: format!("input {r} is not revealed with its producing transaction"),
                    })?;
                    self.check_consumable(ftx.id, r, state, &signed)?;
                }
                (
                    ftx.id,
                    inputs,
                    references,
                    window.into_iter().next(),
                    notary.into_iter().next(),
                )
            }
            NotarisationRequest::Validating { tx: stx, backchain } => {
                let Some(registry) = &self.registry else {
                    return Err(NotaryError::WrongMode(
                        "non-validating: send a filtered transaction",
                    ));
                };
                stx.verify(
                    self.config.max_transaction_size,
                    &[self.identity.owning_key],
                )?;
                let id = stx.id();
                // The states come from the transactions that produced them, each bound to its
                // id and completely signed, never from what the requester claims they are.
                let mut producers: HashMap<TxId, SignedTransaction> = HashMap::new();
                for p in backchain {
                    producers.insert(p.id(), p);
                }
                for r in stx.tx.inputs.iter().chain(&stx.tx.references) {
                    if let Some(p) = producers.get(&r.tx_id) {
                        p.verify(self.config.max_transaction_size, &[])?;
                    }
                }
                let ltx = LedgerTransaction::resolve(&stx, |r| {
                    producers
                        .get(&r.tx_id)
                        .and_then(|p| p.tx.outputs.get(r.index as usize).cloned())
                })?;
                registry.verify(&ltx)?;
                let signed: BTreeSet<PublicKey> = stx.sigs.iter().map(|s| s.by).collect();
                for s in &ltx.inputs {
                    self.check_consumable(id, &s.reference, &s.state, &signed)?;
                }
                (
                    id,
                    stx.tx.inputs,
                    stx.tx.references,
                    stx.tx.time_window,
                    stx.tx.notary,
                )
            }
        };
        debug!(tx = %tx, requester = %requester, "notarisation request");
        if notary.as_ref() != Some(&self.identity) {
            return Err(NotaryError::WrongNotary { tx });
        }
        if let Some(window) = window {
            let now = now_ms();
            if !window.contains(now) {
                return Err(NotaryError::OutsideTimeWindow {
                    tx,
                    window,
                    now_ms: now,
                });
            }
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job {
                tx,
                requester: requester.clone(),
                inputs,
                references,
                reply,
            })
            .await
            .map_err(|_| NotaryError::Stopped)?;
        rx.await.map_err(|_| NotaryError::Stopped)??;
        Ok(TransactionSignature {
            by: self.key.public(),
            signature: self.key.sign(&tx.0),
        })
    }
}

impl Notary {
    /// A consumed state must be this notary's, and every participant must have signed.
    fn check_consumable(
        &self,
        tx: TxId,
        r: &StateRef,
        state: &TransactionState,
        signed: &BTreeSet<PublicKey>,
    ) -> Result<(), NotaryError> {
        if state.notary != self.identity {
            return Err(NotaryError::WrongNotary { tx });
        }
        if let Some(p) = state.participants.iter().find(|p| !signed.contains(p)) {
            return Err(NotaryError::NotSpendable {
                tx,
                state: *r,
                participant: *p,
            });
        }
        Ok(())
    }
}

/// Refuses a transaction that names a state twice (among inputs and references).
fn distinct(tx: TxId, inputs: &[StateRef], references: &[StateRef]) -> Result<(), NotaryError> {
    let mut seen = BTreeSet::new();
    for s in inputs.iter().chain(references) {
        if !seen.insert(*s) {
            return Err(TransactionError::DuplicateState { tx, state: *s }.into());
        }
    }
    Ok(())
}

/// The keys whose signatures over `tx` verify; any signature that does not is refused.
fn signatures(tx: TxId, sigs: &[TransactionSignature]) -> Result<BTreeSet<PublicKey>, NotaryError> {
    let mut keys = BTreeSet::new();
    for s in sigs {
        s.verify(&tx)
            .map_err(|_| TransactionError::BadSignature { tx, key: s.by })?;
        keys.insert(s.by);
    }
    Ok(keys)
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<Job>, batch: usize) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        match commit_batch(&store, &jobs).await {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                warn!(error = %err, jobs = jobs.len(), "notary commit failed; nothing committed");
                let mut reason = err.to_string();
                let mut source = std::error::Error::source(&err);
                while let Some(cause) = source {
                    reason = format!("{reason}: {cause}");
                    source = cause.source();
                }
                for job in jobs {
                    let _ = job.reply.send(Err(NotaryError::CommitFailed {
                        tx: job.tx,
                        reason: reason.clone(),
                    }));
                }
            }
        }
    }
}

/// Checks and commits a batch in one database transaction. The commit task is the only writer
/// of `notary_commits`, so read-then-insert is race free; the primary key backs it up.
async fn commit_batch(
    store: &Store,
    jobs: &[Job],
) -> Result<Vec<Result<(), NotaryError>>, StoreError> {
    let mut dbtx = store.begin_write().await?;
    let mut in_batch: HashMap<StateRef, TxId> = HashMap::new();
    let mut results = Vec::with_capacity(jobs.len());
    let now = now_ms() as i64;
    for job in jobs {
        let mut conflicts = Vec::new();
        let mut fresh = Vec::new();
        for (state, consumes) in job
            .inputs
            .iter()
            .map(|s| (s, true))
            .chain(job.references.iter().map(|s| (s, false)))
        {
            let consumer = match in_batch.get(state) {
                Some(t) => Some(*t),
                None => {
                    let row = sqlx::query("SELECT consuming_tx FROM notary_commits WHERE state_tx = $1 AND state_index = $2")
                        .bind(state.tx_id.to_string())
                        .bind(i64::from(state.index))
                        .fetch_optional(&mut *dbtx)
                        .await
                        .map_err(db("reading notary commits"))?;
                    match row {
                        Some(r) => {
                            let text: String =
                                r.try_get(0).map_err(db("reading notary commits"))?;
                            Some(text.parse().map_err(|e: crate::hash::ParseHashError| {
                                StoreError::Corrupt {
                                    table: "notary_commits",
                                    reason: e.to_string(),
                                }
                            })?)
                        }
                        None => None,
                    }
                }
            };
            match consumer {
                Some(t) if t != job.tx => conflicts.push(Conflict {
                    state: *state,
                    consumed_by: t,
                }),
                Some(_) => {} // re-notarisation of the same transaction: idempotent
                None if consumes => fresh.push(*state),
                None => {}
            }
        }
        if !conflicts.is_empty() {
            debug!(tx = %job.tx, conflicts = conflicts.len(), "double spend refused");
            results.push(Err(NotaryError::DoubleSpend {
                tx: job.tx,
                conflicts,
            }));
            continue;
        }
        fresh.sort();
        fresh.dedup();
        for state in fresh {
            sqlx::query("INSERT INTO notary_commits (state_tx, state_index, consuming_tx, committed_ms) VALUES ($1, $2, $3, $4)")
                .bind(state.tx_id.to_string())
                .bind(i64::from(state.index))
                .bind(job.tx.to_string())
                .bind(now)
                .execute(&mut *dbtx)
                .await
                .map_err(db("recording consumed states"))?;
            in_batch.insert(state, job.tx);
        }
        sqlx::query("INSERT INTO notary_requests (consuming_tx, requester, committed_ms) VALUES ($1, $2, $3) ON CONFLICT (consuming_tx) DO NOTHING")
            .bind(job.tx.to_string())
            .bind(job.requester.to_string())
            .bind(now)
            .execute(&mut *dbtx)
            .await
            .map_err(db("recording the requester"))?;
        results.push(Ok(()));
    }
    dbtx.commit()
        .await
        .map_err(db("committing notarisations"))?;
    Ok(results)
}
