//! ibc-rs's validation and execution contexts over the host store.
//!
//! [`IbcCtx`] reads the store at the consumed host state's height plus the writes of the
//! transaction being built (a staging overlay), and writes only to that overlay. The host
//! height it reports is the height the transaction produces (the consumed one + 1) and the host
//! timestamp is that host state's timestamp (inside the notarised time window), so packet
//! timeouts by height and by timestamp hold on the ledger.
//!
//! Store keys are the ICS-24 path strings (the commitment prefix `ibc` is not part of the
//! key); values are what ibc-go stores: protobuf `Any` client and consensus states, protobuf
//! connection and channel ends, big-endian sequences, packet and acknowledgement commitments,
//! the receipt byte 1. Host bookkeeping lives under `kakehashi/`: the host's own consensus
//! states (`kakehashi/hostStates/{h}`: what a counterparty's client of this ledger stores),
//! written by the transaction that consumes each host state, and the heights of each client's
//! consensus states (`kakehashi/clients/{id}/consensusHeights`, for the ledger client's
//! ordering checks).
//!
//! Reads of an LCP client's state attach the host's time and attestation root to it, and reads
//! of an LCP consensus state the height it is stored at (see [`crate::lcp_client`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ibc_core::channel::types::channel::ChannelEnd;
use ibc_core::channel::types::commitment::{AcknowledgementCommitment, PacketCommitment};
use ibc_core::channel::types::packet::Receipt;
use ibc_core::client::context::{ClientExecutionContext, ClientValidationContext};
use ibc_core::client::types::Height;
use ibc_core::commitment_types::commitment::CommitmentPrefix;
use ibc_core::connection::types::ConnectionEnd;
use ibc_core::handler::types::events::IbcEvent;
use ibc_core::host::types::error::HostError;
use ibc_core::host::types::identifiers::{ClientId, ConnectionId, Sequence};
use ibc_core::host::types::path::{
    AckPath, ChannelEndPath, ClientConnectionPath, ClientConsensusStatePath, ClientStatePath,
    ClientUpdateHeightPath, ClientUpdateTimePath, CommitmentPath, ConnectionPath,
    NextChannelSequencePath, NextClientSequencePath, NextConnectionSequencePath, ReceiptPath,
    SeqAckPath, SeqRecvPath, SeqSendPath,
};
use ibc_core::host::{ExecutionContext, ValidationContext};
use ibc_core::primitives::proto::{Any, Protobuf};
use ibc_core::primitives::{Signer, Timestamp};
use kh_ibc_host_chain::{HostStore, Update};
use kh_ledger::PublicKey;
use prost::Message as _;

use crate::client::{AnyClientState, AnyConsensusState, LedgerConsensusState};

/// The commitment prefix of the ledger's IBC store.
pub const COMMITMENT_PREFIX: &[u8] = b"ibc";

/// The key of the host's own consensus state at `height`.
pub fn host_state_key(height: u64) -> Vec<u8> {
    format!("kakehashi/hostStates/{height}").into_bytes()
}

/// A node's copy of the store, shared by its flows (`None` until loaded).
pub type SharedStore = Arc<Mutex<Option<HostStore>>>;

/// The store as of one height.
#[derive(Debug, Clone)]
pub struct StoreAt {
    /// The store.
    pub store: SharedStore,
    /// The height read.
    pub height: u64,
}

impl StoreAt {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let guard = self
            .store
            .lock()
            .map_err(|_| HostError::failed_to_retrieve("the IBC store is poisoned"))?;
        let store = guard
            .as_ref()
            .ok_or_else(|| HostError::failed_to_retrieve("the IBC store is not loaded"))?;
        store
            .get(key, self.height)
            .map_err(HostError::failed_to_retrieve)
    }
}

/// What the host is, for the transaction being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEnv {
    /// The ledger's IBC chain id (what a counterparty's client of it holds).
    pub chain_id: String,
    /// The notary's key.
    pub notary: PublicKey,
    /// The host operators' keys.
    pub operators: Vec<PublicKey>,
    /// The height the transaction produces.
    pub height: u64,
    /// Its host timestamp (Unix ms).
    pub timestamp_ms: u64,
    /// The attestation root (DER) LCP clients' enclave keys must chain to (`None`: this host
    /// runs no LCP client).
    pub lcp_attestation_root: Option<Vec<u8>>,
}

/// ibc-rs contexts over the store at one height plus a staging overlay.
#[derive(Debug)]
pub struct IbcCtx {
    base: StoreAt,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    env: HostEnv,
    events: Vec<IbcEvent>,
    /// The outcome of the last client update verified, by client and message bytes (ibc-rs
    /// asks the client three times about one update: verify, misbehaviour, update).
    pub(crate) update_memo: RefCell<Option<UpdateMemo>>,
}

/// A verified update outcome, kept until the update is applied.
pub(crate) type UpdateMemo = (
    ClientId,
    Vec<u8>,
    kh_elc::UpdateOutcome<kh_elc::LedgerClientState, kh_elc::LedgerConsensusState>,
);

fn u64_of(bytes: &[u8], what: &str) -> Result<u64, HostError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| HostError::invalid_state(format!("{what} is not 8 bytes")))?;
    Ok(u64::from_be_bytes(arr))
}

fn path_key(path: impl std::fmt::Display) -> Vec<u8> {
    path.to_string().into_bytes()
}

impl IbcCtx {
    /// Contexts over `base` for a transaction producing `env.height`.
    pub fn new(base: StoreAt, env: HostEnv) -> Self {
        Self {
            base,
            pending: BTreeMap::new(),
            env,
            events: Vec::new(),
            update_memo: RefCell::new(None),
        }
    }

    /// The host environment.
    pub fn env(&self) -> &HostEnv {
        &self.env
    }

    /// The value at `key` (the overlay first, then the store).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    /// Stages a write (`None` deletes).
    pub fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.pending.insert(key, value);
    }

    fn require(&self, key: &[u8]) -> Result<Vec<u8>, HostError> {
        self.get(key)?.ok_or_else(|| {
            HostError::missing_state(format!("nothing at {}", String::from_utf8_lossy(key)))
        })
    }

    fn counter(&self, key: &[u8]) -> Result<u64, HostError> {
        match self.get(key)? {
            Some(b) => u64_of(&b, "a counter"),
            None => Ok(0),
        }
    }

    fn bump(&mut self, key: &[u8]) -> Result<(), HostError> {
        let next = self
            .counter(key)?
            .checked_add(1)
            .ok_or_else(|| HostError::invalid_state("counter overflow"))?;
        self.put(key.to_vec(), Some(next.to_be_bytes().to_vec()));
        Ok(())
    }

    /// The staged writes (what the transaction applies), and the events emitted.
    pub fn finish(self) -> (Vec<Update>, Vec<IbcEvent>) {
        (self.pending.into_iter().collect(), self.events)
    }

    /// The host timestamp as ibc-rs counts it.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp::from_nanoseconds(self.env.timestamp_ms.saturating_mul(1_000_000))
    }

    /// The host height as ibc-rs counts it (revision 0).
    pub fn height(&self) -> Result<Height, HostError> {
        Height::new(0, self.env.height).map_err(HostError::invalid_state)
    }

    /// The consensus states stored for `client_id` (decoded), ascending by height.
    pub fn consensus_state_at(
        &self,
        client_id: &ClientId,
        height: u64,
    ) -> Result<Option<AnyConsensusState>, HostError> {
        let path = ClientConsensusStatePath::new(client_id.clone(), 0, height);
        match self.get(&path_key(path))? {
            Some(bytes) => {
                let any = Any::decode(bytes.as_slice()).map_err(HostError::invalid_state)?;
                Ok(Some(
                    AnyConsensusState::try_from(any).map_err(HostError::invalid_state)?,
                ))
            }
            None => Ok(None),
        }
    }

    /// The consensus state at `path`, if any, as ibc-rs reads it (see
    /// [`ClientValidationContext::consensus_state`]).
    pub fn consensus_state_at_path(
        &self,
        path: &ClientConsensusStatePath,
    ) -> Result<Option<AnyConsensusState>, HostError> {
        if self.get(&path_key(path))?.is_none() {
            return Ok(None);
        }
        self.consensus_state(path).map(Some)
    }
}

impl ClientValidationContext for IbcCtx {
    type ClientStateRef = AnyClientState;
    type ConsensusStateRef = AnyConsensusState;

    fn client_state(&self, client_id: &ClientId) -> Result<AnyClientState, HostError> {
        let bytes = self.require(&path_key(ClientStatePath::new(client_id.clone())))?;
        let any = Any::decode(bytes.as_slice()).map_err(HostError::invalid_state)?;
        let mut state = AnyClientState::try_from(any).map_err(HostError::invalid_state)?;
        // An LCP client judges keys at the host's time (ibc-rs's proof checks get no context).
        if let AnyClientState::Lcp(c) = &mut state {
            c.at_host(&self.env);
        }
        Ok(state)
    }

    fn consensus_state(
        &self,
        path: &ClientConsensusStatePath,
    ) -> Result<AnyConsensusState, HostError> {
        let bytes = self.require(&path_key(path))?;
        let any = Any::decode(bytes.as_slice()).map_err(HostError::invalid_state)?;
        let mut state = AnyConsensusState::try_from(any).map_err(HostError::invalid_state)?;
        // An LCP proof names its height: the state id is bound to the height it is stored at.
        if let AnyConsensusState::Lcp(c) = &mut state {
            let height = Height::new(path.revision_number, path.revision_height)
                .map_err(HostError::invalid_state)?;
            c.at_height(height);
        }
        Ok(state)
    }

    fn client_update_meta(
        &self,
        client_id: &ClientId,
        height: &Height,
    ) -> Result<(Timestamp, Height), HostError> {
        let (rev, h) = (height.revision_number(), height.revision_height());
        let time = self.require(&path_key(ClientUpdateTimePath::new(
            client_id.clone(),
            rev,
            h,
        )))?;
        let at = self.require(&path_key(ClientUpdateHeightPath::new(
            client_id.clone(),
            rev,
            h,
        )))?;
        let at = u64_of(&at, "an update height")?;
        Ok((
            Timestamp::from_nanoseconds(u64_of(&time, "an update time")?),
            Height::new(0, at).map_err(HostError::invalid_state)?,
        ))
    }
}

impl ClientExecutionContext for IbcCtx {
    type ClientStateMut = AnyClientState;

    fn store_client_state(
        &mut self,
        path: ClientStatePath,
        client_state: AnyClientState,
    ) -> Result<(), HostError> {
        let any: Any = client_state.into();
        self.put(path_key(path), Some(any.encode_to_vec()));
        Ok(())
    }

    fn store_consensus_state(
        &mut self,
        path: ClientConsensusStatePath,
        consensus_state: AnyConsensusState,
    ) -> Result<(), HostError> {
        let any: Any = consensus_state.into();
        self.put(path_key(path), Some(any.encode_to_vec()));
        Ok(())
    }

    fn delete_consensus_state(&mut self, path: ClientConsensusStatePath) -> Result<(), HostError> {
        self.put(path_key(path), None);
        Ok(())
    }

    fn store_update_meta(
        &mut self,
        client_id: ClientId,
        height: Height,
        host_timestamp: Timestamp,
        host_height: Height,
    ) -> Result<(), HostError> {
        let (rev, h) = (height.revision_number(), height.revision_height());
        self.put(
            path_key(ClientUpdateTimePath::new(client_id.clone(), rev, h)),
            Some(host_timestamp.nanoseconds().to_be_bytes().to_vec()),
        );
        self.put(
            path_key(ClientUpdateHeightPath::new(client_id, rev, h)),
            Some(host_height.revision_height().to_be_bytes().to_vec()),
        );
        Ok(())
    }

    fn delete_update_meta(&mut self, client_id: ClientId, height: Height) -> Result<(), HostError> {
        let (rev, h) = (height.revision_number(), height.revision_height());
        self.put(
            path_key(ClientUpdateTimePath::new(client_id.clone(), rev, h)),
            None,
        );
        self.put(
            path_key(ClientUpdateHeightPath::new(client_id, rev, h)),
            None,
        );
        Ok(())
    }
}

impl ValidationContext for IbcCtx {
    type V = Self;
    type HostClientState = AnyClientState;
    type HostConsensusState = AnyConsensusState;

    fn get_client_validation_context(&self) -> &Self {
        self
    }

    fn host_height(&self) -> Result<Height, HostError> {
        self.height()
    }

    fn host_timestamp(&self) -> Result<Timestamp, HostError> {
        Ok(self.timestamp())
    }

    /// The host state at `height` as a counterparty's client of this ledger stores it.
    fn host_consensus_state(&self, height: &Height) -> Result<AnyConsensusState, HostError> {
        let bytes = self.require(&host_state_key(height.revision_height()))?;
        let inner: kh_elc::LedgerConsensusState =
            bcs::from_bytes(&bytes).map_err(HostError::invalid_state)?;
        Ok(AnyConsensusState::Ledger(LedgerConsensusState::new(inner)))
    }

    fn client_counter(&self) -> Result<u64, HostError> {
        self.counter(&path_key(NextClientSequencePath))
    }

    fn connection_end(&self, conn_id: &ConnectionId) -> Result<ConnectionEnd, HostError> {
        let bytes = self.require(&path_key(ConnectionPath::new(conn_id)))?;
        ConnectionEnd::decode_vec(&bytes).map_err(HostError::invalid_state)
    }

    /// The client a counterparty holds of this ledger must be a ledger client of this chain id
    /// trusting this notary and exactly these operators; an LCP client of this ledger must be
    /// active and behind it. (The connection handshake does not ask: the host validates TRY and
    /// ACK as ibc-go v9 does, `crate::conn`.)
    fn validate_self_client(&self, client_state: AnyClientState) -> Result<(), HostError> {
        let cs = match client_state {
            AnyClientState::Ledger(cs) => cs,
            AnyClientState::Lcp(lcp) => {
                let latest = lcp.state.latest_height;
                if lcp.state.frozen {
                    return Err(HostError::invalid_state(
                        "the counterparty's LCP client is frozen",
                    ));
                }
                if latest.revision_number != 0 || latest.revision_height >= self.env.height {
                    return Err(HostError::invalid_state(
                        "the counterparty's LCP client is ahead of this ledger",
                    ));
                }
                return Ok(());
            }
        };
        if cs.chain_id != self.env.chain_id {
            return Err(HostError::invalid_state(format!(
                "the counterparty's client is of chain {}, not {}",
                cs.chain_id, self.env.chain_id
            )));
        }
        let mut theirs = cs.inner.trust.operators.clone();
        let mut ours = self.env.operators.clone();
        theirs.sort();
        ours.sort();
        if cs.inner.trust.notary != self.env.notary || theirs != ours {
            return Err(HostError::invalid_state(
                "the counterparty's client does not trust this ledger's notary and operators",
            ));
        }
        if cs.inner.frozen {
            return Err(HostError::invalid_state(
                "the counterparty's client is frozen",
            ));
        }
        if cs.inner.latest_height >= self.env.height {
            return Err(HostError::invalid_state(
                "the counterparty's client is ahead of this ledger",
            ));
        }
        Ok(())
    }

    fn commitment_prefix(&self) -> CommitmentPrefix {
        CommitmentPrefix::from_bytes(COMMITMENT_PREFIX)
    }

    fn connection_counter(&self) -> Result<u64, HostError> {
        self.counter(&path_key(NextConnectionSequencePath))
    }

    fn channel_end(&self, path: &ChannelEndPath) -> Result<ChannelEnd, HostError> {
        let bytes = self.require(&path_key(path))?;
        ChannelEnd::decode_vec(&bytes).map_err(HostError::invalid_state)
    }

    fn get_next_sequence_send(&self, path: &SeqSendPath) -> Result<Sequence, HostError> {
        Ok(u64_of(&self.require(&path_key(path))?, "a sequence")?.into())
    }

    fn get_next_sequence_recv(&self, path: &SeqRecvPath) -> Result<Sequence, HostError> {
        Ok(u64_of(&self.require(&path_key(path))?, "a sequence")?.into())
    }

    fn get_next_sequence_ack(&self, path: &SeqAckPath) -> Result<Sequence, HostError> {
        Ok(u64_of(&self.require(&path_key(path))?, "a sequence")?.into())
    }

    fn get_packet_commitment(&self, path: &CommitmentPath) -> Result<PacketCommitment, HostError> {
        Ok(self.require(&path_key(path))?.into())
    }

    fn get_packet_receipt(&self, path: &ReceiptPath) -> Result<Receipt, HostError> {
        Ok(match self.get(&path_key(path))? {
            Some(_) => Receipt::Ok,
            None => Receipt::None,
        })
    }

    fn get_packet_acknowledgement(
        &self,
        path: &AckPath,
    ) -> Result<AcknowledgementCommitment, HostError> {
        Ok(self.require(&path_key(path))?.into())
    }

    fn channel_counter(&self) -> Result<u64, HostError> {
        self.counter(&path_key(NextChannelSequencePath))
    }

    fn max_expected_time_per_block(&self) -> Duration {
        Duration::from_secs(10)
    }

    fn validate_message_signer(&self, signer: &Signer) -> Result<(), HostError> {
        if signer.as_ref().is_empty() {
            return Err(HostError::invalid_state("a message has no signer"));
        }
        Ok(())
    }
}

impl ExecutionContext for IbcCtx {
    type E = Self;

    fn get_client_execution_context(&mut self) -> &mut Self {
        self
    }

    fn increase_client_counter(&mut self) -> Result<(), HostError> {
        self.bump(&path_key(NextClientSequencePath))
    }

    fn store_connection(
        &mut self,
        path: &ConnectionPath,
        connection_end: ConnectionEnd,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(connection_end.encode_vec()));
        Ok(())
    }

    fn store_connection_to_client(
        &mut self,
        path: &ClientConnectionPath,
        conn_id: ConnectionId,
    ) -> Result<(), HostError> {
        let key = path_key(path);
        let mut paths = match self.get(&key)? {
            Some(b) => ibc_proto::ibc::core::connection::v1::ClientPaths::decode(b.as_slice())
                .map_err(HostError::invalid_state)?,
            None => Default::default(),
        };
        paths.paths.push(conn_id.to_string());
        self.put(key, Some(paths.encode_to_vec()));
        Ok(())
    }

    fn increase_connection_counter(&mut self) -> Result<(), HostError> {
        self.bump(&path_key(NextConnectionSequencePath))
    }

    fn store_packet_commitment(
        &mut self,
        path: &CommitmentPath,
        commitment: PacketCommitment,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(commitment.into_vec()));
        Ok(())
    }

    fn delete_packet_commitment(&mut self, path: &CommitmentPath) -> Result<(), HostError> {
        self.put(path_key(path), None);
        Ok(())
    }

    fn store_packet_receipt(
        &mut self,
        path: &ReceiptPath,
        _receipt: Receipt,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(vec![1]));
        Ok(())
    }

    fn store_packet_acknowledgement(
        &mut self,
        path: &AckPath,
        ack_commitment: AcknowledgementCommitment,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(ack_commitment.into_vec()));
        Ok(())
    }

    fn delete_packet_acknowledgement(&mut self, path: &AckPath) -> Result<(), HostError> {
        self.put(path_key(path), None);
        Ok(())
    }

    fn store_channel(
        &mut self,
        path: &ChannelEndPath,
        channel_end: ChannelEnd,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(channel_end.encode_vec()));
        Ok(())
    }

    fn store_next_sequence_send(
        &mut self,
        path: &SeqSendPath,
        seq: Sequence,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(seq.value().to_be_bytes().to_vec()));
        Ok(())
    }

    fn store_next_sequence_recv(
        &mut self,
        path: &SeqRecvPath,
        seq: Sequence,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(seq.value().to_be_bytes().to_vec()));
        Ok(())
    }

    fn store_next_sequence_ack(
        &mut self,
        path: &SeqAckPath,
        seq: Sequence,
    ) -> Result<(), HostError> {
        self.put(path_key(path), Some(seq.value().to_be_bytes().to_vec()));
        Ok(())
    }

    fn increase_channel_counter(&mut self) -> Result<(), HostError> {
        self.bump(&path_key(NextChannelSequencePath))
    }

    fn emit_ibc_event(&mut self, event: IbcEvent) -> Result<(), HostError> {
        self.events.push(event);
        Ok(())
    }

    fn log_message(&mut self, message: String) -> Result<(), HostError> {
        tracing::debug!(%message, "ibc");
        Ok(())
    }
}
