//! The sending side of the node link: a TLS client that accepts only the certificate pinned
//! for the node it means to reach (in the network directory), after the usual chain check to
//! the network root. A server with any other certificate of the root — another node's, an RPC
//! client's, a second one issued for the same name — is refused during the handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tonic::transport::{Channel, Endpoint};

use crate::TlsIdentity;

/// Building a pinned client failed (bad PEM, unusable root or key).
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A PEM object did not parse.
    #[error("{what}: {reason}")]
    Pem {
        /// Which object.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The root did not make a verifier.
    #[error("TLS verifier: {0}")]
    Verifier(String),
}

/// Checks the chain to the root and server name as usual, then that the server's certificate
/// is byte for byte the pinned one.
#[derive(Debug)]
struct PinnedVerifier {
    chain: Arc<WebPkiServerVerifier>,
    pinned: Vec<u8>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.chain.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if end_entity.as_ref() != self.pinned.as_slice() {
            return Err(rustls::Error::General(
                "the server's certificate is not the one pinned for the node".into(),
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

/// A client configuration presenting `identity`, trusting `root_pem`, and accepting only a
/// server whose certificate is `pinned_der`.
pub fn pinned_client_config(
    identity: &TlsIdentity,
    root_pem: &str,
    pinned_der: &[u8],
) -> Result<Arc<ClientConfig>, PinError> {
    let pem = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| PinError::Pem {
            what,
            reason: e.to_string(),
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.map_err(pem("network root"))?)?;
    }
    let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| PinError::Verifier(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem("node certificate"))?;
    let key =
        PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(pem("node key"))?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
            chain,
            pinned: pinned_der.to_vec(),
        }))
        .with_client_auth_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connecting gRPC channel to `address` over TLS with `config` (server name
/// `localhost`, as the network's certificates carry).
pub fn pinned_channel(address: SocketAddr, config: Arc<ClientConfig>) -> Result<Channel, PinError> {
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let config = config.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(address).await?;
            let name = ServerName::try_from("localhost")
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| PinError::Verifier(format!("endpoint {address}: {e}")))?;
    Ok(endpoint.connect_with_connector_lazy(connector))
}
