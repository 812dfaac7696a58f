//! Flow checkpoints: each flow's state in the node database, written in one database
//! transaction with the messages the step sends, the transaction it records and its app's
//! writes. Every write names the version it read, so a step that lost a race (a kill, a
//! timeout, a duplicate delivery) changes nothing.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::TxId;
use crate::app::AppWrite;
use crate::identity::PartyName;
use crate::store::{StoreError, WriteTx, db};
use crate::tx::SignedTransaction;
use crate::util::{from_hex_bcs, now_ms, to_hex_bcs};

use super::Inner;
use super::messages::Message;

pub(super) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS flow_checkpoints (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        deadline_ms BIGINT NOT NULL,
        version BIGINT NOT NULL,
        state TEXT NOT NULL,
        updated_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS flow_checkpoints_running ON flow_checkpoints (status, deadline_ms)",
    "CREATE INDEX IF NOT EXISTS flow_checkpoints_updated ON flow_checkpoints (updated_ms)",
    "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, to_node TEXT NOT NULL, body TEXT NOT NULL, created_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, received_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS inbox_received ON inbox (received_ms)",
    "CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_ms)",
    "CREATE TABLE IF NOT EXISTS validations (tx_id TEXT PRIMARY KEY, requester TEXT NOT NULL, validated_ms BIGINT NOT NULL)",
];

/// Where a flow is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowStatus {
    /// In progress, at `step`.
    Running {
        /// The current step.
        step: String,
    },
    /// Finished: the transaction was finalised.
    Completed {
        /// The finalised transaction.
        tx_id: TxId,
    },
    /// Failed (or killed, or timed out); its soft locks were released.
    Failed {
        /// Why.
        reason: String,
    },
}

impl FlowStatus {
    /// Whether the flow is still running.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running { .. })
    }
}

/// A flow's checkpointed state.
#[allow(clippy::large_enum_variant)] // short-lived: decoded, matched and re-encoded per step
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum FlowState {
    /// The app's flow waits for `party`'s answer on `topic`.
    Asking {
        app_state: Vec<u8>,
        party: PartyName,
        topic: String,
    },
    /// Collecting co-signatures: `remaining[0]` was asked.
    Collecting {
        stx: SignedTransaction,
        remaining: Vec<PartyName>,
        notify: Vec<PartyName>,
    },
    /// Waiting for the notary.
    Notarising {
        stx: SignedTransaction,
        notify: Vec<PartyName>,
    },
    /// The transaction is notarised and recorded; waiting for the recipients in `awaiting`
    /// to confirm they recorded it too.
    Finalising {
        tx_id: TxId,
        awaiting: Vec<PartyName>,
    },
    Completed {
        tx_id: TxId,
    },
    Failed {
        reason: String,
    },
}

impl FlowState {
    pub(super) fn status(&self) -> FlowStatus {
        let running = |step: String| FlowStatus::Running { step };
        match self {
            Self::Asking { party, topic, .. } => {
                running(format!("awaiting {} ({topic})", party.organisation()))
            }
            Self::Collecting { remaining, .. } => running(format!(
                "awaiting the signature of {}",
                remaining
                    .first()
                    .map_or_else(String::new, |p| p.to_string())
            )),
            Self::Notarising { .. } => running("awaiting notary".into()),
            Self::Finalising { awaiting, .. } => running(format!(
                "awaiting confirmation that {} recorded the transaction",
                awaiting
                    .iter()
                    .map(|p| p.organisation().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Self::Completed { tx_id } => FlowStatus::Completed { tx_id: *tx_id },
            Self::Failed { reason } => FlowStatus::Failed {
                reason: reason.clone(),
            },
        }
    }

    fn status_word(&self) -> &'static str {
        match self {
            Self::Completed { .. } => "completed",
            Self::Failed { .. } => "failed",
            // Not "running": the deadline sweep does not apply to it.
            Self::Finalising { .. } => "finalising",
            _ => "running",
        }
    }
}

/// A checkpoint as read.
#[derive(Debug, Clone)]
pub(super) struct Loaded {
    pub(super) name: String,
    pub(super) state: FlowState,
    pub(super) version: i64,
}

/// One step's writes, committed together.
pub(super) struct Step<'a> {
    pub(super) flow: Uuid,
    pub(super) name: &'a str,
    pub(super) state: FlowState,
    /// The version read (`None`: a new flow, created with `deadline_ms`).
    pub(super) expect: Option<i64>,
    pub(super) deadline_ms: i64,
    pub(super) out: Vec<(PartyName, Message)>,
    pub(super) record: Option<&'a SignedTransaction>,
    pub(super) writes: Vec<AppWrite>,
}

impl Inner {
    pub(super) async fn load_flow(&self, flow: Uuid) -> Result<Option<Loaded>, StoreError> {
        let row = sqlx::query("SELECT name, state, version FROM flow_checkpoints WHERE id = $1")
            .bind(flow.to_string())
            .fetch_optional(self.hub.store.pool())
            .await
            .map_err(db("reading a flow"))?;
        row.map(|r| {
            let name: String = r.try_get(0).map_err(db("reading a flow"))?;
            let text: String = r.try_get(1).map_err(db("reading a flow"))?;
            let version: i64 = r.try_get(2).map_err(db("reading a flow"))?;
            Ok(Loaded {
                name,
                state: from_hex_bcs("flow_checkpoints", &text)?,
                version,
            })
        })
        .transpose()
    }

    /// Ids of flows with the given status word last checkpointed before `before_ms`.
    pub(super) async fn flows_with_status(
        &self,
        status: &str,
        before_ms: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows =
            sqlx::query("SELECT id FROM flow_checkpoints WHERE status = $1 AND updated_ms < $2")
                .bind(status.to_string())
                .bind(before_ms)
                .fetch_all(self.hub.store.pool())
                .await
                .map_err(db("reading flows"))?;
        ids(&rows)
    }

    /// Ids of running flows whose deadline passed.
    pub(super) async fn overdue_flows(&self, now: i64) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM flow_checkpoints WHERE status = 'running' AND deadline_ms <= $1 LIMIT 256",
        )
        .bind(now)
        .fetch_all(self.hub.store.pool())
        .await
        .map_err(db("reading overdue flows"))?;
        ids(&rows)
    }

    /// Refuses writes once the node is stopped (a standby owns the database from then on).
    pub(super) fn check_running(&self) -> Result<(), StoreError> {
        if self.is_crashed() {
            return Err(StoreError::Stopped);
        }
        Ok(())
    }

    /// Commits one flow step: the vault record (if any), the app's writes, the checkpoint, the
    /// outgoing messages, the handled inbound message, and — when the flow ends — the release
    /// of its soft locks. Returns false (and writes nothing) when the checkpoint changed since
    /// it was read.
    pub(super) async fn commit_step(&self, step: Step<'_>) -> Result<bool, StoreError> {
        self.check_running()?;
        let keys = match step.record {
            Some(_) => Some(self.relevant_keys().await?),
            None => None,
        };
        let mut t = self.hub.store.begin_write().await?;
        let now = now_ms();
        let flow_text = step.flow.to_string();
        let applied = match step.expect {
            None => sqlx::query(
                "INSERT INTO flow_checkpoints (id, name, status, deadline_ms, version, state, updated_ms)
                 VALUES ($1, $2, $3, $4, 0, $5, $6) ON CONFLICT (id) DO NOTHING",
            )
            .bind(flow_text.clone())
            .bind(step.name.to_string())
            .bind(step.state.status_word())
            .bind(step.deadline_ms)
            .bind(to_hex_bcs(&step.state))
            .bind(now)
            .execute(&mut *t)
            .await,
            Some(version) => sqlx::query(
                "UPDATE flow_checkpoints SET status = $1, version = version + 1, state = $2, updated_ms = $3
                 WHERE id = $4 AND version = $5",
            )
            .bind(step.state.status_word())
            .bind(to_hex_bcs(&step.state))
            .bind(now)
            .bind(flow_text)
            .bind(version)
            .execute(&mut *t)
            .await,
        }
        .map_err(db("checkpointing a flow"))?
        .rows_affected()
            == 1;
        if !applied {
            // Dropped without commit: the flow moved on (killed, timed out, or a duplicate).
            return Ok(false);
        }
        if let (Some(stx), Some(keys)) = (step.record, &keys) {
            self.hub
                .vault
                .record_in(&mut t, stx, keys, Some(step.flow))
                .await?;
            for app in self.apps.involved(stx) {
                app.on_record(&self.hub, &mut t, stx).await?;
            }
        }
        for w in &step.writes {
            w.execute(&mut t).await?;
        }
        let finished = !step.state.status().is_running();
        if finished {
            self.hub.vault.release_in(&mut t, step.flow).await?;
        }
        let queued = self.enqueue(&mut t, step.out, now).await?;
        mark_handled(&mut t, now).await?;
        t.commit().await.map_err(db("committing a checkpoint"))?;
        if self.crash_at(super::CrashPoint::Checkpoint) {
            return Err(StoreError::Stopped);
        }
        self.hand_to_outbox(queued);
        let _ = self.events.send((step.flow, step.state.status()));
        Ok(true)
    }

    /// Queues messages that belong to no flow step (responders' answers).
    pub(super) async fn send_only(&self, out: Vec<(PartyName, Message)>) -> Result<(), StoreError> {
        self.check_running()?;
        let mut t = self.hub.store.begin_write().await?;
        let now = now_ms();
        let queued = self.enqueue(&mut t, out, now).await?;
        mark_handled(&mut t, now).await?;
        t.commit().await.map_err(db("queueing messages"))?;
        self.hand_to_outbox(queued);
        Ok(())
    }

    /// Forgets the ids of inbound messages handled before `before_ms` (the inbox stays bounded).
    /// Handlers are idempotent, so a message redelivered after that changes nothing twice.
    pub(super) async fn prune_inbox(&self, before_ms: i64) -> Result<u64, StoreError> {
        let _turn = self.hub.store.write_turn().await;
        Ok(sqlx::query("DELETE FROM inbox WHERE received_ms < $1")
            .bind(before_ms)
            .execute(self.hub.store.pool())
            .await
            .map_err(db("pruning the inbox"))?
            .rows_affected())
    }

    /// Keeps the Validator's record of a co-signed transaction.
    pub(super) async fn record_validation(
        &self,
        tx: &TxId,
        requester: &PartyName,
    ) -> Result<(), StoreError> {
        let _turn = self.hub.store.write_turn().await;
        sqlx::query(
            "INSERT INTO validations (tx_id, requester, validated_ms) VALUES ($1, $2, $3) ON CONFLICT (tx_id) DO NOTHING",
        )
        .bind(tx.to_string())
        .bind(requester.to_string())
        .bind(now_ms())
        .execute(self.hub.store.pool())
        .await
        .map_err(db("recording a validation"))?;
        Ok(())
    }
}

fn ids(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Uuid>, StoreError> {
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0).map_err(db("reading flows"))?;
            id.parse().map_err(|e: uuid::Error| StoreError::Corrupt {
                table: "flow_checkpoints",
                reason: e.to_string(),
            })
        })
        .collect()
}

tokio::task_local! {
    /// The envelope being handled on this task, until a write records it in the inbox.
    pub(super) static INBOX: std::cell::Cell<Option<Uuid>>;
}

/// Records the envelope being handled (if any, and not yet recorded) as processed, inside `t`.
pub(super) async fn mark_handled(t: &mut WriteTx, now: i64) -> Result<(), StoreError> {
    let Some(id) = INBOX.try_with(|c| c.get()).ok().flatten() else {
        return Ok(());
    };
    sqlx::query("INSERT INTO inbox (id, received_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(id.to_string())
        .bind(now)
        .execute(&mut **t)
        .await
        .map_err(db("recording a handled message"))?;
    // Cleared now: if the caller's commit fails, the handler fails and the sender redelivers.
    let _ = INBOX.try_with(|c| c.set(None));
    Ok(())
}
