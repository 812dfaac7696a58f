//! `eth_*` methods that read account state: balances, code, storage, calls and proofs.

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{EIP1186AccountProofResponse, EIP1186StorageProof};
use jsonrpsee::server::RpcModule;

use super::heavy::register_heavy;
use crate::chain::CallOutcome;
use crate::node::Shared;

use super::*;

/// A detached view for calls at `block`; the chain lock is held only while it is taken.
fn call_view(s: &Shared, block: BlockId) -> RpcResult<crate::chain::CallView> {
    let chain = s.chain.read();
    let number = block_number(&chain, block)?;
    chain.call_view(number).ok_or_else(state_unavailable)
}

/// Most storage keys one `eth_getProof` may ask for.
pub(super) const MAX_PROOF_KEYS: usize = 1024;

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("eth_getBalance", |p, s, _| -> RpcResult<U256> {
        let (address, block) = address_and_block(&p)?;
        let chain = s.chain.read();
        let state = state_at(&chain, block)?;
        Ok(state
            .account(&address)
            .map(|a| a.balance)
            .unwrap_or_default())
    })?;
    m.register_method("eth_getTransactionCount", |p, s, _| -> RpcResult<U64> {
        let (address, block) = address_and_block(&p)?;
        let chain = s.chain.read();
        if matches!(block, BlockId::Number(BlockNumberOrTag::Pending)) {
            return Ok(U64::from(chain.pending_nonce(&address)));
        }
        let state = state_at(&chain, block)?;
        Ok(U64::from(
            state.account(&address).map(|a| a.nonce).unwrap_or(0),
        ))
    })?;
    m.register_method("eth_getCode", |p, s, _| -> RpcResult<Bytes> {
        let (address, block) = address_and_block(&p)?;
        let chain = s.chain.read();
        Ok(state_at(&chain, block)?.code_of(&address))
    })?;
    m.register_method("eth_getStorageAt", |p, s, _| -> RpcResult<B256> {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let slot: U256 = seq.next()?;
        let block: BlockId = seq.optional_next()?.unwrap_or_default();
        let chain = s.chain.read();
        Ok(B256::from(state_at(&chain, block)?.storage(&address, slot)))
    })?;
    register_heavy(m, "eth_call", |p, s| -> RpcResult<Bytes> {
        let (req, block) = call_params(&p)?;
        let view = call_view(s, block)?;
        match view.call(&req) {
            CallOutcome::Success { output, .. } => Ok(output),
            other => Err(call_error(other)),
        }
    })?;
    register_heavy(m, "eth_estimateGas", |p, s| -> RpcResult<U64> {
        let (req, block) = call_params(&p)?;
        let view = call_view(s, block)?;
        match view.estimate_gas(&req) {
            Ok(gas) => Ok(U64::from(gas)),
            Err(outcome) => Err(call_error(outcome)),
        }
    })?;
    register_heavy(
        m,
        "eth_getProof",
        |p, s| -> RpcResult<EIP1186AccountProofResponse> {
            let mut seq = p.sequence();
            let address: Address = seq.next()?;
            let keys: Vec<alloy_serde::storage::JsonStorageKey> = seq.next()?;
            if keys.len() > MAX_PROOF_KEYS {
                return Err(err(
                    LIMIT_EXCEEDED,
                    format!("at most {MAX_PROOF_KEYS} storage keys per eth_getProof"),
                ));
            }
            let block: BlockId = seq.optional_next()?.unwrap_or_default();
            // A snapshot (a cheap persistent-map clone): the proof is built without the lock.
            let state = {
                let chain = s.chain.read();
                state_at(&chain, block)?.clone()
            };
            let slots: Vec<B256> = keys.iter().map(|k| k.as_b256()).collect();
            let proof = state.proof(address, &slots);
            Ok(EIP1186AccountProofResponse {
                address,
                balance: proof.account.balance,
                code_hash: proof.account.code_hash,
                nonce: proof.account.nonce,
                storage_hash: proof.account.storage_root,
                account_proof: proof.account_proof,
                storage_proof: keys
                    .into_iter()
                    .zip(proof.storage_proofs)
                    .map(|(key, (_, value, proof))| EIP1186StorageProof { key, value, proof })
                    .collect(),
            })
        },
    )?;
    Ok(())
}
