//! LCP proxy messages (DESIGN §5), byte-compatible with Datachain LCP and lcp-solidity.
//!
//! `ProxyMessage = abi.encode((bytes32 header, bytes message))`; header bytes 0–1 are the
//! version (1), bytes 2–3 the type (1 UpdateState, 2 VerifyMembership, 3 Misbehaviour), the
//! rest zero. An enclave key signs `keccak256(ProxyMessage)` with secp256k1 (65 bytes
//! `r‖s‖v`); its identity is its Ethereum address. Decoding is strict: any encoding that is
//! not exactly what [`ProxyMessage::encode`] produces is refused, so one message has one byte
//! string (and one hash to sign).

use alloy_primitives::{Address, B256, FixedBytes, keccak256};
use alloy_sol_types::SolValue as _;
use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

/// The only proxy message version.
pub const MESSAGE_VERSION: u16 = 1;
/// Message type of [`UpdateStateMessage`].
pub const TYPE_UPDATE_STATE: u16 = 1;
/// Message type of [`VerifyMembershipMessage`] ("State" in LCP).
pub const TYPE_VERIFY_MEMBERSHIP: u16 = 2;
/// Message type of [`MisbehaviourMessage`].
pub const TYPE_MISBEHAVIOUR: u16 = 3;
/// Validation context type: none.
pub const CONTEXT_EMPTY: u16 = 0;
/// Validation context type: [`TrustingPeriodContext`].
pub const CONTEXT_TRUSTING_PERIOD: u16 = 1;
/// Largest proxy message accepted for decoding, in bytes.
pub const MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;

#[allow(missing_docs, unreachable_pub)]
mod abi {
    alloy_sol_types::sol! {
        struct AbiHeight { uint64 revision_number; uint64 revision_height; }
        struct AbiHeaderedMessage { bytes32 header; bytes message; }
        struct AbiEmittedState { AbiHeight height; bytes state; }
        struct AbiUpdateState {
            AbiHeight prev_height;
            bytes32 prev_state_id;
            AbiHeight post_height;
            bytes32 post_state_id;
            uint128 timestamp;
            bytes context;
            AbiEmittedState[] emitted_states;
        }
        struct AbiVerifyMembership {
            bytes prefix;
            bytes path;
            bytes32 value;
            AbiHeight height;
            bytes32 state_id;
        }
        struct AbiPrevState { AbiHeight height; bytes32 state_id; }
        struct AbiMisbehaviour { AbiPrevState[] prev_states; bytes context; bytes client_message; }
        struct AbiValidationContext { bytes32 header; bytes context; }
        struct AbiCommitmentProofs { bytes message; bytes[] signatures; }
    }
}

/// Why a message or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The input is larger than [`MAX_MESSAGE_LEN`].
    #[error("message is {0} bytes, more than the limit")]
    TooLarge(usize),
    /// The bytes are not a valid ABI encoding of the expected type.
    #[error("{what}: not a valid ABI encoding: {reason}")]
    Abi {
        /// Which structure.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// The bytes decode but are not the canonical encoding.
    #[error("{0}: not the canonical ABI encoding")]
    NonCanonical(&'static str),
    /// The message header has another version.
    #[error("proxy message version {0} is not supported (only {MESSAGE_VERSION})")]
    UnsupportedVersion(u16),
    /// The message type is unknown.
    #[error("unknown proxy message type {0}")]
    UnknownType(u16),
    /// The context type is unknown.
    #[error("unknown validation context type {0}")]
    UnknownContextType(u16),
    /// Reserved header bytes are not zero.
    #[error("{0} header: reserved bytes are not zero")]
    ReservedNotZero(&'static str),
    /// A trusting-period context whose body is not 64 bytes.
    #[error("trusting-period context is {0} bytes, expected 64")]
    TrustingPeriodContextLength(usize),
    /// Exactly one of the previous height and state id is zero.
    #[error("update state: previous height and previous state id must be both set or both zero")]
    InconsistentPrev,
    /// The trusted state is outside the trusting period.
    #[error(
        "the trusted state (time {trusted_ns} ns, period {period_ns} ns) is expired at {now_ns} ns"
    )]
    OutOfTrustingPeriod {
        /// Trusted state time (ns).
        trusted_ns: u128,
        /// Trusting period (ns).
        period_ns: u128,
        /// Evaluation time (ns).
        now_ns: u128,
    },
    /// The untrusted header is from the future (beyond the clock drift).
    #[error("the header time {header_ns} ns is in the future at {now_ns} ns (drift {drift_ns} ns)")]
    HeaderFromFuture {
        /// Untrusted header time (ns).
        header_ns: u128,
        /// Clock drift (ns).
        drift_ns: u128,
        /// Evaluation time (ns).
        now_ns: u128,
    },
    /// A signature is not 65 bytes `r‖s‖v`.
    #[error("signature is {0} bytes, expected 65")]
    SignatureLength(usize),
    /// A signature's v is not 0, 1, 27 or 28.
    #[error("signature v = {0} is not a recovery id")]
    BadRecoveryId(u8),
    /// A signature's s is in the upper half of the group order (malleable).
    #[error("signature s is not normalised (high s)")]
    HighS,
    /// The signature does not recover a public key.
    #[error("signature does not recover a key: {0}")]
    Unrecoverable(String),
}

/// An IBC height.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Height {
    /// Revision number.
    pub revision_number: u64,
    /// Height within the revision.
    pub revision_height: u64,
}

impl Height {
    /// A height.
    pub const fn new(revision_number: u64, revision_height: u64) -> Self {
        Height {
            revision_number,
            revision_height,
        }
    }

    /// Whether both parts are zero (LCP's "no height").
    pub const fn is_zero(&self) -> bool {
        self.revision_number == 0 && self.revision_height == 0
    }

    fn to_abi(self) -> abi::AbiHeight {
        abi::AbiHeight {
            revision_number: self.revision_number,
            revision_height: self.revision_height,
        }
    }

    fn from_abi(h: &abi::AbiHeight) -> Self {
        Height::new(h.revision_number, h.revision_height)
    }
}

/// A state id: `sha256(proto(Any client_state) ‖ proto(Any consensus_state))`, computed by a
/// light client after zeroing the client state's latest height.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct StateId(pub [u8; 32]);

impl StateId {
    /// The state id of a (canonicalised) client state and a consensus state. The caller must
    /// pass the client state with its latest height zeroed: that is client-specific.
    pub fn from_any(client_state: &prost_types::Any, consensus_state: &prost_types::Any) -> Self {
        let mut h = Sha256::new();
        h.update(client_state.encode_to_vec());
        h.update(consensus_state.encode_to_vec());
        StateId(h.finalize().into())
    }

    /// Whether all bytes are zero (LCP's "no state").
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }
}

/// A trusting-period validation context (all values in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustingPeriodContext {
    /// Time of the untrusted header the update applies.
    pub untrusted_header_timestamp_ns: u128,
    /// Time of the trusted state the update starts from.
    pub trusted_state_timestamp_ns: u128,
    /// Trusting period.
    pub trusting_period_ns: u128,
    /// Allowed clock drift.
    pub clock_drift_ns: u128,
}

impl TrustingPeriodContext {
    /// Checks the context at `now_ns`: the trusted state must be within its trusting period
    /// and the header must not be from the future beyond the clock drift.
    pub fn validate(&self, now_ns: u128) -> Result<(), MessageError> {
        let expiry = self
            .trusted_state_timestamp_ns
            .saturating_add(self.trusting_period_ns);
        if now_ns >= expiry {
            return Err(MessageError::OutOfTrustingPeriod {
                trusted_ns: self.trusted_state_timestamp_ns,
                period_ns: self.trusting_period_ns,
                now_ns,
            });
        }
        if now_ns.saturating_add(self.clock_drift_ns) <= self.untrusted_header_timestamp_ns {
            return Err(MessageError::HeaderFromFuture {
                header_ns: self.untrusted_header_timestamp_ns,
                drift_ns: self.clock_drift_ns,
                now_ns,
            });
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.untrusted_header_timestamp_ns.to_be_bytes());
        out.extend_from_slice(&self.trusted_state_timestamp_ns.to_be_bytes());
        out.extend_from_slice(&self.trusting_period_ns.to_be_bytes());
        out.extend_from_slice(&self.clock_drift_ns.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() != 64 {
            return Err(MessageError::TrustingPeriodContextLength(bytes.len()));
        }
        let word = |i: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes[i * 16..i * 16 + 16]);
            u128::from_be_bytes(b)
        };
        Ok(TrustingPeriodContext {
            untrusted_header_timestamp_ns: word(0),
            trusted_state_timestamp_ns: word(1),
            trusting_period_ns: word(2),
            clock_drift_ns: word(3),
        })
    }
}

/// A validation context: `abi.encode((bytes32 header, bytes context))`, header bytes 0–1 the
/// context type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationContext {
    /// No condition.
    Empty,
    /// Valid while the trusted state is within its trusting period.
    TrustingPeriod(TrustingPeriodContext),
}

impl ValidationContext {
    /// Checks the context at `now_ns`.
    pub fn validate(&self, now_ns: u128) -> Result<(), MessageError> {
        match self {
            ValidationContext::Empty => Ok(()),
            ValidationContext::TrustingPeriod(c) => c.validate(now_ns),
        }
    }

    /// The ABI encoding.
    pub fn encode(&self) -> Vec<u8> {
        let (ty, body) = match self {
            ValidationContext::Empty => (CONTEXT_EMPTY, Vec::new()),
            ValidationContext::TrustingPeriod(c) => (CONTEXT_TRUSTING_PERIOD, c.encode()),
        };
        abi::AbiValidationContext {
            header: type_header(ty, None),
            context: body.into(),
        }
        .abi_encode()
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let vc: abi::AbiValidationContext = decode_canonical(bytes, "validation context")?;
        let header = vc.header.0;
        if header[2..].iter().any(|b| *b != 0) {
            return Err(MessageError::ReservedNotZero("validation context"));
        }
        match u16::from_be_bytes([header[0], header[1]]) {
            CONTEXT_EMPTY if vc.context.is_empty() => Ok(ValidationContext::Empty),
            CONTEXT_EMPTY => Err(MessageError::NonCanonical("empty validation context")),
            CONTEXT_TRUSTING_PERIOD => Ok(ValidationContext::TrustingPeriod(
                TrustingPeriodContext::decode(&vc.context)?,
            )),
            other => Err(MessageError::UnknownContextType(other)),
        }
    }
}

/// A state the update emits (`state` is a protobuf-encoded `Any` client state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedState {
    /// Its height.
    pub height: Height,
    /// The encoded client state.
    pub state: Vec<u8>,
}

/// UpdateState: the ELC moved from `prev` to `post`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStateMessage {
    /// Previous height and state id (`None` for the first state of a client).
    pub prev: Option<(Height, StateId)>,
    /// New height.
    pub post_height: Height,
    /// New state id.
    pub post_state_id: StateId,
    /// Time of the new consensus state, nanoseconds.
    pub timestamp_ns: u128,
    /// The condition under which the update holds.
    pub context: ValidationContext,
    /// States emitted for the client (e.g. on initialisation).
    pub emitted_states: Vec<EmittedState>,
}

/// VerifyMembership (LCP "State"): `path` under `prefix` holds a value whose keccak256 is
/// `value` (or is absent when `value` is `None`) at `height`, in state `state_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyMembershipMessage {
    /// Commitment prefix.
    pub prefix: Vec<u8>,
    /// ICS-24 path.
    pub path: Vec<u8>,
    /// keccak256 of the value, `None` for non-membership.
    pub value: Option<[u8; 32]>,
    /// Proof height.
    pub height: Height,
    /// State id at that height.
    pub state_id: StateId,
}

impl VerifyMembershipMessage {
    /// A membership statement for the raw `value` (hashed here with keccak256).
    pub fn membership(
        prefix: Vec<u8>,
        path: Vec<u8>,
        value: &[u8],
        height: Height,
        state_id: StateId,
    ) -> Self {
        VerifyMembershipMessage {
            prefix,
            path,
            value: Some(keccak256(value).0),
            height,
            state_id,
        }
    }
}

/// A previous state a misbehaviour refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrevState {
    /// Height.
    pub height: Height,
    /// State id.
    pub state_id: StateId,
}

/// Misbehaviour: the ELC found `client_message` to prove misbehaviour from `prev_states`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MisbehaviourMessage {
    /// The trusted states the evidence was checked against.
    pub prev_states: Vec<PrevState>,
    /// The condition under which the finding holds.
    pub context: ValidationContext,
    /// The evidence (client-specific encoding).
    pub client_message: Vec<u8>,
}

/// A proxy message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyMessage {
    /// UpdateState.
    UpdateState(UpdateStateMessage),
    /// VerifyMembership.
    VerifyMembership(VerifyMembershipMessage),
    /// Misbehaviour.
    Misbehaviour(MisbehaviourMessage),
}

fn type_header(ty: u16, version: Option<u16>) -> FixedBytes<32> {
    let mut h = [0u8; 32];
    match version {
        Some(v) => {
            h[0..2].copy_from_slice(&v.to_be_bytes());
            h[2..4].copy_from_slice(&ty.to_be_bytes());
        }
        None => h[0..2].copy_from_slice(&ty.to_be_bytes()),
    }
    FixedBytes(h)
}

fn decode_canonical<
    T: alloy_sol_types::SolValue + From<<T::SolType as alloy_sol_types::SolType>::RustType>,
>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, MessageError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(MessageError::TooLarge(bytes.len()));
    }
    let value = T::abi_decode(bytes).map_err(|e| MessageError::Abi {
        what,
        reason: e.to_string(),
    })?;
    if value.abi_encode() != bytes {
        return Err(MessageError::NonCanonical(what));
    }
    Ok(value)
}

fn state_id_of(b: FixedBytes<32>) -> StateId {
    StateId(b.0)
}

impl ProxyMessage {
    /// The message type of this message.
    pub fn message_type(&self) -> u16 {
        match self {
            ProxyMessage::UpdateState(_) => TYPE_UPDATE_STATE,
            ProxyMessage::VerifyMembership(_) => TYPE_VERIFY_MEMBERSHIP,
            ProxyMessage::Misbehaviour(_) => TYPE_MISBEHAVIOUR,
        }
    }

    /// The ABI encoding (the bytes an enclave key signs the keccak256 of).
    pub fn encode(&self) -> Vec<u8> {
        let inner = match self {
            ProxyMessage::UpdateState(m) => {
                let (prev_height, prev_state_id) = m.prev.unwrap_or_default();
                abi::AbiUpdateState {
                    prev_height: prev_height.to_abi(),
                    prev_state_id: FixedBytes(prev_state_id.0),
                    post_height: m.post_height.to_abi(),
                    post_state_id: FixedBytes(m.post_state_id.0),
                    timestamp: m.timestamp_ns,
                    context: m.context.encode().into(),
                    emitted_states: m
                        .emitted_states
                        .iter()
                        .map(|e| abi::AbiEmittedState {
                            height: e.height.to_abi(),
                            state: e.state.clone().into(),
                        })
                        .collect(),
                }
                .abi_encode()
            }
            ProxyMessage::VerifyMembership(m) => abi::AbiVerifyMembership {
                prefix: m.prefix.clone().into(),
                path: m.path.clone().into(),
                value: FixedBytes(m.value.unwrap_or_default()),
                height: m.height.to_abi(),
                state_id: FixedBytes(m.state_id.0),
            }
            .abi_encode(),
            ProxyMessage::Misbehaviour(m) => abi::AbiMisbehaviour {
                prev_states: m
                    .prev_states
                    .iter()
                    .map(|p| abi::AbiPrevState {
                        height: p.height.to_abi(),
                        state_id: FixedBytes(p.state_id.0),
                    })
                    .collect(),
                context: m.context.encode().into(),
                client_message: m.client_message.clone().into(),
            }
            .abi_encode(),
        };
        abi::AbiHeaderedMessage {
            header: type_header(self.message_type(), Some(MESSAGE_VERSION)),
            message: inner.into(),
        }
        .abi_encode()
    }

    /// keccak256 of the encoding: what an enclave key signs.
    pub fn signing_hash(&self) -> B256 {
        keccak256(self.encode())
    }

    /// Strict decoding of a proxy message.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let hm: abi::AbiHeaderedMessage = decode_canonical(bytes, "proxy message")?;
        let header = hm.header.0;
        let version = u16::from_be_bytes([header[0], header[1]]);
        let ty = u16::from_be_bytes([header[2], header[3]]);
        if version != MESSAGE_VERSION {
            return Err(MessageError::UnsupportedVersion(version));
        }
        if header[4..].iter().any(|b| *b != 0) {
            return Err(MessageError::ReservedNotZero("proxy message"));
        }
        match ty {
            TYPE_UPDATE_STATE => {
                let m: abi::AbiUpdateState = decode_canonical(&hm.message, "update state")?;
                let prev_height = Height::from_abi(&m.prev_height);
                let prev_state_id = state_id_of(m.prev_state_id);
                let prev = match (prev_height.is_zero(), prev_state_id.is_zero()) {
                    (true, true) => None,
                    (false, false) => Some((prev_height, prev_state_id)),
                    _ => return Err(MessageError::InconsistentPrev),
                };
                Ok(ProxyMessage::UpdateState(UpdateStateMessage {
                    prev,
                    post_height: Height::from_abi(&m.post_height),
                    post_state_id: state_id_of(m.post_state_id),
                    timestamp_ns: m.timestamp,
                    context: ValidationContext::decode(&m.context)?,
                    emitted_states: m
                        .emitted_states
                        .iter()
                        .map(|e| EmittedState {
                            height: Height::from_abi(&e.height),
                            state: e.state.to_vec(),
                        })
                        .collect(),
                }))
            }
            TYPE_VERIFY_MEMBERSHIP => {
                let m: abi::AbiVerifyMembership =
                    decode_canonical(&hm.message, "verify membership")?;
                Ok(ProxyMessage::VerifyMembership(VerifyMembershipMessage {
                    prefix: m.prefix.to_vec(),
                    path: m.path.to_vec(),
                    value: (m.value.0 != [0u8; 32]).then_some(m.value.0),
                    height: Height::from_abi(&m.height),
                    state_id: state_id_of(m.state_id),
                }))
            }
            TYPE_MISBEHAVIOUR => {
                let m: abi::AbiMisbehaviour = decode_canonical(&hm.message, "misbehaviour")?;
                Ok(ProxyMessage::Misbehaviour(MisbehaviourMessage {
                    prev_states: m
                        .prev_states
                        .iter()
                        .map(|p| PrevState {
                            height: Height::from_abi(&p.height),
                            state_id: state_id_of(p.state_id),
                        })
                        .collect(),
                    context: ValidationContext::decode(&m.context)?,
                    client_message: m.client_message.to_vec(),
                }))
            }
            other => Err(MessageError::UnknownType(other)),
        }
    }
}

/// `abi.encode((bytes message, bytes[] signatures))`: a proxy message and the signatures of
/// the enclave keys that vouch for it (one per key of an operator set, possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentProofs {
    /// The encoded proxy message.
    pub message: Vec<u8>,
    /// 65-byte signatures (an empty entry for a key that did not sign).
    pub signatures: Vec<Vec<u8>>,
}

impl CommitmentProofs {
    /// The ABI encoding.
    pub fn encode(&self) -> Vec<u8> {
        abi::AbiCommitmentProofs {
            message: self.message.clone().into(),
            signatures: self.signatures.iter().map(|s| s.clone().into()).collect(),
        }
        .abi_encode()
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let p: abi::AbiCommitmentProofs = decode_canonical(bytes, "commitment proofs")?;
        Ok(CommitmentProofs {
            message: p.message.to_vec(),
            signatures: p.signatures.iter().map(|s| s.to_vec()).collect(),
        })
    }
}

/// The Ethereum address of a secp256k1 public key.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    Address::from_slice(&keccak256(&point.as_bytes()[1..])[12..])
}

/// The address that signed `keccak256(message)` with the 65-byte `r‖s‖v` `signature`
/// (v ∈ {0, 1, 27, 28}; high-s signatures are refused).
pub fn recover_signer(message: &[u8], signature: &[u8]) -> Result<Address, MessageError> {
    recover_prehash(keccak256(message), signature)
}

/// The address that signed the 32-byte `digest` with the 65-byte `r‖s‖v` `signature`
/// (v ∈ {0, 1, 27, 28}; high-s signatures are refused).
pub fn recover_prehash(digest: B256, signature: &[u8]) -> Result<Address, MessageError> {
    let sig: &[u8; 65] = signature
        .try_into()
        .map_err(|_| MessageError::SignatureLength(signature.len()))?;
    let v = match sig[64] {
        0 | 27 => 0u8,
        1 | 28 => 1u8,
        other => return Err(MessageError::BadRecoveryId(other)),
    };
    let rs = Signature::from_slice(&sig[..64])
        .map_err(|e| MessageError::Unrecoverable(e.to_string()))?;
    if rs.normalize_s().is_some() {
        return Err(MessageError::HighS);
    }
    let recid = RecoveryId::from_byte(v).ok_or(MessageError::BadRecoveryId(sig[64]))?;
    let key = VerifyingKey::recover_from_prehash(digest.as_slice(), &rs, recid)
        .map_err(|e| MessageError::Unrecoverable(e.to_string()))?;
    Ok(address_of(&key))
}

/// An enclave key: a secp256k1 key whose identity is its Ethereum address.
pub struct EnclaveKey {
    key: SigningKey,
}

impl std::fmt::Debug for EnclaveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnclaveKey")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl EnclaveKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        EnclaveKey {
            key: SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    /// A key from its 32-byte secret (refused if zero or not below the group order).
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, MessageError> {
        SigningKey::from_bytes(secret.into())
            .map(|key| EnclaveKey { key })
            .map_err(|e| MessageError::Unrecoverable(e.to_string()))
    }

    /// The 32-byte secret (handle as a secret).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// The key's Ethereum address.
    pub fn address(&self) -> Address {
        address_of(self.key.verifying_key())
    }

    /// Signs `keccak256(message)`: 65 bytes `r‖s‖v` with v ∈ {0, 1} and low s.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 65], MessageError> {
        self.sign_prehash(keccak256(message))
    }

    /// Signs a 32-byte digest (e.g. an EIP-712 digest): 65 bytes `r‖s‖v`, v ∈ {0, 1}.
    pub fn sign_prehash(&self, digest: B256) -> Result<[u8; 65], MessageError> {
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(digest.as_slice())
            .map_err(|e| MessageError::Unrecoverable(e.to_string()))?;
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusting() -> ValidationContext {
        ValidationContext::TrustingPeriod(TrustingPeriodContext {
            untrusted_header_timestamp_ns: 1_718_463_240_849_489_006,
            trusted_state_timestamp_ns: 1_718_463_238_834_804_340,
            trusting_period_ns: 1_209_600_000_000_000,
            clock_drift_ns: 5_000_000_000,
        })
    }

    fn samples() -> Vec<ProxyMessage> {
        vec![
            ProxyMessage::UpdateState(UpdateStateMessage {
                prev: None,
                post_height: Height::new(0, 1),
                post_state_id: StateId([7; 32]),
                timestamp_ns: 1,
                context: ValidationContext::Empty,
                emitted_states: vec![EmittedState {
                    height: Height::new(0, 1),
                    state: vec![1, 2, 3],
                }],
            }),
            ProxyMessage::UpdateState(UpdateStateMessage {
                prev: Some((Height::new(1, 45), StateId([1; 32]))),
                post_height: Height::new(1, 47),
                post_state_id: StateId([2; 32]),
                timestamp_ns: u128::MAX,
                context: trusting(),
                emitted_states: vec![],
            }),
            ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
                b"ibc".to_vec(),
                b"commitments/ports/transfer/channels/channel-0/sequences/1".to_vec(),
                b"value",
                Height::new(1, 48),
                StateId([3; 32]),
            )),
            ProxyMessage::VerifyMembership(VerifyMembershipMessage {
                prefix: b"ibc".to_vec(),
                path: b"receipts/ports/transfer/channels/channel-0/sequences/2".to_vec(),
                value: None,
                height: Height::new(1, 48),
                state_id: StateId([3; 32]),
            }),
            ProxyMessage::Misbehaviour(MisbehaviourMessage {
                prev_states: vec![
                    PrevState {
                        height: Height::new(0, 10),
                        state_id: StateId([4; 32]),
                    },
                    PrevState {
                        height: Height::new(0, 11),
                        state_id: StateId([5; 32]),
                    },
                ],
                context: trusting(),
                client_message: vec![9; 100],
            }),
        ]
    }

    #[test]
    fn messages_round_trip_and_are_signed_by_their_key() {
        let key = EnclaveKey::generate();
        for m in samples() {
            let bytes = m.encode();
            assert_eq!(ProxyMessage::decode(&bytes), Ok(m.clone()));
            assert_eq!(u16::from_be_bytes([bytes[32], bytes[33]]), MESSAGE_VERSION);
            assert_eq!(u16::from_be_bytes([bytes[34], bytes[35]]), m.message_type());
            let sig = key.sign(&bytes).expect("sign");
            assert!(sig[64] <= 1);
            assert_eq!(recover_signer(&bytes, &sig), Ok(key.address()));
            assert_eq!(m.signing_hash(), keccak256(&bytes));
            let proofs = CommitmentProofs {
                message: bytes.clone(),
                signatures: vec![sig.to_vec(), Vec::new()],
            };
            assert_eq!(CommitmentProofs::decode(&proofs.encode()), Ok(proofs));
        }
    }

    #[test]
    fn bad_headers_and_encodings_are_refused() {
        let bytes = samples()[2].encode();
        let mut v2 = bytes.clone();
        v2[33] = 2;
        assert_eq!(
            ProxyMessage::decode(&v2),
            Err(MessageError::UnsupportedVersion(2))
        );
        let mut t9 = bytes.clone();
        t9[35] = 9;
        assert_eq!(ProxyMessage::decode(&t9), Err(MessageError::UnknownType(9)));
        let mut reserved = bytes.clone();
        reserved[63] = 1;
        assert_eq!(
            ProxyMessage::decode(&reserved),
            Err(MessageError::ReservedNotZero("proxy message"))
        );
        // Trailing bytes are not canonical.
        let mut long = bytes.clone();
        long.extend_from_slice(&[0; 32]);
        assert!(ProxyMessage::decode(&long).is_err());
        assert!(ProxyMessage::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(ProxyMessage::decode(&[]).is_err());
        // A VerifyMembership body under the UpdateState type.
        let mut wrong = bytes.clone();
        wrong[35] = 1;
        assert!(ProxyMessage::decode(&wrong).is_err());
        // Unknown context types and wrong trusting-period lengths.
        let ctx = abi::AbiValidationContext {
            header: type_header(7, None),
            context: Vec::new().into(),
        }
        .abi_encode();
        assert_eq!(
            ValidationContext::decode(&ctx),
            Err(MessageError::UnknownContextType(7))
        );
        let ctx = abi::AbiValidationContext {
            header: type_header(CONTEXT_TRUSTING_PERIOD, None),
            context: vec![0u8; 63].into(),
        }
        .abi_encode();
        assert_eq!(
            ValidationContext::decode(&ctx),
            Err(MessageError::TrustingPeriodContextLength(63))
        );
        // A previous height without a previous state id.
        let m = abi::AbiUpdateState {
            prev_height: Height::new(1, 1).to_abi(),
            prev_state_id: FixedBytes([0; 32]),
            post_height: Height::new(1, 2).to_abi(),
            post_state_id: FixedBytes([1; 32]),
            timestamp: 0,
            context: ValidationContext::Empty.encode().into(),
            emitted_states: vec![],
        }
        .abi_encode();
        let hm = abi::AbiHeaderedMessage {
            header: type_header(TYPE_UPDATE_STATE, Some(MESSAGE_VERSION)),
            message: m.into(),
        }
        .abi_encode();
        assert_eq!(
            ProxyMessage::decode(&hm),
            Err(MessageError::InconsistentPrev)
        );
        assert!(matches!(
            ProxyMessage::decode(&vec![0u8; MAX_MESSAGE_LEN + 1]),
            Err(MessageError::TooLarge(_))
        ));
    }

    #[test]
    fn trusting_period_context_bounds() {
        let ValidationContext::TrustingPeriod(c) = trusting() else {
            unreachable!()
        };
        let expiry = c.trusted_state_timestamp_ns + c.trusting_period_ns;
        c.validate(expiry - 1).expect("last nanosecond");
        assert!(matches!(
            c.validate(expiry),
            Err(MessageError::OutOfTrustingPeriod { .. })
        ));
        // now + drift must exceed the header time.
        let now = c.untrusted_header_timestamp_ns - c.clock_drift_ns;
        assert!(matches!(
            c.validate(now),
            Err(MessageError::HeaderFromFuture { .. })
        ));
        c.validate(now + 1).expect("within drift");
        ValidationContext::Empty.validate(0).expect("empty");
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = EnclaveKey::from_secret(&[0x42; 32]).expect("key");
        let msg = b"message";
        let sig = key.sign(msg).expect("sign");
        assert_eq!(
            recover_signer(msg, &sig[..64]),
            Err(MessageError::SignatureLength(64))
        );
        // The high-s twin of a valid signature is refused.
        let rs = Signature::from_slice(&sig[..64]).expect("sig");
        let (r, s) = rs.split_scalars();
        let high = Signature::from_scalars(r, -*s).expect("high s");
        let mut twin = [0u8; 65];
        twin[..64].copy_from_slice(&high.to_bytes());
        twin[64] = sig[64] ^ 1;
        assert_eq!(recover_signer(msg, &twin), Err(MessageError::HighS));
        assert!(EnclaveKey::from_secret(&[0; 32]).is_err());
        let again = EnclaveKey::from_secret(&key.secret_bytes()).expect("key");
        assert_eq!(again.address(), key.address());
    }
}
