//! A ledger node: identity, vault, accounts, an optional notary service, the apps it runs, and
//! their flows, which run as persisted state machines. Every flow step stores the flow's new
//! state, its outgoing messages and its app's writes in one database transaction (the
//! checkpoint); an outbox task delivers messages until the receiver acknowledges them, and a
//! node reopened on the same database resumes every flow in flight. Inbound messages are
//! handled idempotently and then marked seen, so each is processed once.
//!
//! Files: [`params`] (what a node is opened with), `checkpoint` (flow states and the step
//! commit), `runtime` (flow steps and the sub-flows), `handle` (inbound messages), `verify`
//! (backchain, contracts, co-signing), `outbox` (delivery), `messages` (the wire enum).

mod backchain;
mod checkpoint;
mod handle;
pub(crate) mod messages;
mod outbox;
pub(crate) mod params;
mod runtime;
mod verify;

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};
use uuid::Uuid;

use crate::app::{AppConflict, Apps, ServiceHub};
use crate::fence::{Fence, FenceError, STANDBY_POLL};
use crate::notary::{Notary, NotaryConfig};
use crate::store::{Store, StoreError, db};
use crate::transport::{Envelope, Receiver, Transport};
use crate::util::now_ms;
use crate::vault::{Account, Vault, VaultError};

pub use backchain::{MAX_BACKCHAIN_BYTES, MAX_BACKCHAIN_DEPTH, MAX_BACKCHAIN_TRANSACTIONS};
pub use checkpoint::FlowStatus;
pub use params::{
    CrashPoint, DEFAULT_FLOW_TIMEOUT, Failpoint, NetworkParameters, NodeConfig, NodeRole,
    Validation,
};
use runtime::At;

/// A flow to start: its name and JSON arguments.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlowStart {
    /// The flow's name (e.g. `stablecoin.pay`).
    pub name: String,
    /// Its arguments, as the flow defines them.
    pub args: serde_json::Value,
}

impl FlowStart {
    /// A flow start.
    pub fn new(name: impl Into<String>, args: serde_json::Value) -> Self {
        Self {
            name: name.into(),
            args,
        }
    }
}

/// Node failures (flow outcomes are [`FlowStatus`], not errors).
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database is held by another live node ([`NodeError::Fence`] with
    /// [`FenceError::Held`]), or the fence could not be taken.
    #[error(transparent)]
    Fence(#[from] FenceError),
    /// A vault operation failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The node is not a member of the network parameters.
    #[error("{0} is not in the network parameters")]
    NotAMember(crate::identity::PartyName),
    /// Two apps claim the same name, contract or flow.
    #[error(transparent)]
    Apps(#[from] AppConflict),
    /// No such flow.
    #[error("unknown flow {0}")]
    UnknownFlow(Uuid),
    /// No installed app has a flow of this name.
    #[error("no flow named {name:?} on this node (flows: {available})")]
    UnknownFlowName {
        /// The name asked for.
        name: String,
        /// The flows the node's apps offer.
        available: String,
    },
    /// A flow did not finish within the wait.
    #[error("flow {0} still running after the wait")]
    Timeout(Uuid),
}

pub(crate) struct Inner {
    hub: ServiceHub,
    apps: Apps,
    notary: Option<Notary>,
    transport: Arc<dyn Transport>,
    outbox_wake: Notify,
    /// Messages committed to the outbox table and not yet picked up by the outbox task.
    fresh: std::sync::Mutex<Vec<Envelope>>,
    events: broadcast::Sender<(Uuid, FlowStatus)>,
    flow_timeout: Duration,
    failpoint: Option<Failpoint>,
    /// Passages of the failpoint's crash point so far.
    failpoint_hits: std::sync::atomic::AtomicU32,
    crashed: std::sync::atomic::AtomicBool,
    /// The cold-standby fence, held until shutdown (or until the node is dropped).
    fence: std::sync::Mutex<Option<Fence>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.hub.name)
    }
}

/// A running ledger node.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
    tasks: Arc<[JoinHandle<()>; 3]>,
}

/// How often running flows are checked against their deadline.
const EXPIRE_EVERY: Duration = Duration::from_millis(250);

/// How long the ids of handled inbound messages are kept (the inbox's bound), and how often
/// older ones are pruned.
pub const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const PRUNE_INBOX_EVERY: Duration = Duration::from_secs(60);
/// How often the node checks that it still holds its fence (PostgreSQL: the fence session).
const FENCE_CHECK_EVERY: Duration = Duration::from_secs(1);

impl Node {
    /// Opens the node on its database with its apps, starts its outbox, and resumes its flows.
    /// Fails with [`FenceError::Held`] when another live node holds the database (see
    /// [`Node::open_standby`] to wait for it instead).
    pub async fn open(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, NodeError> {
        Self::check_member(&config)?;
        let fence = Fence::acquire(&config.database_url).await?;
        Self::open_fenced(config, transport, fence).await
    }

    /// Opens the node as a cold standby: waits (polling every [`STANDBY_POLL`], without touching
    /// the database) until no live node holds the database, then opens it as [`Node::open`]
    /// does and resumes the flows the previous holder left in flight.
    pub async fn open_standby(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<Self, NodeError> {
        Self::check_member(&config)?;
        let fence = Fence::acquire_standby(&config.database_url, STANDBY_POLL).await?;
        Self::open_fenced(config, transport, fence).await
    }

    fn check_member(config: &NodeConfig) -> Result<(), NodeError> {
        let me = config
            .network
            .node(&config.name)
            .ok_or_else(|| NodeError::NotAMember(config.name.clone()))?;
        if me.owning_key != config.key.public() {
            return Err(NodeError::NotAMember(config.name.clone()));
        }
        Ok(())
    }

    async fn open_fenced(
        config: NodeConfig,
        transport: Arc<dyn Transport>,
        fence: Fence,
    ) -> Result<Self, NodeError> {
        let me = config
            .network
            .node(&config.name)
            .ok_or_else(|| NodeError::NotAMember(config.name.clone()))?;
        if me.owning_key != config.key.public() {
            return Err(NodeError::NotAMember(config.name.clone()));
        }
        let apps = Apps::new(&config.apps)?;
        let store = Store::connect(&config.database_url).await?;
        for m in checkpoint::MIGRATIONS.iter().chain(backchain::MIGRATIONS) {
            sqlx::query(*m)
                .execute(store.pool())
                .await
                .map_err(db("migrating the node"))?;
        }
        let vault = Vault::open_with(store.clone(), &config.key, &config.apps).await?;
        let notary = (config.role == NodeRole::Notary).then(|| {
            let cfg = NotaryConfig {
                max_transaction_size: config.network.max_transaction_size,
                ..NotaryConfig::default()
            };
            let validating = config
                .network
                .notary_validating
                .then(|| apps.registry.clone());
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
            hub: ServiceHub {
                name: config.name.clone(),
                key: config.key,
                role: config.role,
                network: config.network,
                vault,
                store,
            },
            apps,
            notary,
            transport,
            outbox_wake: Notify::new(),
            fresh: std::sync::Mutex::new(Vec::new()),
            events,
            flow_timeout: config.flow_timeout,
            failpoint: config.failpoint,
            failpoint_hits: std::sync::atomic::AtomicU32::new(0),
            crashed: std::sync::atomic::AtomicBool::new(false),
            fence: std::sync::Mutex::new(Some(fence)),
        });
        let span = info_span!("ledger.outbox", chain = %inner.hub.name);
        let outbox = tokio::spawn(outbox::outbox_loop(Arc::downgrade(&inner)).instrument(span));
        let span = info_span!("ledger.flows", chain = %inner.hub.name);
        let expiry = tokio::spawn(expire_loop(Arc::downgrade(&inner)).instrument(span));
        let span = info_span!("ledger.fence", chain = %inner.hub.name);
        let watch = tokio::spawn(fence_loop(Arc::downgrade(&inner)).instrument(span));
        let in_flight = inner.flows_with_status("running", i64::MAX).await?.len();
        if in_flight > 0 {
            info!(
                flows = in_flight,
                "resumed flows in flight from checkpoints"
            );
        }
        Ok(Self {
            inner,
            tasks: Arc::new([outbox, expiry, watch]),
        })
    }

    /// The node's legal name.
    pub fn name(&self) -> &crate::identity::PartyName {
        &self.inner.hub.name
    }

    /// What the node offers its apps (identity, network, vault, database).
    pub fn hub(&self) -> &ServiceHub {
        &self.inner.hub
    }

    /// This node as an inbound receiver (for transports).
    pub fn receiver(&self) -> Weak<dyn Receiver> {
        let arc: Arc<dyn Receiver> = self.inner.clone();
        Arc::downgrade(&arc)
    }

    /// The network parameters.
    pub fn network(&self) -> &NetworkParameters {
        &self.inner.hub.network
    }

    /// Resolves a node name given in full (`O=PartyB, L=Osaka, C=JP`) or by its organisation
    /// (`PartyB`).
    pub fn resolve_node(&self, name: &str) -> Option<crate::identity::PartyName> {
        self.inner.hub.network.resolve(name)
    }

    /// The vault.
    pub fn vault(&self) -> &Vault {
        &self.inner.hub.vault
    }

    /// The names of the apps this node runs.
    pub fn apps(&self) -> Vec<String> {
        self.inner.apps.by_name.keys().cloned().collect()
    }

    /// The instance of app `name` this node runs (for services beside the flows, e.g. an app's
    /// own queries; see [`crate::App::as_any`] to reach its concrete type).
    pub fn app(&self, name: &str) -> Option<Arc<dyn crate::App>> {
        self.inner.apps.by_name.get(name).cloned()
    }

    /// The flows this node's apps offer, by name.
    pub fn flow_names(&self) -> Vec<String> {
        self.inner.apps.flow_names()
    }

    /// Creates an account.
    pub async fn create_account(&self, label: &str) -> Result<Account, NodeError> {
        Ok(self.inner.hub.vault.create_account(label).await?)
    }

    /// Starts a flow by name; follow it with [`Node::flow_status`] or [`Node::wait_flow`]. A flow
    /// whose arguments are wrong, or that cannot proceed, ends Failed with the reason.
    pub async fn start_flow(&self, start: impl Into<FlowStart>) -> Result<Uuid, NodeError> {
        self.start_flow_with_id(Uuid::new_v4(), start).await
    }

    /// [`Node::start_flow`] under an id the caller chose: starting the same id again (a
    /// client retrying after a lost connection) starts nothing new. Should the node stop while
    /// starting it, the caller still knows the id to follow on its standby.
    pub async fn start_flow_with_id(
        &self,
        flow: Uuid,
        start: impl Into<FlowStart>,
    ) -> Result<Uuid, NodeError> {
        let FlowStart { name, args } = start.into();
        let inner = &self.inner;
        inner.check_running()?;
        let Some((_, logic)) = inner.apps.flow(&name).cloned() else {
            return Err(NodeError::UnknownFlowName {
                name,
                available: inner.apps.flow_names().join(", "),
            });
        };
        if self.inner.load_flow(flow).await?.is_some() {
            return Ok(flow);
        }
        let timeout = i64::try_from(inner.flow_timeout.as_millis()).unwrap_or(i64::MAX);
        let at = At::New {
            deadline_ms: now_ms().saturating_add(timeout),
        };
        let ctx = inner.context(flow);
        let next = logic.start(&ctx, args).await;
        inner
            .run(flow, &name, logic.as_ref(), at, &ctx, next)
            .await?;
        Ok(flow)
    }

    /// Kills a running flow: it ends Failed with `reason` and its soft locks are released.
    /// Returns the flow's status afterwards (a flow that already ended keeps its outcome).
    pub async fn kill_flow(&self, flow: Uuid, reason: &str) -> Result<FlowStatus, NodeError> {
        let cp = self
            .inner
            .load_flow(flow)
            .await?
            .ok_or(NodeError::UnknownFlow(flow))?;
        if cp.state.status().is_running() {
            self.inner
                .fail_flow(
                    flow,
                    &cp.name,
                    At::Version(cp.version),
                    format!("killed: {reason}"),
                )
                .await?;
        }
        self.flow_status(flow).await
    }

    /// Archives the vault ([`Vault::archive_consumed`]) and forgets the checkpoints of flows that
    /// finished before `before_ms` (their status is no longer reported). Returns what the vault
    /// archived and how many finished flows were removed.
    pub async fn archive(&self, before_ms: i64) -> Result<(crate::Archived, u64), NodeError> {
        let archived = self.inner.hub.vault.archive_consumed(before_ms).await?;
        let mut t = self.inner.hub.store.begin_write().await?;
        let flows = sqlx::query(
            "DELETE FROM flow_checkpoints WHERE status NOT IN ('running', 'finalising') AND updated_ms < $1",
        )
        .bind(before_ms)
        .execute(&mut *t)
        .await
        .map_err(db("removing finished flows"))?
        .rows_affected();
        t.commit().await.map_err(db("removing finished flows"))?;
        Ok((archived, flows))
    }

    /// The transactions this node co-signed as a Validator, oldest first.
    pub async fn validations(&self) -> Result<Vec<Validation>, NodeError> {
        let rows = sqlx::query(
            "SELECT tx_id, requester, validated_ms FROM validations ORDER BY validated_ms, tx_id",
        )
        .fetch_all(self.inner.hub.store.pool())
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
            .state
            .status())
    }

    /// Waits until the flow is no longer running, at most `limit`.
    pub async fn wait_flow(&self, flow: Uuid, limit: Duration) -> Result<FlowStatus, NodeError> {
        let mut events = self.inner.events.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let status = self.flow_status(flow).await?;
        if !status.is_running() {
            return Ok(status);
        }
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(NodeError::Timeout(flow)),
                Ok(Ok((id, status))) if id == flow => {
                    if !status.is_running() {
                        return Ok(status);
                    }
                }
                Ok(Ok(_)) => {}
                // Missed events: fall back to the stored state.
                Ok(Err(_)) => {
                    let status = self.flow_status(flow).await?;
                    if !status.is_running() {
                        return Ok(status);
                    }
                }
            }
        }
    }

    /// What this node answers `from`'s request to co-sign `stx`, sent with the ancestors in
    /// `backchain`: its signature, or why it refuses (the check a co-sign request runs;
    /// nothing is sent, and only the ancestors that verified are cached).
    pub async fn cosign_check(
        &self,
        from: &crate::identity::PartyName,
        stx: &crate::tx::SignedTransaction,
        backchain: Vec<crate::tx::SignedTransaction>,
    ) -> Result<Result<crate::tx::TransactionSignature, String>, NodeError> {
        Ok(self.inner.cosign(from, stx, backchain).await?)
    }

    /// Forgets the ids of inbound messages handled before `before_ms` (done every minute for
    /// those older than [`INBOX_RETENTION`]); returns how many were forgotten.
    pub async fn prune_inbox(&self, before_ms: i64) -> Result<u64, NodeError> {
        Ok(self.inner.prune_inbox(before_ms).await?)
    }

    /// Whether the node stopped (shut down, or crashed at a failpoint).
    pub fn is_stopped(&self) -> bool {
        self.inner.is_crashed()
    }

    /// Stops the node's background work (its database stays as it is) and releases its fence,
    /// so that another node (a standby) may open the database.
    pub fn shutdown(&self) {
        self.inner
            .crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks.iter() {
            t.abort();
        }
        self.inner.release_fence();
    }
}

impl Inner {
    fn is_crashed(&self) -> bool {
        self.crashed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Passes `point`: when the failpoint stops the node here, the node stops (as a kill
    /// would) and `true` is returned; the caller then returns without doing anything more.
    pub(super) fn crash_at(&self, point: params::CrashPoint) -> bool {
        let Some(Failpoint::At { point: p, hit }) = self.failpoint else {
            return false;
        };
        if p != point {
            return false;
        }
        let n = self
            .failpoint_hits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n != hit {
            return false;
        }
        self.crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.release_fence();
        warn!(point = point.name(), hit, "failpoint reached");
        true
    }

    /// Lets go of the database's fence (the node has stopped).
    pub(super) fn release_fence(&self) {
        let fence = match self.fence.lock() {
            Ok(mut f) => f.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(fence);
    }
}

/// Fails running flows whose deadline passed, until the node goes away or stops.
async fn expire_loop(inner: Weak<Inner>) {
    let mut prune_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(EXPIRE_EVERY).await;
        let Some(node) = inner.upgrade() else { return };
        if node.is_crashed() {
            return;
        }
        if let Err(e) = node.expire_flows().await {
            warn!(error = %e, "checking flow deadlines failed");
        }
        if tokio::time::Instant::now() >= prune_at {
            prune_at = tokio::time::Instant::now() + PRUNE_INBOX_EVERY;
            let retention = i64::try_from(INBOX_RETENTION.as_millis()).unwrap_or(i64::MAX);
            if let Err(e) = node.prune_inbox(now_ms().saturating_sub(retention)).await {
                warn!(error = %e, "pruning the inbox failed");
            }
        }
    }
}

/// Checks that the node still holds its fence; a node that lost it (its PostgreSQL fence
/// session died, so a standby may own the database now) stops.
async fn fence_loop(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(FENCE_CHECK_EVERY).await;
        let Some(node) = inner.upgrade() else { return };
        if node.is_crashed() {
            return;
        }
        let taken = match node.fence.lock() {
            Ok(mut f) => f.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(mut fence) = taken else { return };
        let checked = fence.check().await;
        let mut slot = match node.fence.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = checked {
            drop(fence);
            node.crashed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(error = %e, "lost the database fence; the node stops");
            return;
        }
        // A shutdown while the fence was out for the check has already let go: drop it too.
        if node.is_crashed() {
            drop(fence);
            return;
        }
        *slot = Some(fence);
    }
}
