//! The relayer's configuration file (TOML). Every table refuses keys it does not know, so a
//! misspelt option is an error at start rather than a default silently used.
//!
//! The commented example is `crates/relayer/relayer.example.toml`; a test parses it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::Address;
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, or an unknown or missing key.
    #[error("invalid relayer configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// Valid TOML whose values do not make sense together.
    #[error("invalid relayer configuration: {0}")]
    Invalid(String),
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayerConfig {
    /// The EVM chain.
    pub evm: EvmConfig,
    /// The ledger (the node that runs the IBC host).
    pub ledger: Option<LedgerConfig>,
    /// The LCP node that proves each chain to the other.
    pub lcp: Option<LcpConfig>,
    /// The paths (a channel between the two chains each), by name.
    #[serde(default)]
    pub paths: std::collections::BTreeMap<String, PathConfig>,
    /// How the relay works.
    #[serde(default)]
    pub relay: RelayConfig,
    /// Which process may submit.
    #[serde(default)]
    pub lease: LeaseConfig,
    /// Metrics and health.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// The EVM chain: endpoints, identity, submission policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvmConfig {
    /// EIP-155 chain id; every endpoint must report it.
    pub chain_id: u64,
    /// JSON-RPC endpoints in order of preference (hot standby: the next one is used when the
    /// current one fails).
    pub rpc: Vec<String>,
    /// The IBC handler (its proxy address).
    pub handler: Address,
    /// The signer.
    pub signer: SignerConfig,
    /// Blocks on top of a transaction's block before it counts as confirmed (1 = included).
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// Added to `eth_estimateGas`, in percent.
    #[serde(default = "default_gas_margin")]
    pub gas_margin_percent: u64,
    /// At most this many IBC messages in one handler `multicall` transaction (a client update
    /// not counted); a larger batch goes in several, and a multicall over the block gas limit
    /// is halved.
    #[serde(default = "default_max_messages_per_tx")]
    pub max_messages_per_tx: usize,
    /// Bound on each JSON-RPC request.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Bound on the wait for a transaction's confirmation.
    #[serde(default = "default_confirm_timeout", with = "humantime_serde")]
    pub confirm_timeout: Duration,
    /// WebSocket endpoints for the new-block doorbell (none: the reconciliation timer only).
    #[serde(default)]
    pub ws: Vec<String>,
    /// TLS of the EVM links. When set, every `rpc` endpoint must be `https://` and every `ws`
    /// endpoint `wss://`; their certificates must chain to `ca` (the system's roots are not
    /// used) and the relayer presents `cert`. Without it, `https://`/`wss://` endpoints are
    /// checked against the system's roots and no client certificate is presented.
    #[serde(default)]
    pub tls: Option<EvmTlsConfig>,
}

/// TLS of the EVM links: whom to trust, and the relayer's client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvmTlsConfig {
    /// The root certificate(s) the nodes' certificates chain to (PEM).
    pub ca: PathBuf,
    /// The relayer's client certificate (PEM), for nodes that require one; with `key`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// The ledger: the relayer is an RPC user of the node that runs the IBC host, with the
/// certificate `kakehashi ledger users add --permissions flows` issued to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The node's RPC address.
    pub rpc: SocketAddr,
    /// The relayer's RPC user certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The ledger network's root certificate (PEM).
    pub root_cert: PathBuf,
    /// Bound on one submission (a host transaction).
    #[serde(default = "default_confirm_timeout", with = "humantime_serde")]
    pub flow_timeout: Duration,
}

/// The LCP node: its gRPC service with mutual TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LcpConfig {
    /// The service's address.
    pub addr: SocketAddr,
    /// The relayer's client certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The root certificate the service's certificate chains to (PEM).
    pub root_cert: PathBuf,
    /// How long an enclave key stays valid after its attestation, in the LCP clients created.
    #[serde(default = "default_key_expiration", with = "humantime_serde")]
    pub key_expiration: Duration,
    /// The clock drift the ELCs allow.
    #[serde(default = "default_clock_drift", with = "humantime_serde")]
    pub max_clock_drift: Duration,
}

/// One path: a channel between a port on the EVM chain and a port on the ledger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// Where `relayer tx` writes the identifiers it created and `relayer start` reads them.
    pub state: PathBuf,
    /// The port on the EVM chain.
    #[serde(default = "default_port")]
    pub evm_port: String,
    /// The port on the ledger.
    #[serde(default = "default_port")]
    pub ledger_port: String,
    /// The app version both ports agree on.
    #[serde(default = "default_version")]
    pub version: String,
    /// `unordered` or `ordered`.
    #[serde(default = "default_ordering")]
    pub ordering: String,
}

/// How the relay works through its queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// At most this many packets (or acks, or timeouts) in one submission.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// How often each chain is read even when no notification came (the reconciliation that
    /// catches a subscription that died silently).
    #[serde(default = "default_reconcile", with = "humantime_serde")]
    pub reconcile_every: Duration,
    /// How often the relayer checks LCP's enclave keys: when the freshest has less than a quarter
    /// of its validity left it has LCP generate a new one and registers it on both chains.
    #[serde(default = "default_key_refresh", with = "humantime_serde")]
    pub key_refresh: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_batch: default_max_batch(),
            reconcile_every: default_reconcile(),
            key_refresh: default_key_refresh(),
        }
    }
}

/// Where the relayer's EVM key comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum SignerConfig {
    /// An Ethereum v3 keystore file (scrypt or pbkdf2, AES-128-CTR), as geth, Besu's
    /// `ethsigner` and web3 libraries write it. The password comes from a file (first line) or
    /// from an environment variable, never from this file.
    Keystore {
        /// The keystore JSON file.
        path: PathBuf,
        /// A file holding the password.
        #[serde(default)]
        password_file: Option<PathBuf>,
        /// An environment variable holding the password.
        #[serde(default)]
        password_env: Option<String>,
    },
    /// A remote signer answering `eth_signTransaction` with the signed transaction (Web3Signer's
    /// Ethereum JSON-RPC, or any node that holds the key). The relayer checks every answer: the
    /// transaction it asked for, signed by `address`.
    Remote {
        /// The signer's JSON-RPC URL.
        url: String,
        /// The account it signs for.
        address: Address,
        /// TLS towards the signer (an `https://` URL then required); default: `[evm.tls]`.
        #[serde(default)]
        tls: Option<EvmTlsConfig>,
    },
}

/// The lease that elects the one submitting process (cold standby, R5).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum LeaseConfig {
    /// An exclusive lock on a file (processes on one host). The operating system releases it
    /// when the holder dies, so a standby takes over at its next poll.
    File {
        /// The lock file.
        path: PathBuf,
        /// How often a standby tries to take the lock.
        #[serde(default = "default_poll", with = "humantime_serde")]
        poll: Duration,
    },
    /// A row in PostgreSQL (processes on several hosts). The holder renews it every `ttl / 3`;
    /// a standby takes it once it has not been renewed for `ttl`, judged by the database's clock.
    Postgres {
        /// The database.
        url: String,
        /// How long a lease lasts without renewal.
        #[serde(default = "default_ttl", with = "humantime_serde")]
        ttl: Duration,
    },
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig::File {
            path: PathBuf::from("relayer.lock"),
            poll: default_poll(),
        }
    }
}

/// The metrics and health endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address of `/metrics` and `/health` (loopback by default: the relayer listens
    /// for nothing else).
    #[serde(default = "default_metrics_addr")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_addr(),
        }
    }
}

fn default_confirmations() -> u64 {
    1
}
fn default_gas_margin() -> u64 {
    20
}
fn default_max_messages_per_tx() -> usize {
    crate::evm::SubmitPolicy::default().max_messages_per_tx
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_confirm_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_key_expiration() -> Duration {
    Duration::from_secs(86_400)
}
fn default_clock_drift() -> Duration {
    Duration::from_secs(10)
}
fn default_port() -> String {
    "ping".into()
}
fn default_version() -> String {
    "ping-1".into()
}
fn default_ordering() -> String {
    "unordered".into()
}
fn default_max_batch() -> usize {
    50
}
fn default_reconcile() -> Duration {
    Duration::from_secs(1)
}
fn default_key_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_poll() -> Duration {
    Duration::from_millis(500)
}
fn default_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

impl RelayerConfig {
    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: RelayerConfig = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.evm.rpc.is_empty() {
            return invalid("evm.rpc lists no endpoint");
        }
        if self.evm.confirmations == 0 {
            return invalid("evm.confirmations must be at least 1 (1 = included in a block)");
        }
        if let SignerConfig::Keystore {
            password_file,
            password_env,
            ..
        } = &self.evm.signer
            && password_file.is_some() == password_env.is_some()
        {
            return invalid("evm.signer needs exactly one of password_file and password_env");
        }
        if let Some(tls) = &self.evm.tls {
            check_tls("evm.tls", tls)?;
            if let Some(url) = self.evm.rpc.iter().find(|u| !u.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "evm.tls is set but evm.rpc endpoint {url} is not https://"
                )));
            }
            if let Some(url) = self.evm.ws.iter().find(|u| !u.starts_with("wss://")) {
                return Err(ConfigError::Invalid(format!(
                    "evm.tls is set but evm.ws endpoint {url} is not wss://"
                )));
            }
        }
        if let SignerConfig::Remote { url, tls, .. } = &self.evm.signer {
            if let Some(tls) = tls {
                check_tls("evm.signer.tls", tls)?;
            }
            if tls.as_ref().or(self.evm.tls.as_ref()).is_some() && !url.starts_with("https://") {
                return Err(ConfigError::Invalid(format!(
                    "TLS is set for the remote signer but its url {url} is not https://"
                )));
            }
        }
        for (name, path) in &self.paths {
            if !matches!(path.ordering.as_str(), "ordered" | "unordered") {
                return Err(ConfigError::Invalid(format!(
                    "paths.{name}.ordering is `ordered` or `unordered`"
                )));
            }
        }
        if self.relay.max_batch == 0 {
            return invalid("relay.max_batch must be at least 1");
        }
        if self.evm.max_messages_per_tx == 0 {
            return invalid("evm.max_messages_per_tx must be at least 1");
        }
        if let LeaseConfig::Postgres { ttl, .. } = &self.lease
            && *ttl < Duration::from_secs(1)
        {
            return invalid("lease.ttl must be at least 1s");
        }
        Ok(())
    }
}

fn check_tls(table: &str, tls: &EvmTlsConfig) -> Result<(), ConfigError> {
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(ConfigError::Invalid(format!(
            "{table} needs both cert and key, or neither"
        )));
    }
    Ok(())
}

impl SignerConfig {
    /// The TLS settings of the remote signer's link: its own, else the EVM links'.
    pub fn remote_tls<'a>(&'a self, evm: Option<&'a EvmTlsConfig>) -> Option<&'a EvmTlsConfig> {
        match self {
            SignerConfig::Remote { tls, .. } => tls.as_ref().or(evm),
            SignerConfig::Keystore { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses() {
        let text = include_str!("../relayer.example.toml");
        let config = RelayerConfig::parse(text).unwrap();
        assert_eq!(config.evm.rpc.len(), 2);
        assert!(matches!(config.lease, LeaseConfig::File { .. }));
        assert!(config.metrics.listen.ip().is_loopback());
        assert!(config.ledger.is_some() && config.lcp.is_some());
        assert_eq!(config.paths["evm-ledger"].ledger_port, "ping");
    }

    #[test]
    fn unknown_and_inconsistent_keys_are_refused() {
        let text = include_str!("../relayer.example.toml");
        let typo = text.replace("confirmations =", "confirmatons =");
        let err = RelayerConfig::parse(&typo).unwrap_err().to_string();
        assert!(err.contains("unknown field `confirmatons`"), "{err}");
        let no_rpc = text.replace(
            "rpc = [\"http://127.0.0.1:8545\", \"http://127.0.0.1:8555\"]",
            "rpc = []",
        );
        let err = RelayerConfig::parse(&no_rpc).unwrap_err().to_string();
        assert!(err.contains("no endpoint"), "{err}");
        let two_passwords = text.replace(
            "password_env = \"KH_RELAYER_PASSWORD\"",
            "password_env = \"KH_RELAYER_PASSWORD\"\npassword_file = \"p\"",
        );
        let err = RelayerConfig::parse(&two_passwords)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    #[test]
    fn tls_requires_https_and_wss_endpoints() {
        let text = include_str!("../relayer.example.toml")
            .replace("# [evm.tls]", "[evm.tls]")
            .replace("# ca = \"evm/ca.pem\"", "ca = \"evm/ca.pem\"")
            .replace("# cert = \"evm/relayer.pem\"", "cert = \"evm/relayer.pem\"")
            .replace("# key = \"evm/relayer.key\"", "key = \"evm/relayer.key\"");
        let err = RelayerConfig::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("http://127.0.0.1:8545 is not https://"),
            "{err}"
        );
        let secure = text.replace("\"http://", "\"https://");
        let err = RelayerConfig::parse(&secure).unwrap_err().to_string();
        assert!(err.contains("ws://127.0.0.1:8545 is not wss://"), "{err}");
        let secure = secure.replace("\"ws://", "\"wss://");
        let config = RelayerConfig::parse(&secure).unwrap();
        assert_eq!(
            config.evm.tls,
            Some(EvmTlsConfig {
                ca: "evm/ca.pem".into(),
                cert: Some("evm/relayer.pem".into()),
                key: Some("evm/relayer.key".into()),
            })
        );
        let half = secure.replace("key = \"evm/relayer.key\"", "");
        let err = RelayerConfig::parse(&half).unwrap_err().to_string();
        assert!(err.contains("both cert and key"), "{err}");
        let typo = secure.replace("ca = \"evm/ca.pem\"", "ca = \"evm/ca.pem\"\ncrt = \"x\"");
        let err = RelayerConfig::parse(&typo).unwrap_err().to_string();
        assert!(err.contains("unknown field `crt`"), "{err}");

        // The remote signer: [evm.tls] or its own table, and then an https:// URL.
        let remote = |url: &str, own_tls: &str| {
            secure
                .replace("kind = \"keystore\"", "kind = \"remote\"")
                .replace("path = \"relayer-key.json\"", &format!("url = \"{url}\""))
                .replace(
                    "password_env = \"KH_RELAYER_PASSWORD\"",
                    &format!("address = \"0x70997970C51812dc3A010C7d01b50e0d17dc79C8\"\n{own_tls}"),
                )
        };
        let err = RelayerConfig::parse(&remote("http://127.0.0.1:9000", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("remote signer"), "{err}");
        let config = RelayerConfig::parse(&remote("https://127.0.0.1:9000", "")).unwrap();
        assert_eq!(
            config.evm.signer.remote_tls(config.evm.tls.as_ref()),
            config.evm.tls.as_ref()
        );
        let own = "tls = { ca = \"signer/ca.pem\" }";
        let config = RelayerConfig::parse(&remote("https://127.0.0.1:9000", own)).unwrap();
        assert_eq!(
            config
                .evm
                .signer
                .remote_tls(config.evm.tls.as_ref())
                .map(|t| t.ca.clone()),
            Some(PathBuf::from("signer/ca.pem"))
        );
    }
}
