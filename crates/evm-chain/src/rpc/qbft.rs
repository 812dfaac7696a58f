//! `qbft_*` validator methods.

use std::sync::Arc;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::Address;
use jsonrpsee::server::RpcModule;

use crate::node::Shared;

use super::*;

/// Registers the read-only `qbft_*` methods, and the vote methods when `admin` is set.
pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
    admin: bool,
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
    if !admin {
        return Ok(());
    }
    m.register_method("qbft_proposeValidatorVote", |p, s, _| -> RpcResult<bool> {
        let mut seq = p.sequence();
        let candidate: Address = seq.next()?;
        let add: bool = seq.next()?;
        s.chain
            .write()
            .propose_vote(candidate, add)
            .map_err(|e| err(SERVER_ERROR, e.to_string()))?;
        Ok(true)
    })?;
    m.register_method("qbft_discardValidatorVote", |p, s, _| -> RpcResult<bool> {
        let candidate: Address = p.one()?;
        Ok(s.chain.write().discard_vote(&candidate))
    })?;
    m.register_method(
        "qbft_getPendingVotes",
        |_, s, _| -> RpcResult<std::collections::BTreeMap<Address, bool>> {
            Ok(s.chain.read().pending_votes().into_iter().collect())
        },
    )?;
    Ok(())
}
