//! What a node is opened with: the network parameters, its role and configuration.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::TxId;
use crate::app::App;
use crate::identity::{KeyPair, Party, PartyName, PublicKey};

/// The network's members and rules, shared by every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkParameters {
    /// The notary.
    pub notary: Party,
    /// Whether the notary is validating: it is sent whole transactions with their resolved
    /// inputs and runs the contracts, instead of a filtered view (uniqueness only).
    #[serde(default)]
    pub notary_validating: bool,
    /// The third-party Validator nodes (R4) that co-sign transactions they are asked to.
    #[serde(default)]
    pub validators: Vec<PartyName>,
    /// Every node (the notary included).
    pub nodes: Vec<Party>,
    /// Transaction size limit in bytes.
    pub max_transaction_size: usize,
}

impl NetworkParameters {
    /// A member by name.
    pub fn node(&self, name: &PartyName) -> Option<&Party> {
        self.nodes.iter().find(|p| &p.name == name)
    }

    /// Resolves a node name given in full (`O=PartyB, L=Osaka, C=JP`) or by its organisation
    /// (`PartyB`, when only one member has it).
    pub fn resolve(&self, name: &str) -> Option<PartyName> {
        if let Ok(full) = name.parse::<PartyName>() {
            return self.node(&full).map(|p| p.name.clone());
        }
        let mut matches = self.nodes.iter().filter(|p| p.name.organisation() == name);
        let first = matches.next()?;
        matches.next().is_none().then(|| first.name.clone())
    }

    /// The key of `validator` when it is one of the network's Validators.
    pub fn validator_key(&self, validator: &PartyName) -> Result<PublicKey, String> {
        if !self.validators.contains(validator) {
            return Err(format!("{validator} is not a Validator of this network"));
        }
        self.node(validator)
            .map(|p| p.owning_key)
            .ok_or_else(|| format!("{validator} is not in the network parameters"))
    }
}

/// What a node does besides holding accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeRole {
    /// A business node.
    Regular,
    /// The network's notary.
    Notary,
    /// A third-party Validator (R4): checks and co-signs transactions between other nodes.
    Validator,
}

/// A transaction a Validator node co-signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// The transaction.
    pub tx_id: TxId,
    /// The node that asked.
    pub requester: PartyName,
    /// When (Unix milliseconds).
    pub validated_ms: i64,
}

/// A point where a flow engine can be made to stop, for cold-standby tests and crash
/// campaigns. A stopped node behaves as a killed process: it writes nothing more, refuses
/// deliveries (senders retry, and reach its standby), its outbox halts and it lets go of its
/// database's fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failpoint {
    /// After delivering a notarisation request, the node stops processing anything (as if
    /// killed): it refuses deliveries and its outbox halts.
    CrashAfterNotariseRequest,
    /// After delivering a responder's answer to another node's flow (e.g. the payee's account
    /// key in a payment), the node stops.
    CrashAfterKeyResponse,
    /// The `hit`-th time (from 1) the node passes `point`, it stops there.
    At {
        /// The boundary.
        point: CrashPoint,
        /// Which passage.
        hit: u32,
    },
}

/// The persistence and messaging boundaries a [`Failpoint::At`] can stop a node at, each right
/// after what precedes it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CrashPoint {
    /// After a flow step committed (its checkpoint, coin locks, staged app writes, recorded
    /// transaction and queued messages), before the messages are handed to the outbox.
    Checkpoint,
    /// As a message leaves the node (any kind: requests, answers, finality).
    Sent,
    /// On the notary: after a notarisation committed, before the answer is queued.
    NotaryCommit,
    /// On a co-signer: after it decided and (a Validator) kept its record, before the answer is
    /// queued.
    Cosigned,
    /// On a recipient: after it recorded a finalised transaction, before its confirmation is
    /// queued.
    Recorded,
}

impl CrashPoint {
    /// Every crash point.
    pub const ALL: [CrashPoint; 5] = [
        CrashPoint::Checkpoint,
        CrashPoint::Sent,
        CrashPoint::NotaryCommit,
        CrashPoint::Cosigned,
        CrashPoint::Recorded,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::Checkpoint => "checkpoint",
            CrashPoint::Sent => "sent",
            CrashPoint::NotaryCommit => "notary-commit",
            CrashPoint::Cosigned => "cosigned",
            CrashPoint::Recorded => "recorded",
        }
    }
}

/// Default time a flow may run before it fails (and releases its soft locks).
pub const DEFAULT_FLOW_TIMEOUT: Duration = Duration::from_secs(120);

/// How to open a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Legal name.
    pub name: PartyName,
    /// Identity key (signs issuances and, on the notary, notarisations).
    pub key: KeyPair,
    /// `sqlite:PATH` or `postgres://...`.
    pub database_url: String,
    /// Role.
    pub role: NodeRole,
    /// The network.
    pub network: NetworkParameters,
    /// The apps this node runs.
    pub apps: Vec<Arc<dyn App>>,
    /// How long a flow may run before it fails with a timeout ([`DEFAULT_FLOW_TIMEOUT`]).
    pub flow_timeout: Duration,
    /// Optional failpoint (tests).
    pub failpoint: Option<Failpoint>,
}
