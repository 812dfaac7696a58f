//! Log queries (`eth_getLogs` and log subscriptions).

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log as RpcLog};

use std::sync::Arc;

use crate::chain::{Block, Chain};

use super::*;

/// Widest block range of one `eth_getLogs`.
pub(super) const MAX_LOG_RANGE: u64 = 10_000;
/// Most logs one `eth_getLogs` returns.
pub(super) const MAX_LOG_RESULTS: usize = 10_000;

pub(super) fn block_logs(block: &Block, filter: &Filter) -> Vec<RpcLog> {
    if !filter.matches_bloom(block.header.logs_bloom) {
        return vec![];
    }
    (0..block.txs.len())
        .flat_map(|i| rpc_logs_of(block, i))
        .filter(|log| filter.matches_address(log.address()) && filter.matches_topics(log.topics()))
        .collect()
}

/// The blocks a log query scans, taken under the chain lock as shared handles (cheap), so the
/// scan itself ([`scan_logs`]) runs without the lock and never holds up block production.
/// Checks the range: numbers past the head select nothing, a range wider than
/// [`MAX_LOG_RANGE`] is refused.
pub(super) fn log_blocks(chain: &Chain, filter: &Filter) -> RpcResult<Vec<Arc<Block>>> {
    match &filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            let number = chain
                .block_by_hash(hash)
                .ok_or_else(|| err(SERVER_ERROR, "unknown block"))?
                .header
                .number;
            Ok(chain.blocks_shared(number, number))
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let head = chain.head_number();
            // Numbers past the head: nothing there yet (geth and Besu answer []), and a range
            // ending past the head ends at the head.
            let number = |t: Option<&BlockNumberOrTag>| match t {
                None => head,
                Some(BlockNumberOrTag::Number(n)) => *n,
                Some(BlockNumberOrTag::Earliest) => 0,
                Some(_) => head,
            };
            let (from, to) = (number(from_block.as_ref()), number(to_block.as_ref()));
            if from > head {
                return Ok(vec![]);
            }
            if from > to {
                return Err(invalid("fromBlock is after toBlock"));
            }
            // The requested range counts, blocks still to come included.
            if to - from > MAX_LOG_RANGE {
                return Err(err(
                    LIMIT_EXCEEDED,
                    format!("block range too large (max {MAX_LOG_RANGE})"),
                ));
            }
            Ok(chain.blocks_shared(from, to.min(head)))
        }
    }
}

/// The logs of `blocks` matching `filter`'s addresses and topics (its block range is not
/// looked at: [`log_blocks`] chose the blocks), at most [`MAX_LOG_RESULTS`].
pub(super) fn scan_logs(blocks: &[Arc<Block>], filter: &Filter) -> RpcResult<Vec<RpcLog>> {
    let mut out = Vec::new();
    for block in blocks {
        out.extend(block_logs(block, filter));
        if out.len() > MAX_LOG_RESULTS {
            return Err(err(
                LIMIT_EXCEEDED,
                format!(
                    "query returned more than {MAX_LOG_RESULTS} results; narrow the range or the filter"
                ),
            ));
        }
    }
    Ok(out)
}
