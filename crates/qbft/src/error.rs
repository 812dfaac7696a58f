//! Errors of QBFT decoding and verification.

use alloy_primitives::Address;

/// Everything that can be wrong with a QBFT header or its seals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QbftError {
    /// The bytes are not canonical RLP.
    #[error("malformed RLP: {0}")]
    Rlp(String),
    /// RLP was well formed but an item had the wrong kind (list vs string).
    #[error("{what}: expected an RLP {expected}")]
    ItemKind {
        /// The field being decoded.
        what: &'static str,
        /// `"list"` or `"string"`.
        expected: &'static str,
    },
    /// Bytes were left after the top-level item.
    #[error("{what}: {extra} trailing bytes after the RLP item")]
    TrailingBytes {
        /// The field being decoded.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// The header does not have 15 to 21 fields.
    #[error("header has {got} fields, expected 15 to 21")]
    HeaderItems {
        /// Number of fields found.
        got: usize,
    },
    /// A fixed-size field has the wrong length.
    #[error("{what} is {got} bytes, expected {expected}")]
    FieldLength {
        /// The field.
        what: &'static str,
        /// Bytes found.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// A scalar is not minimally encoded or does not fit.
    #[error("{what} is not a minimal big-endian scalar of at most {max_bytes} bytes")]
    BadScalar {
        /// The field.
        what: &'static str,
        /// Largest size allowed.
        max_bytes: usize,
    },
    /// The round number is zero-padded (Besu's `readIntScalar` rejects it).
    #[error("round number is zero-padded")]
    ZeroPaddedRound,
    /// extraData is not a list of exactly 5 items.
    #[error("extraData has {got} items, expected 5")]
    ExtraDataItems {
        /// Number of items found.
        got: usize,
    },
    /// The vanity is not 32 bytes.
    #[error("extraData vanity is {got} bytes, expected 32")]
    VanityLength {
        /// Bytes found.
        got: usize,
    },
    /// The vote item is neither an empty list nor `[address, 0xff | 0x80]`.
    #[error("invalid vote: {0}")]
    InvalidVote(&'static str),
    /// A committed seal is not 65 bytes with a recovery id of 0 or 1.
    #[error("seal {index} is malformed: {reason}")]
    MalformedSeal {
        /// Position of the seal in extraData.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A seal does not recover to a public key.
    #[error("seal {index} does not recover a signer")]
    InvalidSignature {
        /// Position of the seal in extraData.
        index: usize,
    },
    /// A seal recovered to an address outside the validator set.
    #[error("seal {index} recovers to {signer}, which is not a validator")]
    UnknownSigner {
        /// Position of the seal in extraData.
        index: usize,
        /// The recovered address.
        signer: Address,
    },
    /// Two seals recovered to the same validator.
    #[error("validator {signer} sealed twice")]
    DuplicateSigner {
        /// The repeated signer.
        signer: Address,
    },
    /// The validator set is empty or contains duplicates or the zero address.
    #[error("invalid validator set: {0}")]
    InvalidValidatorSet(&'static str),
    /// Fewer distinct validators than the quorum signed.
    #[error("{got} seals below quorum {need} at height {height}")]
    InsufficientSeals {
        /// Block number.
        height: u64,
        /// Distinct validators that signed.
        got: usize,
        /// Quorum required.
        need: usize,
    },
    /// Not more than a third of the trusted validator set signed.
    #[error("{got} trusted validators signed at height {height}, need {need}")]
    InsufficientTrustedOverlap {
        /// Block number.
        height: u64,
        /// Trusted validators among the signers.
        got: usize,
        /// Required overlap.
        need: usize,
    },
    /// A BFT constant field (ommers hash, difficulty, mix hash, nonce) has the wrong value.
    #[error("{0} does not hold the BFT constant")]
    NotBftHeader(&'static str),
}

impl From<alloy_rlp::Error> for QbftError {
    fn from(err: alloy_rlp::Error) -> Self {
        Self::Rlp(err.to_string())
    }
}
