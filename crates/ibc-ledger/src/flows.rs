//! The host's flows: `ibc.host.genesis` creates the host; `ibc.host.submit` applies IBC
//! messages as the next host transaction (and [`submit`] is what app flows, e.g. the ping
//! app's, use to send packets on their ports).

use std::sync::Arc;

use ibc_core::primitives::proto::Any;
use kh_ibc_host_chain::{HostCommand, HostState, MAX_HOST_WINDOW_MS, empty_root, host_contract_id};
use kh_ledger::{
    BoxFuture, Command, FlowContext, FlowError, FlowLogic, Next, PartyName, PublicKey, Reply,
    ServiceHub, StateAndRef, StateStatus, TimeWindow, TransactionState, WireTransaction,
};
use serde::{Deserialize, Serialize};

use crate::app::{HostShared, host_states};
use crate::ctx::{HostEnv, StoreAt};
use crate::exec::{
    Consumed, HostMessage, MessagesCommand, execute, host_events, messages_contract_id,
};

/// Flow creating the host.
pub const GENESIS_FLOW: &str = "ibc.host.genesis";
/// Flow applying IBC messages.
pub const SUBMIT_FLOW: &str = "ibc.host.submit";

pub(crate) fn failed(reason: impl Into<String>) -> FlowError {
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

/// A host transaction from `input` to `next`, signed by this node, to be co-signed by the
/// other operators and notarised.
fn host_step(
    hub: &ServiceHub,
    input: Option<&StateAndRef>,
    next: HostState,
    command: HostCommand,
    messages: Option<MessagesCommand>,
) -> Result<Next, FlowError> {
    let me = hub.identity_key().public();
    if !next.operators.contains(&me) {
        return Err(failed("this node is not a host operator"));
    }
    let operators = operator_nodes(hub, &next.operators)?;
    let half = MAX_HOST_WINDOW_MS / 2;
    let now = next.timestamp_ms;
    let mut commands = vec![Command {
        contract: host_contract_id(),
        data: bcs::to_bytes(&command).map_err(|e| failed(e.to_string()))?,
        signers: next.operators.clone(),
    }];
    if let Some(m) = messages {
        commands.push(Command {
            contract: messages_contract_id(),
            data: bcs::to_bytes(&m).map_err(|e| failed(e.to_string()))?,
            signers: next.operators.clone(),
        });
    }
    let tx = WireTransaction {
        inputs: input.map(|s| vec![s.reference]).unwrap_or_default(),
        references: vec![],
        outputs: vec![TransactionState {
            contract: host_contract_id(),
            notary: hub.notary().clone(),
            participants: next.operators.clone(),
            data: bcs::to_bytes(&next).map_err(|e| failed(e.to_string()))?,
        }],
        commands,
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
    salt[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    salt[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    salt
}

fn now_ms() -> u64 {
    u64::try_from(kh_ledger::util::now_ms()).unwrap_or(0)
}

/// How long a submission waits for the host state another flow of the node holds.
pub const HOST_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds the next host transaction applying `messages`: runs them on this node's store at the
/// current host height, and proposes exactly their store writes with the JMT update proof.
pub async fn submit(
    ctx: &FlowContext<'_>,
    shared: &HostShared,
    messages: Vec<HostMessage>,
) -> Result<Next, FlowError> {
    let hub = ctx.hub();
    // One host transaction at a time: while another flow of this node holds the host state
    // (a relayer's submission beside an app's send), wait for the state it produces.
    let started = std::time::Instant::now();
    let current = loop {
        let mut current = host_states(hub, StateStatus::Unconsumed).await?;
        if current.len() != 1 {
            return Err(failed(format!(
                "this node holds {} current host states (one expected)",
                current.len()
            )));
        }
        let current = current.remove(0);
        if ctx.lock_states(&[current.reference]).await? {
            break current;
        }
        if started.elapsed() > HOST_LOCK_WAIT {
            return Err(failed(format!(
                "the host state stayed in use by another flow for {HOST_LOCK_WAIT:?}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let current = &current;
    let prev: HostState = current
        .state
        .decode()
        .map_err(|e| failed(format!("host state: {e}")))?;
    shared.loaded(hub).await?;
    shared.check_at(prev.height).map_err(failed)?;
    let next_height = prev.height + 1;
    let timestamp_ms = now_ms().max(prev.timestamp_ms);
    let env = HostEnv {
        chain_id: shared.chain_id.clone(),
        notary: hub.notary().owning_key,
        operators: prev.operators.clone(),
        height: next_height,
        timestamp_ms,
        lcp_attestation_root: shared.lcp_attestation_root.clone(),
    };
    let base = StoreAt {
        store: shared.store.clone(),
        height: prev.height,
    };
    let consumed = Consumed {
        state_ref: current.reference,
        state: &prev,
    };
    let executed = execute(base, env, consumed, &shared.bindings, &messages)
        .map_err(|e| failed(e.to_string()))?;
    let events = host_events(&executed.events).map_err(|e| failed(e.to_string()))?;
    let prepared = shared
        .prepare(next_height, executed.updates)
        .map_err(failed)?;
    tracing::debug!(
        height = next_height,
        messages = messages.len(),
        events = executed.events.len(),
        "host transaction built"
    );
    let next = HostState {
        height: prepared.height,
        store_root: prepared.root,
        timestamp_ms,
        operators: prev.operators.clone(),
    };
    let command = HostCommand::Apply {
        updates: prepared.updates,
        proof: prepared.proof,
    };
    host_step(
        hub,
        Some(current),
        next,
        command,
        Some(MessagesCommand { messages, events }),
    )
}

/// `ibc.host.genesis` arguments: the operators' node names (this node among them).
#[derive(Debug, Deserialize, Serialize)]
struct GenesisArgs {
    operators: Vec<String>,
}

/// One IBC message in `ibc.host.submit` arguments: an `Any` with hex bytes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AnyArg {
    /// The type URL.
    pub type_url: String,
    /// The protobuf bytes, hex.
    pub value: String,
}

impl From<&Any> for AnyArg {
    fn from(any: &Any) -> Self {
        Self {
            type_url: any.type_url.clone(),
            value: hex::encode(&any.value),
        }
    }
}

/// `ibc.host.submit` arguments.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SubmitArgs {
    /// The IBC messages, in order.
    pub messages: Vec<AnyArg>,
}

impl SubmitArgs {
    /// Arguments carrying `messages`.
    pub fn of(messages: &[Any]) -> serde_json::Value {
        let args = Self {
            messages: messages.iter().map(AnyArg::from).collect(),
        };
        serde_json::to_value(args).unwrap_or_default()
    }
}

#[derive(Debug)]
pub(crate) struct GenesisFlow;

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
            host_step(hub, None, next, HostCommand::Genesis, None)
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
pub(crate) struct SubmitFlow {
    pub(crate) shared: Arc<HostShared>,
}

impl FlowLogic for SubmitFlow {
    fn name(&self) -> &str {
        SUBMIT_FLOW
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let args: SubmitArgs =
                serde_json::from_value(args).map_err(|e| failed(format!("arguments: {e}")))?;
            let mut messages = Vec::with_capacity(args.messages.len());
            for m in args.messages {
                let value = hex::decode(&m.value)
                    .map_err(|e| failed(format!("message {}: {e}", m.type_url)))?;
                messages.push(HostMessage::Ibc {
                    type_url: m.type_url,
                    value,
                });
            }
            submit(ctx, &self.shared, messages).await
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(failed("the submit flow asks nobody")) })
    }
}
