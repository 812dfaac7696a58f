//! The host's authenticated store: a Jellyfish Merkle tree (the `jmt` crate, SHA-256) whose
//! version is the host height. Each height's root is committed in that height's host state;
//! values are proven against it with ICS-23 existence and non-existence proofs
//! ([`jmt::ics23_spec`]), and each transition from one height to the next carries a JMT update
//! proof that the host contract checks without the store.
//!
//! This type keeps the tree in memory; the node persists the node batches it produces
//! ([`PreparedUpdate::batch`]) with the host transaction.

use std::collections::{BTreeMap, HashMap};

use jmt::storage::{HasPreimage, LeafNode, Node, NodeBatch, NodeKey, TreeReader};
use jmt::{KeyHash, OwnedValue, RootHash, Sha256Jmt, Version};
use sha2::Sha256;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tree refused the operation (missing version, corrupt node).
    #[error("IBC store: {0}")]
    Tree(String),
    /// A height other than the next one was written.
    #[error("IBC store: height {got} written after {latest:?} (heights follow each other)")]
    NotNext {
        /// The height asked for.
        got: u64,
        /// The latest height written, if any.
        latest: Option<u64>,
    },
    /// The same key twice in one update.
    #[error("IBC store: key {0:?} written twice in one update")]
    Duplicate(Vec<u8>),
}

fn tree(e: anyhow::Error) -> StoreError {
    StoreError::Tree(e.to_string())
}

/// A key-value update: `None` deletes.
pub type Update = (Vec<u8>, Option<Vec<u8>>);

/// The key hash the tree orders and proves keys by.
pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash::with::<Sha256>(key)
}

/// The root of the empty store.
pub fn empty_root() -> [u8; 32] {
    Sha256Jmt::<HostStore>::EMPTY_ROOT.0
}

/// An update computed against the store, not yet applied: the new root, the updates in the
/// order the proof covers them (by key hash), the proof, and the tree nodes to persist.
#[derive(Debug)]
pub struct PreparedUpdate {
    /// The new height.
    pub height: u64,
    /// The store root at that height.
    pub root: [u8; 32],
    /// The updates, ordered by key hash.
    pub updates: Vec<Update>,
    /// The JMT update proof (borsh), checked by the host contract.
    pub proof: Vec<u8>,
    /// Tree nodes and values to persist.
    pub batch: NodeBatch,
}

/// The in-memory tree.
#[derive(Debug, Default)]
pub struct HostStore {
    nodes: HashMap<NodeKey, Node>,
    values: HashMap<KeyHash, BTreeMap<Version, Option<OwnedValue>>>,
    preimages: HashMap<KeyHash, Vec<u8>>,
    latest: Option<u64>,
}

impl TreeReader for HostStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self
            .values
            .get(&key_hash)
            .and_then(|h| h.range(..=max_version).next_back())
            .and_then(|(_, v)| v.clone()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        let mut best: Option<(NodeKey, LeafNode)> = None;
        for (key, node) in &self.nodes {
            if let Node::Leaf(leaf) = node
                && best
                    .as_ref()
                    .is_none_or(|(_, b)| leaf.key_hash() > b.key_hash())
            {
                best = Some((key.clone(), leaf.clone()));
            }
        }
        Ok(best)
    }
}

impl HasPreimage for HostStore {
    fn preimage(&self, key_hash: KeyHash) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.preimages.get(&key_hash).cloned())
    }
}

impl HostStore {
    /// An empty store (height 0: the empty root).
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest height written (`None`: only the empty genesis store).
    pub fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// The root at `height` (height 0 and any height before the first write: the empty root).
    pub fn root(&self, height: u64) -> Result<[u8; 32], StoreError> {
        if self.latest.is_none_or(|l| height > l) && height != 0 {
            return Err(StoreError::Tree(format!("no height {height} yet")));
        }
        if self.latest.is_none() || height == 0 {
            return Ok(empty_root());
        }
        Sha256Jmt::new(self)
            .get_root_hash(height)
            .map(|r| r.0)
            .map_err(tree)
    }

    /// Computes the store at `height` (the next height) after `updates`, with the proof of the
    /// transition; nothing changes until [`HostStore::apply`].
    pub fn prepare(&self, height: u64, updates: Vec<Update>) -> Result<PreparedUpdate, StoreError> {
        let next = self.latest.map_or(1, |l| l + 1);
        if height != next {
            return Err(StoreError::NotNext {
                got: height,
                latest: self.latest,
            });
        }
        let mut by_hash: BTreeMap<KeyHash, Update> = BTreeMap::new();
        for (key, value) in updates {
            let h = key_hash(&key);
            if by_hash.insert(h, (key.clone(), value)).is_some() {
                return Err(StoreError::Duplicate(key));
            }
        }
        let value_set: Vec<(KeyHash, Option<OwnedValue>)> =
            by_hash.iter().map(|(h, (_, v))| (*h, v.clone())).collect();
        let (root, proof, batch) = Sha256Jmt::new(self)
            .put_value_set_with_proof(value_set, height)
            .map_err(tree)?;
        let proof = borsh::to_vec(&proof).map_err(|e| StoreError::Tree(e.to_string()))?;
        Ok(PreparedUpdate {
            height,
            root: root.0,
            updates: by_hash.into_values().collect(),
            proof,
            batch: batch.node_batch,
        })
    }

    /// Applies a prepared update (the next height).
    pub fn apply(&mut self, prepared: &PreparedUpdate) -> Result<(), StoreError> {
        let next = self.latest.map_or(1, |l| l + 1);
        if prepared.height != next {
            return Err(StoreError::NotNext {
                got: prepared.height,
                latest: self.latest,
            });
        }
        for (k, n) in prepared.batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((version, h), v) in prepared.batch.values() {
            self.values
                .entry(*h)
                .or_default()
                .insert(*version, v.clone());
        }
        for (key, _) in &prepared.updates {
            self.preimages.insert(key_hash(key), key.clone());
        }
        self.latest = Some(prepared.height);
        Ok(())
    }

    /// The value of `key` at `height` (without a proof).
    pub fn get(&self, key: &[u8], height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_value_option(height, key_hash(key)).map_err(tree)
    }

    /// The value of `key` at `height` with its ICS-23 proof (existence, or non-existence when
    /// the key has no value).
    pub fn prove(
        &self,
        key: &[u8],
        height: u64,
    ) -> Result<(Option<Vec<u8>>, ics23::CommitmentProof), StoreError> {
        Sha256Jmt::new(self)
            .get_with_ics23_proof(key.to_vec(), height)
            .map_err(tree)
    }
}

/// Checks that `updates` (ordered by key hash, no key twice) take the store from `old_root`
/// to `new_root`, with the JMT update `proof` (borsh) — what the host contract runs.
pub fn verify_transition(
    old_root: [u8; 32],
    new_root: [u8; 32],
    updates: &[Update],
    proof: &[u8],
) -> Result<(), String> {
    let mut last: Option<KeyHash> = None;
    let mut hashed = Vec::with_capacity(updates.len());
    for (key, value) in updates {
        let h = key_hash(key);
        if last.is_some_and(|l| h <= l) {
            return Err("store updates are not ordered by key hash (or repeat a key)".into());
        }
        last = Some(h);
        hashed.push((h, value.clone()));
    }
    let proof: jmt::proof::UpdateMerkleProof<Sha256> =
        borsh::from_slice(proof).map_err(|e| format!("store update proof does not decode: {e}"))?;
    proof
        .verify_update(RootHash(old_root), RootHash(new_root), hashed)
        .map_err(|e| format!("store root does not follow from the updates: {e}"))
}
