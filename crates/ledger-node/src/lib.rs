//! Ledger node networking.
//!
//! Owns: node-to-node messaging over gRPC with mutual TLS ([`GrpcTransport`] implements
//! `kh_ledger::Transport`, [`serve_peer`] runs the receiving side), and the network PKI
//! ([`NetworkCa`]: a root certificate authority that issues node and client certificates).
//!
//! Also owns the node's client RPC ([`serve_rpc`], [`connect_rpc`]): accounts, flows (start,
//! status, wait, watch), vault queries and a vault stream, transaction lookup, with mutual TLS;
//! the network directory ([`NetworkDirectory`]) and the node process configuration
//! ([`NodeFileConfig`], `node.toml`).
//!
//! Does not own: what the messages mean (`kh-ledger` flows), the node process (`kakehashi`).
//!
//! ## Feature Flags
//! None.

mod config;
mod directory;
mod peer;
mod pki;
mod rpc;

/// Generated protobuf types and gRPC stubs.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod proto {
    tonic::include_proto!("kakehashi.ledger.v1");
}

pub use config::{ConfigError, FailpointName, NodeFileConfig, RoleName};
pub use directory::{DirectoryError, NetworkDirectory, NodeEndpoints, write_secret};
pub use peer::{GrpcTransport, PeerDirectory, PeerEntry, PeerError, PeerServerHandle, serve_peer};
pub use pki::{NetworkCa, PkiError, TlsIdentity, legal_name_of};
pub use rpc::{RpcClient, connect_rpc, serve_rpc};
