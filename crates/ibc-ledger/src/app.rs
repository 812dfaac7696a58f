//! The IBC host as a ledger app: flows that create the host (`ibc.host.genesis`) and apply
//! store updates as the next host transaction (`ibc.host.apply`), the operators' co-signing
//! rule, and the node's copy of the store.
//!
//! Every node that records a host transaction keeps its updates in the app's table
//! `ibc_host_updates` (written with the transaction, in the same database transaction), and
//! rebuilds its in-memory store from that table when it first needs it — so a standby on the
//! same database has the same store. A node serves proofs ([`IbcHostApp::proof`]) for the
//! heights it holds.

use std::sync::{Arc, Mutex};

use kh_ledger::{
    App, BoxFuture, Command, Contract, FlowContext, FlowError, FlowLogic, LedgerTransaction, Next,
    PartyName, PublicKey, Reply, ServiceHub, SignedTransaction, StateAndRef, StateQuery,
    StateStatus, StoreError, TimeWindow, TransactionState, WireTransaction, WriteTx,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::host::{HostCommand, HostContract, HostState, MAX_HOST_WINDOW_MS, host_contract_id};
use crate::proof::LedgerProof;
use crate::store::{HostStore, Update, empty_root};

/// The app's name in node configurations.
pub const APP_NAME: &str = "ibc-host";
/// Flow creating the host.
pub const GENESIS_FLOW: &str = "ibc.host.genesis";
/// Flow applying store updates.
pub const APPLY_FLOW: &str = "ibc.host.apply";

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS ibc_host_updates (
    height BIGINT PRIMARY KEY,
    tx_id TEXT NOT NULL,
    updates TEXT NOT NULL)"];

/// The node's copy of the store: `None` until loaded from `ibc_host_updates`.
type Cache = Arc<Mutex<Option<HostStore>>>;

/// The IBC host app (one instance per node: it holds that node's store).
#[derive(Debug, Default)]
pub struct IbcHostApp {
    store: Cache,
}

impl IbcHostApp {
    /// A new instance, ready for [`kh_ledger::NodeConfig::apps`].
    pub fn arc() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Loads the store from the app's table if it is not in memory yet.
    async fn loaded(&self, hub: &ServiceHub) -> Result<(), StoreError> {
        if self.store.lock().map(|s| s.is_some()).unwrap_or(false) {
            return Ok(());
        }
        let rows = sqlx::query("SELECT height, updates FROM ibc_host_updates ORDER BY height")
            .fetch_all(hub.store().pool())
            .await
            .map_err(|e| StoreError::Corrupt {
                table: "ibc_host_updates",
                reason: e.to_string(),
            })?;
        let mut store = HostStore::new();
        for row in rows {
            let corrupt = |reason: String| StoreError::Corrupt {
                table: "ibc_host_updates",
                reason,
            };
            let height: i64 = row.try_get(0).map_err(|e| corrupt(e.to_string()))?;
            let text: String = row.try_get(1).map_err(|e| corrupt(e.to_string()))?;
            let bytes = hex::decode(text).map_err(|e| corrupt(e.to_string()))?;
            let updates: Vec<Update> =
                bcs::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let height = u64::try_from(height).map_err(|e| corrupt(e.to_string()))?;
            let prepared = store
                .prepare(height, updates)
                .map_err(|e| corrupt(e.to_string()))?;
            store.apply(&prepared).map_err(|e| corrupt(e.to_string()))?;
        }
        if let Ok(mut slot) = self.store.lock()
            && slot.is_none()
        {
            *slot = Some(store);
        }
        Ok(())
    }

    /// The proof of `key`'s value (or absence) at host `height`, from this node's store and
    /// vault.
    pub async fn proof(
        &self,
        hub: &ServiceHub,
        key: &[u8],
        height: u64,
    ) -> Result<(Option<Vec<u8>>, LedgerProof), FlowError> {
        self.loaded(hub).await?;
        let (value, commitment) = {
            let guard = self
                .store
                .lock()
                .map_err(|_| FlowError::Failed("the IBC store is poisoned".into()))?;
            let store = guard
                .as_ref()
                .ok_or_else(|| FlowError::Failed("the IBC store is not loaded".into()))?;
            store
                .prove(key, height)
                .map_err(|e| FlowError::Failed(e.to_string()))?
        };
        let tx = host_tx(hub, height).await?.ok_or_else(|| {
            FlowError::Failed(format!(
                "this node holds no host transaction of height {height}"
            ))
        })?;
        let proof =
            LedgerProof::new(&tx, &commitment).map_err(|e| FlowError::Failed(e.to_string()))?;
        Ok((value, proof))
    }
}

/// The host transaction that produced host height `height` (from the vault: live or consumed).
async fn host_tx(hub: &ServiceHub, height: u64) -> Result<Option<SignedTransaction>, StoreError> {
    let row = sqlx::query("SELECT tx_id FROM ibc_host_updates WHERE height = $1")
        .bind(i64::try_from(height).unwrap_or(i64::MAX))
        .fetch_optional(hub.store().pool())
        .await
        .map_err(|e| StoreError::Corrupt {
            table: "ibc_host_updates",
            reason: e.to_string(),
        })?;
    let id = match row {
        Some(r) => r.try_get::<String, _>(0).ok(),
        None if height == 0 => None,
        None => return Ok(None),
    };
    if let Some(id) = id.and_then(|t| t.parse().ok()) {
        return hub.vault().transaction(&id).await;
    }
    // Height 0: the genesis, the host state that was never an Apply.
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

async fn host_states(
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

fn failed(reason: impl Into<String>) -> FlowError {
    FlowError::Failed(reason.into())
}

/// The network members holding `keys` (the host operators' nodes).
fn operator_nodes(hub: &ServiceHub, keys: &[PublicKey]) -> Result<Vec<PartyName>, FlowError> {
    keys.iter()
        .map(|k| {
            hub.network()
                .nodes
                .iter()
                .find(|p| &p.owning_key == k)
                .map(|p| p.name.clone())
                .ok_or_else(|| failed(format!("operator key {k} is no network member's")))
        })
        .collect()
}

/// A host transaction from `inputs` to `next`, signed by this node, to be co-signed by the
/// other operators and notarised.
fn host_step(
    hub: &ServiceHub,
    input: Option<&StateAndRef>,
    next: HostState,
    command: HostCommand,
) -> Result<Next, FlowError> {
    let me = hub.identity_key().public();
    if !next.operators.contains(&me) {
        return Err(failed("this node is not a host operator"));
    }
    let operators = operator_nodes(hub, &next.operators)?;
    let half = MAX_HOST_WINDOW_MS / 2;
    let now = next.timestamp_ms;
    let tx = WireTransaction {
        inputs: input.map(|s| vec![s.reference]).unwrap_or_default(),
        references: vec![],
        outputs: vec![TransactionState {
            contract: host_contract_id(),
            notary: hub.notary().clone(),
            participants: next.operators.clone(),
            data: bcs::to_bytes(&next).map_err(|e| failed(e.to_string()))?,
        }],
        commands: vec![Command {
            contract: host_contract_id(),
            data: bcs::to_bytes(&command).map_err(|e| failed(e.to_string()))?,
            signers: next.operators.clone(),
        }],
        notary: Some(hub.notary().clone()),
        time_window: Some(TimeWindow {
            from_ms: Some(now.saturating_sub(half)),
            until_ms: Some(now.saturating_add(half)),
        }),
        privacy_salt: rand_salt(),
    };
    let stx = hub.sign_as_node(tx);
    let others: Vec<PartyName> = operators.into_iter().filter(|p| p != hub.name()).collect();
    Ok(Next::Finalise {
        stx,
        cosigners: others.clone(),
        notify: others,
    })
}

fn rand_salt() -> [u8; 32] {
    let mut salt = [0u8; 32];
    let id = uuid::Uuid::new_v4();
    salt[..16].copy_from_slice(id.as_bytes());
    salt[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    salt
}

fn now_ms() -> u64 {
    u64::try_from(kh_ledger::util::now_ms()).unwrap_or(0)
}

/// `ibc.host.genesis` arguments: the operators' node names (this node among them).
#[derive(Debug, Deserialize, Serialize)]
struct GenesisArgs {
    operators: Vec<String>,
}

/// `ibc.host.apply` arguments: key/value pairs in hex (`null` deletes).
#[derive(Debug, Deserialize, Serialize)]
struct ApplyArgs {
    updates: Vec<(String, Option<String>)>,
}

#[derive(Debug)]
struct GenesisFlow;

impl FlowLogic for GenesisFlow {
    fn name(&self) -> &str {
        GENESIS_FLOW
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let hub = ctx.hub();
            let args: GenesisArgs =
                serde_json::from_value(args).map_err(|e| failed(format!("arguments: {e}")))?;
            if !host_states(hub, StateStatus::Unconsumed).await?.is_empty() {
                return Err(failed("this node already holds a host state"));
            }
            let mut operators = Vec::with_capacity(args.operators.len());
            for name in &args.operators {
                let party = hub
                    .network()
                    .resolve(name)
                    .and_then(|n| hub.network().node(&n).cloned())
                    .ok_or_else(|| failed(format!("unknown node {name:?}")))?;
                operators.push(party.owning_key);
            }
            let next = HostState {
                height: 0,
                store_root: empty_root(),
                timestamp_ms: now_ms(),
                operators,
            };
            host_step(hub, None, next, HostCommand::Genesis)
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(failed("the genesis flow asks nobody")) })
    }
}

#[derive(Debug)]
struct ApplyFlow {
    store: Cache,
}

impl FlowLogic for ApplyFlow {
    fn name(&self) -> &str {
        APPLY_FLOW
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let hub = ctx.hub();
            let args: ApplyArgs =
                serde_json::from_value(args).map_err(|e| failed(format!("arguments: {e}")))?;
            let mut updates = Vec::with_capacity(args.updates.len());
            for (k, v) in args.updates {
                let key = hex::decode(&k).map_err(|e| failed(format!("key {k:?}: {e}")))?;
                let value = match v {
                    Some(v) => {
                        Some(hex::decode(&v).map_err(|e| failed(format!("value {v:?}: {e}")))?)
                    }
                    None => None,
                };
                updates.push((key, value));
            }
            let current = host_states(hub, StateStatus::Unconsumed).await?;
            let [current] = current.as_slice() else {
                return Err(failed(format!(
                    "this node holds {} current host states (one expected)",
                    current.len()
                )));
            };
            if !ctx.lock_states(&[current.reference]).await? {
                return Err(failed("the host state is in use by another flow"));
            }
            let prev: HostState = current
                .state
                .decode()
                .map_err(|e| failed(format!("host state: {e}")))?;
            let app = IbcHostApp {
                store: self.store.clone(),
            };
            app.loaded(hub).await?;
            let prepared = {
                let guard = self
                    .store
                    .lock()
                    .map_err(|_| failed("the IBC store is poisoned"))?;
                let store = guard.as_ref().ok_or_else(|| failed("store not loaded"))?;
                if store.latest().unwrap_or(0) != prev.height {
                    return Err(failed(format!(
                        "this node's store is at height {:?}, the host at {}",
                        store.latest(),
                        prev.height
                    )));
                }
                store
                    .prepare(prev.height + 1, updates)
                    .map_err(|e| failed(e.to_string()))?
            };
            let next = HostState {
                height: prepared.height,
                store_root: prepared.root,
                timestamp_ms: now_ms().max(prev.timestamp_ms),
                operators: prev.operators.clone(),
            };
            let command = HostCommand::Apply {
                updates: prepared.updates,
                proof: prepared.proof,
            };
            host_step(hub, Some(current), next, command)
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(failed("the apply flow asks nobody")) })
    }
}

impl App for IbcHostApp {
    fn name(&self) -> &str {
        APP_NAME
    }

    fn contracts(&self) -> Vec<Arc<dyn Contract>> {
        vec![Arc::new(HostContract)]
    }

    fn flows(&self) -> Vec<Arc<dyn FlowLogic>> {
        vec![
            Arc::new(GenesisFlow),
            Arc::new(ApplyFlow {
                store: self.store.clone(),
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
    /// is one of the operators and, for an update, the host state consumed is the one its own
    /// store follows — so every operator's store stays in step.
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
            let guard = self.store.lock().map_err(|_| "the IBC store is poisoned")?;
            if let Some(store) = guard.as_ref()
                && store.latest().unwrap_or(0) + 1 != next.height
            {
                return Err(format!(
                    "this operator's store is at height {:?}; it co-signs height {} only after {}",
                    store.latest(),
                    next.height,
                    next.height - 1
                ));
            }
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
            let corrupt = |reason: String| StoreError::Corrupt {
                table: "ibc_host_updates",
                reason,
            };
            let next: HostState = out.decode().map_err(|e| corrupt(e.to_string()))?;
            let Some(HostCommand::Apply { updates, .. }) = stx
                .tx
                .commands
                .iter()
                .filter(|c| c.contract == id)
                .find_map(|c| bcs::from_bytes::<HostCommand>(&c.data).ok())
            else {
                return Ok(()); // the genesis has no updates
            };
            let encoded = bcs::to_bytes(&updates).map_err(|e| corrupt(e.to_string()))?;
            sqlx::query(
                "INSERT INTO ibc_host_updates (height, tx_id, updates) VALUES ($1, $2, $3) ON CONFLICT (height) DO NOTHING",
            )
            .bind(i64::try_from(next.height).map_err(|e| corrupt(e.to_string()))?)
            .bind(stx.id().to_string())
            .bind(hex::encode(encoded))
            .execute(&mut **t)
            .await
            .map_err(|e| corrupt(e.to_string()))?;
            let cache = self.store.clone();
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
