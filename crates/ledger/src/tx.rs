//! Transactions: states, commands, component groups, the Merkle transaction id, signatures,
//! and filtered transactions that reveal chosen components with proofs to the id.
//!
//! Every component is encoded with BCS (canonical, deterministic) on its own. Its leaf hash is
//! `sha256(nonce ‖ bytes)` with `nonce = sha256(privacy_salt ‖ group ‖ index)`, so an
//! unrevealed component cannot be guessed from its hash. A group's root is
//! `sha256(count ‖ merkle_root(leaves))` (the count is bound so a filtered transaction cannot hide
//! members of a group it claims to show whole), and the transaction id is the Merkle root over
//! the group roots in [`ComponentGroup`] order.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::hash::{SecureHash, TxId, merkle_path, merkle_root, root_from_path};
use crate::identity::{KeyPair, Party, PublicKey, Signature};

/// Default network transaction size limit (R11): 10 MB.
pub const DEFAULT_MAX_TRANSACTION_SIZE: usize = 10 * 1024 * 1024;

/// A reference to an output of an earlier transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateRef {
    /// The producing transaction.
    pub tx_id: TxId,
    /// The output index.
    pub index: u32,
}

impl fmt::Display for StateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.tx_id, self.index)
    }
}

/// Identifies a contract (its verification code) in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContractId(pub String);

impl fmt::Display for ContractId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An output state: contract-specific data, the contract that governs it, its notary and the
/// keys of the parties that must learn about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionState {
    /// The governing contract.
    pub contract: ContractId,
    /// The notary that will order its consumption.
    pub notary: Party,
    /// Keys of the participants (they receive the transaction).
    pub participants: Vec<PublicKey>,
    /// The state's data, BCS-encoded by its contract.
    pub data: Vec<u8>,
}

impl TransactionState {
    /// Decodes the data as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, bcs::Error> {
        bcs::from_bytes(&self.data)
    }
}

/// A command: what the transaction does for a contract, and who must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The contract the command is for.
    pub contract: ContractId,
    /// Contract-specific command data (BCS).
    pub data: Vec<u8>,
    /// Keys that must sign the transaction.
    pub signers: Vec<PublicKey>,
}

/// A time window in milliseconds since the Unix epoch: `from` inclusive, `until` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    /// Earliest time (inclusive).
    pub from_ms: Option<u64>,
    /// Latest time (exclusive).
    pub until_ms: Option<u64>,
}

impl TimeWindow {
    /// Whether `now_ms` is inside the window.
    pub fn contains(&self, now_ms: u64) -> bool {
        self.from_ms.is_none_or(|f| now_ms >= f) && self.until_ms.is_none_or(|u| now_ms < u)
    }
}

/// The component groups, in the order their roots enter the transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum ComponentGroup {
    /// Consumed states.
    Inputs = 0,
    /// Produced states.
    Outputs = 1,
    /// Commands (with their signers).
    Commands = 2,
    /// The notary.
    Notary = 3,
    /// The time window.
    TimeWindow = 4,
    /// Reference states (read, not consumed).
    References = 5,
}

/// All groups in id order.
pub const GROUPS: [ComponentGroup; 6] = [
    ComponentGroup::Inputs,
    ComponentGroup::Outputs,
    ComponentGroup::Commands,
    ComponentGroup::Notary,
    ComponentGroup::TimeWindow,
    ComponentGroup::References,
];

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTransaction {
    /// Consumed states.
    pub inputs: Vec<StateRef>,
    /// Reference states.
    pub references: Vec<StateRef>,
    /// Produced states.
    pub outputs: Vec<TransactionState>,
    /// Commands.
    pub commands: Vec<Command>,
    /// The notary (required when there are inputs, references or a time window).
    pub notary: Option<Party>,
    /// Optional time window checked by the notary.
    pub time_window: Option<TimeWindow>,
    /// Random salt for the component nonces.
    pub privacy_salt: [u8; 32],
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // BCS encodes every type used here (no maps with non-canonical order, no floats, bounded
    // sequence lengths), so it cannot fail.
    bcs::to_bytes(value).expect("BCS encodes ledger components")
}

impl WireTransaction {
    /// The encoded components of each group, in group order.
    pub fn components(&self) -> [Vec<Vec<u8>>; 6] {
        [
            self.inputs.iter().map(encode).collect(),
            self.outputs.iter().map(encode).collect(),
            self.commands.iter().map(encode).collect(),
            self.notary.iter().map(encode).collect(),
            self.time_window.iter().map(encode).collect(),
            self.references.iter().map(encode).collect(),
        ]
    }

    fn nonce(&self, group: ComponentGroup, index: u32) -> SecureHash {
        SecureHash::of(&[&self.privacy_salt, &[group as u8], &index.to_be_bytes()])
    }

    fn leaves(&self) -> [Vec<SecureHash>; 6] {
        let components = self.components();
        let mut out: [Vec<SecureHash>; 6] = Default::default();
        for (g, comps) in GROUPS.iter().zip(components.iter()) {
            out[*g as usize] = comps
                .iter()
                .enumerate()
                .map(|(i, c)| SecureHash::of(&[&self.nonce(*g, i as u32).0, c]))
                .collect();
        }
        out
    }

    fn group_roots_of(leaves: &[Vec<SecureHash>; 6]) -> Vec<SecureHash> {
        leaves
            .iter()
            .map(|l| group_root(l.len() as u32, merkle_root(l)))
            .collect()
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        merkle_root(&Self::group_roots_of(&self.leaves()))
    }

    /// Every key named by a command.
    pub fn required_signers(&self) -> BTreeSet<PublicKey> {
        self.commands
            .iter()
            .flat_map(|c| c.signers.iter().copied())
            .collect()
    }

    /// Builds a filtered transaction revealing the components for which `reveal` is true.
    pub fn filter(
        &self,
        mut reveal: impl FnMut(ComponentGroup, u32) -> bool,
    ) -> FilteredTransaction {
        let leaves = self.leaves();
        let components = self.components();
        let group_roots = Self::group_roots_of(&leaves);
        let mut groups = Vec::new();
        for g in GROUPS {
            let gl = &leaves[g as usize];
            let revealed: Vec<FilteredComponent> = (0..gl.len() as u32)
                .filter(|i| reveal(g, *i))
                .map(|i| FilteredComponent {
                    index: i,
                    bytes: components[g as usize][i as usize].clone(),
                    nonce: self.nonce(g, i),
                    path: merkle_path(gl, i as usize),
                })
                .collect();
            if !revealed.is_empty() {
                groups.push(FilteredGroup {
                    group: g,
                    count: gl.len() as u32,
                    components: revealed,
                });
            }
        }
        FilteredTransaction {
            id: self.id(),
            group_roots,
            groups,
        }
    }

    /// A filtered transaction with what a non-validating notary needs: inputs, references,
    /// the notary, the time window and the commands (with their signers), each group whole.
    /// The outputs stay hidden.
    pub fn notary_view(&self) -> FilteredTransaction {
        self.filter(|g, _| {
            matches!(
                g,
                ComponentGroup::Inputs
                    | ComponentGroup::References
                    | ComponentGroup::Notary
                    | ComponentGroup::TimeWindow
                    | ComponentGroup::Commands
            )
        })
    }
}

fn group_root(count: u32, inner: SecureHash) -> SecureHash {
    SecureHash::of(&[&count.to_be_bytes(), &inner.0])
}

/// A signature over a transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionSignature {
    /// The signing key.
    pub by: PublicKey,
    /// Ed25519 over the 32-byte transaction id.
    pub signature: Signature,
}

impl TransactionSignature {
    /// `key`'s signature over the transaction id `id`.
    pub fn sign(key: &KeyPair, id: &TxId) -> Self {
        Self {
            by: key.public(),
            signature: key.sign(&id.0),
        }
    }

    /// Verifies this signature over `id`.
    pub fn verify(&self, id: &TxId) -> Result<(), crate::identity::BadSignature> {
        self.by.verify(&id.0, &self.signature)
    }
}

/// A transaction with its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    /// The transaction.
    pub tx: WireTransaction,
    /// Signatures over its id.
    pub sigs: Vec<TransactionSignature>,
}

/// Problems with a transaction's form or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// Over the network's size limit.
    #[error("transaction is {size} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A signature does not verify over the id.
    #[error("signature by {key} does not verify over transaction {tx}")]
    BadSignature {
        /// Transaction id.
        tx: TxId,
        /// The key.
        key: PublicKey,
    },
    /// Required signatures are missing.
    #[error("transaction {tx} is missing signatures by {missing:?}")]
    MissingSignatures {
        /// Transaction id.
        tx: TxId,
        /// Keys that did not sign.
        missing: Vec<PublicKey>,
    },
    /// Inputs, references or a time window without a notary.
    #[error("transaction {tx} has inputs, references or a time window but no notary")]
    NoNotary {
        /// Transaction id.
        tx: TxId,
    },
    /// A state is both consumed and referenced, or listed twice.
    #[error("transaction {tx} lists state {state} more than once")]
    DuplicateState {
        /// Transaction id.
        tx: TxId,
        /// The repeated reference.
        state: StateRef,
    },
    /// The bytes are not a transaction.
    #[error("malformed transaction encoding: {0}")]
    Decode(String),
}

impl SignedTransaction {
    /// `tx` with `key`'s signature (more are added as others sign).
    pub fn signed_by(tx: WireTransaction, key: &KeyPair) -> Self {
        let sig = TransactionSignature::sign(key, &tx.id());
        Self {
            tx,
            sigs: vec![sig],
        }
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.tx.id()
    }

    /// Canonical bytes (what is stored and sent).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes and checks the size limit before anything else.
    pub fn from_bytes(bytes: &[u8], max_size: usize) -> Result<Self, TransactionError> {
        if bytes.len() > max_size {
            return Err(TransactionError::TooLarge {
                size: bytes.len(),
                max: max_size,
            });
        }
        bcs::from_bytes(bytes).map_err(|e| TransactionError::Decode(e.to_string()))
    }

    /// Checks size, structure and that every present signature verifies and every required
    /// signer (command signers, plus the notary when `with_notary`) signed, except `allowed_missing`.
    pub fn verify(
        &self,
        max_size: usize,
        allowed_missing: &[PublicKey],
    ) -> Result<(), TransactionError> {
        let size = self.to_bytes().len();
        if size > max_size {
            return Err(TransactionError::TooLarge {
                size,
                max: max_size,
            });
        }
        let id = self.id();
        let needs_notary = !self.tx.inputs.is_empty()
            || !self.tx.references.is_empty()
            || self.tx.time_window.is_some();
        if needs_notary && self.tx.notary.is_none() {
            return Err(TransactionError::NoNotary { tx: id });
        }
        let mut seen = BTreeSet::new();
        for s in self.tx.inputs.iter().chain(&self.tx.references) {
            if !seen.insert(*s) {
                return Err(TransactionError::DuplicateState { tx: id, state: *s });
            }
        }
        for sig in &self.sigs {
            sig.verify(&id)
                .map_err(|_| TransactionError::BadSignature {
                    tx: id,
                    key: sig.by,
                })?;
        }
        let signed: BTreeSet<PublicKey> = self.sigs.iter().map(|s| s.by).collect();
        let mut required = self.tx.required_signers();
        if needs_notary && let Some(n) = &self.tx.notary {
            required.insert(n.owning_key);
        }
        let missing: Vec<PublicKey> = required
            .into_iter()
            .filter(|k| !signed.contains(k) && !allowed_missing.contains(k))
            .collect();
        if !missing.is_empty() {
            return Err(TransactionError::MissingSignatures { tx: id, missing });
        }
        Ok(())
    }
}

/// One revealed component with its proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilteredComponent {
    /// Position in its group.
    pub index: u32,
    /// The component's BCS bytes.
    pub bytes: Vec<u8>,
    /// Its nonce.
    pub nonce: SecureHash,
    /// Sibling hashes up to the group's inner root.
    pub path: Vec<SecureHash>,
}

/// The revealed part of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilteredGroup {
    /// Which group.
    pub group: ComponentGroup,
    /// How many components the group has in all.
    pub count: u32,
    /// The revealed components.
    pub components: Vec<FilteredComponent>,
}

/// A transaction with only chosen components revealed, each with a Merkle proof to the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilteredTransaction {
    /// The transaction id.
    pub id: TxId,
    /// The root of every group.
    pub group_roots: Vec<SecureHash>,
    /// Revealed groups.
    pub groups: Vec<FilteredGroup>,
}

/// A filtered transaction does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The group roots do not hash to the id.
    #[error("group roots do not hash to transaction id {0}")]
    RootMismatch(TxId),
    /// A component's proof fails.
    #[error("component {index} of group {group:?} does not prove into transaction {tx}")]
    BadProof {
        /// Transaction id.
        tx: TxId,
        /// Group.
        group: ComponentGroup,
        /// Index.
        index: u32,
    },
    /// A group needed whole is not fully revealed.
    #[error("group {group:?} of transaction {tx} is not fully revealed")]
    Incomplete {
        /// Transaction id.
        tx: TxId,
        /// Group.
        group: ComponentGroup,
    },
    /// A revealed component does not decode.
    #[error("component of group {group:?} does not decode: {reason}")]
    Decode {
        /// Group.
        group: ComponentGroup,
        /// Decoder message.
        reason: String,
    },
}

impl FilteredTransaction {
    /// Checks every revealed component against the id.
    pub fn verify(&self) -> Result<(), FilterError> {
        if self.group_roots.len() != GROUPS.len() || merkle_root(&self.group_roots) != self.id {
            return Err(FilterError::RootMismatch(self.id));
        }
        for g in &self.groups {
            let padded = (g.count as usize).max(2).next_power_of_two();
            for c in &g.components {
                let bad = || FilterError::BadProof {
                    tx: self.id,
                    group: g.group,
                    index: c.index,
                };
                if c.index >= g.count || c.path.len() != padded.trailing_zeros() as usize {
                    return Err(bad());
                }
                let leaf = SecureHash::of(&[&c.nonce.0, &c.bytes]);
                let inner = root_from_path(leaf, c.index as usize, &c.path);
                if group_root(g.count, inner) != self.group_roots[g.group as usize] {
                    return Err(bad());
                }
            }
        }
        Ok(())
    }

    /// The decoded components of a group that must be revealed whole (an absent group must be
    /// empty: its root must be the empty group's root).
    pub fn whole_group<T: DeserializeOwned>(
        &self,
        group: ComponentGroup,
    ) -> Result<Vec<T>, FilterError> {
        let incomplete = || FilterError::Incomplete { tx: self.id, group };
        let Some(g) = self.groups.iter().find(|g| g.group == group) else {
            return if self.group_roots.get(group as usize) == Some(&group_root(0, merkle_root(&[])))
            {
                Ok(vec![])
            } else {
                Err(incomplete())
            };
        };
        let indices: BTreeSet<u32> = g.components.iter().map(|c| c.index).collect();
        if indices.len() != g.count as usize || g.components.len() != g.count as usize {
            return Err(incomplete());
        }
        let mut sorted: Vec<&FilteredComponent> = g.components.iter().collect();
        sorted.sort_by_key(|c| c.index);
        sorted
            .into_iter()
            .map(|c| {
                bcs::from_bytes(&c.bytes).map_err(|e| FilterError::Decode {
                    group,
                    reason: e.to_string(),
                })
            })
            .collect()
    }
}
