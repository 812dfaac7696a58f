//! The notary: orders the consumption of states (uniqueness), checks time windows, and signs
//! transaction ids. Commits are persisted; requests are group-committed by one writer task so
//! that many notarisations share one database transaction.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info_span, warn};

use crate::TxId;
use crate::contract::{ContractError, ContractRegistry, LedgerTransaction, StateAndRef};
use crate::identity::{KeyPair, Party};
use crate::store::{Store, StoreError, db};
use crate::tx::{
    ComponentGroup, FilterError, FilteredTransaction, SignedTransaction, StateRef, TimeWindow,
    TransactionError, TransactionSignature,
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
    /// Non-validating: only inputs, references, notary and time window are revealed.
    NonValidating(FilteredTransaction),
    /// Validating: the whole transaction with its resolved input and reference states.
    Validating {
        /// The transaction, signed by everyone but the notary.
        tx: Box<SignedTransaction>,
        /// Input and reference states (with their refs).
        resolved: Vec<StateAndRef>,
    },
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

    /// Checks the request, commits its inputs as consumed, and signs the transaction id.
    pub async fn notarise(
        &self,
        request: NotarisationRequest,
    ) -> Result<TransactionSignature, NotaryError> {
        let (tx, inputs, references, window, notary) = match request {
            NotarisationRequest::NonValidating(ftx) => {
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
                (
                    ftx.id,
                    inputs,
                    references,
                    window.into_iter().next(),
                    notary.into_iter().next(),
                )
            }
            NotarisationRequest::Validating { tx: stx, resolved } => {
                let Some(registry) = &self.registry else {
                    return Err(NotaryError::WrongMode(
                        "non-validating: send a filtered transaction",
                    ));
                };
                stx.verify(
                    self.config.max_transaction_size,
                    &[self.identity.owning_key],
                )?;
                let by_ref: HashMap<StateRef, _> = resolved
                    .into_iter()
                    .map(|s| (s.reference, s.state))
                    .collect();
                let ltx = LedgerTransaction::resolve(&stx, |r| by_ref.get(r).cloned())?;
                registry.verify(&ltx)?;
                let id = stx.id();
                (
                    id,
                    stx.tx.inputs,
                    stx.tx.references,
                    stx.tx.time_window,
                    stx.tx.notary,
                )
            }
        };
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
        results.push(Ok(()));
    }
    dbtx.commit()
        .await
        .map_err(db("committing notarisations"))?;
    Ok(results)
}
