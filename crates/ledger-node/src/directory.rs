//! The network directory that `kakehashi devnet ledger` (or deployment tooling) writes and
//! clients read: `network.json` (network parameters + each node's P2P and RPC address and
//! pinned certificate) and `root.pem`. Each node's RPC users live in its own directory,
//! `nodes/<Org>/` (see [`crate::RpcUsers`]). Private keys are written with 0600 permissions and
//! never inlined in configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kh_ledger::{NetworkParameters, PartyName};
use serde::{Deserialize, Serialize};

use crate::TlsIdentity;

/// One node's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEndpoints {
    /// Node-to-node address.
    pub p2p: SocketAddr,
    /// Client RPC address.
    pub rpc: SocketAddr,
    /// The node's TLS certificate, PEM (pinned by peers).
    pub cert_pem: String,
}

/// `network.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDirectory {
    /// The network parameters.
    pub network: NetworkParameters,
    /// Endpoints by legal name.
    pub nodes: BTreeMap<String, NodeEndpoints>,
}

/// Reading or writing the directory failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// File I/O.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `network.json` is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// No node by that name.
    #[error("no node {0:?} in the network directory")]
    UnknownNode(String),
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DirectoryError + 'a {
    move |source| DirectoryError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a secret file readable by its owner only.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), DirectoryError> {
    std::fs::write(path, contents).map_err(io("writing", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io("restricting", path))?;
    }
    Ok(())
}

impl NetworkDirectory {
    /// Writes `network.json` and `root.pem` into `dir`.
    pub fn write(&self, dir: &Path, root_pem: &str) -> Result<(), DirectoryError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let path = dir.join("network.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| DirectoryError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(io("writing", &path))?;
        let root = dir.join("root.pem");
        std::fs::write(&root, root_pem).map_err(io("writing", &root))
    }

    /// Reads `network.json` and the root certificate from `dir`.
    pub fn read(dir: &Path) -> Result<(Self, String), DirectoryError> {
        let path = dir.join("network.json");
        let text = std::fs::read_to_string(&path).map_err(io("reading", &path))?;
        let me: Self = serde_json::from_str(&text).map_err(|e| DirectoryError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(io("reading", &p))
        };
        let root = read("root.pem")?;
        Ok((me, root))
    }

    /// The directory of node `org` in the network directory `dir` (its node.toml, keys and
    /// RPC users).
    pub fn node_dir(dir: &Path, org: &str) -> PathBuf {
        dir.join("nodes").join(org)
    }

    /// The client identity of RPC user `user` of node `org` (see [`crate::add_user`]).
    pub fn client_identity(
        dir: &Path,
        org: &str,
        user: &str,
    ) -> Result<TlsIdentity, DirectoryError> {
        crate::read_user_identity(&Self::node_dir(dir, org), user)
    }

    /// Finds a node by full legal name or by organisation.
    pub fn node(&self, name: &str) -> Result<(PartyName, &NodeEndpoints), DirectoryError> {
        let unknown = || DirectoryError::UnknownNode(name.to_string());
        let full: Option<PartyName> = name.parse().ok();
        let party = self
            .network
            .nodes
            .iter()
            .find(|p| Some(&p.name) == full.as_ref() || p.name.organisation() == name)
            .ok_or_else(unknown)?;
        let endpoints = self
            .nodes
            .get(&party.name.to_string())
            .ok_or_else(unknown)?;
        Ok((party.name.clone(), endpoints))
    }
}
