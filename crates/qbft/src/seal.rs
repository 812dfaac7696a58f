//! Committed seals: secp256k1 signatures `r ‖ s ‖ v` (v ∈ {0,1}) over the seal digest.

use alloy_primitives::{Address, B256, keccak256};
use std::sync::OnceLock;

use k256::ecdsa::{SigningKey, VerifyingKey};

use crate::QbftError;

/// A 65-byte committed seal `r ‖ s ‖ v` with v ∈ {0,1}.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seal(pub [u8; 65]);

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Seal(0x{})", alloy_primitives::hex::encode(self.0))
    }
}

impl Seal {
    /// Parses 65 bytes, requiring a recovery id of 0 or 1.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, &'static str> {
        let arr: [u8; 65] = bytes.try_into().map_err(|_| "not 65 bytes")?;
        if arr[64] > 1 {
            return Err("recovery id is not 0 or 1");
        }
        Ok(Self(arr))
    }

    /// Recovers the signer's address over `digest`.
    pub fn recover(&self, digest: B256) -> Result<Address, QbftError> {
        self.recover_at(digest, 0)
    }

    /// Recovery runs on libsecp256k1 (the library Besu and geth use): about three times
    /// faster than the pure-Rust curve, and header verification is the light client's hot path.
    pub(crate) fn recover_at(&self, digest: B256, index: usize) -> Result<Address, QbftError> {
        use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
        static CONTEXT: OnceLock<secp256k1::Secp256k1<secp256k1::VerifyOnly>> = OnceLock::new();
        let ctx = CONTEXT.get_or_init(secp256k1::Secp256k1::verification_only);
        let invalid = |_| QbftError::InvalidSignature { index };
        let rec = RecoveryId::try_from(i32::from(self.0[64])).map_err(invalid)?;
        let sig = RecoverableSignature::from_compact(&self.0[..64], rec).map_err(invalid)?;
        let key = ctx
            .recover_ecdsa(secp256k1::Message::from_digest(digest.0), &sig)
            .map_err(invalid)?;
        let hash = keccak256(&key.serialize_uncompressed()[1..]);
        Ok(Address::from_slice(&hash[12..]))
    }
}

/// Signs `digest` (a seal digest) with a validator key, producing a low-s seal.
pub fn sign_seal(digest: B256, key: &SigningKey) -> Seal {
    // Signing a 32-byte prehash with a valid key cannot fail: the only error paths of
    // `sign_prehash_recoverable` are a prehash shorter than the field size or a zero scalar,
    // and the digest is exactly 32 bytes.
    let (sig, rec) = key
        .sign_prehash_recoverable(digest.as_slice())
        .expect("a 32-byte prehash is always signable");
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = rec.to_byte();
    Seal(out)
}

/// The Ethereum address of a secp256k1 public key: the last 20 bytes of
/// keccak256(uncompressed point without its 0x04 prefix).
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
    Address::from_slice(&hash[12..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_recover() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let digest = keccak256(b"kakehashi");
        let seal = sign_seal(digest, &key);
        assert_eq!(
            seal.recover(digest).unwrap(),
            address_of(key.verifying_key())
        );
        assert_ne!(
            seal.recover(keccak256(b"other")).unwrap(),
            address_of(key.verifying_key())
        );
    }

    #[test]
    fn rejects_bad_recovery_id() {
        let mut bytes = [1u8; 65];
        bytes[64] = 27;
        assert!(Seal::from_slice(&bytes).is_err());
        assert!(Seal::from_slice(&bytes[..64]).is_err());
    }
}
