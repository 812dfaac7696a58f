//! RPC users and permissions, in the spirit of Corda's RPC users: a node's RPC admits only the
//! users in its own user file (`rpc-users.json` next to its `node.toml`), each identified by the
//! SHA-256 of the client certificate issued for it and holding one permission level. Another
//! node's TLS identity, or a user of another node, is not in the file and is refused.
//!
//! Levels, each including the ones before: `read` (accounts, vault, states, transactions,
//! events, flow status), `flows` (also start flows and create accounts), `admin` (also kill
//! flows and archive).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::directory::{DirectoryError, write_secret};
use crate::{NetworkCa, PkiError, TlsIdentity};

/// What an RPC user may do (each level includes the lower ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read accounts, vault, states, transactions, events and flows.
    Read,
    /// Also start flows and create accounts.
    Flows,
    /// Also kill flows and archive.
    Admin,
}

impl std::str::FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "flows" => Ok(Self::Flows),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown permission {other:?} (read, flows, admin)")),
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Flows => "flows",
            Self::Admin => "admin",
        })
    }
}

/// One RPC user of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcUser {
    /// The user's name (unique per node).
    pub name: String,
    /// Its permission level.
    pub permission: Permission,
    /// Hex SHA-256 of the DER of the client certificate issued for it.
    pub cert_sha256: String,
}

/// Hex SHA-256 of a certificate's DER (how users are recognised).
pub fn cert_fingerprint(cert_der: &[u8]) -> String {
    hex::encode(Sha256::digest(cert_der))
}

/// User file failures.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] DirectoryError),
    /// The file is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A user of that name exists.
    #[error("the node already has an RPC user named {0:?}")]
    Exists(String),
    /// Names are 1 to 64 characters of letters, digits, `-`, `_` and `.`.
    #[error("bad user name {0:?} (1 to 64 of A-Z a-z 0-9 - _ .)")]
    BadName(String),
    /// Certificate issuance failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// A node's RPC users: read from its file, re-read when the file changes, so users added while
/// the node runs are admitted at once.
#[derive(Debug)]
pub struct RpcUsers {
    source: Source,
}

#[derive(Debug)]
enum Source {
    File {
        path: PathBuf,
        cache: Mutex<(Option<SystemTime>, Vec<RpcUser>)>,
    },
    Fixed(Vec<RpcUser>),
}

impl RpcUsers {
    /// The users in `path` (a missing file means no users: every call is refused).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            source: Source::File {
                path: path.into(),
                cache: Mutex::new((None, vec![])),
            },
        }
    }

    /// A fixed set of users (embedded nodes and tests).
    pub fn fixed(users: Vec<RpcUser>) -> Self {
        Self {
            source: Source::Fixed(users),
        }
    }

    /// The user holding the certificate `cert_der`, if any.
    pub fn find(&self, cert_der: &[u8]) -> Result<Option<RpcUser>, UsersError> {
        let fingerprint = cert_fingerprint(cert_der);
        let pick = |users: &[RpcUser]| users.iter().find(|u| u.cert_sha256 == fingerprint).cloned();
        match &self.source {
            Source::Fixed(users) => Ok(pick(users)),
            Source::File { path, cache } => {
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let mut cache = cache.lock().map_err(|_| UsersError::Malformed {
                    path: path.clone(),
                    reason: "user cache poisoned".into(),
                })?;
                if modified.is_none() {
                    *cache = (None, vec![]);
                } else if cache.0 != modified {
                    *cache = (modified, read_users(path)?);
                }
                Ok(pick(&cache.1))
            }
        }
    }
}

/// The users in a user file (none when it does not exist).
pub fn read_users(path: &Path) -> Result<Vec<RpcUser>, UsersError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => {
            return Err(DirectoryError::Io {
                what: "reading",
                path: path.to_path_buf(),
                source,
            }
            .into());
        }
    };
    serde_json::from_str(&text).map_err(|e| UsersError::Malformed {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Issues a client certificate for user `name` of node `org` with `permission`, writes it as
/// `rpc-NAME.pem` / `rpc-NAME.key` (0600) in `node_dir` and adds the user to the node's user
/// file `node_dir/rpc-users.json`.
pub fn add_user(
    ca: &NetworkCa,
    node_dir: &Path,
    org: &str,
    name: &str,
    permission: Permission,
) -> Result<(RpcUser, TlsIdentity), UsersError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(UsersError::BadName(name.to_string()));
    }
    let path = node_dir.join(USERS_FILE);
    let mut users = read_users(&path)?;
    if users.iter().any(|u| u.name == name) {
        return Err(UsersError::Exists(name.to_string()));
    }
    let identity = ca.issue(&format!("{name}@{org}"))?;
    let user = RpcUser {
        name: name.to_string(),
        permission,
        cert_sha256: cert_fingerprint(&identity.cert_der),
    };
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| DirectoryError::Io { what, path, source }
    };
    let cert_path = node_dir.join(format!("rpc-{name}.pem"));
    std::fs::write(&cert_path, &identity.cert_pem).map_err(io("writing", &cert_path))?;
    write_secret(&node_dir.join(format!("rpc-{name}.key")), &identity.key_pem)?;
    users.push(user.clone());
    let text = serde_json::to_string_pretty(&users).map_err(|e| UsersError::Malformed {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    // Write then rename, so a running node never reads half a file.
    let tmp = node_dir.join(format!("{USERS_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("replacing", &path))?;
    Ok((user, identity))
}

/// The user file's name in a node's directory.
pub const USERS_FILE: &str = "rpc-users.json";

/// Reads the client identity of user `name` from `node_dir` (written by [`add_user`]).
pub fn read_user_identity(node_dir: &Path, name: &str) -> Result<TlsIdentity, DirectoryError> {
    let read = |file: String| {
        let p = node_dir.join(file);
        std::fs::read_to_string(&p).map_err(|source| DirectoryError::Io {
            what: "reading",
            path: p,
            source,
        })
    };
    Ok(TlsIdentity {
        cert_pem: read(format!("rpc-{name}.pem"))?,
        cert_der: vec![],
        key_pem: read(format!("rpc-{name}.key"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_certificate_and_the_file_is_reread() {
        let dir = std::env::temp_dir().join(format!("kh-users-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = NetworkCa::generate("test").unwrap();
        let users = RpcUsers::file(dir.join(USERS_FILE));
        let other = ca.issue("stranger").unwrap();
        assert_eq!(users.find(&other.cert_der).unwrap(), None);
        let (ops, ops_id) = add_user(&ca, &dir, "PartyA", "ops", Permission::Read).unwrap();
        assert_eq!(users.find(&ops_id.cert_der).unwrap(), Some(ops));
        assert_eq!(users.find(&other.cert_der).unwrap(), None);
        assert!(matches!(
            add_user(&ca, &dir, "PartyA", "ops", Permission::Admin),
            Err(UsersError::Exists(_))
        ));
        assert!(matches!(
            add_user(&ca, &dir, "PartyA", "../x", Permission::Admin),
            Err(UsersError::BadName(_))
        ));
        assert_eq!(read_users(&dir.join(USERS_FILE)).unwrap().len(), 1);
        assert!("write".parse::<Permission>().is_err());
        assert!(Permission::Admin > Permission::Flows && Permission::Flows > Permission::Read);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
