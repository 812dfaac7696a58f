//! Ledger node networking.
//!
//! Owns: node-to-node messaging over gRPC with mutual TLS ([`GrpcTransport`] implements
//! `kh_ledger::Transport`, [`serve_peer`] runs the receiving side), and the network PKI
//! ([`NetworkCa`]: a root certificate authority that issues node and client certificates).
//!
//! Also owns the node's client RPC ([`serve_rpc`], [`connect_rpc`]): accounts, flows (start,
//! status, wait, watch), vault queries and a vault stream, transaction lookup (whole, or filtered
//! with proofs for light clients), the resumable event stream of recorded transactions, with
//! mutual TLS;
//! the network directory ([`NetworkDirectory`]) and the node process configuration
//! ([`NodeFileConfig`], `node.toml`).
//!
//! Also owns the list of apps a node process can run ([`KNOWN_APPS`]; `apps = [...]` in
//! `node.toml`).
//!
//! Does not own: what the messages mean (`kh-ledger` flows), the node process (`kakehashi`).
//!
//! ## Identities
//! Every node and client presents a certificate issued by the network root, and every server
//! requires one (a client without it fails the TLS handshake). A node certificate's subject is
//! the node's legal name; the P2P receiver reads it ([`legal_name_of`]), requires it to equal
//! the envelope's sender, and requires the certificate to be the one pinned for that node in
//! the network directory; the sender, likewise, accepts only the server certificate pinned for
//! the node it means to reach ([`pinned_client_config`]). A node's RPC admits only its own RPC
//! users ([`RpcUsers`]: certificate fingerprint and permission level).
//!
//! ## Network directory
//! Written by `kakehashi devnet ledger [--init-only]`, read by nodes and clients:
//! `network.json` ([`NetworkDirectory`]: the network parameters, and per node its P2P and RPC
//! addresses and pinned certificate), `root.pem` (and, for the devnet, the root's key
//! `root.key`), and `nodes/<Org>/` with `node.toml`, `identity.key`, `tls.pem`, `tls.key`,
//! `rpc-users.json` and each RPC user's `rpc-NAME.pem` + `rpc-NAME.key` for each node. Private
//! keys are 0600 files; `node.toml` names them by path.
//!
//! ## Feature Flags
//! None.

mod apps;
mod config;
mod directory;
mod peer;
mod pinned;
mod pki;
mod rpc;
mod users;

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

pub use apps::{AppOptions, DEFAULT_APPS, KNOWN_APPS, app_by_name, apps_by_name, apps_with};
pub use config::{ConfigError, FailpointName, NodeFileConfig, RoleName};
pub use directory::{DirectoryError, NetworkDirectory, NodeEndpoints, write_secret};
pub use peer::{
    GrpcTransport, MAX_PEER_MESSAGE, PeerDirectory, PeerEntry, PeerError, PeerServerHandle,
    serve_peer,
};
pub use pinned::{PinError, pinned_channel, pinned_client_config};
pub use pki::{NetworkCa, PkiError, TlsIdentity, legal_name_of, pem_to_der};
pub use rpc::{RpcClient, connect_rpc, serve_rpc};
pub use users::{
    Permission, RpcUser, RpcUsers, USERS_FILE, UsersError, add_user, cert_fingerprint,
    read_user_identity, read_users,
};
