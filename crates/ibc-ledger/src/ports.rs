//! Ledger apps bound to the host's ports: what they record of their packets.
//!
//! A port is bound to one app ([`crate::exec::PortBinding`]); the app alone sends on it. When
//! a node records a host transaction, the host hands each bound app the packet events of its
//! port — received, acknowledged, timed out — inside the same database transaction, so an
//! app's tables never disagree with the vault.

use ibc_core::channel::types::msgs::PacketMsg;
use ibc_core::handler::types::msgs::MsgEnvelope;
use ibc_core::primitives::proto::Any;
use kh_ledger::{BoxFuture, StoreError, WriteTx};

use crate::exec::HostMessage;

/// A packet event of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketEvent {
    /// A packet arrived on the port.
    Received {
        /// The receiving channel.
        channel: String,
        /// The sequence.
        sequence: u64,
        /// The data.
        data: Vec<u8>,
    },
    /// A packet sent from the port was acknowledged.
    Acknowledged {
        /// The sending channel.
        channel: String,
        /// The sequence.
        sequence: u64,
        /// The acknowledgement.
        ack: Vec<u8>,
    },
    /// A packet sent from the port timed out (or its channel closed).
    TimedOut {
        /// The sending channel.
        channel: String,
        /// The sequence.
        sequence: u64,
    },
}

/// An app bound to a port.
pub trait PortApp: Send + Sync + std::fmt::Debug {
    /// The port.
    fn port(&self) -> &str;
    /// Records `event` (of host height `height`) in the recording database transaction.
    fn record<'a>(
        &'a self,
        t: &'a mut WriteTx,
        height: u64,
        event: &'a PacketEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The packet events of `messages`, by port (messages that do not decode yield nothing: a
/// recorded transaction's messages were run by every operator).
pub fn packet_events(messages: &[HostMessage]) -> Vec<(String, PacketEvent)> {
    let mut out = Vec::new();
    for m in messages {
        let HostMessage::Ibc { type_url, value } = m else {
            continue;
        };
        let any = Any {
            type_url: type_url.clone(),
            value: value.clone(),
        };
        let Ok(MsgEnvelope::Packet(msg)) = MsgEnvelope::try_from(any) else {
            continue;
        };
        let (port, event) = match msg {
            PacketMsg::Recv(m) => (
                m.packet.port_id_on_b.to_string(),
                PacketEvent::Received {
                    channel: m.packet.chan_id_on_b.to_string(),
                    sequence: m.packet.seq_on_a.value(),
                    data: m.packet.data,
                },
            ),
            PacketMsg::Ack(m) => (
                m.packet.port_id_on_a.to_string(),
                PacketEvent::Acknowledged {
                    channel: m.packet.chan_id_on_a.to_string(),
                    sequence: m.packet.seq_on_a.value(),
                    ack: m.acknowledgement.as_bytes().to_vec(),
                },
            ),
            PacketMsg::Timeout(m) => (
                m.packet.port_id_on_a.to_string(),
                PacketEvent::TimedOut {
                    channel: m.packet.chan_id_on_a.to_string(),
                    sequence: m.packet.seq_on_a.value(),
                },
            ),
            PacketMsg::TimeoutOnClose(m) => (
                m.packet.port_id_on_a.to_string(),
                PacketEvent::TimedOut {
                    channel: m.packet.chan_id_on_a.to_string(),
                    sequence: m.packet.seq_on_a.value(),
                },
            ),
        };
        out.push((port, event));
    }
    out
}
