//! Executing IBC messages for one host transaction.
//!
//! A host transaction carries its messages in a command of the messages contract (beside the
//! host command, so ledger proofs — which reveal only the host command — stay small and do not
//! reveal them). [`execute`] runs them in order through ibc-rs (`dispatch`) on an [`IbcCtx`]
//! over the store at the consumed height; the staged writes are the transaction's store
//! updates. The flow that builds the transaction and every operator that co-signs it run the
//! same function and must get byte-identical updates.

use std::collections::BTreeMap;

use ibc_core::channel::handler::send_packet;
use ibc_core::channel::types::channel::Order;
use ibc_core::channel::types::msgs::{
    MsgAcknowledgement, MsgTimeout, MsgTimeoutOnClose, PacketMsg,
};
use ibc_core::channel::types::packet::{Packet, Receipt};
use ibc_core::channel::types::timeout::{TimeoutHeight, TimeoutTimestamp};
use ibc_core::client::types::Height;
use ibc_core::connection::handler::{conn_open_ack, conn_open_try};
use ibc_core::connection::types::msgs::ConnectionMsg;
use ibc_core::entrypoint::dispatch;
use ibc_core::handler::types::events::IbcEvent;
use ibc_core::handler::types::msgs::MsgEnvelope;
use ibc_core::host::ValidationContext;
use ibc_core::host::types::identifiers::{ChannelId, PortId};
use ibc_core::host::types::path::{
    ChannelEndPath, CommitmentPath, ReceiptPath, SeqRecvPath, SeqSendPath,
};
use ibc_core::primitives::Timestamp;
use ibc_core::primitives::proto::Any;
use ibc_core::router::module::Module;
use ibc_core::router::router::Router;
use ibc_core::router::types::module::ModuleId;
use kh_ibc_host_chain::{HostState, Update, host_contract_id};
use kh_ledger::{Contract, ContractId, LedgerTransaction, StateRef};
use serde::{Deserialize, Serialize};

use crate::ctx::{HostEnv, IbcCtx, StoreAt, host_state_key};
use crate::ping::{PING_PORT, PingModule};

/// The messages contract's id.
pub const MESSAGES_CONTRACT: &str = "kakehashi.ibc.messages.v1";
/// At most this many messages in one host transaction.
pub const MAX_MESSAGES: usize = 1_000;

/// The messages contract's id as a [`ContractId`].
pub fn messages_contract_id() -> ContractId {
    ContractId(MESSAGES_CONTRACT.into())
}

/// One message a host transaction applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostMessage {
    /// An IBC message (protobuf `Any`).
    Ibc {
        /// The type URL.
        type_url: String,
        /// The protobuf bytes.
        value: Vec<u8>,
    },
    /// A packet a ledger app sends on a port it owns.
    Send(SendPacket),
}

impl HostMessage {
    /// An IBC message from its `Any`.
    pub fn ibc(any: Any) -> Self {
        Self::Ibc {
            type_url: any.type_url,
            value: any.value,
        }
    }
}

/// A packet sent by a ledger app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendPacket {
    /// The sending app (must own the port).
    pub app: String,
    /// The source port.
    pub port: String,
    /// The source channel.
    pub channel: String,
    /// The packet data.
    pub data: Vec<u8>,
    /// Timeout height on the counterparty (0: none).
    pub timeout_height: u64,
    /// Timeout timestamp on the counterparty, Unix ms (0: none).
    pub timeout_timestamp_ms: u64,
}

/// The messages command of a host transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesCommand {
    /// The messages, in order.
    pub messages: Vec<HostMessage>,
    /// The IBC events they emit, in order. Every operator re-executes the messages and signs
    /// only when its own events are these: a relayer reading the transaction (an RPC user of an
    /// operator's node) learns the packets sent and the acknowledgements written from them.
    pub events: Vec<HostEvent>,
}

/// An IBC event in ibc-go's form (an ABCI event: its type, e.g. `send_packet`, and its
/// attributes, e.g. `packet_sequence`, `packet_data_hex`), as relayers of Cosmos chains read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEvent {
    /// The event type.
    pub kind: String,
    /// The attributes, in order: key and value.
    pub attributes: Vec<(String, String)>,
}

impl HostEvent {
    /// The value of attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The attributes ibc-go gives a packet event, with the data (and acknowledgement) in hex only:
/// ibc-rs's own conversion also writes them as text and fails on bytes that are not UTF-8.
#[allow(clippy::too_many_arguments)]
fn packet_event(
    kind: &str,
    data: &[u8],
    timeout_height: &TimeoutHeight,
    timeout_timestamp: &TimeoutTimestamp,
    sequence: u64,
    ends: [&str; 4],
    ordering: &Order,
    connection: &str,
    ack: Option<&[u8]>,
) -> HostEvent {
    let height = match timeout_height {
        TimeoutHeight::Never => "0-0".to_string(),
        TimeoutHeight::At(h) => h.to_string(),
    };
    let mut attributes = vec![
        ("packet_data_hex".to_string(), hex::encode(data)),
        ("packet_timeout_height".to_string(), height),
        (
            "packet_timeout_timestamp".to_string(),
            timeout_timestamp.nanoseconds().to_string(),
        ),
        ("packet_sequence".to_string(), sequence.to_string()),
        ("packet_src_port".to_string(), ends[0].to_string()),
        ("packet_src_channel".to_string(), ends[1].to_string()),
        ("packet_dst_port".to_string(), ends[2].to_string()),
        ("packet_dst_channel".to_string(), ends[3].to_string()),
        (
            "packet_channel_ordering".to_string(),
            ordering.as_str().to_string(),
        ),
        ("packet_connection".to_string(), connection.to_string()),
    ];
    if let Some(ack) = ack {
        attributes.push(("packet_ack_hex".to_string(), hex::encode(ack)));
    }
    HostEvent {
        kind: kind.to_string(),
        attributes,
    }
}

impl TryFrom<IbcEvent> for HostEvent {
    type Error = String;
    fn try_from(event: IbcEvent) -> Result<Self, String> {
        match &event {
            IbcEvent::SendPacket(e) => {
                return Ok(packet_event(
                    e.event_type(),
                    e.packet_data(),
                    e.timeout_height_on_b(),
                    e.timeout_timestamp_on_b(),
                    e.seq_on_a().value(),
                    [
                        e.port_id_on_a().as_str(),
                        e.chan_id_on_a().as_str(),
                        e.port_id_on_b().as_str(),
                        e.chan_id_on_b().as_str(),
                    ],
                    e.channel_ordering(),
                    e.conn_id_on_a().as_str(),
                    None,
                ));
            }
            IbcEvent::ReceivePacket(e) => {
                return Ok(packet_event(
                    e.event_type(),
                    e.packet_data(),
                    e.timeout_height_on_b(),
                    e.timeout_timestamp_on_b(),
                    e.seq_on_b().value(),
                    [
                        e.port_id_on_a().as_str(),
                        e.chan_id_on_a().as_str(),
                        e.port_id_on_b().as_str(),
                        e.chan_id_on_b().as_str(),
                    ],
                    e.channel_ordering(),
                    e.conn_id_on_a().as_str(),
                    None,
                ));
            }
            IbcEvent::WriteAcknowledgement(e) => {
                return Ok(packet_event(
                    e.event_type(),
                    e.packet_data(),
                    e.timeout_height_on_b(),
                    e.timeout_timestamp_on_b(),
                    e.seq_on_a().value(),
                    [
                        e.port_id_on_a().as_str(),
                        e.chan_id_on_a().as_str(),
                        e.port_id_on_b().as_str(),
                        e.chan_id_on_b().as_str(),
                    ],
                    &Order::None,
                    e.conn_id_on_b().as_str(),
                    Some(e.acknowledgement().as_bytes()),
                ));
            }
            _ => {}
        }
        let abci = tendermint::abci::Event::try_from(event).map_err(|e| e.to_string())?;
        let mut attributes = Vec::with_capacity(abci.attributes.len());
        for a in &abci.attributes {
            let key = a.key_str().map_err(|e| e.to_string())?;
            let value = a.value_str().map_err(|e| e.to_string())?;
            attributes.push((key.to_string(), value.to_string()));
        }
        Ok(HostEvent {
            kind: abci.kind,
            attributes,
        })
    }
}

/// The events of an execution in their recorded form.
pub fn host_events(events: &[IbcEvent]) -> Result<Vec<HostEvent>, ExecError> {
    events
        .iter()
        .cloned()
        .map(|e| HostEvent::try_from(e).map_err(ExecError::Host))
        .collect()
}

/// Why messages are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// A message does not decode.
    #[error("message {index} does not decode: {reason}")]
    Decode {
        /// Its index.
        index: usize,
        /// Why.
        reason: String,
    },
    /// ibc-rs refused a message.
    #[error("message {index} is refused: {reason}")]
    Refused {
        /// Its index.
        index: usize,
        /// ibc-rs's error.
        reason: String,
    },
    /// An app sends on a port it does not own.
    #[error("app {app:?} does not own port {port:?}")]
    PortNotOwned {
        /// The app.
        app: String,
        /// The port.
        port: String,
    },
    /// Too many messages (none is allowed: the host state still moves, with its bookkeeping).
    #[error("a host transaction applies at most {MAX_MESSAGES} messages ({0} here)")]
    Count(usize),
    /// The host state could not be recorded.
    #[error("host bookkeeping: {0}")]
    Host(String),
}

/// A port bound to a ledger app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    /// The port.
    pub port: String,
    /// The owning app's name.
    pub app: String,
}

/// The host's port bindings: `ping` is the ping app's.
pub fn default_bindings() -> Vec<PortBinding> {
    vec![PortBinding {
        port: PING_PORT.into(),
        app: crate::ping_app::PING_APP.into(),
    }]
}

/// The ibc-rs router: port → module.
#[derive(Debug)]
pub struct HostRouter {
    modules: BTreeMap<ModuleId, Box<dyn Module>>,
    ports: BTreeMap<PortId, ModuleId>,
}

impl HostRouter {
    /// A router with the modules of `bindings` (a port whose module this host does not know
    /// is left unbound).
    pub fn new(bindings: &[PortBinding]) -> Self {
        let mut router = Self {
            modules: BTreeMap::new(),
            ports: BTreeMap::new(),
        };
        for b in bindings {
            let module: Box<dyn Module> = match b.port.as_str() {
                PING_PORT => Box::new(PingModule),
                _ => continue,
            };
            let Ok(port) = b.port.parse::<PortId>() else {
                continue;
            };
            let id = ModuleId::new(b.app.clone());
            router.modules.insert(id.clone(), module);
            router.ports.insert(port, id);
        }
        router
    }
}

impl Router for HostRouter {
    fn get_route(&self, module_id: &ModuleId) -> Option<&dyn Module> {
        self.modules.get(module_id).map(|m| m.as_ref())
    }

    fn get_route_mut(&mut self, module_id: &ModuleId) -> Option<&mut dyn Module> {
        self.modules
            .get_mut(module_id)
            .map(|m| m.as_mut() as &mut dyn Module)
    }

    fn lookup_module(&self, port_id: &PortId) -> Option<ModuleId> {
        self.ports.get(port_id).cloned()
    }
}

/// What executing a transaction's messages yields.
#[derive(Debug)]
pub struct Executed {
    /// The store writes (by key; `None` deletes).
    pub updates: Vec<Update>,
    /// The IBC events emitted.
    pub events: Vec<IbcEvent>,
}

/// The host state a transaction consumes.
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'a> {
    /// Its reference.
    pub state_ref: StateRef,
    /// The state.
    pub state: &'a HostState,
}

fn send(ctx: &mut IbcCtx, index: usize, s: &SendPacket) -> Result<(), ExecError> {
    let refused = |reason: String| ExecError::Refused { index, reason };
    let port: PortId = s.port.parse().map_err(|e| refused(format!("{e}")))?;
    let channel: ChannelId = s.channel.parse().map_err(|e| refused(format!("{e}")))?;
    let end = ctx
        .channel_end(&ChannelEndPath::new(&port, &channel))
        .map_err(|e| refused(e.to_string()))?;
    let seq = ctx
        .get_next_sequence_send(&SeqSendPath::new(&port, &channel))
        .map_err(|e| refused(e.to_string()))?;
    let chan_id_on_b = end
        .counterparty()
        .channel_id()
        .cloned()
        .ok_or_else(|| refused("the channel has no counterparty channel yet".into()))?;
    let packet = Packet {
        seq_on_a: seq,
        port_id_on_a: port,
        chan_id_on_a: channel,
        port_id_on_b: end.counterparty().port_id().clone(),
        chan_id_on_b,
        data: s.data.clone(),
        timeout_height_on_b: match s.timeout_height {
            0 => TimeoutHeight::Never,
            h => TimeoutHeight::At(Height::new(0, h).map_err(|e| refused(e.to_string()))?),
        },
        timeout_timestamp_on_b: match s.timeout_timestamp_ms {
            0 => TimeoutTimestamp::Never,
            t => TimeoutTimestamp::At(Timestamp::from_nanoseconds(t.saturating_mul(1_000_000))),
        },
    };
    send_packet(ctx, packet).map_err(|e| refused(e.to_string()))
}

/// ibc-rs (as ibc-go) lets a replayed packet, or an acknowledgement or timeout of a packet
/// with no commitment, pass as a no-op; the host refuses them so that nothing is recorded for
/// them and the submitter learns why.
fn refuse_no_ops(ctx: &IbcCtx, index: usize, envelope: &MsgEnvelope) -> Result<(), ExecError> {
    let MsgEnvelope::Packet(msg) = envelope else {
        return Ok(());
    };
    let refused = |reason: String| ExecError::Refused { index, reason };
    match msg {
        PacketMsg::Recv(m) => {
            let p = &m.packet;
            let end = ctx
                .channel_end(&ChannelEndPath::new(&p.port_id_on_b, &p.chan_id_on_b))
                .map_err(|e| refused(e.to_string()))?;
            let replay = match end.ordering {
                Order::Ordered => {
                    let next = ctx
                        .get_next_sequence_recv(&SeqRecvPath::new(&p.port_id_on_b, &p.chan_id_on_b))
                        .map_err(|e| refused(e.to_string()))?;
                    p.seq_on_a < next
                }
                _ => matches!(
                    ctx.get_packet_receipt(&ReceiptPath::new(
                        &p.port_id_on_b,
                        &p.chan_id_on_b,
                        p.seq_on_a
                    )),
                    Ok(Receipt::Ok)
                ),
            };
            if replay {
                return Err(refused(format!(
                    "packet {} on {}/{} was already received",
                    p.seq_on_a, p.port_id_on_b, p.chan_id_on_b
                )));
            }
        }
        PacketMsg::Ack(MsgAcknowledgement { packet: p, .. })
        | PacketMsg::Timeout(MsgTimeout { packet: p, .. })
        | PacketMsg::TimeoutOnClose(MsgTimeoutOnClose { packet: p, .. }) => {
            let path = CommitmentPath::new(&p.port_id_on_a, &p.chan_id_on_a, p.seq_on_a);
            if ctx
                .get(path.to_string().as_bytes())
                .ok()
                .flatten()
                .is_none()
            {
                return Err(refused(format!(
                    "no packet {} is pending on {}/{} (never sent, or already acknowledged or timed out)",
                    p.seq_on_a, p.port_id_on_a, p.chan_id_on_a
                )));
            }
        }
    }
    Ok(())
}

/// Runs `messages` for the transaction consuming `consumed` and producing `env.height`, over
/// `base` (the store at the consumed height).
pub fn execute(
    base: StoreAt,
    env: HostEnv,
    consumed: Consumed<'_>,
    bindings: &[PortBinding],
    messages: &[HostMessage],
) -> Result<Executed, ExecError> {
    if messages.len() > MAX_MESSAGES {
        return Err(ExecError::Count(messages.len()));
    }
    let mut ctx = IbcCtx::new(base, env);
    // The consumed host state, as a counterparty's client of this ledger will store it.
    let own = kh_elc::LedgerConsensusState {
        store_root: consumed.state.store_root,
        timestamp_ms: consumed.state.timestamp_ms,
        state_ref: consumed.state_ref,
    };
    ctx.put(
        host_state_key(consumed.state.height),
        Some(bcs::to_bytes(&own).map_err(|e| ExecError::Host(e.to_string()))?),
    );
    let mut router = HostRouter::new(bindings);
    for (index, m) in messages.iter().enumerate() {
        match m {
            HostMessage::Ibc { type_url, value } => {
                let any = Any {
                    type_url: type_url.clone(),
                    value: value.clone(),
                };
                let envelope = MsgEnvelope::try_from(any).map_err(|e| ExecError::Decode {
                    index,
                    reason: e.to_string(),
                })?;
                refuse_no_ops(&ctx, index, &envelope)?;
                let refused = |reason: String| ExecError::Refused { index, reason };
                match envelope {
                    // TRY and ACK are validated as ibc-go validates them (crate::conn), then
                    // executed by ibc-rs.
                    MsgEnvelope::Connection(ConnectionMsg::OpenTry(msg)) => {
                        crate::conn::validate_open_try(&ctx, &msg).map_err(refused)?;
                        conn_open_try::execute(&mut ctx, msg)
                            .map_err(|e| refused(e.to_string()))?;
                    }
                    MsgEnvelope::Connection(ConnectionMsg::OpenAck(msg)) => {
                        crate::conn::validate_open_ack(&ctx, &msg).map_err(refused)?;
                        conn_open_ack::execute(&mut ctx, msg)
                            .map_err(|e| refused(e.to_string()))?;
                    }
                    envelope => dispatch(&mut ctx, &mut router, envelope)
                        .map_err(|e| refused(e.to_string()))?,
                }
            }
            HostMessage::Send(s) => {
                if !bindings.iter().any(|b| b.port == s.port && b.app == s.app) {
                    return Err(ExecError::PortNotOwned {
                        app: s.app.clone(),
                        port: s.port.clone(),
                    });
                }
                send(&mut ctx, index, s)?;
            }
        }
    }
    let (updates, events) = ctx.finish();
    Ok(Executed { updates, events })
}

/// The messages contract: a messages command rides only on a host transaction (exactly one
/// messages command, exactly one host output), signed by every host operator. Whether the
/// messages lead to the transaction's store updates is what each operator checks by running
/// them before it signs; the host contract checks the root transition.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagesContract;

impl Contract for MessagesContract {
    fn id(&self) -> ContractId {
        messages_contract_id()
    }

    fn verify(&self, tx: &LedgerTransaction) -> Result<(), String> {
        let id = messages_contract_id();
        let commands: Vec<_> = tx.commands_of(&id).collect();
        let [command] = commands.as_slice() else {
            return Err(format!(
                "a host transaction has exactly one messages command ({} here)",
                commands.len()
            ));
        };
        let decoded: MessagesCommand = bcs::from_bytes(&command.data)
            .map_err(|e| format!("the messages command does not decode: {e}"))?;
        if decoded.messages.len() > MAX_MESSAGES {
            return Err(ExecError::Count(decoded.messages.len()).to_string());
        }
        let host = host_contract_id();
        let outputs: Vec<_> = tx.outputs.iter().filter(|o| o.contract == host).collect();
        let [output] = outputs.as_slice() else {
            return Err("IBC messages ride only on a host transaction".into());
        };
        let state: HostState = output
            .decode()
            .map_err(|e| format!("a host state does not decode: {e}"))?;
        if state.operators.iter().any(|k| !command.signers.contains(k)) {
            return Err("every host operator signs the messages command".into());
        }
        Ok(())
    }
}
