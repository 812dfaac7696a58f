//! The world state: accounts and analysed code in persistent maps, and Ethereum's state and
//! storage tries kept incrementally ([`crate::mpt`]): a block re-hashes only the paths of the
//! accounts and slots it changed, every snapshot shares the rest, and `eth_getProof` walks one
//! path per key. Also revm's `DatabaseRef` seam over a snapshot.

use std::convert::Infallible;

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_rlp::Decodable;
use alloy_trie::{EMPTY_ROOT_HASH, KECCAK_EMPTY, TrieAccount, nodes::TrieNode};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::primitives::StorageKey;
use revm::state::{AccountInfo, EvmState};

use crate::mpt::Trie;

/// One account of the world state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Transaction count / contract creation count.
    pub nonce: u64,
    /// Balance in wei.
    pub balance: U256,
    /// keccak256 of the code (`KECCAK_EMPTY` for none).
    pub code_hash: B256,
    /// Root of the storage trie, kept up to date by [`WorldState::state_root`].
    pub storage_root: B256,
    /// The storage trie: `keccak(slot)` -> `rlp(value)`, non-zero values only.
    storage: Trie,
}

impl Default for Account {
    fn default() -> Self {
        Self {
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
            storage_root: EMPTY_ROOT_HASH,
            storage: Trie::new(),
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

    /// Number of non-zero storage slots.
    pub fn storage_len(&self) -> usize {
        self.storage.len()
    }

    /// A storage value (zero when unset).
    pub fn storage_value(&self, slot: U256) -> U256 {
        self.storage
            .get(&keccak256(B256::from(slot)))
            .and_then(|rlp| U256::decode(&mut &rlp[..]).ok())
            .unwrap_or_default()
    }

    /// Sets a storage slot (zero removes it). The storage root is refreshed by
    /// [`WorldState::state_root`].
    fn set_storage(&mut self, slot: U256, value: U256) {
        let key = keccak256(B256::from(slot));
        if value.is_zero() {
            self.storage.remove(&key);
        } else {
            self.storage
                .insert(&key, &alloy_rlp::encode_fixed_size(&value));
        }
    }
}

/// A snapshot of the world state. Cloning is O(1) (structural sharing).
#[derive(Debug, Clone, Default)]
pub struct WorldState {
    accounts: imbl::HashMap<Address, Account>,
    /// Code by hash, analysed once (jump tables) and shared by every execution.
    codes: imbl::HashMap<B256, Bytecode>,
    /// The account trie as of the last [`WorldState::state_root`].
    account_trie: Trie,
    /// Accounts changed since the last [`WorldState::state_root`].
    dirty: imbl::OrdSet<Address>,
}

/// An `eth_getProof` answer before JSON formatting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProof {
    /// The account (default values when it does not exist).
    pub account: Account,
    /// Account-trie nodes from the root to the account's leaf (or its exclusion point).
    pub account_proof: Vec<Bytes>,
    /// For each requested slot: the slot, its value and the storage-trie proof (empty when the
    /// account has no storage, as geth answers).
    pub storage_proofs: Vec<(B256, U256, Vec<Bytes>)>,
}

impl WorldState {
    /// An account, if it exists.
    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address)
    }

    /// Code by hash.
    pub fn code(&self, hash: &B256) -> Option<Bytes> {
        self.codes.get(hash).map(Bytecode::original_bytes)
    }

    /// The code of an account (empty when none).
    pub fn code_of(&self, address: &Address) -> Bytes {
        self.account(address)
            .and_then(|a| self.code(&a.code_hash))
            .unwrap_or_default()
    }

    /// A storage value (zero when unset).
    pub fn storage(&self, address: &Address, slot: U256) -> U256 {
        self.account(address)
            .map(|a| a.storage_value(slot))
            .unwrap_or_default()
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Credits a genesis allocation.
    pub fn set_balance(&mut self, address: Address, balance: U256) {
        self.accounts.entry(address).or_default().balance = balance;
        self.dirty.insert(address);
    }

    /// Sets storage slots of an existing or new account directly (genesis allocations and
    /// benchmarks). Zero values remove slots.
    pub fn set_storage(&mut self, address: Address, slots: impl IntoIterator<Item = (U256, U256)>) {
        let account = self.accounts.entry(address).or_default();
        for (slot, value) in slots {
            account.set_storage(slot, value);
        }
        self.dirty.insert(address);
    }

    /// Applies the state changes of one executed transaction (revm's output). Touched empty
    /// accounts and self-destructed accounts are removed (EIP-161). Roots are brought up to date
    /// by [`Self::state_root`].
    pub fn apply(&mut self, changes: EvmState) {
        for (address, account) in changes {
            if !account.is_touched() {
                continue;
            }
            self.dirty.insert(address);
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
                    .or_insert_with(|| code.clone());
            }
            for (slot, value) in account.storage.iter() {
                if value.is_changed() || account.is_created() {
                    entry.set_storage(*slot, value.present_value);
                }
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

    /// Brings the storage roots of changed accounts and the account trie up to date and returns
    /// the state root. Costs O(changed keys × trie depth), not O(state).
    pub fn state_root(&mut self) -> B256 {
        for address in std::mem::take(&mut self.dirty) {
            let key = keccak256(address);
            match self.accounts.get_mut(&address) {
                Some(account) => {
                    account.storage_root = account.storage.root_hash();
                    self.account_trie
                        .insert(&key, &alloy_rlp::encode(account.trie_account()));
                }
                None => {
                    self.account_trie.remove(&key);
                }
            }
        }
        self.account_trie.root_hash()
    }

    /// Builds an `eth_getProof` answer for `address` and `slots` against [`Self::state_root`]
    /// (call it on a snapshot whose roots are current: every block's snapshot is). One trie
    /// path per key: O(log n) each.
    pub fn proof(&self, address: Address, slots: &[B256]) -> AccountProof {
        let account = self.accounts.get(&address).cloned().unwrap_or_default();
        let account_proof = self.account_trie.proof(&keccak256(address));
        let storage_proofs = slots
            .iter()
            .map(|slot| {
                let value = account.storage_value(U256::from_be_bytes(slot.0));
                let proof = account.storage.proof(&keccak256(slot));
                (*slot, value, proof)
            })
            .collect();
        AccountProof {
            account,
            account_proof,
            storage_proofs,
        }
    }
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
            let code = self.state.codes.get(&a.code_hash).cloned();
            AccountInfo::new(a.balance, a.nonce, a.code_hash, code.unwrap_or_default())
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self
            .state
            .codes
            .get(&code_hash)
            .cloned()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alloy_trie::{HashBuilder, Nibbles};
    use proptest::prelude::*;

    use super::*;

    /// The state root rebuilt from scratch with alloy-trie's HashBuilder from a model of the
    /// accounts (address -> balance, slot -> value).
    fn full_root(model: &BTreeMap<u8, (u64, BTreeMap<u8, u64>)>) -> B256 {
        let mut leaves: Vec<(B256, Vec<u8>)> = model
            .iter()
            .map(|(a, (balance, slots))| {
                let mut storage: Vec<(B256, Vec<u8>)> = slots
                    .iter()
                    .filter(|(_, v)| **v != 0)
                    .map(|(s, v)| {
                        (
                            keccak256(B256::from(U256::from(*s))),
                            alloy_rlp::encode(U256::from(*v)),
                        )
                    })
                    .collect();
                storage.sort();
                let mut hb = HashBuilder::default();
                for (k, v) in &storage {
                    hb.add_leaf(Nibbles::unpack(k), v);
                }
                let account = TrieAccount {
                    nonce: 0,
                    balance: U256::from(*balance),
                    storage_root: hb.root(),
                    code_hash: KECCAK_EMPTY,
                };
                (
                    keccak256(Address::repeat_byte(*a)),
                    alloy_rlp::encode(account),
                )
            })
            .collect();
        leaves.sort();
        let mut hb = HashBuilder::default();
        for (k, v) in &leaves {
            hb.add_leaf(Nibbles::unpack(k), v);
        }
        hb.root()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Blocks of random balance and storage changes: the incremental state root equals a
        /// from-scratch rebuild after every block, and earlier snapshots keep their roots.
        #[test]
        fn incremental_root_equals_full_rebuild(
            blocks in prop::collection::vec(
                prop::collection::vec((0u8..6, any::<bool>(), 0u8..40, 0u64..4), 1..30),
                1..8,
            )
        ) {
            let mut state = WorldState::default();
            let mut model: BTreeMap<u8, (u64, BTreeMap<u8, u64>)> = BTreeMap::new();
            let mut snapshots = Vec::new();
            for block in blocks {
                for (a, is_balance, slot, value) in block {
                    let address = Address::repeat_byte(a);
                    let entry = model.entry(a).or_default();
                    if is_balance {
                        state.set_balance(address, U256::from(value + 1));
                        entry.0 = value + 1;
                    } else {
                        state.set_storage(address, [(U256::from(slot), U256::from(value))]);
                        entry.1.insert(slot, value);
                    }
                }
                let root = state.state_root();
                prop_assert_eq!(root, full_root(&model));
                for (a, (_, slots)) in &model {
                    for (s, v) in slots {
                        prop_assert_eq!(
                            state.storage(&Address::repeat_byte(*a), U256::from(*s)),
                            U256::from(*v)
                        );
                    }
                }
                snapshots.push((state.clone(), root));
            }
            for (mut snapshot, root) in snapshots {
                prop_assert_eq!(snapshot.state_root(), root);
            }
        }
    }
}
