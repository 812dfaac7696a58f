//! TLS on the JSON-RPC port, as Besu serves it with `--rpc-http-tls-enabled` and
//! `--rpc-http-tls-client-auth-enabled`: the server's certificate and key from PEM files and,
//! optionally, a CA whose certificates clients must present. A client without such a
//! certificate is refused during the handshake, before any request is read. HTTP and WebSocket
//! share the port, as in plain mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::error::DevnetError;

/// TLS settings of the JSON-RPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcTls {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Certificates of the CA(s) that sign client certificates (PEM). When set, every client
    /// must present a certificate issued by one of them; when absent, clients are not asked
    /// for one.
    pub client_ca: Option<PathBuf>,
}

fn pem_error(path: &Path, what: &str, e: impl std::fmt::Display) -> DevnetError {
    DevnetError::Tls(format!("{} ({what}): {e}", path.display()))
}

/// The rustls server configuration `tls` describes (ring provider; ALPN h2 and http/1.1).
pub(crate) fn server_config(tls: &RpcTls) -> Result<Arc<ServerConfig>, DevnetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| pem_error(&tls.cert, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&tls.cert, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(
            &tls.cert,
            "certificate",
            "no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| pem_error(&tls.key, "key", e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DevnetError::Tls(e.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, "client CA", e))?
            {
                roots
                    .add(cert.map_err(|e| pem_error(path, "client CA", e))?)
                    .map_err(|e| pem_error(path, "client CA", e))?;
            }
            if roots.is_empty() {
                return Err(pem_error(path, "client CA", "no certificate in the file"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| pem_error(path, "client CA", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| DevnetError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
