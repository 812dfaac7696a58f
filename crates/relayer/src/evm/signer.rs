//! The relayer's EVM key, from an Ethereum v3 keystore file (Web3 Secret Storage: scrypt or
//! PBKDF2-SHA-256, AES-128-CTR, keccak MAC), as geth, Besu's tooling and web3 libraries write
//! it. The password comes from a file or an environment variable, never from the configuration.

use std::path::{Path, PathBuf};

use alloy_signer_local::PrivateKeySigner;

use crate::config::{EvmTlsConfig, SignerConfig};
use crate::evm::submit::{RemoteSigner, TxSigner};
use crate::evm::tls::{EvmTls, TlsError};

/// The transaction signer `config` describes: a keystore's key, or a remote signer (over TLS
/// with its own `tls` settings, else `evm_tls`, the EVM links').
pub fn load_tx_signer(
    config: &SignerConfig,
    evm_tls: Option<&EvmTlsConfig>,
) -> Result<TxSigner, SignerError> {
    match config {
        SignerConfig::Remote { url, address, .. } => {
            let tls = config.remote_tls(evm_tls).map(EvmTls::load).transpose()?;
            Ok(TxSigner::Remote(
                RemoteSigner::with_tls(url, *address, tls.as_ref()).map_err(SignerError::Remote)?,
            ))
        }
        SignerConfig::Keystore { .. } => load_signer(config).map(TxSigner::Local),
    }
}

/// Why the signer could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The password file could not be read.
    #[error("cannot read the keystore password from {path}: {source}")]
    PasswordFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The password variable is not set.
    #[error("the keystore password variable {0} is not set")]
    PasswordEnv(String),
    /// Neither or both password sources.
    #[error("the signer needs exactly one of password_file and password_env")]
    PasswordSource,
    /// The remote signer's URL does not make a client.
    #[error("remote signer: {0}")]
    Remote(String),
    /// The remote signer's TLS settings are unusable.
    #[error("remote signer TLS: {0}")]
    Tls(#[from] TlsError),
    /// A remote signer where a local key was needed.
    #[error("the signer is remote, not a keystore")]
    NotLocal,
    /// The keystore could not be decrypted (wrong password, damaged or unreadable file).
    #[error("cannot open keystore {path}: {reason}")]
    Keystore {
        /// The file.
        path: PathBuf,
        /// Why (a wrong password shows as a MAC mismatch).
        reason: String,
    },
}

/// Opens the keystore at `path` with `password`.
pub fn open_keystore(path: &Path, password: &str) -> Result<PrivateKeySigner, SignerError> {
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| SignerError::Keystore {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Loads the signer a configuration names.
pub fn load_signer(config: &SignerConfig) -> Result<PrivateKeySigner, SignerError> {
    let SignerConfig::Keystore {
        path,
        password_file,
        password_env,
    } = config
    else {
        return Err(SignerError::NotLocal);
    };
    let password = match (password_file, password_env) {
        (Some(file), None) => {
            let text =
                std::fs::read_to_string(file).map_err(|source| SignerError::PasswordFile {
                    path: file.clone(),
                    source,
                })?;
            text.lines().next().unwrap_or_default().to_string()
        }
        (None, Some(var)) => {
            std::env::var(var).map_err(|_| SignerError::PasswordEnv(var.clone()))?
        }
        _ => return Err(SignerError::PasswordSource),
    };
    open_keystore(path, &password)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../vectors/keystore/web3-secret-storage-pbkdf2.json")
    }

    #[test]
    fn the_specification_vector_opens_to_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("pass");
        std::fs::write(&password, "testpassword\n").unwrap();
        let signer = load_signer(&SignerConfig::Keystore {
            path: vector(),
            password_file: Some(password),
            password_env: None,
        })
        .unwrap();
        assert_eq!(
            signer.address().to_string().to_lowercase(),
            "0x008aeeda4d805471df9b2a5b0f38a0c3bcba786b"
        );
        assert_eq!(
            hex_of(signer.to_bytes().as_slice()),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
    }

    #[test]
    fn a_wrong_password_or_missing_source_is_refused() {
        let err = open_keystore(&vector(), "not the password")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot open keystore"), "{err}");
        let err = load_signer(&SignerConfig::Keystore {
            path: vector(),
            password_file: None,
            password_env: Some("KH_TEST_UNSET_PASSWORD_VARIABLE".into()),
        })
        .unwrap_err();
        assert!(matches!(err, SignerError::PasswordEnv(_)));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
