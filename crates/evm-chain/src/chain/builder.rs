//! Block building: execution of the selected transactions with revm, roots, QBFT sealing,
//! and replay of stored blocks.

use std::collections::HashSet;

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{
    Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope,
    TxType, proofs,
};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{B256, Bloom, Bytes, Log, TxKind, U256};
use kh_qbft::{BFT_MIX_HASH, EMPTY_OMMERS_HASH, ExtraData, Vote, quorum, sign_seal};
use revm::context::result::ExecutionResult;
use revm::{ExecuteCommitEvm, ExecuteEvm};
use tracing::{info, warn};

use super::exec::{Checks, block_env, effective_price, tx_env};
use super::{Block, Chain, MinedReceipt, MinedTx, PendingTx};
use crate::error::ChainError;

impl Chain {
    /// Produces, seals and appends the next block with the pool's executable transactions.
    ///
    /// The block is stamped `timestamp`, or its parent's timestamp if that is later (blocks
    /// may share a second, as with Besu's sub-second test periods; they never go back). The
    /// caller keeps `timestamp` at or behind the wall clock and, for periods of a second or
    /// more, waits until the parent's timestamp plus the period.
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
        let timestamp = timestamp.max(parent_ts);
        self.evict_stale();
        let candidates = self.select_from_pool();
        let offered: Vec<B256> = candidates.iter().map(|p| p.tx.hash).collect();
        let leftover = match self.build_block(timestamp, candidates, None, persist) {
            Ok(leftover) => leftover,
            Err(err) => {
                // The block was not stored: its transactions are dropped, visibly.
                warn!(error = %err, txs = offered.len(), "block not produced; its transactions are dropped");
                for hash in &offered {
                    self.pool_hashes.remove(hash);
                }
                return Err(err);
            }
        };
        // Offered transactions leave the pool when mined, or dropped (logged) when invalid.
        let kept: HashSet<B256> = leftover.iter().map(|p| p.tx.hash).collect();
        for hash in offered {
            if !kept.contains(&hash) {
                self.pool_hashes.remove(&hash);
            }
        }
        // What did not fit goes back to the front of the pool, in order.
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
            let mut deferred = HashSet::new();
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
                        warn!(tx = %p.tx.hash, from = %p.tx.from, error = %err, "transaction dropped from the pool: invalid at inclusion");
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
                    // As geth and Besu report it: the address a creation used, even if it failed.
                    contract_address,
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
}
