//! Fee suggestions and `eth_feeHistory`.

use alloy_consensus::Transaction as _;
use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::FeeHistory;
use serde_json::Value;

use std::sync::Arc;

use crate::chain::{Block, Chain};

use super::*;

/// Tip suggested by `eth_maxPriorityFeePerGas` (1 gwei).
pub(super) const SUGGESTED_TIP: u64 = 1_000_000_000;

/// Most blocks one `eth_feeHistory` covers (geth's cap; larger counts are clamped).
pub(super) const MAX_FEE_HISTORY_BLOCKS: u64 = 1024;
/// Most reward percentiles one `eth_feeHistory` may ask for.
pub(super) const MAX_FEE_HISTORY_PERCENTILES: usize = 100;

/// Tips of a block's transactions at each percentile of its gas used, geth's way: transactions
/// sorted by tip, each weighted by its gas used; an empty block pays 0 at every percentile.
#[allow(clippy::disallowed_types)] // percentiles are JSON floats by specification
fn rewards(block: &Block, percentiles: &[f64]) -> Vec<u128> {
    let base_fee = block.header.base_fee_per_gas.unwrap_or_default();
    let mut txs: Vec<(u128, u64)> = block
        .txs
        .iter()
        .zip(&block.receipts)
        .map(|(t, r)| {
            (
                t.envelope
                    .effective_tip_per_gas(base_fee)
                    .unwrap_or_default(),
                r.gas_used,
            )
        })
        .collect();
    if txs.is_empty() {
        return vec![0; percentiles.len()];
    }
    txs.sort_unstable_by_key(|(tip, _)| *tip);
    let total: u64 = txs.iter().map(|(_, g)| g).sum();
    percentiles
        .iter()
        .map(|p| {
            // Threshold in gas, computed in integer hundredths of a percent.
            let hundredths = (p * 100.0).round() as u128;
            let threshold = u128::from(total) * hundredths / 10_000;
            let mut sum = 0u128;
            for (tip, gas) in &txs {
                sum += u128::from(*gas);
                if sum >= threshold {
                    return *tip;
                }
            }
            txs.last().map(|(tip, _)| *tip).unwrap_or_default()
        })
        .collect()
}

/// Parses and checks reward percentiles: at most [`MAX_FEE_HISTORY_PERCENTILES`], each in
/// [0, 100], in increasing order.
#[allow(clippy::disallowed_types)] // percentiles are JSON floats by specification
pub(super) fn percentiles(values: &[Value]) -> RpcResult<Vec<f64>> {
    if values.len() > MAX_FEE_HISTORY_PERCENTILES {
        return Err(err(
            LIMIT_EXCEEDED,
            format!("at most {MAX_FEE_HISTORY_PERCENTILES} reward percentiles"),
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let p = v
            .as_f64()
            .filter(|p| (0.0..=100.0).contains(p))
            .ok_or_else(|| invalid(format!("reward percentile {v} is not a number in [0, 100]")))?;
        if out.last().is_some_and(|last| p < *last) {
            return Err(invalid("reward percentiles must increase"));
        }
        out.push(p);
    }
    Ok(out)
}

/// The blocks an `eth_feeHistory` reports on, taken under the chain lock as shared handles, and
/// the base fee of the block after the newest: the history itself ([`fee_history`]) is
/// computed without the lock.
pub(super) struct FeeHistoryBlocks {
    blocks: Vec<Arc<Block>>,
    oldest: u64,
    next_base_fee: u64,
}

/// Picks the blocks of an `eth_feeHistory` (at most [`MAX_FEE_HISTORY_BLOCKS`], ending at
/// `newest`).
pub(super) fn fee_history_blocks(
    chain: &Chain,
    count: u64,
    newest: BlockNumberOrTag,
) -> RpcResult<FeeHistoryBlocks> {
    let newest = resolve_tag(chain, newest).ok_or_else(|| err(SERVER_ERROR, "header not found"))?;
    let count = count.clamp(1, MAX_FEE_HISTORY_BLOCKS).min(newest + 1);
    let oldest = newest + 1 - count;
    let next_base_fee = match chain.block(newest + 1) {
        Some(b) => b.header.base_fee_per_gas.unwrap_or_default(),
        None => chain.next_base_fee(),
    };
    Ok(FeeHistoryBlocks {
        blocks: chain.blocks_shared(oldest, newest),
        oldest,
        next_base_fee,
    })
}

#[allow(clippy::disallowed_types)] // eth_feeHistory's gasUsedRatio is a JSON float by specification
pub(super) fn fee_history(
    history: &FeeHistoryBlocks,
    percentiles: Option<&[f64]>,
) -> RpcResult<Value> {
    let count = history.blocks.len();
    let mut base_fee_per_gas = Vec::with_capacity(count + 1);
    let mut gas_used_ratio = Vec::with_capacity(count);
    let mut reward = Vec::new();
    for block in &history.blocks {
        base_fee_per_gas.push(u128::from(
            block.header.base_fee_per_gas.unwrap_or_default(),
        ));
        gas_used_ratio.push(block.header.gas_used as f64 / block.header.gas_limit as f64);
        if let Some(p) = percentiles {
            reward.push(rewards(block, p));
        }
    }
    base_fee_per_gas.push(u128::from(history.next_base_fee));
    let history = FeeHistory {
        base_fee_per_gas,
        gas_used_ratio,
        base_fee_per_blob_gas: vec![],
        blob_gas_used_ratio: vec![],
        oldest_block: history.oldest,
        reward: percentiles.map(|_| reward),
    };
    to_json(&history)
}
