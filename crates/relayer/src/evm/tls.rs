//! TLS of the relayer's EVM links (JSON-RPC over `https://`, the `newHeads` doorbell over
//! `wss://`, the remote signer): the roots the nodes' certificates must chain to — only those,
//! not the system's — and the relayer's client certificate for nodes that require one (Besu's
//! `--rpc-http-tls-client-auth-enabled`, GoQuorum behind a TLS terminator).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::EvmTlsConfig;

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// Which file (`ca`, `cert`, `key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificates or key (a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client side of the EVM links' TLS: a rustls configuration (ring provider) trusting the
/// configured roots and presenting the relayer's certificate, if any.
#[derive(Clone)]
pub struct EvmTls {
    config: ClientConfig,
    client_auth: bool,
}

impl std::fmt::Debug for EvmTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmTls")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl EvmTls {
    /// Reads the files `config` names.
    pub fn load(config: &EvmTlsConfig) -> Result<Self, TlsError> {
        let ca = read("ca", &config.ca)?;
        let identity = match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => Some((read("cert", cert)?, read("key", key)?)),
            (None, None) => None,
            _ => {
                return Err(TlsError::Config(
                    "a client certificate needs both cert and key".into(),
                ));
            }
        };
        Self::from_pem(
            &ca,
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
        .map_err(|e| match e {
            TlsError::Pem { what, reason, .. } => TlsError::Pem {
                what,
                path: match what {
                    "ca" => config.ca.clone(),
                    "cert" => config.cert.clone().unwrap_or_default(),
                    _ => config.key.clone().unwrap_or_default(),
                },
                reason,
            },
            other => other,
        })
    }

    /// From PEM text: the roots (`ca_pem`, one or more certificates) and optionally the client
    /// certificate chain and its key.
    pub fn from_pem(ca_pem: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<Self, TlsError> {
        let pem = |what: &'static str| {
            move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                what,
                path: PathBuf::new(),
                reason: e.to_string(),
            }
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots
                .add(cert.map_err(pem("ca"))?)
                .map_err(|e| TlsError::Pem {
                    what: "ca",
                    path: PathBuf::new(),
                    reason: e.to_string(),
                })?;
        }
        if roots.is_empty() {
            return Err(TlsError::Pem {
                what: "ca",
                path: PathBuf::new(),
                reason: "no certificate in the file".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(pem("cert"))?;
                if certs.is_empty() {
                    return Err(TlsError::Pem {
                        what: "cert",
                        path: PathBuf::new(),
                        reason: "no certificate in the file".into(),
                    });
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(pem("key"))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| TlsError::Config(e.to_string()))?
            }
        };
        Ok(EvmTls {
            config,
            client_auth: identity.is_some(),
        })
    }

    /// The rustls configuration (for jsonrpsee's `with_custom_cert_store`; no ALPN set, the
    /// HTTP client negotiates its own).
    pub fn client_config(&self) -> ClientConfig {
        self.config.clone()
    }

    /// Whether a client certificate is presented.
    pub fn client_auth(&self) -> bool {
        self.client_auth
    }
}
