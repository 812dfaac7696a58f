//! A ledger node: identity, vault, accounts, an optional notary service, and flows that run as
//! persisted state machines. Every flow step stores the flow's new state and its outgoing
//! messages in one database transaction (the checkpoint); an outbox task delivers messages until
//! the receiver acknowledges them, and a node reopened on the same database resumes every
//! flow in flight. Inbound messages are handled idempotently and then marked seen, so each is
//! processed once.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::TxId;
use crate::contract::{ContractRegistry, LedgerTransaction, StateAndRef};
use crate::identity::{KeyPair, Party, PartyName, PublicKey};
use crate::notary::{NotarisationRequest, Notary, NotaryConfig};
use crate::payment::{PAYMENT_LOCK_MS, PaymentError, build_payment, build_split};
use crate::stablecoin::StablecoinContract;
use crate::stablecoin::{StablecoinCommand, StablecoinState, stablecoin_id};
use crate::store::{Store, StoreError, db};
use crate::transport::{Envelope, Receiver, SendFuture, Transport, TransportError};
use crate::tx::{
    Command, SignedTransaction, TransactionSignature, TransactionState, WireTransaction,
};
use crate::vault::{Account, Vault, VaultError};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS flows (id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, to_node TEXT NOT NULL, body TEXT NOT NULL, created_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS inbox (id TEXT PRIMARY KEY, received_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS flows_updated ON flows (updated_ms)",
    "CREATE TABLE IF NOT EXISTS validations (tx_id TEXT PRIMARY KEY, requester TEXT NOT NULL, validated_ms BIGINT NOT NULL)",
];

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

/// A point where a flow engine can be made to stop, for cold-standby tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failpoint {
    /// After delivering a notarisation request, the node stops processing anything (as if
    /// killed): it refuses deliveries and its outbox halts.
    CrashAfterNotariseRequest,
    /// After delivering an account-key answer (the payee side of a payment), the node stops.
    CrashAfterKeyResponse,
}

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
    /// Optional failpoint (tests).
    pub failpoint: Option<Failpoint>,
}

/// A flow to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowRequest {
    /// Issue stablecoin from this node (the bank) to an account.
    Issue {
        /// Amount.
        amount: u64,
        /// Currency code.
        currency: String,
        /// Receiving node.
        to_node: PartyName,
        /// Receiving account.
        to_account: Uuid,
    },
    /// Pay from one of this node's accounts to an account.
    Pay {
        /// Amount.
        amount: u64,
        /// Paying account (on this node).
        from: Uuid,
        /// Receiving node.
        to_node: PartyName,
        /// Receiving account.
        to_account: Uuid,
        /// A Validator of the network that must co-sign the payment (a third party: neither
        /// the payer's nor the payee's node).
        validator: Option<PartyName>,
    },
    /// Redeem (destroy) stablecoin held by an account; its issuer co-signs.
    Redeem {
        /// The account (on this node).
        account: Uuid,
        /// Amount destroyed.
        amount: u64,
    },
    /// Re-issue an account's whole balance as `parts` states (pre-splitting, R7).
    Split {
        /// The account (on this node).
        account: Uuid,
        /// Number of states.
        parts: u32,
    },
}

impl FlowRequest {
    /// The split request is addressed to the node itself.
    fn target(&self, me: &PartyName) -> (PartyName, Uuid) {
        match self {
            Self::Issue {
                to_node,
                to_account,
                ..
            }
            | Self::Pay {
                to_node,
                to_account,
                ..
            } => (to_node.clone(), *to_account),
            Self::Split { account, .. } | Self::Redeem { account, .. } => (me.clone(), *account),
        }
    }
}

/// Where a flow is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowStatus {
    /// In progress, at `step`.
    Running {
        /// The current step.
        step: String,
    },
    /// Finished: the transaction was finalised.
    Completed {
        /// The finalised transaction.
        tx_id: TxId,
    },
    /// Failed; nothing was spent.
    Failed {
        /// Why.
        reason: String,
    },
}

/// A flow's checkpoint.
#[allow(clippy::large_enum_variant)] // short-lived: decoded, matched and re-encoded per step
#[derive(Debug, Clone, Serialize, Deserialize)]
enum FlowState {
    AwaitingPayeeKey {
        request: FlowRequest,
    },
    AwaitingNotary {
        stx: SignedTransaction,
        lock: Uuid,
        /// Nodes the finalised transaction goes to.
        notify: Vec<PartyName>,
    },
    AwaitingCosigner {
        stx: SignedTransaction,
        lock: Uuid,
        cosigner: PartyName,
        notify: Vec<PartyName>,
    },
    Completed {
        tx_id: TxId,
    },
    Failed {
        reason: String,
    },
}

impl FlowState {
    fn status(&self) -> FlowStatus {
        match self {
            Self::AwaitingPayeeKey { .. } => FlowStatus::Running {
                step: "awaiting payee key".into(),
            },
            Self::AwaitingCosigner { cosigner, .. } => FlowStatus::Running {
                step: format!("awaiting the signature of {cosigner}"),
            },
            Self::AwaitingNotary { .. } => FlowStatus::Running {
                step: "awaiting notary".into(),
            },
            Self::Completed { tx_id } => FlowStatus::Completed { tx_id: *tx_id },
            Self::Failed { reason } => FlowStatus::Failed {
                reason: reason.clone(),
            },
        }
    }
}

/// Messages between nodes.
#[allow(clippy::large_enum_variant)] // short-lived: decoded and handled per delivery
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Message {
    KeyRequest {
        flow: Uuid,
        account: Uuid,
    },
    KeyResponse {
        flow: Uuid,
        key: Option<PublicKey>,
    },
    NotariseRequest {
        flow: Uuid,
        request: NotarisationRequest,
    },
    NotariseResponse {
        flow: Uuid,
        result: Result<TransactionSignature, String>,
    },
    /// A finalised transaction with the transactions that produced its inputs and references.
    Finalised {
        tx: SignedTransaction,
        backchain: Vec<SignedTransaction>,
    },
    /// Asks for a co-signature; `backchain` holds the transactions that produced the inputs
    /// and references.
    SignRequest {
        flow: Uuid,
        tx: SignedTransaction,
        backchain: Vec<SignedTransaction>,
    },
    SignResponse {
        flow: Uuid,
        result: Result<TransactionSignature, String>,
    },
}

/// Node failures (flow outcomes are [`FlowStatus`], not errors).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A vault operation failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The node is not a member of the network parameters.
    #[error("{0} is not in the network parameters")]
    NotAMember(PartyName),
    /// No such flow.
    #[error("unknown flow {0}")]
    UnknownFlow(Uuid),
    /// A flow did not finish within the wait.
    #[error("flow {0} still running after the wait")]
    Timeout(Uuid),
}

struct Inner {
    name: PartyName,
    role: NodeRole,
    key: KeyPair,
    registry: ContractRegistry,
    network: NetworkParameters,
    store: Store,
    vault: Vault,
    notary: Option<Notary>,
    transport: Arc<dyn Transport>,
    outbox_wake: Notify,
    /// Messages committed to the outbox table and not yet picked up by the outbox task.
    fresh: std::sync::Mutex<Vec<Envelope>>,
    events: broadcast::Sender<(Uuid, FlowStatus)>,
    failpoint: Option<Failpoint>,
    crashed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.name)
    }
}

/// A running ledger node.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
    outbox: Arc<JoinHandle<()>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn encode<T: Serialize>(v: &T) -> String {
    // Node messages and flow states hold only BCS-encodable types.
    hex::encode(bcs::to_bytes(v).expect("BCS encodes node messages"))
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    let bytes = hex::decode(text).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })?;
    bcs::from_bytes(&bytes).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

impl Node {
    /// Opens the node on its database, starts its outbox, and resumes its flows.
    pub async fn open(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, NodeError> {
        let me = config
            .network
            .node(&config.name)
            .ok_or_else(|| NodeError::NotAMember(config.name.clone()))?;
        if me.owning_key != config.key.public() {
            return Err(NodeError::NotAMember(config.name.clone()));
        }
        let store = Store::connect(&config.database_url).await?;
        for m in MIGRATIONS {
            sqlx::query(*m)
                .execute(store.pool())
                .await
                .map_err(db("migrating the node"))?;
        }
        let vault = Vault::open(store.clone(), &config.key).await?;
        let mut registry = ContractRegistry::default();
        registry.install(Arc::new(StablecoinContract));
        let notary = (config.role == NodeRole::Notary).then(|| {
            let cfg = NotaryConfig {
                max_transaction_size: config.network.max_transaction_size,
                ..NotaryConfig::default()
            };
            let validating = config.network.notary_validating.then(|| registry.clone());
            Notary::start(
                me.clone(),
                config.key.clone(),
                store.clone(),
                validating,
                cfg,
            )
        });
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            name: config.name.clone(),
            role: config.role,
            key: config.key,
            registry,
            network: config.network,
            store,
            vault,
            notary,
            transport,
            outbox_wake: Notify::new(),
            fresh: std::sync::Mutex::new(Vec::new()),
            events,
            failpoint: config.failpoint,
            crashed: std::sync::atomic::AtomicBool::new(false),
        });
        let span = info_span!("ledger.outbox", chain = %inner.name);
        let outbox = tokio::spawn(outbox_loop(Arc::downgrade(&inner)).instrument(span));
        let in_flight = inner.flows_in_flight().await?;
        if in_flight > 0 {
            info!(
                flows = in_flight,
                "resumed flows in flight from checkpoints"
            );
        }
        Ok(Self {
            inner,
            outbox: Arc::new(outbox),
        })
    }

    /// The node's legal name.
    pub fn name(&self) -> &PartyName {
        &self.inner.name
    }

    /// This node as an inbound receiver (for transports).
    pub fn receiver(&self) -> Weak<dyn Receiver> {
        let arc: Arc<dyn Receiver> = self.inner.clone();
        Arc::downgrade(&arc)
    }

    /// The network parameters.
    pub fn network(&self) -> &NetworkParameters {
        &self.inner.network
    }

    /// Resolves a node name given in full (`O=PartyB, L=Osaka, C=JP`) or by its organisation
    /// (`PartyB`).
    pub fn resolve_node(&self, name: &str) -> Option<PartyName> {
        if let Ok(full) = name.parse::<PartyName>() {
            return self.inner.network.node(&full).map(|p| p.name.clone());
        }
        let mut matches = self
            .inner
            .network
            .nodes
            .iter()
            .filter(|p| p.name.organisation() == name);
        let first = matches.next()?;
        matches.next().is_none().then(|| first.name.clone())
    }

    /// The vault.
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// Creates an account.
    pub async fn create_account(&self, label: &str) -> Result<Account, NodeError> {
        Ok(self.inner.vault.create_account(label).await?)
    }

    /// Starts a flow; follow it with [`Node::flow_status`] or [`Node::wait_flow`].
    pub async fn start_flow(&self, request: FlowRequest) -> Result<Uuid, NodeError> {
        let flow = Uuid::new_v4();
        let inner = &self.inner;
        let (to_node, to_account) = request.target(&inner.name);
        if to_node == inner.name {
            let key = inner
                .vault
                .accounts()
                .await?
                .into_iter()
                .find(|a| a.id == to_account)
                .map(|a| a.public_key);
            inner.with_payee_key(flow, request, key).await?;
        } else {
            let msg = Message::KeyRequest {
                flow,
                account: to_account,
            };
            inner
                .checkpoint(
                    flow,
                    &FlowState::AwaitingPayeeKey { request },
                    vec![(to_node, msg)],
                )
                .await?;
        }
        Ok(flow)
    }

    /// Archives the vault ([`Vault::archive_consumed`]) and forgets the checkpoints of flows that
    /// finished before `before_ms` (their status is no longer reported). Returns what the vault
    /// archived and how many finished flows were removed.
    pub async fn archive(&self, before_ms: i64) -> Result<(crate::Archived, u64), NodeError> {
        let archived = self.inner.vault.archive_consumed(before_ms).await?;
        let finished: Vec<String> = self
            .inner
            .flows_updated_before(before_ms)
            .await?
            .into_iter()
            .filter_map(|(id, running)| (!running).then_some(id))
            .collect();
        if !finished.is_empty() {
            let mut t = self.inner.store.begin_write().await?;
            for id in &finished {
                // Only if it did not change since it was read.
                sqlx::query("DELETE FROM flows WHERE id = $1 AND updated_ms < $2")
                    .bind(id)
                    .bind(before_ms)
                    .execute(&mut *t)
                    .await
                    .map_err(db("removing finished flows"))?;
            }
            t.commit().await.map_err(db("removing finished flows"))?;
        }
        Ok((archived, finished.len() as u64))
    }

    /// The transactions this node co-signed as a Validator, oldest first.
    pub async fn validations(&self) -> Result<Vec<Validation>, NodeError> {
        let rows = sqlx::query(
            "SELECT tx_id, requester, validated_ms FROM validations ORDER BY validated_ms, tx_id",
        )
        .fetch_all(self.inner.store.pool())
        .await
        .map_err(db("reading validations"))?;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "validations",
            reason,
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let tx: String = r.try_get(0).map_err(db("reading validations"))?;
            let requester: String = r.try_get(1).map_err(db("reading validations"))?;
            out.push(Validation {
                tx_id: tx
                    .parse()
                    .map_err(|e: crate::ParseHashError| corrupt(e.to_string()))?,
                requester: requester
                    .parse()
                    .map_err(|e: crate::ParseNameError| corrupt(e.to_string()))?,
                validated_ms: r.try_get(2).map_err(db("reading validations"))?,
            });
        }
        Ok(out)
    }

    /// A flow's status.
    pub async fn flow_status(&self, flow: Uuid) -> Result<FlowStatus, NodeError> {
        Ok(self
            .inner
            .load_flow(flow)
            .await?
            .ok_or(NodeError::UnknownFlow(flow))?
            .status())
    }

    /// Waits until the flow is no longer running, at most `limit`.
    pub async fn wait_flow(&self, flow: Uuid, limit: Duration) -> Result<FlowStatus, NodeError> {
        let mut events = self.inner.events.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let status = self.flow_status(flow).await?;
        if !matches!(status, FlowStatus::Running { .. }) {
            return Ok(status);
        }
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(NodeError::Timeout(flow)),
                Ok(Ok((id, status))) if id == flow => {
                    if !matches!(status, FlowStatus::Running { .. }) {
                        return Ok(status);
                    }
                }
                Ok(Ok(_)) => {}
                // Missed events: fall back to the stored state.
                Ok(Err(_)) => {
                    let status = self.flow_status(flow).await?;
                    if !matches!(status, FlowStatus::Running { .. }) {
                        return Ok(status);
                    }
                }
            }
        }
    }

    /// Whether the node stopped (shut down, or crashed at a failpoint).
    pub fn is_stopped(&self) -> bool {
        self.inner.is_crashed()
    }

    /// Stops the node's background work (its database stays as it is).
    pub fn shutdown(&self) {
        self.inner
            .crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.outbox.abort();
    }
}

impl Inner {
    fn is_crashed(&self) -> bool {
        self.crashed.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn flows_in_flight(&self) -> Result<usize, StoreError> {
        let flows = self.flows_updated_before(i64::MAX).await?;
        Ok(flows.iter().filter(|(_, running)| *running).count())
    }

    /// Every flow last checkpointed before `before_ms`: its id, and whether it is running.
    async fn flows_updated_before(
        &self,
        before_ms: i64,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        let rows = sqlx::query("SELECT id, state FROM flows WHERE updated_ms < $1")
            .bind(before_ms)
            .fetch_all(self.store.pool())
            .await
            .map_err(db("reading flows"))?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0).map_err(db("reading flows"))?;
                let text: String = r.try_get(1).map_err(db("reading flows"))?;
                let state: FlowState = decode("flows", &text)?;
                Ok((id, matches!(state.status(), FlowStatus::Running { .. })))
            })
            .collect()
    }

    async fn load_flow(&self, flow: Uuid) -> Result<Option<FlowState>, StoreError> {
        let row = sqlx::query("SELECT state FROM flows WHERE id = $1")
            .bind(flow.to_string())
            .fetch_optional(self.store.pool())
            .await
            .map_err(db("reading a flow"))?;
        row.map(|r| {
            let text: String = r.try_get(0).map_err(db("reading a flow"))?;
            decode("flows", &text)
        })
        .transpose()
    }

    /// Stores the flow's new state and its outgoing messages atomically, then wakes the outbox.
    /// Refuses writes once the node is stopped (a standby owns the database from then on).
    fn check_running(&self) -> Result<(), StoreError> {
        if self.is_crashed() {
            return Err(StoreError::Stopped);
        }
        Ok(())
    }

    async fn checkpoint(
        &self,
        flow: Uuid,
        state: &FlowState,
        out: Vec<(PartyName, Message)>,
    ) -> Result<(), StoreError> {
        self.checkpoint_recording(flow, state, out, None).await
    }

    /// [`Inner::checkpoint`], recording `record` (a finalised transaction) in the vault in the
    /// same database transaction.
    async fn checkpoint_recording(
        &self,
        flow: Uuid,
        state: &FlowState,
        out: Vec<(PartyName, Message)>,
        record: Option<&SignedTransaction>,
    ) -> Result<(), StoreError> {
        self.check_running()?;
        let keys = match record {
            Some(_) => Some(self.relevant_keys().await?),
            None => None,
        };
        let mut t = self.store.begin_write().await?;
        let now = now_ms();
        if let (Some(stx), Some(keys)) = (record, &keys) {
            self.vault.record_in(&mut t, stx, keys, Some(flow)).await?;
        }
        sqlx::query(
            "INSERT INTO flows (id, state, updated_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
        )
        .bind(flow.to_string())
        .bind(encode(state))
        .bind(now)
        .execute(&mut *t)
        .await
        .map_err(db("checkpointing a flow"))?;
        let queued = self.enqueue(&mut t, out, now).await?;
        mark_handled(&mut t, now).await?;
        t.commit().await.map_err(db("committing a checkpoint"))?;
        self.hand_to_outbox(queued);
        let _ = self.events.send((flow, state.status()));
        Ok(())
    }

    async fn enqueue(
        &self,
        t: &mut crate::store::WriteTx,
        out: Vec<(PartyName, Message)>,
        now: i64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut queued = Vec::with_capacity(out.len());
        for (i, (to, msg)) in out.into_iter().enumerate() {
            let env = Envelope {
                id: Uuid::new_v4(),
                from: self.name.clone(),
                to: to.clone(),
                payload: bcs::to_bytes(&msg).expect("BCS encodes node messages"),
            };
            sqlx::query(
                "INSERT INTO outbox (id, to_node, body, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(env.id.to_string())
            .bind(to.to_string())
            .bind(encode(&env))
            .bind(now * 1000 + i as i64)
            .execute(&mut **t)
            .await
            .map_err(db("queueing a message"))?;
            queued.push(env);
        }
        Ok(queued)
    }

    /// Hands committed messages to the outbox task (which would otherwise find them on its
    /// next scan of the table).
    fn hand_to_outbox(&self, queued: Vec<Envelope>) {
        if !queued.is_empty()
            && let Ok(mut fresh) = self.fresh.lock()
        {
            fresh.extend(queued);
        }
        self.outbox_wake.notify_one();
    }

    async fn send_only(&self, out: Vec<(PartyName, Message)>) -> Result<(), StoreError> {
        self.check_running()?;
        let mut t = self.store.begin_write().await?;
        let now = now_ms();
        let queued = self.enqueue(&mut t, out, now).await?;
        mark_handled(&mut t, now).await?;
        t.commit().await.map_err(db("queueing messages"))?;
        self.hand_to_outbox(queued);
        Ok(())
    }

    async fn relevant_keys(&self) -> Result<BTreeSet<PublicKey>, StoreError> {
        let mut keys: BTreeSet<PublicKey> = self
            .vault
            .accounts()
            .await?
            .into_iter()
            .map(|a| a.public_key)
            .collect();
        keys.insert(self.key.public());
        Ok(keys)
    }

    /// Continues a flow once the payee's key is known.
    async fn with_payee_key(
        &self,
        flow: Uuid,
        request: FlowRequest,
        key: Option<PublicKey>,
    ) -> Result<(), NodeError> {
        let Some(payee) = key else {
            return Ok(self
                .checkpoint(
                    flow,
                    &FlowState::Failed {
                        reason: "the payee account does not exist".into(),
                    },
                    vec![],
                )
                .await?);
        };
        let notary = self.network.notary.clone();
        match request {
            FlowRequest::Issue {
                amount,
                currency,
                to_node,
                ..
            } => {
                let coin = StablecoinState {
                    amount,
                    currency,
                    issuer: self.name.clone(),
                    issuer_key: self.key.public(),
                    owner: payee,
                };
                let tx = WireTransaction {
                    inputs: vec![],
                    references: vec![],
                    outputs: vec![TransactionState {
                        contract: stablecoin_id(),
                        notary,
                        participants: vec![payee],
                        data: bcs::to_bytes(&coin).expect("BCS encodes a coin"),
                    }],
                    commands: vec![Command {
                        contract: stablecoin_id(),
                        data: bcs::to_bytes(&StablecoinCommand::Issue)
                            .expect("BCS encodes a command"),
                        signers: vec![self.key.public()],
                    }],
                    notary: Some(self.network.notary.clone()),
                    time_window: None,
                    privacy_salt: rand::random(),
                };
                let stx = SignedTransaction::signed_by(tx, &self.key);
                self.finalise(flow, stx, vec![to_node]).await
            }
            FlowRequest::Redeem { account, amount } => {
                self.start_redeem(flow, account, amount).await
            }
            FlowRequest::Split { account, parts } => {
                let key = self.vault.account_key(account).await?;
                let balance = self.vault.balance(&key.public()).await?;
                let Some((inputs, lock)) =
                    self.lock_coins(flow, &key.public(), balance.max(1)).await?
                else {
                    return Ok(());
                };
                match build_split(&inputs, key.public(), parts, &notary) {
                    Ok(tx) => {
                        self.request_notarisation(flow, tx, &key, lock, vec![])
                            .await
                    }
                    Err(e) => {
                        self.vault.release(lock).await?;
                        let state = FlowState::Failed {
                            reason: e.to_string(),
                        };
                        Ok(self.checkpoint(flow, &state, vec![]).await?)
                    }
                }
            }
            FlowRequest::Pay {
                amount,
                from,
                to_node,
                validator,
                ..
            } => {
                let validator = match validator {
                    None => None,
                    Some(v) => match self.validator_key(&v, &to_node) {
                        Ok(key) => Some((v, key)),
                        Err(reason) => {
                            return Ok(self
                                .checkpoint(flow, &FlowState::Failed { reason }, vec![])
                                .await?);
                        }
                    },
                };
                let key = self.vault.account_key(from).await?;
                let Some((inputs, lock)) = self.lock_coins(flow, &key.public(), amount).await?
                else {
                    return Ok(());
                };
                let tx = match build_payment(&inputs, key.public(), payee, amount, &notary) {
                    Ok(tx) => tx,
                    Err(PaymentError::Coins(reason)) => {
                        self.vault.release(lock).await?;
                        return Ok(self
                            .checkpoint(flow, &FlowState::Failed { reason }, vec![])
                            .await?);
                    }
                    Err(e) => {
                        self.vault.release(lock).await?;
                        return Ok(self
                            .checkpoint(
                                flow,
                                &FlowState::Failed {
                                    reason: e.to_string(),
                                },
                                vec![],
                            )
                            .await?);
                    }
                };
                let Some((validator, validator_key)) = validator else {
                    return self
                        .request_notarisation(flow, tx, &key, lock, vec![to_node])
                        .await;
                };
                let mut tx = tx;
                for c in &mut tx.commands {
                    c.signers.push(validator_key);
                }
                let stx = SignedTransaction::signed_by(tx, &key);
                self.ask_cosigner(flow, stx, lock, validator.clone(), vec![to_node, validator])
                    .await
            }
        }
    }

    /// The key of `validator` when it is one of the network's Validators and a third party
    /// to a payment from this node to `payee_node`.
    fn validator_key(
        &self,
        validator: &PartyName,
        payee_node: &PartyName,
    ) -> Result<PublicKey, String> {
        if validator == &self.name || validator == payee_node {
            return Err(format!(
                "{validator} takes part in the payment; a Validator must be a third party"
            ));
        }
        if !self.network.validators.contains(validator) {
            return Err(format!("{validator} is not a Validator of this network"));
        }
        self.network
            .node(validator)
            .map(|p| p.owning_key)
            .ok_or_else(|| format!("{validator} is not in the network parameters"))
    }

    /// The transactions that produced `stx`'s inputs and references, from this node's store.
    async fn backchain(
        &self,
        stx: &SignedTransaction,
    ) -> Result<Result<Vec<SignedTransaction>, String>, StoreError> {
        let ids: BTreeSet<TxId> = stx
            .tx
            .inputs
            .iter()
            .chain(&stx.tx.references)
            .map(|r| r.tx_id)
            .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.vault.transaction(&id).await? {
                Some(dep) => out.push(dep),
                None => {
                    return Ok(Err(format!(
                        "transaction {id}, which produced an input, is not in this node's store"
                    )));
                }
            }
        }
        Ok(Ok(out))
    }

    /// Resolves `stx`'s inputs and references from `backchain`, each of whose transactions must
    /// be completely signed (notary included when it consumed states), and runs the contracts.
    fn verify_with_backchain(
        &self,
        stx: &SignedTransaction,
        backchain: &[SignedTransaction],
    ) -> Result<LedgerTransaction, String> {
        let max = self.network.max_transaction_size;
        let mut deps = std::collections::HashMap::with_capacity(backchain.len());
        for dep in backchain {
            dep.verify(max, &[])
                .map_err(|e| format!("input transaction {}: {e}", dep.id()))?;
            deps.insert(dep.id(), dep);
        }
        let ltx = LedgerTransaction::resolve(stx, |r| {
            deps.get(&r.tx_id)
                .and_then(|dep| dep.tx.outputs.get(r.index as usize).cloned())
        })
        .map_err(|e| e.to_string())?;
        self.registry.verify(&ltx).map_err(|e| e.to_string())?;
        let states = ltx
            .inputs
            .iter()
            .chain(&ltx.references)
            .map(|s| &s.state)
            .chain(&ltx.outputs);
        for state in states.filter(|s| s.contract == stablecoin_id()) {
            let coin: StablecoinState = state.decode().map_err(|e| e.to_string())?;
            if self.network.node(&coin.issuer).map(|p| p.owning_key) != Some(coin.issuer_key) {
                return Err(format!(
                    "coins issued by {} with key {}, which is not that node of the network",
                    coin.issuer, coin.issuer_key
                ));
            }
        }
        Ok(ltx)
    }

    /// Sends `stx` (signed by this node) with its backchain to `cosigner` and checkpoints the
    /// flow as waiting for the co-signature.
    async fn ask_cosigner(
        &self,
        flow: Uuid,
        stx: SignedTransaction,
        lock: Uuid,
        cosigner: PartyName,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        let backchain = match self.backchain(&stx).await? {
            Ok(b) => b,
            Err(reason) => {
                self.vault.release(lock).await?;
                return Ok(self
                    .checkpoint(flow, &FlowState::Failed { reason }, vec![])
                    .await?);
            }
        };
        let out = vec![(
            cosigner.clone(),
            Message::SignRequest {
                flow,
                tx: stx.clone(),
                backchain,
            },
        )];
        let state = FlowState::AwaitingCosigner {
            stx,
            lock,
            cosigner,
            notify,
        };
        Ok(self.checkpoint(flow, &state, out).await?)
    }

    /// Signs `tx` with the owner's key and checkpoints the flow with its notarisation request.
    async fn request_notarisation(
        &self,
        flow: Uuid,
        tx: WireTransaction,
        key: &KeyPair,
        lock: Uuid,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        self.notarise_signed(flow, SignedTransaction::signed_by(tx, key), lock, notify)
            .await
    }

    /// Checkpoints the flow with the notarisation request of an already signed transaction.
    async fn notarise_signed(
        &self,
        flow: Uuid,
        stx: SignedTransaction,
        lock: Uuid,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        let request = if self.network.notary_validating {
            let resolved = match self.backchain(&stx).await? {
                Ok(backchain) => self.verify_with_backchain(&stx, &backchain),
                Err(reason) => Err(reason),
            };
            match resolved {
                Ok(ltx) => NotarisationRequest::Validating {
                    tx: Box::new(stx.clone()),
                    resolved: ltx.inputs.into_iter().chain(ltx.references).collect(),
                },
                Err(reason) => {
                    self.vault.release(lock).await?;
                    return Ok(self
                        .checkpoint(flow, &FlowState::Failed { reason }, vec![])
                        .await?);
                }
            }
        } else {
            NotarisationRequest::NonValidating(stx.tx.notary_view())
        };
        let state = FlowState::AwaitingNotary { stx, lock, notify };
        let notary = self.network.notary.name.clone();
        let out = vec![(notary, Message::NotariseRequest { flow, request })];
        Ok(self.checkpoint(flow, &state, out).await?)
    }

    /// Selects and soft-locks `amount` of `owner`'s coins for `flow`. When the funds are not
    /// there (or are locked by payments in flight) the flow is checkpointed as failed and
    /// `None` is returned.
    async fn lock_coins(
        &self,
        flow: Uuid,
        owner: &PublicKey,
        amount: u64,
    ) -> Result<Option<(Vec<StateAndRef>, Uuid)>, NodeError> {
        let lock = Uuid::new_v4();
        match self
            .vault
            .select_and_lock(owner, amount, lock, PAYMENT_LOCK_MS)
            .await
        {
            Ok(inputs) => Ok(Some((inputs, lock))),
            Err(VaultError::InsufficientFunds {
                available, wanted, ..
            }) => {
                let reason = format!("insufficient funds: {available} available, {wanted} wanted");
                self.checkpoint(flow, &FlowState::Failed { reason }, vec![])
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Builds and owner-signs a redemption of `amount` from `account`, and asks the issuer to
    /// co-sign it.
    async fn start_redeem(&self, flow: Uuid, account: Uuid, amount: u64) -> Result<(), NodeError> {
        let fail = |reason: String| FlowState::Failed { reason };
        let key = self.vault.account_key(account).await?;
        let Some((inputs, lock)) = self.lock_coins(flow, &key.public(), amount).await? else {
            return Ok(());
        };
        let coins: Vec<StablecoinState> = inputs
            .iter()
            .filter_map(|s| s.state.decode().ok())
            .collect();
        let Some(first) = coins.first().cloned() else {
            self.vault.release(lock).await?;
            return Ok(self
                .checkpoint(flow, &fail("no coins selected".into()), vec![])
                .await?);
        };
        if coins.len() != inputs.len()
            || coins
                .iter()
                .any(|c| c.issuer != first.issuer || c.currency != first.currency)
        {
            self.vault.release(lock).await?;
            return Ok(self
                .checkpoint(
                    flow,
                    &fail("coins of several issuers or currencies".into()),
                    vec![],
                )
                .await?);
        }
        let total: u64 = coins.iter().map(|c| c.amount).sum();
        let change = total - amount.min(total);
        let mut outputs = vec![];
        if change > 0 {
            let coin = StablecoinState {
                amount: change,
                ..first.clone()
            };
            outputs.push(TransactionState {
                contract: stablecoin_id(),
                notary: self.network.notary.clone(),
                participants: vec![key.public()],
                data: bcs::to_bytes(&coin).expect("BCS encodes a coin"),
            });
        }
        let tx = WireTransaction {
            inputs: inputs.iter().map(|s| s.reference).collect(),
            references: vec![],
            outputs,
            commands: vec![Command {
                contract: stablecoin_id(),
                data: bcs::to_bytes(&StablecoinCommand::Redeem { amount })
                    .expect("BCS encodes a command"),
                signers: vec![key.public(), first.issuer_key],
            }],
            notary: Some(self.network.notary.clone()),
            time_window: None,
            privacy_salt: rand::random(),
        };
        let stx = SignedTransaction::signed_by(tx, &key);
        let issuer = first.issuer.clone();
        self.ask_cosigner(flow, stx, lock, issuer.clone(), vec![issuer])
            .await
    }

    /// Decides whether this node co-signs `stx`. Either way the transaction must be signed by
    /// everyone but this node and the notary, its inputs must come from completely signed
    /// transactions in `backchain`, and its contracts must hold. A Validator then co-signs any
    /// such transaction that names it as a signer (and keeps a record of it); any other node
    /// co-signs only redemptions of coins it issued.
    fn cosign(
        &self,
        stx: &SignedTransaction,
        backchain: &[SignedTransaction],
    ) -> Result<TransactionSignature, String> {
        let me = self.key.public();
        if !stx.tx.required_signers().contains(&me) {
            return Err("this node is not a required signer".into());
        }
        stx.verify(
            self.network.max_transaction_size,
            &[me, self.network.notary.owning_key],
        )
        .map_err(|e| e.to_string())?;
        let ltx = self.verify_with_backchain(stx, backchain)?;
        if self.role != NodeRole::Validator {
            let redeem_only = stx.tx.commands.iter().all(|c| {
                c.contract == stablecoin_id()
                    && matches!(
                        bcs::from_bytes::<StablecoinCommand>(&c.data),
                        Ok(StablecoinCommand::Redeem { .. })
                    )
            });
            if !redeem_only {
                return Err("this node only co-signs redemptions".into());
            }
            for input in &ltx.inputs {
                let coin: StablecoinState = input.state.decode().map_err(|e| e.to_string())?;
                if coin.issuer_key != me {
                    return Err(format!(
                        "input {} was not issued by this node",
                        input.reference
                    ));
                }
            }
        }
        Ok(TransactionSignature::sign(&self.key, &stx.id()))
    }

    /// Keeps the Validator's record of a co-signed transaction.
    async fn record_validation(&self, tx: &TxId, requester: &PartyName) -> Result<(), StoreError> {
        let _turn = self.store.write_turn().await;
        sqlx::query(
            "INSERT INTO validations (tx_id, requester, validated_ms) VALUES ($1, $2, $3) ON CONFLICT (tx_id) DO NOTHING",
        )
        .bind(tx.to_string())
        .bind(requester.to_string())
        .bind(now_ms())
        .execute(self.store.pool())
        .await
        .map_err(db("recording a validation"))?;
        Ok(())
    }

    /// Records a complete transaction, sends it (with its backchain) to `notify`, and
    /// completes the flow.
    async fn finalise(
        &self,
        flow: Uuid,
        stx: SignedTransaction,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        let notify: BTreeSet<PartyName> = notify.into_iter().filter(|n| n != &self.name).collect();
        let backchain = if notify.is_empty() {
            vec![]
        } else {
            // The inputs were resolved from this store when the flow began, so this cannot
            // miss; if it did, recipients would refuse the transaction and say why.
            self.backchain(&stx).await?.unwrap_or_else(|reason| {
                warn!(tx = %stx.id(), reason = %reason, "finalising without a backchain");
                vec![]
            })
        };
        let out = notify
            .into_iter()
            .map(|n| {
                let msg = Message::Finalised {
                    tx: stx.clone(),
                    backchain: backchain.clone(),
                };
                (n, msg)
            })
            .collect();
        self.checkpoint_recording(
            flow,
            &FlowState::Completed { tx_id: stx.id() },
            out,
            Some(&stx),
        )
        .await?;
        info!(flow = %flow, tx = %stx.id(), "flow completed");
        Ok(())
    }

    async fn handle(&self, from: &PartyName, msg: Message) -> Result<(), NodeError> {
        match msg {
            Message::KeyRequest { flow, account } => {
                let key = self
                    .vault
                    .accounts()
                    .await?
                    .into_iter()
                    .find(|a| a.id == account)
                    .map(|a| a.public_key);
                self.send_only(vec![(from.clone(), Message::KeyResponse { flow, key })])
                    .await?;
            }
            Message::KeyResponse { flow, key } => {
                if let Some(FlowState::AwaitingPayeeKey { request }) = self.load_flow(flow).await? {
                    self.with_payee_key(flow, request, key).await?;
                }
            }
            Message::NotariseRequest { flow, request } => {
                let Some(notary) = &self.notary else {
                    return Ok(());
                };
                let result = notary.notarise(request).await.map_err(|e| e.to_string());
                self.send_only(vec![(
                    from.clone(),
                    Message::NotariseResponse { flow, result },
                )])
                .await?;
            }
            Message::NotariseResponse { flow, result } => {
                if let Some(FlowState::AwaitingNotary {
                    mut stx,
                    lock,
                    notify,
                }) = self.load_flow(flow).await?
                {
                    match result {
                        Ok(sig)
                            if sig.verify(&stx.id()).is_ok()
                                && sig.by == self.network.notary.owning_key =>
                        {
                            stx.sigs.push(sig);
                            self.finalise(flow, stx, notify).await?;
                        }
                        Ok(_) => {
                            self.vault.release(lock).await?;
                            self.checkpoint(
                                flow,
                                &FlowState::Failed {
                                    reason: "the notary's signature does not verify".into(),
                                },
                                vec![],
                            )
                            .await?;
                        }
                        Err(reason) => {
                            self.vault.release(lock).await?;
                            self.checkpoint(
                                flow,
                                &FlowState::Failed {
                                    reason: format!("notary refused: {reason}"),
                                },
                                vec![],
                            )
                            .await?;
                        }
                    }
                }
            }
            Message::SignRequest {
                flow,
                tx,
                backchain,
            } => {
                let result = self.cosign(&tx, &backchain);
                match &result {
                    Err(reason) => warn!(from = %from, reason = %reason, "refusing to co-sign"),
                    Ok(_) if self.role == NodeRole::Validator => {
                        self.record_validation(&tx.id(), from).await?;
                        info!(tx = %tx.id(), from = %from, "validated and co-signed");
                    }
                    Ok(_) => {}
                }
                self.send_only(vec![(from.clone(), Message::SignResponse { flow, result })])
                    .await?;
            }
            Message::SignResponse { flow, result } => {
                if let Some(FlowState::AwaitingCosigner {
                    mut stx,
                    lock,
                    cosigner,
                    notify,
                }) = self.load_flow(flow).await?
                    && &cosigner == from
                {
                    let cosigner_key = self.network.node(&cosigner).map(|p| p.owning_key);
                    match result {
                        Ok(sig)
                            if Some(sig.by) == cosigner_key && sig.verify(&stx.id()).is_ok() =>
                        {
                            stx.sigs.push(sig);
                            self.notarise_signed(flow, stx, lock, notify).await?;
                        }
                        other => {
                            self.vault.release(lock).await?;
                            let who = cosigner.organisation();
                            let reason = match other {
                                Err(r) => format!("{who} refused to co-sign: {r}"),
                                Ok(_) => format!("{who}'s signature does not verify"),
                            };
                            self.checkpoint(flow, &FlowState::Failed { reason }, vec![])
                                .await?;
                        }
                    }
                }
            }
            Message::Finalised { tx, backchain } => {
                let notary_key = self.network.notary.owning_key;
                let needs_notary = !tx.tx.inputs.is_empty();
                let allowed: Vec<PublicKey> = if needs_notary {
                    vec![]
                } else {
                    vec![notary_key]
                };
                if tx
                    .verify(self.network.max_transaction_size, &allowed)
                    .is_err()
                {
                    warn!(tx = %tx.id(), from = %from, "refusing a badly signed finalised transaction");
                    return Ok(());
                }
                if let Err(reason) = self.verify_with_backchain(&tx, &backchain) {
                    warn!(tx = %tx.id(), from = %from, reason = %reason, "refusing a finalised transaction that does not verify");
                    return Ok(());
                }
                self.vault.record(&tx, &self.relevant_keys().await?).await?;
            }
        }
        Ok(())
    }
}

impl Receiver for Inner {
    fn receive(&self, env: Envelope) -> SendFuture<'_> {
        Box::pin(async move {
            if self.is_crashed() {
                return Err(TransportError::Unreachable(self.name.clone()));
            }
            let refuse = |reason: String| TransportError::Refused {
                to: self.name.clone(),
                id: env.id,
                reason,
            };
            if env.to != self.name || self.network.node(&env.from).is_none() {
                return Err(refuse(
                    "not addressed to this node, or from a stranger".into(),
                ));
            }
            // Storage failures are the receiver's problem, not the message's: the sender retries.
            let failed = |reason: String| TransportError::Failed {
                to: self.name.clone(),
                reason,
            };
            let seen = sqlx::query("SELECT 1 FROM inbox WHERE id = $1")
                .bind(env.id.to_string())
                .fetch_optional(self.store.pool())
                .await
                .map_err(|e| failed(e.to_string()))?;
            if seen.is_some() {
                return Ok(());
            }
            let msg: Message = bcs::from_bytes(&env.payload)
                .map_err(|e| refuse(format!("undecodable message: {e}")))?;
            // Handlers are idempotent: a crash before the inbox row means a redelivery, handled
            // again. A handler's last write (a checkpoint or queued reply) records the inbox row
            // in its own database transaction; otherwise it is recorded here.
            let pending = INBOX
                .scope(std::cell::Cell::new(Some(env.id)), async {
                    self.handle(&env.from, msg).await?;
                    Ok::<_, NodeError>(INBOX.with(|c| c.get()))
                })
                .await
                .map_err(|e| failed(e.to_string()))?;
            if let Some(id) = pending {
                let _turn = self.store.write_turn().await;
                sqlx::query(
                    "INSERT INTO inbox (id, received_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id.to_string())
                .bind(now_ms())
                .execute(self.store.pool())
                .await
                .map_err(|e| failed(e.to_string()))?;
            }
            Ok(())
        })
    }
}

tokio::task_local! {
    /// The envelope being handled on this task, until a write records it in the inbox.
    static INBOX: std::cell::Cell<Option<Uuid>>;
}

/// Records the envelope being handled (if any, and not yet recorded) as processed, inside `t`.
async fn mark_handled(t: &mut crate::store::WriteTx, now: i64) -> Result<(), StoreError> {
    let Some(id) = INBOX.try_with(|c| c.get()).ok().flatten() else {
        return Ok(());
    };
    sqlx::query("INSERT INTO inbox (id, received_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(id.to_string())
        .bind(now)
        .execute(&mut **t)
        .await
        .map_err(db("recording a handled message"))?;
    // Cleared now: if the caller's commit fails, the handler fails and the sender redelivers.
    let _ = INBOX.try_with(|c| c.set(None));
    Ok(())
}

/// A finished delivery: the message, and what the receiver said.
type Delivery = (Envelope, Result<(), TransportError>);

/// Longest wait before retrying a message whose receiver could not be reached.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(500);

/// How often the outbox task re-reads the outbox table (it is handed new messages directly;
/// the table is read at start, for a standby's inherited messages, and as a safety net).
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Delivers the outbox. Every message is sent on a task of its own, so a slow receiver holds
/// up nobody else (steps of different flows do not depend on each other's order, and a flow
/// has at most one message in flight per receiver). Acknowledged messages are cleared
/// together; a refused one is dropped with a warning (the receiver will never accept it); an
/// undeliverable one is retried with a growing delay.
async fn outbox_loop(inner: Weak<Inner>) {
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
    let mut in_flight: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    let mut retry: std::collections::HashMap<Uuid, (tokio::time::Instant, u32, Envelope)> =
        std::collections::HashMap::new();
    let mut finished: Vec<Delivery> = vec![];
    let mut rescan_at = tokio::time::Instant::now();
    loop {
        let Some(node) = inner.upgrade() else { return };
        if node.is_crashed() {
            return;
        }
        while let Ok(d) = finished_rx.try_recv() {
            finished.push(d);
        }
        let mut done = vec![];
        for (env, result) in finished.drain(..) {
            in_flight.remove(&env.id);
            match result {
                Ok(()) => {
                    retry.remove(&env.id);
                    done.push(env.id);
                }
                Err(e @ TransportError::Refused { .. }) => {
                    warn!(error = %e, to = %env.to, "message refused by its receiver; dropped");
                    retry.remove(&env.id);
                    done.push(env.id);
                }
                Err(e) => {
                    tracing::debug!(error = %e, to = %env.to, "delivery failed; will retry");
                    let tries = retry.get(&env.id).map_or(0, |(_, n, _)| *n);
                    let delay = (Duration::from_millis(10) * 2u32.saturating_pow(tries))
                        .min(MAX_RETRY_DELAY);
                    let at = tokio::time::Instant::now() + delay;
                    retry.insert(env.id, (at, tries + 1, env));
                }
            }
        }
        if !done.is_empty()
            && let Err(e) = clear_outbox(&node, &done).await
        {
            // Left in the table: delivered again after a restart; the receiver's inbox drops it.
            warn!(error = %e, "clearing the outbox failed");
        }
        let now = tokio::time::Instant::now();
        let mut ready: Vec<Envelope> = node
            .fresh
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        let due: Vec<Uuid> = retry
            .iter()
            .filter(|(id, (at, _, _))| *at <= now && !in_flight.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        ready.extend(
            due.iter()
                .filter_map(|id| retry.get(id).map(|(_, _, e)| e.clone())),
        );
        if now >= rescan_at {
            rescan_at = now + RESCAN_EVERY;
            match read_outbox(&node).await {
                Ok(rows) => ready.extend(rows.into_iter().filter(|e| !retry.contains_key(&e.id))),
                Err(e) => warn!(error = %e, "outbox read failed"),
            }
        }
        for env in ready {
            if !in_flight.insert(env.id) {
                continue;
            }
            if start_delivery(&node, env, &finished_tx) {
                break;
            }
        }
        if node.is_crashed() {
            return;
        }
        tokio::select! {
            () = node.outbox_wake.notified() => {}
            Some(d) = finished_rx.recv() => finished.push(d),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn clear_outbox(node: &Inner, ids: &[Uuid]) -> Result<(), StoreError> {
    let mut t = node.store.begin_write().await?;
    for id in ids {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *t)
            .await
            .map_err(db("clearing the outbox"))?;
    }
    t.commit().await.map_err(db("clearing the outbox"))
}

/// The queued messages, oldest first.
async fn read_outbox(node: &Inner) -> Result<Vec<Envelope>, StoreError> {
    let rows = sqlx::query("SELECT body FROM outbox ORDER BY created_ms LIMIT 1024")
        .fetch_all(node.store.pool())
        .await
        .map_err(db("reading the outbox"))?;
    rows.iter()
        .map(|row| {
            let body: String = row.try_get(0).map_err(db("reading the outbox"))?;
            decode("outbox", &body)
        })
        .collect()
}

/// Sends `env` on a task of its own. Returns true when a failpoint stopped the node at this
/// message: nothing queued after it may be sent, as after a kill.
fn start_delivery(
    node: &Arc<Inner>,
    env: Envelope,
    finished: &tokio::sync::mpsc::UnboundedSender<Delivery>,
) -> bool {
    let crash_after = match bcs::from_bytes::<Message>(&env.payload) {
        Ok(Message::NotariseRequest { .. }) => Some(Failpoint::CrashAfterNotariseRequest),
        Ok(Message::KeyResponse { .. }) => Some(Failpoint::CrashAfterKeyResponse),
        _ => None,
    };
    // A failpoint stops the node as soon as its message is on the wire: nothing that arrives
    // afterwards is processed.
    let crash = crash_after.is_some() && node.failpoint == crash_after;
    if crash {
        node.crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let (node2, finished) = (node.clone(), finished.clone());
    tokio::spawn(
        async move {
            let result = node2.transport.send(env.clone()).await;
            if crash {
                // Logged once the message is on the wire: a test may kill the process now.
                warn!(failpoint = ?node2.failpoint, "failpoint reached");
            }
            let _ = finished.send((env, result));
        }
        .in_current_span(),
    );
    crash
}

#[cfg(test)]
mod tests {
    //! What a co-signer (Validator or issuer) accepts, and what it refuses.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::transport::InMemoryNetwork;
    use crate::tx::StateRef;

    struct Fixture {
        params: NetworkParameters,
        keys: Vec<KeyPair>,
    }

    const NAMES: [&str; 4] = [
        "O=Notary, L=Tokyo, C=JP",
        "O=Bank, L=Tokyo, C=JP",
        "O=PartyA, L=Tokyo, C=JP",
        "O=Validator, L=Tokyo, C=JP",
    ];

    impl Fixture {
        fn new() -> Self {
            let keys: Vec<KeyPair> = NAMES.iter().map(|_| KeyPair::generate()).collect();
            let nodes: Vec<Party> = NAMES
                .iter()
                .zip(&keys)
                .map(|(n, k)| Party {
                    name: n.parse().unwrap(),
                    owning_key: k.public(),
                })
                .collect();
            let params = NetworkParameters {
                notary: nodes[0].clone(),
                notary_validating: false,
                validators: vec![NAMES[3].parse().unwrap()],
                nodes,
                max_transaction_size: crate::DEFAULT_MAX_TRANSACTION_SIZE,
            };
            Self { params, keys }
        }

        async fn open(&self, i: usize, role: NodeRole) -> Node {
            let config = NodeConfig {
                name: NAMES[i].parse().unwrap(),
                key: self.keys[i].clone(),
                database_url: format!(
                    "sqlite:{}",
                    std::env::temp_dir()
                        .join(format!("kh-node-unit-{}.db", Uuid::new_v4()))
                        .display()
                ),
                role,
                network: self.params.clone(),
                failpoint: None,
            };
            Node::open(config, InMemoryNetwork::new()).await.unwrap()
        }

        /// An issuance by `signer` of `amount` to `owner`, claiming to come from the Bank.
        fn issuance(&self, signer: &KeyPair, owner: PublicKey, amount: u64) -> SignedTransaction {
            let coin = StablecoinState {
                amount,
                currency: "JPY".into(),
                issuer: NAMES[1].parse().unwrap(),
                issuer_key: signer.public(),
                owner,
            };
            let tx = WireTransaction {
                inputs: vec![],
                references: vec![],
                outputs: vec![TransactionState {
                    contract: stablecoin_id(),
                    notary: self.params.notary.clone(),
                    participants: vec![owner],
                    data: bcs::to_bytes(&coin).unwrap(),
                }],
                commands: vec![Command {
                    contract: stablecoin_id(),
                    data: bcs::to_bytes(&StablecoinCommand::Issue).unwrap(),
                    signers: vec![signer.public()],
                }],
                notary: Some(self.params.notary.clone()),
                time_window: None,
                privacy_salt: [7; 32],
            };
            SignedTransaction::signed_by(tx, signer)
        }

        /// A payment of `amount` out of `dep`'s first output, signed by `owner`, naming
        /// `cosigner` as a signer.
        fn payment(
            &self,
            dep: &SignedTransaction,
            owner: &KeyPair,
            amount: u64,
            cosigner: Option<PublicKey>,
        ) -> SignedTransaction {
            let input = StateAndRef {
                reference: StateRef {
                    tx_id: dep.id(),
                    index: 0,
                },
                state: dep.tx.outputs[0].clone(),
            };
            let payee = KeyPair::generate().public();
            let mut tx =
                build_payment(&[input], owner.public(), payee, amount, &self.params.notary)
                    .unwrap();
            tx.commands[0].signers.extend(cosigner);
            SignedTransaction::signed_by(tx, owner)
        }
    }

    #[tokio::test]
    async fn a_validator_cosigns_a_payment_whose_backchain_and_contracts_check_out() {
        let f = Fixture::new();
        let validator = f.open(3, NodeRole::Validator).await;
        let owner = KeyPair::generate();
        let issue = f.issuance(&f.keys[1], owner.public(), 100);
        let pay = f.payment(&issue, &owner, 60, Some(f.keys[3].public()));
        let sig = validator
            .inner
            .cosign(&pay, std::slice::from_ref(&issue))
            .unwrap();
        assert_eq!(sig.by, f.keys[3].public());
        sig.verify(&pay.id()).unwrap();

        // Without the transaction that produced the input, it cannot check the input.
        let err = validator.inner.cosign(&pay, &[]).unwrap_err();
        assert!(err.contains("unknown"), "{err}");

        // A backchain transaction changed in any byte no longer produces the input.
        let mut forged = issue.clone();
        forged.tx.privacy_salt[0] ^= 1;
        assert!(validator.inner.cosign(&pay, &[forged]).is_err());

        // An input transaction missing its signature.
        let mut unsigned = issue.clone();
        unsigned.sigs.clear();
        let err = validator.inner.cosign(&pay, &[unsigned]).unwrap_err();
        assert!(err.contains("missing"), "{err}");

        // Coins "issued by the Bank" under a key that is not the Bank's.
        let rogue = KeyPair::generate();
        let fake = f.issuance(&rogue, owner.public(), 100);
        let pay_fake = f.payment(&fake, &owner, 60, Some(f.keys[3].public()));
        let err = validator.inner.cosign(&pay_fake, &[fake]).unwrap_err();
        assert!(err.contains("not that node"), "{err}");

        // The payer did not sign.
        let mut no_payer = pay.clone();
        no_payer.sigs.clear();
        let err = validator
            .inner
            .cosign(&no_payer, std::slice::from_ref(&issue))
            .unwrap_err();
        assert!(err.contains("missing"), "{err}");

        // A payment that creates value breaks the contract.
        let mut inflated = pay.clone();
        let mut coin: StablecoinState = inflated.tx.outputs[0].decode().unwrap();
        coin.amount = 90;
        inflated.tx.outputs[0].data = bcs::to_bytes(&coin).unwrap();
        let inflated = SignedTransaction::signed_by(inflated.tx, &owner);
        let err = validator
            .inner
            .cosign(&inflated, std::slice::from_ref(&issue))
            .unwrap_err();
        assert!(err.contains("conserv") || err.contains("amount"), "{err}");

        // A transaction that does not name the Validator.
        let unnamed = f.payment(&issue, &owner, 60, None);
        let err = validator
            .inner
            .cosign(&unnamed, std::slice::from_ref(&issue))
            .unwrap_err();
        assert!(err.contains("not a required signer"), "{err}");
    }

    #[tokio::test]
    async fn a_regular_node_cosigns_only_redemptions_of_its_own_coins() {
        let f = Fixture::new();
        let party_a = f.open(2, NodeRole::Regular).await;
        let owner = KeyPair::generate();
        let issue = f.issuance(&f.keys[1], owner.public(), 100);
        let pay = f.payment(&issue, &owner, 60, Some(f.keys[2].public()));
        let err = party_a.inner.cosign(&pay, &[issue]).unwrap_err();
        assert!(err.contains("only co-signs redemptions"), "{err}");
        assert!(party_a.validations().await.unwrap().is_empty());
    }
}
