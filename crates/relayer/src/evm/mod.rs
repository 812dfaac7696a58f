//! The EVM chain adapter: any Ethereum JSON-RPC (the kakehashi devnet, GoQuorum, Besu).
//!
//! [`FailoverRpc`] talks to an ordered list of endpoints of one chain; [`Submitter`] sends
//! transactions from the relayer's account (key from [`load_signer`]) and waits for their
//! confirmation; [`follow`] delivers a contract's logs exactly once, in order, whatever happens
//! to the WebSocket subscriptions. [`EvmTls`] puts those links over TLS with the relayer's
//! client certificate.

pub mod follow;
pub mod handshake;
pub mod ibc;
pub mod rpc;
pub mod signer;
pub mod submit;
pub mod tls;

pub use follow::{ChainLog, FollowConfig, FollowStats, follow};
pub use rpc::{FailoverRpc, RpcError};
pub use signer::{SignerError, load_signer, load_tx_signer, open_keystore};
pub use submit::{Log, Receipt, RemoteSigner, SubmitError, SubmitPolicy, Submitter, TxSigner};
pub use tls::{EvmTls, TlsError};
