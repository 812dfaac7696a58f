//! The simulation attestation authority: an RSA root certificate and a report-signing
//! certificate created at setup, which sign IAS-format reports for an enclave running in
//! simulation mode. Reports it issues verify with [`crate::SignedReport::verify`] against its
//! root exactly as Intel-signed reports verify against Intel's root.
//!
//! Its signing key is a secret of the LCP operator's setup; the root certificate is what the
//! LCP clients on both chains are configured with.

use std::fmt;

use alloy_primitives::Address;
use rand::RngCore as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::attestation::{
    AttestationError, QuoteBody, ReportData, RootCa, SGX_FLAG_DEBUG, SignedReport,
};

/// RSA modulus size of the simulation keys (as Intel's report-signing key).
pub const SIMULATION_RSA_BITS: usize = 2048;

/// SGX attributes of the simulated enclave: INITTED | MODE64BIT (and DEBUG when asked).
const SIM_FLAGS: u64 = 0x01 | 0x04;
/// XFRM of the simulated enclave: x87 | SSE | AVX.
const SIM_XFRM: u64 = 0x07;

/// Why the simulation authority could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// RSA key generation, encoding or signing failed.
    #[error("RSA: {0}")]
    Rsa(String),
    /// The report could not be written.
    #[error("report encoding: {0}")]
    Encoding(String),
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Certificate(String),
    /// The stored parts do not form a valid authority.
    #[error("invalid simulation authority: {0}")]
    Invalid(#[from] AttestationError),
    /// The stored signing key does not match the signing certificate.
    #[error("the signing key does not match the signing certificate")]
    KeyMismatch,
    /// A validity window is empty or outside what a certificate can carry.
    #[error("invalid validity window {not_before}..{not_after}")]
    Validity {
        /// Requested start (Unix seconds).
        not_before: u64,
        /// Requested end (Unix seconds).
        not_after: u64,
    },
}

/// The simulation root and report-signing key.
pub struct SimulationCa {
    root: RootCa,
    signing_cert_der: Vec<u8>,
    signing_key: RsaPrivateKey,
}

impl fmt::Debug for SimulationCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulationCa")
            .field("root", &self.root)
            .field("signing_cert_len", &self.signing_cert_der.len())
            .finish_non_exhaustive()
    }
}

impl SimulationCa {
    /// Creates a new root and signing certificate (fresh 2048-bit RSA keys), both valid from
    /// `not_before` to `not_after` (Unix seconds).
    pub fn generate(not_before: u64, not_after: u64) -> Result<Self, SimulationError> {
        let window_err = SimulationError::Validity {
            not_before,
            not_after,
        };
        // GeneralizedTime in certificates ends at year 9999.
        if not_before >= not_after || not_after >= 253_402_300_799 {
            return Err(window_err);
        }
        let mut rng = rand::rngs::OsRng;
        let root_key = RsaPrivateKey::new(&mut rng, SIMULATION_RSA_BITS)
            .map_err(|e| SimulationError::Rsa(e.to_string()))?;
        let signing_key = RsaPrivateKey::new(&mut rng, SIMULATION_RSA_BITS)
            .map_err(|e| SimulationError::Rsa(e.to_string()))?;
        let root_kp = rcgen_key(&root_key)?;
        let signing_kp = rcgen_key(&signing_key)?;

        let date = |t: u64| {
            i64::try_from(t)
                .ok()
                .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        };
        let (Some(nb), Some(na)) = (date(not_before), date(not_after)) else {
            return Err(window_err);
        };
        let cert_err = |e: rcgen::Error| SimulationError::Certificate(e.to_string());

        let mut root_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        root_params.distinguished_name = name("kakehashi LCP simulation root CA");
        root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        root_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        root_params.not_before = nb;
        root_params.not_after = na;
        root_params.serial_number = Some(random_serial());
        let root_cert = root_params.self_signed(&root_kp).map_err(cert_err)?;

        let mut signing_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        signing_params.distinguished_name =
            name("kakehashi LCP simulation attestation report signing");
        signing_params.is_ca = rcgen::IsCa::ExplicitNoCa;
        signing_params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::ContentCommitment,
        ];
        signing_params.not_before = nb;
        signing_params.not_after = na;
        signing_params.serial_number = Some(random_serial());
        let signing_cert = signing_params
            .signed_by(&signing_kp, &root_cert, &root_kp)
            .map_err(cert_err)?;

        let root = RootCa::from_der(root_cert.der())?;
        let ca = SimulationCa {
            root,
            signing_cert_der: signing_cert.der().to_vec(),
            signing_key,
        };
        ca.check_consistent()?;
        Ok(ca)
    }

    /// Loads an authority from its root certificate, signing certificate (DER) and signing
    /// key (PKCS#8 DER), checking that they belong together.
    pub fn from_parts(
        root_der: &[u8],
        signing_cert_der: &[u8],
        signing_key_pkcs8_der: &[u8],
    ) -> Result<Self, SimulationError> {
        let root = RootCa::from_der(root_der)?;
        let signing_key = RsaPrivateKey::from_pkcs8_der(signing_key_pkcs8_der)
            .map_err(|e| SimulationError::Rsa(e.to_string()))?;
        let ca = SimulationCa {
            root,
            signing_cert_der: signing_cert_der.to_vec(),
            signing_key,
        };
        ca.check_consistent()?;
        Ok(ca)
    }

    fn check_consistent(&self) -> Result<(), SimulationError> {
        let cert_key = self.root.check_issued(&self.signing_cert_der)?;
        if cert_key != RsaPublicKey::from(&self.signing_key) {
            return Err(SimulationError::KeyMismatch);
        }
        Ok(())
    }

    /// The root (what LCP clients are configured with).
    pub fn root(&self) -> &RootCa {
        &self.root
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        self.root.der()
    }

    /// The report-signing certificate, DER.
    pub fn signing_cert_der(&self) -> &[u8] {
        &self.signing_cert_der
    }

    /// The report-signing key, PKCS#8 DER (a secret: store it with owner-only permissions).
    pub fn signing_key_pkcs8_der(&self) -> Result<Vec<u8>, SimulationError> {
        let doc = self
            .signing_key
            .to_pkcs8_der()
            .map_err(|e| SimulationError::Rsa(e.to_string()))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// Issues a report for a simulated enclave measured `mrenclave` whose key is
    /// `enclave_key` (bound to `operator` if any), attested at Unix time `attestation_time`,
    /// with quote status `OK` and the DEBUG attribute if `debug`.
    pub fn simulate(
        &self,
        enclave_key: Address,
        operator: Option<Address>,
        mrenclave: [u8; 32],
        attestation_time: u64,
        debug: bool,
    ) -> Result<SignedReport, SimulationError> {
        let report_data = ReportData {
            enclave_key,
            operator,
        };
        let flags = if debug {
            SIM_FLAGS | SGX_FLAG_DEBUG
        } else {
            SIM_FLAGS
        };
        let quote = QuoteBody::new_simulated(flags, SIM_XFRM, mrenclave, report_data.encode());
        let id = u128::from(rand::rngs::OsRng.next_u64()) << 64
            | u128::from(rand::rngs::OsRng.next_u64());
        let body = SimulatedAvr {
            id: id.to_string(),
            timestamp: crate::time::format_avr_timestamp(attestation_time),
            version: crate::attestation::AVR_VERSION,
            quote_status: crate::attestation::QUOTE_STATUS_OK,
            quote_body: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                quote.as_bytes(),
            ),
        };
        let avr =
            serde_json::to_string(&body).map_err(|e| SimulationError::Encoding(e.to_string()))?;
        self.sign_avr(avr)
    }

    /// Signs an AVR text as given (no check that it is a well-formed report): what
    /// [`SimulationCa::simulate`] does after writing the report, exposed for tools and tests
    /// that need reports a real authority would never sign.
    pub fn sign_avr(&self, avr: String) -> Result<SignedReport, SimulationError> {
        let digest = Sha256::digest(avr.as_bytes());
        let signature = self
            .signing_key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| SimulationError::Rsa(e.to_string()))?;
        Ok(SignedReport {
            avr,
            signature,
            signing_cert: self.signing_cert_der.clone(),
        })
    }
}

/// The AVR fields, in the order IAS writes them.
#[derive(Serialize)]
struct SimulatedAvr {
    id: String,
    timestamp: String,
    version: u64,
    #[serde(rename = "isvEnclaveQuoteStatus")]
    quote_status: &'static str,
    #[serde(rename = "isvEnclaveQuoteBody")]
    quote_body: String,
}

fn name(cn: &str) -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "kakehashi");
    dn.push(rcgen::DnType::CommonName, cn);
    dn
}

fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte
    rcgen::SerialNumber::from_slice(&bytes)
}

fn rcgen_key(key: &RsaPrivateKey) -> Result<rcgen::KeyPair, SimulationError> {
    let der = key
        .to_pkcs8_der()
        .map_err(|e| SimulationError::Rsa(e.to_string()))?;
    rcgen::KeyPair::try_from(der.as_bytes())
        .map_err(|e| SimulationError::Certificate(e.to_string()))
}
