//! The Solidity IBC handler as the relayer sees it: its events decoded from logs, its store
//! read at the DESIGN §5 commitment slots, and the datagrams it accepts (client updates,
//! handshake steps, packets, acknowledgements, timeouts), submitted through the [`Submitter`].
//!
//! Proofs come from a [`Prover`] of the *other* chain: what its client on this handler accepts
//! (LCP's signed messages in production).

use std::future::Future;
use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::{SolCall, SolEvent};
use kh_contracts::{
    IBCChannelHandshake as H, IBCChannelPacket as P, IBCClient, ibc_commitment_slot,
};
use serde_json::json;

use super::follow::ChainLog;
use super::rpc::RpcError;
use super::submit::{Receipt, SubmitError, Submitter};

/// A height on a chain (revision 0 on our chains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IbcHeight {
    /// Revision number.
    pub revision_number: u64,
    /// Height within the revision.
    pub revision_height: u64,
}

impl IbcHeight {
    fn sol(self) -> P::Height {
        P::Height {
            revisionNumber: self.revision_number,
            revisionHeight: self.revision_height,
        }
    }
}

/// A packet, as the handler's events carry it.
pub type Packet = P::Packet;

/// Why a relay step failed.
#[derive(Debug, thiserror::Error)]
pub enum IbcError {
    /// Submission failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A read failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The prover could not prove.
    #[error("prover: {0}")]
    Prover(String),
    /// An expected event was not in the receipt.
    #[error("no {0} event in the transaction")]
    MissingEvent(&'static str),
}

/// What proves this chain's state to the other chain's client of it.
pub trait Prover: Send + Sync {
    /// A client message bringing the counterparty's client of this chain to this chain's
    /// current (proof-ready) height, and that height.
    fn update(&self) -> impl Future<Output = Result<(Bytes, IbcHeight), IbcError>> + Send;
    /// The proof that this chain's store holds `value` at `path` (None: nothing) at `height`.
    fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> impl Future<Output = Result<Bytes, IbcError>> + Send;
}

/// A handler event the relayer acts on.
#[derive(Debug, Clone)]
pub enum HandlerEvent {
    /// A packet was sent.
    SendPacket(Packet),
    /// A packet was received and its acknowledgement written.
    WriteAcknowledgement(Packet, Bytes),
    /// A packet was acknowledged (its life ended).
    AcknowledgePacket {
        /// Source port.
        port: String,
        /// Source channel.
        channel: String,
        /// Sequence.
        sequence: u64,
    },
    /// A packet timed out.
    TimeoutPacket {
        /// Source port.
        port: String,
        /// Source channel.
        channel: String,
        /// Sequence.
        sequence: u64,
    },
}

/// Decodes the handler events the relay acts on; other logs give `None`.
pub fn decode_event(log: &ChainLog) -> Option<HandlerEvent> {
    let topic = *log.topics.first()?;
    let topics = log.topics.iter().copied();
    if topic == P::SendPacket::SIGNATURE_HASH {
        let e = P::SendPacket::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::SendPacket(e.packet))
    } else if topic == P::WriteAcknowledgement::SIGNATURE_HASH {
        let e = P::WriteAcknowledgement::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::WriteAcknowledgement(
            e.packet,
            e.acknowledgement,
        ))
    } else if topic == P::AcknowledgePacket::SIGNATURE_HASH {
        let e = P::AcknowledgePacket::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::AcknowledgePacket {
            port: e.sourcePort,
            channel: e.sourceChannel,
            sequence: e.sequence,
        })
    } else if topic == P::TimeoutPacket::SIGNATURE_HASH {
        let e = P::TimeoutPacket::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::TimeoutPacket {
            port: e.sourcePort,
            channel: e.sourceChannel,
            sequence: e.sequence,
        })
    } else {
        None
    }
}

/// ICS-24 path of a packet's commitment, receipt or acknowledgement (`kind`).
pub fn packet_path(kind: &str, port: &str, channel: &str, sequence: u64) -> String {
    format!("{kind}/ports/{port}/channels/{channel}/sequences/{sequence}")
}

/// ICS-04 packet commitment: sha256(timeout_timestamp ‖ rev_number ‖ rev_height ‖ sha256(data)).
pub fn packet_commitment(p: &Packet) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut pre = Vec::with_capacity(56);
    pre.extend(p.timeoutTimestamp.to_be_bytes());
    pre.extend(p.timeoutHeight.revisionNumber.to_be_bytes());
    pre.extend(p.timeoutHeight.revisionHeight.to_be_bytes());
    pre.extend(Sha256::digest(&p.data));
    Sha256::digest(&pre).into()
}

/// ICS-04 acknowledgement commitment: sha256(ack).
pub fn ack_commitment(ack: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(ack).into()
}

/// One end of a path on an EVM chain: the handler and the identifiers on it.
#[derive(Debug, Clone)]
pub struct EvmEnd {
    /// Sends the datagrams.
    pub submitter: Arc<Submitter>,
    /// The handler (proxy) address.
    pub handler: Address,
    /// This chain's client of the counterparty.
    pub client_id: String,
}

impl EvmEnd {
    /// The value stored at the commitment slot of `path` (zero: nothing) at the latest block.
    pub async fn stored(&self, path: &str) -> Result<B256, IbcError> {
        let slot = ibc_commitment_slot(path);
        Ok(self
            .submitter
            .rpc()
            .request(
                "eth_getStorageAt",
                vec![json!(self.handler), json!(slot), json!("latest")],
            )
            .await?)
    }

    /// Whether the handler holds exactly `commitment` at `path`.
    pub async fn holds(&self, path: &str, commitment: &[u8]) -> Result<bool, IbcError> {
        Ok(self.stored(path).await? == keccak256(commitment))
    }

    async fn send<T: SolCall>(&self, call: T) -> Result<Receipt, IbcError> {
        Ok(self
            .submitter
            .submit(self.handler, Bytes::from(call.abi_encode()))
            .await?)
    }

    /// Updates this chain's client of the counterparty with `message`.
    pub async fn update_client(&self, message: Bytes) -> Result<Receipt, IbcError> {
        self.send(IBCClient::updateClientCall {
            clientId: self.client_id.clone(),
            clientMessage: message,
        })
        .await
    }

    /// Brings this chain's client of the counterparty up to the prover's height.
    pub async fn sync_client<Q: Prover>(&self, counterparty: &Q) -> Result<IbcHeight, IbcError> {
        let (message, height) = counterparty.update().await?;
        self.update_client(message).await?;
        Ok(height)
    }

    /// Creates this chain's client of the counterparty; sets and returns its id.
    pub async fn create_client(
        &mut self,
        client_type: &str,
        client_state: Bytes,
        consensus_state: Bytes,
    ) -> Result<String, IbcError> {
        let r = self
            .send(IBCClient::createClientCall {
                msg_: IBCClient::MsgCreateClient {
                    clientType: client_type.into(),
                    clientState: client_state,
                    consensusState: consensus_state,
                },
            })
            .await?;
        let e: IBCClient::CreateClient = event(&r, "CreateClient")?;
        self.client_id = e.clientId.clone();
        Ok(e.clientId)
    }

    /// Delivers `packet` (sent on the counterparty) with the counterparty's proof; returns the
    /// acknowledgement written, if the app acknowledged synchronously.
    pub async fn recv_packet<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
    ) -> Result<Option<Bytes>, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = packet_path(
            "commitments",
            &packet.sourcePort,
            &packet.sourceChannel,
            packet.sequence,
        );
        let proof = counterparty
            .prove(&path, Some(&packet_commitment(packet)), height)
            .await?;
        let r = self
            .send(P::recvPacketCall {
                m: P::MsgRecvPacket {
                    packet: packet.clone(),
                    proof,
                    proofHeight: height.sol(),
                },
            })
            .await?;
        Ok(event::<P::WriteAcknowledgement>(&r, "WriteAcknowledgement")
            .ok()
            .map(|e| e.acknowledgement))
    }

    /// Acknowledges `packet` (sent here) with the counterparty's proof of `ack`.
    pub async fn acknowledge<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
        ack: &[u8],
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = packet_path(
            "acks",
            &packet.destinationPort,
            &packet.destinationChannel,
            packet.sequence,
        );
        let proof = counterparty
            .prove(&path, Some(&ack_commitment(ack)), height)
            .await?;
        self.send(P::acknowledgePacketCall {
            m: P::MsgAcknowledgement {
                packet: packet.clone(),
                acknowledgement: Bytes::copy_from_slice(ack),
                proof,
                proofHeight: height.sol(),
            },
        })
        .await
    }

    /// Times `packet` (sent here, unordered channel) out with the counterparty's proof that it
    /// holds no receipt.
    pub async fn timeout<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = packet_path(
            "receipts",
            &packet.destinationPort,
            &packet.destinationChannel,
            packet.sequence,
        );
        let proof = counterparty.prove(&path, None, height).await?;
        self.send(P::timeoutPacketCall {
            m: P::MsgTimeout {
                packet: packet.clone(),
                proof,
                proofHeight: height.sol(),
                nextSequenceRecv: 0,
            },
        })
        .await
    }

    /// Times `packet` (sent here) out because its destination channel is closed: the
    /// counterparty proves `closed_end` (its channel end, CLOSED) and that it holds no receipt.
    pub async fn timeout_on_close<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
        closed_end: &[u8],
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let receipt_path = packet_path(
            "receipts",
            &packet.destinationPort,
            &packet.destinationChannel,
            packet.sequence,
        );
        let proof_unreceived = counterparty.prove(&receipt_path, None, height).await?;
        let channel_path = format!(
            "channelEnds/ports/{}/channels/{}",
            packet.destinationPort, packet.destinationChannel
        );
        let proof_close = counterparty
            .prove(&channel_path, Some(closed_end), height)
            .await?;
        self.send(P::timeoutOnCloseCall {
            m: P::MsgTimeoutOnClose {
                packet: packet.clone(),
                proofUnreceived: proof_unreceived,
                proofClose: proof_close,
                proofHeight: height.sol(),
                nextSequenceRecv: 0,
            },
        })
        .await
    }

    /// Closes this end of `port`/`channel` after the counterparty closed its end, proven as
    /// `closed_end` at `counterparty_port`/`counterparty_channel`.
    pub async fn close_confirm<Q: Prover>(
        &self,
        counterparty: &Q,
        port: &str,
        channel: &str,
        counterparty_port: &str,
        counterparty_channel: &str,
        closed_end: &[u8],
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = format!("channelEnds/ports/{counterparty_port}/channels/{counterparty_channel}");
        let proof = counterparty.prove(&path, Some(closed_end), height).await?;
        self.send(H::channelCloseConfirmCall {
            m: H::MsgChannelProof {
                portId: port.into(),
                channelId: channel.into(),
                proof,
                proofHeight: H::Height {
                    revisionNumber: height.revision_number,
                    revisionHeight: height.revision_height,
                },
            },
        })
        .await
    }

    /// Sends a raw handshake call (built with the handler's ABI) and returns the receipt.
    pub async fn handshake_call<T: SolCall>(&self, call: T) -> Result<Receipt, IbcError> {
        self.send(call).await
    }
}

/// The first log of `receipt` that decodes as `E`.
pub fn event<E: SolEvent>(receipt: &Receipt, name: &'static str) -> Result<E, IbcError> {
    receipt
        .logs
        .iter()
        .filter(|l| l.topics.first() == Some(&E::SIGNATURE_HASH))
        .find_map(|l| E::decode_raw_log(l.topics.iter().copied(), &l.data).ok())
        .ok_or(IbcError::MissingEvent(name))
}

/// Re-exported handshake ABIs for building the calls.
pub mod abi {
    pub use kh_contracts::{
        IBCChannelHandshake as Channel, IBCChannelPacket as Packet, IBCClient as Client,
        IBCConnection as Connection,
    };
}
