//! A shared record: a text two nodes keep together, every version signed by both. The second
//! app of the ledger platform, written only against `kh-ledger`'s public app seam — it proves
//! that an app needs no line in the node core.
//!
//! Owns: the record contract (create: no input, one record, both parties sign; update: one
//! record in, the next version of the same record out, both sign), the flows `record.create`
//! and `record.update`, the co-signing rule (a party co-signs records it is a party to), and two
//! tables of its own: `record_latest` (each record's latest version, written in the database
//! transaction that records it, on both parties' nodes) and `record_started` (which flow started
//! which record, written with the initiator's checkpoint).

use std::sync::Arc;

use kh_ledger::{
    App, AppWrite, BoxFuture, Command, Contract, ContractId, FlowContext, FlowError, FlowLogic,
    FlowStart, LedgerTransaction, Next, Party, PartyName, PublicKey, Reply, ServiceHub,
    SignedTransaction, StateQuery, StateStatus, Store, StoreError, TransactionState,
    WireTransaction, WriteTx,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

/// The app's name in node configurations.
pub const APP_NAME: &str = "record";

/// The contract id.
pub const RECORD_CONTRACT: &str = "kakehashi.record.v1";

/// Longest text a record holds.
pub const MAX_TEXT: usize = 4096;

/// The contract id as a value.
pub fn record_contract() -> ContractId {
    ContractId(RECORD_CONTRACT.to_string())
}

/// One version of a shared record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRecord {
    /// Stays the same across versions.
    pub id: Uuid,
    /// 1 for the created record, + 1 per update.
    pub version: u64,
    /// The two parties (their nodes' identities); both sign every version.
    pub parties: [Party; 2],
    /// The content.
    pub text: String,
}

/// Record commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordCommand {
    /// A new record (version 1).
    Create,
    /// The next version of a record.
    Update,
}

/// The record's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordContract;

fn records<'a>(
    states: impl Iterator<Item = &'a TransactionState>,
) -> Result<Vec<SharedRecord>, String> {
    states
        .filter(|s| s.contract == record_contract())
        .map(|s| {
            let r: SharedRecord = s.decode().map_err(|e| format!("bad record: {e}"))?;
            let keys: Vec<PublicKey> = r.parties.iter().map(|p| p.owning_key).collect();
            if s.participants != keys {
                return Err("a record's participants are its two parties".to_string());
            }
            Ok(r)
        })
        .collect()
}

impl Contract for RecordContract {
    fn id(&self) -> ContractId {
        record_contract()
    }

    fn verify(&self, tx: &LedgerTransaction) -> Result<(), String> {
        let id = record_contract();
        let inputs = records(tx.inputs.iter().map(|s| &s.state))?;
        let outputs = records(tx.outputs.iter())?;
        let commands: Vec<_> = tx.commands_of(&id).collect();
        let [raw] = commands[..] else {
            return Err(format!(
                "exactly one record command required, found {}",
                commands.len()
            ));
        };
        let command: RecordCommand =
            bcs::from_bytes(&raw.data).map_err(|e| format!("bad command: {e}"))?;
        let [out] = &outputs[..] else {
            return Err("a record transaction produces exactly one record".into());
        };
        if out.text.len() > MAX_TEXT {
            return Err(format!("a record holds at most {MAX_TEXT} bytes"));
        }
        if out.parties[0].name == out.parties[1].name {
            return Err("a record is shared by two different parties".into());
        }
        for p in &out.parties {
            if !raw.signers.contains(&p.owning_key) || !tx.signers.contains(&p.owning_key) {
                return Err(format!("{} must sign", p.name));
            }
        }
        match command {
            RecordCommand::Create => {
                if !inputs.is_empty() || out.version != 1 {
                    return Err("a created record has no input and version 1".into());
                }
            }
            RecordCommand::Update => {
                let [old] = &inputs[..] else {
                    return Err("an update consumes exactly one record".into());
                };
                if old.id != out.id || old.parties != out.parties {
                    return Err("an update keeps the record's id and parties".into());
                }
                if old.version.checked_add(1) != Some(out.version) {
                    return Err("an update increments the version by one".into());
                }
            }
        }
        Ok(())
    }
}

/// The shared-record app.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordApp;

impl RecordApp {
    /// The app, ready for [`kh_ledger::NodeConfig::apps`].
    pub fn arc() -> Arc<dyn App> {
        Arc::new(Self)
    }
}

impl App for RecordApp {
    fn name(&self) -> &str {
        APP_NAME
    }

    fn contracts(&self) -> Vec<Arc<dyn Contract>> {
        vec![Arc::new(RecordContract)]
    }

    fn flows(&self) -> Vec<Arc<dyn FlowLogic>> {
        vec![Arc::new(CreateFlow), Arc::new(UpdateFlow)]
    }

    fn migrations(&self) -> Vec<&'static str> {
        vec![
            "CREATE TABLE IF NOT EXISTS record_latest (
                record_id TEXT PRIMARY KEY,
                version BIGINT NOT NULL,
                tx_id TEXT NOT NULL,
                text TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS record_started (
                record_id TEXT PRIMARY KEY,
                flow_id TEXT NOT NULL)",
        ]
    }

    /// The records' parties must be the network's members under their own keys.
    fn check(
        &self,
        network: &kh_ledger::NetworkParameters,
        tx: &LedgerTransaction,
    ) -> Result<(), String> {
        for r in records(tx.outputs.iter())? {
            for p in &r.parties {
                if network.node(&p.name).map(|n| n.owning_key) != Some(p.owning_key) {
                    return Err(format!("{} is not a member under that key", p.name));
                }
            }
        }
        Ok(())
    }

    /// A node co-signs records it is a party to.
    fn cosign(&self, hub: &ServiceHub, tx: &LedgerTransaction) -> Result<(), String> {
        let me = hub.identity_key().public();
        for r in records(tx.outputs.iter())? {
            if !r.parties.iter().any(|p| p.owning_key == me) {
                return Err("this node is not a party to the record".into());
            }
        }
        Ok(())
    }

    fn on_record<'a>(
        &'a self,
        _hub: &'a ServiceHub,
        t: &'a mut WriteTx,
        stx: &'a SignedTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Ok(outs) = records(stx.tx.outputs.iter()) else {
                return Ok(());
            };
            for r in outs {
                let version = i64::try_from(r.version).unwrap_or(i64::MAX);
                AppWrite::new(
                    "INSERT INTO record_latest (record_id, version, tx_id, text) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (record_id) DO UPDATE SET version = excluded.version, tx_id = excluded.tx_id, text = excluded.text
                     WHERE record_latest.version < excluded.version",
                )
                .text(r.id.to_string())
                .int(version)
                .text(stx.id().to_string())
                .text(r.text)
                .execute(t)
                .await?;
            }
            Ok(())
        })
    }
}

/// A record's latest version as this node's `record_latest` table has it: (version, text).
pub async fn latest(store: &Store, id: Uuid) -> Result<Option<(u64, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT version, text FROM record_latest WHERE record_id = $1")
        .bind(id.to_string())
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| {
        let v: i64 = r.try_get(0)?;
        Ok((u64::try_from(v).unwrap_or(0), r.try_get(1)?))
    })
    .transpose()
}

/// The flow that started record `id` on this node, from `record_started`.
pub async fn started_by(store: &Store, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let row = sqlx::query("SELECT flow_id FROM record_started WHERE record_id = $1")
        .bind(id.to_string())
        .fetch_optional(store.pool())
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .and_then(|s| s.parse().ok()))
}

/// `record.create` arguments.
pub fn create(counterparty: &PartyName, id: Uuid, text: &str) -> FlowStart {
    FlowStart::new(
        "record.create",
        serde_json::json!({"counterparty": counterparty.to_string(), "id": id, "text": text}),
    )
}

/// `record.update` arguments.
pub fn update(id: Uuid, text: &str) -> FlowStart {
    FlowStart::new("record.update", serde_json::json!({"id": id, "text": text}))
}

fn fail(reason: impl Into<String>) -> FlowError {
    FlowError::Failed(reason.into())
}

fn bcs_of<T: Serialize>(v: &T) -> Vec<u8> {
    // Records and commands are plain BCS-encodable structs.
    bcs::to_bytes(v).expect("BCS encodes records")
}

/// The transaction for `record`, signed by this node, to be co-signed by the other party.
fn finalise(
    hub: &ServiceHub,
    inputs: Vec<kh_ledger::StateRef>,
    record: &SharedRecord,
    command: RecordCommand,
) -> Next {
    let other = record
        .parties
        .iter()
        .find(|p| &p.name != hub.name())
        .map(|p| p.name.clone());
    let tx = WireTransaction {
        inputs,
        references: vec![],
        outputs: vec![TransactionState {
            contract: record_contract(),
            notary: hub.notary().clone(),
            participants: record.parties.iter().map(|p| p.owning_key).collect(),
            data: bcs_of(record),
        }],
        commands: vec![Command {
            contract: record_contract(),
            data: bcs_of(&command),
            signers: record.parties.iter().map(|p| p.owning_key).collect(),
        }],
        notary: Some(hub.notary().clone()),
        time_window: None,
        privacy_salt: rand::random(),
    };
    let other: Vec<PartyName> = other.into_iter().collect();
    Next::Finalise {
        stx: hub.sign_as_node(tx),
        cosigners: other.clone(),
        notify: other,
    }
}

#[derive(Debug)]
struct CreateFlow;

#[derive(Debug, Deserialize)]
struct CreateArgs {
    counterparty: String,
    #[serde(default)]
    id: Option<Uuid>,
    text: String,
}

impl FlowLogic for CreateFlow {
    fn name(&self) -> &str {
        "record.create"
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        v: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let a: CreateArgs = serde_json::from_value(v)
                .map_err(|e| fail(format!("bad arguments for record.create: {e}")))?;
            let hub = ctx.hub();
            let other = hub
                .network()
                .resolve(&a.counterparty)
                .and_then(|n| hub.network().node(&n).cloned())
                .ok_or_else(|| fail(format!("unknown node {:?}", a.counterparty)))?;
            let me = hub
                .network()
                .node(hub.name())
                .cloned()
                .ok_or_else(|| fail("this node is not in the network parameters"))?;
            if other.name == me.name {
                return Err(fail("a record is shared with another node"));
            }
            if a.text.len() > MAX_TEXT {
                return Err(fail(format!("a record holds at most {MAX_TEXT} bytes")));
            }
            let record = SharedRecord {
                id: a.id.unwrap_or_else(Uuid::new_v4),
                version: 1,
                parties: [me, other],
                text: a.text,
            };
            ctx.stage(
                AppWrite::new(
                    "INSERT INTO record_started (record_id, flow_id) VALUES ($1, $2) ON CONFLICT (record_id) DO NOTHING",
                )
                .text(record.id.to_string())
                .text(ctx.flow_id().to_string()),
            );
            Ok(finalise(hub, vec![], &record, RecordCommand::Create))
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(fail("record.create asks nobody")) })
    }
}

#[derive(Debug)]
struct UpdateFlow;

#[derive(Debug, Deserialize)]
struct UpdateArgs {
    id: Uuid,
    text: String,
}

impl FlowLogic for UpdateFlow {
    fn name(&self) -> &str {
        "record.update"
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        v: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let a: UpdateArgs = serde_json::from_value(v)
                .map_err(|e| fail(format!("bad arguments for record.update: {e}")))?;
            if a.text.len() > MAX_TEXT {
                return Err(fail(format!("a record holds at most {MAX_TEXT} bytes")));
            }
            let hub = ctx.hub();
            let mut query = StateQuery {
                contract: Some(record_contract()),
                participant: Some(hub.identity_key().public()),
                status: StateStatus::Unconsumed,
                ..StateQuery::default()
            };
            let current = loop {
                let page = hub.vault().query(&query).await?;
                if page.is_empty() {
                    return Err(fail(format!("no current version of record {}", a.id)));
                }
                let found = page.iter().find_map(|s| {
                    let r: SharedRecord = s.state.decode().ok()?;
                    (r.id == a.id).then_some((s.reference, r))
                });
                if let Some(f) = found {
                    break f;
                }
                query.offset += page.len() as u64;
            };
            let (reference, old) = current;
            if !ctx.lock_states(&[reference]).await? {
                return Err(fail(format!(
                    "record {} is being updated by another flow",
                    a.id
                )));
            }
            let record = SharedRecord {
                version: old.version + 1,
                text: a.text,
                ..old
            };
            Ok(finalise(
                hub,
                vec![reference],
                &record,
                RecordCommand::Update,
            ))
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(fail("record.update asks nobody")) })
    }
}
