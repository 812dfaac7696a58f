//! The LCP client as an ibc-rs client type of the ledger's IBC host (`lcp-client`, DESIGN §1,
//! §5): the ledger trusts a counterparty through a Light Client Proxy, checking one enclave
//! signature per update or proof instead of running the counterparty's light client.
//!
//! Every rule is [`kh_lcp::client::LcpClient`]'s (the same the EVM `LCPClient` applies): this
//! module only moves its state in and out of the host store and judges at the host's time.
//!
//! **Wire contract** (what a relayer sends; the same bytes as to the EVM LCP client):
//! * `MsgCreateClient`: client state `/ibc.lightclients.lcp.v1.ClientState`, consensus state
//!   `/ibc.lightclients.lcp.v1.ConsensusState` (the prost messages of [`kh_lcp::wire`]). A latest
//!   height of zero needs an empty consensus state (the first UpdateState then emits states); a
//!   non-zero one needs the consensus state (state id, timestamp in ns) stored at it. The host
//!   assigns `lcp-client-N`.
//! * `MsgUpdateClient` with `/ibc.lightclients.lcp.v1.RegisterEnclaveKeyMessage` (a key from its
//!   attestation report, judged at the host's time against the host's attestation root) or
//!   `/ibc.lightclients.lcp.v1.UpdateClientMessage` (a signed UpdateState: the consensus state at
//!   its post height; a signed Misbehaviour: the client freezes — also as
//!   `MsgSubmitMisbehaviour`).
//! * Membership and non-membership proofs: the ABI-encoded [`kh_lcp::CommitmentProofs`] of a
//!   VerifyMembership message, checked against the state id stored at the proof height, with
//!   the counterparty's commitment prefix and the ICS-24 path string.
//!
//! **Host store**: the client state at `clients/{id}/clientState` is kept in a kakehashi form,
//! `/kakehashi.ibc.lcp.v1.ClientState` (bcs of the LCP client state and the registered enclave
//! keys with their expiry and operator); `TryFrom<Any>` accepts it and the wire form. Consensus
//! states are stored in the wire form (state id, timestamp in ns).
//!
//! **Host parameters**: the attestation root keys must chain to is the host's configuration
//! ([`crate::IbcHostApp::with_lcp_attestation_root`], the counterpart of the EVM client's
//! constructor argument); a host without one refuses to create LCP clients. Time is the host
//! timestamp of the transaction being built (Unix seconds for key expiry and the trusting-period
//! context): ibc-rs's proof checks get no context, so the host's reads
//! ([`crate::IbcCtx`]'s `client_state` and `consensus_state`) attach the host view (time, root)
//! to the client state and the height to a consensus state; a client state without it refuses
//! every proof. Development mode (debug enclaves) is never on for a ledger client.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy_primitives::Address;
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
use ibc_core::host::types::error::DecodingError;
use ibc_core::host::types::identifiers::{ClientId, ClientType};
use ibc_core::host::types::path::{ClientConsensusStatePath, ClientStatePath, Path, PathBytes};
use ibc_core::primitives::Timestamp;
use ibc_core::primitives::proto::Any;
use kh_ibc_host_chain::HostTrust;
use kh_lcp::client::{
    LcpClient, LcpClientError, RegisterEnclaveKeyMessage, RegisteredKey, UpdateClientMessage,
    UpdateResult,
};
use kh_lcp::{ProxyMessage, SignedReport, StateId, wire};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::client::{AnyClientState, AnyConsensusState};
use crate::ctx::{HostEnv, IbcCtx};

/// The LCP client's type (client ids `lcp-client-N`).
pub const LCP_CLIENT_TYPE: &str = "lcp-client";
/// Type URL of the client state as the host stores it (state and registered keys).
pub const LCP_STORED_CLIENT_STATE_URL: &str = "/kakehashi.ibc.lcp.v1.ClientState";
pub use kh_lcp::wire::{
    CLIENT_STATE_URL as LCP_CLIENT_STATE_URL, CONSENSUS_STATE_URL as LCP_CONSENSUS_STATE_URL,
    REGISTER_URL as LCP_REGISTER_URL, UPDATE_CLIENT_URL as LCP_UPDATE_CLIENT_URL,
};

fn specific(description: impl ToString) -> ClientError {
    ClientError::ClientSpecific {
        description: description.to_string(),
    }
}

fn decoding(e: impl ToString) -> ClientError {
    ClientError::Decoding(DecodingError::invalid_raw_data(e))
}

fn refused(e: LcpClientError) -> ClientError {
    ClientError::FailedToVerifyHeader {
        description: format!("LCP client: {e}"),
    }
}

fn proof_refused(e: LcpClientError) -> ClientError {
    specific(format!("LCP client: the proof does not verify: {e}"))
}

fn ibc_height(h: kh_lcp::Height) -> Result<Height, ClientError> {
    Height::new(h.revision_number, h.revision_height)
}

fn lcp_height(h: Height) -> kh_lcp::Height {
    kh_lcp::Height::new(h.revision_number(), h.revision_height())
}

/// What the host's reads attach to a client state: the time to judge at and the root.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostView {
    now: u64,
    root_ca_der: Option<Vec<u8>>,
}

/// An LCP client of a counterparty: the LCP client state and the registered enclave keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpClientState {
    /// MRENCLAVE, key expiration, allow lists, operators, latest height, frozen flag.
    pub state: kh_lcp::client::LcpClientState,
    /// Registered enclave keys (expiry, approving operator).
    pub enclave_keys: BTreeMap<Address, RegisteredKey>,
    host: Option<HostView>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    state: kh_lcp::client::LcpClientState,
    enclave_keys: Vec<(Address, RegisteredKey)>,
}

impl LcpClientState {
    /// A client state without keys (what `MsgCreateClient` carries).
    pub fn new(state: kh_lcp::client::LcpClientState) -> Self {
        Self {
            state,
            enclave_keys: BTreeMap::new(),
            host: None,
        }
    }

    /// Decodes the wire client state (`ibc.lightclients.lcp.v1.ClientState`).
    pub fn from_wire(cs: &wire::ClientState) -> Result<Self, ClientError> {
        let mrenclave: [u8; 32] = cs
            .mrenclave
            .as_slice()
            .try_into()
            .map_err(|_| decoding("MRENCLAVE is not 32 bytes"))?;
        let operators = cs
            .operators
            .iter()
            .map(|o| {
                <[u8; 20]>::try_from(o.as_slice())
                    .map(Address::from)
                    .map_err(|_| decoding("an operator address is not 20 bytes"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let latest = cs.latest_height.unwrap_or_default();
        Ok(Self::new(kh_lcp::client::LcpClientState {
            mrenclave,
            key_expiration: cs.key_expiration,
            frozen: cs.frozen,
            latest_height: kh_lcp::Height::new(latest.revision_number, latest.revision_height),
            allowed_quote_statuses: cs.allowed_quote_statuses.iter().cloned().collect(),
            allowed_advisory_ids: cs.allowed_advisory_ids.iter().cloned().collect(),
            development_mode: false,
            operators,
            operators_nonce: cs.operators_nonce,
            operators_threshold_numerator: cs.operators_threshold_numerator,
            operators_threshold_denominator: cs.operators_threshold_denominator,
        }))
    }

    /// The wire client state (without the keys).
    pub fn to_wire(&self) -> wire::ClientState {
        let s = &self.state;
        wire::ClientState {
            mrenclave: s.mrenclave.to_vec(),
            key_expiration: s.key_expiration,
            frozen: s.frozen,
            latest_height: Some(wire::ProtoHeight {
                revision_number: s.latest_height.revision_number,
                revision_height: s.latest_height.revision_height,
            }),
            allowed_quote_statuses: s.allowed_quote_statuses.iter().cloned().collect(),
            allowed_advisory_ids: s.allowed_advisory_ids.iter().cloned().collect(),
            operators: s.operators.iter().map(|o| o.to_vec()).collect(),
            operators_nonce: s.operators_nonce,
            operators_threshold_numerator: s.operators_threshold_numerator,
            operators_threshold_denominator: s.operators_threshold_denominator,
        }
    }

    /// Attaches the host's time and attestation root (the host's reads do this).
    pub(crate) fn at_host(&mut self, env: &HostEnv) {
        self.host = Some(HostView {
            now: env.timestamp_ms / 1000,
            root_ca_der: env.lcp_attestation_root.clone(),
        });
    }

    fn view(&self) -> Result<&HostView, ClientError> {
        self.host
            .as_ref()
            .ok_or_else(|| specific("the LCP client state was not read through the host"))
    }

    /// The [`LcpClient`] of this state with `consensus` as its consensus states.
    fn machine(
        &self,
        consensus: BTreeMap<kh_lcp::Height, kh_lcp::client::LcpConsensusState>,
    ) -> Result<(LcpClient, u64), ClientError> {
        let view = self.view()?;
        let root = view
            .root_ca_der
            .clone()
            .ok_or_else(|| specific("this host has no LCP attestation root configured"))?;
        Ok((
            LcpClient {
                root_ca_der: root,
                state: self.state.clone(),
                consensus_states: consensus,
                enclave_keys: self.enclave_keys.clone(),
            },
            view.now,
        ))
    }

    /// Runs `message` (a registration or an update) on the client as stored, at the host's
    /// time: the client after it and what it did (`None` for a registration).
    fn apply(
        &self,
        ctx: &IbcCtx,
        client_id: &ClientId,
        message: &Any,
    ) -> Result<(LcpClient, Option<(UpdateResult, ProxyMessage)>), ClientError> {
        match message.type_url.as_str() {
            LCP_REGISTER_URL => {
                let m = wire::RegisterEnclaveKeyMessage::decode(message.value.as_slice())
                    .map_err(decoding)?;
                let register = RegisterEnclaveKeyMessage {
                    report: SignedReport {
                        avr: m.report,
                        signature: m.signature,
                        signing_cert: m.signing_cert,
                    },
                    operator_signature: (!m.operator_signature.is_empty())
                        .then_some(m.operator_signature),
                };
                let (mut client, now) = self.machine(BTreeMap::new())?;
                let key = client
                    .register_enclave_key(&register, now)
                    .map_err(refused)?;
                tracing::debug!(%client_id, %key, "LCP enclave key accepted");
                Ok((client, None))
            }
            LCP_UPDATE_CLIENT_URL => {
                let m = wire::UpdateClientMessage::decode(message.value.as_slice())
                    .map_err(decoding)?;
                let proxy = ProxyMessage::decode(&m.proxy_message)
                    .map_err(|e| refused(LcpClientError::Message(e)))?;
                let heights: Vec<kh_lcp::Height> = match &proxy {
                    ProxyMessage::UpdateState(u) => {
                        u.prev.iter().map(|p| p.0).chain([u.post_height]).collect()
                    }
                    ProxyMessage::Misbehaviour(b) => {
                        b.prev_states.iter().map(|p| p.height).collect()
                    }
                    ProxyMessage::VerifyMembership(_) => vec![],
                };
                let mut consensus = BTreeMap::new();
                for h in heights {
                    if let Some(c) = stored_consensus(ctx, client_id, h)? {
                        consensus.insert(h, c.as_lcp());
                    }
                }
                let (mut client, now) = self.machine(consensus)?;
                let result = client
                    .update_client(
                        &UpdateClientMessage {
                            proxy_message: m.proxy_message,
                            signatures: m.signatures,
                        },
                        now,
                    )
                    .map_err(refused)?;
                Ok((client, Some((result, proxy))))
            }
            other => Err(decoding(format!(
                "an LCP client message is {LCP_REGISTER_URL} or {LCP_UPDATE_CLIENT_URL}, not {other}"
            ))),
        }
    }

    fn after(&self, client: &LcpClient) -> Self {
        Self {
            state: client.state.clone(),
            enclave_keys: client.enclave_keys.clone(),
            host: None,
        }
    }

    fn verify(
        &self,
        prefix: &CommitmentPrefix,
        proof: &CommitmentProofBytes,
        root: &CommitmentRoot,
        path: PathBytes,
        value: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        let (height, state_id) = parse_root(root)?;
        let consensus = BTreeMap::from([(
            height,
            kh_lcp::client::LcpConsensusState {
                state_id,
                timestamp: 0,
            },
        )]);
        let (client, now) = self.machine(consensus)?;
        let proof: &[u8] = proof.as_ref();
        match value {
            Some(v) => {
                client.verify_membership(height, proof, prefix.as_bytes(), path.as_ref(), &v, now)
            }
            None => {
                client.verify_non_membership(height, proof, prefix.as_bytes(), path.as_ref(), now)
            }
        }
        .map_err(proof_refused)
    }
}

impl From<LcpClientState> for Any {
    fn from(v: LcpClientState) -> Any {
        let stored = Stored {
            state: v.state,
            enclave_keys: v.enclave_keys.into_iter().collect(),
        };
        Any {
            type_url: LCP_STORED_CLIENT_STATE_URL.into(),
            value: bcs::to_bytes(&stored).unwrap_or_default(),
        }
    }
}

impl TryFrom<Any> for LcpClientState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        match any.type_url.as_str() {
            LCP_CLIENT_STATE_URL => {
                let cs = wire::ClientState::decode(any.value.as_slice()).map_err(decoding)?;
                Self::from_wire(&cs)
            }
            LCP_STORED_CLIENT_STATE_URL => {
                let s: Stored = bcs::from_bytes(&any.value).map_err(decoding)?;
                Ok(Self {
                    state: s.state,
                    enclave_keys: s.enclave_keys.into_iter().collect(),
                    host: None,
                })
            }
            other => Err(decoding(format!(
                "type URL {other} is not an LCP client state"
            ))),
        }
    }
}

/// What the LCP client trusts at one height: the ELC's state id and the state's time (ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpConsensusState {
    /// The state id.
    pub state_id: StateId,
    /// The state's timestamp, Unix nanoseconds.
    pub timestamp_ns: u64,
    /// The height it is stored at, when read from the host store.
    height: Option<kh_lcp::Height>,
    root: CommitmentRoot,
}

/// The root a proof is checked under: the state id, then the height it is stored at.
fn root_of(state_id: &StateId, height: Option<kh_lcp::Height>) -> CommitmentRoot {
    let mut bytes = state_id.0.to_vec();
    if let Some(h) = height {
        bytes.extend_from_slice(&h.revision_number.to_be_bytes());
        bytes.extend_from_slice(&h.revision_height.to_be_bytes());
    }
    CommitmentRoot::from_bytes(&bytes)
}

fn parse_root(root: &CommitmentRoot) -> Result<(kh_lcp::Height, StateId), ClientError> {
    let b = root.as_bytes();
    if b.len() != 48 {
        return Err(specific(
            "the LCP consensus state was not read at a height through the host",
        ));
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_be_bytes(w)
    };
    let mut id = [0u8; 32];
    id.copy_from_slice(&b[..32]);
    Ok((kh_lcp::Height::new(word(32), word(40)), StateId(id)))
}

impl LcpConsensusState {
    /// A consensus state (state id, Unix ns).
    pub fn new(state_id: StateId, timestamp_ns: u64) -> Self {
        Self {
            state_id,
            timestamp_ns,
            height: None,
            root: root_of(&state_id, None),
        }
    }

    /// Records the height the state is stored at (the host's reads do this).
    pub(crate) fn at_height(&mut self, height: Height) {
        let h = lcp_height(height);
        self.height = Some(h);
        self.root = root_of(&self.state_id, Some(h));
    }

    fn as_lcp(&self) -> kh_lcp::client::LcpConsensusState {
        kh_lcp::client::LcpConsensusState {
            state_id: self.state_id,
            timestamp: self.timestamp_ns / 1_000_000_000,
        }
    }

    fn is_empty(&self) -> bool {
        self.state_id.is_zero() && self.timestamp_ns == 0
    }
}

impl From<LcpConsensusState> for Any {
    fn from(v: LcpConsensusState) -> Any {
        Any {
            type_url: LCP_CONSENSUS_STATE_URL.into(),
            value: wire::ConsensusState {
                state_id: v.state_id.0.to_vec(),
                timestamp: v.timestamp_ns,
            }
            .encode_to_vec(),
        }
    }
}

impl TryFrom<Any> for LcpConsensusState {
    type Error = ClientError;
    fn try_from(any: Any) -> Result<Self, ClientError> {
        if any.type_url != LCP_CONSENSUS_STATE_URL {
            return Err(decoding(format!(
                "type URL {} is not an LCP consensus state",
                any.type_url
            )));
        }
        let cs = wire::ConsensusState::decode(any.value.as_slice()).map_err(decoding)?;
        let id: [u8; 32] = match cs.state_id.len() {
            0 => [0u8; 32],
            32 => cs
                .state_id
                .as_slice()
                .try_into()
                .map_err(|_| decoding("state id"))?,
            n => return Err(decoding(format!("a state id is 32 bytes, not {n}"))),
        };
        Ok(Self::new(StateId(id), cs.timestamp))
    }
}

impl ConsensusState for LcpConsensusState {
    fn root(&self) -> &CommitmentRoot {
        &self.root
    }

    fn timestamp(&self) -> Result<Timestamp, ClientError> {
        Ok(Timestamp::from_nanoseconds(self.timestamp_ns))
    }
}

fn stored_consensus(
    ctx: &IbcCtx,
    client_id: &ClientId,
    h: kh_lcp::Height,
) -> Result<Option<LcpConsensusState>, ClientError> {
    let path =
        ClientConsensusStatePath::new(client_id.clone(), h.revision_number, h.revision_height);
    match ctx.consensus_state_at_path(&path)? {
        Some(AnyConsensusState::Lcp(c)) => Ok(Some(c)),
        Some(_) => Err(specific("a consensus state of another client type")),
        None => Ok(None),
    }
}

fn store_consensus(
    ctx: &mut IbcCtx,
    client_id: &ClientId,
    h: kh_lcp::Height,
    state: LcpConsensusState,
) -> Result<(), ClientError> {
    ctx.store_consensus_state(
        ClientConsensusStatePath::new(client_id.clone(), h.revision_number, h.revision_height),
        AnyConsensusState::Lcp(state),
    )?;
    let (ts, at) = (ctx.timestamp(), ctx.height()?);
    ctx.store_update_meta(client_id.clone(), ibc_height(h)?, ts, at)?;
    Ok(())
}

impl ClientStateCommon for LcpClientState {
    fn verify_consensus_state(
        &self,
        consensus_state: Any,
        _host_timestamp: &Timestamp,
    ) -> Result<(), ClientError> {
        LcpConsensusState::try_from(consensus_state).map(|_| ())
    }

    fn client_type(&self) -> ClientType {
        ClientType::new(LCP_CLIENT_TYPE).unwrap_or_else(|_| unreachable!())
    }

    fn latest_height(&self) -> Height {
        let h = self.state.latest_height;
        Height::new(h.revision_number, h.revision_height.max(1)).unwrap_or_else(|_| unreachable!())
    }

    fn validate_proof_height(&self, proof_height: Height) -> Result<(), ClientError> {
        if lcp_height(proof_height) > self.state.latest_height {
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
        Err(specific("an LCP client is not upgraded"))
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
        self.verify(prefix, proof, root, path, Some(value))
    }

    fn verify_non_membership_raw(
        &self,
        prefix: &CommitmentPrefix,
        proof: &CommitmentProofBytes,
        root: &CommitmentRoot,
        path: PathBytes,
    ) -> Result<(), ClientError> {
        self.verify(prefix, proof, root, path, None)
    }
}

impl ClientStateValidation<IbcCtx> for LcpClientState {
    fn verify_client_message(
        &self,
        ctx: &IbcCtx,
        client_id: &ClientId,
        client_message: Any,
    ) -> Result<(), ClientError> {
        self.apply(ctx, client_id, &client_message).map(|_| ())
    }

    fn check_for_misbehaviour(
        &self,
        ctx: &IbcCtx,
        client_id: &ClientId,
        client_message: Any,
    ) -> Result<bool, ClientError> {
        Ok(matches!(
            self.apply(ctx, client_id, &client_message)?,
            (_, Some((UpdateResult::Frozen, _)))
        ))
    }

    fn status(&self, _ctx: &IbcCtx, _client_id: &ClientId) -> Result<Status, ClientError> {
        Ok(if self.state.frozen {
            Status::Frozen
        } else {
            Status::Active
        })
    }

    fn check_substitute(&self, _ctx: &IbcCtx, _substitute: Any) -> Result<(), ClientError> {
        Err(specific("an LCP client is not recovered by substitution"))
    }
}

impl ClientStateExecution<IbcCtx> for LcpClientState {
    /// Creates the client as the EVM LCP client does: the parameters must make a valid
    /// [`LcpClient`]; at latest height zero the consensus state must be empty, otherwise it is
    /// the trusted state at the latest height.
    fn initialise(
        &self,
        ctx: &mut IbcCtx,
        client_id: &ClientId,
        consensus_state: Any,
    ) -> Result<(), ClientError> {
        let consensus = LcpConsensusState::try_from(consensus_state)?;
        let root = ctx
            .env()
            .lcp_attestation_root
            .clone()
            .ok_or_else(|| specific("this host has no LCP attestation root configured"))?;
        let mut params = self.state.clone();
        params.latest_height = kh_lcp::Height::default();
        LcpClient::new(root, params).map_err(|e| specific(format!("LCP client: {e}")))?;
        if !self.enclave_keys.is_empty() {
            return Err(specific("a new LCP client has no enclave keys"));
        }
        let latest = self.state.latest_height;
        if latest.is_zero() != consensus.is_empty() {
            return Err(specific(
                "an LCP client starts empty at height zero, or with a consensus state at its \
                 latest height",
            ));
        }
        if !latest.is_zero() && (consensus.state_id.is_zero() || consensus.timestamp_ns == 0) {
            return Err(specific("the initial consensus state is incomplete"));
        }
        ctx.store_client_state(
            ClientStatePath::new(client_id.clone()),
            AnyClientState::Lcp(Self::new(self.state.clone())),
        )?;
        if !latest.is_zero() {
            store_consensus(ctx, client_id, latest, consensus)?;
        }
        tracing::info!(%client_id, mrenclave = %hex::encode(self.state.mrenclave), "LCP client created");
        Ok(())
    }

    fn update_state(
        &self,
        ctx: &mut IbcCtx,
        client_id: &ClientId,
        header: Any,
    ) -> Result<Vec<Height>, ClientError> {
        let (client, applied) = self.apply(ctx, client_id, &header)?;
        let mut heights = vec![];
        if let Some((UpdateResult::Updated(_), ProxyMessage::UpdateState(u))) = applied {
            let timestamp_ns = u64::try_from(u.timestamp_ns)
                .map_err(|_| specific("the update's timestamp does not fit 64 bits"))?;
            let existing = stored_consensus(ctx, client_id, u.post_height)?;
            if existing.is_none_or(|e| e.state_id != u.post_state_id) {
                store_consensus(
                    ctx,
                    client_id,
                    u.post_height,
                    LcpConsensusState::new(u.post_state_id, timestamp_ns),
                )?;
            }
            heights.push(ibc_height(u.post_height)?);
        }
        let after = self.after(&client);
        if heights.is_empty() {
            // A key registration: no consensus state, ibc-rs reports the latest height.
            heights.push(after.latest_height());
        }
        ctx.store_client_state(
            ClientStatePath::new(client_id.clone()),
            AnyClientState::Lcp(after),
        )?;
        Ok(heights)
    }

    fn update_state_on_misbehaviour(
        &self,
        ctx: &mut IbcCtx,
        client_id: &ClientId,
        _client_message: Any,
    ) -> Result<(), ClientError> {
        let mut frozen = Self::new(self.state.clone());
        frozen.enclave_keys = self.enclave_keys.clone();
        frozen.state.frozen = true;
        tracing::warn!(%client_id, "LCP client frozen on misbehaviour");
        ctx.store_client_state(
            ClientStatePath::new(client_id.clone()),
            AnyClientState::Lcp(frozen),
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
        Err(specific("an LCP client is not upgraded"))
    }

    fn update_on_recovery(
        &self,
        _ctx: &mut IbcCtx,
        _subject_client_id: &ClientId,
        _substitute_client_state: Any,
        _substitute_consensus_state: Any,
    ) -> Result<(), ClientError> {
        Err(specific("an LCP client is not recovered by substitution"))
    }
}

/// The clock drift the Ledger ELC of this ledger is created with in LCP by default.
pub const LEDGER_ELC_MAX_CLOCK_DRIFT: Duration = Duration::from_secs(60);

/// A Ledger ELC client state for a counterparty's LCP to run for this ledger: the notary, the
/// host operators in the host state's order, [`LEDGER_ELC_MAX_CLOCK_DRIFT`].
pub fn ledger_elc_client_state(trust: HostTrust, latest_height: u64) -> kh_elc::LedgerClientState {
    kh_elc::LedgerClientState {
        trust,
        max_clock_drift: LEDGER_ELC_MAX_CLOCK_DRIFT,
        latest_height,
        frozen: false,
    }
}

/// `Any` of the wire client state and consensus state of a new LCP client (what a relayer puts
/// in `MsgCreateClient`).
pub fn create_client_anys(
    client_state: &wire::ClientState,
    consensus_state: &wire::ConsensusState,
) -> (Any, Any) {
    (
        Any {
            type_url: LCP_CLIENT_STATE_URL.into(),
            value: client_state.encode_to_vec(),
        },
        Any {
            type_url: LCP_CONSENSUS_STATE_URL.into(),
            value: consensus_state.encode_to_vec(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_state() -> wire::ClientState {
        wire::ClientState {
            mrenclave: vec![0x5a; 32],
            key_expiration: 3600,
            frozen: false,
            latest_height: Some(wire::ProtoHeight {
                revision_number: 0,
                revision_height: 7,
            }),
            allowed_quote_statuses: vec!["SW_HARDENING_NEEDED".into()],
            allowed_advisory_ids: vec!["INTEL-SA-00334".into()],
            operators: vec![vec![1; 20], vec![2; 20]],
            operators_nonce: 1,
            operators_threshold_numerator: 1,
            operators_threshold_denominator: 2,
        }
    }

    #[test]
    fn client_states_round_trip_in_wire_and_stored_forms() {
        let w = wire_state();
        let any = Any {
            type_url: LCP_CLIENT_STATE_URL.into(),
            value: w.encode_to_vec(),
        };
        let mut cs = LcpClientState::try_from(any).unwrap();
        assert_eq!(cs.to_wire(), w);
        assert_eq!(cs.state.latest_height, kh_lcp::Height::new(0, 7));
        cs.enclave_keys.insert(
            Address::from([9; 20]),
            RegisteredKey {
                expires_at: 10,
                operator: Some(Address::from([1; 20])),
            },
        );
        let stored: Any = cs.clone().into();
        assert_eq!(stored.type_url, LCP_STORED_CLIENT_STATE_URL);
        assert_eq!(LcpClientState::try_from(stored).unwrap(), cs);
        // Malformed wire states are refused.
        let mut bad = w.clone();
        bad.mrenclave.pop();
        let any = Any {
            type_url: LCP_CLIENT_STATE_URL.into(),
            value: bad.encode_to_vec(),
        };
        assert!(LcpClientState::try_from(any).is_err());
        let mut bad = w;
        bad.operators[1].push(0);
        assert!(LcpClientState::from_wire(&bad).is_err());
    }

    #[test]
    fn consensus_states_bind_their_height_once_read_through_the_host() {
        let cs = LcpConsensusState::new(StateId([3; 32]), 1_700_000_000_000_000_000);
        let any: Any = cs.clone().into();
        assert_eq!(any.type_url, LCP_CONSENSUS_STATE_URL);
        let mut back = LcpConsensusState::try_from(any).unwrap();
        assert_eq!(back, cs);
        // Without its height the root is refused for proofs; with it, it names both.
        assert!(parse_root(back.root()).is_err());
        back.at_height(Height::new(0, 12).unwrap());
        assert_eq!(
            parse_root(back.root()).unwrap(),
            (kh_lcp::Height::new(0, 12), StateId([3; 32]))
        );
        let short = Any {
            type_url: LCP_CONSENSUS_STATE_URL.into(),
            value: wire::ConsensusState {
                state_id: vec![1; 31],
                timestamp: 1,
            }
            .encode_to_vec(),
        };
        assert!(LcpConsensusState::try_from(short).is_err());
    }

    #[test]
    fn a_client_state_not_read_through_the_host_refuses_proofs() {
        let cs = LcpClientState::from_wire(&wire_state()).unwrap();
        let mut cons = LcpConsensusState::new(StateId([3; 32]), 1);
        cons.at_height(Height::new(0, 7).unwrap());
        let err = cs
            .verify_membership_raw(
                &CommitmentPrefix::from_bytes(b"ibc"),
                &CommitmentProofBytes::try_from(vec![1u8; 64]).unwrap(),
                cons.root(),
                PathBytes::from_bytes(b"connections/connection-0"),
                b"v".to_vec(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("not read through the host"),
            "{err}"
        );
    }
}
