//! The network's certificate authority: one root that issues a certificate per node (its legal
//! name as the certificate subject, loopback names for the TLS handshake) and per RPC client;
//! and [`legal_name_of`], which reads a node's legal name back from its certificate.

use kh_ledger::PartyName;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use x509_cert::der::{Decode, Tag, Tagged};

/// Certificate generation or reading failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to build a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The bytes are not an X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The certificate subject is not a legal name (O, L, C and optionally OU, CN, once each).
    #[error("the certificate subject is not a legal name: {0}")]
    NoLegalName(String),
}

/// X.520 attribute types of a legal name, by OID, as [`PartyName`] spells them.
const NAME_ATTRIBUTES: [(&str, &str); 5] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.11", "OU"),
    ("2.5.4.10", "O"),
    ("2.5.4.7", "L"),
    ("2.5.4.6", "C"),
];

/// The legal name in a certificate's subject (DER). Node certificates issued by
/// [`NetworkCa::issue_node`] carry one; client certificates do not.
pub fn legal_name_of(cert_der: &[u8]) -> Result<PartyName, PkiError> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| PkiError::Malformed(e.to_string()))?;
    let mut parts = vec![];
    for rdn in cert.tbs_certificate.subject.0.iter() {
        for atv in rdn.0.iter() {
            let oid = atv.oid.to_string();
            let key = NAME_ATTRIBUTES
                .iter()
                .find(|(o, _)| *o == oid)
                .map(|(_, k)| *k)
                .ok_or_else(|| PkiError::NoLegalName(format!("attribute {oid}")))?;
            if !matches!(
                atv.value.tag(),
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String
            ) {
                return Err(PkiError::NoLegalName(format!("{key} is not a string")));
            }
            let value = std::str::from_utf8(atv.value.value())
                .map_err(|_| PkiError::NoLegalName(format!("{key} is not UTF-8")))?;
            parts.push(format!("{key}={value}"));
        }
    }
    let text = parts.join(", ");
    text.parse()
        .map_err(|e: kh_ledger::ParseNameError| PkiError::NoLegalName(e.reason.to_string()))
}

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

/// Loopback names for the TLS handshake (nodes and clients run on loopback here).
fn loopback() -> Result<CertificateParams, PkiError> {
    Ok(CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ])?)
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

    /// The root's private key, PEM (keep it with the network's operator, 0600).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The root from its certificate and key (as written by [`NetworkCa::root_pem`] and
    /// [`NetworkCa::key_pem`]): certificates it issues chain to that same root certificate.
    pub fn load(root_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let der = pem_to_der(root_pem)?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| PkiError::Malformed(e.to_string()))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if spki != key.public_key_raw() {
            return Err(PkiError::Malformed(
                "the key does not belong to the root certificate".into(),
            ));
        }
        let mut dn = DistinguishedName::new();
        for rdn in cert.tbs_certificate.subject.0.iter() {
            for atv in rdn.0.iter() {
                if atv.oid.to_string() == "2.5.4.3" {
                    let value = std::str::from_utf8(atv.value.value())
                        .map_err(|_| PkiError::Malformed("root CN is not UTF-8".into()))?;
                    dn.push(DnType::CommonName, value);
                }
            }
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// Issues a node certificate: its subject is the node's legal name (each attribute of
    /// `name` as its X.520 attribute), usable as TLS server and client.
    pub fn issue_node(&self, name: &PartyName) -> Result<TlsIdentity, PkiError> {
        let mut dn = DistinguishedName::new();
        let text = name.to_string();
        for part in text.split(", ") {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| PkiError::NoLegalName(text.clone()))?;
            let ty = match key {
                "CN" => DnType::CommonName,
                "OU" => DnType::OrganizationalUnitName,
                "O" => DnType::OrganizationName,
                "L" => DnType::LocalityName,
                "C" => DnType::CountryName,
                _ => return Err(PkiError::NoLegalName(text.clone())),
            };
            dn.push(ty, value);
        }
        self.sign(dn)
    }

    /// Issues a client certificate whose subject common name is `label` (an RPC user).
    pub fn issue(&self, label: &str) -> Result<TlsIdentity, PkiError> {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, label);
        self.sign(dn)
    }

    fn sign(&self, subject: DistinguishedName) -> Result<TlsIdentity, PkiError> {
        let mut params = loopback()?;
        params.distinguished_name = subject;
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

/// The DER of a PEM certificate (the body of its first `-----BEGIN ...-----` block).
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| PkiError::Malformed(format!("PEM body is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_carries_its_legal_name() {
        let ca = NetworkCa::generate("test").unwrap();
        for text in [
            "O=PartyB, L=Osaka, C=JP",
            "CN=Ops, OU=Desk, O=Bank, L=Tokyo, C=JP",
        ] {
            let name: PartyName = text.parse().unwrap();
            let cert = ca.issue_node(&name).unwrap();
            assert_eq!(legal_name_of(&cert.cert_der).unwrap(), name);
        }
    }

    #[test]
    fn a_reloaded_root_issues_certificates_of_the_same_root() {
        let ca = NetworkCa::generate("test").unwrap();
        let again = NetworkCa::load(&ca.root_pem(), &ca.key_pem()).unwrap();
        let cert = again.issue("ops@PartyA").unwrap();
        let parsed = x509_cert::Certificate::from_der(&cert.cert_der).unwrap();
        let root_der = pem_to_der(&ca.root_pem()).unwrap();
        let root = x509_cert::Certificate::from_der(&root_der).unwrap();
        assert_eq!(parsed.tbs_certificate.issuer, root.tbs_certificate.subject);
        let other = NetworkCa::generate("other").unwrap();
        assert!(NetworkCa::load(&ca.root_pem(), &other.key_pem()).is_err());
    }

    #[test]
    fn a_client_certificate_or_garbage_has_no_legal_name() {
        let ca = NetworkCa::generate("test").unwrap();
        let client = ca.issue("kakehashi client").unwrap();
        assert!(matches!(
            legal_name_of(&client.cert_der),
            Err(PkiError::NoLegalName(_))
        ));
        let mut bytes = ca.issue("x").unwrap().cert_der;
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(legal_name_of(&bytes), Err(PkiError::Malformed(_))));
        assert!(matches!(legal_name_of(&[]), Err(PkiError::Malformed(_))));
    }
}
