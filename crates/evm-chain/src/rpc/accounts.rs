//! Signing with the dev accounts, as anvil and Besu's dev mode do: `eth_sendTransaction`,
//! `eth_signTransaction` (signed, not sent: what a remote signer such as Web3Signer answers),
//! `eth_sign` and `personal_sign` (EIP-191 messages), `eth_signTypedData_v4` (EIP-712). Only the prefunded accounts of the
//! devnet's mnemonic can sign; any other address is refused.

use std::sync::Arc;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_dyn_abi::TypedData;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use jsonrpsee::server::RpcModule;

use super::errors::{RpcResult, SERVER_ERROR, err, invalid};
use super::fees::SUGGESTED_TIP;
use crate::chain::CallRequest;
use crate::node::{Shared, SubmitError};

fn signer_of(s: &Shared, address: &Address) -> RpcResult<PrivateKeySigner> {
    let account = s
        .dev_accounts
        .iter()
        .find(|a| a.address == *address)
        .ok_or_else(|| err(SERVER_ERROR, format!("unknown account {address}")))?;
    PrivateKeySigner::from_bytes(&account.private_key)
        .map_err(|e| err(-32603, format!("internal error: dev key: {e}")))
}

fn sign_message(s: &Shared, address: &Address, data: &[u8]) -> RpcResult<Bytes> {
    let signer = signer_of(s, address)?;
    let sig = signer
        .sign_message_sync(data)
        .map_err(|e| err(-32603, format!("internal error: signing: {e}")))?;
    Ok(Bytes::copy_from_slice(&sig.as_bytes()))
}

/// Fills in and signs a transaction request from a dev account.
fn build(s: &Shared, req: TransactionRequest) -> RpcResult<Bytes> {
    let from = req
        .from
        .ok_or_else(|| err(-32602, "invalid params: eth_sendTransaction needs from"))?;
    let signer = signer_of(s, &from)?;
    let kind = req.to.unwrap_or(TxKind::Create);
    let input = req.input.clone().into_input().unwrap_or_default();
    let value = req.value.unwrap_or_default();
    let (chain_id, nonce, gas, base_fee) = {
        let chain = s.chain.read();
        let nonce = req.nonce.unwrap_or_else(|| chain.pending_nonce(&from));
        let gas = match req.gas {
            Some(g) => g,
            None => {
                let call = CallRequest {
                    from: Some(from),
                    to: kind.to().copied(),
                    gas: None,
                    value: Some(value),
                    data: input.clone(),
                    ..CallRequest::default()
                };
                match chain.estimate_gas(&call, chain.head_number()) {
                    Some(Ok(g)) => g,
                    Some(Err(outcome)) => return Err(super::errors::call_error(outcome)),
                    None => return Err(err(SERVER_ERROR, "state unavailable")),
                }
            }
        };
        (chain.chain_id(), nonce, gas, chain.next_base_fee())
    };
    let envelope: TxEnvelope = if let Some(gas_price) = req.gas_price {
        let tx = TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price,
            gas_limit: gas,
            to: kind,
            value,
            input,
        };
        let sig = signer
            .sign_hash_sync(&tx.signature_hash())
            .map_err(|e| err(-32603, format!("internal error: signing: {e}")))?;
        tx.into_signed(sig).into()
    } else {
        let tip = req
            .max_priority_fee_per_gas
            .unwrap_or(u128::from(SUGGESTED_TIP));
        let max_fee = req
            .max_fee_per_gas
            .unwrap_or(2 * u128::from(base_fee) + tip);
        let tx = TxEip1559 {
            chain_id,
            nonce,
            gas_limit: gas,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: kind,
            value,
            access_list: req.access_list.unwrap_or_default(),
            input,
        };
        let sig = signer
            .sign_hash_sync(&tx.signature_hash())
            .map_err(|e| err(-32603, format!("internal error: signing: {e}")))?;
        tx.into_signed(sig).into()
    };
    Ok(Bytes::from(envelope.encoded_2718()))
}

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    // Web3Signer's form: the transaction signed (RLP, EIP-2718), not sent.
    m.register_method("eth_signTransaction", |p, s, _| -> RpcResult<Bytes> {
        let req: TransactionRequest = p.one()?;
        build(s, req)
    })?;
    m.register_method("eth_sign", |p, s, _| -> RpcResult<Bytes> {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let data: Bytes = seq.next()?;
        sign_message(s, &address, &data)
    })?;
    m.register_method("personal_sign", |p, s, _| -> RpcResult<Bytes> {
        let mut seq = p.sequence();
        let data: Bytes = seq.next()?;
        let address: Address = seq.next()?;
        sign_message(s, &address, &data)
    })?;
    m.register_method("eth_signTypedData_v4", |p, s, _| -> RpcResult<Bytes> {
        let mut seq = p.sequence();
        let address: Address = seq.next()?;
        let data: serde_json::Value = seq.next()?;
        // Wallets send the typed data as a JSON string (MetaMask, ethers) or as an object.
        let data = match data {
            serde_json::Value::String(text) => serde_json::from_str(&text),
            other => serde_json::from_value(other),
        };
        let typed: TypedData = data.map_err(|e| invalid(format!("typed data: {e}")))?;
        let hash = typed
            .eip712_signing_hash()
            .map_err(|e| invalid(format!("typed data: {e}")))?;
        let signer = signer_of(s, &address)?;
        let sig = signer
            .sign_hash_sync(&hash)
            .map_err(|e| err(-32603, format!("internal error: signing: {e}")))?;
        Ok(Bytes::copy_from_slice(&sig.as_bytes()))
    })?;
    m.register_async_method("eth_sendTransaction", |p, s, _| async move {
        let req: TransactionRequest = p.one()?;
        tokio::task::spawn_blocking(move || -> RpcResult<B256> {
            let raw = build(&s, req)?;
            s.submit(&raw).map_err(|e| match e {
                SubmitError::Tx(tx) => err(SERVER_ERROR, tx.to_string()),
                SubmitError::Chain(c) => err(-32603, format!("internal error: {c}")),
            })
        })
        .await
        .map_err(|e| err(-32603, format!("internal error: {e}")))?
    })?;
    Ok(())
}
