//! Identities: X.500-style legal names, Ed25519 keys and signatures.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An X.500-style legal name, e.g. `O=PartyA, L=Tokyo, C=JP`.
///
/// `O` (organisation), `L` (locality) and `C` (two-letter country) are required; `OU` and `CN`
/// are optional. The canonical form lists the attributes in the order CN, OU, O, L, C.
///
/// ```
/// use kh_ledger::PartyName;
/// let name: PartyName = "C=JP, O=PartyA, L=Tokyo".parse().unwrap();
/// assert_eq!(name.to_string(), "O=PartyA, L=Tokyo, C=JP");
/// assert_eq!(name.organisation(), "PartyA");
/// assert!("O=PartyA".parse::<PartyName>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyName {
    common_name: Option<String>,
    unit: Option<String>,
    organisation: String,
    locality: String,
    country: String,
}

/// Why a legal name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid legal name {input:?}: {reason}")]
pub struct ParseNameError {
    /// The text given.
    pub input: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl PartyName {
    /// The organisation (`O`), also used as the short name of a node.
    pub fn organisation(&self) -> &str {
        &self.organisation
    }
}

impl FromStr for PartyName {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseNameError {
            input: s.to_string(),
            reason,
        };
        let (mut cn, mut ou, mut o, mut l, mut c) = (None, None, None, None, None);
        for part in s.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| err("attribute without '='"))?;
            let value = value.trim();
            if value.is_empty() || value.len() > 128 {
                return Err(err("attribute value empty or longer than 128 characters"));
            }
            if value
                .chars()
                .any(|ch| matches!(ch, ',' | '=' | '"' | '\n' | '\r') || ch.is_control())
            {
                return Err(err("attribute value holds a reserved character"));
            }
            let slot = match key.trim() {
                "CN" => &mut cn,
                "OU" => &mut ou,
                "O" => &mut o,
                "L" => &mut l,
                "C" => &mut c,
                _ => return Err(err("unknown attribute (allowed: CN, OU, O, L, C)")),
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(err("repeated attribute"));
            }
        }
        let country = c.ok_or_else(|| err("missing C"))?;
        if country.len() != 2 || !country.chars().all(|ch| ch.is_ascii_uppercase()) {
            return Err(err("C must be two upper-case letters"));
        }
        Ok(Self {
            common_name: cn,
            unit: ou,
            organisation: o.ok_or_else(|| err("missing O"))?,
            locality: l.ok_or_else(|| err("missing L"))?,
            country,
        })
    }
}

impl fmt::Display for PartyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(cn) = &self.common_name {
            write!(f, "CN={cn}, ")?;
        }
        if let Some(ou) = &self.unit {
            write!(f, "OU={ou}, ")?;
        }
        write!(
            f,
            "O={}, L={}, C={}",
            self.organisation, self.locality, self.country
        )
    }
}

impl fmt::Debug for PartyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyName({self})")
    }
}

impl Serialize for PartyName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PartyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &hex::encode(self.0)[..16])
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "sig_bytes")] pub [u8; 64]);

mod sig_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Vec::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("signature is not 64 bytes"))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &hex::encode(self.0)[..16])
    }
}

/// A signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signature by {key}")]
pub struct BadSignature {
    /// The key that supposedly signed.
    pub key: PublicKey,
}

impl PublicKey {
    /// Verifies `sig` over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), BadSignature> {
        let bad = || BadSignature { key: *self };
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| bad())?;
        key.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .map_err(|_| bad())
    }
}

/// An Ed25519 key pair.
pub struct KeyPair(ed25519_dalek::SigningKey);

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({:?})", self.public())
    }
}

impl Clone for KeyPair {
    fn clone(&self) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&self.0.to_bytes()))
    }
}

impl KeyPair {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// A key from its 32-byte secret.
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    /// The 32-byte secret (for storage in the node's key store).
    pub fn secret(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
}

/// A party: a legal name and its owning key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// Legal identity.
    pub name: PartyName,
    /// The key the party signs with.
    pub owning_key: PublicKey,
}
