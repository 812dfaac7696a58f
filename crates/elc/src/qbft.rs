//! The QBFT ELC: a light client of a Besu / GoQuorum QBFT chain (DESIGN §5).
//!
//! A header is accepted from a trusted consensus state when more than a third of the trusted
//! validator set and at least two thirds of the header's own set sealed it (`kh-qbft`'s skipping
//! rule), the trusted state is inside the trusting period, and the header is not later than
//! `now` plus the maximum clock drift. The consensus state keeps the header's block hash, state
//! root, timestamp and validator set, so a validator set that changes by more than two thirds is
//! followed through intermediate headers. Membership is an `eth_getProof` pair: the IBC
//! handler's account proof against the state root gives its storage root, and the storage proof
//! of the commitment slot gives the stored value. Two valid headers at one height with different
//! block hashes are misbehaviour and freeze the client, as is a valid header whose timestamp is
//! out of order with the stored consensus states around it; a frozen client refuses everything.

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, U256, b256, keccak256};
use alloy_rlp::Decodable;
use alloy_trie::Nibbles;
use alloy_trie::nodes::TrieNode;
use kh_qbft::{Header, QbftError};
use serde::{Deserialize, Serialize};

use crate::{ConsensusStates, LightClient, UpdateOutcome};

/// The base slot of the IBC store's commitments mapping (yui-ibc-solidity layout, DESIGN §5).
pub const IBC_COMMITMENTS_SLOT: B256 =
    b256!("1ee222554989dda120e26ecacf756fe1235cd8d726706b57517715dde4f0c900");

/// The ERC-7201 base slot of cosmos/ibc-contracts' `IBCStoreUpgradeable` commitments.
pub const ICS26_COMMITMENTS_SLOT: B256 =
    b256!("1260944489272988d9df285149b5aa1b0f48f2136d6f416159f840a3e0747600");

/// The largest header accepted (RLP bytes): far above a header of a few hundred validators.
pub const MAX_HEADER_BYTES: usize = 256 * 1024;

/// At most this many nodes in one Merkle-Patricia proof (a 64-nibble key has at most 64
/// branches on its path, plus extensions and the leaf).
pub const MAX_PROOF_NODES: usize = 130;

/// Where and how the proven IBC handler stores commitments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageLayout {
    /// DESIGN §5 (yui-ibc-solidity): slot = keccak256(keccak256(path) ‖
    /// [`IBC_COMMITMENTS_SLOT`]), stored value = keccak256(commitment bytes).
    YuiIbcStore,
    /// cosmos/ibc-contracts: slot = keccak256(keccak256(path) ‖ [`ICS26_COMMITMENTS_SLOT`]),
    /// stored value = the 32-byte commitment itself.
    Ics26Router,
}

impl StorageLayout {
    /// The storage slot holding the commitment of `path`.
    pub fn slot(&self, path: &[u8]) -> B256 {
        let base = match self {
            Self::YuiIbcStore => IBC_COMMITMENTS_SLOT,
            Self::Ics26Router => ICS26_COMMITMENTS_SLOT,
        };
        let mut preimage = [0u8; 64];
        preimage[..32].copy_from_slice(keccak256(path).as_slice());
        preimage[32..].copy_from_slice(base.as_slice());
        keccak256(preimage)
    }

    /// The word stored for `value`.
    pub fn stored_value(&self, value: &[u8]) -> Result<B256, QbftElcError> {
        let word = match self {
            Self::YuiIbcStore => keccak256(value),
            Self::Ics26Router => B256::try_from(value)
                .map_err(|_| QbftElcError::InvalidValue("the commitment must be 32 bytes"))?,
        };
        if word.is_zero() {
            return Err(QbftElcError::InvalidValue("a zero word is never stored"));
        }
        Ok(word)
    }
}

/// The client state of the QBFT ELC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QbftClientState {
    /// The chain's EIP-155 chain id (identifies the chain; not checked in headers, which do not
    /// carry it).
    pub chain_id: u64,
    /// The IBC handler contract whose storage is proven.
    pub ibc_address: Address,
    /// How the handler stores commitments.
    pub layout: StorageLayout,
    /// How long a consensus state can be updated from.
    pub trusting_period: Duration,
    /// How far a header's timestamp may be ahead of `now`.
    pub max_clock_drift: Duration,
    /// The highest height with a consensus state.
    pub latest_height: u64,
    /// Set by misbehaviour; a frozen client refuses everything.
    pub frozen: bool,
}

/// What the client trusts at one height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QbftConsensusState {
    /// The block hash (Besu QBFT rule: round 0, no seals).
    pub block_hash: B256,
    /// The world-state root.
    pub state_root: B256,
    /// The block timestamp (Unix seconds).
    pub timestamp: u64,
    /// The validator set in the header's extraData.
    pub validators: Vec<Address>,
}

/// An update: a sealed header and the height of the consensus state it is verified from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QbftHeader {
    /// The header's RLP, seals included.
    pub header_rlp: Bytes,
    /// The trusted height to verify it from.
    pub trusted_height: u64,
}

/// Two headers for one height, each verified from a trusted consensus state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QbftMisbehaviour {
    /// The first header.
    pub header_1: QbftHeader,
    /// The second header.
    pub header_2: QbftHeader,
}

/// An `eth_getProof` answer for one storage slot of the IBC handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageProof {
    /// The handler's account proof (`accountProof`) against the state root.
    pub account_proof: AccountProof,
    /// The slot's storage proof (`storageProof[0].proof`) against the account's storage root.
    pub storage_proof: Vec<Bytes>,
}

/// The nodes of an account proof, root first.
pub type AccountProof = Vec<Bytes>;

/// Why the QBFT ELC refuses something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QbftElcError {
    /// The client is frozen (misbehaviour was seen).
    #[error("the client is frozen")]
    Frozen,
    /// The header does not decode or its seals do not meet the rules.
    #[error(transparent)]
    Header(#[from] QbftError),
    /// No consensus state is stored at that height.
    #[error("no consensus state at height {0}")]
    NoConsensusState(u64),
    /// The header's RLP is over [`MAX_HEADER_BYTES`].
    #[error("the header is {got} bytes, over the limit")]
    HeaderTooLarge {
        /// Its size.
        got: usize,
    },
    /// The header is not above its trusted height.
    #[error("header height {height} is not above the trusted height {trusted}")]
    HeightNotAfterTrusted {
        /// The header's height.
        height: u64,
        /// The trusted height.
        trusted: u64,
    },
    /// The header's timestamp is zero.
    #[error("the header timestamp is zero")]
    ZeroTimestamp,
    /// The header is not later than the trusted state.
    #[error("header timestamp {header} is not after the trusted timestamp {trusted}")]
    TimestampNotAfterTrusted {
        /// The header's timestamp.
        header: u64,
        /// The trusted state's timestamp.
        trusted: u64,
    },
    /// The trusted consensus state is older than the trusting period.
    #[error("the trusted consensus state at height {height} is outside the trusting period")]
    TrustedStateExpired {
        /// The trusted height.
        height: u64,
    },
    /// The header's timestamp is beyond `now` plus the maximum clock drift.
    #[error("header timestamp {timestamp} is beyond now plus the maximum clock drift")]
    HeaderFromFuture {
        /// The header's timestamp.
        timestamp: u64,
    },
    /// An adjacent header does not name the trusted block as its parent.
    #[error("the header at height {height} does not follow the trusted block")]
    ParentHashMismatch {
        /// The header's height.
        height: u64,
    },
    /// The initial client state is unusable.
    #[error("invalid client state: {0}")]
    InvalidClientState(&'static str),
    /// The initial consensus state is unusable.
    #[error("invalid consensus state: {0}")]
    InvalidConsensusState(&'static str),
    /// A proof's bytes do not decode.
    #[error("the proof does not decode: {0}")]
    ProofDecode(String),
    /// The account proof does not verify against the state root.
    #[error("the account proof does not verify: {0}")]
    AccountProof(String),
    /// The account proof proves that the IBC handler has no account.
    #[error("the IBC handler has no account at that height")]
    AccountAbsent,
    /// The storage proof does not prove the claim against the storage root.
    #[error("the storage proof does not verify: {0}")]
    StorageProof(String),
    /// The value cannot be a stored commitment.
    #[error("invalid commitment value: {0}")]
    InvalidValue(&'static str),
    /// The evidence is not misbehaviour.
    #[error("not misbehaviour: {0}")]
    NotMisbehaviour(&'static str),
}

/// The QBFT light client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QbftClient;

fn check_validators(validators: &[Address]) -> Result<(), QbftElcError> {
    if validators.is_empty() || validators.contains(&Address::ZERO) {
        return Err(QbftElcError::InvalidConsensusState(
            "the validator set is empty or holds the zero address",
        ));
    }
    let mut sorted = validators.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != validators.len() {
        return Err(QbftElcError::InvalidConsensusState(
            "the validator set holds duplicates",
        ));
    }
    Ok(())
}

impl QbftClient {
    /// Verifies `update` against its trusted consensus state at `now` and returns its height
    /// and the consensus state it yields.
    pub fn verify_header(
        client_state: &QbftClientState,
        states: &dyn ConsensusStates<QbftConsensusState>,
        update: &QbftHeader,
        now: Duration,
    ) -> Result<(u64, QbftConsensusState), QbftElcError> {
        if client_state.frozen {
            return Err(QbftElcError::Frozen);
        }
        let trusted_height = update.trusted_height;
        let trusted = states
            .get(trusted_height)
            .ok_or(QbftElcError::NoConsensusState(trusted_height))?;
        if update.header_rlp.len() > MAX_HEADER_BYTES {
            return Err(QbftElcError::HeaderTooLarge {
                got: update.header_rlp.len(),
            });
        }
        let header = Header::decode(&update.header_rlp)?;
        header.check_bft_constants()?;
        let (height, timestamp) = (header.number(), header.timestamp());
        if height <= trusted_height {
            return Err(QbftElcError::HeightNotAfterTrusted {
                height,
                trusted: trusted_height,
            });
        }
        if timestamp == 0 {
            return Err(QbftElcError::ZeroTimestamp);
        }
        if timestamp <= trusted.timestamp {
            return Err(QbftElcError::TimestampNotAfterTrusted {
                header: timestamp,
                trusted: trusted.timestamp,
            });
        }
        // The header is later than the trusted state, so it is inside the period too.
        let period = client_state.trusting_period;
        if Duration::from_secs(trusted.timestamp).saturating_add(period) <= now {
            return Err(QbftElcError::TrustedStateExpired {
                height: trusted_height,
            });
        }
        if Duration::from_secs(timestamp) > now.saturating_add(client_state.max_clock_drift) {
            return Err(QbftElcError::HeaderFromFuture { timestamp });
        }
        if height == trusted_height + 1 && header.parent_hash() != trusted.block_hash {
            return Err(QbftElcError::ParentHashMismatch { height });
        }
        let check = kh_qbft::skip_check(&header, &trusted.validators)?;
        tracing::debug!(
            height,
            trusted_height,
            signers = check.signers.len(),
            trusted_overlap = check.trusted_overlap,
            "qbft header verified"
        );
        Ok((
            height,
            QbftConsensusState {
                block_hash: header.block_hash(),
                state_root: header.state_root(),
                timestamp,
                validators: header.extra_data().validators.clone(),
            },
        ))
    }

    /// The IBC handler's storage root at `height`, proven by `account_proof` against the
    /// consensus state's state root.
    pub fn storage_root(
        client_state: &QbftClientState,
        states: &dyn ConsensusStates<QbftConsensusState>,
        height: u64,
        account_proof: &[Bytes],
    ) -> Result<B256, QbftElcError> {
        if client_state.frozen {
            return Err(QbftElcError::Frozen);
        }
        let consensus = states
            .get(height)
            .ok_or(QbftElcError::NoConsensusState(height))?;
        let account = verify_account(
            consensus.state_root,
            client_state.ibc_address,
            account_proof,
        )?
        .ok_or(QbftElcError::AccountAbsent)?;
        Ok(account.storage_root)
    }
}

impl LightClient for QbftClient {
    type ClientState = QbftClientState;
    type ConsensusState = QbftConsensusState;
    type Header = QbftHeader;
    type Proof = StorageProof;
    type Misbehaviour = QbftMisbehaviour;
    type Error = QbftElcError;

    fn create(
        client_state: &QbftClientState,
        consensus_state: &QbftConsensusState,
    ) -> Result<u64, QbftElcError> {
        if client_state.frozen {
            return Err(QbftElcError::InvalidClientState("created frozen"));
        }
        if client_state.trusting_period.is_zero() {
            return Err(QbftElcError::InvalidClientState("zero trusting period"));
        }
        if client_state.ibc_address == Address::ZERO {
            return Err(QbftElcError::InvalidClientState(
                "the IBC handler is the zero address",
            ));
        }
        if consensus_state.timestamp == 0 {
            return Err(QbftElcError::InvalidConsensusState("zero timestamp"));
        }
        check_validators(&consensus_state.validators)?;
        Ok(client_state.latest_height)
    }

    fn update(
        client_state: &QbftClientState,
        states: &dyn ConsensusStates<QbftConsensusState>,
        header: &QbftHeader,
        now: Duration,
    ) -> Result<UpdateOutcome<QbftClientState, QbftConsensusState>, QbftElcError> {
        let (height, consensus) = Self::verify_header(client_state, states, header, now)?;
        if let Some(stored) = states.get(height) {
            if stored.block_hash == consensus.block_hash {
                return Ok(UpdateOutcome::Unchanged { height });
            }
            tracing::warn!(height, "conflicting QBFT header: the client is frozen");
            return Ok(UpdateOutcome::Frozen {
                client_state: QbftClientState {
                    frozen: true,
                    ..client_state.clone()
                },
                height,
            });
        }
        // Block time never decreases with height: a valid header whose time is before a lower
        // stored state's or after a higher one's proves a fork. (Equal times are not evidence:
        // a chain with sub-second blocks, like the devnet, seals several in one second.)
        let earlier = states
            .below(height)
            .is_some_and(|(_, s)| s.timestamp > consensus.timestamp);
        let later = states
            .above(height)
            .is_some_and(|(_, s)| s.timestamp < consensus.timestamp);
        if earlier || later {
            tracing::warn!(
                height,
                "QBFT header out of time order: the client is frozen"
            );
            return Ok(UpdateOutcome::Frozen {
                client_state: QbftClientState {
                    frozen: true,
                    ..client_state.clone()
                },
                height,
            });
        }
        Ok(UpdateOutcome::Updated {
            client_state: QbftClientState {
                latest_height: client_state.latest_height.max(height),
                ..client_state.clone()
            },
            trusted_height: header.trusted_height,
            consensus_states: vec![(height, consensus)],
        })
    }

    fn verify_membership(
        client_state: &QbftClientState,
        states: &dyn ConsensusStates<QbftConsensusState>,
        height: u64,
        proof: &StorageProof,
        path: &[u8],
        value: &[u8],
    ) -> Result<(), QbftElcError> {
        let word = client_state.layout.stored_value(value)?;
        let root = Self::storage_root(client_state, states, height, &proof.account_proof)?;
        verify_storage(
            root,
            client_state.layout.slot(path),
            Some(word),
            &proof.storage_proof,
        )
    }

    fn verify_non_membership(
        client_state: &QbftClientState,
        states: &dyn ConsensusStates<QbftConsensusState>,
        height: u64,
        proof: &StorageProof,
        path: &[u8],
    ) -> Result<(), QbftElcError> {
        let root = Self::storage_root(client_state, states, height, &proof.account_proof)?;
        verify_storage(
            root,
            client_state.layout.slot(path),
            None,
            &proof.storage_proof,
        )
    }

    fn check_misbehaviour(
        client_state: &QbftClientState,
        states: &dyn ConsensusStates<QbftConsensusState>,
        misbehaviour: &QbftMisbehaviour,
        now: Duration,
    ) -> Result<QbftClientState, QbftElcError> {
        let (h1, c1) = Self::verify_header(client_state, states, &misbehaviour.header_1, now)?;
        let (h2, c2) = Self::verify_header(client_state, states, &misbehaviour.header_2, now)?;
        if h1 != h2 {
            return Err(QbftElcError::NotMisbehaviour(
                "the headers are at different heights",
            ));
        }
        if c1.block_hash == c2.block_hash {
            return Err(QbftElcError::NotMisbehaviour(
                "the headers are the same block",
            ));
        }
        tracing::warn!(height = h1, "QBFT misbehaviour: the client is frozen");
        Ok(QbftClientState {
            frozen: true,
            ..client_state.clone()
        })
    }
}

/// An Ethereum account as the state trie stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The nonce.
    pub nonce: u64,
    /// The balance (wei).
    pub balance: U256,
    /// The root of the account's storage trie.
    pub storage_root: B256,
    /// keccak256 of the account's code.
    pub code_hash: B256,
}

impl Account {
    /// Decodes `RLP([nonce, balance, storageRoot, codeHash])`, refusing anything else.
    pub fn decode_exact(bytes: &[u8]) -> Result<Self, QbftElcError> {
        let err = |e: alloy_rlp::Error| QbftElcError::AccountProof(format!("account RLP: {e}"));
        let mut rest = bytes;
        let header = alloy_rlp::Header::decode(&mut rest).map_err(err)?;
        if !header.list || rest.len() != header.payload_length {
            return Err(QbftElcError::AccountProof(
                "the account is not one RLP list".into(),
            ));
        }
        let account = Self {
            nonce: u64::decode(&mut rest).map_err(err)?,
            balance: U256::decode(&mut rest).map_err(err)?,
            storage_root: B256::decode(&mut rest).map_err(err)?,
            code_hash: B256::decode(&mut rest).map_err(err)?,
        };
        if !rest.is_empty() {
            return Err(QbftElcError::AccountProof(
                "the account has more than 4 fields".into(),
            ));
        }
        Ok(account)
    }
}

/// Splits an RLP list of proof nodes (each node embedded as its own RLP item, as in the
/// "EIP-1186 RLP proof" form) into the nodes.
pub fn decode_proof_nodes(bytes: &[u8]) -> Result<Vec<Bytes>, QbftElcError> {
    let err = |e: alloy_rlp::Error| QbftElcError::ProofDecode(e.to_string());
    let mut rest = bytes;
    let outer = alloy_rlp::Header::decode(&mut rest).map_err(err)?;
    if !outer.list {
        return Err(QbftElcError::ProofDecode("not an RLP list".into()));
    }
    if rest.len() != outer.payload_length {
        return Err(QbftElcError::ProofDecode(
            "trailing bytes after the list".into(),
        ));
    }
    let mut nodes = Vec::new();
    while !rest.is_empty() {
        if nodes.len() == MAX_PROOF_NODES {
            return Err(QbftElcError::ProofDecode("too many nodes".into()));
        }
        let start = rest;
        let item = alloy_rlp::Header::decode(&mut rest).map_err(err)?;
        let header_len = start.len() - rest.len();
        let total = header_len
            .checked_add(item.payload_length)
            .filter(|t| *t <= start.len())
            .ok_or_else(|| QbftElcError::ProofDecode("a node overruns the list".into()))?;
        nodes.push(Bytes::copy_from_slice(&start[..total]));
        rest = &start[total..];
    }
    Ok(nodes)
}

fn check_node_count(proof: &[Bytes]) -> Result<(), QbftElcError> {
    if proof.len() > MAX_PROOF_NODES {
        return Err(QbftElcError::ProofDecode("too many nodes".into()));
    }
    Ok(())
}

/// Verifies an account proof of `address` against `state_root`: `Some(account)` when the
/// account exists, `None` when the proof shows it absent.
pub fn verify_account(
    state_root: B256,
    address: Address,
    proof: &[Bytes],
) -> Result<Option<Account>, QbftElcError> {
    check_node_count(proof)?;
    let key = Nibbles::unpack(keccak256(address));
    // The account's RLP is the value of the proof's last node when that node is its leaf (an
    // account's leaf is never embedded in its parent: its RLP is over 32 bytes); the walk from
    // the root then decides whether it really is the leaf of this key.
    let candidate = proof
        .last()
        .and_then(|node| match TrieNode::decode(&mut node.as_ref()) {
            Ok(TrieNode::Leaf(leaf)) => Some(leaf.value),
            _ => None,
        });
    if let Some(value) = candidate
        && alloy_trie::proof::verify_proof(state_root, key, Some(value.clone()), proof).is_ok()
    {
        return Account::decode_exact(&value).map(Some);
    }
    alloy_trie::proof::verify_proof(state_root, key, None, proof)
        .map_err(|e| QbftElcError::AccountProof(e.to_string()))?;
    Ok(None)
}

/// Verifies a storage proof against `storage_root`: that `slot` holds `value` (`Some`), or is
/// empty (`None`). The trie key is keccak256(slot); the leaf holds the RLP of the word with its
/// leading zero bytes removed.
pub fn verify_storage(
    storage_root: B256,
    slot: B256,
    value: Option<B256>,
    proof: &[Bytes],
) -> Result<(), QbftElcError> {
    check_node_count(proof)?;
    let key = Nibbles::unpack(keccak256(slot));
    let expected = value.map(|word| alloy_rlp::encode(U256::from_be_bytes(word.0)));
    alloy_trie::proof::verify_proof(storage_root, key, expected, proof)
        .map_err(|e| QbftElcError::StorageProof(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_compute_the_documented_slots() {
        // vectors/qbft: the ibc-contracts membership path and slot.
        let path = alloy_primitives::hex!("626573752d636861696e2d62010000000000000001");
        assert_eq!(
            StorageLayout::Ics26Router.slot(&path),
            b256!("54dec64b8cfb867e4e0b052552b929bd5886439932474991c8895d84bcc8c6d9")
        );
        // vectors/mpt: the yui-ibc-solidity slot of clients/lcp-client-0/clientState.
        assert_eq!(
            StorageLayout::YuiIbcStore.slot(b"clients/lcp-client-0/clientState"),
            b256!("35c1d86194f8ce30f3fa3b209e77f0af2cbcb385bcf2b13bf0f641d4cf40f711")
        );
        assert!(StorageLayout::Ics26Router.stored_value(&[1; 31]).is_err());
        assert!(StorageLayout::Ics26Router.stored_value(&[0; 32]).is_err());
    }

    #[test]
    fn proof_node_lists_decode_strictly() {
        let nodes = decode_proof_nodes(&[0xc4, 0xc1, 0x01, 0xc1, 0x02]).unwrap_or_default();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].as_ref(), [0xc1, 0x02]);
        assert!(decode_proof_nodes(&[0xc4, 0xc1, 0x01, 0xc1]).is_err());
        assert!(decode_proof_nodes(&[0xc4, 0xc1, 0x01, 0xc1, 0x02, 0x00]).is_err());
        assert!(decode_proof_nodes(&[0x82, 0x01, 0x02]).is_err());
        assert!(decode_proof_nodes(&[]).is_err());
    }
}
