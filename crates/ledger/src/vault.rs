//! The vault: the node's transactions and the states relevant to its keys, consumed or not,
//! with queries, soft locks (lock id + expiry) for coin selection, accounts (UUID → key held
//! by the node) and archiving of consumed states.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::TxId;
use crate::app::{App, Apps};
use crate::contract::StateAndRef;
use crate::events::{self, EVENT_POLL, LedgerEvent};
use crate::identity::{KeyPair, PublicKey};
use crate::store::{Store, StoreError, WriteTx, db};
use crate::tx::{ContractId, SignedTransaction, StateRef};
use crate::util::{from_hex_bcs, now_ms, to_hex_bcs};

pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS vault_transactions (
        tx_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        recorded_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vault_states (
        tx_id TEXT NOT NULL,
        output_index BIGINT NOT NULL,
        contract TEXT NOT NULL,
        owner TEXT NOT NULL,
        amount BIGINT NOT NULL,
        body TEXT NOT NULL,
        recorded_ms BIGINT NOT NULL,
        consumed_by TEXT,
        consumed_ms BIGINT,
        lock_id TEXT,
        lock_expiry_ms BIGINT,
        PRIMARY KEY (tx_id, output_index))",
    "CREATE INDEX IF NOT EXISTS vault_states_owner ON vault_states (owner, contract, consumed_by)",
    "CREATE INDEX IF NOT EXISTS vault_states_consumed ON vault_states (consumed_ms)",
    "CREATE TABLE IF NOT EXISTS vault_archive (
        tx_id TEXT NOT NULL,
        output_index BIGINT NOT NULL,
        body TEXT NOT NULL,
        consumed_by TEXT NOT NULL,
        consumed_ms BIGINT NOT NULL,
        PRIMARY KEY (tx_id, output_index))",
    "CREATE TABLE IF NOT EXISTS vault_archive_transactions (
        tx_id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        recorded_ms BIGINT NOT NULL,
        archived_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS vault_transactions_recorded ON vault_transactions (recorded_ms)",
    "CREATE TABLE IF NOT EXISTS vault_state_participants (
        tx_id TEXT NOT NULL,
        output_index BIGINT NOT NULL,
        participant TEXT NOT NULL,
        PRIMARY KEY (tx_id, output_index, participant))",
    "CREATE INDEX IF NOT EXISTS vault_state_participants_key ON vault_state_participants (participant)",
    "CREATE INDEX IF NOT EXISTS vault_states_lock ON vault_states (lock_id)",
    "CREATE TABLE IF NOT EXISTS accounts (
        id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        public_key TEXT NOT NULL,
        secret TEXT NOT NULL)",
];

/// What one archiving pass moved out of the live vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    /// Consumed states.
    pub states: u64,
    /// Transactions with no live state left.
    pub transactions: u64,
}

/// An account: a UUID with a key held by the node, which signs for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The account id.
    pub id: Uuid,
    /// A human label.
    pub label: String,
    /// The account's key.
    pub public_key: PublicKey,
}

/// Which states a query returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateStatus {
    /// Not yet consumed.
    #[default]
    Unconsumed,
    /// Consumed by a recorded transaction (still in the live vault).
    Consumed,
    /// Consumed and moved to the archive.
    Archived,
}

/// Most states one query returns.
pub const MAX_QUERY_PAGE: u64 = 10_000;

/// A vault query: every given criterion must hold. Pages are ordered by recording time, then
/// transaction id and output index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateQuery {
    /// States of this contract (the state's type).
    pub contract: Option<ContractId>,
    /// States owned by this key (an account's key) as the app indexes them.
    pub owner: Option<PublicKey>,
    /// States with this key among their participants.
    pub participant: Option<PublicKey>,
    /// Which states.
    pub status: StateStatus,
    /// States skipped (paging).
    pub offset: u64,
    /// Most states returned (0: [`MAX_QUERY_PAGE`]; larger values are capped to it).
    pub limit: u64,
}

/// Vault errors.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Not enough unlocked, unconsumed value.
    #[error("insufficient funds: {available} available (unlocked) for {owner}, {wanted} wanted")]
    InsufficientFunds {
        /// The owner key.
        owner: PublicKey,
        /// What could be selected.
        available: u64,
        /// What was asked.
        wanted: u64,
    },
    /// No such account.
    #[error("unknown account {0}")]
    UnknownAccount(Uuid),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn corrupt(table: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { table, reason }
}

/// Account secrets are stored sealed (ChaCha20-Poly1305) under a key derived from the node's
/// identity key, with the account id as associated data: a copy of the database alone (a
/// backup, a PostgreSQL dump) does not give away the accounts' keys, and a sealed secret moved
/// to another account's row does not open.
#[derive(Clone)]
struct Sealer(chacha20poly1305::ChaCha20Poly1305);

const SEALED_PREFIX: &str = "sealed-v1:";

impl Sealer {
    fn new(identity: &KeyPair) -> Self {
        use chacha20poly1305::KeyInit;
        use sha2::Digest;
        let key = sha2::Sha256::new()
            .chain_update(b"kakehashi account sealing v1")
            .chain_update(identity.secret())
            .finalize();
        Self(chacha20poly1305::ChaCha20Poly1305::new(&key))
    }

    fn seal(&self, account: Uuid, secret: &[u8; 32]) -> String {
        use chacha20poly1305::aead::{Aead, Payload};
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .0
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: secret,
                    aad: account.as_bytes(),
                },
            )
            // Encryption of 32 bytes cannot exceed the cipher's length limit.
            .expect("ChaCha20-Poly1305 seals 32 bytes");
        format!(
            "{SEALED_PREFIX}{}{}",
            hex::encode(nonce),
            hex::encode(sealed)
        )
    }

    fn open(&self, account: Uuid, text: &str) -> Option<[u8; 32]> {
        use chacha20poly1305::aead::{Aead, Payload};
        let Some(body) = text.strip_prefix(SEALED_PREFIX) else {
            // Written before secrets were sealed: plain hex.
            return hex::decode(text).ok()?.try_into().ok();
        };
        let bytes = hex::decode(body).ok()?;
        let (nonce, sealed) = bytes.split_at_checked(12)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self
            .0
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: sealed,
                    aad: account.as_bytes(),
                },
            )
            .ok()?;
        plain.try_into().ok()
    }
}

/// The vault of one node.
#[derive(Clone)]
pub struct Vault {
    store: Store,
    sealer: Sealer,
    /// Accounts are only ever added, by this vault: kept in memory once read, with the keys
    /// opened so far, so that flows do not read the table at every step.
    accounts: Arc<std::sync::RwLock<AccountCache>>,
    /// The node's apps: how their states are indexed.
    apps: Arc<Apps>,
    /// Wakes event readers after a recording committed (the value: the highest cursor this
    /// process committed). Readers always read the events from the database.
    event_wakeup: Arc<tokio::sync::watch::Sender<u64>>,
}

#[derive(Default)]
struct AccountCache {
    /// Bumped by every account creation: a list read from the table is kept only if no
    /// account was created while it was being read.
    generation: u64,
    list: Option<Vec<Account>>,
    keys: std::collections::HashMap<Uuid, KeyPair>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the vault on `store` (creating its tables) for a node without apps: states are
    /// indexed by their first participant. Account secrets are sealed under a key derived from
    /// `identity` (the node's identity key).
    pub async fn open(store: Store, identity: &KeyPair) -> Result<Self, StoreError> {
        Self::open_with(store, identity, &[]).await
    }

    /// Opens the vault for a node running `apps`: their tables are created and their states
    /// indexed their way ([`App::index`]).
    pub async fn open_with(
        store: Store,
        identity: &KeyPair,
        apps: &[Arc<dyn App>],
    ) -> Result<Self, StoreError> {
        let apps = Apps::new(apps).map_err(|e| StoreError::Corrupt {
            table: "apps",
            reason: e.to_string(),
        })?;
        let app_migrations = apps.by_name.values().flat_map(|a| a.migrations());
        for m in MIGRATIONS
            .iter()
            .chain(events::MIGRATIONS)
            .copied()
            .chain(app_migrations)
        {
            sqlx::query(m)
                .execute(store.pool())
                .await
                .map_err(db("migrating the vault and the apps' tables"))?;
        }
        Ok(Self {
            store,
            sealer: Sealer::new(identity),
            accounts: Arc::default(),
            apps: Arc::new(apps),
            event_wakeup: Arc::new(tokio::sync::watch::Sender::new(0)),
        })
    }

    /// Records a finalised transaction: stores it, adds the outputs that have one of `keys` as
    /// a participant, marks its inputs consumed, and appends its event (no flow). Idempotent.
    pub async fn record(
        &self,
        stx: &SignedTransaction,
        keys: &BTreeSet<PublicKey>,
    ) -> Result<(), StoreError> {
        let mut t = self.store.begin_write().await?;
        self.record_in(&mut t, stx, keys, None).await?;
        t.commit().await.map_err(db("committing a vault update"))
    }

    /// [`Vault::record`] inside the caller's write transaction, naming the flow that records
    /// it (`None`: it arrived finalised from a peer). Returns the new event's cursor, or `None`
    /// when the transaction was already recorded (nothing is written then). Readers of the
    /// event stream are woken once `t` commits.
    pub async fn record_in(
        &self,
        t: &mut WriteTx,
        stx: &SignedTransaction,
        keys: &BTreeSet<PublicKey>,
        flow: Option<Uuid>,
    ) -> Result<Option<u64>, StoreError> {
        let id = stx.id();
        let now = now_ms();
        // An archived transaction stays recorded: its states must not come back.
        let exists = sqlx::query(
            "SELECT 1 FROM vault_transactions WHERE tx_id = $1 UNION ALL SELECT 1 FROM vault_archive_transactions WHERE tx_id = $1",
        )
        .bind(id.to_string())
            .fetch_optional(&mut **t)
            .await
            .map_err(db("reading vault transactions"))?;
        if exists.is_some() {
            return Ok(None);
        }
        let inserted = sqlx::query(
            "INSERT INTO vault_transactions (tx_id, body, recorded_ms) VALUES ($1, $2, $3) ON CONFLICT (tx_id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(hex::encode(stx.to_bytes()))
        .bind(now)
        .execute(&mut **t)
        .await
        .map_err(db("recording a transaction"))?
        .rows_affected();
        if inserted == 0 {
            // A concurrent recording (PostgreSQL) committed it while this one waited on the
            // row: it recorded the states and the event.
            return Ok(None);
        }
        for (i, out) in stx.tx.outputs.iter().enumerate() {
            if !out.participants.iter().any(|p| keys.contains(p)) {
                continue;
            }
            let index = self.apps.index(out);
            let owner = index.owner.map(|k| k.to_string()).unwrap_or_default();
            let amount = i64::try_from(index.quantity).unwrap_or(i64::MAX);
            sqlx::query(
                "INSERT INTO vault_states (tx_id, output_index, contract, owner, amount, body, recorded_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tx_id, output_index) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(i as i64)
            .bind(out.contract.0.clone())
            .bind(owner)
            .bind(amount)
            .bind(to_hex_bcs(out))
            .bind(now)
            .execute(&mut **t)
            .await
            .map_err(db("recording a state"))?;
            // The owner is found through its own column: only other participants get rows.
            let participants: BTreeSet<&PublicKey> = out
                .participants
                .iter()
                .filter(|p| index.owner.as_ref() != Some(*p))
                .collect();
            for p in participants {
                sqlx::query(
                    "INSERT INTO vault_state_participants (tx_id, output_index, participant) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(id.to_string())
                .bind(i as i64)
                .bind(p.to_string())
                .execute(&mut **t)
                .await
                .map_err(db("recording a state's participants"))?;
            }
        }
        for input in &stx.tx.inputs {
            sqlx::query(
                "UPDATE vault_states SET consumed_by = $1, consumed_ms = $2, lock_id = NULL, lock_expiry_ms = NULL WHERE tx_id = $3 AND output_index = $4",
            )
            .bind(id.to_string())
            .bind(now)
            .bind(input.tx_id.to_string())
            .bind(i64::from(input.index))
            .execute(&mut **t)
            .await
            .map_err(db("consuming a state"))?;
        }
        let cursor = events::append(t, stx, flow, now).await?;
        let wakeup = self.event_wakeup.clone();
        t.after_commit(move || {
            wakeup.send_modify(|last| *last = (*last).max(cursor));
        });
        Ok(Some(cursor))
    }

    /// Up to `limit` (at most [`MAX_EVENTS_PAGE`](crate::MAX_EVENTS_PAGE)) events with a cursor above `cursor`, in
    /// cursor order (commit order). Start with cursor 0; resume with the last cursor seen.
    pub async fn events_after(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        events::after(&self.store, cursor, limit).await
    }

    /// [`Vault::events_after`], waiting up to `max_wait` for at least one event when there is
    /// none yet: it re-reads the database when a recording commits in this process, and every
    /// [`EVENT_POLL`] for recordings by other processes on the same database. Returns an empty
    /// list when `max_wait` passes without an event.
    pub async fn wait_events(
        &self,
        cursor: u64,
        limit: usize,
        max_wait: std::time::Duration,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        // Subscribed before reading, so a commit between the read and the wait is not missed.
        let mut wakeup = self.event_wakeup.subscribe();
        loop {
            wakeup.mark_unchanged();
            let events = self.events_after(cursor, limit).await?;
            let now = tokio::time::Instant::now();
            if !events.is_empty() || now >= deadline {
                return Ok(events);
            }
            let until = deadline.min(now + EVENT_POLL);
            // The sender lives as long as this vault, so `changed` cannot fail here; a timeout
            // or a change both lead to a fresh read.
            let _ = tokio::time::timeout_at(until, wakeup.changed()).await;
        }
    }

    /// A recorded transaction (live or archived).
    pub async fn transaction(&self, id: &TxId) -> Result<Option<SignedTransaction>, StoreError> {
        let row = sqlx::query(
            "SELECT body FROM vault_transactions WHERE tx_id = $1 UNION ALL SELECT body FROM vault_archive_transactions WHERE tx_id = $1",
        )
        .bind(id.to_string())
            .fetch_optional(self.store.pool())
            .await
            .map_err(db("reading a transaction"))?;
        let Some(row) = row else { return Ok(None) };
        let body: String = row.try_get(0).map_err(db("reading a transaction"))?;
        let bytes = hex::decode(body).map_err(|e| corrupt("vault_transactions")(e.to_string()))?;
        SignedTransaction::from_bytes(&bytes, usize::MAX)
            .map(Some)
            .map_err(|e| corrupt("vault_transactions")(e.to_string()))
    }

    /// Number of unconsumed states under a soft lock that has not expired (none once every
    /// flow has finished: a flow's locks go with it).
    pub async fn locked_states(&self) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM vault_states WHERE consumed_by IS NULL AND lock_id IS NOT NULL AND lock_expiry_ms > $1",
        )
        .bind(now_ms())
        .fetch_one(self.store.pool())
        .await
        .map_err(db("counting locked states"))?;
        let n: i64 = row.try_get(0).map_err(db("counting locked states"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Number of recorded transactions in the live tables (archived ones not counted).
    pub async fn transaction_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM vault_transactions")
            .fetch_one(self.store.pool())
            .await
            .map_err(db("counting transactions"))?;
        let n: i64 = row.try_get(0).map_err(db("counting transactions"))?;
        Ok(n as u64)
    }

    /// States of `owner`, any contract, with the given status (the first page).
    pub async fn states(
        &self,
        owner: &PublicKey,
        status: StateStatus,
    ) -> Result<Vec<StateAndRef>, StoreError> {
        self.query(&StateQuery {
            owner: Some(*owner),
            status,
            ..StateQuery::default()
        })
        .await
    }

    /// The states matching `q`, one page.
    pub async fn query(&self, q: &StateQuery) -> Result<Vec<StateAndRef>, StoreError> {
        let limit = match q.limit {
            0 => MAX_QUERY_PAGE,
            n => n.min(MAX_QUERY_PAGE),
        };
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        if q.status == StateStatus::Archived {
            return self.query_archive(q, offset, limit).await;
        }
        let mut sql =
            String::from("SELECT s.tx_id, s.output_index, s.body FROM vault_states s WHERE ");
        sql.push_str(match q.status {
            StateStatus::Unconsumed => "s.consumed_by IS NULL",
            _ => "s.consumed_by IS NOT NULL",
        });
        let mut args: Vec<String> = vec![];
        if let Some(c) = &q.contract {
            args.push(c.0.clone());
            sql.push_str(&format!(" AND s.contract = ${}", args.len()));
        }
        if let Some(o) = &q.owner {
            args.push(o.to_string());
            sql.push_str(&format!(" AND s.owner = ${}", args.len()));
        }
        if let Some(p) = &q.participant {
            args.push(p.to_string());
            sql.push_str(&format!(
                " AND (s.owner = ${n} OR EXISTS (SELECT 1 FROM vault_state_participants p WHERE p.tx_id = s.tx_id AND p.output_index = s.output_index AND p.participant = ${n}))",
                n = args.len()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY s.recorded_ms, s.tx_id, s.output_index LIMIT {limit} OFFSET {offset}"
        ));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            query = query.bind(a);
        }
        let rows = query
            .fetch_all(self.store.pool())
            .await
            .map_err(db("querying states"))?;
        rows.iter().map(state_from_row).collect()
    }

    /// Archived states are kept whole but not indexed: they are filtered as they are read.
    async fn query_archive(
        &self,
        q: &StateQuery,
        offset: i64,
        limit: u64,
    ) -> Result<Vec<StateAndRef>, StoreError> {
        let rows = sqlx::query(
            "SELECT tx_id, output_index, body FROM vault_archive ORDER BY consumed_ms, tx_id, output_index",
        )
        .fetch_all(self.store.pool())
        .await
        .map_err(db("querying archived states"))?;
        let mut out = vec![];
        let mut skipped = 0i64;
        for row in &rows {
            let s = state_from_row(row)?;
            let owner = self.apps.index(&s.state).owner;
            let keep = q.contract.as_ref().is_none_or(|c| &s.state.contract == c)
                && q.owner.is_none_or(|o| owner == Some(o))
                && q.participant
                    .is_none_or(|p| s.state.participants.contains(&p));
            if !keep {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            out.push(s);
            if out.len() as u64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The total quantity of unconsumed `contract` states owned by `owner` (e.g. a balance).
    pub async fn quantity(
        &self,
        contract: &ContractId,
        owner: &PublicKey,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query("SELECT amount FROM vault_states WHERE owner = $1 AND contract = $2 AND consumed_by IS NULL")
            .bind(owner.to_string())
            .bind(contract.0.clone())
            .fetch_all(self.store.pool())
            .await
            .map_err(db("summing a balance"))?;
        let mut total = 0u64;
        for r in rows {
            let a: i64 = r.try_get(0).map_err(db("summing a balance"))?;
            total = total.saturating_add(a as u64);
        }
        Ok(total)
    }

    /// Selection under a soft lock: picks unconsumed `contract` states of `owner` that are
    /// unlocked (or whose lock expired, or that `lock_id` already holds), largest quantity
    /// first, until their quantities cover `amount`, and locks them for `ttl_ms`. Concurrent
    /// selections never share a state. Apps build their coin selection on it.
    pub async fn select_and_lock(
        &self,
        contract: &ContractId,
        owner: &PublicKey,
        amount: u64,
        lock_id: Uuid,
        ttl_ms: u64,
    ) -> Result<Vec<StateAndRef>, VaultError> {
        let now = now_ms();
        // One write transaction: concurrent selections of one owner's states run one after the
        // other (SQLite: one writer; PostgreSQL: a transaction-scoped advisory lock on the
        // owner), so two selections that together ask for more than there is cannot both come
        // up short by each taking half — exactly one gets what it asks when only one can.
        let mut t = self.store.begin_write().await?;
        if self.store.backend() == crate::store::Backend::Postgres {
            let mut key = [0u8; 8];
            key.copy_from_slice(&owner.0[..8]);
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(i64::from_be_bytes(key))
                .execute(&mut *t)
                .await
                .map_err(db("serialising a selection"))?;
        }
        let rows = sqlx::query(
            "SELECT tx_id, output_index, body, amount FROM vault_states WHERE owner = $1 AND contract = $2 AND consumed_by IS NULL
             AND (lock_id IS NULL OR lock_expiry_ms <= $3 OR lock_id = $4) ORDER BY amount DESC, tx_id, output_index",
        )
        .bind(owner.to_string())
        .bind(contract.0.clone())
        .bind(now)
        .bind(lock_id.to_string())
        .fetch_all(&mut *t)
        .await
        .map_err(db("selecting coins"))?;
        let mut picked = Vec::new();
        let mut total = 0u64;
        for row in &rows {
            if total >= amount {
                break;
            }
            let state = state_from_row(row)?;
            let done = sqlx::query(
                "UPDATE vault_states SET lock_id = $1, lock_expiry_ms = $2 WHERE tx_id = $3 AND output_index = $4 AND consumed_by IS NULL
                 AND (lock_id IS NULL OR lock_expiry_ms <= $5 OR lock_id = $1)",
            )
            .bind(lock_id.to_string())
            .bind(now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)))
            .bind(state.reference.tx_id.to_string())
            .bind(i64::from(state.reference.index))
            .bind(now)
            .execute(&mut *t)
            .await
            .map_err(db("locking coins"))?;
            if done.rows_affected() == 1 {
                let a: i64 = row.try_get(3).map_err(db("selecting coins"))?;
                total = total.saturating_add(u64::try_from(a).unwrap_or(0));
                picked.push(state);
            }
        }
        if total < amount {
            // Dropped without commit: nothing was locked.
            return Err(VaultError::InsufficientFunds {
                owner: *owner,
                available: total,
                wanted: amount,
            });
        }
        t.commit().await.map_err(db("locking coins"))?;
        Ok(picked)
    }

    /// Soft-locks exactly `refs` under `lock_id` for `ttl_ms`, all or none: false (and nothing
    /// locked) when one of them is not an unconsumed state of this vault or another lock holds it.
    pub async fn lock_states(
        &self,
        refs: &[StateRef],
        lock_id: Uuid,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut t = self.store.begin_write().await?;
        for r in refs {
            let done = sqlx::query(
                "UPDATE vault_states SET lock_id = $1, lock_expiry_ms = $2 WHERE tx_id = $3 AND output_index = $4 AND consumed_by IS NULL
                 AND (lock_id IS NULL OR lock_expiry_ms <= $5 OR lock_id = $1)",
            )
            .bind(lock_id.to_string())
            .bind(now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX)))
            .bind(r.tx_id.to_string())
            .bind(i64::from(r.index))
            .bind(now)
            .execute(&mut *t)
            .await
            .map_err(db("locking states"))?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
        }
        t.commit().await.map_err(db("locking states"))?;
        Ok(true)
    }

    /// [`Vault::release`] inside the caller's write transaction.
    pub async fn release_in(&self, t: &mut WriteTx, lock_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE vault_states SET lock_id = NULL, lock_expiry_ms = NULL WHERE lock_id = $1",
        )
        .bind(lock_id.to_string())
        .execute(&mut **t)
        .await
        .map_err(db("releasing a soft lock"))?;
        Ok(())
    }

    /// The soft lock on a state: its lock id (the holding flow) and expiry, if locked.
    pub async fn lock_of(&self, state: &StateRef) -> Result<Option<(Uuid, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT lock_id, lock_expiry_ms FROM vault_states WHERE tx_id = $1 AND output_index = $2 AND lock_id IS NOT NULL",
        )
        .bind(state.tx_id.to_string())
        .bind(i64::from(state.index))
        .fetch_optional(self.store.pool())
        .await
        .map_err(db("reading a soft lock"))?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get(0).map_err(db("reading a soft lock"))?;
        let expiry: i64 = row.try_get(1).map_err(db("reading a soft lock"))?;
        let id = id
            .parse()
            .map_err(|e: uuid::Error| corrupt("vault_states")(e.to_string()))?;
        Ok(Some((id, expiry)))
    }

    /// Releases every state held by `lock_id`.
    pub async fn release(&self, lock_id: Uuid) -> Result<(), StoreError> {
        let _turn = self.store.write_turn().await;
        sqlx::query(
            "UPDATE vault_states SET lock_id = NULL, lock_expiry_ms = NULL WHERE lock_id = $1",
        )
        .bind(lock_id.to_string())
        .execute(self.store.pool())
        .await
        .map_err(db("releasing a soft lock"))?;
        Ok(())
    }

    /// Archives what the vault no longer needs (R7): consumed states whose consumption is older
    /// than `before_ms` move to `vault_archive`, then transactions recorded before `before_ms`
    /// that have no state left in the live vault move to `vault_archive_transactions`. Lookups
    /// ([`Vault::transaction`]) still find archived transactions, and recording one again
    /// changes nothing.
    pub async fn archive_consumed(&self, before_ms: i64) -> Result<Archived, StoreError> {
        let mut t = self.store.begin_write().await?;
        sqlx::query(
            "INSERT INTO vault_archive (tx_id, output_index, body, consumed_by, consumed_ms)
             SELECT tx_id, output_index, body, consumed_by, consumed_ms FROM vault_states
             WHERE consumed_by IS NOT NULL AND consumed_ms < $1",
        )
        .bind(before_ms)
        .execute(&mut *t)
        .await
        .map_err(db("archiving states"))?;
        let states = sqlx::query(
            "DELETE FROM vault_states WHERE consumed_by IS NOT NULL AND consumed_ms < $1",
        )
        .bind(before_ms)
        .execute(&mut *t)
        .await
        .map_err(db("pruning states"))?
        .rows_affected();
        sqlx::query(
            "DELETE FROM vault_state_participants WHERE NOT EXISTS (SELECT 1 FROM vault_states s
             WHERE s.tx_id = vault_state_participants.tx_id AND s.output_index = vault_state_participants.output_index)",
        )
        .execute(&mut *t)
        .await
        .map_err(db("pruning state participants"))?;
        let unused = "FROM vault_transactions t WHERE t.recorded_ms < $1
             AND NOT EXISTS (SELECT 1 FROM vault_states s WHERE s.tx_id = t.tx_id)";
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO vault_archive_transactions (tx_id, body, recorded_ms, archived_ms)
             SELECT t.tx_id, t.body, t.recorded_ms, $2 {unused}"
        )))
        .bind(before_ms)
        .bind(now_ms())
        .execute(&mut *t)
        .await
        .map_err(db("archiving transactions"))?;
        let transactions = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM vault_transactions WHERE tx_id IN (SELECT t.tx_id {unused})"
        )))
        .bind(before_ms)
        .execute(&mut *t)
        .await
        .map_err(db("pruning transactions"))?
        .rows_affected();
        t.commit().await.map_err(db("committing archiving"))?;
        Ok(Archived {
            states,
            transactions,
        })
    }

    /// Creates an account with a fresh key held by the node.
    pub async fn create_account(&self, label: &str) -> Result<Account, StoreError> {
        let key = KeyPair::generate();
        let account = Account {
            id: Uuid::new_v4(),
            label: label.to_string(),
            public_key: key.public(),
        };
        let _turn = self.store.write_turn().await;
        sqlx::query("INSERT INTO accounts (id, label, public_key, secret) VALUES ($1, $2, $3, $4)")
            .bind(account.id.to_string())
            .bind(label)
            .bind(account.public_key.to_string())
            .bind(self.sealer.seal(account.id, &key.secret()))
            .execute(self.store.pool())
            .await
            .map_err(db("creating an account"))?;
        if let Ok(mut cache) = self.accounts.write() {
            cache.generation += 1;
            cache.list = None;
            cache.keys.insert(account.id, key);
        }
        Ok(account)
    }

    /// Every account.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let generation = match self.accounts.read() {
            Ok(c) => match &c.list {
                Some(list) => return Ok(list.clone()),
                None => Some(c.generation),
            },
            Err(_) => None,
        };
        let list = self.read_accounts().await?;
        if let Ok(mut cache) = self.accounts.write()
            && Some(cache.generation) == generation
        {
            cache.list = Some(list.clone());
        }
        Ok(list)
    }

    async fn read_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = sqlx::query("SELECT id, label, public_key FROM accounts ORDER BY label, id")
            .fetch_all(self.store.pool())
            .await
            .map_err(db("listing accounts"))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(db("listing accounts"))?;
                let label: String = r.try_get(1).map_err(db("listing accounts"))?;
                let key: String = r.try_get(2).map_err(db("listing accounts"))?;
                let id = id
                    .parse()
                    .map_err(|e: uuid::Error| corrupt("accounts")(e.to_string()))?;
                let key: [u8; 32] = hex::decode(&key)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt("accounts")("bad public key".into()))?;
                Ok(Account {
                    id,
                    label,
                    public_key: PublicKey(key),
                })
            })
            .collect()
    }

    /// The key pair of an account (the node signs for its accounts).
    pub async fn account_key(&self, id: Uuid) -> Result<KeyPair, VaultError> {
        if let Some(key) = self
            .accounts
            .read()
            .ok()
            .and_then(|c| c.keys.get(&id).cloned())
        {
            return Ok(key);
        }
        let row = sqlx::query("SELECT secret FROM accounts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.store.pool())
            .await
            .map_err(db("reading an account key"))?;
        let row = row.ok_or(VaultError::UnknownAccount(id))?;
        let secret: String = row.try_get(0).map_err(db("reading an account key"))?;
        let secret = self
            .sealer
            .open(id, &secret)
            .ok_or_else(|| StoreError::Corrupt {
                table: "accounts",
                reason: format!(
                    "the secret of account {id} does not open with this node's identity key"
                ),
            })?;
        let key = KeyPair::from_secret(secret);
        if let Ok(mut cache) = self.accounts.write() {
            cache.keys.insert(id, key.clone());
        }
        Ok(key)
    }
}

fn state_from_row(row: &sqlx::any::AnyRow) -> Result<StateAndRef, StoreError> {
    let tx: String = row.try_get(0).map_err(db("reading a state"))?;
    let index: i64 = row.try_get(1).map_err(db("reading a state"))?;
    let body: String = row.try_get(2).map_err(db("reading a state"))?;
    let tx_id = tx
        .parse()
        .map_err(|e: crate::hash::ParseHashError| corrupt("vault_states")(e.to_string()))?;
    let index = u32::try_from(index).map_err(|e| corrupt("vault_states")(e.to_string()))?;
    Ok(StateAndRef {
        state: from_hex_bcs("vault_states", &body)?,
        reference: StateRef { tx_id, index },
    })
}
