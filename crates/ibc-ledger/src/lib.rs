//! The IBC host on the ledger (DESIGN §6).
//!
//! Owns: the host-state chain ([`host`]: the host contract — exactly one host input and
//! output, height + 1, the operators' and the notary's signatures, a notarised timestamp, and
//! a store root proven from the previous one by the transaction's store updates), the host's
//! authenticated store ([`store`]: a Jellyfish Merkle tree with ICS-23 existence and
//! non-existence proofs, versioned by host height), and ledger proofs for light clients
//! ([`proof`]: the filtered host transaction, its signatures and an ICS-23 proof, verified with
//! public functions and the trusted keys only).
//!
//! The app ([`app`]: `ibc-host`) runs it on a node: flows creating the host and applying store
//! updates as host transactions co-signed by every operator and notarised, each node's copy of
//! the store kept with its recorded host transactions, and proofs served from it.
//!
//! Not yet here: the ibc-rs validation and execution contexts over this store (IBC messages
//! rather than raw store updates), ports for ledger apps, and the node RPC serving proofs.

pub mod app;
pub use kh_ibc_host_chain::{host, proof, store};

pub use app::{APP_NAME, APPLY_FLOW, GENESIS_FLOW, IbcHostApp};
pub use host::{
    HOST_CONTRACT, HostCommand, HostContract, HostState, MAX_HOST_WINDOW_MS, host_contract_id,
};
pub use proof::{HostStateProof, HostTrust, LedgerProof, ProofError};
pub use store::{
    HostStore, PreparedUpdate, StoreError, Update, empty_root, key_hash, verify_transition,
};
