//! What the relay needs of a chain, whatever the chain: its IBC store read, its client of the
//! counterparty, the datagrams it accepts, the events it emits, and a [`Prover`] of its state
//! towards the counterparty's client.
//!
//! [`Chain`] is implemented by the EVM handler ([`crate::evm::ibc::EvmEnd`]) and the ledger's
//! IBC host ([`crate::ledger_ibc::LedgerEnd`]); [`Prover`] by LCP over either chain
//! ([`crate::lcp`]). Packets travel in one chain-neutral form ([`Packet`], the handler ABI's
//! struct, ICS-04's fields).

use std::future::Future;

use alloy_primitives::Bytes;
use kh_contracts::IBCChannelPacket as P;
pub use kh_contracts::{packet_commitment, packet_path};

use crate::evm::rpc::RpcError;
use crate::evm::submit::SubmitError;
use crate::handshake::HandshakeStep;
use crate::ledger::LedgerError;

/// A height on a chain (revision 0 on our chains).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IbcHeight {
    /// Revision number.
    pub revision_number: u64,
    /// Height within the revision.
    pub revision_height: u64,
}

impl IbcHeight {
    /// Height `h` of revision 0.
    pub fn at(h: u64) -> Self {
        IbcHeight {
            revision_number: 0,
            revision_height: h,
        }
    }
}

/// A packet (ICS-04's fields; the timeout timestamp in Unix nanoseconds).
pub type Packet = P::Packet;

/// Why a relay step failed.
#[derive(Debug, thiserror::Error)]
pub enum IbcError {
    /// An EVM submission failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// An EVM read failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A ledger call failed (or the ledger refused the messages).
    #[error(transparent)]
    Ledger(Box<LedgerError>),
    /// The prover could not prove.
    #[error("prover: {0}")]
    Prover(String),
    /// An expected event was not in the transaction.
    #[error("no {0} event in the transaction")]
    MissingEvent(&'static str),
    /// A chain answered something that does not decode.
    #[error("{0}")]
    Decode(String),
    /// The chain refused a submitted batch because of one of its datagrams: the one at `index`
    /// of the datagrams given to [`Chain::submit`] (nothing of the batch was applied).
    #[error("datagram {index} of the batch refused: {reason}")]
    Refused {
        /// Its position in the submitted datagrams.
        index: usize,
        /// The chain's reason.
        reason: String,
    },
}

impl From<LedgerError> for IbcError {
    fn from(e: LedgerError) -> Self {
        IbcError::Ledger(Box::new(e))
    }
}

/// What proves this chain's state to the other chain's client of it.
pub trait Prover: Send + Sync {
    /// A client message bringing the counterparty's client of this chain, whose latest height
    /// is `trusted`, to this chain's current (proof-ready) height, and that height; `None` when
    /// the client is at that height already (a ledger whose host has not moved, an EVM chain
    /// with no block since).
    fn update(
        &self,
        trusted: IbcHeight,
    ) -> impl Future<Output = Result<(Option<Bytes>, IbcHeight), IbcError>> + Send;
    /// The proof that this chain's store holds `value` at `path` (None: nothing) at `height`.
    fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> impl Future<Output = Result<Bytes, IbcError>> + Send;
}

/// An event with its position in its chain's event stream: the EVM block it was emitted in, or
/// the ledger node's cursor of its host transaction. Positions never decrease along a stream,
/// and a stream started at a position delivers every event at or after it.
pub type Positioned = (u64, HandlerEvent);

/// An IBC event the relay acts on.
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

/// A message for a chain's IBC handler, with the counterparty's proofs.
#[derive(Debug, Clone)]
pub enum Datagram {
    /// Update the chain's client of the counterparty (the client message: a protobuf `Any`).
    UpdateClient(Bytes),
    /// Receive a packet sent on the counterparty.
    RecvPacket {
        /// The packet.
        packet: Packet,
        /// Proof of its commitment on the counterparty.
        proof: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// Acknowledge a packet sent here.
    Acknowledge {
        /// The packet.
        packet: Packet,
        /// The acknowledgement the counterparty wrote.
        ack: Bytes,
        /// Proof of its commitment on the counterparty.
        proof: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// Time a packet sent here out (unordered channel: proof of no receipt).
    Timeout {
        /// The packet.
        packet: Packet,
        /// Proof that the counterparty holds no receipt.
        proof: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
}

/// A chain's IBC side: its store, its client of the counterparty, the datagrams it takes.
pub trait Chain: Send + Sync {
    /// The chain's latest height and timestamp (Unix ns): what a packet's timeout is judged
    /// against when this chain is the packet's destination.
    fn head(&self) -> impl Future<Output = Result<(u64, u64), IbcError>> + Send;
    /// Whether the IBC store holds exactly the ICS-04 `commitment` at `path`.
    fn holds(
        &self,
        path: &str,
        commitment: &[u8],
    ) -> impl Future<Output = Result<bool, IbcError>> + Send;
    /// Whether the IBC store holds anything at `path` (a packet receipt).
    fn has(&self, path: &str) -> impl Future<Output = Result<bool, IbcError>> + Send;
    /// Makes the chain's provable state reach `height` and `timestamp_ns` (0: no bound), so
    /// that a packet that timed out here can be proven so: a ledger host moves only when a
    /// transaction is submitted; an EVM chain moves by itself (nothing to do).
    fn advance_past(
        &self,
        height: u64,
        timestamp_ns: u64,
    ) -> impl Future<Output = Result<(), IbcError>> + Send {
        let _ = (height, timestamp_ns);
        async { Ok(()) }
    }
    /// This chain's client of the counterparty.
    fn client_id(&self) -> &str;
    /// Runs one handshake step, after `update` (a client message for this chain's client of
    /// the counterparty) when given; the identifier the step created (INIT and TRY steps).
    fn handshake(
        &self,
        update: Option<Bytes>,
        step: HandshakeStep,
    ) -> impl Future<Output = Result<Option<String>, IbcError>> + Send;
    /// The latest height of this chain's client of the counterparty.
    fn client_latest(&self) -> impl Future<Output = Result<IbcHeight, IbcError>> + Send;
    /// Submits `datagrams`, in order, in as few transactions as the chain allows; all of them
    /// are applied or the call fails.
    fn submit(&self, datagrams: Vec<Datagram>)
    -> impl Future<Output = Result<(), IbcError>> + Send;
}

/// ICS-04 acknowledgement commitment: sha256(ack).
pub fn ack_commitment(ack: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(ack).into()
}
