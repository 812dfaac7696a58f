//! Light clients that run inside LCP (DESIGN §5, §6): the enclave light clients ("ELCs").
//!
//! Owns: the light-client interface ([`LightClient`]: create, update, verify membership and
//! non-membership, misbehaviour), a serialisable client instance ([`ClientInstance`]: the client
//! state and its consensus states by height, which the LCP host persists), and the two clients:
//!
//! * [`qbft`]: the QBFT (Besu / GoQuorum) ELC — header verification with the skipping rule,
//!   trusting period and clock drift; validator-set changes through intermediate headers;
//!   `eth_getProof` account and storage proofs of the IBC store; conflicting headers freeze it.
//! * [`ledger`]: the Ledger ELC — host-state chain continuity, every notary and operator
//!   signature, the filtered-transaction rules of `kh-ibc-host-chain`, ICS-23 proofs; two signed host
//!   transactions for one height freeze it.
//!
//! Does not own: the header codec and quorum rules (`kh-qbft`), the host contract and ledger
//! proof format (`kh-ibc-host-chain`), the enclave, proxy messages and signing (`kh-lcp`). Time is
//! always passed in ([`std::time::Duration`] since the Unix epoch): no wall clock is read here.
//! Pure library: no I/O, no async.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod ledger;
pub mod qbft;

pub use ledger::{
    LedgerClient, LedgerClientState, LedgerConsensusState, LedgerElcError, LedgerHeader,
    LedgerMisbehaviour,
};
pub use qbft::{
    Account, AccountProof, IBC_COMMITMENTS_SLOT, ICS26_COMMITMENTS_SLOT, QbftClient,
    QbftClientState, QbftConsensusState, QbftElcError, QbftHeader, QbftMisbehaviour, StorageLayout,
    StorageProof, decode_proof_nodes, verify_account, verify_storage,
};

/// Read access to the consensus states a client has stored, by height.
pub trait ConsensusStates<S> {
    /// The consensus state at `height`, if one is stored.
    fn get(&self, height: u64) -> Option<&S>;
    /// The stored consensus state with the greatest height below `height`.
    fn below(&self, height: u64) -> Option<(u64, &S)>;
    /// The stored consensus state with the least height above `height`.
    fn above(&self, height: u64) -> Option<(u64, &S)>;
}

impl<S> ConsensusStates<S> for BTreeMap<u64, S> {
    fn get(&self, height: u64) -> Option<&S> {
        BTreeMap::get(self, &height)
    }

    fn below(&self, height: u64) -> Option<(u64, &S)> {
        self.range(..height).next_back().map(|(h, s)| (*h, s))
    }

    fn above(&self, height: u64) -> Option<(u64, &S)> {
        self.range((Bound::Excluded(height), Bound::Unbounded))
            .next()
            .map(|(h, s)| (*h, s))
    }
}

/// What an update does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateOutcome<C, S> {
    /// The header is verified: new consensus states to store (in height order) and the client
    /// state after the update.
    Updated {
        /// The client state after the update (its latest height may have moved).
        client_state: C,
        /// The trusted height the update was verified from.
        trusted_height: u64,
        /// The new consensus states by height, ascending.
        consensus_states: Vec<(u64, S)>,
    },
    /// The header was already applied: the stored consensus state at its height is the same.
    Unchanged {
        /// The header's height.
        height: u64,
    },
    /// A valid header conflicts with a stored consensus state of the same height, or its time
    /// is out of order with the stored states around it: misbehaviour. The client state
    /// returned is frozen.
    Frozen {
        /// The frozen client state.
        client_state: C,
        /// The height of the conflict.
        height: u64,
    },
}

/// A light client: pure functions over its client state and stored consensus states.
pub trait LightClient {
    /// The client state (parameters, latest height, frozen flag).
    type ClientState: Clone + std::fmt::Debug + Eq + Serialize + DeserializeOwned;
    /// The consensus state trusted at one height.
    type ConsensusState: Clone + std::fmt::Debug + Eq + Serialize + DeserializeOwned;
    /// The update message.
    type Header;
    /// A membership or non-membership proof.
    type Proof;
    /// Evidence of misbehaviour.
    type Misbehaviour;
    /// Why something is refused.
    type Error: std::error::Error;

    /// Checks an initial client state and consensus state (at the client state's latest
    /// height) and returns that height.
    fn create(
        client_state: &Self::ClientState,
        consensus_state: &Self::ConsensusState,
    ) -> Result<u64, Self::Error>;

    /// Verifies `header` against a trusted consensus state at time `now`.
    fn update(
        client_state: &Self::ClientState,
        states: &dyn ConsensusStates<Self::ConsensusState>,
        header: &Self::Header,
        now: Duration,
    ) -> Result<UpdateOutcome<Self::ClientState, Self::ConsensusState>, Self::Error>;

    /// Verifies that `path` holds `value` at `height`.
    fn verify_membership(
        client_state: &Self::ClientState,
        states: &dyn ConsensusStates<Self::ConsensusState>,
        height: u64,
        proof: &Self::Proof,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), Self::Error>;

    /// Verifies that `path` holds no value at `height`.
    fn verify_non_membership(
        client_state: &Self::ClientState,
        states: &dyn ConsensusStates<Self::ConsensusState>,
        height: u64,
        proof: &Self::Proof,
        path: &[u8],
    ) -> Result<(), Self::Error>;

    /// Checks misbehaviour evidence; on success returns the frozen client state.
    fn check_misbehaviour(
        client_state: &Self::ClientState,
        states: &dyn ConsensusStates<Self::ConsensusState>,
        misbehaviour: &Self::Misbehaviour,
        now: Duration,
    ) -> Result<Self::ClientState, Self::Error>;
}

/// A client state with its consensus states: what the LCP host persists for one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "L::ClientState: Serialize, L::ConsensusState: Serialize",
    deserialize = "L::ClientState: DeserializeOwned, L::ConsensusState: DeserializeOwned"
))]
pub struct ClientInstance<L: LightClient> {
    /// The client state.
    pub client_state: L::ClientState,
    /// The trusted consensus states by height.
    pub consensus_states: BTreeMap<u64, L::ConsensusState>,
}

impl<L: LightClient> ClientInstance<L> {
    /// Creates a client from its initial states.
    pub fn create(
        client_state: L::ClientState,
        consensus_state: L::ConsensusState,
    ) -> Result<Self, L::Error> {
        let height = L::create(&client_state, &consensus_state)?;
        Ok(Self {
            client_state,
            consensus_states: BTreeMap::from([(height, consensus_state)]),
        })
    }

    /// Verifies and applies `header`; returns what happened.
    pub fn update(
        &mut self,
        header: &L::Header,
        now: Duration,
    ) -> Result<UpdateOutcome<L::ClientState, L::ConsensusState>, L::Error> {
        let outcome = L::update(&self.client_state, &self.consensus_states, header, now)?;
        match &outcome {
            UpdateOutcome::Updated {
                client_state,
                consensus_states,
                ..
            } => {
                self.client_state = client_state.clone();
                for (height, state) in consensus_states {
                    self.consensus_states.insert(*height, state.clone());
                }
            }
            UpdateOutcome::Frozen { client_state, .. } => {
                self.client_state = client_state.clone();
            }
            UpdateOutcome::Unchanged { .. } => {}
        }
        Ok(outcome)
    }

    /// Verifies that `path` holds `value` at `height`.
    pub fn verify_membership(
        &self,
        height: u64,
        proof: &L::Proof,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), L::Error> {
        L::verify_membership(
            &self.client_state,
            &self.consensus_states,
            height,
            proof,
            path,
            value,
        )
    }

    /// Verifies that `path` holds no value at `height`.
    pub fn verify_non_membership(
        &self,
        height: u64,
        proof: &L::Proof,
        path: &[u8],
    ) -> Result<(), L::Error> {
        L::verify_non_membership(
            &self.client_state,
            &self.consensus_states,
            height,
            proof,
            path,
        )
    }

    /// Checks misbehaviour evidence and freezes the client when it holds.
    pub fn submit_misbehaviour(
        &mut self,
        misbehaviour: &L::Misbehaviour,
        now: Duration,
    ) -> Result<(), L::Error> {
        self.client_state = L::check_misbehaviour(
            &self.client_state,
            &self.consensus_states,
            misbehaviour,
            now,
        )?;
        Ok(())
    }
}
