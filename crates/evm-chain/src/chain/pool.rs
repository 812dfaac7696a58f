//! The transaction pool: admission checks and selection of executable transactions.

use std::collections::HashMap;
use std::time::Instant;

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction as _, TxEnvelope, TxType};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes, U256};

use tracing::{debug, info};

use super::{Chain, MinedTx, PendingTx};
use crate::error::TxError;

impl Chain {
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

    /// The pool as `txpool_*` reports it: executable transactions (nonces contiguous from the
    /// account's) and queued ones (behind a nonce gap), each ordered by sender and nonce.
    pub fn pool_content(&self) -> (Vec<&MinedTx>, Vec<&MinedTx>) {
        let mut by_sender: HashMap<Address, Vec<&MinedTx>> = HashMap::new();
        for p in &self.pool {
            by_sender.entry(p.tx.from).or_default().push(&p.tx);
        }
        let mut senders: Vec<_> = by_sender.into_iter().collect();
        senders.sort_by_key(|(a, _)| *a);
        let (mut pending, mut queued) = (Vec::new(), Vec::new());
        for (sender, mut txs) in senders {
            txs.sort_by_key(|t| t.envelope.nonce());
            let mut next = self.state.account(&sender).map(|a| a.nonce).unwrap_or(0);
            for tx in txs {
                if tx.envelope.nonce() == next {
                    pending.push(tx);
                    next += 1;
                } else {
                    queued.push(tx);
                }
            }
        }
        (pending, queued)
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
        let limits = self.spec.pool;
        let replaces = self
            .pool
            .iter()
            .position(|p| p.tx.from == from && p.tx.envelope.nonce() == envelope.nonce());
        match replaces {
            Some(i) => {
                let old = &self.pool[i].tx.envelope;
                if !bumped(old.max_fee_per_gas(), envelope.max_fee_per_gas())
                    || !bumped(tip_cap(old), tip_cap(&envelope))
                {
                    return Err(TxError::ReplacementUnderpriced {
                        bump_percent: PRICE_BUMP_PERCENT,
                    });
                }
            }
            None => {
                if self.pool.len() >= limits.max_txs {
                    return Err(TxError::PoolFull);
                }
                let of_sender = self.pool.iter().filter(|p| p.tx.from == from).count();
                if of_sender >= limits.max_per_sender {
                    return Err(TxError::SenderPoolFull {
                        sender: from,
                        limit: limits.max_per_sender,
                    });
                }
            }
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
        let max_nonce = state_nonce.saturating_add(limits.max_per_sender as u64);
        if envelope.nonce() >= max_nonce {
            return Err(TxError::NonceTooHigh {
                sender: from,
                tx: envelope.nonce(),
                max: max_nonce - 1,
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
        let pending = PendingTx {
            tx: MinedTx {
                envelope,
                from,
                hash,
            },
            raw,
        };
        self.pool_hashes.insert(hash, Instant::now());
        match replaces {
            Some(i) => {
                let old = std::mem::replace(&mut self.pool[i], pending);
                self.pool_hashes.remove(&old.tx.hash);
                info!(tx = %old.tx.hash, by = %hash, from = %from, "transaction dropped from the pool: replaced");
            }
            None => {
                debug!(tx = %hash, from = %from, "transaction accepted into the pool");
                self.pool.push(pending);
            }
        }
        Ok(hash)
    }

    pub(super) fn select_from_pool(&mut self) -> Vec<PendingTx> {
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
                    // Its nonce was used by another transaction (mined, or sent straight to a
                    // block by replay): it can never be mined.
                    self.pool_hashes.remove(&p.tx.hash);
                    info!(tx = %p.tx.hash, from = %from, nonce, "transaction dropped from the pool: nonce already used");
                    continue;
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
        selected
    }

    /// Drops transactions that have waited longer than the pool's lifetime (a nonce gap that
    /// was never filled, a fee below the base fee for hours).
    pub(super) fn evict_stale(&mut self) {
        let lifetime = self.spec.pool.lifetime;
        let hashes = &mut self.pool_hashes;
        self.pool.retain(|p| {
            let fresh = hashes
                .get(&p.tx.hash)
                .is_some_and(|added| added.elapsed() <= lifetime);
            if !fresh {
                hashes.remove(&p.tx.hash);
                info!(tx = %p.tx.hash, from = %p.tx.from, nonce = p.tx.envelope.nonce(), "transaction dropped from the pool: expired");
            }
            fresh
        });
    }
}

/// A replacement must raise both the fee cap and the tip by this much (geth and Besu: 10 %).
pub(crate) const PRICE_BUMP_PERCENT: u128 = 10;

fn bumped(old: u128, new: u128) -> bool {
    new.saturating_mul(100) >= old.saturating_mul(100 + PRICE_BUMP_PERCENT)
}

/// The most a transaction offers the proposer per gas (its gas price for legacy types).
fn tip_cap(tx: &TxEnvelope) -> u128 {
    tx.max_priority_fee_per_gas()
        .unwrap_or_else(|| tx.max_fee_per_gas())
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
