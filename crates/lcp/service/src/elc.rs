//! The ELCs the enclave runs, behind one adapter: client types by name, bcs-encoded states,
//! headers and proofs, state ids, and the validation context of an update.
//!
//! State id = `sha256(proto(Any client_state) ‖ proto(Any consensus_state))` with the client
//! state's latest height zeroed (DESIGN §5); the `Any` values carry the bcs encodings under
//! `/kakehashi.elc.<type>.ClientState` and `.ConsensusState` type URLs.

use std::time::Duration;

use kh_elc::{ClientInstance, LedgerClient, LightClient, QbftClient, UpdateOutcome};
use kh_lcp::{
    EmittedState, Height, MisbehaviourMessage, PrevState, ProxyMessage, StateId,
    TrustingPeriodContext, UpdateStateMessage, ValidationContext, VerifyMembershipMessage,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Client type name of the QBFT ELC.
pub const QBFT: &str = "qbft";
/// Client type name of the Ledger ELC.
pub const LEDGER: &str = "ledger";
/// The commitment prefix the ELCs prove paths under.
pub const PREFIX: &[u8] = b"ibc";

/// Why an ELC call failed.
#[derive(Debug, thiserror::Error)]
pub enum ElcError {
    /// Unknown client type.
    #[error("unknown client type {0:?}")]
    UnknownType(String),
    /// An input does not decode.
    #[error("{what} does not decode: {reason}")]
    Decode {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The light client refused.
    #[error("light client: {0}")]
    Refused(String),
    /// The header was applied already.
    #[error("the header at height {0} is applied already")]
    Unchanged(u64),
    /// A value does not fit.
    #[error("{0}")]
    Invalid(&'static str),
}

/// A stored client: its type and bcs-encoded [`ClientInstance`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredClient {
    /// `qbft` or `ledger`.
    pub client_type: String,
    /// bcs of the client instance.
    pub instance: Vec<u8>,
}

impl StoredClient {
    /// The latest height of the stored client.
    pub fn latest_height(&self) -> Result<u64, ElcError> {
        match self.client_type.as_str() {
            QBFT => Ok(
                decode::<ClientInstance<QbftClient>>(&self.instance, "client")?
                    .client_state
                    .latest_height,
            ),
            LEDGER => Ok(
                decode::<ClientInstance<LedgerClient>>(&self.instance, "client")?
                    .client_state
                    .latest_height,
            ),
            other => Err(ElcError::UnknownType(other.to_owned())),
        }
    }
}

/// The result of an ELC call: the client after it, and the proxy message to sign.
#[derive(Debug)]
pub struct ElcOutput {
    /// The client after the call (unchanged for verifications).
    pub client: StoredClient,
    /// The message.
    pub message: ProxyMessage,
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, ElcError> {
    bcs::from_bytes(bytes).map_err(|e| ElcError::Decode {
        what,
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, ElcError> {
    bcs::to_bytes(v).map_err(|_| ElcError::Invalid("bcs encoding failed"))
}

/// What the adapter needs of each ELC beyond [`LightClient`].
trait Elc: LightClient
where
    Self::Header: DeserializeOwned + Serialize,
    Self::Proof: DeserializeOwned,
    Self::Misbehaviour: DeserializeOwned + Serialize,
{
    const NAME: &'static str;
    fn latest(cs: &Self::ClientState) -> u64;
    fn canonical(cs: &Self::ClientState) -> Self::ClientState;
    fn timestamp_ns(cons: &Self::ConsensusState) -> u128;
    fn trusting(cs: &Self::ClientState) -> Option<(Duration, Duration)>;
}

impl Elc for QbftClient {
    const NAME: &'static str = QBFT;
    fn latest(cs: &Self::ClientState) -> u64 {
        cs.latest_height
    }
    fn canonical(cs: &Self::ClientState) -> Self::ClientState {
        let mut c = cs.clone();
        c.latest_height = 0;
        c
    }
    fn timestamp_ns(cons: &Self::ConsensusState) -> u128 {
        u128::from(cons.timestamp) * 1_000_000_000
    }
    fn trusting(cs: &Self::ClientState) -> Option<(Duration, Duration)> {
        Some((cs.trusting_period, cs.max_clock_drift))
    }
}

impl Elc for LedgerClient {
    const NAME: &'static str = LEDGER;
    fn latest(cs: &Self::ClientState) -> u64 {
        cs.latest_height
    }
    fn canonical(cs: &Self::ClientState) -> Self::ClientState {
        let mut c = cs.clone();
        c.latest_height = 0;
        c
    }
    fn timestamp_ns(cons: &Self::ConsensusState) -> u128 {
        u128::from(cons.timestamp_ms) * 1_000_000
    }
    fn trusting(_: &Self::ClientState) -> Option<(Duration, Duration)> {
        None
    }
}

fn any(type_url: String, value: Vec<u8>) -> prost_types::Any {
    prost_types::Any { type_url, value }
}

fn state_id<L>(cs: &L::ClientState, cons: &L::ConsensusState) -> Result<StateId, ElcError>
where
    L: Elc,
    L::Header: DeserializeOwned + Serialize,
    L::Proof: DeserializeOwned,
    L::Misbehaviour: DeserializeOwned + Serialize,
{
    Ok(StateId::from_any(
        &any(
            format!("/kakehashi.elc.{}.ClientState", L::NAME),
            encode(&L::canonical(cs))?,
        ),
        &any(
            format!("/kakehashi.elc.{}.ConsensusState", L::NAME),
            encode(cons)?,
        ),
    ))
}

const fn h(height: u64) -> Height {
    Height::new(0, height)
}

fn create<L>(cs: &[u8], cons: &[u8]) -> Result<ElcOutput, ElcError>
where
    L: Elc,
    L::Header: DeserializeOwned + Serialize,
    L::Proof: DeserializeOwned,
    L::Misbehaviour: DeserializeOwned + Serialize,
{
    let cs: L::ClientState = decode(cs, "client state")?;
    let cons: L::ConsensusState = decode(cons, "consensus state")?;
    let inst = ClientInstance::<L>::create(cs.clone(), cons.clone())
        .map_err(|e| ElcError::Refused(e.to_string()))?;
    let height = L::latest(&inst.client_state);
    if height == 0 {
        // Height zero is LCP's "no height": a client starts from a later trusted header.
        return Err(ElcError::Invalid("the initial height must not be zero"));
    }
    let message = ProxyMessage::UpdateState(UpdateStateMessage {
        prev: None,
        post_height: h(height),
        post_state_id: state_id::<L>(&cs, &cons)?,
        timestamp_ns: L::timestamp_ns(&cons),
        context: ValidationContext::Empty,
        emitted_states: vec![EmittedState {
            height: h(height),
            state: encode(&cs)?,
        }],
    });
    Ok(ElcOutput {
        client: StoredClient {
            client_type: L::NAME.to_owned(),
            instance: encode(&inst)?,
        },
        message,
    })
}

fn update<L>(stored: &StoredClient, header: &[u8], now: Duration) -> Result<ElcOutput, ElcError>
where
    L: Elc,
    L::Header: DeserializeOwned + Serialize,
    L::Proof: DeserializeOwned,
    L::Misbehaviour: DeserializeOwned + Serialize,
{
    let mut inst: ClientInstance<L> = decode(&stored.instance, "client")?;
    let header: L::Header = decode(header, "header")?;
    let before = inst.client_state.clone();
    let outcome = inst
        .update(&header, now)
        .map_err(|e| ElcError::Refused(e.to_string()))?;
    let message = match outcome {
        UpdateOutcome::Unchanged { height } => return Err(ElcError::Unchanged(height)),
        UpdateOutcome::Updated {
            client_state,
            trusted_height,
            consensus_states,
        } => {
            let trusted = inst
                .consensus_states
                .get(&trusted_height)
                .ok_or(ElcError::Invalid("trusted consensus state missing"))?;
            let (post_height, post) = consensus_states
                .last()
                .ok_or(ElcError::Invalid("an update without consensus states"))?;
            let context = match L::trusting(&client_state) {
                Some((period, drift)) => ValidationContext::TrustingPeriod(TrustingPeriodContext {
                    untrusted_header_timestamp_ns: L::timestamp_ns(post),
                    trusted_state_timestamp_ns: L::timestamp_ns(trusted),
                    trusting_period_ns: period.as_nanos(),
                    clock_drift_ns: drift.as_nanos(),
                }),
                None => ValidationContext::Empty,
            };
            ProxyMessage::UpdateState(UpdateStateMessage {
                prev: Some((h(trusted_height), state_id::<L>(&before, trusted)?)),
                post_height: h(*post_height),
                post_state_id: state_id::<L>(&client_state, post)?,
                timestamp_ns: L::timestamp_ns(post),
                context,
                emitted_states: vec![],
            })
        }
        UpdateOutcome::Frozen { height, .. } => {
            let prev = inst
                .consensus_states
                .range(..=height)
                .next_back()
                .ok_or(ElcError::Invalid("no consensus state below the conflict"))?;
            ProxyMessage::Misbehaviour(MisbehaviourMessage {
                prev_states: vec![PrevState {
                    height: h(*prev.0),
                    state_id: state_id::<L>(&before, prev.1)?,
                }],
                context: ValidationContext::Empty,
                client_message: encode(&header)?,
            })
        }
    };
    Ok(ElcOutput {
        client: StoredClient {
            client_type: L::NAME.to_owned(),
            instance: encode(&inst)?,
        },
        message,
    })
}

fn verify<L>(
    stored: &StoredClient,
    height: u64,
    proof: &[u8],
    path: &[u8],
    value: Option<&[u8]>,
) -> Result<ElcOutput, ElcError>
where
    L: Elc,
    L::Header: DeserializeOwned + Serialize,
    L::Proof: DeserializeOwned,
    L::Misbehaviour: DeserializeOwned + Serialize,
{
    let inst: ClientInstance<L> = decode(&stored.instance, "client")?;
    let proof: L::Proof = decode(proof, "proof")?;
    match value {
        Some(v) => inst.verify_membership(height, &proof, path, v),
        None => inst.verify_non_membership(height, &proof, path),
    }
    .map_err(|e| ElcError::Refused(e.to_string()))?;
    let cons = inst
        .consensus_states
        .get(&height)
        .ok_or(ElcError::Invalid("no consensus state at the height"))?;
    let state_id = state_id::<L>(&inst.client_state, cons)?;
    let message = ProxyMessage::VerifyMembership(match value {
        Some(v) => VerifyMembershipMessage::membership(
            PREFIX.to_vec(),
            path.to_vec(),
            v,
            h(height),
            state_id,
        ),
        None => VerifyMembershipMessage {
            prefix: PREFIX.to_vec(),
            path: path.to_vec(),
            value: None,
            height: h(height),
            state_id,
        },
    });
    Ok(ElcOutput {
        client: stored.clone(),
        message,
    })
}

fn misbehaviour<L>(
    stored: &StoredClient,
    evidence: &[u8],
    now: Duration,
) -> Result<ElcOutput, ElcError>
where
    L: Elc,
    L::Header: DeserializeOwned + Serialize,
    L::Proof: DeserializeOwned,
    L::Misbehaviour: DeserializeOwned + Serialize,
{
    let mut inst: ClientInstance<L> = decode(&stored.instance, "client")?;
    let evidence: L::Misbehaviour = decode(evidence, "misbehaviour")?;
    let before = inst.client_state.clone();
    inst.submit_misbehaviour(&evidence, now)
        .map_err(|e| ElcError::Refused(e.to_string()))?;
    let prev_states = inst
        .consensus_states
        .iter()
        .next_back()
        .map(|(height, cons)| {
            Ok::<_, ElcError>(PrevState {
                height: h(*height),
                state_id: state_id::<L>(&before, cons)?,
            })
        })
        .transpose()?
        .into_iter()
        .collect();
    Ok(ElcOutput {
        client: StoredClient {
            client_type: L::NAME.to_owned(),
            instance: encode(&inst)?,
        },
        message: ProxyMessage::Misbehaviour(MisbehaviourMessage {
            prev_states,
            context: ValidationContext::Empty,
            client_message: encode(&evidence)?,
        }),
    })
}

/// Creates a client of `client_type` from its bcs-encoded states.
pub fn create_client(client_type: &str, cs: &[u8], cons: &[u8]) -> Result<ElcOutput, ElcError> {
    match client_type {
        QBFT => create::<QbftClient>(cs, cons),
        LEDGER => create::<LedgerClient>(cs, cons),
        other => Err(ElcError::UnknownType(other.to_owned())),
    }
}

/// Verifies a bcs-encoded header against a stored client.
pub fn update_client(
    stored: &StoredClient,
    header: &[u8],
    now: Duration,
) -> Result<ElcOutput, ElcError> {
    match stored.client_type.as_str() {
        QBFT => update::<QbftClient>(stored, header, now),
        LEDGER => update::<LedgerClient>(stored, header, now),
        other => Err(ElcError::UnknownType(other.to_owned())),
    }
}

/// Verifies (non-)membership of `path` at `height` with a bcs-encoded proof.
pub fn verify_state(
    stored: &StoredClient,
    height: u64,
    proof: &[u8],
    path: &[u8],
    value: Option<&[u8]>,
) -> Result<ElcOutput, ElcError> {
    match stored.client_type.as_str() {
        QBFT => verify::<QbftClient>(stored, height, proof, path, value),
        LEDGER => verify::<LedgerClient>(stored, height, proof, path, value),
        other => Err(ElcError::UnknownType(other.to_owned())),
    }
}

/// Checks bcs-encoded misbehaviour evidence; the client returned is frozen.
pub fn submit_misbehaviour(
    stored: &StoredClient,
    evidence: &[u8],
    now: Duration,
) -> Result<ElcOutput, ElcError> {
    match stored.client_type.as_str() {
        QBFT => misbehaviour::<QbftClient>(stored, evidence, now),
        LEDGER => misbehaviour::<LedgerClient>(stored, evidence, now),
        other => Err(ElcError::UnknownType(other.to_owned())),
    }
}
