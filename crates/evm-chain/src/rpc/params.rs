//! Parameter parsing and block resolution shared by the methods.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::Address;
use alloy_rpc_types_eth::TransactionRequest;
use jsonrpsee::types::Params;

use crate::chain::{CallRequest, Chain};

use super::*;

pub(super) fn address_and_block(p: &Params<'_>) -> RpcResult<(Address, BlockId)> {
    let mut seq = p.sequence();
    let address: Address = seq.next()?;
    let block: BlockId = seq.optional_next()?.unwrap_or_default();
    Ok((address, block))
}

pub(super) fn call_params(p: &Params<'_>) -> RpcResult<(CallRequest, BlockId)> {
    let mut seq = p.sequence();
    let tx: TransactionRequest = seq.next()?;
    let block: BlockId = seq.optional_next()?.unwrap_or_default();
    let overrides: Option<alloy_rpc_types_eth::state::StateOverride> = seq.optional_next()?;
    if let Some(o) = &overrides {
        crate::chain::check_overrides(o).map_err(invalid)?;
    }
    Ok((request_of(tx, overrides), block))
}

/// The call a transaction request describes.
pub(super) fn request_of(
    tx: TransactionRequest,
    overrides: Option<alloy_rpc_types_eth::state::StateOverride>,
) -> CallRequest {
    CallRequest {
        from: tx.from,
        to: tx.to.and_then(|k| k.to().copied()),
        gas: tx.gas,
        value: tx.value,
        data: tx.input.into_input().unwrap_or_default(),
        gas_price: tx.gas_price,
        max_fee_per_gas: tx.max_fee_per_gas,
        max_priority_fee_per_gas: tx.max_priority_fee_per_gas,
        nonce: tx.nonce,
        access_list: tx.access_list,
        overrides,
    }
}

pub(super) fn resolve_tag(chain: &Chain, tag: BlockNumberOrTag) -> Option<u64> {
    match tag {
        BlockNumberOrTag::Earliest => Some(0),
        BlockNumberOrTag::Number(n) => (n <= chain.head_number()).then_some(n),
        _ => Some(chain.head_number()),
    }
}

pub(super) fn block_number(chain: &Chain, block: BlockId) -> RpcResult<u64> {
    match block {
        BlockId::Number(tag) => {
            resolve_tag(chain, tag).ok_or_else(|| err(SERVER_ERROR, "header not found"))
        }
        BlockId::Hash(h) => chain
            .block_by_hash(&h.block_hash)
            .map(|b| b.header.number)
            .ok_or_else(|| err(SERVER_ERROR, "header not found")),
    }
}

pub(super) fn state_at(chain: &Chain, block: BlockId) -> RpcResult<&crate::state::WorldState> {
    let number = block_number(chain, block)?;
    chain.state_at(number).ok_or_else(state_unavailable)
}
