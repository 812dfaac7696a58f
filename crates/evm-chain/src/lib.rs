//! The QBFT EVM devnet: an embedded GoQuorum/Besu-compatible chain.
//!
//! Owns: the world state and Ethereum's tries (state, storage, transactions, receipts roots and
//! `eth_getProof`), block production with revm (Cancun rules, EIP-1559 fees), sealing by the
//! devnet's QBFT validators, validator-set votes, persistence in a data directory, and the
//! Ethereum JSON-RPC server (HTTP and WebSocket on one address, plain or over TLS with client
//! certificates).
//!
//! Does not own: the QBFT header codec and quorum rules (`kh-qbft`, used here for every
//! header), Solidity contracts (`kh-contracts`), the relayer's chain client (`kh-relayer`).
//!
//! Seams: revm's `DatabaseRef` over [`WorldState`] snapshots.
//!
//! ## Feature Flags
//! None.

mod chain;
mod devnet;
mod error;
mod filters;
mod mpt;
mod node;
mod rpc;
mod state;
mod store;
mod tls;

pub use chain::{
    Block, CallOutcome, CallRequest, CallView, Chain, ChainSpec, DEFAULT_CONTRACT_SIZE_LIMIT,
    DEFAULT_GAS_LIMIT, GENESIS_BASE_FEE, MinedReceipt, MinedTx, OverrideError, PendingTx,
    PoolLimits, check_overrides, effective_price,
};
pub use devnet::{
    BlockProduction, DevAccount, Devnet, DevnetConfig, TEST_MNEMONIC, dev_accounts, validator_key,
};
pub use error::{ChainError, DevnetError, TxError, VoteError};
pub use state::{Account, AccountProof, WorldState, decode_node};
pub use tls::RpcTls;
