//! Fee suggestions and `eth_feeHistory`.

use alloy_consensus::Transaction as _;
use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::FeeHistory;
use serde_json::Value;

use crate::chain::Chain;

use super::*;

/// Tip suggested by `eth_maxPriorityFeePerGas` (1 gwei).
pub(super) const SUGGESTED_TIP: u64 = 1_000_000_000;

#[allow(clippy::disallowed_types)] // eth_feeHistory's gasUsedRatio is a JSON float by specification
pub(super) fn fee_history(
    chain: &Chain,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<usize>,
) -> RpcResult<Value> {
    let newest = resolve_tag(chain, newest).ok_or_else(|| err(SERVER_ERROR, "header not found"))?;
    let count = count.clamp(1, 1024).min(newest + 1);
    let oldest = newest + 1 - count;
    let mut base_fee_per_gas = Vec::with_capacity(count as usize + 1);
    let mut gas_used_ratio = Vec::with_capacity(count as usize);
    let mut reward = Vec::new();
    for n in oldest..=newest {
        let Some(block) = chain.block(n) else { break };
        base_fee_per_gas.push(u128::from(
            block.header.base_fee_per_gas.unwrap_or_default(),
        ));
        gas_used_ratio.push(block.header.gas_used as f64 / block.header.gas_limit as f64);
        if let Some(k) = percentiles {
            let tips: Vec<u128> = block
                .txs
                .iter()
                .map(|t| {
                    t.envelope
                        .effective_tip_per_gas(block.header.base_fee_per_gas.unwrap_or_default())
                        .unwrap_or_default()
                })
                .collect();
            let median = if tips.is_empty() {
                0
            } else {
                let mut sorted = tips;
                sorted.sort_unstable();
                sorted[sorted.len() / 2]
            };
            reward.push(vec![median; k]);
        }
    }
    base_fee_per_gas.push(u128::from(chain.next_base_fee()));
    let history = FeeHistory {
        base_fee_per_gas,
        gas_used_ratio,
        base_fee_per_blob_gas: vec![],
        blob_gas_used_ratio: vec![],
        oldest_block: oldest,
        reward: percentiles.map(|_| reward),
    };
    to_json(&history)
}
