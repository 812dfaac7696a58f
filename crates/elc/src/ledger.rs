//! The Ledger ELC: a light client of the ledger's IBC host (DESIGN §6).
//!
//! The client state holds the keys it trusts — the notary's and the host operators' — and the
//! consensus state at a host height holds the store root, the host timestamp and the host
//! state's [`StateRef`] (producing transaction and output index). An update is a chain of host
//! state proofs for heights h+1..h+k, each consuming the state of the height before it, starting
//! from a trusted height h. Every proof is checked with [`HostStateProof::verify`]: the Merkle
//! proofs of the filtered transaction, the notary's and every operator's signature, exactly one
//! notary component (the trusted notary), exactly one bounded time window holding the host
//! timestamp, exactly one host command, and a revealed host output whose operators are the
//! trusted ones. Membership is a [`LedgerProof`] of the very host state the client trusts at that
//! height (ICS-23 against its store root). Two properly signed host transactions for one height
//! are misbehaviour and freeze the client, as does a verified chain ending later in time than a
//! stored state above it.
//!
//! The host state chain has no validator set that rotates, so there is no trusting period:
//! what is trusted is the configured keys. A host timestamp beyond `now` plus the maximum clock
//! drift is refused.

use std::time::Duration;

use kh_ibc_host_chain::{HostStateProof, HostTrust, LedgerProof, ProofError};
use kh_ledger::StateRef;
use serde::{Deserialize, Serialize};

use crate::{ConsensusStates, LightClient, UpdateOutcome};

/// At most this many host state proofs in one update.
pub const MAX_UPDATE_PROOFS: usize = 256;

/// The client state of the Ledger ELC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerClientState {
    /// The notary's and the host operators' keys: every host transaction must carry all their
    /// signatures.
    pub trust: HostTrust,
    /// How far a host timestamp may be ahead of `now`.
    pub max_clock_drift: Duration,
    /// The highest host height with a consensus state.
    pub latest_height: u64,
    /// Set by misbehaviour; a frozen client refuses everything.
    pub frozen: bool,
}

/// What the client trusts at one host height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConsensusState {
    /// The IBC store's root.
    pub store_root: [u8; 32],
    /// The host timestamp (Unix milliseconds).
    pub timestamp_ms: u64,
    /// The host state output: its transaction id and output index.
    pub state_ref: StateRef,
}

/// An update: host state proofs of consecutive heights from a trusted height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHeader {
    /// The trusted height the chain starts from.
    pub trusted_height: u64,
    /// Proofs of heights `trusted_height + 1 ..= trusted_height + proofs.len()`, in order.
    pub proofs: Vec<HostStateProof>,
}

/// Two host transactions for one height, both signed by the trusted keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMisbehaviour {
    /// The first host state proof.
    pub proof_1: HostStateProof,
    /// The second host state proof.
    pub proof_2: HostStateProof,
}

/// Why the Ledger ELC refuses something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerElcError {
    /// The client is frozen (misbehaviour was seen).
    #[error("the client is frozen")]
    Frozen,
    /// A host state or ledger proof does not verify with the trusted keys.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// No consensus state is stored at that height.
    #[error("no consensus state at height {0}")]
    NoConsensusState(u64),
    /// A proof is not of the next height.
    #[error("expected a host state of height {expected}, got {got}")]
    Gap {
        /// The height that must come next.
        expected: u64,
        /// The proof's height.
        got: u64,
    },
    /// A host transaction does not consume the host state of the height before it.
    #[error("the host transaction of height {height} does not consume the previous host state")]
    Discontinuity {
        /// The proof's height.
        height: u64,
    },
    /// A host timestamp is earlier than the one before it.
    #[error("the host timestamp of height {height} goes back")]
    TimestampGoesBack {
        /// The proof's height.
        height: u64,
    },
    /// A host timestamp is beyond `now` plus the maximum clock drift.
    #[error("the host timestamp {timestamp_ms} of height {height} is in the future")]
    FromFuture {
        /// The proof's height.
        height: u64,
        /// Its timestamp (Unix milliseconds).
        timestamp_ms: u64,
    },
    /// The update holds no proof, or too many.
    #[error("an update holds 1 to {max} host state proofs, got {got}")]
    UpdateSize {
        /// Proofs in the update.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The initial client or consensus state is unusable.
    #[error("invalid client state: {0}")]
    InvalidClientState(&'static str),
    /// A ledger proof is not of the host state trusted at its height.
    #[error("the proof is not of the host state trusted at height {height}")]
    NotTrustedState {
        /// The height.
        height: u64,
    },
    /// The evidence is not misbehaviour.
    #[error("not misbehaviour: {0}")]
    NotMisbehaviour(&'static str),
}

/// The Ledger light client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerClient;

impl LedgerClient {
    /// The consensus state a host state proof yields, with its height (the proof is verified
    /// with `trust`). Used to create a client from a host state its operator has checked.
    pub fn consensus_state_of(
        trust: &HostTrust,
        proof: &HostStateProof,
    ) -> Result<(u64, LedgerConsensusState), LedgerElcError> {
        let host = proof.verify(trust)?;
        Ok((
            host.height,
            LedgerConsensusState {
                store_root: host.store_root,
                timestamp_ms: host.timestamp_ms,
                state_ref: StateRef {
                    tx_id: proof.tx_id(),
                    index: proof.output,
                },
            },
        ))
    }
}

fn frozen(client_state: &LedgerClientState) -> LedgerClientState {
    LedgerClientState {
        frozen: true,
        ..client_state.clone()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LightClient for LedgerClient {
    type ClientState = LedgerClientState;
    type ConsensusState = LedgerConsensusState;
    type Header = LedgerHeader;
    type Proof = LedgerProof;
    type Misbehaviour = LedgerMisbehaviour;
    type Error = LedgerElcError;

    fn create(
        client_state: &LedgerClientState,
        _consensus_state: &LedgerConsensusState,
    ) -> Result<u64, LedgerElcError> {
        if client_state.frozen {
            return Err(LedgerElcError::InvalidClientState("created frozen"));
        }
        let operators = &client_state.trust.operators;
        if operators.is_empty() {
            return Err(LedgerElcError::InvalidClientState("no host operators"));
        }
        let mut sorted = operators.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != operators.len() {
            return Err(LedgerElcError::InvalidClientState(
                "duplicate host operators",
            ));
        }
        Ok(client_state.latest_height)
    }

    fn update(
        client_state: &LedgerClientState,
        states: &dyn ConsensusStates<LedgerConsensusState>,
        header: &LedgerHeader,
        now: Duration,
    ) -> Result<UpdateOutcome<LedgerClientState, LedgerConsensusState>, LedgerElcError> {
        if client_state.frozen {
            return Err(LedgerElcError::Frozen);
        }
        if header.proofs.is_empty() || header.proofs.len() > MAX_UPDATE_PROOFS {
            return Err(LedgerElcError::UpdateSize {
                got: header.proofs.len(),
                max: MAX_UPDATE_PROOFS,
            });
        }
        let mut prev_height = header.trusted_height;
        let mut prev = states
            .get(prev_height)
            .ok_or(LedgerElcError::NoConsensusState(prev_height))?
            .clone();
        let limit_ms = millis(now.saturating_add(client_state.max_clock_drift));
        let mut new_states = Vec::new();
        for proof in &header.proofs {
            let expected = prev_height
                .checked_add(1)
                .ok_or(LedgerElcError::InvalidClientState("height overflow"))?;
            let (height, consensus) = Self::consensus_state_of(&client_state.trust, proof)?;
            if height != expected {
                return Err(LedgerElcError::Gap {
                    expected,
                    got: height,
                });
            }
            if !proof.consumes(&prev.state_ref)? {
                return Err(LedgerElcError::Discontinuity { height });
            }
            if consensus.timestamp_ms < prev.timestamp_ms {
                return Err(LedgerElcError::TimestampGoesBack { height });
            }
            if consensus.timestamp_ms > limit_ms {
                return Err(LedgerElcError::FromFuture {
                    height,
                    timestamp_ms: consensus.timestamp_ms,
                });
            }
            match states.get(height) {
                Some(stored) if stored.state_ref == consensus.state_ref => {}
                Some(_) => {
                    tracing::warn!(height, "conflicting host state: the client is frozen");
                    return Ok(UpdateOutcome::Frozen {
                        client_state: frozen(client_state),
                        height,
                    });
                }
                None => new_states.push((height, consensus.clone())),
            }
            prev_height = height;
            prev = consensus;
        }
        // Host time never goes back: a stored later state with an earlier time than the end of
        // this chain proves a fork.
        if states
            .above(prev_height)
            .is_some_and(|(_, s)| s.timestamp_ms < prev.timestamp_ms)
        {
            tracing::warn!(
                height = prev_height,
                "host state out of time order: the client is frozen"
            );
            return Ok(UpdateOutcome::Frozen {
                client_state: frozen(client_state),
                height: prev_height,
            });
        }
        if new_states.is_empty() {
            return Ok(UpdateOutcome::Unchanged {
                height: prev_height,
            });
        }
        tracing::debug!(
            from = header.trusted_height,
            to = prev_height,
            "ledger host states verified"
        );
        Ok(UpdateOutcome::Updated {
            client_state: LedgerClientState {
                latest_height: client_state.latest_height.max(prev_height),
                ..client_state.clone()
            },
            trusted_height: header.trusted_height,
            consensus_states: new_states,
        })
    }

    fn verify_membership(
        client_state: &LedgerClientState,
        states: &dyn ConsensusStates<LedgerConsensusState>,
        height: u64,
        proof: &LedgerProof,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), LedgerElcError> {
        check_trusted(client_state, states, height, proof)?;
        proof.verify_membership(&client_state.trust, height, path, value)?;
        Ok(())
    }

    fn verify_non_membership(
        client_state: &LedgerClientState,
        states: &dyn ConsensusStates<LedgerConsensusState>,
        height: u64,
        proof: &LedgerProof,
        path: &[u8],
    ) -> Result<(), LedgerElcError> {
        check_trusted(client_state, states, height, proof)?;
        proof.verify_non_membership(&client_state.trust, height, path)?;
        Ok(())
    }

    fn check_misbehaviour(
        client_state: &LedgerClientState,
        _states: &dyn ConsensusStates<LedgerConsensusState>,
        misbehaviour: &LedgerMisbehaviour,
        _now: Duration,
    ) -> Result<LedgerClientState, LedgerElcError> {
        if client_state.frozen {
            return Err(LedgerElcError::Frozen);
        }
        let trust = &client_state.trust;
        let (h1, c1) = Self::consensus_state_of(trust, &misbehaviour.proof_1)?;
        let (h2, c2) = Self::consensus_state_of(trust, &misbehaviour.proof_2)?;
        if h1 != h2 {
            return Err(LedgerElcError::NotMisbehaviour(
                "the host states are at different heights",
            ));
        }
        if c1.state_ref.tx_id == c2.state_ref.tx_id {
            return Err(LedgerElcError::NotMisbehaviour(
                "the proofs are of the same transaction",
            ));
        }
        tracing::warn!(
            height = h1,
            "ledger host misbehaviour: the client is frozen"
        );
        Ok(frozen(client_state))
    }
}

/// The proof must be of the host state the client trusts at `height` (same transaction and
/// output; the output's content, store root included, is bound to the transaction id by the
/// filtered transaction's Merkle proof).
fn check_trusted(
    client_state: &LedgerClientState,
    states: &dyn ConsensusStates<LedgerConsensusState>,
    height: u64,
    proof: &LedgerProof,
) -> Result<(), LedgerElcError> {
    if client_state.frozen {
        return Err(LedgerElcError::Frozen);
    }
    let consensus = states
        .get(height)
        .ok_or(LedgerElcError::NoConsensusState(height))?;
    let proven = StateRef {
        tx_id: proof.host.tx_id(),
        index: proof.host.output,
    };
    if proven != consensus.state_ref {
        return Err(LedgerElcError::NotTrustedState { height });
    }
    Ok(())
}
