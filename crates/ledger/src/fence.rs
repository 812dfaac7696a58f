//! Cold-standby fencing: at most one live node works on a database. A node takes the fence
//! before it touches its database and holds it for its lifetime; the operating system (SQLite)
//! or the database server (PostgreSQL) releases it when the holder dies, even by `kill -9`, so
//! a standby waiting on it takes over as soon as the holder is gone.
//!
//! - SQLite: an exclusive advisory lock (`flock`) on `PATH.lock` next to the database file,
//!   held by an open file. The file itself is never removed (removing it would let two nodes
//!   lock two different files of the same name).
//! - PostgreSQL: a session-level `pg_try_advisory_lock` on a dedicated connection (not the
//!   pool). Advisory locks are scoped to the database, so the key is a fixed constant.
//! - An in-memory SQLite database is private to its process: nothing to fence.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};
use tracing::info;

/// The advisory-lock key of a node database (ASCII `khledger`).
pub const POSTGRES_FENCE_KEY: i64 = 0x6b68_6c65_6467_6572;

/// How often a standby retries the fence.
pub const STANDBY_POLL: Duration = Duration::from_millis(200);

/// How long [`Fence::acquire`] keeps retrying before it reports the fence held: a holder that
/// just shut down in this process may need a moment (a PostgreSQL server notices a closed
/// session asynchronously).
const HANDOVER_GRACE: Duration = Duration::from_secs(1);

/// Fencing failures.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Another live node holds the database.
    #[error(
        "database {database} is held by another live node (start this one with --standby to wait for it)"
    )]
    Held {
        /// The database (the lock file, or the PostgreSQL URL without credentials).
        database: String,
    },
    /// The lock file could not be opened or locked.
    #[error("fencing {path}: {source}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The fence connection or query failed.
    #[error("fencing the PostgreSQL database")]
    Postgres(#[source] sqlx::Error),
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL {0:?} (use sqlite:PATH or postgres://...)")]
    UnsupportedUrl(String),
}

/// The held fence; dropping it releases it.
pub struct Fence {
    _hold: Hold,
}

enum Hold {
    /// Nothing to fence (in-memory SQLite).
    None,
    /// The locked `PATH.lock` (closing it releases the lock).
    File(#[allow(dead_code)] File),
    /// The connection holding the advisory lock (closing it ends the session and the lock).
    Postgres(#[allow(dead_code)] AnyConnection),
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self._hold {
            Hold::None => "none",
            Hold::File(_) => "lock file",
            Hold::Postgres(_) => "advisory lock",
        };
        f.debug_struct("Fence").field("hold", &kind).finish()
    }
}

enum Target {
    None,
    File(PathBuf),
    Postgres(String),
}

fn target(url: &str) -> Result<Target, FenceError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
            return Ok(Target::None);
        }
        Ok(Target::File(PathBuf::from(format!("{path}.lock"))))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Target::Postgres(url.to_string()))
    } else {
        Err(FenceError::UnsupportedUrl(url.to_string()))
    }
}

/// The URL without a password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Fence {
    /// Takes the fence of the database at `url` once: `Ok(None)` when another live node holds it.
    pub async fn try_acquire(url: &str) -> Result<Option<Self>, FenceError> {
        match target(url)? {
            Target::None => Ok(Some(Self { _hold: Hold::None })),
            Target::File(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|source| FenceError::LockFile {
                        path: path.clone(),
                        source,
                    })?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(Self {
                        _hold: Hold::File(file),
                    })),
                    Err(TryLockError::WouldBlock) => Ok(None),
                    Err(TryLockError::Error(source)) => Err(FenceError::LockFile { path, source }),
                }
            }
            Target::Postgres(url) => {
                sqlx::any::install_default_drivers();
                let mut conn = AnyConnection::connect(&url)
                    .await
                    .map_err(FenceError::Postgres)?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(POSTGRES_FENCE_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(FenceError::Postgres)?;
                if got {
                    Ok(Some(Self {
                        _hold: Hold::Postgres(conn),
                    }))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
        }
    }

    /// Takes the fence, or fails with [`FenceError::Held`] when a live node holds it (after a
    /// short grace for a holder of this process that is just letting go).
    pub async fn acquire(url: &str) -> Result<Self, FenceError> {
        let deadline = tokio::time::Instant::now() + HANDOVER_GRACE;
        loop {
            if let Some(fence) = Self::try_acquire(url).await? {
                return Ok(fence);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(FenceError::Held {
                    database: held_name(url),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the fence as a cold standby: retries every `poll` until the holder dies, and
    /// logs that it waits.
    pub async fn acquire_standby(url: &str, poll: Duration) -> Result<Self, FenceError> {
        let mut logged = false;
        loop {
            if let Some(fence) = Self::try_acquire(url).await? {
                if logged {
                    info!(database = %held_name(url), "standby took over the database");
                }
                return Ok(fence);
            }
            if !logged {
                info!(
                    database = %held_name(url),
                    "standby: the database is held by another live node; waiting for it"
                );
                logged = true;
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Whether the fence is still held: for PostgreSQL, the fence session answers (a lost
    /// session has lost its lock, and another node may now hold it).
    pub async fn check(&mut self) -> Result<(), FenceError> {
        match &mut self._hold {
            Hold::Postgres(conn) => conn.ping().await.map_err(FenceError::Postgres),
            Hold::None | Hold::File(_) => Ok(()),
        }
    }
}

fn held_name(url: &str) -> String {
    match target(url) {
        Ok(Target::File(path)) => path.display().to_string(),
        _ => redacted(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_sits_next_to_the_database() {
        let Ok(Target::File(p)) = target("sqlite:/tmp/x/node.db?mode=rwc") else {
            panic!("not a file target")
        };
        assert_eq!(p, PathBuf::from("/tmp/x/node.db.lock"));
        let Ok(Target::File(p)) = target("sqlite:///tmp/y.db") else {
            panic!("not a file target")
        };
        assert_eq!(p, PathBuf::from("/tmp/y.db.lock"));
        assert!(matches!(target("sqlite::memory:"), Ok(Target::None)));
        assert!(matches!(
            target("mysql://x"),
            Err(FenceError::UnsupportedUrl(_))
        ));
    }

    #[test]
    fn redacts_the_password() {
        assert_eq!(
            redacted("postgres://kh:secret@127.0.0.1:5432/db"),
            "postgres://127.0.0.1:5432/db"
        );
        assert_eq!(
            redacted("postgres://127.0.0.1/db"),
            "postgres://127.0.0.1/db"
        );
    }

    #[tokio::test]
    async fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = std::env::temp_dir().join("kh-ledger-fence-unit");
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let url = format!(
            "sqlite:{}",
            dir.join(format!("{}.db", uuid::Uuid::new_v4())).display()
        );
        let first = Fence::try_acquire(&url).await.ok().flatten();
        assert!(first.is_some());
        assert!(matches!(Fence::try_acquire(&url).await, Ok(None)));
        drop(first);
        assert!(matches!(Fence::try_acquire(&url).await, Ok(Some(_))));
    }
}
