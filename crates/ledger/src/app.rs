//! The app seam (Corda's CorDapps): an app brings its contracts, the way the vault indexes its
//! states, its initiating flows, the responder logic for its messages, its acceptance and
//! co-signing rules, and its own tables. The node core — messaging, checkpoints, notarisation,
//! finality, backchain verification, vault storage — names no app; a node runs the apps its
//! configuration lists and refuses transactions of contracts it does not have.
//!
//! A flow is a checkpointed state machine: [`FlowLogic::start`] and [`FlowLogic::resume`] return
//! a [`Next`] step — ask a party's responder and resume with its answer, or hand a signed
//! transaction to the framework's sub-flows (collect co-signatures, notarise, finalise to the
//! participants). Between steps the app's state is stored as bytes in the flow's checkpoint, so a
//! standby node resumes the flow where its predecessor left it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::contract::{Contract, ContractRegistry, LedgerTransaction, StateAndRef};
use crate::identity::{KeyPair, Party, PartyName, PublicKey};
use crate::node::{NetworkParameters, NodeRole};
use crate::store::{Store, StoreError, WriteTx, db};
use crate::tx::{ContractId, SignedTransaction, StateRef, TransactionState, WireTransaction};
use crate::vault::{Vault, VaultError};

/// A boxed future, for the seam's async methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the vault indexes a state of an app: its owner (for account queries) and, for fungible
/// states, its quantity (for selection by amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateIndex {
    /// The owning key, if the state has one (default: its first participant).
    pub owner: Option<PublicKey>,
    /// The quantity of a fungible state (0 otherwise).
    pub quantity: u64,
}

/// Why a flow (or a responder) cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The flow ends Failed with this reason (a responder answers the requester with it).
    #[error("{0}")]
    Failed(String),
    /// Storage failed: the step is retried (a delivered message is redelivered).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<VaultError> for FlowError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Store(s) => Self::Store(s),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// One SQL statement an app wants written in the same database transaction as the flow's next
/// checkpoint (and the transaction it records, when the step finalises). Use `$1`, `$2`, ...
/// placeholders; the statement must run on SQLite and PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppWrite {
    sql: String,
    args: Vec<SqlArg>,
}

/// A bound value of an [`AppWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlArg {
    /// TEXT.
    Text(String),
    /// BIGINT.
    Int(i64),
}

impl AppWrite {
    /// A statement with no arguments yet.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: vec![],
        }
    }

    /// Binds the next TEXT argument.
    pub fn text(mut self, value: impl Into<String>) -> Self {
        self.args.push(SqlArg::Text(value.into()));
        self
    }

    /// Binds the next BIGINT argument.
    pub fn int(mut self, value: i64) -> Self {
        self.args.push(SqlArg::Int(value));
        self
    }

    /// Runs it inside `t`.
    pub async fn execute(&self, t: &mut WriteTx) -> Result<u64, StoreError> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for a in &self.args {
            q = match a {
                SqlArg::Text(s) => q.bind(s.clone()),
                SqlArg::Int(i) => q.bind(*i),
            };
        }
        Ok(q.execute(&mut **t)
            .await
            .map_err(db("writing an app's table"))?
            .rows_affected())
    }
}

/// What a flow step asks the framework to do next.
#[derive(Debug, Clone)]
pub enum Next {
    /// Send `payload` to the responder for `topic` of this flow's app on `party`, store `state`
    /// in the checkpoint, and resume the flow with the answer ([`FlowLogic::resume`]). A party
    /// that refuses (or does not run the app) fails the flow with its reason.
    Ask {
        /// The flow's state, handed back to [`FlowLogic::resume`].
        state: Vec<u8>,
        /// Whom to ask (may be this node).
        party: PartyName,
        /// The responder topic.
        topic: String,
        /// The request.
        payload: Vec<u8>,
    },
    /// Collect the signatures of `cosigners` (one after the other, each sent the transaction
    /// and its backchain), notarise when the transaction consumes or references states or has a
    /// time window, record it, and send it with its backchain to `notify` (participants only).
    /// The flow then completes with the transaction's id.
    Finalise {
        /// The transaction, signed by this node's keys that must sign it.
        stx: SignedTransaction,
        /// Nodes whose signatures are still required.
        cosigners: Vec<PartyName>,
        /// Nodes that receive the finalised transaction.
        notify: Vec<PartyName>,
    },
    /// End the flow as Failed.
    Fail(String),
}

/// An answer to an [`Next::Ask`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Who answered (the party asked: replies from anyone else are not accepted).
    pub from: PartyName,
    /// The responder's answer.
    pub payload: Vec<u8>,
}

/// An initiating flow, started by name with JSON arguments.
pub trait FlowLogic: Send + Sync + fmt::Debug {
    /// The name it is started by, unique on a node (e.g. `stablecoin.pay`).
    fn name(&self) -> &str;
    /// First step, from the caller's arguments.
    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>>;
    /// Next step, once the party asked has answered.
    fn resume<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        state: Vec<u8>,
        reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>>;
}

/// An app: what it registers with the node.
pub trait App: Send + Sync + fmt::Debug {
    /// The name node configurations list it by (e.g. `stablecoin`).
    fn name(&self) -> &str;
    /// Its contracts.
    fn contracts(&self) -> Vec<Arc<dyn Contract>>;
    /// Its initiating flows.
    fn flows(&self) -> Vec<Arc<dyn FlowLogic>> {
        vec![]
    }
    /// Statements creating its own tables (idempotent: `CREATE TABLE IF NOT EXISTS ...`), run
    /// when the node opens.
    fn migrations(&self) -> Vec<&'static str> {
        vec![]
    }
    /// How the vault indexes one of its states (`None`: first participant, quantity 0).
    fn index(&self, _state: &TransactionState) -> Option<StateIndex> {
        None
    }
    /// Rules beyond the contract that a node applies to every transaction of this app it
    /// verifies (co-signing, recording, notarising when validating), with the network in view
    /// (e.g. "coins are issued by a member under its own key").
    fn check(&self, _network: &NetworkParameters, _tx: &LedgerTransaction) -> Result<(), String> {
        Ok(())
    }
    /// Whether this node (not a Validator) co-signs a transaction whose commands are this app's
    /// and which already passed every generic check.
    fn cosign(&self, _hub: &ServiceHub, _tx: &LedgerTransaction) -> Result<(), String> {
        Err(format!("the {} app does not co-sign", self.name()))
    }
    /// Answers a flow's [`Next::Ask`] from `from` on `topic`.
    fn respond<'a>(
        &'a self,
        _hub: &'a ServiceHub,
        _from: &'a PartyName,
        topic: &'a str,
        _payload: &'a [u8],
    ) -> BoxFuture<'a, Result<Vec<u8>, FlowError>> {
        let reason = format!("the {} app has no responder for {topic:?}", self.name());
        Box::pin(async move { Err(FlowError::Failed(reason)) })
    }
    /// The app as `Any`, for callers that know its concrete type (an app that offers services
    /// beside its flows returns `Some(self)`).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// Called inside the database transaction that records `stx` in the vault (on every node
    /// that records it), for transactions with an output or command of this app's contracts.
    fn on_record<'a>(
        &'a self,
        _hub: &'a ServiceHub,
        _t: &'a mut WriteTx,
        _stx: &'a SignedTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The apps a node runs, looked up by name, contract and flow name.
#[derive(Clone, Default)]
pub(crate) struct Apps {
    pub(crate) by_name: BTreeMap<String, Arc<dyn App>>,
    by_contract: HashMap<ContractId, Arc<dyn App>>,
    flows: HashMap<String, (String, Arc<dyn FlowLogic>)>,
    pub(crate) registry: ContractRegistry,
}

impl fmt::Debug for Apps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

/// Two apps claim one name, contract or flow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {name:?} is registered by two apps")]
pub struct AppConflict {
    /// `app`, `contract` or `flow`.
    pub what: &'static str,
    /// The name claimed twice.
    pub name: String,
}

impl Apps {
    pub(crate) fn new(apps: &[Arc<dyn App>]) -> Result<Self, AppConflict> {
        let mut out = Self::default();
        let conflict = |what, name: &str| AppConflict {
            what,
            name: name.to_string(),
        };
        for app in apps {
            let name = app.name().to_string();
            if out.by_name.insert(name.clone(), app.clone()).is_some() {
                return Err(conflict("app", &name));
            }
            for c in app.contracts() {
                if out.by_contract.insert(c.id(), app.clone()).is_some() {
                    return Err(conflict("contract", &c.id().0));
                }
                out.registry.install(c);
            }
            for f in app.flows() {
                let fname = f.name().to_string();
                if out.flows.insert(fname.clone(), (name.clone(), f)).is_some() {
                    return Err(conflict("flow", &fname));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn for_contract(&self, id: &ContractId) -> Option<&Arc<dyn App>> {
        self.by_contract.get(id)
    }

    pub(crate) fn flow(&self, name: &str) -> Option<&(String, Arc<dyn FlowLogic>)> {
        self.flows.get(name)
    }

    pub(crate) fn flow_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.flows.keys().cloned().collect();
        v.sort();
        v
    }

    /// The apps governing the outputs and commands of `stx`, once each.
    pub(crate) fn involved(&self, stx: &SignedTransaction) -> Vec<Arc<dyn App>> {
        let mut seen = BTreeMap::new();
        let ids = stx
            .tx
            .outputs
            .iter()
            .map(|s| &s.contract)
            .chain(stx.tx.commands.iter().map(|c| &c.contract));
        for id in ids {
            if let Some(app) = self.by_contract.get(id) {
                seen.entry(app.name().to_string())
                    .or_insert_with(|| app.clone());
            }
        }
        seen.into_values().collect()
    }

    /// How the vault indexes `state`.
    pub(crate) fn index(&self, state: &TransactionState) -> StateIndex {
        self.by_contract
            .get(&state.contract)
            .and_then(|app| app.index(state))
            .unwrap_or(StateIndex {
                owner: state.participants.first().copied(),
                quantity: 0,
            })
    }
}

/// What a node offers its apps: its identity, the network, the vault and the database.
#[derive(Clone)]
pub struct ServiceHub {
    pub(crate) name: PartyName,
    pub(crate) key: KeyPair,
    pub(crate) role: NodeRole,
    pub(crate) network: NetworkParameters,
    pub(crate) vault: Vault,
    pub(crate) store: Store,
}

impl fmt::Debug for ServiceHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceHub({})", self.name)
    }
}

impl ServiceHub {
    /// The node's legal name.
    pub fn name(&self) -> &PartyName {
        &self.name
    }

    /// The node's identity key (it signs issuances and co-signatures of the node itself).
    pub fn identity_key(&self) -> &KeyPair {
        &self.key
    }

    /// The node's role.
    pub fn role(&self) -> NodeRole {
        self.role
    }

    /// The network parameters.
    pub fn network(&self) -> &NetworkParameters {
        &self.network
    }

    /// The network's notary.
    pub fn notary(&self) -> &Party {
        &self.network.notary
    }

    /// The vault.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// The node database (for an app's own tables).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Signs `tx` with the node's identity key.
    pub fn sign_as_node(&self, tx: WireTransaction) -> SignedTransaction {
        SignedTransaction::signed_by(tx, &self.key)
    }
}

/// A flow's view of the node during one step.
#[derive(Debug)]
pub struct FlowContext<'a> {
    hub: &'a ServiceHub,
    flow: Uuid,
    lock_ttl_ms: u64,
    writes: Mutex<Vec<AppWrite>>,
}

impl<'a> FlowContext<'a> {
    pub(crate) fn new(hub: &'a ServiceHub, flow: Uuid, lock_ttl_ms: u64) -> Self {
        Self {
            hub,
            flow,
            lock_ttl_ms,
            writes: Mutex::new(vec![]),
        }
    }

    /// The node.
    pub fn hub(&self) -> &ServiceHub {
        self.hub
    }

    /// This flow's id (also the id of the soft locks it holds).
    pub fn flow_id(&self) -> Uuid {
        self.flow
    }

    /// How long this flow's soft locks last unless released (past the flow's timeout).
    pub fn lock_ttl_ms(&self) -> u64 {
        self.lock_ttl_ms
    }

    /// Selects unconsumed, unlocked states of `contract` owned by `owner` until their
    /// quantities cover `quantity`, and soft-locks them for this flow (released when the flow
    /// fails, is killed or times out; consumed when it finalises). Not enough: the flow fails.
    pub async fn select_and_lock(
        &self,
        contract: &ContractId,
        owner: &PublicKey,
        quantity: u64,
    ) -> Result<Vec<StateAndRef>, FlowError> {
        Ok(self
            .hub
            .vault
            .select_and_lock(contract, owner, quantity, self.flow, self.lock_ttl_ms)
            .await?)
    }

    /// Soft-locks exactly `refs` for this flow (all or none); false if one is consumed, unknown
    /// or locked by another flow.
    pub async fn lock_states(&self, refs: &[StateRef]) -> Result<bool, FlowError> {
        Ok(self
            .hub
            .vault
            .lock_states(refs, self.flow, self.lock_ttl_ms)
            .await?)
    }

    /// Stages a write to the app's tables, committed with the flow's next checkpoint.
    pub fn stage(&self, write: AppWrite) {
        if let Ok(mut w) = self.writes.lock() {
            w.push(write);
        }
    }

    pub(crate) fn take_writes(&self) -> Vec<AppWrite> {
        self.writes
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}
