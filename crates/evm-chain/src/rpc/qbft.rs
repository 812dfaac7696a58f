//! `qbft_*` validator methods.

use std::sync::Arc;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::Address;
use jsonrpsee::server::RpcModule;

use crate::node::Shared;

use super::*;

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method(
        "qbft_getValidatorsByBlockNumber",
        |p, s, _| -> RpcResult<Vec<Address>> {
            let tag: BlockNumberOrTag = p.one()?;
            let chain = s.chain.read();
            let number =
                resolve_tag(&chain, tag).ok_or_else(|| err(SERVER_ERROR, "unknown block"))?;
            chain
                .validators_at(number)
                .map(<[Address]>::to_vec)
                .ok_or_else(|| err(SERVER_ERROR, "unknown block"))
        },
    )?;
    m.register_method("qbft_proposeValidatorVote", |p, s, _| -> RpcResult<bool> {
        let mut seq = p.sequence();
        let candidate: Address = seq.next()?;
        let add: bool = seq.next()?;
        s.chain.write().propose_vote(candidate, add);
        Ok(true)
    })?;
    Ok(())
}
