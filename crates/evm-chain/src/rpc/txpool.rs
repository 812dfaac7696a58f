//! `txpool_status` and `txpool_content` (geth's layout: pending and queued transactions by
//! sender and nonce).

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_consensus::Transaction as _;
use alloy_consensus::transaction::Recovered;
use alloy_primitives::{Address, U64};
use alloy_rpc_types_eth::Transaction as RpcTx;
use jsonrpsee::server::RpcModule;
use serde_json::{Value, json};

use super::errors::{RpcResult, to_json};
use crate::chain::MinedTx;
use crate::node::Shared;

fn by_sender(txs: &[&MinedTx]) -> RpcResult<Value> {
    let mut out: BTreeMap<Address, BTreeMap<String, Value>> = BTreeMap::new();
    for tx in txs {
        let rpc = RpcTx {
            inner: Recovered::new_unchecked(tx.envelope.clone(), tx.from),
            block_hash: None,
            block_number: None,
            transaction_index: None,
            effective_gas_price: None,
            block_timestamp: None,
        };
        out.entry(tx.from)
            .or_default()
            .insert(tx.envelope.nonce().to_string(), to_json(&rpc)?);
    }
    to_json(&out)
}

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("txpool_status", |_, s, _| -> RpcResult<Value> {
        let chain = s.chain.read();
        let (pending, queued) = chain.pool_content();
        Ok(json!({
            "pending": U64::from(pending.len()),
            "queued": U64::from(queued.len()),
        }))
    })?;
    m.register_method("txpool_content", |_, s, _| -> RpcResult<Value> {
        let chain = s.chain.read();
        let (pending, queued) = chain.pool_content();
        Ok(json!({
            "pending": by_sender(&pending)?,
            "queued": by_sender(&queued)?,
        }))
    })?;
    Ok(())
}
