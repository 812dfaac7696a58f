//! The world state: accounts, storage and code in persistent maps (cheap snapshots per block),
//! Ethereum's state and storage tries for roots and `eth_getProof`, and revm's `DatabaseRef`
//! seam over a snapshot.

use std::convert::Infallible;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::{
    EMPTY_ROOT_HASH, HashBuilder, KECCAK_EMPTY, Nibbles, TrieAccount, nodes::TrieNode,
    proof::ProofRetainer,
};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::primitives::StorageKey;
use revm::state::{AccountInfo, EvmState};

/// One account of the world state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Transaction count / contract creation count.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code (`KECCAK_EMPTY` for none).
    pub code_hash: B256,
    /// Non-zero storage slots.
    pub storage: imbl::OrdMap<U256, U256>,
    /// Root of the storage trie, kept up to date by [`WorldState::apply`].
    pub storage_root: B256,
}

impl Default for Account {
    fn default() -> Self {
        Self {
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
            storage: imbl::OrdMap::new(),
            storage_root: EMPTY_ROOT_HASH,
        }
    }
}

impl Account {
    fn trie_account(&self) -> TrieAccount {
        TrieAccount {
            nonce: self.nonce,
            balance: self.balance,
            storage_root: self.storage_root,
            code_hash: self.code_hash,
        }
    }
}

/// A snapshot of the world state. Cloning is O(1) (structural sharing).
#[derive(Debug, Clone, Default)]
pub struct WorldState {
    accounts: imbl::OrdMap<Address, Account>,
    codes: imbl::HashMap<B256, Bytes>,
    /// Accounts whose storage changed since the last [`WorldState::state_root`].
    dirty: imbl::OrdSet<Address>,
}

/// An `eth_getProof` answer before JSON formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// The account (default values when it does not exist).
    pub account: Account,
    /// Account-trie nodes from the root to the account's leaf (or its exclusion point).
    pub account_proof: Vec<Bytes>,
    /// For each requested slot: the slot, its value and the storage-trie proof.
    pub storage_proofs: Vec<(B256, U256, Vec<Bytes>)>,
}

impl WorldState {
    /// An account, if it exists.
    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address)
    }

    /// Code by hash.
    pub fn code(&self, hash: &B256) -> Option<&Bytes> {
        self.codes.get(hash)
    }

    /// The code of an account (empty when none).
    pub fn code_of(&self, address: &Address) -> Bytes {
        self.account(address)
            .and_then(|a| self.codes.get(&a.code_hash).cloned())
            .unwrap_or_default()
    }

    /// A storage value (zero when unset).
    pub fn storage(&self, address: &Address, slot: U256) -> U256 {
        self.account(address)
            .and_then(|a| a.storage.get(&slot).copied())
            .unwrap_or_default()
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Credits a genesis allocation.
    pub fn set_balance(&mut self, address: Address, balance: U256) {
        self.accounts.entry(address).or_default().balance = balance;
    }

    /// Applies the state changes of one executed transaction (revm's output), keeping storage
    /// roots current. Touched empty accounts and self-destructed accounts are removed (EIP-161).
    pub fn apply(&mut self, changes: EvmState) {
        for (address, account) in changes {
            if !account.is_touched() {
                continue;
            }
            if account.is_selfdestructed() {
                self.accounts.remove(&address);
                continue;
            }
            let mut entry = if account.is_created() {
                Account::default()
            } else {
                self.accounts.get(&address).cloned().unwrap_or_default()
            };
            entry.nonce = account.info.nonce;
            entry.balance = account.info.balance;
            entry.code_hash = account.info.code_hash;
            if let Some(code) = &account.info.code
                && account.info.code_hash != KECCAK_EMPTY
            {
                self.codes
                    .entry(account.info.code_hash)
                    .or_insert_with(|| code.original_bytes());
            }
            let mut storage_changed = account.is_created() && !entry.storage.is_empty();
            for (slot, value) in account.storage.iter() {
                if !value.is_changed() {
                    continue;
                }
                storage_changed = true;
                if value.present_value.is_zero() {
                    entry.storage.remove(slot);
                } else {
                    entry.storage.insert(*slot, value.present_value);
                }
            }
            if storage_changed {
                self.dirty.insert(address);
            }
            let empty = entry.nonce == 0
                && entry.balance.is_zero()
                && entry.code_hash == KECCAK_EMPTY
                && entry.storage.is_empty();
            if empty {
                self.accounts.remove(&address);
            } else {
                self.accounts.insert(address, entry);
            }
        }
    }

    /// Recomputes the storage roots of changed accounts, then returns the state root (root of
    /// the account trie).
    pub fn state_root(&mut self) -> B256 {
        for address in std::mem::take(&mut self.dirty) {
            if let Some(account) = self.accounts.get_mut(&address) {
                account.storage_root = storage_trie(&account.storage, &[]).0;
            }
        }
        self.account_trie(&[]).0
    }

    /// Builds an `eth_getProof` answer for `address` and `slots` against [`Self::state_root`]
    /// (call it on a snapshot whose roots are current: every block's snapshot is).
    pub fn proof(&self, address: Address, slots: &[B256]) -> AccountProof {
        let account = self.accounts.get(&address).cloned().unwrap_or_default();
        let target = Nibbles::unpack(keccak256(address));
        let (_, account_proof) = self.account_trie(&[target]);
        let storage_proofs = slots
            .iter()
            .map(|slot| {
                let value = account
                    .storage
                    .get(&U256::from_be_bytes(slot.0))
                    .copied()
                    .unwrap_or_default();
                let key = Nibbles::unpack(keccak256(slot));
                let (_, proof) = storage_trie(&account.storage, &[key]);
                (*slot, value, proof)
            })
            .collect();
        AccountProof {
            account,
            account_proof,
            storage_proofs,
        }
    }

    fn account_trie(&self, targets: &[Nibbles]) -> (B256, Vec<Bytes>) {
        let mut leaves: Vec<(B256, Vec<u8>)> = self
            .accounts
            .iter()
            .map(|(addr, acc)| (keccak256(addr), alloy_rlp::encode(acc.trie_account())))
            .collect();
        leaves.sort_unstable_by_key(|a| a.0);
        build_trie(leaves.iter().map(|(k, v)| (*k, v.as_slice())), targets)
    }
}

fn storage_trie(storage: &imbl::OrdMap<U256, U256>, targets: &[Nibbles]) -> (B256, Vec<Bytes>) {
    let mut leaves: Vec<(B256, Vec<u8>)> = storage
        .iter()
        .map(|(slot, value)| {
            (
                keccak256(B256::from(*slot)),
                alloy_rlp::encode_fixed_size(value).to_vec(),
            )
        })
        .collect();
    leaves.sort_unstable_by_key(|a| a.0);
    build_trie(leaves.iter().map(|(k, v)| (*k, v.as_slice())), targets)
}

/// Root of a trie of sorted hashed keys, plus the proof nodes (root first) for `targets`.
fn build_trie<'a>(
    leaves: impl Iterator<Item = (B256, &'a [u8])>,
    targets: &[Nibbles],
) -> (B256, Vec<Bytes>) {
    let mut hb = if targets.is_empty() {
        HashBuilder::default()
    } else {
        HashBuilder::default().with_proof_retainer(ProofRetainer::new(targets.to_vec()))
    };
    for (key, value) in leaves {
        hb.add_leaf(Nibbles::unpack(key), value);
    }
    let root = hb.root();
    if targets.is_empty() {
        return (root, Vec::new());
    }
    let nodes = hb.take_proof_nodes();
    let mut proof = Vec::new();
    for target in targets {
        for (_, node) in nodes.matching_nodes_sorted(target) {
            proof.push(node);
        }
    }
    if proof.is_empty() && root == EMPTY_ROOT_HASH {
        // The empty trie: the proof is the single empty node.
        proof.push(Bytes::from_static(&[alloy_rlp::EMPTY_STRING_CODE]));
    }
    (root, proof)
}

/// Decodes a trie node, for callers that want to inspect proofs.
pub fn decode_node(bytes: &[u8]) -> Result<TrieNode, alloy_rlp::Error> {
    alloy_rlp::Decodable::decode(&mut &bytes[..])
}

/// revm's read seam over a state snapshot and the chain's recent block hashes.
#[derive(Debug)]
pub(crate) struct StateDb<'a> {
    pub(crate) state: &'a WorldState,
    /// Hashes of blocks `0..=n` (index = number).
    pub(crate) block_hashes: &'a [B256],
}

impl DatabaseRef for StateDb<'_> {
    type Error = Infallible;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.state.account(&address).map(|a| {
            let code = self
                .state
                .code(&a.code_hash)
                .map(|c| Bytecode::new_raw(c.clone()));
            AccountInfo::new(a.balance, a.nonce, a.code_hash, code.unwrap_or_default())
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self
            .state
            .code(&code_hash)
            .map(|c| Bytecode::new_raw(c.clone()))
            .unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: StorageKey) -> Result<U256, Self::Error> {
        Ok(self.state.storage(&address, index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.block_hashes.get(n).copied())
            .unwrap_or_default())
    }
}
