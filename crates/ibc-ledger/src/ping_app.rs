//! The ping app (`ibc-ping`): a ledger app bound to the host's `ping` port.
//!
//! Its flow `ibc.ping.send` sends a ping through the host (a host transaction whose messages
//! include the send; the host refuses a send on a port the app does not own). The host's
//! [`crate::ping::PingModule`] answers received pings with `pong:<data>`. Every node recording
//! a host transaction records, in the same database transaction, the pings it received
//! (`ibc_ping_received`) and the outcome of the pings it sent (`ibc_ping_acks`: the
//! acknowledgement, or `timeout`).

use std::sync::Arc;

use kh_ledger::{
    App, BoxFuture, Contract, FlowContext, FlowError, FlowLogic, Next, Reply, ServiceHub,
    StoreError, WriteTx,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::app::{HostShared, IbcHostApp};
use crate::exec::{HostMessage, MAX_MESSAGES, SendPacket};
use crate::flows::{failed, submit};
use crate::ping::PING_PORT;
use crate::ports::{PacketEvent, PortApp};

/// The ping app's name.
pub const PING_APP: &str = "ibc-ping";
/// Flow sending a ping.
pub const PING_SEND_FLOW: &str = "ibc.ping.send";

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS ibc_ping_received (
    channel TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    data TEXT NOT NULL,
    host_height BIGINT NOT NULL,
    PRIMARY KEY (channel, sequence))",
    "CREATE TABLE IF NOT EXISTS ibc_ping_acks (
    channel TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    host_height BIGINT NOT NULL,
    PRIMARY KEY (channel, sequence))",
];

fn corrupt(reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "ibc_ping",
        reason: reason.to_string(),
    }
}

/// The ping app, bound to a host.
#[derive(Debug)]
pub struct PingApp {
    host: Arc<HostShared>,
}

/// What the ping app records for each packet.
#[derive(Debug)]
struct PingRecorder;

impl PortApp for PingRecorder {
    fn port(&self) -> &str {
        PING_PORT
    }

    fn record<'a>(
        &'a self,
        t: &'a mut WriteTx,
        height: u64,
        event: &'a PacketEvent,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let h = i64::try_from(height).map_err(corrupt)?;
            let (sql, channel, sequence, text) = match event {
                PacketEvent::Received {
                    channel,
                    sequence,
                    data,
                } => (
                    "INSERT INTO ibc_ping_received (channel, sequence, data, host_height) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    channel,
                    sequence,
                    String::from_utf8_lossy(data).into_owned(),
                ),
                PacketEvent::Acknowledged {
                    channel,
                    sequence,
                    ack,
                } => (
                    "INSERT INTO ibc_ping_acks (channel, sequence, outcome, host_height) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    channel,
                    sequence,
                    String::from_utf8_lossy(ack).into_owned(),
                ),
                PacketEvent::TimedOut { channel, sequence } => (
                    "INSERT INTO ibc_ping_acks (channel, sequence, outcome, host_height) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    channel,
                    sequence,
                    "timeout".to_string(),
                ),
            };
            sqlx::query(sql)
                .bind(channel.clone())
                .bind(i64::try_from(*sequence).map_err(corrupt)?)
                .bind(text)
                .bind(h)
                .execute(&mut **t)
                .await
                .map_err(corrupt)?;
            Ok(())
        })
    }
}

impl PingApp {
    /// The ping app bound to `host`'s `ping` port (its packets are recorded by this app).
    pub fn new(host: &IbcHostApp) -> Arc<Self> {
        let shared = host.shared();
        shared.add_port_app(Arc::new(PingRecorder));
        Arc::new(Self { host: shared })
    }

    /// The pings this node recorded as received: (channel, sequence, data), in order.
    pub async fn received(hub: &ServiceHub) -> Result<Vec<(String, u64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, sequence, data FROM ibc_ping_received ORDER BY channel, sequence",
        )
        .fetch_all(hub.store().pool())
        .await
        .map_err(corrupt)?;
        rows.iter().map(row3).collect()
    }

    /// The outcomes of the pings this node's host sent: (channel, sequence, ack or
    /// `timeout`), in order.
    pub async fn outcomes(hub: &ServiceHub) -> Result<Vec<(String, u64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT channel, sequence, outcome FROM ibc_ping_acks ORDER BY channel, sequence",
        )
        .fetch_all(hub.store().pool())
        .await
        .map_err(corrupt)?;
        rows.iter().map(row3).collect()
    }
}

fn row3(r: &sqlx::any::AnyRow) -> Result<(String, u64, String), StoreError> {
    let seq: i64 = r.try_get(1).map_err(corrupt)?;
    Ok((
        r.try_get(0).map_err(corrupt)?,
        u64::try_from(seq).map_err(corrupt)?,
        r.try_get(2).map_err(corrupt)?,
    ))
}

/// `ibc.ping.send` arguments.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PingArgs {
    /// The port (the ping app's own unless told otherwise).
    #[serde(default = "ping_port")]
    pub port: String,
    /// The channel.
    pub channel: String,
    /// The ping's text.
    pub data: String,
    /// Timeout height on the counterparty (0: none).
    #[serde(default)]
    pub timeout_height: u64,
    /// Timeout timestamp on the counterparty, Unix ms (0: none).
    #[serde(default)]
    pub timeout_timestamp_ms: u64,
    /// How many pings of this data to send in the one host transaction (default 1).
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

fn ping_port() -> String {
    PING_PORT.into()
}

#[derive(Debug)]
struct SendFlow {
    host: Arc<HostShared>,
}

impl FlowLogic for SendFlow {
    fn name(&self) -> &str {
        PING_SEND_FLOW
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        args: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let args: PingArgs =
                serde_json::from_value(args).map_err(|e| failed(format!("arguments: {e}")))?;
            if args.count == 0 || args.count > MAX_MESSAGES {
                return Err(failed(format!("1 to {MAX_MESSAGES} pings per transaction")));
            }
            let send = SendPacket {
                app: PING_APP.into(),
                port: args.port,
                channel: args.channel,
                data: args.data.into_bytes(),
                timeout_height: args.timeout_height,
                timeout_timestamp_ms: args.timeout_timestamp_ms,
            };
            let sends = vec![HostMessage::Send(send); args.count];
            submit(ctx, &self.host, sends).await
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(failed("the ping flow asks nobody")) })
    }
}

impl App for PingApp {
    fn name(&self) -> &str {
        PING_APP
    }

    fn contracts(&self) -> Vec<Arc<dyn Contract>> {
        vec![]
    }

    fn flows(&self) -> Vec<Arc<dyn FlowLogic>> {
        vec![Arc::new(SendFlow {
            host: self.host.clone(),
        })]
    }

    fn migrations(&self) -> Vec<&'static str> {
        MIGRATIONS.to_vec()
    }
}
