//! Block-scoped getters: transaction counts, transactions and receipts by block and index,
//! `eth_getBlockReceipts`, the uncle getters (QBFT has no uncles: zero and null), and the
//! small informational methods (`net_peerCount`, `web3_sha3`, `eth_coinbase`,
//! `eth_blobBaseFee`).

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256, keccak256};
use jsonrpsee::server::RpcModule;
use jsonrpsee::types::Params;
use serde_json::Value;

use super::convert::{rpc_receipt, rpc_tx};
use super::errors::{RpcResult, to_json};
use super::params::resolve_tag;
use crate::chain::{Block, Chain};
use crate::node::Shared;

fn by_tag(chain: &Chain, tag: BlockNumberOrTag) -> Option<&Block> {
    resolve_tag(chain, tag).and_then(|n| chain.block(n))
}

fn by_id(chain: &Chain, id: BlockId) -> Option<&Block> {
    match id {
        BlockId::Number(tag) => by_tag(chain, tag),
        BlockId::Hash(h) => chain.block_by_hash(&h.block_hash),
    }
}

/// `(block, index)` parameters; the index is a hex quantity.
fn block_and_index<T: serde::de::DeserializeOwned>(p: &Params<'_>) -> RpcResult<(T, usize)> {
    let mut seq = p.sequence();
    let block: T = seq.next()?;
    let index: U64 = seq.next()?;
    Ok((
        block,
        usize::try_from(index.to::<u64>()).unwrap_or(usize::MAX),
    ))
}

fn tx_at(block: Option<&Block>, index: usize) -> RpcResult<Value> {
    match block {
        Some(b) if index < b.txs.len() => to_json(&rpc_tx(b, index)),
        _ => Ok(Value::Null),
    }
}

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("net_peerCount", |_, _, _| -> RpcResult<U64> {
        // One process seals with every validator key: no peers.
        Ok(U64::ZERO)
    })?;
    m.register_method("web3_sha3", |p, _, _| -> RpcResult<B256> {
        let data: Bytes = p.one()?;
        Ok(keccak256(&data))
    })?;
    m.register_method("eth_coinbase", |_, s, _| -> RpcResult<Address> {
        // The proposer of the next block: the beneficiary this node will stamp.
        let chain = s.chain.read();
        Ok(chain.next_proposer())
    })?;
    m.register_method("eth_blobBaseFee", |_, _, _| -> RpcResult<U256> {
        // No blob transactions are accepted: the excess blob gas stays 0, the fee at its minimum.
        Ok(U256::from(1))
    })?;
    m.register_method(
        "eth_getBlockTransactionCountByNumber",
        |p, s, _| -> RpcResult<Option<U64>> {
            let tag: BlockNumberOrTag = p.one()?;
            let chain = s.chain.read();
            Ok(by_tag(&chain, tag).map(|b| U64::from(b.txs.len())))
        },
    )?;
    m.register_method(
        "eth_getBlockTransactionCountByHash",
        |p, s, _| -> RpcResult<Option<U64>> {
            let hash: B256 = p.one()?;
            let chain = s.chain.read();
            Ok(chain.block_by_hash(&hash).map(|b| U64::from(b.txs.len())))
        },
    )?;
    m.register_method(
        "eth_getUncleCountByBlockNumber",
        |p, s, _| -> RpcResult<Option<U64>> {
            let tag: BlockNumberOrTag = p.one()?;
            let chain = s.chain.read();
            Ok(by_tag(&chain, tag).map(|_| U64::ZERO))
        },
    )?;
    m.register_method(
        "eth_getUncleCountByBlockHash",
        |p, s, _| -> RpcResult<Option<U64>> {
            let hash: B256 = p.one()?;
            let chain = s.chain.read();
            Ok(chain.block_by_hash(&hash).map(|_| U64::ZERO))
        },
    )?;
    m.register_method(
        "eth_getUncleByBlockNumberAndIndex",
        |p, _, _| -> RpcResult<Value> {
            block_and_index::<BlockNumberOrTag>(&p)?;
            Ok(Value::Null)
        },
    )?;
    m.register_method(
        "eth_getUncleByBlockHashAndIndex",
        |p, _, _| -> RpcResult<Value> {
            block_and_index::<B256>(&p)?;
            Ok(Value::Null)
        },
    )?;
    m.register_method(
        "eth_getTransactionByBlockNumberAndIndex",
        |p, s, _| -> RpcResult<Value> {
            let (tag, index) = block_and_index::<BlockNumberOrTag>(&p)?;
            let chain = s.chain.read();
            tx_at(by_tag(&chain, tag), index)
        },
    )?;
    m.register_method(
        "eth_getTransactionByBlockHashAndIndex",
        |p, s, _| -> RpcResult<Value> {
            let (hash, index) = block_and_index::<B256>(&p)?;
            let chain = s.chain.read();
            tx_at(chain.block_by_hash(&hash), index)
        },
    )?;
    m.register_method("eth_getBlockReceipts", |p, s, _| -> RpcResult<Value> {
        let id: BlockId = p.one()?;
        let chain = s.chain.read();
        match by_id(&chain, id) {
            Some(b) => to_json(
                &(0..b.txs.len())
                    .map(|i| rpc_receipt(b, i))
                    .collect::<Vec<_>>(),
            ),
            None => Ok(Value::Null),
        }
    })?;
    Ok(())
}
