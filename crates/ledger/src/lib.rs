//! The Corda-model UTXO ledger platform.
//!
//! Owns: transactions (component groups, the Merkle transaction id, filtered transactions,
//! Ed25519 signatures, the size limit), contracts and their registry, identities (X.500 legal
//! names) and network parameters, the notary (uniqueness persisted, time windows, validating and
//! non-validating), the vault (states of any app, indexed as the app says, queries with paging,
//! soft locks by state reference, accounts whose keys the node holds, archiving), nodes whose
//! flows run as checkpointed state machines with a persistent outbox and an exactly-once inbox,
//! the event stream of recorded transactions (cursors in commit order, resumable), transaction
//! proofs for light clients ([`verify_filtered_transaction`]), and the node database seam ([`Store`], SQLite or PostgreSQL via sqlx).
//!
//! Seams: [`App`] (an app's contracts, flows, responders, rules and tables — see [`app`]),
//! [`Transport`] (node-to-node messages; [`InMemoryNetwork`] ships next to it) and [`Store`].
//!
//! Flows resolve inputs from their backchain: whoever receives a transaction to co-sign, to
//! record or (validating notary) to notarise verifies its whole dependency graph down to
//! issuance — every ancestor completely signed, its contracts and the apps' rules run — caching
//! what it verified so a long chain is verified once. A node with the Validator role (R4)
//! co-signs transactions that name it as a signer once those checks pass, and keeps a record
//! of what it signed.
//!
//! Does not own: any app (the stablecoin and the others live in `crates/apps/*`), the gRPC/mTLS
//! transport, node RPC and the node process (`kh-ledger-node`), the IBC host on the ledger.
//!
//! ## Feature Flags
//! None.

pub mod app;
mod contract;
mod events;
mod export;
mod fence;
mod hash;
mod identity;
mod node;
mod notary;
mod store;
mod transport;
mod tx;
pub mod util;
mod vault;

pub use app::{
    App, AppConflict, AppWrite, BoxFuture, FlowContext, FlowError, FlowLogic, Next, Reply,
    ServiceHub, SqlArg, StateIndex,
};
pub use contract::{Contract, ContractError, ContractRegistry, LedgerTransaction, StateAndRef};
pub use events::{EVENT_POLL, LedgerEvent, MAX_EVENTS_PAGE, ProducedState};
pub use export::{
    ParseGroupError, ProofError, TransactionProof, parse_groups, verify_filtered_transaction,
};
pub use fence::{Fence, FenceError, POSTGRES_FENCE_KEY, STANDBY_POLL};
pub use hash::{ParseHashError, SecureHash, TxId};
pub use identity::{BadSignature, KeyPair, ParseNameError, Party, PartyName, PublicKey, Signature};
pub use node::messages::Message as WireMessage;
pub use node::{
    CrashPoint, DEFAULT_FLOW_TIMEOUT, Failpoint, FlowStart, FlowStatus, INBOX_RETENTION,
    MAX_BACKCHAIN_BYTES, MAX_BACKCHAIN_DEPTH, MAX_BACKCHAIN_TRANSACTIONS, NetworkParameters, Node,
    NodeConfig, NodeError, NodeRole, Validation,
};
pub use notary::{Conflict, NotarisationRequest, Notary, NotaryConfig, NotaryError};
pub use store::{Backend, Store, StoreError, WriteTx};
pub use transport::{Envelope, InMemoryNetwork, Receiver, SendFuture, Transport, TransportError};
pub use tx::{
    Command, ComponentGroup, ContractId, DEFAULT_MAX_TRANSACTION_SIZE, FilterError,
    FilteredComponent, FilteredGroup, FilteredTransaction, GROUPS, SignedTransaction, StateRef,
    TimeWindow, TransactionError, TransactionSignature, TransactionState, WireTransaction,
};
pub use vault::{Account, Archived, MAX_QUERY_PAGE, StateQuery, StateStatus, Vault, VaultError};
