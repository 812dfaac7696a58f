//! Errors of the devnet.

use alloy_primitives::{Address, B256, U256};

/// Why a validator vote was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// The vote would leave the chain without validators.
    #[error("the vote would leave no validators")]
    NoValidators,
    /// The devnet would not hold enough validator keys to seal.
    #[error(
        "the vote would leave {validators} validators with a quorum of {need}, but the devnet holds keys for only {held} of them"
    )]
    NoQuorum {
        /// Size of the resulting set.
        validators: usize,
        /// Keys the devnet holds in it.
        held: usize,
        /// Seals a block would need.
        need: usize,
    },
}

/// Why a transaction was refused at submission (JSON-RPC code -32000 family).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Not a decodable EIP-2718 transaction.
    #[error("invalid transaction encoding: {0}")]
    Decode(String),
    /// The signature does not recover a sender.
    #[error("invalid transaction signature")]
    BadSignature,
    /// Blob and set-code transactions are not supported.
    #[error("transaction type {0} is not supported")]
    UnsupportedType(u8),
    /// Signed for another chain.
    #[error("invalid chain id: expected {expected}, got {got}")]
    WrongChainId {
        /// This chain's id.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// The nonce was already used.
    #[error("nonce too low: address {sender}, tx nonce {tx}, state nonce {state}")]
    NonceTooLow {
        /// Sender.
        sender: Address,
        /// Transaction nonce.
        tx: u64,
        /// Account nonce.
        state: u64,
    },
    /// The sender cannot pay for gas and value.
    #[error("insufficient funds for gas * price + value: address {sender} have {have} want {want}")]
    InsufficientFunds {
        /// Sender.
        sender: Address,
        /// Balance.
        have: U256,
        /// gas limit × max fee + value.
        want: U256,
    },
    /// Below the intrinsic gas.
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGas {
        /// The gas limit.
        have: u64,
        /// The minimum.
        want: u64,
    },
    /// Above the block gas limit.
    #[error("exceeds block gas limit: {gas} > {limit}")]
    GasLimit {
        /// The gas limit.
        gas: u64,
        /// The block's.
        limit: u64,
    },
    /// The max fee is below the current base fee.
    #[error("max fee per gas less than block base fee: {max_fee} < {base_fee}")]
    FeeTooLow {
        /// Offered.
        max_fee: u128,
        /// Required.
        base_fee: u64,
    },
    /// The priority fee exceeds the max fee.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// The same transaction is already pending or mined.
    #[error("already known: {0}")]
    AlreadyKnown(B256),
    /// The transaction pool is full.
    #[error("transaction pool is full")]
    PoolFull,
    /// The sender has as many pending transactions as one sender may.
    #[error("sender {sender} has {limit} pending transactions, the most one sender may")]
    SenderPoolFull {
        /// Sender.
        sender: Address,
        /// The per-sender limit.
        limit: usize,
    },
    /// The nonce is too far past the account's.
    #[error("nonce too high: address {sender}, tx nonce {tx}, highest accepted {max}")]
    NonceTooHigh {
        /// Sender.
        sender: Address,
        /// Transaction nonce.
        tx: u64,
        /// Highest nonce the pool accepts now.
        max: u64,
    },
    /// A pending transaction with the same sender and nonce pays as much or nearly.
    #[error("replacement transaction underpriced: fee cap and tip must rise by {bump_percent}%")]
    ReplacementUnderpriced {
        /// Required raise.
        bump_percent: u128,
    },
}

/// Failures of the devnet itself (storage, configuration).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The data directory could not be read or written.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The block log is corrupt beyond a torn last record.
    #[error("block log corrupt at record {index}: {reason}")]
    CorruptLog {
        /// Record number.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// Replaying the stored chain gave a different block.
    #[error("replay of block {number} gave hash {got}, the log has {expected}")]
    ReplayMismatch {
        /// Block number.
        number: u64,
        /// Stored hash.
        expected: B256,
        /// Recomputed hash.
        got: B256,
    },
    /// The data directory belongs to another chain configuration.
    #[error("data directory was created with {key} = {stored}, this run has {given}")]
    ConfigMismatch {
        /// The setting.
        key: &'static str,
        /// Stored value.
        stored: String,
        /// Given value.
        given: String,
    },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Block production stopped because a block could not be made durable; nothing past the
    /// last stored block was announced or served. Restart once the data directory is writable.
    #[error(
        "block production stopped: block {number} could not be written to the block log ({reason}); \
         the chain ends at block {} until the devnet is restarted",
        number.saturating_sub(1)
    )]
    Halted {
        /// The block that could not be stored.
        number: u64,
        /// The storage error.
        reason: String,
    },
    /// A header the devnet produced failed QBFT encoding.
    #[error(transparent)]
    Qbft(#[from] kh_qbft::QbftError),
}

/// Failures starting or running the devnet.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// The chain or its storage.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The RPC server could not bind or register methods.
    #[error("JSON-RPC server: {0}")]
    Rpc(String),
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
    /// The JSON-RPC TLS configuration is unusable (unreadable or malformed PEM, a key that
    /// does not match the certificate, an empty client CA).
    #[error("JSON-RPC TLS: {0}")]
    Tls(String),
}
