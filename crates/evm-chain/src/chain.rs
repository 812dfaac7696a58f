//! The chain: blocks, receipts, the transaction pool, block production with revm, QBFT
//! sealing by the devnet's validators, and validator-set votes.

use std::collections::{HashMap, VecDeque};

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{
    Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope,
    TxType, proofs,
};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bloom, Bytes, Log, TxKind, U256};
use k256::ecdsa::SigningKey;
use kh_qbft::{
    BFT_MIX_HASH, EMPTY_OMMERS_HASH, ExtraData, Vote, VoteKind, address_of, quorum, sign_seal,
};
use revm::context::result::{ExecutionResult, HaltReason};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::database::CacheDB;
use revm::primitives::hardfork::SpecId;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use tracing::{debug, info, warn};

use crate::error::{ChainError, TxError};
use crate::state::{StateDb, WorldState};

/// Default block gas limit (100 M gas, about 1,800 ERC-721 transfers).
pub const DEFAULT_GAS_LIMIT: u64 = 100_000_000;
/// Base fee of the genesis block (1 gwei).
pub const GENESIS_BASE_FEE: u64 = 1_000_000_000;
const MAX_POOL: usize = 100_000;
const CANCUN_BLOB_UPDATE_FRACTION: u64 = 3_338_477;

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
    blocks: Vec<Block>,
    hashes: Vec<B256>,
    by_hash: HashMap<B256, u64>,
    tx_index: HashMap<B256, (u64, usize)>,
    state: WorldState,
    snapshots: VecDeque<(u64, WorldState)>,
    pool: Vec<PendingTx>,
    pool_hashes: HashMap<B256, ()>,
    /// Validator set for the next block.
    validators: Vec<Address>,
    /// Pending proposals of this node: candidate -> add (true) / drop (false).
    proposals: HashMap<Address, bool>,
    /// Votes seen in headers since the candidate's last change: candidate -> voter -> kind.
    tally: HashMap<Address, HashMap<Address, VoteKind>>,
    /// Validator sets by block number (the set that sealed each block).
    raw_blocks: Vec<Vec<Bytes>>,
}

/// Outcome of a simulated call.
#[derive(Debug, Clone)]
pub enum CallOutcome {
    /// Returned normally.
    Success {
        /// Return data.
        output: Bytes,
        /// Gas used.
        gas_used: u64,
    },
    /// Reverted with data.
    Revert {
        /// Revert data.
        output: Bytes,
        /// Gas used.
        gas_used: u64,
    },
    /// Halted (out of gas, invalid opcode, ...).
    Halt {
        /// Why.
        reason: String,
    },
}

/// A call request (eth_call / eth_estimateGas).
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    /// Sender (zero address when absent).
    pub from: Option<Address>,
    /// Target (None = contract creation).
    pub to: Option<Address>,
    /// Gas limit (block gas limit when absent).
    pub gas: Option<u64>,
    /// Value.
    pub value: Option<U256>,
    /// Input.
    pub data: Bytes,
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
            hashes: vec![],
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
        self.blocks.get(usize::try_from(number).ok()?)
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

    /// Queues a validator vote (`qbft_proposeValidatorVote`): add (`true`) or remove.
    pub fn propose_vote(&mut self, candidate: Address, add: bool) {
        self.proposals.insert(candidate, add);
    }

    /// The base fee of the next block.
    pub fn next_base_fee(&self) -> u64 {
        let parent = &self.head().header;
        parent
            .next_block_base_fee(BaseFeeParams::ethereum())
            .unwrap_or(GENESIS_BASE_FEE)
    }

    /// Nonce of `address` counting its pending transactions.
    pub fn pending_nonce(&self, address: &Address) -> u64 {
        let base = self.state.account(address).map(|a| a.nonce).unwrap_or(0);
        let mut nonce = base;
        loop {
            let next = self
                .pool
                .iter()
                .any(|p| p.tx.from == *address && p.tx.envelope.nonce() == nonce);
            if !next {
                return nonce;
            }
            nonce += 1;
        }
    }

    /// Validates a raw transaction and adds it to the pool.
    pub fn submit(&mut self, raw: &[u8]) -> Result<B256, TxError> {
        let tx = Self::decode_tx(raw)?;
        self.submit_decoded(tx)
    }

    /// Decodes a raw transaction and recovers its sender: the expensive, stateless half of
    /// submission, done before taking the chain lock.
    pub fn decode_tx(raw: &[u8]) -> Result<PendingTx, TxError> {
        let envelope =
            TxEnvelope::decode_2718_exact(raw).map_err(|e| TxError::Decode(e.to_string()))?;
        match envelope.tx_type() {
            TxType::Legacy | TxType::Eip2930 | TxType::Eip1559 => {}
            other => return Err(TxError::UnsupportedType(other as u8)),
        }
        let hash = *envelope.tx_hash();
        let from = envelope
            .recover_signer()
            .map_err(|_| TxError::BadSignature)?;
        Ok(PendingTx {
            tx: MinedTx {
                envelope,
                from,
                hash,
            },
            raw: Bytes::copy_from_slice(raw),
        })
    }

    /// Checks a decoded transaction against the state and adds it to the pool.
    pub fn submit_decoded(&mut self, pending: PendingTx) -> Result<B256, TxError> {
        let PendingTx {
            tx:
                MinedTx {
                    envelope,
                    from,
                    hash,
                },
            raw,
        } = pending;
        if self.pool_hashes.contains_key(&hash) || self.tx_index.contains_key(&hash) {
            return Err(TxError::AlreadyKnown(hash));
        }
        if self.pool.len() >= MAX_POOL {
            return Err(TxError::PoolFull);
        }
        if let Some(id) = envelope.chain_id()
            && id != self.spec.chain_id
        {
            return Err(TxError::WrongChainId {
                expected: self.spec.chain_id,
                got: id,
            });
        }
        let state_nonce = self.state.account(&from).map(|a| a.nonce).unwrap_or(0);
        if envelope.nonce() < state_nonce {
            return Err(TxError::NonceTooLow {
                sender: from,
                tx: envelope.nonce(),
                state: state_nonce,
            });
        }
        let intrinsic = intrinsic_gas(&envelope);
        if envelope.gas_limit() < intrinsic {
            return Err(TxError::IntrinsicGas {
                have: envelope.gas_limit(),
                want: intrinsic,
            });
        }
        if envelope.gas_limit() > self.spec.gas_limit {
            return Err(TxError::GasLimit {
                gas: envelope.gas_limit(),
                limit: self.spec.gas_limit,
            });
        }
        if let Some(tip) = envelope.max_priority_fee_per_gas()
            && tip > envelope.max_fee_per_gas()
        {
            return Err(TxError::TipAboveFeeCap);
        }
        let base_fee = self.next_base_fee();
        if envelope.max_fee_per_gas() < u128::from(base_fee) {
            return Err(TxError::FeeTooLow {
                max_fee: envelope.max_fee_per_gas(),
                base_fee,
            });
        }
        let balance = self
            .state
            .account(&from)
            .map(|a| a.balance)
            .unwrap_or_default();
        let want = U256::from(envelope.gas_limit())
            .saturating_mul(U256::from(envelope.max_fee_per_gas()))
            .saturating_add(envelope.value());
        if balance < want {
            return Err(TxError::InsufficientFunds {
                sender: from,
                have: balance,
                want,
            });
        }
        debug!(tx = %hash, from = %from, "transaction accepted into the pool");
        self.pool_hashes.insert(hash, ());
        self.pool.push(PendingTx {
            tx: MinedTx {
                envelope,
                from,
                hash,
            },
            raw,
        });
        Ok(hash)
    }

    /// Produces, seals and appends the next block with the pool's executable transactions.
    pub fn produce_block(&mut self, timestamp: u64) -> Result<&Block, ChainError> {
        self.produce_block_with(timestamp, |_, _| Ok(()))
    }

    /// Like [`Self::produce_block`], handing the sealed block and its raw transactions to
    /// `persist` before the block becomes part of the chain. When `persist` fails the chain is
    /// unchanged except that the transactions taken for the block leave the pool.
    pub fn produce_block_with(
        &mut self,
        timestamp: u64,
        persist: impl FnOnce(&Block, &[Bytes]) -> Result<(), ChainError>,
    ) -> Result<&Block, ChainError> {
        let parent_ts = self.head().header.timestamp;
        let timestamp = timestamp.max(parent_ts + 1);
        let candidates = self.select_from_pool();
        let leftover = self.build_block(timestamp, candidates, None, persist)?;
        // What did not fit goes back to the front of the pool, in order.
        for p in &leftover {
            self.pool_hashes.insert(p.tx.hash, ());
        }
        let rest = std::mem::take(&mut self.pool);
        self.pool = leftover;
        self.pool.extend(rest);
        Ok(self.head())
    }

    /// Re-executes a stored block's transactions (persistence replay) and checks the hash.
    pub fn replay_block(
        &mut self,
        timestamp: u64,
        raw_txs: &[Bytes],
        vote: Option<Vote>,
        expected: B256,
    ) -> Result<(), ChainError> {
        let mut txs = Vec::with_capacity(raw_txs.len());
        for (i, raw) in raw_txs.iter().enumerate() {
            let envelope =
                TxEnvelope::decode_2718_exact(raw).map_err(|e| ChainError::CorruptLog {
                    index: self.head_number() + 1,
                    reason: format!("transaction {i}: {e}"),
                })?;
            let from = envelope
                .recover_signer()
                .map_err(|_| ChainError::CorruptLog {
                    index: self.head_number() + 1,
                    reason: format!("transaction {i}: bad signature"),
                })?;
            let hash = *envelope.tx_hash();
            txs.push(PendingTx {
                tx: MinedTx {
                    envelope,
                    from,
                    hash,
                },
                raw: raw.clone(),
            });
        }
        let leftover = self.build_block(timestamp, txs, Some(vote), |_, _| Ok(()))?;
        if !leftover.is_empty() {
            return Err(ChainError::CorruptLog {
                index: self.head_number(),
                reason: format!(
                    "{} stored transactions do not fit the block gas limit",
                    leftover.len()
                ),
            });
        }
        let got = self.head().hash;
        if got != expected {
            return Err(ChainError::ReplayMismatch {
                number: self.head_number(),
                expected,
                got,
            });
        }
        Ok(())
    }

    fn select_from_pool(&mut self) -> Vec<PendingTx> {
        let mut next_nonce: HashMap<Address, u64> = HashMap::new();
        let mut selected = Vec::new();
        let mut gas = 0u64;
        let mut keep = Vec::with_capacity(self.pool.len());
        // Repeat passes so that out-of-order nonces from one sender still chain up.
        let mut remaining = std::mem::take(&mut self.pool);
        loop {
            let mut progressed = false;
            for p in remaining.drain(..) {
                let from = p.tx.from;
                let expected = *next_nonce
                    .entry(from)
                    .or_insert_with(|| self.state.account(&from).map(|a| a.nonce).unwrap_or(0));
                let nonce = p.tx.envelope.nonce();
                if nonce < expected {
                    self.pool_hashes.remove(&p.tx.hash);
                    continue; // stale: replaced by a mined transaction
                }
                // Declared gas over-reserves; execution packs by gas actually used, so offer up
                // to four blocks' worth of declared gas.
                if nonce == expected && gas + p.tx.envelope.gas_limit() <= 4 * self.spec.gas_limit {
                    gas += p.tx.envelope.gas_limit();
                    next_nonce.insert(from, expected + 1);
                    progressed = true;
                    selected.push(p);
                } else {
                    keep.push(p);
                }
            }
            if !progressed || keep.is_empty() {
                break;
            }
            remaining = std::mem::take(&mut keep);
        }
        self.pool = keep;
        for p in &selected {
            self.pool_hashes.remove(&p.tx.hash);
        }
        selected
    }

    fn build_block(
        &mut self,
        timestamp: u64,
        candidates: Vec<PendingTx>,
        replay_vote: Option<Option<Vote>>,
        persist: impl FnOnce(&Block, &[Bytes]) -> Result<(), ChainError>,
    ) -> Result<Vec<PendingTx>, ChainError> {
        let parent = self.head().clone();
        let number = parent.header.number + 1;
        let base_fee = self.next_base_fee();
        let validators = self.validators.clone();
        let proposer = validators[(number as usize) % validators.len()];

        let block_env = block_env(number, proposer, timestamp, self.spec.gas_limit, base_fee);

        let mut txs = Vec::with_capacity(candidates.len());
        let mut raws = Vec::with_capacity(candidates.len());
        let mut receipts = Vec::with_capacity(candidates.len());
        let mut changes = Vec::with_capacity(candidates.len());
        let mut cumulative = 0u64;
        let mut log_index = 0u64;
        let mut leftover = Vec::new();
        {
            let mut evm = self.evm(&self.state, block_env, Checks::Enforced);
            let mut deferred = std::collections::HashSet::new();
            for p in candidates {
                // Pack by gas actually used: a transaction runs only if its whole gas limit
                // still fits; later transactions of a deferred sender wait with it.
                if deferred.contains(&p.tx.from)
                    || cumulative + p.tx.envelope.gas_limit() > self.spec.gas_limit
                {
                    deferred.insert(p.tx.from);
                    leftover.push(p);
                    continue;
                }
                let tx_env = tx_env(&p.tx);
                let result = match evm.transact(tx_env) {
                    Ok(r) => r,
                    Err(err) => {
                        warn!(tx = %p.tx.hash, error = %err, "dropping invalid transaction");
                        continue;
                    }
                };
                let state = result.state;
                let outcome = result.result;
                changes.push(state.clone());
                evm.commit(state);
                let gas_used = outcome.tx_gas_used();
                cumulative += gas_used;
                let effective_gas_price = effective_price(&p.tx.envelope, base_fee);
                let contract_address = match p.tx.envelope.kind() {
                    TxKind::Create => Some(p.tx.from.create(p.tx.envelope.nonce())),
                    TxKind::Call(_) => None,
                };
                let (success, logs, output) = match outcome {
                    ExecutionResult::Success { logs, output, .. } => {
                        (true, logs, output.into_data())
                    }
                    ExecutionResult::Revert { output, .. } => (false, vec![], output),
                    ExecutionResult::Halt { .. } => (false, vec![], Bytes::new()),
                };
                let n_logs = logs.len() as u64;
                let receipt = Receipt::<Log> {
                    status: Eip658Value::Eip658(success),
                    cumulative_gas_used: cumulative,
                    logs,
                };
                let with_bloom = ReceiptWithBloom::from(receipt);
                let envelope = match p.tx.envelope.tx_type() {
                    TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
                    TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
                    _ => ReceiptEnvelope::Eip1559(with_bloom),
                };
                receipts.push(MinedReceipt {
                    envelope,
                    gas_used,
                    effective_gas_price,
                    contract_address: if success { contract_address } else { None },
                    first_log_index: log_index,
                    output,
                });
                log_index += n_logs;
                raws.push(p.raw);
                txs.push(p.tx);
            }
        }
        let mut state = self.state.clone();
        for c in changes {
            state.apply(c);
        }
        let state_root = state.state_root();

        let vote = match replay_vote {
            Some(v) => v,
            None => self.pick_vote(proposer, &validators),
        };
        let logs_bloom = receipts.iter().fold(Bloom::ZERO, |mut acc, r| {
            acc.accrue_bloom(r.envelope.logs_bloom());
            acc
        });
        let envelopes: Vec<&TxEnvelope> = txs.iter().map(|t| &t.envelope).collect();
        let receipt_envs: Vec<&ReceiptEnvelope> = receipts.iter().map(|r| &r.envelope).collect();
        let mut extra = ExtraData {
            vanity: [0; 32],
            validators: validators.clone(),
            vote,
            round: 0,
            seals: vec![],
        };
        let header = Header {
            parent_hash: parent.hash,
            ommers_hash: EMPTY_OMMERS_HASH,
            beneficiary: proposer,
            state_root,
            transactions_root: proofs::calculate_transaction_root(&envelopes),
            receipts_root: proofs::calculate_receipt_root(&receipt_envs),
            logs_bloom,
            difficulty: U256::from(1),
            number,
            gas_limit: self.spec.gas_limit,
            gas_used: cumulative,
            timestamp,
            extra_data: Bytes::from(extra.encode()),
            mix_hash: BFT_MIX_HASH,
            nonce: Default::default(),
            base_fee_per_gas: Some(base_fee),
            withdrawals_root: Some(alloy_trie::EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: None,
            block_access_list_hash: None,
            slot_number: None,
        };
        let unsealed = kh_qbft::Header::decode(&alloy_rlp::encode(&header))?;
        let digest = unsealed.seal_digest();
        let need = quorum(validators.len());
        extra.seals = validators
            .iter()
            .filter_map(|v| self.keys.get(v))
            .take(need)
            .map(|k| sign_seal(digest, k))
            .collect();
        if extra.seals.len() < need {
            return Err(ChainError::Config(format!(
                "the devnet holds keys for {} of the {} validators, quorum is {need}",
                extra.seals.len(),
                validators.len()
            )));
        }
        let sealed = unsealed.with_extra_data(&extra);
        let hash = sealed.block_hash();
        let header = Header {
            extra_data: Bytes::from(extra.encode()),
            ..header
        };
        let size = (sealed.encode().len() + raws.iter().map(|r| r.len()).sum::<usize>() + 8) as u64;
        let block = Block {
            header,
            hash,
            size,
            txs,
            receipts,
            validators,
        };
        // Durable before it is part of the chain (and so before anyone can read it).
        persist(&block, &raws)?;
        self.apply_vote(proposer, vote, &block.validators);
        info!(height = number, txs = block.txs.len(), gas_used = cumulative, hash = %hash, "block sealed");
        let previous = std::mem::replace(&mut self.state, state);
        self.snapshots.push_back((number - 1, previous));
        while self.snapshots.len() > self.spec.history {
            self.snapshots.pop_front();
        }
        self.push_block(block, raws);
        Ok(leftover)
    }

    fn push_block(&mut self, block: Block, raws: Vec<Bytes>) {
        let number = block.header.number;
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.insert(tx.hash, (number, i));
        }
        self.by_hash.insert(block.hash, number);
        self.hashes.push(block.hash);
        self.blocks.push(block);
        self.raw_blocks.push(raws);
    }

    fn pick_vote(&self, proposer: Address, validators: &[Address]) -> Option<Vote> {
        let mut candidates: Vec<(&Address, &bool)> = self.proposals.iter().collect();
        candidates.sort();
        candidates.into_iter().find_map(|(candidate, add)| {
            let member = validators.contains(candidate);
            let useful = if *add { !member } else { member };
            let already = self
                .tally
                .get(candidate)
                .is_some_and(|t| t.contains_key(&proposer));
            (useful && !already).then_some(Vote {
                recipient: *candidate,
                kind: if *add { VoteKind::Add } else { VoteKind::Drop },
            })
        })
    }

    /// Records the proposer's vote; more than half of the validators voting the same way
    /// changes the set from the next block on.
    fn apply_vote(&mut self, proposer: Address, vote: Option<Vote>, validators: &[Address]) {
        let Some(vote) = vote else { return };
        let votes = self.tally.entry(vote.recipient).or_default();
        votes.insert(proposer, vote.kind);
        let agreeing = votes
            .iter()
            .filter(|(voter, kind)| **kind == vote.kind && validators.contains(voter))
            .count();
        if agreeing * 2 > validators.len() {
            match vote.kind {
                VoteKind::Add => {
                    if !self.validators.contains(&vote.recipient) {
                        self.validators.push(vote.recipient);
                    }
                }
                VoteKind::Drop => {
                    if self.validators.len() > 1 {
                        self.validators.retain(|v| *v != vote.recipient);
                    }
                }
            }
            info!(candidate = %vote.recipient, kind = ?vote.kind, validators = self.validators.len(), "validator set changed by vote");
            self.tally.remove(&vote.recipient);
            self.proposals.remove(&vote.recipient);
        }
    }

    /// Executes a call against the state after block `number` without committing.
    pub fn call(&self, req: &CallRequest, number: u64) -> Option<CallOutcome> {
        let state = self.state_at(number)?;
        let block = self.block(number)?;
        let block_env = block_env(
            number,
            block.header.beneficiary,
            block.header.timestamp,
            self.spec.gas_limit,
            0,
        );
        let mut evm = self.evm(state, block_env, Checks::Relaxed);
        let tx = TxEnv {
            tx_type: 0,
            caller: req.from.unwrap_or_default(),
            gas_limit: req
                .gas
                .unwrap_or(self.spec.gas_limit)
                .min(self.spec.gas_limit),
            gas_price: 0,
            kind: req.to.map_or(TxKind::Create, TxKind::Call),
            value: req.value.unwrap_or_default(),
            data: req.data.clone(),
            nonce: 0,
            chain_id: Some(self.spec.chain_id),
            ..Default::default()
        };
        Some(match evm.transact(tx) {
            Ok(r) => match r.result {
                ExecutionResult::Success { output, gas, .. } => CallOutcome::Success {
                    output: output.into_data(),
                    gas_used: gas.tx_gas_used(),
                },
                ExecutionResult::Revert { output, gas, .. } => CallOutcome::Revert {
                    output,
                    gas_used: gas.tx_gas_used(),
                },
                ExecutionResult::Halt { reason, .. } => CallOutcome::Halt {
                    reason: halt_reason(&reason),
                },
            },
            Err(err) => CallOutcome::Halt {
                reason: err.to_string(),
            },
        })
    }

    /// Smallest gas limit with which the call succeeds (binary search), or the failure.
    pub fn estimate_gas(&self, req: &CallRequest, number: u64) -> Option<Result<u64, CallOutcome>> {
        let mut probe = req.clone();
        probe.gas = Some(req.gas.unwrap_or(self.spec.gas_limit));
        let first = self.call(&probe, number)?;
        let used = match first {
            CallOutcome::Success { gas_used, .. } => gas_used,
            other => return Some(Err(other)),
        };
        let (mut lo, mut hi) = (
            used.saturating_sub(1),
            probe.gas.unwrap_or(self.spec.gas_limit),
        );
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            probe.gas = Some(mid);
            match self.call(&probe, number)? {
                CallOutcome::Success { .. } => hi = mid,
                _ => lo = mid,
            }
        }
        Some(Ok(hi))
    }
}

/// Whether execution enforces nonce, balance and base-fee rules (blocks) or not (calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    Enforced,
    Relaxed,
}

type DevEvm<'a> = revm::handler::MainnetEvm<revm::handler::MainnetContext<CacheDB<StateDb<'a>>>>;

impl Chain {
    /// A Cancun EVM over `state` and the chain's block hashes.
    fn evm<'a>(&'a self, state: &'a WorldState, block: BlockEnv, checks: Checks) -> DevEvm<'a> {
        let db = CacheDB::new(StateDb {
            state,
            block_hashes: &self.hashes,
        });
        Context::mainnet()
            .with_db(db)
            .with_block(block)
            .modify_cfg_chained(|cfg: &mut CfgEnv| {
                cfg.chain_id = self.spec.chain_id;
                cfg.set_spec_and_mainnet_gas_params(SpecId::CANCUN);
                if checks == Checks::Relaxed {
                    cfg.disable_nonce_check = true;
                    cfg.disable_base_fee = true;
                    cfg.disable_balance_check = true;
                }
            })
            .build_mainnet()
    }
}

/// The block environment revm executes in (Cancun, no blobs, the BFT mix hash as prevrandao).
fn block_env(
    number: u64,
    beneficiary: Address,
    timestamp: u64,
    gas_limit: u64,
    basefee: u64,
) -> BlockEnv {
    BlockEnv {
        number: U256::from(number),
        beneficiary,
        timestamp: U256::from(timestamp),
        gas_limit,
        basefee,
        difficulty: U256::ZERO,
        prevrandao: Some(BFT_MIX_HASH),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new(0, CANCUN_BLOB_UPDATE_FRACTION)),
        ..Default::default()
    }
}

fn halt_reason(reason: &HaltReason) -> String {
    format!("{reason:?}")
}

fn tx_env(tx: &MinedTx) -> TxEnv {
    let e = &tx.envelope;
    TxEnv {
        tx_type: e.tx_type() as u8,
        caller: tx.from,
        gas_limit: e.gas_limit(),
        gas_price: e.max_fee_per_gas(),
        kind: e.kind(),
        value: e.value(),
        data: e.input().clone(),
        nonce: e.nonce(),
        chain_id: e.chain_id(),
        access_list: e.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: e.max_priority_fee_per_gas(),
        ..Default::default()
    }
}

/// The price per gas a transaction pays at `base_fee`.
pub fn effective_price(tx: &TxEnvelope, base_fee: u64) -> u128 {
    tx.effective_gas_price(Some(base_fee))
}

fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let data = tx.input();
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = data.len() as u64 - zeros;
    let mut gas = 21_000 + zeros * 4 + nonzeros * 16;
    if tx.kind().is_create() {
        gas += 32_000 + (data.len() as u64).div_ceil(32) * 2;
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas += 2_400 + 1_900 * item.storage_keys.len() as u64;
        }
    }
    gas
}
