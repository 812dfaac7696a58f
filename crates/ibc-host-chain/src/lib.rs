//! The ledger's IBC host-state chain (DESIGN §6), without the node: what a light client of the
//! ledger and the host itself share.
//!
//! Owns: the host contract ([`host`]: exactly one host input and output, height + 1, the
//! operators' and the notary's signatures, a notarised timestamp, and a store root proven from
//! the previous one by the transaction's store updates), the host's authenticated store
//! ([`store`]: a Jellyfish Merkle tree with ICS-23 existence and non-existence proofs,
//! versioned by host height), and ledger proofs for light clients ([`proof`]: the filtered host
//! transaction, its signatures and an ICS-23 proof, verified with public functions and the
//! trusted keys only).
//!
//! The IBC host app on a node (ibc-rs contexts, ports, flows) is `kh-ibc-ledger`; the Ledger
//! ELC (`kh-elc`) verifies these proofs, and `kh-ibc-ledger`'s ibc-rs light client reuses it.

pub mod host;
pub mod proof;
pub mod store;

pub use host::{
    HOST_CONTRACT, HostCommand, HostContract, HostState, MAX_HOST_WINDOW_MS, host_contract_id,
};
pub use proof::{HostStateProof, HostTrust, LedgerProof, ProofError};
pub use store::{
    HostStore, PreparedUpdate, StoreError, Update, empty_root, key_hash, verify_transition,
};
