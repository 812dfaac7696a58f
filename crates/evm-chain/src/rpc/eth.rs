//! `web3_*`, `net_*` and the `eth_*` methods about blocks, transactions, logs and fees.

use std::sync::Arc;

use alloy_consensus::transaction::Recovered;
use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{Filter, Log as RpcLog, Transaction as RpcTx};
use jsonrpsee::server::RpcModule;
use serde_json::Value;

use super::heavy::register_heavy;
use crate::node::{Shared, SubmitError};

use super::*;

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("web3_clientVersion", |_, _, _| -> RpcResult<String> {
        Ok(format!(
            "kakehashi/v{}/qbft-devnet",
            env!("CARGO_PKG_VERSION")
        ))
    })?;
    m.register_method("net_version", |_, s, _| -> RpcResult<String> {
        Ok(s.chain.read().chain_id().to_string())
    })?;
    m.register_method("net_listening", |_, _, _| -> RpcResult<bool> { Ok(true) })?;
    m.register_method("eth_syncing", |_, _, _| -> RpcResult<bool> { Ok(false) })?;
    m.register_method("eth_chainId", |_, s, _| -> RpcResult<U64> {
        Ok(U64::from(s.chain.read().chain_id()))
    })?;
    m.register_method("eth_accounts", |_, s, _| -> RpcResult<Vec<Address>> {
        Ok(s.dev_accounts.iter().map(|a| a.address).collect())
    })?;
    m.register_method("eth_blockNumber", |_, s, _| -> RpcResult<U64> {
        Ok(U64::from(s.chain.read().head_number()))
    })?;
    m.register_method("eth_gasPrice", |_, s, _| -> RpcResult<U256> {
        // Base fee of the next block plus the suggested tip.
        Ok(U256::from(s.chain.read().next_base_fee()) + U256::from(SUGGESTED_TIP))
    })?;
    m.register_method("eth_maxPriorityFeePerGas", |_, _, _| -> RpcResult<U256> {
        Ok(U256::from(SUGGESTED_TIP))
    })?;
    m.register_method("eth_getBlockByNumber", |p, s, _| -> RpcResult<Value> {
        let mut seq = p.sequence();
        let tag: BlockNumberOrTag = seq.next()?;
        let full: bool = seq.optional_next()?.unwrap_or(false);
        let chain = s.chain.read();
        match resolve_tag(&chain, tag).and_then(|n| chain.block(n)) {
            Some(b) => to_json(&rpc_block(b, full)),
            None => Ok(Value::Null),
        }
    })?;
    m.register_method("eth_getBlockByHash", |p, s, _| -> RpcResult<Value> {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let full: bool = seq.optional_next()?.unwrap_or(false);
        let chain = s.chain.read();
        match chain.block_by_hash(&hash) {
            Some(b) => to_json(&rpc_block(b, full)),
            None => Ok(Value::Null),
        }
    })?;
    register_heavy(m, "eth_feeHistory", |p, s| -> RpcResult<Value> {
        let mut seq = p.sequence();
        let count: U64 = seq.next()?;
        let newest: BlockNumberOrTag = seq.next()?;
        let percentiles: Option<Vec<Value>> = seq.optional_next()?;
        let percentiles = percentiles.as_deref().map(fees::percentiles).transpose()?;
        let blocks = fee_history_blocks(&s.chain.read(), count.to::<u64>(), newest)?;
        fee_history(&blocks, percentiles.as_deref())
    })?;
    m.register_async_method("eth_sendRawTransaction", |p, s, _| async move {
        let raw: Bytes = p.one()?;
        tokio::task::spawn_blocking(move || s.submit(&raw))
            .await
            .map_err(|e| err(-32603, format!("internal error: {e}")))?
            .map_err(|e| match e {
                SubmitError::Tx(tx) => err(SERVER_ERROR, tx.to_string()),
                SubmitError::Chain(c) => err(-32603, format!("internal error: {c}")),
            })
    })?;
    m.register_method("eth_getTransactionByHash", |p, s, _| -> RpcResult<Value> {
        let hash: B256 = p.one()?;
        let chain = s.chain.read();
        if let Some((number, index)) = chain.tx_location(&hash)
            && let Some(block) = chain.block(number)
        {
            return to_json(&rpc_tx(block, index));
        }
        match chain.pending_tx(&hash) {
            Some(tx) => to_json(&RpcTx {
                inner: Recovered::new_unchecked(tx.envelope.clone(), tx.from),
                block_hash: None,
                block_number: None,
                transaction_index: None,
                effective_gas_price: None,
                block_timestamp: None,
            }),
            None => Ok(Value::Null),
        }
    })?;
    m.register_method("eth_getTransactionReceipt", |p, s, _| -> RpcResult<Value> {
        let hash: B256 = p.one()?;
        let chain = s.chain.read();
        match chain
            .tx_location(&hash)
            .and_then(|(n, i)| chain.block(n).map(|b| (b, i)))
        {
            Some((block, index)) => to_json(&rpc_receipt(block, index)),
            None => Ok(Value::Null),
        }
    })?;
    register_heavy(m, "eth_getLogs", |p, s| -> RpcResult<Vec<RpcLog>> {
        let filter: Filter = p.one()?;
        // The chain lock is held only while the blocks are picked, not during the scan.
        let blocks = log_blocks(&s.chain.read(), &filter)?;
        scan_logs(&blocks, &filter)
    })?;
    Ok(())
}
