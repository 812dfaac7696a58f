//! The vault: the node's transactions and the states relevant to its keys, consumed or not,
//! with queries, soft locks (lock id + expiry) for coin selection, accounts (UUID → key held
//! by the node) and archiving of consumed states.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::TxId;
use crate::contract::StateAndRef;
use crate::events::{self, EVENT_POLL, LedgerEvent};
use crate::identity::{KeyPair, PublicKey};
use crate::stablecoin::{StablecoinState, stablecoin_id};
use crate::store::{Store, StoreError, WriteTx, db};
use crate::tx::{SignedTransaction, StateRef, TransactionState};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateStatus {
    /// Not yet consumed.
    Unconsumed,
    /// Consumed by a recorded transaction.
    Consumed,
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn corrupt(table: &'static str) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt { table, reason }
}

fn decode_hex<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    let bytes = hex::decode(text).map_err(|e| corrupt(table)(e.to_string()))?;
    bcs::from_bytes(&bytes).map_err(|e| corrupt(table)(e.to_string()))
}

fn encode_hex<T: Serialize>(value: &T) -> String {
    // Vault values are BCS-encodable by construction (see tx.rs).
    hex::encode(bcs::to_bytes(value).expect("BCS encodes vault values"))
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
    /// Opens the vault on `store` (creating its tables); account secrets are sealed under a
    /// key derived from `identity` (the node's identity key).
    pub async fn open(store: Store, identity: &KeyPair) -> Result<Self, StoreError> {
        for m in MIGRATIONS.iter().chain(events::MIGRATIONS) {
            sqlx::query(*m)
                .execute(store.pool())
                .await
                .map_err(db("migrating the vault"))?;
        }
        Ok(Self {
            store,
            sealer: Sealer::new(identity),
            accounts: Arc::default(),
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
    pub(crate) async fn record_in(
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
            let (owner, amount) = owner_and_amount(out);
            sqlx::query(
                "INSERT INTO vault_states (tx_id, output_index, contract, owner, amount, body, recorded_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tx_id, output_index) DO NOTHING",
            )
            .bind(id.to_string())
            .bind(i as i64)
            .bind(out.contract.0.clone())
            .bind(owner)
            .bind(amount)
            .bind(encode_hex(out))
            .bind(now)
            .execute(&mut **t)
            .await
            .map_err(db("recording a state"))?;
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

    /// Number of recorded transactions in the live tables (archived ones not counted).
    pub async fn transaction_count(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM vault_transactions")
            .fetch_one(self.store.pool())
            .await
            .map_err(db("counting transactions"))?;
        let n: i64 = row.try_get(0).map_err(db("counting transactions"))?;
        Ok(n as u64)
    }

    /// States of `owner` (any contract when `contract` is None) with the given status.
    pub async fn states(
        &self,
        owner: &PublicKey,
        status: StateStatus,
    ) -> Result<Vec<StateAndRef>, StoreError> {
        let sql = match status {
            StateStatus::Unconsumed => {
                "SELECT tx_id, output_index, body FROM vault_states WHERE owner = $1 AND consumed_by IS NULL ORDER BY recorded_ms, tx_id, output_index"
            }
            StateStatus::Consumed => {
                "SELECT tx_id, output_index, body FROM vault_states WHERE owner = $1 AND consumed_by IS NOT NULL ORDER BY recorded_ms, tx_id, output_index"
            }
        };
        let rows = sqlx::query(sql)
            .bind(owner.to_string())
            .fetch_all(self.store.pool())
            .await
            .map_err(db("querying states"))?;
        rows.iter().map(state_from_row).collect()
    }

    /// The unconsumed stablecoin balance of `owner`.
    pub async fn balance(&self, owner: &PublicKey) -> Result<u64, StoreError> {
        let rows = sqlx::query("SELECT amount FROM vault_states WHERE owner = $1 AND contract = $2 AND consumed_by IS NULL")
            .bind(owner.to_string())
            .bind(stablecoin_id().0)
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

    /// Coin selection under a soft lock: picks unconsumed stablecoin states of `owner` that are
    /// unlocked (or whose lock expired, or that `lock_id` already holds) until they cover
    /// `amount`, and locks them for `ttl_ms`. Concurrent selections never share a state.
    pub async fn select_and_lock(
        &self,
        owner: &PublicKey,
        amount: u64,
        lock_id: Uuid,
        ttl_ms: u64,
    ) -> Result<Vec<StateAndRef>, VaultError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT tx_id, output_index, body, amount FROM vault_states WHERE owner = $1 AND contract = $2 AND consumed_by IS NULL
             AND (lock_id IS NULL OR lock_expiry_ms <= $3 OR lock_id = $4) ORDER BY amount DESC, tx_id, output_index",
        )
        .bind(owner.to_string())
        .bind(stablecoin_id().0)
        .bind(now)
        .bind(lock_id.to_string())
        .fetch_all(self.store.pool())
        .await
        .map_err(db("selecting coins"))?;
        let mut picked = Vec::new();
        let mut total = 0u64;
        let turn = self.store.write_turn().await;
        for row in &rows {
            if total >= amount {
                break;
            }
            let state = state_from_row(row)?;
            // Take the lock only if nobody took it since the read.
            let done = sqlx::query(
                "UPDATE vault_states SET lock_id = $1, lock_expiry_ms = $2 WHERE tx_id = $3 AND output_index = $4 AND consumed_by IS NULL
                 AND (lock_id IS NULL OR lock_expiry_ms <= $5 OR lock_id = $1)",
            )
            .bind(lock_id.to_string())
            .bind(now + ttl_ms as i64)
            .bind(state.reference.tx_id.to_string())
            .bind(i64::from(state.reference.index))
            .bind(now)
            .execute(self.store.pool())
            .await
            .map_err(db("locking coins"))?;
            if done.rows_affected() == 1 {
                let a: i64 = row.try_get(3).map_err(db("selecting coins"))?;
                total = total.saturating_add(a as u64);
                picked.push(state);
            }
        }
        drop(turn);
        if total < amount {
            self.release(lock_id).await?;
            return Err(VaultError::InsufficientFunds {
                owner: *owner,
                available: total,
                wanted: amount,
            });
        }
        Ok(picked)
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

fn owner_and_amount(state: &TransactionState) -> (String, i64) {
    if state.contract == stablecoin_id()
        && let Ok(coin) = state.decode::<StablecoinState>()
    {
        return (
            coin.owner.to_string(),
            i64::try_from(coin.amount).unwrap_or(i64::MAX),
        );
    }
    (
        state
            .participants
            .first()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        0,
    )
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
        state: decode_hex("vault_states", &body)?,
        reference: StateRef { tx_id, index },
    })
}
