//! The protobuf messages of the LCP light client as chains carry them
//! (`ibc.lightclients.lcp.v1`, lcp-solidity's wire format): client state, consensus state, the
//! update message (a proxy message with its signatures) and the enclave-key registration
//! message, each packed in a protobuf `Any` with its type URL.

use prost::Message;

/// `Any.type_url` of [`ClientState`].
pub const CLIENT_STATE_URL: &str = "/ibc.lightclients.lcp.v1.ClientState";
/// `Any.type_url` of [`ConsensusState`].
pub const CONSENSUS_STATE_URL: &str = "/ibc.lightclients.lcp.v1.ConsensusState";
/// `Any.type_url` of [`UpdateClientMessage`].
pub const UPDATE_CLIENT_URL: &str = "/ibc.lightclients.lcp.v1.UpdateClientMessage";
/// `Any.type_url` of [`RegisterEnclaveKeyMessage`].
pub const REGISTER_URL: &str = "/ibc.lightclients.lcp.v1.RegisterEnclaveKeyMessage";

/// An IBC height as protobuf (`ibc.core.client.v1.Height`).
#[derive(Clone, Copy, PartialEq, Eq, Message)]
pub struct ProtoHeight {
    /// Revision number.
    #[prost(uint64, tag = "1")]
    pub revision_number: u64,
    /// Height within the revision.
    #[prost(uint64, tag = "2")]
    pub revision_height: u64,
}

/// The LCP client's state.
#[derive(Clone, PartialEq, Message)]
pub struct ClientState {
    /// The enclave build the client trusts.
    #[prost(bytes = "vec", tag = "1")]
    pub mrenclave: Vec<u8>,
    /// Seconds a key stays valid after its attestation.
    #[prost(uint64, tag = "2")]
    pub key_expiration: u64,
    /// Frozen by misbehaviour.
    #[prost(bool, tag = "3")]
    pub frozen: bool,
    /// The latest height.
    #[prost(message, optional, tag = "4")]
    pub latest_height: Option<ProtoHeight>,
    /// Quote statuses accepted besides OK.
    #[prost(string, repeated, tag = "5")]
    pub allowed_quote_statuses: Vec<String>,
    /// Advisory ids accepted.
    #[prost(string, repeated, tag = "6")]
    pub allowed_advisory_ids: Vec<String>,
    /// Operator addresses (20 bytes each), in order.
    #[prost(bytes = "vec", repeated, tag = "7")]
    pub operators: Vec<Vec<u8>>,
    /// Operator set version.
    #[prost(uint64, tag = "8")]
    pub operators_nonce: u64,
    /// Threshold numerator.
    #[prost(uint64, tag = "9")]
    pub operators_threshold_numerator: u64,
    /// Threshold denominator.
    #[prost(uint64, tag = "10")]
    pub operators_threshold_denominator: u64,
}

/// What the LCP client trusts at one height.
#[derive(Clone, PartialEq, Message)]
pub struct ConsensusState {
    /// The ELC's state id.
    #[prost(bytes = "vec", tag = "1")]
    pub state_id: Vec<u8>,
    /// The state's timestamp (ns).
    #[prost(uint64, tag = "2")]
    pub timestamp: u64,
}

/// An UpdateState (or Misbehaviour) proxy message with its enclave signatures.
#[derive(Clone, PartialEq, Message)]
pub struct UpdateClientMessage {
    /// The ABI-encoded proxy message.
    #[prost(bytes = "vec", tag = "1")]
    pub proxy_message: Vec<u8>,
    /// 65-byte signatures.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub signatures: Vec<Vec<u8>>,
}

/// An enclave key's attestation report, for registration.
#[derive(Clone, PartialEq, Message)]
pub struct RegisterEnclaveKeyMessage {
    /// The report (AVR JSON), exactly as signed.
    #[prost(string, tag = "1")]
    pub report: String,
    /// The report's RSA signature.
    #[prost(bytes = "vec", tag = "2")]
    pub signature: Vec<u8>,
    /// The signing certificate (DER).
    #[prost(bytes = "vec", tag = "3")]
    pub signing_cert: Vec<u8>,
    /// The operator's EIP-712 approval, if any.
    #[prost(bytes = "vec", tag = "4")]
    pub operator_signature: Vec<u8>,
}

/// `message` packed in a protobuf `Any` under `type_url`.
pub fn any<M: Message>(type_url: &str, message: &M) -> Vec<u8> {
    prost_types::Any {
        type_url: type_url.into(),
        value: message.encode_to_vec(),
    }
    .encode_to_vec()
}
