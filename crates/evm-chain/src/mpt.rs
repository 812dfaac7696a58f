//! A persistent Merkle-Patricia trie with cached node hashes.
//!
//! Keys are 32-byte hashes (the secure tries of Ethereum: `keccak(address)` for accounts,
//! `keccak(slot)` for storage), so every key has 64 nibbles and no key is a prefix of another:
//! branch nodes never carry a value. Nodes are immutable and shared through [`Arc`]; an update
//! copies only the nodes on the key's path (O(depth) = O(log₁₆ n)) and leaves every other subtree,
//! with the reference (hash or inline encoding) it has already computed, shared with earlier
//! snapshots. Cloning a [`Trie`] is O(1), so each block keeps its own snapshot for free.
//!
//! Encodings come from `alloy-trie`'s node types, so roots equal those of its `HashBuilder` and
//! of every Ethereum client. Proofs follow geth's `eth_getProof`: the nodes on the key's path from
//! the root, omitting nodes embedded inline in their parent (under 32 bytes, never the root);
//! the proof of an empty trie is empty.

use std::sync::{Arc, OnceLock};

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_trie::nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode};
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles, TrieMask};

/// A snapshot of a trie mapping 32-byte keys to non-empty byte strings.
#[derive(Clone, Default)]
pub(crate) struct Trie {
    root: Option<Arc<Node>>,
    len: usize,
}

impl std::fmt::Debug for Trie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trie")
            .field("len", &self.len)
            .field("root", &self.root_hash())
            .finish()
    }
}

/// Two tries are equal when their roots are (the root commits to every key and value).
impl PartialEq for Trie {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.root_hash() == other.root_hash()
    }
}

impl Eq for Trie {}

struct Node {
    kind: Kind,
    /// The node's reference in its parent: its RLP when shorter than 32 bytes, else
    /// `rlp(keccak(rlp))`. Computed once, on first use.
    reference: OnceLock<RlpNode>,
}

enum Kind {
    Leaf {
        /// The rest of the key below this node.
        key: Nibbles,
        value: Box<[u8]>,
    },
    Extension {
        key: Nibbles,
        child: Arc<Node>,
    },
    Branch {
        children: [Option<Arc<Node>>; 16],
    },
}

fn node(kind: Kind) -> Arc<Node> {
    Arc::new(Node {
        kind,
        reference: OnceLock::new(),
    })
}

fn leaf(key: Nibbles, value: &[u8]) -> Arc<Node> {
    node(Kind::Leaf {
        key,
        value: value.into(),
    })
}

/// `child` below a path of `prefix`: the child itself when the prefix is empty; a longer leaf or
/// extension when the child is one; else an extension.
fn prefixed(prefix: Nibbles, child: Arc<Node>) -> Arc<Node> {
    if prefix.is_empty() {
        return child;
    }
    match &child.kind {
        Kind::Leaf { key, value } => node(Kind::Leaf {
            key: prefix.join(key),
            value: value.clone(),
        }),
        Kind::Extension { key, child } => node(Kind::Extension {
            key: prefix.join(key),
            child: child.clone(),
        }),
        Kind::Branch { .. } => node(Kind::Extension { key: prefix, child }),
    }
}

/// A branch with two children at distinct nibbles.
fn branch2(a: (u8, Arc<Node>), b: (u8, Arc<Node>)) -> Arc<Node> {
    let mut children: [Option<Arc<Node>>; 16] = Default::default();
    children[usize::from(a.0)] = Some(a.1);
    children[usize::from(b.0)] = Some(b.1);
    node(Kind::Branch { children })
}

impl Node {
    /// The node's reference in its parent, computing (and caching) uncached descendants.
    fn reference(&self, buf: &mut Vec<u8>) -> &RlpNode {
        if let Some(r) = self.reference.get() {
            return r;
        }
        let r = self.encode_into(buf);
        self.reference.get_or_init(|| r)
    }

    /// RLP-encodes this node into `buf` (cleared first) and returns its reference.
    fn encode_into(&self, buf: &mut Vec<u8>) -> RlpNode {
        match &self.kind {
            Kind::Leaf { key, value } => {
                buf.clear();
                LeafNodeRef::new(key, value).rlp(buf)
            }
            Kind::Extension { key, child } => {
                let child_ref = child.reference(buf).clone();
                buf.clear();
                ExtensionNodeRef::new(key, &child_ref).rlp(buf)
            }
            Kind::Branch { children } => {
                let mut stack = Vec::with_capacity(16);
                let mut mask = TrieMask::default();
                for (i, child) in children.iter().enumerate() {
                    if let Some(child) = child {
                        stack.push(child.reference(buf).clone());
                        mask.set_bit(i as u8);
                    }
                }
                buf.clear();
                BranchNodeRef::new(&stack, mask).rlp(buf)
            }
        }
    }

    /// The full RLP encoding of this node.
    fn encoding(&self) -> Bytes {
        let mut buf = Vec::with_capacity(128);
        self.encode_into(&mut buf);
        Bytes::from(buf)
    }
}

fn nibbles(key: &B256) -> Nibbles {
    Nibbles::unpack_array(&key.0)
}

fn insert(at: Option<&Arc<Node>>, path: Nibbles, value: &[u8]) -> (Arc<Node>, bool) {
    let Some(current) = at else {
        return (leaf(path, value), true);
    };
    match &current.kind {
        Kind::Leaf { key, value: old } => {
            if *key == path {
                if **old == *value {
                    return (current.clone(), false);
                }
                return (leaf(path, value), false);
            }
            // Equal-length keys that differ: they part at some nibble before the end.
            let common = key.common_prefix_length(&path);
            let split = branch2(
                (
                    key.get_unchecked(common),
                    leaf(key.slice(common + 1..), old),
                ),
                (
                    path.get_unchecked(common),
                    leaf(path.slice(common + 1..), value),
                ),
            );
            (prefixed(key.slice(..common), split), true)
        }
        Kind::Extension { key, child } => {
            let common = key.common_prefix_length(&path);
            if common == key.len() {
                let (new_child, added) = insert(Some(child), path.slice(common..), value);
                let new = node(Kind::Extension {
                    key: *key,
                    child: new_child,
                });
                return (new, added);
            }
            let rest = prefixed(key.slice(common + 1..), child.clone());
            let split = branch2(
                (key.get_unchecked(common), rest),
                (
                    path.get_unchecked(common),
                    leaf(path.slice(common + 1..), value),
                ),
            );
            (prefixed(key.slice(..common), split), true)
        }
        Kind::Branch { children } => {
            let i = usize::from(path.get_unchecked(0));
            let (new_child, added) = insert(children[i].as_ref(), path.slice(1..), value);
            let mut children = children.clone();
            children[i] = Some(new_child);
            (node(Kind::Branch { children }), added)
        }
    }
}

enum Removed {
    NotFound,
    Gone,
    Replaced(Arc<Node>),
}

fn remove(current: &Arc<Node>, path: Nibbles) -> Removed {
    match &current.kind {
        Kind::Leaf { key, .. } => {
            if *key == path {
                Removed::Gone
            } else {
                Removed::NotFound
            }
        }
        Kind::Extension { key, child } => {
            if !path.starts_with(key) {
                return Removed::NotFound;
            }
            match remove(child, path.slice(key.len()..)) {
                Removed::NotFound => Removed::NotFound,
                // An extension's child is a branch with at least two children: never empties.
                Removed::Gone => Removed::Gone,
                Removed::Replaced(new) => Removed::Replaced(prefixed(*key, new)),
            }
        }
        Kind::Branch { children } => {
            let i = usize::from(path.get_unchecked(0));
            let Some(child) = &children[i] else {
                return Removed::NotFound;
            };
            let mut children = children.clone();
            match remove(child, path.slice(1..)) {
                Removed::NotFound => return Removed::NotFound,
                Removed::Replaced(new) => {
                    children[i] = Some(new);
                    return Removed::Replaced(node(Kind::Branch { children }));
                }
                Removed::Gone => children[i] = None,
            }
            let mut left = children
                .iter()
                .enumerate()
                .filter_map(|(j, c)| c.as_ref().map(|c| (j, c)));
            match (left.next(), left.next()) {
                (None, _) => Removed::Gone,
                (Some((j, only)), None) => {
                    let prefix = Nibbles::from_nibbles_unchecked([j as u8]);
                    Removed::Replaced(prefixed(prefix, only.clone()))
                }
                _ => Removed::Replaced(node(Kind::Branch { children })),
            }
        }
    }
}

impl Trie {
    /// An empty trie.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie has no keys.
    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Sets `key` to `value`; an empty value removes the key.
    pub(crate) fn insert(&mut self, key: &B256, value: &[u8]) {
        if value.is_empty() {
            self.remove(key);
            return;
        }
        let (root, added) = insert(self.root.as_ref(), nibbles(key), value);
        self.root = Some(root);
        if added {
            self.len += 1;
        }
    }

    /// Removes `key`; returns whether it was present.
    pub(crate) fn remove(&mut self, key: &B256) -> bool {
        let Some(root) = &self.root else {
            return false;
        };
        match remove(root, nibbles(key)) {
            Removed::NotFound => return false,
            Removed::Gone => self.root = None,
            Removed::Replaced(new) => self.root = Some(new),
        }
        self.len -= 1;
        true
    }

    /// The value of `key`.
    pub(crate) fn get(&self, key: &B256) -> Option<&[u8]> {
        let mut path = nibbles(key);
        let mut at = self.root.as_ref()?;
        loop {
            match &at.kind {
                Kind::Leaf { key, value } => return (*key == path).then_some(&**value),
                Kind::Extension { key, child } => {
                    if !path.starts_with(key) {
                        return None;
                    }
                    path = path.slice(key.len()..);
                    at = child;
                }
                Kind::Branch { children } => {
                    at = children[usize::from(path.get_unchecked(0))].as_ref()?;
                    path = path.slice(1..);
                }
            }
        }
    }

    /// The root hash; O(nodes changed since the last call on this or a shared snapshot).
    pub(crate) fn root_hash(&self) -> B256 {
        let Some(root) = &self.root else {
            return EMPTY_ROOT_HASH;
        };
        let mut buf = Vec::with_capacity(128);
        let reference = root.reference(&mut buf);
        match reference.as_hash() {
            Some(hash) => hash,
            // A root shorter than 32 bytes is still referred to by its hash.
            None => keccak256(reference.as_slice()),
        }
    }

    /// The proof of `key` (inclusion or exclusion): the encodings of the nodes on its path,
    /// root first, without nodes embedded in their parent. Empty for the empty trie.
    pub(crate) fn proof(&self, key: &B256) -> Vec<Bytes> {
        let mut out = Vec::new();
        let Some(mut at) = self.root.as_ref() else {
            return out;
        };
        let mut path = nibbles(key);
        let mut buf = Vec::with_capacity(128);
        loop {
            let is_root = out.is_empty();
            if is_root || at.reference(&mut buf).is_hash() {
                out.push(at.encoding());
            }
            match &at.kind {
                Kind::Leaf { .. } => return out,
                Kind::Extension { key, child } => {
                    if !path.starts_with(key) {
                        return out;
                    }
                    path = path.slice(key.len()..);
                    at = child;
                }
                Kind::Branch { children } => {
                    let Some(child) = children[usize::from(path.get_unchecked(0))].as_ref() else {
                        return out;
                    };
                    path = path.slice(1..);
                    at = child;
                }
            }
        }
    }

    /// Every `(key, value)` in key order (O(n); for tests).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(B256, Vec<u8>)> {
        fn walk(at: &Node, prefix: Nibbles, out: &mut Vec<(B256, Vec<u8>)>) {
            match &at.kind {
                Kind::Leaf { key, value } => {
                    let mut bytes = [0u8; 32];
                    prefix.join(key).pack_to(&mut bytes);
                    out.push((B256::from(bytes), value.to_vec()));
                }
                Kind::Extension { key, child } => walk(child, prefix.join(key), out),
                Kind::Branch { children } => {
                    for (i, child) in children.iter().enumerate() {
                        if let Some(child) = child {
                            let mut p = prefix;
                            p.push_unchecked(i as u8);
                            walk(child, p, out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.len);
        if let Some(root) = &self.root {
            walk(root, Nibbles::new(), &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alloy_trie::{HashBuilder, proof::ProofRetainer};
    use proptest::prelude::*;

    use super::*;

    /// Root and proof of `target` from alloy-trie's `HashBuilder` over sorted entries.
    fn reference(map: &BTreeMap<B256, Vec<u8>>, target: Option<B256>) -> (B256, Vec<Bytes>) {
        let mut hb = match target {
            Some(t) => HashBuilder::default()
                .with_proof_retainer(ProofRetainer::new(vec![Nibbles::unpack(t)])),
            None => HashBuilder::default(),
        };
        for (k, v) in map {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        let root = hb.root();
        let mut proof = Vec::new();
        if let Some(t) = target {
            let nodes = hb.take_proof_nodes();
            for (_, node) in nodes.matching_nodes_sorted(&Nibbles::unpack(t)) {
                proof.push(node);
            }
        }
        (root, proof)
    }

    /// Keys drawn from a small pool share long prefixes (deep branches, extensions, and leaves
    /// short enough to be inlined) as well as random full-width keys.
    fn key() -> impl Strategy<Value = B256> {
        prop_oneof![
            any::<[u8; 32]>().prop_map(B256::from),
            (0u8..4, 0u8..4, 0u8..3).prop_map(|(a, b, c)| {
                let mut k = [0x5a; 32];
                k[0] = a;
                k[30] = b;
                k[31] = c;
                B256::from(k)
            }),
            any::<u16>().prop_map(|x| keccak256(x.to_be_bytes())),
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(B256, Vec<u8>),
        Delete(B256),
        DeleteExisting(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (key(), prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(k, v)| Op::Put(k, v)),
            1 => key().prop_map(Op::Delete),
            2 => any::<usize>().prop_map(Op::DeleteExisting),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// After every step of a random insert/update/delete sequence, the incremental root
        /// equals the HashBuilder's over the same map, earlier snapshots keep their roots, and
        /// proofs for present and absent keys equal the HashBuilder's (where no node on the path
        /// is inlined, which the HashBuilder would list and geth omits).
        #[test]
        fn matches_hash_builder(ops in prop::collection::vec(op(), 1..80), probe in key()) {
            let mut trie = Trie::new();
            let mut map = BTreeMap::new();
            let mut snapshots = Vec::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        trie.insert(&k, &v);
                        map.insert(k, v);
                    }
                    Op::Delete(k) => {
                        prop_assert_eq!(trie.remove(&k), map.remove(&k).is_some());
                    }
                    Op::DeleteExisting(i) => {
                        if !map.is_empty() {
                            let k = *map.keys().nth(i % map.len()).unwrap();
                            prop_assert!(trie.remove(&k));
                            map.remove(&k);
                        }
                    }
                }
                prop_assert_eq!(trie.len(), map.len());
                let root = reference(&map, None).0;
                prop_assert_eq!(trie.root_hash(), root);
                snapshots.push((trie.clone(), root));
            }
            for (snapshot, root) in &snapshots {
                prop_assert_eq!(snapshot.root_hash(), *root);
            }
            let entries: Vec<_> = map.iter().map(|(k, v)| (*k, v.clone())).collect();
            prop_assert_eq!(trie.entries(), entries);
            let targets: Vec<B256> = map.keys().copied().take(5).chain([probe]).collect();
            for t in targets {
                prop_assert_eq!(trie.get(&t), map.get(&t).map(Vec::as_slice));
                let (_, expected) = reference(&map, Some(t));
                let got = trie.proof(&t);
                if expected.iter().skip(1).all(|n| n.len() >= 32) && !map.is_empty() {
                    prop_assert_eq!(&got, &expected);
                }
                // Independently: the proof verifies against the root.
                let value = map.get(&t).cloned();
                let proven = alloy_trie::proof::verify_proof(
                    trie.root_hash(),
                    Nibbles::unpack(t),
                    value.clone(),
                    got.iter(),
                );
                prop_assert!(proven.is_ok(), "{:?}", proven);
            }
        }
    }

    #[test]
    fn empty_trie() {
        let mut trie = Trie::new();
        assert_eq!(trie.root_hash(), EMPTY_ROOT_HASH);
        assert!(trie.proof(&B256::ZERO).is_empty());
        assert!(!trie.remove(&B256::ZERO));
        trie.insert(&B256::ZERO, b"x");
        assert!(trie.remove(&B256::ZERO));
        assert_eq!(trie.root_hash(), EMPTY_ROOT_HASH);
        assert!(trie.is_empty());
    }

    #[test]
    fn snapshots_are_independent() {
        let mut a = Trie::new();
        for i in 0u32..1000 {
            a.insert(&keccak256(i.to_be_bytes()), &i.to_be_bytes());
        }
        let root_a = a.root_hash();
        let mut b = a.clone();
        b.insert(&keccak256(5u32.to_be_bytes()), b"changed");
        b.remove(&keccak256(6u32.to_be_bytes()));
        assert_eq!(a.root_hash(), root_a);
        assert_ne!(b.root_hash(), root_a);
        assert_eq!(
            a.get(&keccak256(6u32.to_be_bytes())),
            Some(&6u32.to_be_bytes()[..])
        );
        assert_eq!(b.get(&keccak256(6u32.to_be_bytes())), None);
    }
}
