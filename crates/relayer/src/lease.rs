//! The lease that elects the one relayer process allowed to submit on a path (cold standby,
//! R5). Every process of the path runs; only the holder submits; a standby polls and takes the
//! lease when the holder is gone.
//!
//! - **File** (one host): an exclusive advisory lock (`flock`) on a file. The kernel releases it
//!   when the holding process dies, however it dies, so a standby takes over at its next poll.
//!   The file records the holder and an epoch (incremented at each change of holder) for people.
//! - **PostgreSQL** (several hosts): a row per lease with holder, epoch and expiry, written with
//!   one atomic upsert that succeeds only for the current holder or once the lease has expired,
//!   judged by the database's clock (so the hosts' clocks do not matter). The holder renews every
//!   `ttl / 3`. It stops submitting by its *own* clock as soon as `ttl` has passed since the start
//!   of its last successful renewal — before any standby can have taken over — so two holders
//!   never submit at once unless the holder's process stalls longer than that between its check
//!   and its submission; IBC's own replay protection then refuses the second copy.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgPool, PgPoolOptions};
use tracing::info;

use crate::config::LeaseConfig;

/// Why a lease operation failed (not: the lease is held by someone else).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lock file could not be used.
    #[error("lease file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database could not be used.
    #[error("lease database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A lease, held or not.
#[derive(Debug)]
pub enum Lease {
    /// A lock file.
    File(FileLease),
    /// A PostgreSQL row.
    Postgres(PgLease),
}

impl Lease {
    /// Opens the lease named `name` (the path's name) for `holder` (unique per process).
    pub async fn open(config: &LeaseConfig, name: &str, holder: &str) -> Result<Self, LeaseError> {
        Ok(match config {
            LeaseConfig::File { path, poll } => Lease::File(FileLease::open(path, holder, *poll)?),
            LeaseConfig::Postgres { url, ttl } => {
                Lease::Postgres(PgLease::open(url, name, holder, *ttl).await?)
            }
        })
    }

    /// Takes or renews the lease if possible; the epoch when it is held after the call.
    pub async fn try_acquire(&mut self) -> Result<Option<u64>, LeaseError> {
        match self {
            Lease::File(l) => l.try_acquire(),
            Lease::Postgres(l) => l.try_acquire().await,
        }
    }

    /// Whether this process may submit now.
    pub fn is_valid(&self) -> bool {
        match self {
            Lease::File(l) => l.held.is_some(),
            Lease::Postgres(l) => l.is_valid(),
        }
    }

    /// How often a standby polls and a holder renews.
    pub fn interval(&self) -> Duration {
        match self {
            Lease::File(l) => l.poll,
            Lease::Postgres(l) => l.ttl / 3,
        }
    }

    /// Gives the lease up (a clean shutdown), so a standby need not wait for expiry.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        match self {
            Lease::File(l) => {
                l.held = None;
                Ok(())
            }
            Lease::Postgres(l) => l.release().await,
        }
    }
}

/// An exclusive lock on a file.
#[derive(Debug)]
pub struct FileLease {
    path: PathBuf,
    holder: String,
    poll: Duration,
    held: Option<(File, u64)>,
}

impl FileLease {
    /// A lease on `path` for `holder`; not yet held.
    pub fn open(path: &Path, holder: &str, poll: Duration) -> Result<Self, LeaseError> {
        Ok(FileLease {
            path: path.to_path_buf(),
            holder: holder.to_string(),
            poll,
            held: None,
        })
    }

    fn try_acquire(&mut self) -> Result<Option<u64>, LeaseError> {
        if let Some((_, epoch)) = &self.held {
            return Ok(Some(*epoch));
        }
        let io = |source| LeaseError::File {
            path: self.path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(io)?;
        let mut fields = previous.split_whitespace();
        let last_epoch = fields
            .next()
            .and_then(|e| e.parse::<u64>().ok())
            .unwrap_or(0);
        let last_holder = fields.next().unwrap_or_default();
        let epoch = if last_holder == self.holder {
            last_epoch
        } else {
            last_epoch + 1
        };
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{epoch} {}", self.holder).map_err(io)?;
        file.sync_all().map_err(io)?;
        info!(path = %self.path.display(), epoch, "took the relayer lease");
        self.held = Some((file, epoch));
        Ok(Some(epoch))
    }
}

/// A lease row in PostgreSQL.
#[derive(Debug)]
pub struct PgLease {
    pool: PgPool,
    name: String,
    holder: String,
    ttl: Duration,
    valid_until: Option<Instant>,
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS kh_relayer_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
)";

const UPSERT: &str = "INSERT INTO kh_relayer_leases AS l (name, holder, epoch, expires_at)
    VALUES ($1, $2, 1, now() + $3::bigint * interval '1 millisecond')
    ON CONFLICT (name) DO UPDATE SET
        epoch = CASE WHEN l.holder = EXCLUDED.holder THEN l.epoch ELSE l.epoch + 1 END,
        holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at
    WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
    RETURNING epoch";

impl PgLease {
    /// Connects and creates the lease table if needed.
    pub async fn open(
        url: &str,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Self, LeaseError> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(ttl)
            .connect(url)
            .await?;
        // Concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog: serialise it.
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7243001)")
            .execute(&mut *tx)
            .await?;
        sqlx::query(CREATE).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(PgLease {
            pool,
            name: name.to_string(),
            holder: holder.to_string(),
            ttl,
            valid_until: None,
        })
    }

    async fn try_acquire(&mut self) -> Result<Option<u64>, LeaseError> {
        let started = Instant::now();
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let row: Option<(i64,)> = sqlx::query_as(UPSERT)
            .bind(&self.name)
            .bind(&self.holder)
            .bind(ttl_ms)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some((epoch,)) => {
                if self.valid_until.is_none() {
                    info!(lease = %self.name, epoch, "took the relayer lease");
                }
                self.valid_until = Some(started + self.ttl);
                Ok(Some(u64::try_from(epoch).unwrap_or(0)))
            }
            None => {
                self.valid_until = None;
                Ok(None)
            }
        }
    }

    fn is_valid(&self) -> bool {
        self.valid_until.is_some_and(|t| Instant::now() < t)
    }

    async fn release(&mut self) -> Result<(), LeaseError> {
        self.valid_until = None;
        // Expire it rather than delete it, so epochs keep increasing.
        sqlx::query(
            "UPDATE kh_relayer_leases SET expires_at = now() - interval '1 second'
             WHERE name = $1 AND holder = $2",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
