//! The ledger's IBC host as one end of a path: its store read through the node's proof RPC,
//! datagrams submitted as ibc-rs messages in one `ibc.host.submit` flow (one host transaction
//! for a whole batch), and its IBC events read from the host transactions the node records.
//!
//! A host transaction carries the IBC events its messages emitted, checked by every operator
//! before it signs (`kh_ibc_ledger::MessagesCommand`); the relayer, an RPC user of an operator's
//! node, follows the node's event stream by cursor and reads each host transaction whole.

use std::time::Duration;

use alloy_primitives::Bytes;
use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::client::v1 as client;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use kh_ibc_host_chain::{HOST_CONTRACT, HostState, HostStateProof, LedgerProof};
use kh_ibc_ledger::{HostEvent, MESSAGES_CONTRACT, MessagesCommand, SUBMIT_FLOW, SubmitArgs};
use kh_ledger::SignedTransaction;
use kh_ledger_node::RpcClient;
use kh_ledger_node::proto::{GenericFlow, GetTransactionRequest, RunFlowRequest, run_flow_request};
use prost::{Message, Name};
use tokio::sync::mpsc;
use tracing::warn;

use crate::chain::{Chain, Datagram, HandlerEvent, IbcError, IbcHeight, Packet, Positioned};
use crate::handshake::{HandshakeStep, PREFIX};
use crate::ledger::{LedgerEndpoint, LedgerError, follow_events};

/// The signer field of the messages the relayer submits (the host does not use it).
pub const SIGNER: &str = "kakehashi-relayer";

fn decode(what: impl std::fmt::Display) -> IbcError {
    IbcError::Decode(what.to_string())
}

fn any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// One end of a path on the ledger: the node (as its RPC user) and this host's client of the
/// counterparty.
#[derive(Debug, Clone)]
pub struct LedgerEnd {
    /// The node that runs the IBC host.
    pub endpoint: LedgerEndpoint,
    /// The host's client of the counterparty.
    pub client_id: String,
    /// How long one submission may take.
    pub flow_timeout: Duration,
    /// One mutual-TLS connection to the node, shared by the calls (and the clones of this end);
    /// dropped when a call finds the node unreachable, so the next call connects again.
    connection: std::sync::Arc<tokio::sync::Mutex<Option<RpcClient>>>,
}

impl LedgerEnd {
    /// An end on `endpoint` with client `client_id`.
    pub fn new(endpoint: LedgerEndpoint, client_id: impl Into<String>) -> Self {
        LedgerEnd {
            endpoint,
            client_id: client_id.into(),
            flow_timeout: Duration::from_secs(60),
            connection: Default::default(),
        }
    }

    /// The shared connection to the node (made on first use, and again after a failure).
    async fn rpc(&self) -> Result<RpcClient, IbcError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self.endpoint.connect().await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops the shared connection when `status` says the node was not reached.
    async fn forget_if_unreachable(&self, status: &tonic::Status) {
        if matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ) {
            *self.connection.lock().await = None;
        }
    }

    /// The value at `path` (None: nothing) at the latest height, with the proof.
    pub async fn query(
        &self,
        path: &str,
        height: u64,
    ) -> Result<(Option<Vec<u8>>, LedgerProof), IbcError> {
        let r = self.endpoint.ibc_proof(path.as_bytes(), height).await?;
        let proof = LedgerProof::from_bytes(&r.proof).map_err(decode)?;
        Ok((r.exists.then_some(r.value), proof))
    }

    /// The latest host state (as the node's proof claims it; the counterparty's client checks
    /// it through LCP).
    pub async fn latest(&self) -> Result<HostState, IbcError> {
        let (_, proof) = self.query("nextSequenceSend", 0).await?;
        proof.host.claimed_state().map_err(decode)
    }

    /// The proof of the host state of `height`.
    pub async fn host_proof(&self, height: u64) -> Result<HostStateProof, IbcError> {
        if height == 0 {
            return Err(decode("host height 0 is the genesis; proofs start at 1"));
        }
        let (_, proof) = self.query("nextSequenceSend", height).await?;
        Ok(proof.host)
    }

    /// Submits `messages` in one host transaction; its id.
    pub async fn submit_messages(&self, messages: &[Any]) -> Result<String, IbcError> {
        self.run_flow(SUBMIT_FLOW, &SubmitArgs::of(messages)).await
    }

    /// Runs flow `name` of the node's apps with `args` to its end; the transaction it recorded.
    pub async fn run_flow(&self, name: &str, args: &serde_json::Value) -> Result<String, IbcError> {
        let mut rpc = self.rpc().await?;
        let result = match rpc
            .run_flow(RunFlowRequest {
                flow: Some(run_flow_request::Flow::Generic(GenericFlow {
                    name: name.into(),
                    args_json: args.to_string(),
                })),
                timeout_ms: u64::try_from(self.flow_timeout.as_millis()).unwrap_or(u64::MAX),
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => {
                self.forget_if_unreachable(&status).await;
                return Err(LedgerError::from(status).into());
            }
        };
        match result.status.as_str() {
            "completed" => Ok(result.tx_id),
            _ => Err(IbcError::from(LedgerError::Refused(format!(
                "{} ({})",
                result.reason, result.status
            )))),
        }
    }

    /// The IBC events of host transaction `tx_id` (none for a transaction of another kind).
    pub async fn events_of(&self, tx_id: &str) -> Result<Vec<HostEvent>, IbcError> {
        let mut rpc = self.rpc().await?;
        let r = match rpc
            .get_transaction(GetTransactionRequest {
                tx_id: tx_id.into(),
                whole: true,
                reveal: vec![],
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => {
                self.forget_if_unreachable(&status).await;
                return Err(LedgerError::from(status).into());
            }
        };
        if !r.found {
            return Err(decode(format!("transaction {tx_id} not found")));
        }
        let stx: SignedTransaction = bcs::from_bytes(&r.signed_transaction).map_err(decode)?;
        let Some(command) = stx
            .tx
            .commands
            .iter()
            .find(|c| c.contract.0 == MESSAGES_CONTRACT)
        else {
            return Ok(vec![]);
        };
        let m: MessagesCommand = bcs::from_bytes(&command.data).map_err(decode)?;
        Ok(m.events)
    }

    /// Advances the host by one (empty) transaction, so that its proven height and time pass
    /// `height` / `timestamp_ns` (0: no bound); nothing when they do already.
    pub async fn advance_past(&self, height: u64, timestamp_ns: u64) -> Result<(), IbcError> {
        let state = self.latest().await?;
        let time_ns = state.timestamp_ms.saturating_mul(1_000_000);
        if (height == 0 || state.height >= height) && (timestamp_ns == 0 || time_ns >= timestamp_ns)
        {
            return Ok(());
        }
        self.submit_messages(&[]).await.map(|_| ())
    }
}

/// A packet as ibc-proto's message.
pub fn proto_packet(p: &Packet) -> chan::Packet {
    chan::Packet {
        sequence: p.sequence,
        source_port: p.sourcePort.clone(),
        source_channel: p.sourceChannel.clone(),
        destination_port: p.destinationPort.clone(),
        destination_channel: p.destinationChannel.clone(),
        data: p.data.to_vec(),
        timeout_height: Some(client::Height {
            revision_number: p.timeoutHeight.revisionNumber,
            revision_height: p.timeoutHeight.revisionHeight,
        }),
        timeout_timestamp: p.timeoutTimestamp,
    }
}

fn proto_height(h: IbcHeight) -> Option<client::Height> {
    Some(client::Height {
        revision_number: h.revision_number,
        revision_height: h.revision_height,
    })
}

/// The ibc-rs message of a datagram, for the host's client `client_id`.
pub fn message_of(client_id: &str, d: Datagram) -> Result<Any, IbcError> {
    Ok(match d {
        Datagram::UpdateClient(message) => any(&client::MsgUpdateClient {
            client_id: client_id.into(),
            client_message: Some(Any::decode(message.as_ref()).map_err(decode)?),
            signer: SIGNER.into(),
        }),
        Datagram::RecvPacket {
            packet,
            proof,
            proof_height,
        } => any(&chan::MsgRecvPacket {
            packet: Some(proto_packet(&packet)),
            proof_commitment: proof.to_vec(),
            proof_height: proto_height(proof_height),
            signer: SIGNER.into(),
        }),
        Datagram::Acknowledge {
            packet,
            ack,
            proof,
            proof_height,
        } => any(&chan::MsgAcknowledgement {
            packet: Some(proto_packet(&packet)),
            acknowledgement: ack.to_vec(),
            proof_acked: proof.to_vec(),
            proof_height: proto_height(proof_height),
            signer: SIGNER.into(),
        }),
        Datagram::Timeout {
            packet,
            proof,
            proof_height,
        } => any(&chan::MsgTimeout {
            packet: Some(proto_packet(&packet)),
            proof_unreceived: proof.to_vec(),
            proof_height: proto_height(proof_height),
            next_sequence_recv: packet.sequence,
            signer: SIGNER.into(),
        }),
    })
}

/// The connection version both handlers offer (ibc-go's default).
fn conn_version() -> conn::Version {
    conn::Version {
        identifier: "1".into(),
        features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
    }
}

fn prefix() -> Option<MerklePrefix> {
    Some(MerklePrefix {
        key_prefix: PREFIX.to_vec(),
    })
}

/// What ibc-rs's decoding of TRY and ACK demands but the host does not use (ibc-go v9 dropped
/// the checks, see `kh_ibc_ledger::conn`): a client state, its proof, a consensus proof and
/// height. The relayer fills them with the type of client the counterparty holds and the
/// step's own proof.
fn unused_client_fields(
    proof: &Bytes,
    height: IbcHeight,
) -> (Any, Vec<u8>, Option<client::Height>) {
    (
        Any {
            type_url: kh_lcp::wire::CLIENT_STATE_URL.into(),
            value: vec![],
        },
        proof.to_vec(),
        proto_height(height),
    )
}

/// The ibc-rs message of a handshake step for this host (its client `client_id`).
pub fn handshake_message(client_id: &str, step: HandshakeStep) -> Any {
    match step {
        HandshakeStep::ConnOpenInit {
            counterparty_client,
        } => any(&conn::MsgConnectionOpenInit {
            client_id: client_id.into(),
            counterparty: Some(conn::Counterparty {
                client_id: counterparty_client,
                connection_id: String::new(),
                prefix: prefix(),
            }),
            version: Some(conn_version()),
            delay_period: 0,
            signer: SIGNER.into(),
        }),
        HandshakeStep::ConnOpenTry {
            counterparty_client,
            counterparty_connection,
            proof_init,
            proof_height,
        } => {
            let (client_state, unused_proof, consensus_height) =
                unused_client_fields(&proof_init, proof_height);
            #[allow(deprecated)]
            any(&conn::MsgConnectionOpenTry {
                client_id: client_id.into(),
                previous_connection_id: String::new(),
                client_state: Some(client_state),
                counterparty: Some(conn::Counterparty {
                    client_id: counterparty_client,
                    connection_id: counterparty_connection,
                    prefix: prefix(),
                }),
                delay_period: 0,
                counterparty_versions: vec![conn_version()],
                proof_height: proto_height(proof_height),
                proof_init: proof_init.to_vec(),
                proof_client: unused_proof.clone(),
                proof_consensus: unused_proof,
                consensus_height,
                signer: SIGNER.into(),
                host_consensus_state_proof: vec![],
            })
        }
        HandshakeStep::ConnOpenAck {
            connection,
            counterparty_connection,
            proof_try,
            proof_height,
        } => {
            let (client_state, unused_proof, consensus_height) =
                unused_client_fields(&proof_try, proof_height);
            any(&conn::MsgConnectionOpenAck {
                connection_id: connection,
                counterparty_connection_id: counterparty_connection,
                version: Some(conn_version()),
                client_state: Some(client_state),
                proof_height: proto_height(proof_height),
                proof_try: proof_try.to_vec(),
                proof_client: unused_proof.clone(),
                proof_consensus: unused_proof,
                consensus_height,
                signer: SIGNER.into(),
                host_consensus_state_proof: vec![],
            })
        }
        HandshakeStep::ConnOpenConfirm {
            connection,
            proof_ack,
            proof_height,
        } => any(&conn::MsgConnectionOpenConfirm {
            connection_id: connection,
            proof_ack: proof_ack.to_vec(),
            proof_height: proto_height(proof_height),
            signer: SIGNER.into(),
        }),
        HandshakeStep::ChanOpenInit {
            port,
            ordering,
            connection,
            counterparty_port,
            version,
        } => any(&chan::MsgChannelOpenInit {
            port_id: port,
            channel: Some(chan::Channel {
                state: chan::State::Init as i32,
                ordering: ordering as i32,
                counterparty: Some(chan::Counterparty {
                    port_id: counterparty_port,
                    channel_id: String::new(),
                }),
                connection_hops: vec![connection],
                version,
                upgrade_sequence: 0,
            }),
            signer: SIGNER.into(),
        }),
        HandshakeStep::ChanOpenTry {
            port,
            ordering,
            connection,
            counterparty_port,
            counterparty_channel,
            version,
            proof_init,
            proof_height,
        } =>
        {
            #[allow(deprecated)]
            any(&chan::MsgChannelOpenTry {
                port_id: port,
                previous_channel_id: String::new(),
                channel: Some(chan::Channel {
                    state: chan::State::Tryopen as i32,
                    ordering: ordering as i32,
                    counterparty: Some(chan::Counterparty {
                        port_id: counterparty_port,
                        channel_id: counterparty_channel,
                    }),
                    connection_hops: vec![connection],
                    version: version.clone(),
                    upgrade_sequence: 0,
                }),
                counterparty_version: version,
                proof_init: proof_init.to_vec(),
                proof_height: proto_height(proof_height),
                signer: SIGNER.into(),
            })
        }
        HandshakeStep::ChanOpenAck {
            port,
            channel,
            counterparty_channel,
            version,
            proof_try,
            proof_height,
        } => any(&chan::MsgChannelOpenAck {
            port_id: port,
            channel_id: channel,
            counterparty_channel_id: counterparty_channel,
            counterparty_version: version,
            proof_try: proof_try.to_vec(),
            proof_height: proto_height(proof_height),
            signer: SIGNER.into(),
        }),
        HandshakeStep::ChanOpenConfirm {
            port,
            channel,
            proof_ack,
            proof_height,
        } => any(&chan::MsgChannelOpenConfirm {
            port_id: port,
            channel_id: channel,
            proof_ack: proof_ack.to_vec(),
            proof_height: proto_height(proof_height),
            signer: SIGNER.into(),
        }),
    }
}

impl Chain for LedgerEnd {
    fn client_id(&self) -> &str {
        &self.client_id
    }

    async fn handshake(
        &self,
        update: Option<Bytes>,
        step: HandshakeStep,
    ) -> Result<Option<String>, IbcError> {
        let mut messages = Vec::with_capacity(2);
        if let Some(message) = update {
            messages.push(message_of(
                &self.client_id,
                Datagram::UpdateClient(message),
            )?);
        }
        let (kind, key) = match &step {
            HandshakeStep::ConnOpenInit { .. } => (Some("connection_open_init"), "connection_id"),
            HandshakeStep::ConnOpenTry { .. } => (Some("connection_open_try"), "connection_id"),
            HandshakeStep::ChanOpenInit { .. } => (Some("channel_open_init"), "channel_id"),
            HandshakeStep::ChanOpenTry { .. } => (Some("channel_open_try"), "channel_id"),
            _ => (None, ""),
        };
        messages.push(handshake_message(&self.client_id, step));
        let tx = self.submit_messages(&messages).await?;
        let Some(kind) = kind else {
            return Ok(None);
        };
        let events = self.events_of(&tx).await?;
        Ok(events
            .iter()
            .find(|e| e.kind == kind)
            .and_then(|e| e.attribute(key))
            .map(str::to_string))
    }

    async fn head(&self) -> Result<(u64, u64), IbcError> {
        // A message is judged at the next host transaction: its height, and a time no earlier
        // than now.
        let state = self.latest().await?;
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
        )
        .unwrap_or(u64::MAX);
        Ok((
            state.height + 1,
            state.timestamp_ms.max(now_ms).saturating_mul(1_000_000),
        ))
    }

    async fn holds(&self, path: &str, commitment: &[u8]) -> Result<bool, IbcError> {
        Ok(self.query(path, 0).await?.0.as_deref() == Some(commitment))
    }

    async fn has(&self, path: &str) -> Result<bool, IbcError> {
        Ok(self.query(path, 0).await?.0.is_some())
    }

    async fn client_latest(&self) -> Result<IbcHeight, IbcError> {
        let path = format!("clients/{}/clientState", self.client_id);
        let (value, _) = self.query(&path, 0).await?;
        let value = value.ok_or_else(|| decode(format!("no client {}", self.client_id)))?;
        let h = kh_ibc_ledger::client_latest_height(&value).map_err(decode)?;
        Ok(IbcHeight {
            revision_number: h.0,
            revision_height: h.1,
        })
    }

    async fn advance_past(&self, height: u64, timestamp_ns: u64) -> Result<(), IbcError> {
        LedgerEnd::advance_past(self, height, timestamp_ns).await
    }

    async fn submit(&self, datagrams: Vec<Datagram>) -> Result<(), IbcError> {
        let messages = datagrams
            .into_iter()
            .map(|d| message_of(&self.client_id, d))
            .collect::<Result<Vec<_>, _>>()?;
        self.submit_messages(&messages).await.map(|_| ())
    }
}

/// A packet from a recorded packet event's attributes.
pub fn packet_of(e: &HostEvent) -> Result<Packet, IbcError> {
    let get = |k: &str| {
        e.attribute(k)
            .ok_or_else(|| decode(format!("{} without {k}", e.kind)))
    };
    let num = |k: &str| -> Result<u64, IbcError> { get(k)?.parse().map_err(decode) };
    let (rn, rh) = get("packet_timeout_height")?
        .split_once('-')
        .ok_or_else(|| decode("timeout height"))?;
    Ok(Packet {
        sequence: num("packet_sequence")?,
        sourcePort: get("packet_src_port")?.into(),
        sourceChannel: get("packet_src_channel")?.into(),
        destinationPort: get("packet_dst_port")?.into(),
        destinationChannel: get("packet_dst_channel")?.into(),
        data: Bytes::from(hex::decode(get("packet_data_hex")?).map_err(decode)?),
        timeoutHeight: kh_contracts::IBCChannelPacket::Height {
            revisionNumber: rn.parse().map_err(decode)?,
            revisionHeight: rh.parse().map_err(decode)?,
        },
        timeoutTimestamp: num("packet_timeout_timestamp")?,
    })
}

/// The relay's event of a recorded host event (None: not one the relay acts on).
pub fn handler_event(e: &HostEvent) -> Result<Option<HandlerEvent>, IbcError> {
    Ok(match e.kind.as_str() {
        "send_packet" => Some(HandlerEvent::SendPacket(packet_of(e)?)),
        "write_acknowledgement" => {
            let ack = hex::decode(
                e.attribute("packet_ack_hex")
                    .ok_or_else(|| decode("write_acknowledgement without packet_ack_hex"))?,
            )
            .map_err(decode)?;
            Some(HandlerEvent::WriteAcknowledgement(
                packet_of(e)?,
                Bytes::from(ack),
            ))
        }
        _ => None,
    })
}

/// Follows the node's recorded transactions after `after_cursor` and delivers each host
/// transaction's cursor and IBC events, in order; a transaction the node does not answer for is
/// asked again (with backoff) rather than skipped. Ends when the receiver is dropped.
pub fn host_events(
    end: LedgerEnd,
    after_cursor: u64,
    reconcile_every: Duration,
) -> mpsc::Receiver<(u64, Vec<HostEvent>)> {
    let (tx, rx) = mpsc::channel(1024);
    let (mut recorded, _stats, follower) =
        follow_events(end.endpoint.clone(), after_cursor, reconcile_every);
    tokio::spawn(async move {
        let forward = async {
            while let Some(event) = recorded.recv().await {
                if !event.produced.iter().any(|p| p.contract == HOST_CONTRACT) {
                    continue;
                }
                let mut wait = Duration::from_millis(100);
                let events = loop {
                    match end.events_of(&event.tx_id).await {
                        Ok(events) => break events,
                        Err(e) => {
                            warn!(tx = %event.tx_id, error = %e, retry_in = ?wait, "reading a host transaction");
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                if tx.send((event.cursor, events)).await.is_err() {
                    return;
                }
            }
        };
        // The follower stops as soon as nobody listens.
        tokio::select! {
            () = forward => {}
            () = tx.closed() => {}
        }
        follower.abort();
    });
    rx
}

/// The handler events of the node's host transactions after `after_cursor` ([`host_events`]),
/// in order, each with its transaction's cursor. Ends when the receiver is dropped.
pub fn ledger_events(
    end: LedgerEnd,
    after_cursor: u64,
    reconcile_every: Duration,
) -> mpsc::Receiver<Positioned> {
    let (tx, rx) = mpsc::channel(1024);
    let mut transactions = host_events(end, after_cursor, reconcile_every);
    tokio::spawn(async move {
        while let Some((cursor, events)) = transactions.recv().await {
            for e in &events {
                match handler_event(e) {
                    Ok(Some(h)) => {
                        if tx.send((cursor, h)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        warn!(cursor, error = %err, "an IBC event that does not decode")
                    }
                }
            }
        }
    });
    rx
}
