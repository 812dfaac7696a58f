//! The network's certificate authority: one root that issues a certificate per node (its legal
//! name in the subject, loopback names for the TLS handshake) and per RPC client.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Certificate generation failed.
#[derive(Debug, thiserror::Error)]
#[error("certificate generation failed: {0}")]
pub struct PkiError(#[from] rcgen::Error);

/// A certificate (PEM) with its private key (PEM).
#[derive(Clone)]
pub struct TlsIdentity {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Certificate, DER (what peers are pinned by).
    pub cert_der: Vec<u8>,
    /// Private key, PEM. Write it to disk with 0600 permissions; never log it.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_der_len", &self.cert_der.len())
            .finish_non_exhaustive()
    }
}

/// The network root.
pub struct NetworkCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for NetworkCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkCa")
    }
}

fn names(common_name: &str) -> Result<CertificateParams, PkiError> {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    Ok(params)
}

impl NetworkCa {
    /// A new root (P-256 ECDSA).
    pub fn generate(network: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{network} network root"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The root certificate, PEM (every node and client trusts it).
    pub fn root_pem(&self) -> String {
        self.cert.pem()
    }

    /// Issues a certificate whose subject common name is `common_name` (a node's legal name,
    /// or a client label), usable as both TLS server and client.
    pub fn issue(&self, common_name: &str) -> Result<TlsIdentity, PkiError> {
        let mut params = names(common_name)?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(TlsIdentity {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        })
    }
}
