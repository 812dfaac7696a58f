//! The LCP service configuration (`kakehashi lcp service start --config FILE`): TOML, unknown
//! keys refused. Relative paths are resolved against the configuration file's directory. See
//! `crates/lcp/service/lcp.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// Default key lifetime: 7 days (LCP clients' usual key expiration).
pub const DEFAULT_KEY_LIFETIME: u64 = 7 * 24 * 3600;

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// TLS files (PEM).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The server certificate.
    pub cert: PathBuf,
    /// The server key.
    pub key: PathBuf,
    /// The CA client certificates must chain to.
    pub client_ca: PathBuf,
}

/// The service configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The node directory.
    pub home: PathBuf,
    /// Listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The enclave process command; empty: this executable with
    /// `lcp enclave run --platform-secret <home>/platform-secret`.
    #[serde(default)]
    pub enclave_command: Vec<String>,
    /// Lifetime of new enclave keys, seconds.
    #[serde(default = "default_lifetime")]
    pub key_lifetime_secs: u64,
    /// Generate a key at start if no unexpired key exists.
    #[serde(default = "default_true")]
    pub generate_key_if_missing: bool,
    /// TLS.
    pub tls: TlsFiles,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7700))
}
fn default_lifetime() -> u64 {
    DEFAULT_KEY_LIFETIME
}
fn default_true() -> bool {
    true
}

impl ServiceConfig {
    /// Reads and parses `path`, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut c: ServiceConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut c.home,
            &mut c.tls.cert,
            &mut c.tls.key,
            &mut c.tls.client_ca,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }

    /// The enclave command to run.
    pub fn enclave_command(&self) -> Result<Vec<String>, std::io::Error> {
        if !self.enclave_command.is_empty() {
            return Ok(self.enclave_command.clone());
        }
        let exe = std::env::current_exe()?;
        Ok(vec![
            exe.display().to_string(),
            "lcp".into(),
            "enclave".into(),
            "run".into(),
            "--platform-secret".into(),
            self.home.join("platform-secret").display().to_string(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("kh-lcp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("lcp.example.toml");
        let c = ServiceConfig::load(&example).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.home.is_absolute());
        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "home = \"x\"\nlisten_on = \"127.0.0.1:1\"\n[tls]\ncert = \"a\"\nkey = \"b\"\nclient_ca = \"c\"\n",
        )
        .unwrap();
        assert!(matches!(
            ServiceConfig::load(&bad),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
