//! Ledger node networking.
//!
//! Owns: node-to-node messaging over gRPC with mutual TLS ([`GrpcTransport`] implements
//! `kh_ledger::Transport`, [`serve_peer`] runs the receiving side), and the network PKI
//! ([`NetworkCa`]: a root certificate authority that issues node and client certificates).
//!
//! Does not own: what the messages mean (`kh-ledger` flows), the node RPC for clients and the
//! node process (next slice of issue 3).
//!
//! ## Feature Flags
//! None.

mod peer;
mod pki;

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

pub use peer::{GrpcTransport, PeerDirectory, PeerEntry, PeerError, PeerServerHandle, serve_peer};
pub use pki::{NetworkCa, PkiError, TlsIdentity};
