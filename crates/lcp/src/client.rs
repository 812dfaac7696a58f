//! The LCP client: the verification state machine a chain runs instead of the counterparty's
//! light client (DESIGN §1, §5), with the rules of lcp-solidity's `LCPClient` so both accept and
//! refuse the same inputs.
//!
//! * **Enclave keys** are registered from an attestation report ([`SignedReport`], IAS format)
//!   that chains to the client's root, carries the pinned MRENCLAVE, an allowed quote status and
//!   advisories, and is not a debug enclave unless development mode is on. A key expires
//!   `key_expiration` seconds after its attestation time. An operator may approve the key with an
//!   EIP-712 signature ([`crate::operator`]); a report bound to an operator needs that operator's
//!   approval. Several keys may be active at once (a new key takes over while the old is valid).
//! * **UpdateState** (a no-op once its post state is stored): signed by active keys (one signature without operators; with operators, one
//!   slot per operator in order, empty slots allowed, `signed × denominator ≥ numerator × n`).
//!   The previous state id must match the stored consensus state at the previous height, except
//!   for the first update (latest height zero), which needs emitted states instead. The
//!   validation context (trusting period, clock drift) is evaluated at the given time.
//! * **VerifyMembership / non-membership**: a [`CommitmentProofs`] whose message names the same
//!   prefix, path, `keccak256(value)` (zero for absence), height, and the stored state id.
//! * **Misbehaviour** (signed like an update, previous states matching) freezes the client;
//!   a frozen client accepts nothing.
//!
//! The whole client ([`LcpClient`]) is serialisable so a host (the ledger's IBC module) can
//! store it. Time is passed in as Unix seconds; no clock is read here.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, keccak256};
use serde::{Deserialize, Serialize};

use crate::attestation::{AttestationError, AttestationPolicy, RootCa, SignedReport};
use crate::message::{
    CommitmentProofs, Height, MessageError, ProxyMessage, StateId, recover_prehash,
};
use crate::operator::recover_register_operator;

/// Why the client refused something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LcpClientError {
    /// The client is frozen (misbehaviour was proven).
    #[error("the client is frozen")]
    Frozen,
    /// The initial client state is not acceptable.
    #[error("invalid client state: {0}")]
    InvalidClientState(&'static str),
    /// The attestation report does not verify.
    #[error("attestation: {0}")]
    Attestation(#[from] AttestationError),
    /// A message or signature does not decode.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// The report is bound to an operator that did not approve it.
    #[error("the report is bound to operator {expected}, approved by {actual}")]
    AvrUnexpectedOperator {
        /// The approving operator (zero if none).
        actual: Address,
        /// The operator in the report.
        expected: Address,
    },
    /// The approving operator is not one of the client's operators.
    #[error("operator {0} is not an operator of this client")]
    UnknownOperator(Address),
    /// The report's key would already be expired.
    #[error("the enclave key expired at {expires_at} (now {now})")]
    AvrAlreadyExpired {
        /// Expiry (Unix seconds).
        expires_at: u64,
        /// Now (Unix seconds).
        now: u64,
    },
    /// The key is registered already with another expiry or operator.
    #[error("enclave key {0} is registered already with other attributes")]
    KeyConflict(Address),
    /// A signature's key is not registered.
    #[error("enclave key {0} is not registered")]
    UnknownKey(Address),
    /// A signature's key has expired.
    #[error("enclave key {key} expired at {expires_at} (now {now})")]
    KeyExpired {
        /// The key.
        key: Address,
        /// Expiry (Unix seconds).
        expires_at: u64,
        /// Now (Unix seconds).
        now: u64,
    },
    /// A key signed in another operator's slot.
    #[error("enclave key of operator {actual} signed in the slot of operator {expected}")]
    EnclaveKeyUnexpectedOperator {
        /// The operator the key was registered by (zero if none).
        actual: Address,
        /// The operator of the slot.
        expected: Address,
    },
    /// Wrong number of signature slots.
    #[error("{actual} signatures, expected {expected}")]
    SignatureCount {
        /// Expected.
        expected: usize,
        /// Given.
        actual: usize,
    },
    /// Fewer operators signed than the threshold needs.
    #[error("only {0} operator signatures: below the threshold")]
    OperatorSignaturesInsufficient(usize),
    /// The message is not of the kind the call needs.
    #[error("unexpected proxy message type {0}")]
    UnexpectedMessageType(u16),
    /// The first update emitted no state.
    #[error("the first update must emit states")]
    EmittedStatesMustNotBeEmpty,
    /// No consensus state at a height the message refers to.
    #[error("no consensus state at {0:?}")]
    MissingConsensusState(Height),
    /// The previous (or referenced) state id is not the stored one.
    #[error("state id at {height:?} does not match the stored one")]
    UnexpectedStateId {
        /// The height.
        height: Height,
    },
    /// A different state is stored at the update's post height.
    #[error("a different state is stored at {0:?}")]
    ConflictingState(Height),
    /// The proof's message does not match the call's argument.
    #[error("the proof's {0} does not match")]
    ProofMismatch(&'static str),
}

/// The client's parameters and progress (lcp-solidity's `ClientState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LcpClientState {
    /// The enclave measurement keys must be attested for.
    pub mrenclave: [u8; 32],
    /// Key lifetime from its attestation time, seconds.
    pub key_expiration: u64,
    /// Frozen by misbehaviour.
    pub frozen: bool,
    /// The greatest height updated to (zero before the first update).
    pub latest_height: Height,
    /// Quote statuses accepted besides `OK`.
    pub allowed_quote_statuses: BTreeSet<String>,
    /// Advisory ids accepted for a non-`OK` status.
    pub allowed_advisory_ids: BTreeSet<String>,
    /// Accept debug enclaves (development mode only).
    pub development_mode: bool,
    /// Operators, in signature-slot order; empty for a permissionless client.
    pub operators: Vec<Address>,
    /// Operator-set nonce.
    pub operators_nonce: u64,
    /// Threshold numerator.
    pub operators_threshold_numerator: u64,
    /// Threshold denominator.
    pub operators_threshold_denominator: u64,
}

impl LcpClientState {
    /// A permissionless client state for `mrenclave` (latest height zero, OK status only).
    pub fn new(mrenclave: [u8; 32], key_expiration: u64) -> Self {
        LcpClientState {
            mrenclave,
            key_expiration,
            frozen: false,
            latest_height: Height::default(),
            allowed_quote_statuses: BTreeSet::new(),
            allowed_advisory_ids: BTreeSet::new(),
            development_mode: false,
            operators: Vec::new(),
            operators_nonce: 0,
            operators_threshold_numerator: 0,
            operators_threshold_denominator: 0,
        }
    }

    fn policy(&self) -> AttestationPolicy {
        AttestationPolicy {
            mrenclave: Some(self.mrenclave),
            allowed_quote_statuses: self.allowed_quote_statuses.clone(),
            allowed_advisory_ids: self.allowed_advisory_ids.clone(),
            allow_debug: self.development_mode,
            key_expiration: None,
        }
    }
}

/// A consensus state: the state id and time (Unix seconds) an update established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LcpConsensusState {
    /// The state id.
    pub state_id: StateId,
    /// The state's timestamp, seconds.
    pub timestamp: u64,
}

/// A registered enclave key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredKey {
    /// Expiry, Unix seconds (the key is active while `now < expires_at`).
    pub expires_at: u64,
    /// The operator that approved it, if any.
    pub operator: Option<Address>,
}

/// A registration request: a signed report and an optional operator approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterEnclaveKeyMessage {
    /// The attestation report.
    pub report: SignedReport,
    /// The operator's 65-byte EIP-712 signature, if any.
    pub operator_signature: Option<Vec<u8>>,
}

/// An update: a proxy message (UpdateState or Misbehaviour) and its signature slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateClientMessage {
    /// The encoded proxy message.
    pub proxy_message: Vec<u8>,
    /// The signatures (one per operator slot, empty for a missing one).
    pub signatures: Vec<Vec<u8>>,
}

/// What an accepted update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateResult {
    /// A consensus state was stored (or re-stored identically) at these heights.
    Updated(Vec<Height>),
    /// Misbehaviour was proven: the client is now frozen.
    Frozen,
}

/// The LCP client: its state, consensus states and registered keys, and the root CA its
/// reports must chain to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LcpClient {
    /// The attestation root (DER).
    pub root_ca_der: Vec<u8>,
    /// The client state.
    pub state: LcpClientState,
    /// Consensus states by height.
    #[serde(with = "pairs")]
    pub consensus_states: BTreeMap<Height, LcpConsensusState>,
    /// Registered enclave keys.
    #[serde(with = "pairs")]
    pub enclave_keys: BTreeMap<Address, RegisteredKey>,
}

impl LcpClient {
    /// Creates a client: the latest height must be zero (no consensus state before the first
    /// update), operators distinct and ordered, and the threshold a fraction in (0, 1].
    pub fn new(root_ca_der: Vec<u8>, state: LcpClientState) -> Result<Self, LcpClientError> {
        RootCa::from_der(&root_ca_der)?;
        if !state.latest_height.is_zero() {
            return Err(LcpClientError::InvalidClientState(
                "latest height must be zero",
            ));
        }
        if state.frozen {
            return Err(LcpClientError::InvalidClientState("frozen"));
        }
        if state.key_expiration == 0 {
            return Err(LcpClientError::InvalidClientState("key expiration is zero"));
        }
        let (num, den) = (
            state.operators_threshold_numerator,
            state.operators_threshold_denominator,
        );
        if state.operators.is_empty() {
            if num != 0 || den != 0 {
                return Err(LcpClientError::InvalidClientState(
                    "a threshold without operators",
                ));
            }
        } else {
            if num == 0 || den == 0 || num > den {
                return Err(LcpClientError::InvalidClientState(
                    "the threshold must be in (0, 1]",
                ));
            }
            if state.operators.windows(2).any(|w| w[0] >= w[1])
                || state.operators.contains(&Address::ZERO)
            {
                return Err(LcpClientError::InvalidClientState(
                    "operators must be non-zero and strictly ascending",
                ));
            }
        }
        Ok(LcpClient {
            root_ca_der,
            state,
            consensus_states: BTreeMap::new(),
            enclave_keys: BTreeMap::new(),
        })
    }

    /// Registers the key a report attests (at Unix time `now`) and returns it. Registering the
    /// same key again with the same attributes changes nothing.
    pub fn register_enclave_key(
        &mut self,
        msg: &RegisterEnclaveKeyMessage,
        now: u64,
    ) -> Result<Address, LcpClientError> {
        self.not_frozen()?;
        let root = RootCa::from_der(&self.root_ca_der)?;
        let verified = msg.report.verify(&root, &self.state.policy(), now)?;
        let approver = match &msg.operator_signature {
            Some(sig) => Some(recover_register_operator(&msg.report.avr, sig)?),
            None => None,
        };
        if let Some(bound) = verified.report_data.operator
            && approver != Some(bound)
        {
            return Err(LcpClientError::AvrUnexpectedOperator {
                actual: approver.unwrap_or_default(),
                expected: bound,
            });
        }
        if let Some(op) = approver
            && !self.state.operators.is_empty()
            && !self.state.operators.contains(&op)
        {
            return Err(LcpClientError::UnknownOperator(op));
        }
        let expires_at = verified
            .attestation_time
            .saturating_add(self.state.key_expiration);
        if expires_at <= now {
            return Err(LcpClientError::AvrAlreadyExpired { expires_at, now });
        }
        let key = verified.report_data.enclave_key;
        let entry = RegisteredKey {
            expires_at,
            operator: approver,
        };
        match self.enclave_keys.get(&key) {
            Some(existing) if *existing != entry => Err(LcpClientError::KeyConflict(key)),
            Some(_) => Ok(key),
            None => {
                tracing::debug!(%key, expires_at, "enclave key registered");
                self.enclave_keys.insert(key, entry);
                Ok(key)
            }
        }
    }

    /// Applies an UpdateState or Misbehaviour message at Unix time `now`.
    pub fn update_client(
        &mut self,
        msg: &UpdateClientMessage,
        now: u64,
    ) -> Result<UpdateResult, LcpClientError> {
        self.not_frozen()?;
        let now_ns = u128::from(now) * 1_000_000_000;
        match ProxyMessage::decode(&msg.proxy_message)? {
            ProxyMessage::UpdateState(m) => {
                if let Some(existing) = self.consensus_states.get(&m.post_height)
                    && existing.state_id == m.post_state_id
                {
                    // Already applied (a relayer retry): nothing changes once it is vouched for.
                    self.check_signatures(&msg.proxy_message, &msg.signatures, now)?;
                    return Ok(UpdateResult::Updated(vec![m.post_height]));
                }
                if self.state.latest_height.is_zero() {
                    if m.emitted_states.is_empty() {
                        return Err(LcpClientError::EmittedStatesMustNotBeEmpty);
                    }
                } else {
                    let (prev_height, prev_state_id) = m
                        .prev
                        .ok_or(LcpClientError::MissingConsensusState(Height::default()))?;
                    self.check_state(prev_height, prev_state_id)?;
                }
                m.context.validate(now_ns)?;
                self.check_signatures(&msg.proxy_message, &msg.signatures, now)?;
                let timestamp = u64::try_from(m.timestamp_ns / 1_000_000_000).unwrap_or(u64::MAX);
                let new = LcpConsensusState {
                    state_id: m.post_state_id,
                    timestamp,
                };
                if let Some(existing) = self.consensus_states.get(&m.post_height)
                    && existing.state_id != new.state_id
                {
                    return Err(LcpClientError::ConflictingState(m.post_height));
                }
                self.consensus_states.insert(m.post_height, new);
                if m.post_height > self.state.latest_height {
                    self.state.latest_height = m.post_height;
                }
                Ok(UpdateResult::Updated(vec![m.post_height]))
            }
            ProxyMessage::Misbehaviour(m) => {
                if m.prev_states.is_empty() {
                    return Err(LcpClientError::MissingConsensusState(Height::default()));
                }
                for p in &m.prev_states {
                    self.check_state(p.height, p.state_id)?;
                }
                m.context.validate(now_ns)?;
                self.check_signatures(&msg.proxy_message, &msg.signatures, now)?;
                tracing::warn!("misbehaviour proven: LCP client frozen");
                self.state.frozen = true;
                Ok(UpdateResult::Frozen)
            }
            other => Err(LcpClientError::UnexpectedMessageType(other.message_type())),
        }
    }

    /// Verifies that `path` (under `prefix`) holds `value` at `height`, from an encoded
    /// [`CommitmentProofs`].
    pub fn verify_membership(
        &self,
        height: Height,
        proof: &[u8],
        prefix: &[u8],
        path: &[u8],
        value: &[u8],
        now: u64,
    ) -> Result<(), LcpClientError> {
        self.verify_state(height, proof, prefix, path, Some(keccak256(value).0), now)
    }

    /// Verifies that `path` (under `prefix`) holds no value at `height`.
    pub fn verify_non_membership(
        &self,
        height: Height,
        proof: &[u8],
        prefix: &[u8],
        path: &[u8],
        now: u64,
    ) -> Result<(), LcpClientError> {
        self.verify_state(height, proof, prefix, path, None, now)
    }

    fn verify_state(
        &self,
        height: Height,
        proof: &[u8],
        prefix: &[u8],
        path: &[u8],
        value: Option<[u8; 32]>,
        now: u64,
    ) -> Result<(), LcpClientError> {
        self.not_frozen()?;
        let proofs = CommitmentProofs::decode(proof)?;
        let m = match ProxyMessage::decode(&proofs.message)? {
            ProxyMessage::VerifyMembership(m) => m,
            other => return Err(LcpClientError::UnexpectedMessageType(other.message_type())),
        };
        if m.height != height {
            return Err(LcpClientError::ProofMismatch("height"));
        }
        if m.prefix != prefix {
            return Err(LcpClientError::ProofMismatch("prefix"));
        }
        if m.path != path {
            return Err(LcpClientError::ProofMismatch("path"));
        }
        if m.value != value {
            return Err(LcpClientError::ProofMismatch("value"));
        }
        self.check_state(m.height, m.state_id)?;
        self.check_signatures(&proofs.message, &proofs.signatures, now)
    }

    /// The keys active at `now`.
    pub fn active_keys(&self, now: u64) -> Vec<Address> {
        self.enclave_keys
            .iter()
            .filter(|(_, k)| now < k.expires_at)
            .map(|(a, _)| *a)
            .collect()
    }

    fn not_frozen(&self) -> Result<(), LcpClientError> {
        if self.state.frozen {
            return Err(LcpClientError::Frozen);
        }
        Ok(())
    }

    fn check_state(&self, height: Height, state_id: StateId) -> Result<(), LcpClientError> {
        let stored = self
            .consensus_states
            .get(&height)
            .ok_or(LcpClientError::MissingConsensusState(height))?;
        if stored.state_id != state_id {
            return Err(LcpClientError::UnexpectedStateId { height });
        }
        Ok(())
    }

    fn active_key(&self, key: Address, now: u64) -> Result<RegisteredKey, LcpClientError> {
        let k = self
            .enclave_keys
            .get(&key)
            .ok_or(LcpClientError::UnknownKey(key))?;
        if now >= k.expires_at {
            return Err(LcpClientError::KeyExpired {
                key,
                expires_at: k.expires_at,
                now,
            });
        }
        Ok(*k)
    }

    fn check_signatures(
        &self,
        message: &[u8],
        signatures: &[Vec<u8>],
        now: u64,
    ) -> Result<(), LcpClientError> {
        let digest = keccak256(message);
        let operators = &self.state.operators;
        if operators.is_empty() {
            let [sig] = signatures else {
                return Err(LcpClientError::SignatureCount {
                    expected: 1,
                    actual: signatures.len(),
                });
            };
            self.active_key(recover_prehash(digest, sig)?, now)?;
            return Ok(());
        }
        if signatures.len() != operators.len() {
            return Err(LcpClientError::SignatureCount {
                expected: operators.len(),
                actual: signatures.len(),
            });
        }
        let mut signed = 0usize;
        for (sig, op) in signatures.iter().zip(operators) {
            if sig.is_empty() {
                continue;
            }
            let key = self.active_key(recover_prehash(digest, sig)?, now)?;
            if key.operator != Some(*op) {
                return Err(LcpClientError::EnclaveKeyUnexpectedOperator {
                    actual: key.operator.unwrap_or_default(),
                    expected: *op,
                });
            }
            signed += 1;
        }
        let lhs = signed as u128 * u128::from(self.state.operators_threshold_denominator);
        let rhs = u128::from(self.state.operators_threshold_numerator) * operators.len() as u128;
        if lhs < rhs {
            return Err(LcpClientError::OperatorSignaturesInsufficient(signed));
        }
        Ok(())
    }
}

/// Maps serialised as lists of pairs (JSON object keys must be strings).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
