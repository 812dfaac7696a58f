//! Sealing in simulation: the enclave encrypts its keys with a key only the same enclave build
//! on the same platform can derive, as SGX's MRENCLAVE-policy sealing does.
//!
//! The sealing key is `SHA-256("kakehashi-lcp-seal-v1" ‖ platform secret ‖ MRENCLAVE)`, where
//! the platform secret (32 random bytes in a file created at setup) stands for the CPU's fused
//! seal secret and MRENCLAVE is the measurement of the enclave build ([`measure`]). The sealed
//! blob is `nonce(12) ‖ ChaCha20-Poly1305(plaintext, aad = MRENCLAVE)`. Another build (another
//! measurement) or another platform derives another key, and unsealing fails.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

const DOMAIN: &[u8] = b"kakehashi-lcp-seal-v1";
const NONCE_LEN: usize = 12;
/// Length of the platform secret.
pub const PLATFORM_SECRET_LEN: usize = 32;

/// Why sealing or unsealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The blob does not decrypt under this enclave's sealing key (another build, another
    /// platform, or a changed byte).
    #[error("sealed data does not open under this enclave's sealing key")]
    Unseal,
    /// The blob is too short.
    #[error("sealed data is {0} bytes, too short")]
    TooShort(usize),
    /// Encryption failed.
    #[error("sealing failed")]
    Seal,
    /// The platform secret file cannot be read or written, or has the wrong length.
    #[error("platform secret {path}: {reason}")]
    PlatformSecret {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// The measurement of an enclave build: SHA-256 of the enclave executable's bytes.
pub fn measure(executable: &Path) -> std::io::Result<[u8; 32]> {
    let bytes = std::fs::read(executable)?;
    Ok(Sha256::digest(bytes).into())
}

/// The simulated platform's seal secret.
pub struct PlatformSecret([u8; PLATFORM_SECRET_LEN]);

impl std::fmt::Debug for PlatformSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformSecret(..)")
    }
}

impl PlatformSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut s = [0u8; PLATFORM_SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut s);
        PlatformSecret(s)
    }

    /// Loads the secret from `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let err = |reason: String| SealError::PlatformSecret {
            path: path.display().to_string(),
            reason,
        };
        if path.exists() {
            let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let raw: [u8; PLATFORM_SECRET_LEN] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| err(format!("{} bytes, expected 32", bytes.len())))?;
            return Ok(PlatformSecret(raw));
        }
        let secret = PlatformSecret::generate();
        write_private(path, &secret.0).map_err(|e| err(e.to_string()))?;
        Ok(secret)
    }
}

/// Writes a file readable by its owner only (created new: an existing file is not replaced).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// The sealing capability of one enclave build on one platform.
pub struct Sealer {
    key: [u8; 32],
    mrenclave: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("mrenclave", &hex::encode(self.mrenclave))
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Derives the sealing key of the build measured `mrenclave` on `platform`.
    pub fn new(platform: &PlatformSecret, mrenclave: [u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(platform.0);
        h.update(mrenclave);
        Sealer {
            key: h.finalize().into(),
            mrenclave,
        }
    }

    /// The measurement this sealer is bound to.
    pub fn mrenclave(&self) -> [u8; 32] {
        self.mrenclave
    }

    /// Seals `plaintext`.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = ChaCha20Poly1305::new(&Key::from(self.key));
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.mrenclave,
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Unseals a blob sealed by the same build on the same platform.
    pub fn unseal(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::TooShort(sealed.len()));
        }
        let cipher = ChaCha20Poly1305::new(&Key::from(self.key));
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[..NONCE_LEN]);
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[NONCE_LEN..],
                    aad: &self.mrenclave,
                },
            )
            .map_err(|_| SealError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_measurement_or_platform_cannot_unseal() {
        let platform = PlatformSecret::generate();
        let sealer = Sealer::new(&platform, [1; 32]);
        let blob = sealer.seal(b"enclave key").unwrap();
        assert_eq!(sealer.unseal(&blob).unwrap(), b"enclave key");
        assert!(matches!(
            Sealer::new(&platform, [2; 32]).unseal(&blob),
            Err(SealError::Unseal)
        ));
        assert!(matches!(
            Sealer::new(&PlatformSecret::generate(), [1; 32]).unseal(&blob),
            Err(SealError::Unseal)
        ));
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert!(sealer.unseal(&bad).is_err());
        assert!(sealer.unseal(&blob[..10]).is_err());
    }
}
