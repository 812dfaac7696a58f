//! `node.toml`: how one node process is configured. Key material is referenced by path, never
//! inlined. See `node.example.toml` next to this crate's `Cargo.toml` for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kh_ledger::{Failpoint, NodeRole, PartyName};
use serde::{Deserialize, Serialize};

/// A node's role as written in `node.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// A business node (`regular`).
    Regular,
    /// The network's notary (`notary`).
    Notary,
    /// A third-party Validator that co-signs transactions it is asked to (`validator`).
    Validator,
}

impl From<RoleName> for NodeRole {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Regular => NodeRole::Regular,
            RoleName::Notary => NodeRole::Notary,
            RoleName::Validator => NodeRole::Validator,
        }
    }
}

/// A failpoint as written in `node.toml` (tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailpointName {
    /// `crash-after-notarise-request`: the payer stops once its notarisation request is out.
    CrashAfterNotariseRequest,
    /// `crash-after-key-response`: the payee stops once its account-key answer is out.
    CrashAfterKeyResponse,
}

impl From<FailpointName> for Failpoint {
    fn from(f: FailpointName) -> Self {
        match f {
            FailpointName::CrashAfterNotariseRequest => Failpoint::CrashAfterNotariseRequest,
            FailpointName::CrashAfterKeyResponse => Failpoint::CrashAfterKeyResponse,
        }
    }
}

impl std::str::FromStr for FailpointName {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "crash-after-notarise-request" => Ok(Self::CrashAfterNotariseRequest),
            "crash-after-key-response" => Ok(Self::CrashAfterKeyResponse),
            other => Err(ConfigError::Invalid {
                key: "failpoint",
                reason: format!(
                    "unknown failpoint {other:?} (crash-after-notarise-request, crash-after-key-response)"
                ),
            }),
        }
    }
}

/// One node's `node.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFileConfig {
    /// \[Required\] Legal name, e.g. `O=PartyA, L=Tokyo, C=JP`; must be in the network parameters.
    pub name: String,
    /// \[Required\] `regular` or `notary`.
    pub role: RoleName,
    /// \[Required\] `sqlite:PATH` or `postgres://user@host/db`.
    pub database_url: String,
    /// \[Required\] Hex Ed25519 identity secret (a 0600 file).
    pub identity_key: PathBuf,
    /// \[Required\] The node's TLS certificate (PEM), issued by the network root.
    pub tls_cert: PathBuf,
    /// \[Required\] The node's TLS private key (PEM, a 0600 file).
    pub tls_key: PathBuf,
    /// \[Required\] The network directory (`network.json`, `root.pem`).
    pub network_dir: PathBuf,
    /// \[Default: `network_dir/root.pem`\] The network root certificate peers and clients chain to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cert: Option<PathBuf>,
    /// \[Default: this node's `rpc` address in `network.json`\] Client RPC listen address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_listen: Option<SocketAddr>,
    /// \[Default: this node's `p2p` address in `network.json`\] Node-to-node listen address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_listen: Option<SocketAddr>,
    /// \[Default: `["stablecoin"]`\] The apps this node runs (see `KNOWN_APPS`); the node
    /// refuses transactions of contracts none of them has.
    #[serde(default = "default_apps")]
    pub apps: Vec<String>,
    /// \[Default: none\] The LCP attestation root certificate (a DER file) that the IBC host's
    /// LCP clients trust (`kakehashi lcp enclave info` prints a simulation node's root); without
    /// it the host refuses to create LCP clients. Every host operator needs the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lcp_attestation_root: Option<PathBuf>,
    /// \[Default: 120000\] How long a flow may run before it fails and releases its soft locks.
    #[serde(default = "default_flow_timeout_ms")]
    pub flow_timeout_ms: u64,
    /// \[Default: `rpc-users.json` in the directory of `tls_cert`\] The node's RPC users (see
    /// `kakehashi ledger users add`); the RPC admits no one else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_users: Option<PathBuf>,
    /// \[Default: none\] Tests only: stop the flow engine at this point (see [`FailpointName`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failpoint: Option<FailpointName>,
}

fn default_apps() -> Vec<String> {
    crate::DEFAULT_APPS.iter().map(|s| s.to_string()).collect()
}

fn default_flow_timeout_ms() -> u64 {
    u64::try_from(kh_ledger::DEFAULT_FLOW_TIMEOUT.as_millis()).unwrap_or(u64::MAX)
}

/// `node.toml` could not be read or is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node configuration.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key).
        reason: String,
    },
    /// A key has a value that cannot work.
    #[error("key {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl NodeFileConfig {
    /// Parses `text` (TOML) and validates it.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let me: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        me.validate()?;
        Ok(me)
    }

    /// Reads, parses and validates `path`.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks every value that can be checked without touching the network or the files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.party_name()?;
        let url = self.database_url.as_str();
        let db_ok = url
            .strip_prefix("sqlite:")
            .map(|rest| !rest.is_empty())
            .or_else(|| {
                url.strip_prefix("postgres://")
                    .or_else(|| url.strip_prefix("postgresql://"))
                    .map(|rest| !rest.is_empty())
            })
            .unwrap_or(false);
        if !db_ok {
            return Err(ConfigError::Invalid {
                key: "database_url",
                reason: format!("{url:?} is neither sqlite:PATH nor postgres://..."),
            });
        }
        for (key, path) in [
            ("identity_key", &self.identity_key),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("network_dir", &self.network_dir),
        ] {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "empty path".into(),
                });
            }
        }
        crate::apps_by_name(&self.apps).map_err(|reason| ConfigError::Invalid {
            key: "apps",
            reason,
        })?;
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.apps.iter().find(|a| !seen.insert(a.as_str())) {
            return Err(ConfigError::Invalid {
                key: "apps",
                reason: format!("{dup:?} is listed twice"),
            });
        }
        if self.flow_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "flow_timeout_ms",
                reason: "must be positive".into(),
            });
        }
        if let (Some(rpc), Some(p2p)) = (self.rpc_listen, self.p2p_listen)
            && rpc == p2p
            && rpc.port() != 0
        {
            return Err(ConfigError::Invalid {
                key: "rpc_listen",
                reason: format!("{rpc} is also p2p_listen"),
            });
        }
        Ok(())
    }

    /// The node's legal name.
    pub fn party_name(&self) -> Result<PartyName, ConfigError> {
        self.name.parse().map_err(|e| ConfigError::Invalid {
            key: "name",
            reason: format!("{e}"),
        })
    }

    /// The RPC user file's path.
    pub fn rpc_users_path(&self) -> PathBuf {
        self.rpc_users.clone().unwrap_or_else(|| {
            self.tls_cert
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join(crate::USERS_FILE)
        })
    }

    /// The root certificate's path.
    pub fn root_cert_path(&self) -> PathBuf {
        self.root_cert
            .clone()
            .unwrap_or_else(|| self.network_dir.join("root.pem"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> NodeFileConfig {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("node.example.toml");
        NodeFileConfig::read(&path).unwrap()
    }

    #[test]
    fn the_committed_example_parses_and_validates() {
        let c = example();
        assert_eq!(c.party_name().unwrap().organisation(), "PartyA");
        assert_eq!(c.role, RoleName::Regular);
        assert_eq!(
            c.root_cert_path(),
            PathBuf::from("/var/lib/kakehashi/network/root.pem")
        );
        assert_eq!(c.failpoint, None);
    }

    #[test]
    fn wrong_values_name_their_key() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("node.example.toml"),
        )
        .unwrap();
        let p = Path::new("node.toml");
        let cases = [
            (
                "name = \"O=PartyA, L=Tokyo, C=JP\"",
                "name = \"PartyA\"",
                "name",
            ),
            (
                "database_url = \"sqlite:/var/lib/kakehashi/PartyA/node.db\"",
                "database_url = \"mysql://x\"",
                "database_url",
            ),
            ("role = \"regular\"", "role = \"auditor\"", "role"),
            (
                "role = \"regular\"",
                "role = \"regular\"\ncolour = 1",
                "colour",
            ),
            (
                "role = \"regular\"",
                "role = \"regular\"\nfailpoint = \"explode\"",
                "failpoint",
            ),
        ];
        for (from, to, key) in cases {
            assert!(text.contains(from), "{from}");
            let err = NodeFileConfig::parse(&text.replace(from, to), p).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let ok = text.replace(
            "role = \"regular\"",
            "role = \"regular\"\nfailpoint = \"crash-after-key-response\"",
        );
        assert_eq!(
            NodeFileConfig::parse(&ok, p).unwrap().failpoint,
            Some(FailpointName::CrashAfterKeyResponse)
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let c = example();
        let text = toml::to_string_pretty(&c).unwrap();
        assert_eq!(NodeFileConfig::parse(&text, Path::new("x")).unwrap(), c);
    }
}
