//! The transaction pool: admission checks and selection of executable transactions.

use std::collections::HashMap;

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction as _, TxEnvelope, TxType};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes, U256};
use tracing::debug;

use super::{Chain, MinedTx, PendingTx};
use crate::error::TxError;

const MAX_POOL: usize = 100_000;

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
