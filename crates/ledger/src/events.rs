//! The event stream of recorded transactions, for integrators (relayers, monitoring,
//! notification): one event per transaction the vault records, with a cursor that readers
//! resume from.
//!
//! Each event is written in the same database transaction that records its transaction, and
//! only when the transaction is newly recorded, so a transaction has exactly one event and an
//! event exists exactly when its transaction is recorded.
//!
//! Cursors are strictly increasing in commit order, with no gaps: they are taken from a one-row
//! counter (`UPDATE vault_event_counter SET next = next + 1 RETURNING next`) inside the
//! recording transaction. The row lock serializes recorders from that statement until commit,
//! so a recorder that got cursor `n + 1` committed after the one that got `n`, and a reader that
//! has seen `n + 1` can never be shown `n` later (a database sequence gives no such guarantee
//! on PostgreSQL: numbers are taken at insert time and commit in any order). A rolled-back
//! recording gives its number back.
//!
//! Events are never deleted: archiving moves states and transactions out of the live vault but
//! leaves the events (and the archived transactions stay readable), so a reader that resumes
//! from an old cursor still sees every event after it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::TxId;
use crate::store::{Store, StoreError, WriteTx, db};
use crate::tx::{ContractId, SignedTransaction, StateRef};

pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS vault_events (
        seq BIGINT PRIMARY KEY,
        tx_id TEXT NOT NULL,
        flow_id TEXT,
        body TEXT NOT NULL,
        recorded_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vault_event_counter (
        id BIGINT PRIMARY KEY,
        next BIGINT NOT NULL)",
    "INSERT INTO vault_event_counter (id, next) VALUES (0, 0) ON CONFLICT (id) DO NOTHING",
];

/// Most events one read returns.
pub const MAX_EVENTS_PAGE: usize = 1000;

/// How often a reader waiting for events looks at the database even without a wake-up (writes
/// by another process on the same database, e.g. a standby that took over).
pub const EVENT_POLL: Duration = Duration::from_secs(1);

/// A state a recorded transaction produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducedState {
    /// The new state.
    pub reference: StateRef,
    /// Its contract (the state's type).
    pub contract: ContractId,
}

/// A transaction the vault recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvent {
    /// Position in the stream: 1 for the first event, then +1 per event, in commit order.
    pub cursor: u64,
    /// The transaction.
    pub tx_id: TxId,
    /// The states it consumed.
    pub consumed: Vec<StateRef>,
    /// The states it produced (every output, whether or not this node is a participant).
    pub produced: Vec<ProducedState>,
    /// The flow of this node that recorded it; `None` when it arrived finalised from a peer.
    pub flow: Option<Uuid>,
    /// When it was recorded (Unix milliseconds).
    pub recorded_ms: i64,
}

/// What is stored in the `body` column (BCS, hex).
#[derive(Serialize, Deserialize)]
struct EventBody {
    consumed: Vec<StateRef>,
    produced: Vec<ProducedState>,
}

fn corrupt(reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table: "vault_events",
        reason: reason.to_string(),
    }
}

/// Appends the event of `stx` inside the recording transaction `t`; returns its cursor.
pub(crate) async fn append(
    t: &mut WriteTx,
    stx: &SignedTransaction,
    flow: Option<Uuid>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let id = stx.id();
    let body = EventBody {
        consumed: stx.tx.inputs.clone(),
        produced: stx
            .tx
            .outputs
            .iter()
            .enumerate()
            .map(|(i, out)| ProducedState {
                reference: StateRef {
                    tx_id: id,
                    index: i as u32,
                },
                contract: out.contract.clone(),
            })
            .collect(),
    };
    let body = crate::util::to_hex_bcs(&body);
    // Taken last in the recording so the counter's row lock is held as briefly as possible.
    let row =
        sqlx::query("UPDATE vault_event_counter SET next = next + 1 WHERE id = 0 RETURNING next")
            .fetch_one(&mut **t)
            .await
            .map_err(db("taking an event cursor"))?;
    let cursor: i64 = row.try_get(0).map_err(db("taking an event cursor"))?;
    sqlx::query(
        "INSERT INTO vault_events (seq, tx_id, flow_id, body, recorded_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(cursor)
    .bind(id.to_string())
    .bind(flow.map(|f| f.to_string()))
    .bind(body)
    .bind(now_ms)
    .execute(&mut **t)
    .await
    .map_err(db("recording an event"))?;
    u64::try_from(cursor).map_err(corrupt)
}

/// Up to `limit` (at most [`MAX_EVENTS_PAGE`]) events after `cursor`, in cursor order.
pub(crate) async fn after(
    store: &Store,
    cursor: u64,
    limit: usize,
) -> Result<Vec<LedgerEvent>, StoreError> {
    let limit = limit.clamp(1, MAX_EVENTS_PAGE) as i64;
    let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT seq, tx_id, flow_id, body, recorded_ms FROM vault_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(store.pool())
    .await
    .map_err(db("reading events"))?;
    rows.iter().map(event_from_row).collect()
}

fn event_from_row(row: &sqlx::any::AnyRow) -> Result<LedgerEvent, StoreError> {
    let read = db("reading events");
    let cursor: i64 = row.try_get(0).map_err(read)?;
    let tx_id: String = row.try_get(1).map_err(db("reading events"))?;
    let flow: Option<String> = row.try_get(2).map_err(db("reading events"))?;
    let body: String = row.try_get(3).map_err(db("reading events"))?;
    let recorded_ms: i64 = row.try_get(4).map_err(db("reading events"))?;
    let body: EventBody = crate::util::from_hex_bcs("vault_events", &body)?;
    Ok(LedgerEvent {
        cursor: u64::try_from(cursor).map_err(corrupt)?,
        tx_id: tx_id.parse().map_err(corrupt)?,
        consumed: body.consumed,
        produced: body.produced,
        flow: flow
            .map(|f| f.parse::<Uuid>())
            .transpose()
            .map_err(corrupt)?,
        recorded_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bodies_round_trip() {
        let tx_id = crate::hash::SecureHash::of(&[b"tx"]);
        let body = EventBody {
            consumed: vec![StateRef { tx_id, index: 3 }],
            produced: vec![ProducedState {
                reference: StateRef { tx_id, index: 0 },
                contract: ContractId("kh.test".into()),
            }],
        };
        let bytes = bcs::to_bytes(&body).unwrap();
        let back: EventBody = bcs::from_bytes(&bytes).unwrap();
        assert_eq!(back.consumed, body.consumed);
        assert_eq!(back.produced, body.produced);
        assert!(bcs::from_bytes::<EventBody>(&bytes[..bytes.len() - 1]).is_err());
    }
}
