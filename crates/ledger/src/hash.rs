//! SHA-256 hashes, transaction ids and the Merkle trees that bind a transaction's components.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SecureHash(pub [u8; 32]);

impl SecureHash {
    /// The all-zero hash (Merkle padding).
    pub const ZERO: Self = Self([0; 32]);

    /// SHA-256 of the concatenation of `parts`.
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        Self(h.finalize().into())
    }
}

impl fmt::Display for SecureHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.0))
    }
}

impl fmt::Debug for SecureHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A hash string was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hash (64 hex digits): {0:?}")]
pub struct ParseHashError(pub String);

impl FromStr for SecureHash {
    type Err = ParseHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(t).map_err(|_| ParseHashError(s.to_string()))?;
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| ParseHashError(s.to_string()))
    }
}

impl Serialize for SecureHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for SecureHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            Ok(Self(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// A transaction id: the Merkle root over the transaction's component-group roots.
///
/// ```
/// use kh_ledger::TxId;
/// let id: TxId = "00".repeat(32).parse().unwrap();
/// assert_eq!(id.to_string(), "0".repeat(64));
/// assert!("xyz".parse::<TxId>().is_err());
/// ```
pub type TxId = SecureHash;

/// Merkle root of `leaves`, padded with zero hashes to a power of two (at least two leaves).
pub(crate) fn merkle_root(leaves: &[SecureHash]) -> SecureHash {
    let mut level = padded(leaves);
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| SecureHash::of(&[&p[0].0, &p[1].0]))
            .collect();
    }
    level[0]
}

fn padded(leaves: &[SecureHash]) -> Vec<SecureHash> {
    let n = leaves.len().max(2).next_power_of_two();
    let mut level = leaves.to_vec();
    level.resize(n, SecureHash::ZERO);
    level
}

/// The sibling hashes from leaf `index` up to the root.
pub(crate) fn merkle_path(leaves: &[SecureHash], mut index: usize) -> Vec<SecureHash> {
    let mut level = padded(leaves);
    let mut path = Vec::new();
    while level.len() > 1 {
        path.push(level[index ^ 1]);
        level = level
            .chunks(2)
            .map(|p| SecureHash::of(&[&p[0].0, &p[1].0]))
            .collect();
        index /= 2;
    }
    path
}

/// Recomputes the root from a leaf, its index and its path.
pub(crate) fn root_from_path(
    leaf: SecureHash,
    mut index: usize,
    path: &[SecureHash],
) -> SecureHash {
    let mut acc = leaf;
    for sibling in path {
        acc = if index.is_multiple_of(2) {
            SecureHash::of(&[&acc.0, &sibling.0])
        } else {
            SecureHash::of(&[&sibling.0, &acc.0])
        };
        index /= 2;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_path_leads_to_the_root(n in 1usize..40, seed in any::<u8>()) {
            let leaves: Vec<SecureHash> = (0..n).map(|i| SecureHash::of(&[&[seed, i as u8]])).collect();
            let root = merkle_root(&leaves);
            for (i, leaf) in leaves.iter().enumerate() {
                let path = merkle_path(&leaves, i);
                prop_assert_eq!(root_from_path(*leaf, i, &path), root);
                prop_assert_ne!(root_from_path(SecureHash::of(&[b"x"]), i, &path), root);
            }
        }
    }
}
