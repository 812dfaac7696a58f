//! The IBC host as a ledger app (`ibc-host`): flows creating the host (`ibc.host.genesis`) and
//! applying IBC messages as the next host transaction (`ibc.host.submit`), the operators'
//! co-signing rule (re-execute the messages and sign only byte-identical store updates), and
//! the node's copy of the store.
//!
//! Every node that records a host transaction keeps its store updates in the app's table
//! `ibc_host_updates` (written with the transaction, in the same database transaction), and
//! rebuilds its in-memory store from that table when it first needs it — so a standby on the
//! same database has the same store. A node serves proofs ([`IbcHostApp::proof`]) for the
//! heights it holds.

use std::sync::{Arc, Mutex};

use kh_ibc_host_chain::{
    HostCommand, HostContract, HostState, HostStateProof, HostStore, PreparedUpdate, Update,
    host_contract_id,
};
use kh_ledger::{
    App, BoxFuture, Contract, FlowError, FlowLogic, LedgerTransaction, ServiceHub,
    SignedTransaction, StateAndRef, StateQuery, StateStatus, StoreError, WriteTx,
};
use sqlx::Row;

use crate::ctx::{HostEnv, SharedStore, StoreAt};
use crate::exec::{
    Consumed, Executed, HostMessage, MessagesCommand, MessagesContract, PortBinding,
    default_bindings, execute, host_events, messages_contract_id,
};
use crate::flows::{GenesisFlow, SubmitFlow, failed};
use crate::ports::{PortApp, packet_events};
use crate::proof::LedgerProof;

/// The app's name in node configurations.
pub const APP_NAME: &str = "ibc-host";
/// The chain id a host gets unless configured otherwise.
pub const DEFAULT_CHAIN_ID: &str = "kakehashi-ledger";

/// How long a co-signing operator waits for its store to reach the consumed host height.
pub const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS ibc_host_updates (
    height BIGINT PRIMARY KEY,
    tx_id TEXT NOT NULL,
    updates TEXT NOT NULL)"];

fn corrupt(reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "ibc_host_updates",
        reason: reason.to_string(),
    }
}

/// What the host's flows and the apps bound to its ports share: the node's store, the chain
/// id, the port bindings.
#[derive(Debug)]
pub struct HostShared {
    pub(crate) store: SharedStore,
    pub(crate) chain_id: String,
    pub(crate) lcp_attestation_root: Option<Vec<u8>>,
    pub(crate) bindings: Vec<PortBinding>,
    port_apps: Mutex<Vec<Arc<dyn PortApp>>>,
}

fn build_store(rows: Vec<sqlx::any::AnyRow>) -> Result<HostStore, StoreError> {
    let mut store = HostStore::new();
    for row in rows {
        let height: i64 = row.try_get(0).map_err(corrupt)?;
        let text: String = row.try_get(1).map_err(corrupt)?;
        let bytes = hex::decode(text).map_err(corrupt)?;
        let updates: Vec<Update> = bcs::from_bytes(&bytes).map_err(corrupt)?;
        let height = u64::try_from(height).map_err(corrupt)?;
        let prepared = store.prepare(height, updates).map_err(corrupt)?;
        store.apply(&prepared).map_err(corrupt)?;
    }
    Ok(store)
}

const LOAD: &str = "SELECT height, updates FROM ibc_host_updates ORDER BY height";

impl HostShared {
    /// Binds `app` to its port's packet events (the port must be bound to an app here).
    pub fn add_port_app(&self, app: Arc<dyn PortApp>) {
        if let Ok(mut apps) = self.port_apps.lock() {
            apps.push(app);
        }
    }

    fn port_apps(&self) -> Vec<Arc<dyn PortApp>> {
        self.port_apps.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn is_loaded(&self) -> bool {
        self.store.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    /// The height the in-memory store is at (None: not loaded, or empty).
    fn store_height(&self) -> Option<u64> {
        self.store
            .lock()
            .ok()
            .and_then(|s| s.as_ref().and_then(HostStore::latest))
    }

    fn set(&self, store: HostStore) {
        if let Ok(mut slot) = self.store.lock()
            && slot.is_none()
        {
            *slot = Some(store);
        }
    }

    /// Loads the store from the app's table if it is not in memory yet.
    pub(crate) async fn loaded(&self, hub: &ServiceHub) -> Result<(), StoreError> {
        if self.is_loaded() {
            return Ok(());
        }
        let rows = sqlx::query(LOAD)
            .fetch_all(hub.store().pool())
            .await
            .map_err(corrupt)?;
        self.set(build_store(rows)?);
        Ok(())
    }

    /// The store must be at `height` (what the host state consumed says).
    pub(crate) fn check_at(&self, height: u64) -> Result<(), String> {
        let guard = self.store.lock().map_err(|_| "the IBC store is poisoned")?;
        let store = guard.as_ref().ok_or("the IBC store is not loaded")?;
        if store.latest().unwrap_or(0) != height {
            return Err(format!(
                "this node's IBC store is at height {:?}, the host at {height}",
                store.latest()
            ));
        }
        Ok(())
    }

    pub(crate) fn prepare(
        &self,
        height: u64,
        updates: Vec<Update>,
    ) -> Result<PreparedUpdate, String> {
        let guard = self.store.lock().map_err(|_| "the IBC store is poisoned")?;
        let store = guard.as_ref().ok_or("the IBC store is not loaded")?;
        store.prepare(height, updates).map_err(|e| e.to_string())
    }
}

/// A proof to check with one of the host's clients ([`IbcHostApp::check_proof`]).
#[derive(Debug, Clone)]
pub struct ProofCheck {
    /// The client.
    pub client_id: String,
    /// The proof height (revision number, height): the client's consensus state there.
    pub height: (u64, u64),
    /// The counterparty's commitment prefix.
    pub prefix: Vec<u8>,
    /// The ICS-24 path.
    pub path: String,
    /// The value the counterparty's store holds there (`None`: nothing).
    pub value: Option<Vec<u8>>,
    /// The proof.
    pub proof: Vec<u8>,
}

/// The IBC host app (one instance per node: it holds that node's store).
#[derive(Debug)]
pub struct IbcHostApp {
    shared: Arc<HostShared>,
}

impl Default for IbcHostApp {
    fn default() -> Self {
        Self::new(DEFAULT_CHAIN_ID)
    }
}

impl IbcHostApp {
    /// A host of chain `chain_id` with the default port bindings (`ping` → the ping app).
    pub fn new(chain_id: &str) -> Self {
        Self::build(chain_id, None)
    }

    /// A host of chain `chain_id` that runs LCP clients whose enclave keys' attestation
    /// reports chain to `root_der` (every operator of the host must be configured alike: they
    /// re-execute each other's transactions).
    pub fn with_lcp_attestation_root(chain_id: &str, root_der: Vec<u8>) -> Self {
        Self::build(chain_id, Some(root_der))
    }

    fn build(chain_id: &str, lcp_attestation_root: Option<Vec<u8>>) -> Self {
        Self {
            shared: Arc::new(HostShared {
                store: Arc::new(Mutex::new(None)),
                chain_id: chain_id.into(),
                lcp_attestation_root,
                bindings: default_bindings(),
                port_apps: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A new instance with the default chain id, ready for [`kh_ledger::NodeConfig::apps`].
    pub fn arc() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// What the apps bound to this host's ports share with it.
    pub fn shared(&self) -> Arc<HostShared> {
        self.shared.clone()
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.shared.chain_id
    }

    /// The latest host height this node's store holds (after loading it).
    pub async fn height(&self, hub: &ServiceHub) -> Result<u64, FlowError> {
        self.shared.loaded(hub).await?;
        let guard = self
            .shared
            .store
            .lock()
            .map_err(|_| failed("the IBC store is poisoned"))?;
        Ok(guard.as_ref().and_then(HostStore::latest).unwrap_or(0))
    }

    /// Runs `messages` on this node's store as the next host transaction would, without
    /// proposing it (a relayer's dry run): the store writes and events they would produce.
    pub async fn simulate(
        &self,
        hub: &ServiceHub,
        messages: Vec<HostMessage>,
    ) -> Result<Executed, FlowError> {
        let (reference, prev, env, base) = self.next_view(hub).await?;
        let consumed = Consumed {
            state_ref: reference,
            state: &prev,
        };
        execute(base, env, consumed, &self.shared.bindings, &messages)
            .map_err(|e| failed(e.to_string()))
    }

    /// Runs `read` on ibc-rs's contexts over this node's store as the next host transaction
    /// would see it (latest height, host time now), without proposing anything: how a relayer
    /// or an operator asks a client whether it accepts a proof before submitting it.
    pub async fn query<R>(
        &self,
        hub: &ServiceHub,
        read: impl FnOnce(&crate::ctx::IbcCtx) -> R,
    ) -> Result<R, FlowError> {
        let (_, _, env, base) = self.next_view(hub).await?;
        Ok(read(&crate::ctx::IbcCtx::new(base, env)))
    }

    /// The current host state (reference and state) and what the next host transaction would
    /// see: its environment (height + 1, time now) and the store at the current height.
    async fn next_view(
        &self,
        hub: &ServiceHub,
    ) -> Result<(kh_ledger::StateRef, HostState, HostEnv, StoreAt), FlowError> {
        let current = host_states(hub, StateStatus::Unconsumed).await?;
        let [current] = current.as_slice() else {
            return Err(failed("this node holds no single current host state"));
        };
        let prev: HostState = current
            .state
            .decode()
            .map_err(|e| failed(format!("host state: {e}")))?;
        self.shared.loaded(hub).await?;
        self.shared.check_at(prev.height).map_err(failed)?;
        let env = HostEnv {
            chain_id: self.shared.chain_id.clone(),
            notary: hub.notary().owning_key,
            operators: prev.operators.clone(),
            height: prev.height + 1,
            timestamp_ms: u64::try_from(kh_ledger::util::now_ms())
                .unwrap_or(0)
                .max(prev.timestamp_ms),
            lcp_attestation_root: self.shared.lcp_attestation_root.clone(),
        };
        let base = StoreAt {
            store: self.shared.store.clone(),
            height: prev.height,
        };
        Ok((current.reference, prev, env, base))
    }

    /// Whether this host's client accepts a proof ([`ProofCheck`]) — ibc-rs's check exactly as
    /// a handshake or packet message would run it in the next host transaction.
    pub async fn check_proof(&self, hub: &ServiceHub, q: ProofCheck) -> Result<(), FlowError> {
        let ProofCheck {
            client_id,
            height,
            prefix,
            path,
            value,
            proof,
        } = q;
        use ibc_core::client::context::ClientValidationContext;
        use ibc_core::client::context::client_state::ClientStateCommon;
        use ibc_core::client::context::consensus_state::ConsensusState;
        use ibc_core::commitment_types::commitment::{CommitmentPrefix, CommitmentProofBytes};
        use ibc_core::host::types::path::{ClientConsensusStatePath, Path};

        let client: ibc_core::host::types::identifiers::ClientId = client_id
            .parse()
            .map_err(|e| failed(format!("client id {client_id:?}: {e}")))?;
        let path: Path = path
            .parse()
            .map_err(|e| failed(format!("path {path:?}: {e}")))?;
        let proof = CommitmentProofBytes::try_from(proof).map_err(|e| failed(e.to_string()))?;
        let prefix = CommitmentPrefix::from_bytes(&prefix);
        self.query(hub, |ctx| {
            let cs = ctx.client_state(&client).map_err(|e| e.to_string())?;
            cs.validate_proof_height(
                ibc_core::client::types::Height::new(height.0, height.1)
                    .map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            let cons = ctx
                .consensus_state(&ClientConsensusStatePath::new(
                    client.clone(),
                    height.0,
                    height.1,
                ))
                .map_err(|e| e.to_string())?;
            match value {
                Some(v) => cs.verify_membership(&prefix, &proof, cons.root(), path, v),
                None => cs.verify_non_membership(&prefix, &proof, cons.root(), path),
            }
            .map_err(|e| e.to_string())
        })
        .await?
        .map_err(failed)
    }

    /// The proof of `key`'s value (or absence) at host `height`, from this node's store and
    /// vault.
    pub async fn proof(
        &self,
        hub: &ServiceHub,
        key: &[u8],
        height: u64,
    ) -> Result<(Option<Vec<u8>>, LedgerProof), FlowError> {
        self.shared.loaded(hub).await?;
        let (value, commitment) = {
            let guard = self
                .shared
                .store
                .lock()
                .map_err(|_| failed("the IBC store is poisoned"))?;
            let store = guard
                .as_ref()
                .ok_or_else(|| failed("the IBC store is not loaded"))?;
            store
                .prove(key, height)
                .map_err(|e| failed(e.to_string()))?
        };
        let tx = self.host_tx_at(hub, height).await?;
        let proof = LedgerProof::new(&tx, &commitment).map_err(|e| failed(e.to_string()))?;
        Ok((value, proof))
    }

    /// The proof of the host state at `height` (what a counterparty's client is created from
    /// and updated with).
    pub async fn host_state_proof(
        &self,
        hub: &ServiceHub,
        height: u64,
    ) -> Result<HostStateProof, FlowError> {
        let tx = self.host_tx_at(hub, height).await?;
        HostStateProof::of(&tx).map_err(|e| failed(e.to_string()))
    }

    async fn host_tx_at(
        &self,
        hub: &ServiceHub,
        height: u64,
    ) -> Result<SignedTransaction, FlowError> {
        host_tx(hub, height).await?.ok_or_else(|| {
            failed(format!(
                "this node holds no host transaction of height {height}"
            ))
        })
    }

    /// Loads the store for a co-signing check (a synchronous hook): an operator restarted on
    /// its database has not loaded it yet. On a multi-threaded runtime the load runs in place;
    /// otherwise it is started and this check refuses (the proposer retries).
    fn ensure_loaded(&self, hub: &ServiceHub) -> Result<(), String> {
        if self.shared.is_loaded() {
            return Ok(());
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| "the IBC store is not loaded".to_string())?;
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| handle.block_on(self.shared.loaded(hub)))
                .map_err(|e| e.to_string());
        }
        let (shared, hub) = (self.shared.clone(), hub.clone());
        handle.spawn(async move {
            if let Err(e) = shared.loaded(&hub).await {
                tracing::warn!(error = %e, "loading the IBC store");
            }
        });
        Err("the IBC store is loading; retry".into())
    }

    /// The store must be at `height` before a co-signing check. A store one or more heights
    /// behind is waited for (up to [`CATCH_UP_WAIT`]): the proposer of the next host
    /// transaction may ask before this node has recorded the previous one it just finalised.
    fn caught_up(&self, hub: &ServiceHub, height: u64) -> Result<(), String> {
        let deadline = std::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            let Err(e) = self.shared.check_at(height) else {
                return Ok(());
            };
            let behind = self.shared.store_height().unwrap_or(0) < height;
            let handle = tokio::runtime::Handle::try_current().map_err(|_| e.clone())?;
            if !behind
                || std::time::Instant::now() > deadline
                || handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread
            {
                return Err(e);
            }
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    // A store dropped for reloading (a height applied out of order) loads
                    // again from the table.
                    self.shared.loaded(hub).await
                })
            })
            .map_err(|e| e.to_string())?;
        }
    }

    /// Re-executes a host transaction's messages on this operator's store and compares.
    fn reexecute(&self, hub: &ServiceHub, tx: &LedgerTransaction) -> Result<(), String> {
        let id = host_contract_id();
        let command = tx
            .commands_of(&id)
            .next()
            .ok_or("a host transaction without a host command")?;
        let HostCommand::Apply { updates, .. } =
            bcs::from_bytes::<HostCommand>(&command.data).map_err(|e| e.to_string())?
        else {
            return Ok(()); // the genesis applies nothing
        };
        let messages: MessagesCommand = tx
            .commands_of(&messages_contract_id())
            .next()
            .ok_or("a host update without IBC messages is refused")
            .and_then(|c| bcs::from_bytes(&c.data).map_err(|_| "the messages do not decode"))?;
        let input = tx
            .inputs
            .iter()
            .find(|s| s.state.contract == id)
            .ok_or("a host update consumes a host state")?;
        let prev: HostState = input.state.decode().map_err(|e| e.to_string())?;
        let next: HostState = tx
            .outputs
            .iter()
            .find(|o| o.contract == id)
            .ok_or("no host output")?
            .decode()
            .map_err(|e| e.to_string())?;
        self.ensure_loaded(hub)?;
        self.caught_up(hub, prev.height)?;
        let env = HostEnv {
            chain_id: self.shared.chain_id.clone(),
            notary: hub.notary().owning_key,
            operators: prev.operators.clone(),
            height: next.height,
            timestamp_ms: next.timestamp_ms,
            lcp_attestation_root: self.shared.lcp_attestation_root.clone(),
        };
        let base = StoreAt {
            store: self.shared.store.clone(),
            height: prev.height,
        };
        let consumed = Consumed {
            state_ref: input.reference,
            state: &prev,
        };
        let executed = execute(
            base,
            env,
            consumed,
            &self.shared.bindings,
            &messages.messages,
        )
        .map_err(|e| format!("re-executing the IBC messages: {e}"))?;
        let events = host_events(&executed.events).map_err(|e| e.to_string())?;
        let mine = self.shared.prepare(next.height, executed.updates)?;
        if mine.updates != updates || mine.root != next.store_root {
            return Err(
                "the store updates are not those the IBC messages produce on this operator".into(),
            );
        }
        if events != messages.events {
            return Err(
                "the recorded IBC events are not those the messages emit on this operator".into(),
            );
        }
        Ok(())
    }
}

/// The host transaction that produced host height `height` (from the vault: live or consumed).
async fn host_tx(hub: &ServiceHub, height: u64) -> Result<Option<SignedTransaction>, StoreError> {
    let row = sqlx::query("SELECT tx_id FROM ibc_host_updates WHERE height = $1")
        .bind(i64::try_from(height).unwrap_or(i64::MAX))
        .fetch_optional(hub.store().pool())
        .await
        .map_err(corrupt)?;
    let id = match row {
        Some(r) => r.try_get::<String, _>(0).ok(),
        None if height == 0 => None,
        None => return Ok(None),
    };
    if let Some(id) = id.and_then(|t| t.parse().ok()) {
        return hub.vault().transaction(&id).await;
    }
    // Height 0: the genesis, the host state that was never an update.
    for status in [
        StateStatus::Unconsumed,
        StateStatus::Consumed,
        StateStatus::Archived,
    ] {
        for s in host_states(hub, status).await? {
            if s.state.decode::<HostState>().is_ok_and(|h| h.height == 0) {
                return hub.vault().transaction(&s.reference.tx_id).await;
            }
        }
    }
    Ok(None)
}

pub(crate) async fn host_states(
    hub: &ServiceHub,
    status: StateStatus,
) -> Result<Vec<StateAndRef>, StoreError> {
    hub.vault()
        .query(&StateQuery {
            contract: Some(host_contract_id()),
            status,
            ..Default::default()
        })
        .await
}

impl App for IbcHostApp {
    fn name(&self) -> &str {
        APP_NAME
    }

    fn contracts(&self) -> Vec<Arc<dyn Contract>> {
        vec![Arc::new(HostContract), Arc::new(MessagesContract)]
    }

    fn flows(&self) -> Vec<Arc<dyn FlowLogic>> {
        vec![
            Arc::new(GenesisFlow),
            Arc::new(SubmitFlow {
                shared: self.shared.clone(),
            }),
        ]
    }

    fn migrations(&self) -> Vec<&'static str> {
        MIGRATIONS.to_vec()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    /// An operator co-signs a host transaction (already checked by the host contract) when it
    /// is one of the operators, its own store is at the consumed height, and running the
    /// transaction's IBC messages on that store yields exactly the transaction's store updates.
    fn cosign(&self, hub: &ServiceHub, tx: &LedgerTransaction) -> Result<(), String> {
        let id = host_contract_id();
        let me = hub.identity_key().public();
        let out = tx
            .outputs
            .iter()
            .find(|o| o.contract == id)
            .ok_or("not a host transaction")?;
        let next: HostState = out.decode().map_err(|e| e.to_string())?;
        if !next.operators.contains(&me) {
            return Err("this node is not a host operator".into());
        }
        if next.height > 0 {
            self.reexecute(hub, tx)?;
        }
        Ok(())
    }

    /// Keeps the store updates of every recorded host transaction, in the same database
    /// transaction; the in-memory store follows once it commits.
    fn on_record<'a>(
        &'a self,
        _hub: &'a ServiceHub,
        t: &'a mut WriteTx,
        stx: &'a SignedTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let id = host_contract_id();
            let Some(out) = stx.tx.outputs.iter().find(|o| o.contract == id) else {
                return Ok(());
            };
            if !self.shared.is_loaded() {
                // Load what this database holds before this transaction's row joins it.
                let rows = sqlx::query(LOAD)
                    .fetch_all(&mut **t)
                    .await
                    .map_err(corrupt)?;
                self.shared.set(build_store(rows)?);
            }
            let next: HostState = out.decode().map_err(corrupt)?;
            let Some(HostCommand::Apply { updates, .. }) = stx
                .tx
                .commands
                .iter()
                .filter(|c| c.contract == id)
                .find_map(|c| bcs::from_bytes::<HostCommand>(&c.data).ok())
            else {
                return Ok(()); // the genesis has no updates
            };
            let encoded = bcs::to_bytes(&updates).map_err(corrupt)?;
            sqlx::query(
                "INSERT INTO ibc_host_updates (height, tx_id, updates) VALUES ($1, $2, $3) ON CONFLICT (height) DO NOTHING",
            )
            .bind(i64::try_from(next.height).map_err(corrupt)?)
            .bind(stx.id().to_string())
            .bind(hex::encode(encoded))
            .execute(&mut **t)
            .await
            .map_err(corrupt)?;
            let messages: Option<MessagesCommand> = stx
                .tx
                .commands
                .iter()
                .find(|c| c.contract == messages_contract_id())
                .and_then(|c| bcs::from_bytes(&c.data).ok());
            if let Some(m) = messages {
                let apps = self.shared.port_apps();
                for (port, event) in packet_events(&m.messages) {
                    for app in apps.iter().filter(|a| a.port() == port) {
                        app.record(t, next.height, &event).await?;
                    }
                }
            }
            let cache = self.shared.store.clone();
            t.after_commit(move || {
                let Ok(mut slot) = cache.lock() else { return };
                let Some(store) = slot.as_mut() else { return };
                if store.latest().unwrap_or(0) + 1 != next.height {
                    // Not the next height here: reload from the table on next use.
                    *slot = None;
                    return;
                }
                match store.prepare(next.height, updates) {
                    Ok(p) if p.root == next.store_root => {
                        if store.apply(&p).is_err() {
                            *slot = None;
                        }
                    }
                    _ => *slot = None,
                }
            });
            Ok(())
        })
    }
}
