//! The node database seam: one `sqlx` pool on SQLite (embedded default) or PostgreSQL, with
//! portable SQL so both run the same statements.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Storage failures (kept apart from protocol errors).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL {0:?} (use sqlite:PATH or postgres://...)")]
    UnsupportedUrl(String),
    /// The database failed.
    #[error("database error while {doing}")]
    Database {
        /// What was being done.
        doing: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// The node was stopped; it no longer writes (a standby owns the database).
    #[error("the node is stopped")]
    Stopped,
    /// Stored bytes do not decode (corruption or a foreign database).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Decoder message.
        reason: String,
    },
}

/// Which database the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The node database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time; writers of this process queue here (fairly, without
    /// spinning) instead of in SQLite's busy handler, which sleeps for milliseconds between
    /// retries. Other processes on the same file still meet the busy timeout.
    writer: Arc<Mutex<()>>,
}

/// A write transaction; on SQLite it also holds the process's writer turn until it ends.
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<OwnedMutexGuard<()>>,
    /// Run once the transaction committed (never on rollback or drop).
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("after_commit", &self.after_commit.len())
            .finish_non_exhaustive()
    }
}

impl WriteTx {
    /// Commits, then runs the hooks registered with [`WriteTx::after_commit`].
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let hooks = std::mem::take(&mut self.after_commit);
        self.tx.commit().await?;
        for hook in hooks {
            hook();
        }
        Ok(())
    }

    /// Runs `hook` after this transaction commits (not if it rolls back or is dropped):
    /// for wake-ups that must not reach a reader before the data is visible.
    pub fn after_commit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(hook));
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS notary_commits (
        state_tx TEXT NOT NULL,
        state_index BIGINT NOT NULL,
        consuming_tx TEXT NOT NULL,
        committed_ms BIGINT NOT NULL,
        PRIMARY KEY (state_tx, state_index))",
    "CREATE INDEX IF NOT EXISTS notary_commits_by_tx ON notary_commits (consuming_tx)",
    // Who asked for each notarisation (accountability, as Corda's notary keeps it).
    "CREATE TABLE IF NOT EXISTS notary_requests (
        consuming_tx TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        committed_ms BIGINT NOT NULL)",
];

pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { doing, source }
}

impl Store {
    /// Connects (creating an SQLite file if needed) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let sep = if rest.contains('?') { '&' } else { '?' };
            let url = if rest.contains("mode=") || rest == ":memory:" {
                url.to_string()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let options = AnyConnectOptions::from_str(&url).map_err(db("parsing the database URL"))?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(db("connecting"))?;
        for m in MIGRATIONS {
            pool.execute(*m).await.map_err(db("migrating"))?;
        }
        Ok(Self {
            pool,
            backend,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a write transaction. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a transaction that reads before it writes waits for other writers
    /// (busy timeout) instead of failing when it upgrades its read lock.
    pub async fn begin_write(&self) -> Result<WriteTx, StoreError> {
        let turn = self.write_turn().await;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(db("beginning a write transaction"))?;
        Ok(WriteTx {
            tx,
            _turn: turn,
            after_commit: Vec::new(),
        })
    }

    /// The process's writer turn for statements outside [`Store::begin_write`] (SQLite only;
    /// `None` on PostgreSQL). Never ask for it while holding a [`WriteTx`] on the same store.
    pub async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}
