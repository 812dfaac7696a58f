//! Log queries (`eth_getLogs` and log subscriptions).

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption, Log as RpcLog};

use crate::chain::{Block, Chain};

use super::*;

pub(super) const MAX_LOG_RANGE: u64 = 10_000;

pub(super) fn block_logs(block: &Block, filter: &Filter) -> Vec<RpcLog> {
    if !filter.matches_bloom(block.header.logs_bloom) {
        return vec![];
    }
    (0..block.txs.len())
        .flat_map(|i| rpc_logs_of(block, i))
        .filter(|log| filter.matches_address(log.address()) && filter.matches_topics(log.topics()))
        .collect()
}

pub(super) fn logs(chain: &Chain, filter: &Filter) -> RpcResult<Vec<RpcLog>> {
    let (from, to) = match &filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            let block = chain
                .block_by_hash(hash)
                .ok_or_else(|| err(SERVER_ERROR, "unknown block"))?;
            return Ok(block_logs(block, filter));
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let head = chain.head_number();
            let resolve = |t: Option<&BlockNumberOrTag>| match t {
                None => Some(head),
                Some(tag) => resolve_tag(chain, *tag).or(Some(head)),
            };
            (
                resolve(from_block.as_ref()).unwrap_or(head),
                resolve(to_block.as_ref()).unwrap_or(head),
            )
        }
    };
    if from > to {
        return Err(invalid("fromBlock is after toBlock"));
    }
    if to - from > MAX_LOG_RANGE {
        return Err(err(
            SERVER_ERROR,
            format!("block range too large (max {MAX_LOG_RANGE})"),
        ));
    }
    Ok((from..=to)
        .filter_map(|n| chain.block(n))
        .flat_map(|b| block_logs(b, filter))
        .collect())
}
