//! The polling filter family: `eth_newFilter`, `eth_newBlockFilter`, `eth_getFilterChanges`,
//! `eth_getFilterLogs`, `eth_uninstallFilter` (what ethers' `contract.on` and web3.py's filter
//! API use over HTTP).

use std::sync::Arc;

use alloy_eips::BlockNumberOrTag;
use alloy_rpc_types_eth::{Filter, FilterBlockOption};
use jsonrpsee::server::RpcModule;
use serde_json::Value;

use super::errors::{INVALID_PARAMS, LIMIT_EXCEEDED, RpcResult, SERVER_ERROR, err, to_json};
use super::heavy::register_heavy;
use super::logs::{MAX_LOG_RANGE, log_blocks, scan_logs};
use crate::filters::{FilterKind, Installed};
use crate::node::Shared;

fn not_found() -> jsonrpsee::types::ErrorObjectOwned {
    err(SERVER_ERROR, "filter not found")
}

/// The blocks a poll reports: from the filter's next block to the head, at most
/// [`MAX_LOG_RANGE`] of them (the rest on the next poll).
fn window(f: &Installed, head: u64) -> Option<(u64, u64)> {
    if f.next_block > head {
        return None;
    }
    Some((f.next_block, head.min(f.next_block + MAX_LOG_RANGE - 1)))
}

/// The upper block bound a log filter names explicitly, if any.
fn explicit_to(filter: &Filter) -> Option<u64> {
    match &filter.block_option {
        FilterBlockOption::Range {
            to_block: Some(BlockNumberOrTag::Number(n)),
            ..
        } => Some(*n),
        _ => None,
    }
}

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("eth_newFilter", |p, s, _| -> RpcResult<String> {
        let filter: Filter = p.one()?;
        if matches!(filter.block_option, FilterBlockOption::AtBlockHash(_)) {
            return Err(err(
                INVALID_PARAMS,
                "invalid params: a polling filter takes a block range, not a blockHash",
            ));
        }
        let head = s.chain.read().head_number();
        let start = match filter.block_option.get_from_block() {
            Some(BlockNumberOrTag::Number(n)) => (*n).max(head + 1),
            Some(BlockNumberOrTag::Earliest) => head + 1,
            _ => head + 1,
        };
        s.filters
            .lock()
            .install(FilterKind::Logs(Box::new(filter)), start)
            .map_err(|e| err(LIMIT_EXCEEDED, e.to_string()))
    })?;
    m.register_method("eth_newBlockFilter", |_, s, _| -> RpcResult<String> {
        let head = s.chain.read().head_number();
        s.filters
            .lock()
            .install(FilterKind::Blocks, head + 1)
            .map_err(|e| err(LIMIT_EXCEEDED, e.to_string()))
    })?;
    register_heavy(m, "eth_getFilterChanges", |p, s| -> RpcResult<Value> {
        let id: String = p.one()?;
        let head = s.chain.read().head_number();
        // Claim the window under the filters lock (so a concurrent poll of the same filter
        // gets the next one), then scan it with neither the filters nor the chain lock held.
        let (kind, from, to) = {
            let mut filters = s.filters.lock();
            let f = filters.poll(&id).ok_or_else(not_found)?;
            let Some((from, to)) = window(f, head) else {
                return Ok(Value::Array(vec![]));
            };
            let to = match &f.kind {
                FilterKind::Logs(filter) => explicit_to(filter).map_or(to, |limit| to.min(limit)),
                FilterKind::Blocks => to,
            };
            if from > to {
                return Ok(Value::Array(vec![]));
            }
            f.next_block = to + 1;
            (f.kind.clone(), from, to)
        };
        let blocks = s.chain.read().blocks_shared(from, to);
        match kind {
            FilterKind::Blocks => {
                let hashes: Vec<_> = blocks.iter().map(|b| b.hash).collect();
                to_json(&hashes)
            }
            FilterKind::Logs(filter) => match scan_logs(&blocks, &filter) {
                Ok(found) => to_json(&found),
                Err(e) => {
                    // Nothing was reported: the window is polled again next time.
                    s.filters.lock().rewind(&id, to + 1, from);
                    Err(e)
                }
            },
        }
    })?;
    register_heavy(m, "eth_getFilterLogs", |p, s| -> RpcResult<Value> {
        let id: String = p.one()?;
        let filter = {
            let mut filters = s.filters.lock();
            match &filters.poll(&id).ok_or_else(not_found)?.kind {
                FilterKind::Logs(filter) => filter.clone(),
                FilterKind::Blocks => return Err(err(SERVER_ERROR, "filter not found")),
            }
        };
        let blocks = log_blocks(&s.chain.read(), &filter)?;
        to_json(&scan_logs(&blocks, &filter)?)
    })?;
    m.register_method("eth_uninstallFilter", |p, s, _| -> RpcResult<bool> {
        let id: String = p.one()?;
        Ok(s.filters.lock().uninstall(&id))
    })?;
    Ok(())
}
