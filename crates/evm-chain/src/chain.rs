//! The chain: blocks, receipts, the transaction pool, block production with revm, QBFT
//! sealing by the devnet's validators, and validator-set votes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use alloy_consensus::{Header, ReceiptEnvelope, TxEnvelope};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use k256::ecdsa::SigningKey;
use kh_qbft::{BFT_MIX_HASH, EMPTY_OMMERS_HASH, ExtraData, VoteKind, address_of};

use crate::error::ChainError;
use crate::state::WorldState;

mod builder;
mod call_trace;
mod calls;
mod exec;
mod pool;
mod trace;
mod votes;

pub(crate) use call_trace::CallTracerOptions;
pub use calls::{CallOutcome, CallRequest, CallView, OverrideError, check_overrides};
pub use exec::effective_price;
pub(crate) use trace::{StructLogOptions, TraceError};

/// Default block gas limit (100 M gas, about 1,800 ERC-721 transfers).
pub const DEFAULT_GAS_LIMIT: u64 = 100_000_000;
/// Default largest contract code (24 KiB, EIP-170 and Besu's default `contractSizeLimit`).
pub const DEFAULT_CONTRACT_SIZE_LIMIT: usize = 24 * 1024;
/// Base fee of the genesis block (1 gwei).
pub const GENESIS_BASE_FEE: u64 = 1_000_000_000;

/// What the chain is built from.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The validators' signing keys (the devnet seals with all of them).
    pub validator_keys: Vec<SigningKey>,
    /// Genesis balances.
    pub alloc: Vec<(Address, U256)>,
    /// Genesis timestamp (seconds).
    pub genesis_timestamp: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// How many recent blocks keep a state snapshot (for calls and proofs at past heights).
    pub history: usize,
    /// Largest deployed contract code in bytes (init code: twice that).
    pub contract_size_limit: usize,
    /// Transaction pool limits.
    pub pool: PoolLimits,
}

/// Limits of the transaction pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Pending transactions in all.
    pub max_txs: usize,
    /// Pending transactions of one sender; also how far past the account nonce a nonce may be.
    pub max_per_sender: usize,
    /// A transaction still pending after this long is dropped (geth's default: 3 hours).
    pub lifetime: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 100_000,
            max_per_sender: 1_024,
            lifetime: Duration::from_secs(3 * 3600),
        }
    }
}

/// A transaction included in a block, with its sender.
#[derive(Debug, Clone)]
pub struct MinedTx {
    /// The signed transaction.
    pub envelope: TxEnvelope,
    /// Recovered sender.
    pub from: Address,
    /// Transaction hash.
    pub hash: B256,
}

/// A receipt with the data JSON-RPC needs.
#[derive(Debug, Clone)]
pub struct MinedReceipt {
    /// The consensus receipt with its bloom, typed like its transaction.
    pub envelope: ReceiptEnvelope,
    /// Gas used by this transaction alone.
    pub gas_used: u64,
    /// Price per gas actually paid.
    pub effective_gas_price: u128,
    /// Address of a created contract.
    pub contract_address: Option<Address>,
    /// Index of the first log of this receipt within the block.
    pub first_log_index: u64,
    /// Revert output, kept for diagnostics.
    pub output: Bytes,
}

/// A sealed block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The consensus header (extraData holds the QBFT extra with seals).
    pub header: Header,
    /// The QBFT block hash.
    pub hash: B256,
    /// Encoded header length plus bodies, for the `size` field.
    pub size: u64,
    /// Transactions.
    pub txs: Vec<MinedTx>,
    /// Receipts, one per transaction.
    pub receipts: Vec<MinedReceipt>,
    /// The validator set that sealed this block.
    pub validators: Vec<Address>,
}

/// A transaction waiting in the pool.
#[derive(Debug, Clone)]
pub struct PendingTx {
    /// The transaction.
    pub tx: MinedTx,
    /// Its raw EIP-2718 bytes (what is persisted).
    pub raw: Bytes,
}

/// The devnet chain.
#[derive(Debug)]
pub struct Chain {
    spec: ChainSpec,
    keys: HashMap<Address, SigningKey>,
    /// Sealed blocks by number, shared with readers that scan them without the chain lock.
    blocks: Vec<std::sync::Arc<Block>>,
    /// Block hashes by number, shared with detached call views (copied on write).
    hashes: std::sync::Arc<Vec<B256>>,
    by_hash: HashMap<B256, u64>,
    tx_index: HashMap<B256, (u64, usize)>,
    state: WorldState,
    snapshots: VecDeque<(u64, WorldState)>,
    pool: Vec<PendingTx>,
    /// Pending transactions by hash, with when they entered the pool.
    pool_hashes: HashMap<B256, Instant>,
    /// Validator set for the next block.
    validators: Vec<Address>,
    /// Pending proposals of this node: candidate -> add (true) / drop (false).
    proposals: HashMap<Address, bool>,
    /// Votes seen in headers since the candidate's last change: candidate -> voter -> kind.
    tally: HashMap<Address, HashMap<Address, VoteKind>>,
    /// Validator sets by block number (the set that sealed each block).
    raw_blocks: Vec<Vec<Bytes>>,
}

impl Chain {
    /// Creates the chain with its genesis block.
    pub fn new(spec: ChainSpec) -> Result<Self, ChainError> {
        if spec.validator_keys.is_empty() {
            return Err(ChainError::Config(
                "at least one validator is required".into(),
            ));
        }
        let keys: HashMap<Address, SigningKey> = spec
            .validator_keys
            .iter()
            .map(|k| (address_of(k.verifying_key()), k.clone()))
            .collect();
        let validators: Vec<Address> = spec
            .validator_keys
            .iter()
            .map(|k| address_of(k.verifying_key()))
            .collect();
        if keys.len() != validators.len() {
            return Err(ChainError::Config("duplicate validator keys".into()));
        }
        let mut state = WorldState::default();
        for (address, balance) in &spec.alloc {
            state.set_balance(*address, *balance);
        }
        let state_root = state.state_root();
        let extra = ExtraData {
            vanity: [0; 32],
            validators: validators.clone(),
            vote: None,
            round: 0,
            seals: vec![],
        };
        let header = Header {
            parent_hash: B256::ZERO,
            ommers_hash: EMPTY_OMMERS_HASH,
            beneficiary: Address::ZERO,
            state_root,
            transactions_root: alloy_trie::EMPTY_ROOT_HASH,
            receipts_root: alloy_trie::EMPTY_ROOT_HASH,
            logs_bloom: Bloom::ZERO,
            difficulty: U256::from(1),
            number: 0,
            gas_limit: spec.gas_limit,
            gas_used: 0,
            timestamp: spec.genesis_timestamp,
            extra_data: Bytes::from(extra.encode()),
            mix_hash: BFT_MIX_HASH,
            nonce: Default::default(),
            base_fee_per_gas: Some(GENESIS_BASE_FEE),
            withdrawals_root: Some(alloy_trie::EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: None,
            block_access_list_hash: None,
            slot_number: None,
        };
        let hash = kh_qbft::Header::decode(&alloy_rlp::encode(&header))?.block_hash();
        let genesis = Block {
            size: alloy_rlp::encode(&header).len() as u64 + 3,
            header,
            hash,
            txs: vec![],
            receipts: vec![],
            validators: validators.clone(),
        };
        let mut chain = Self {
            spec,
            keys,
            blocks: vec![],
            hashes: Default::default(),
            by_hash: HashMap::new(),
            tx_index: HashMap::new(),
            state,
            snapshots: VecDeque::new(),
            pool: vec![],
            pool_hashes: HashMap::new(),
            validators,
            proposals: HashMap::new(),
            tally: HashMap::new(),
            raw_blocks: vec![],
        };
        chain.push_block(genesis, vec![]);
        Ok(chain)
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.spec.chain_id
    }

    /// The latest block number.
    pub fn head_number(&self) -> u64 {
        self.blocks.len() as u64 - 1
    }

    /// The latest block.
    pub fn head(&self) -> &Block {
        // `new` always pushes the genesis block, so the list is never empty.
        self.blocks
            .last()
            .expect("the chain always has a genesis block")
    }

    /// A block by number.
    pub fn block(&self, number: u64) -> Option<&Block> {
        self.blocks
            .get(usize::try_from(number).ok()?)
            .map(std::sync::Arc::as_ref)
    }

    /// Shared handles to the blocks `from..=to` that exist (cheap: one reference count each),
    /// so a long scan over them can run after the chain lock is released.
    pub fn blocks_shared(&self, from: u64, to: u64) -> Vec<std::sync::Arc<Block>> {
        let len = self.blocks.len() as u64;
        if from >= len || from > to {
            return Vec::new();
        }
        let to = to.min(len - 1);
        // Both bounds are below `len`, which is a usize.
        self.blocks[from as usize..=to as usize].to_vec()
    }

    /// A block by hash.
    pub fn block_by_hash(&self, hash: &B256) -> Option<&Block> {
        self.by_hash.get(hash).and_then(|n| self.block(*n))
    }

    /// Where a mined transaction is: (block number, index).
    pub fn tx_location(&self, hash: &B256) -> Option<(u64, usize)> {
        self.tx_index.get(hash).copied()
    }

    /// A pending transaction.
    pub fn pending_tx(&self, hash: &B256) -> Option<&MinedTx> {
        self.pool.iter().find(|p| p.tx.hash == *hash).map(|p| &p.tx)
    }

    /// Number of pending transactions.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// The latest state.
    pub fn state(&self) -> &WorldState {
        &self.state
    }

    /// The state after block `number`, if it is recent enough to be kept.
    pub fn state_at(&self, number: u64) -> Option<&WorldState> {
        if number == self.head_number() {
            return Some(&self.state);
        }
        self.snapshots
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, s)| s)
    }

    /// The raw transactions of every block (what persistence stores), by block number.
    pub fn raw_block_txs(&self, number: u64) -> Option<&[Bytes]> {
        self.raw_blocks
            .get(usize::try_from(number).ok()?)
            .map(Vec::as_slice)
    }

    /// The validator set that sealed block `number`.
    pub fn validators_at(&self, number: u64) -> Option<&[Address]> {
        self.block(number).map(|b| b.validators.as_slice())
    }

    /// The validator proposing the next block (round-robin by height, as blocks are built).
    pub fn next_proposer(&self) -> Address {
        let number = self.head_number() + 1;
        // `new` refuses an empty set and votes never empty it.
        self.validators[(number as usize) % self.validators.len()]
    }

    /// The base fee of the next block.
    pub fn next_base_fee(&self) -> u64 {
        let parent = &self.head().header;
        parent
            .next_block_base_fee(BaseFeeParams::ethereum())
            .unwrap_or(GENESIS_BASE_FEE)
    }

    pub(super) fn push_block(&mut self, block: Block, raws: Vec<Bytes>) {
        let number = block.header.number;
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.insert(tx.hash, (number, i));
        }
        self.by_hash.insert(block.hash, number);
        std::sync::Arc::make_mut(&mut self.hashes).push(block.hash);
        self.blocks.push(std::sync::Arc::new(block));
        self.raw_blocks.push(raws);
    }
}
