//! Light clients the ledger's IBC host runs, as ibc-rs client types.
//!
//! [`AnyClientState`] / [`AnyConsensusState`] are the host's client enums (ibc-rs derives the
//! dispatch); a new client type is a new variant. Today: `kh-ledger`, the light client of a
//! counterparty ledger's host-state chain, and `lcp-client`, a counterparty verified through a
//! Light Client Proxy ([`crate::lcp_client`]). Its verification is the Ledger ELC's (`kh-elc`):
//! an update is a chain of host-state proofs from a trusted height (notary's and operators'
//! signatures, continuity, time order, misbehaviour freezes the client); membership and
//! non-membership are a [`LedgerProof`] — the filtered host transaction of the proof height,
//! its signatures and an ICS-23 proof — checked against the trusted consensus state's root.
//!
//! Client and consensus states travel as protobuf `Any` whose value is the BCS encoding of the
//! kh-elc types (type URLs below).

use std::collections::BTreeMap;
use std::time::Duration;

use ibc_core::client::context::ClientExecutionContext;
use ibc_core::client::context::client_state::{
    ClientStateCommon, ClientStateExecution, ClientStateValidation,
};
use ibc_core::client::context::consensus_state::ConsensusState;
use ibc_core::client::types::error::ClientError;
use ibc_core::client::types::{Height, Status};
use ibc_core::commitment_types::commitment::{
    CommitmentPrefix, CommitmentProofBytes, CommitmentRoot,
};
use ibc_core::derive::{ClientState as DeriveClientState, ConsensusState as DeriveConsensusState};
use ibc_core::host::types::error::DecodingError;
use ibc_core::host::types::identifiers::{ClientId, ClientType};
use ibc_core::host::types::path::{ClientConsensusStatePath, ClientStatePath, Path, PathBytes};
use ibc_core::primitives::Timestamp;
use ibc_core::primitives::proto::Any;
use kh_elc::{
    ConsensusStates, LedgerClient, LedgerHeader, LedgerMisbehaviour, LightClient, UpdateOutcome,
};
use kh_ibc_host_chain::{HostStateProof, HostTrust, LedgerProof};
use serde::{Deserialize, Serialize};

use crate::ctx::{COMMITMENT_PREFIX, IbcCtx};
use crate::lcp_client::{
    LCP_CLIENT_STATE_URL, LCP_CONSENSUS_STATE_URL, LCP_STORED_CLIENT_STATE_URL, LcpClientState,
    LcpConsensusState,
};

/// The ledger client's type.
pub const LEDGER_CLIENT_TYPE: &str = "kh-ledger";
/// Type URL of a ledger client state.
pub const LEDGER_CLIENT_STATE_URL: &str = "/kakehashi.ibc.ledger.v1.ClientState";
/// Type URL of a ledger consensus state.
pub const LEDGER_CONSENSUS_STATE_URL: &str = "/kakehashi.ibc.ledger.v1.ConsensusState";
/// Type URL of a ledger header (host-state proofs from a trusted height).
pub const LEDGER_HEADER_URL: &str = "/kakehashi.ibc.ledger.v1.Header";
/// Type URL of ledger misbehaviour (two host states of one height).
pub const LEDGER_MISBEHAVIOUR_URL: &str = "/kakehashi.ibc.ledger.v1.Misbehaviour";

fn specific(description: impl ToString) -> ClientError {
    ClientError::ClientSpecific {
        description: description.to_string(),
    }
}

fn decoding(e: impl ToString) -> ClientError {
    ClientError::Decoding(DecodingError::invalid_raw_data(e))
}

fn height(h: u64) -> Result<Height, ClientError> {
    Height::new(0, h)
}

/// The client of a counterparty ledger: its chain id and the Ledger ELC's client state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerClientState {
    /// The counterparty ledger's IBC chain id.
    pub chain_id: String,
    /// The trusted keys, clock drift, latest height and frozen flag.
    pub inner: kh_elc::LedgerClientState,
}

/// What the ledger client trusts at one host height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConsensusState {
    /// Store root, host timestamp, host state reference.
    pub inner: kh_elc::LedgerConsensusState,
    root: CommitmentRoot,
}

impl LedgerConsensusState {
    /// Wraps the ELC's consensus state.
    pub fn new(inner: kh_elc::LedgerConsensusState) -> Self {
        let root = CommitmentRoot::from_bytes(&inner.store_root);
        Self { inner, root }
    }
}

fn to_any<T: Serialize>(url: &str, value: &T) -> Any {
    Any {
        type_url: url.into(),
        value: bcs::to_bytes(value).unwrap_or_default(),
    }
}

fn from_any<T: serde::de::DeserializeOwned>(url: &str, any: &Any) -> Result<T, ClientError> {
    if any.type_url != url {
        return Err(decoding(format!(
            "type URL {} where {url} is expected",
            any.type_url
        )));
    }
    bcs::from_bytes(&any.value).map_err(decoding)
}

impl From<LedgerClientState> for Any {
    fn from(v: LedgerClientState) -> Any {
        to_any(LEDGER_CLIENT_STATE_URL, &v)
    }
}

impl TryFrom<Any> for LedgerClientState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        from_any(LEDGER_CLIENT_STATE_URL, &any)
    }
}

impl From<LedgerConsensusState> for Any {
    fn from(v: LedgerConsensusState) -> Any {
        to_any(LEDGER_CONSENSUS_STATE_URL, &v.inner)
    }
}

impl TryFrom<Any> for LedgerConsensusState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        Ok(Self::new(from_any(LEDGER_CONSENSUS_STATE_URL, &any)?))
    }
}

impl ConsensusState for LedgerConsensusState {
    fn root(&self) -> &CommitmentRoot {
        &self.root
    }

    fn timestamp(&self) -> Result<Timestamp, ClientError> {
        Ok(Timestamp::from_nanoseconds(
            self.inner.timestamp_ms.saturating_mul(1_000_000),
        ))
    }
}

/// The host's client states (one variant per client type).
#[derive(Debug, Clone, PartialEq, Eq, DeriveClientState)]
#[validation(IbcCtx)]
#[execution(IbcCtx)]
pub enum AnyClientState {
    /// A counterparty ledger.
    Ledger(LedgerClientState),
    /// A counterparty verified through LCP.
    Lcp(LcpClientState),
}

/// The host's consensus states (one variant per client type).
#[derive(Debug, Clone, PartialEq, Eq, DeriveConsensusState)]
pub enum AnyConsensusState {
    /// A counterparty ledger's host state.
    Ledger(LedgerConsensusState),
    /// A state id an LCP enclave signed.
    Lcp(LcpConsensusState),
}

impl From<AnyClientState> for Any {
    fn from(v: AnyClientState) -> Any {
        match v {
            AnyClientState::Ledger(c) => c.into(),
            AnyClientState::Lcp(c) => c.into(),
        }
    }
}

impl TryFrom<Any> for AnyClientState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        match any.type_url.as_str() {
            LEDGER_CLIENT_STATE_URL => Ok(Self::Ledger(any.try_into()?)),
            LCP_CLIENT_STATE_URL | LCP_STORED_CLIENT_STATE_URL => Ok(Self::Lcp(any.try_into()?)),
            other => Err(ClientError::InvalidClientStateType(other.into())),
        }
    }
}

impl From<AnyConsensusState> for Any {
    fn from(v: AnyConsensusState) -> Any {
        match v {
            AnyConsensusState::Ledger(c) => c.into(),
            AnyConsensusState::Lcp(c) => c.into(),
        }
    }
}

impl TryFrom<Any> for AnyConsensusState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        match any.type_url.as_str() {
            LEDGER_CONSENSUS_STATE_URL => Ok(Self::Ledger(any.try_into()?)),
            LCP_CONSENSUS_STATE_URL => Ok(Self::Lcp(any.try_into()?)),
            other => Err(decoding(format!("unknown consensus state type {other}"))),
        }
    }
}

/// The key listing the heights of a client's consensus states (for the ELC's ordering checks).
fn heights_key(client_id: &ClientId) -> Vec<u8> {
    format!("kakehashi/clients/{client_id}/consensusHeights").into_bytes()
}

fn stored_heights(ctx: &IbcCtx, client_id: &ClientId) -> Result<Vec<u64>, ClientError> {
    match ctx.get(&heights_key(client_id))? {
        Some(b) => bcs::from_bytes(&b).map_err(decoding),
        None => Ok(vec![]),
    }
}

/// The consensus states an update or a proof is checked against, read from the store.
#[derive(Debug, Default)]
struct Loaded(BTreeMap<u64, kh_elc::LedgerConsensusState>);

impl ConsensusStates<kh_elc::LedgerConsensusState> for Loaded {
    fn get(&self, height: u64) -> Option<&kh_elc::LedgerConsensusState> {
        self.0.get(&height)
    }
    fn below(&self, height: u64) -> Option<(u64, &kh_elc::LedgerConsensusState)> {
        self.0.range(..height).next_back().map(|(h, s)| (*h, s))
    }
    fn above(&self, height: u64) -> Option<(u64, &kh_elc::LedgerConsensusState)> {
        self.0.range(height + 1..).next().map(|(h, s)| (*h, s))
    }
}

fn load(ctx: &IbcCtx, client_id: &ClientId, heights: &[u64]) -> Result<Loaded, ClientError> {
    let mut loaded = Loaded::default();
    for &h in heights {
        if let Some(AnyConsensusState::Ledger(c)) = ctx.consensus_state_at(client_id, h)? {
            loaded.0.insert(h, c.inner);
        }
    }
    Ok(loaded)
}

impl LedgerClientState {
    /// A client of ledger `chain_id` trusting `trust`, and its first consensus state, from the
    /// proof of the host state it starts at (verified with `trust`): what a relayer puts in a
    /// `MsgCreateClient`.
    pub fn from_host_proof(
        chain_id: &str,
        trust: HostTrust,
        proof: &HostStateProof,
        max_clock_drift: Duration,
    ) -> Result<(Self, LedgerConsensusState), ClientError> {
        let (height, consensus) =
            LedgerClient::consensus_state_of(&trust, proof).map_err(specific)?;
        let client = Self {
            chain_id: chain_id.into(),
            inner: kh_elc::LedgerClientState {
                trust,
                max_clock_drift,
                latest_height: height,
                frozen: false,
            },
        };
        Ok((client, LedgerConsensusState::new(consensus)))
    }

    fn header(any: &Any) -> Result<LedgerHeader, ClientError> {
        from_any(LEDGER_HEADER_URL, any)
    }

    /// Runs the ELC's update on `message` against the stored consensus states.
    fn run_update(
        &self,
        ctx: &IbcCtx,
        client_id: &ClientId,
        message: &Any,
    ) -> Result<UpdateOutcome<kh_elc::LedgerClientState, kh_elc::LedgerConsensusState>, ClientError>
    {
        if let Some((id, bytes, outcome)) = ctx.update_memo.borrow().as_ref()
            && id == client_id
            && bytes == &message.value
        {
            return Ok(outcome.clone());
        }
        let header = Self::header(message)?;
        let all = stored_heights(ctx, client_id)?;
        let last = header
            .trusted_height
            .saturating_add(header.proofs.len() as u64);
        let mut wanted: Vec<u64> = all
            .iter()
            .copied()
            .filter(|h| *h >= header.trusted_height && *h <= last)
            .collect();
        if let Some(next) = all.iter().copied().find(|h| *h > last) {
            wanted.push(next);
        }
        let states = load(ctx, client_id, &wanted)?;
        let now = Duration::from_millis(ctx.env().timestamp_ms);
        let outcome = LedgerClient::update(&self.inner, &states, &header, now).map_err(|e| {
            ClientError::FailedToVerifyHeader {
                description: e.to_string(),
            }
        })?;
        *ctx.update_memo.borrow_mut() =
            Some((client_id.clone(), message.value.clone(), outcome.clone()));
        Ok(outcome)
    }

    /// The proof and the trusted root it must be checked under. The root comes from the
    /// consensus state ibc-rs looked up at the proof height (verified by the ELC when it was
    /// stored), so only the ICS-23 part is checked against it; the proof's host state must
    /// claim that same root (a cheap, clear refusal of a proof of another height).
    fn check_proof(
        &self,
        prefix: &CommitmentPrefix,
        proof: &CommitmentProofBytes,
        root: &CommitmentRoot,
    ) -> Result<(LedgerProof, [u8; 32]), ClientError> {
        if prefix.as_bytes() != COMMITMENT_PREFIX {
            return Err(specific("the commitment prefix is not the ledger's"));
        }
        if self.inner.frozen {
            return Err(specific("the client is frozen"));
        }
        let root: [u8; 32] = root
            .as_bytes()
            .try_into()
            .map_err(|_| specific("a ledger store root is 32 bytes"))?;
        let proof = LedgerProof::from_bytes(proof.as_ref()).map_err(decoding)?;
        let claimed = proof.host.claimed_state().map_err(specific)?;
        if claimed.store_root != root {
            return Err(specific(
                "the proof is not of the host state trusted at the proof height",
            ));
        }
        Ok((proof, root))
    }
}

impl ClientStateCommon for LedgerClientState {
    fn verify_consensus_state(
        &self,
        consensus_state: Any,
        _host_timestamp: &Timestamp,
    ) -> Result<(), ClientError> {
        LedgerConsensusState::try_from(consensus_state).map(|_| ())
    }

    fn client_type(&self) -> ClientType {
        ClientType::new(LEDGER_CLIENT_TYPE).unwrap_or_else(|_| unreachable!())
    }

    fn latest_height(&self) -> Height {
        Height::new(0, self.inner.latest_height.max(1)).unwrap_or_else(|_| unreachable!())
    }

    fn validate_proof_height(&self, proof_height: Height) -> Result<(), ClientError> {
        if proof_height.revision_height() > self.inner.latest_height {
            return Err(ClientError::InsufficientProofHeight {
                expected: self.latest_height(),
                actual: proof_height,
            });
        }
        Ok(())
    }

    fn verify_upgrade_client(
        &self,
        _upgraded_client_state: Any,
        _upgraded_consensus_state: Any,
        _proof_upgrade_client: CommitmentProofBytes,
        _proof_upgrade_consensus_state: CommitmentProofBytes,
        _root: &CommitmentRoot,
    ) -> Result<(), ClientError> {
        Err(specific("a ledger client is not upgraded"))
    }

    fn serialize_path(&self, path: Path) -> Result<PathBytes, ClientError> {
        Ok(PathBytes::from_bytes(path.to_string().into_bytes()))
    }

    fn verify_membership_raw(
        &self,
        prefix: &CommitmentPrefix,
        proof: &CommitmentProofBytes,
        root: &CommitmentRoot,
        path: PathBytes,
        value: Vec<u8>,
    ) -> Result<(), ClientError> {
        let (proof, root) = self.check_proof(prefix, proof, root)?;
        proof
            .verify_membership_at_root(&root, path.as_ref(), &value)
            .map_err(specific)
    }

    fn verify_non_membership_raw(
        &self,
        prefix: &CommitmentPrefix,
        proof: &CommitmentProofBytes,
        root: &CommitmentRoot,
        path: PathBytes,
    ) -> Result<(), ClientError> {
        let (proof, root) = self.check_proof(prefix, proof, root)?;
        proof
            .verify_non_membership_at_root(&root, path.as_ref())
            .map_err(specific)
    }
}

impl ClientStateValidation<IbcCtx> for LedgerClientState {
    fn verify_client_message(
        &self,
        ctx: &IbcCtx,
        client_id: &ClientId,
        client_message: Any,
    ) -> Result<(), ClientError> {
        if client_message.type_url == LEDGER_MISBEHAVIOUR_URL {
            let m: LedgerMisbehaviour = from_any(LEDGER_MISBEHAVIOUR_URL, &client_message)?;
            let now = Duration::from_millis(ctx.env().timestamp_ms);
            LedgerClient::check_misbehaviour(&self.inner, &Loaded::default(), &m, now).map_err(
                |e| ClientError::FailedToHandleMisbehaviour {
                    description: e.to_string(),
                },
            )?;
            return Ok(());
        }
        self.run_update(ctx, client_id, &client_message).map(|_| ())
    }

    fn check_for_misbehaviour(
        &self,
        ctx: &IbcCtx,
        client_id: &ClientId,
        client_message: Any,
    ) -> Result<bool, ClientError> {
        if client_message.type_url == LEDGER_MISBEHAVIOUR_URL {
            return Ok(true);
        }
        Ok(matches!(
            self.run_update(ctx, client_id, &client_message)?,
            UpdateOutcome::Frozen { .. }
        ))
    }

    fn status(&self, _ctx: &IbcCtx, _client_id: &ClientId) -> Result<Status, ClientError> {
        Ok(if self.inner.frozen {
            Status::Frozen
        } else {
            Status::Active
        })
    }

    fn check_substitute(&self, _ctx: &IbcCtx, _substitute: Any) -> Result<(), ClientError> {
        Err(specific("a ledger client is not recovered by substitution"))
    }
}

fn store_consensus(
    ctx: &mut IbcCtx,
    client_id: &ClientId,
    h: u64,
    state: kh_elc::LedgerConsensusState,
) -> Result<(), ClientError> {
    let mut heights = stored_heights(ctx, client_id)?;
    if let Err(i) = heights.binary_search(&h) {
        heights.insert(i, h);
    }
    ctx.put(
        heights_key(client_id),
        Some(bcs::to_bytes(&heights).map_err(decoding)?),
    );
    ctx.store_consensus_state(
        ClientConsensusStatePath::new(client_id.clone(), 0, h),
        AnyConsensusState::Ledger(LedgerConsensusState::new(state)),
    )?;
    let (ts, at) = (ctx.timestamp(), ctx.height()?);
    ctx.store_update_meta(client_id.clone(), height(h)?, ts, at)?;
    Ok(())
}

impl ClientStateExecution<IbcCtx> for LedgerClientState {
    fn initialise(
        &self,
        ctx: &mut IbcCtx,
        client_id: &ClientId,
        consensus_state: Any,
    ) -> Result<(), ClientError> {
        let consensus = LedgerConsensusState::try_from(consensus_state)?;
        let h = LedgerClient::create(&self.inner, &consensus.inner).map_err(specific)?;
        if h == 0 {
            return Err(specific("a ledger client starts at a host height above 0"));
        }
        ctx.store_client_state(
            ClientStatePath::new(client_id.clone()),
            AnyClientState::Ledger(self.clone()),
        )?;
        store_consensus(ctx, client_id, h, consensus.inner)
    }

    fn update_state(
        &self,
        ctx: &mut IbcCtx,
        client_id: &ClientId,
        header: Any,
    ) -> Result<Vec<Height>, ClientError> {
        let outcome = self.run_update(ctx, client_id, &header)?;
        // Applied: a later update in the same transaction is verified afresh.
        ctx.update_memo.borrow_mut().take();
        match outcome {
            UpdateOutcome::Updated {
                client_state,
                consensus_states,
                ..
            } => {
                let mut heights = Vec::with_capacity(consensus_states.len());
                for (h, s) in consensus_states {
                    store_consensus(ctx, client_id, h, s)?;
                    heights.push(height(h)?);
                }
                ctx.store_client_state(
                    ClientStatePath::new(client_id.clone()),
                    AnyClientState::Ledger(Self {
                        chain_id: self.chain_id.clone(),
                        inner: client_state,
                    }),
                )?;
                Ok(heights)
            }
            UpdateOutcome::Unchanged { height: h } => Ok(vec![height(h)?]),
            UpdateOutcome::Frozen { .. } => Err(specific("the update is misbehaviour")),
        }
    }

    fn update_state_on_misbehaviour(
        &self,
        ctx: &mut IbcCtx,
        client_id: &ClientId,
        _client_message: Any,
    ) -> Result<(), ClientError> {
        let mut frozen = self.clone();
        frozen.inner.frozen = true;
        tracing::warn!(%client_id, "ledger client frozen on misbehaviour");
        ctx.store_client_state(
            ClientStatePath::new(client_id.clone()),
            AnyClientState::Ledger(frozen),
        )?;
        Ok(())
    }

    fn update_state_on_upgrade(
        &self,
        _ctx: &mut IbcCtx,
        _client_id: &ClientId,
        _upgraded_client_state: Any,
        _upgraded_consensus_state: Any,
    ) -> Result<Height, ClientError> {
        Err(specific("a ledger client is not upgraded"))
    }

    fn update_on_recovery(
        &self,
        _ctx: &mut IbcCtx,
        _subject_client_id: &ClientId,
        _substitute_client_state: Any,
        _substitute_consensus_state: Any,
    ) -> Result<(), ClientError> {
        Err(specific("a ledger client is not recovered by substitution"))
    }
}

/// The `Any` of a ledger header: host-state proofs from `trusted_height`.
pub fn header_any(header: &LedgerHeader) -> Any {
    to_any(LEDGER_HEADER_URL, header)
}
