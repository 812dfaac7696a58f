//! Ethereum JSON-RPC over HTTP and WebSocket on one address (jsonrpsee).
//!
//! Errors follow the JSON-RPC 2.0 / Ethereum conventions: -32700 parse error, -32600 invalid
//! request, -32601 method not found, -32602 invalid params (all produced by the server for
//! malformed requests), -32000 for refused transactions and unavailable state, and code 3 with
//! the revert data in `data` for reverted `eth_call` / `eth_estimateGas`.

use std::net::SocketAddr;
use std::sync::Arc;

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{ReceiptEnvelope, Transaction as _};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockTransactions, EIP1186AccountProofResponse, EIP1186StorageProof,
    FeeHistory, Filter, FilterBlockOption, Header as RpcHeader, Log as RpcLog,
    Transaction as RpcTx, TransactionReceipt, TransactionRequest,
};
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::server::{
    RpcModule, ServerBuilder, ServerConfig, ServerHandle, SubscriptionMessage,
};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::Value;

use crate::chain::{Block, CallOutcome, CallRequest, Chain};
use crate::devnet::{DevnetError, Shared, SubmitError};

type RpcResult<T> = Result<T, ErrorObjectOwned>;

const INVALID_PARAMS: i32 = -32602;
const SERVER_ERROR: i32 = -32000;
const EXECUTION_REVERTED: i32 = 3;
const MAX_LOG_RANGE: u64 = 10_000;

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

fn invalid(msg: impl std::fmt::Display) -> ErrorObjectOwned {
    err(INVALID_PARAMS, format!("invalid params: {msg}"))
}

fn to_json<T: serde::Serialize>(value: &T) -> RpcResult<Value> {
    serde_json::to_value(value).map_err(|e| err(-32603, format!("internal error: {e}")))
}

/// Starts the server; returns its handle and bound address.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    max_body: u32,
) -> Result<(ServerHandle, SocketAddr), DevnetError> {
    let config = ServerConfig::builder()
        .max_request_body_size(max_body)
        .max_response_body_size(64 * 1024 * 1024)
        .build();
    let server = ServerBuilder::default()
        .set_config(config)
        .build(addr)
        .await
        .map_err(|e| DevnetError::Rpc(format!("binding {addr}: {e}")))?;
    let bound = server
        .local_addr()
        .map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let module = module(shared).map_err(|e| DevnetError::Rpc(e.to_string()))?;
    Ok((server.start(module), bound))
}

fn module(
    shared: Arc<Shared>,
) -> Result<RpcModule<Arc<Shared>>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(shared);
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
    m.register_method("eth_call", |p, s, _| -> RpcResult<Bytes> {
        let (req, block) = call_params(&p)?;
        let chain = s.chain.read();
        let number = block_number(&chain, block)?;
        match chain.call(&req, number).ok_or_else(state_unavailable)? {
            CallOutcome::Success { output, .. } => Ok(output),
            other => Err(call_error(other)),
        }
    })?;
    m.register_method("eth_estimateGas", |p, s, _| -> RpcResult<U64> {
        let (req, block) = call_params(&p)?;
        let chain = s.chain.read();
        let number = block_number(&chain, block)?;
        match chain
            .estimate_gas(&req, number)
            .ok_or_else(state_unavailable)?
        {
            Ok(gas) => Ok(U64::from(gas)),
            Err(outcome) => Err(call_error(outcome)),
        }
    })?;
    m.register_method("eth_feeHistory", |p, s, _| -> RpcResult<Value> {
        let mut seq = p.sequence();
        let count: U64 = seq.next()?;
        let newest: BlockNumberOrTag = seq.next()?;
        let percentiles: Option<Vec<Value>> = seq.optional_next()?;
        let chain = s.chain.read();
        fee_history(
            &chain,
            count.to::<u64>(),
            newest,
            percentiles.map(|p| p.len()),
        )
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
    m.register_method("eth_getLogs", |p, s, _| -> RpcResult<Vec<RpcLog>> {
        let filter: Filter = p.one()?;
        let chain = s.chain.read();
        logs(&chain, &filter)
    })?;
    m.register_method(
        "eth_getProof",
        |p, s, _| -> RpcResult<EIP1186AccountProofResponse> {
            let mut seq = p.sequence();
            let address: Address = seq.next()?;
            let keys: Vec<alloy_serde::storage::JsonStorageKey> = seq.next()?;
            let block: BlockId = seq.optional_next()?.unwrap_or_default();
            let chain = s.chain.read();
            let state = state_at(&chain, block)?;
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
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        subscribe,
    )?;
    Ok(m)
}

/// Tip suggested by `eth_maxPriorityFeePerGas` (1 gwei).
const SUGGESTED_TIP: u64 = 1_000_000_000;

#[allow(clippy::redundant_allocation)] // jsonrpsee hands the module context over in its own Arc
async fn subscribe(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    shared: Arc<Arc<Shared>>,
    _ext: jsonrpsee::Extensions,
) -> jsonrpsee::core::SubscriptionResult {
    let mut seq = params.sequence();
    let kind: String = seq.next()?;
    let filter: Option<Filter> = match kind.as_str() {
        "newHeads" => None,
        "logs" => Some(seq.optional_next::<Filter>()?.unwrap_or_default()),
        other => {
            pending
                .reject(invalid(format!("unsupported subscription {other:?}")))
                .await;
            return Ok(());
        }
    };
    let mut blocks = shared.blocks.subscribe();
    let sink = pending.accept().await?;
    loop {
        let number = tokio::select! {
            n = blocks.recv() => match n {
                Ok(n) => n,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return Ok(()),
            },
            _ = sink.closed() => return Ok(()),
        };
        let messages: Vec<Value> = {
            let chain = shared.chain.read();
            let Some(block) = chain.block(number) else {
                continue;
            };
            match &filter {
                None => vec![serde_json::to_value(rpc_header(block))?],
                Some(f) => block_logs(block, f)
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?,
            }
        };
        for msg in messages {
            sink.send(SubscriptionMessage::new(
                sink.method_name(),
                sink.subscription_id(),
                &msg,
            )?)
            .await?;
        }
    }
}

fn address_and_block(p: &Params<'_>) -> RpcResult<(Address, BlockId)> {
    let mut seq = p.sequence();
    let address: Address = seq.next()?;
    let block: BlockId = seq.optional_next()?.unwrap_or_default();
    Ok((address, block))
}

fn call_params(p: &Params<'_>) -> RpcResult<(CallRequest, BlockId)> {
    let mut seq = p.sequence();
    let tx: TransactionRequest = seq.next()?;
    let block: BlockId = seq.optional_next()?.unwrap_or_default();
    let req = CallRequest {
        from: tx.from,
        to: tx.to.and_then(|k| k.to().copied()),
        gas: tx.gas,
        value: tx.value,
        data: tx.input.into_input().unwrap_or_default(),
    };
    Ok((req, block))
}

fn call_error(outcome: CallOutcome) -> ErrorObjectOwned {
    match outcome {
        CallOutcome::Revert { output, .. } => {
            let reason = revert_reason(&output);
            let msg = match reason {
                Some(r) => format!("execution reverted: {r}"),
                None => "execution reverted".to_string(),
            };
            ErrorObjectOwned::owned(EXECUTION_REVERTED, msg, Some(output))
        }
        CallOutcome::Halt { reason } => err(SERVER_ERROR, format!("execution halted: {reason}")),
        CallOutcome::Success { .. } => err(-32603, "internal error: success reported as failure"),
    }
}

/// Decodes `Error(string)` revert data.
fn revert_reason(output: &[u8]) -> Option<String> {
    let data = output.strip_prefix(&[0x08, 0xc3, 0x79, 0xa0][..])?;
    if data.len() < 64 {
        return None;
    }
    let len = usize::try_from(U256::from_be_slice(&data[32..64])).ok()?;
    let bytes = data.get(64..64 + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

fn state_unavailable() -> ErrorObjectOwned {
    err(
        SERVER_ERROR,
        "state for that block is not available (pruned or unknown block)",
    )
}

fn resolve_tag(chain: &Chain, tag: BlockNumberOrTag) -> Option<u64> {
    match tag {
        BlockNumberOrTag::Earliest => Some(0),
        BlockNumberOrTag::Number(n) => (n <= chain.head_number()).then_some(n),
        _ => Some(chain.head_number()),
    }
}

fn block_number(chain: &Chain, block: BlockId) -> RpcResult<u64> {
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

fn state_at(chain: &Chain, block: BlockId) -> RpcResult<&crate::state::WorldState> {
    let number = block_number(chain, block)?;
    chain.state_at(number).ok_or_else(state_unavailable)
}

fn rpc_header(block: &Block) -> RpcHeader {
    RpcHeader {
        hash: block.hash,
        inner: block.header.clone(),
        total_difficulty: Some(U256::from(block.header.number + 1)),
        size: Some(U256::from(block.size)),
    }
}

fn rpc_tx(block: &Block, index: usize) -> RpcTx {
    let tx = &block.txs[index];
    RpcTx {
        inner: Recovered::new_unchecked(tx.envelope.clone(), tx.from),
        block_hash: Some(block.hash),
        block_number: Some(block.header.number),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(block.receipts[index].effective_gas_price),
        block_timestamp: Some(block.header.timestamp),
    }
}

fn rpc_block(block: &Block, full: bool) -> RpcBlock {
    let transactions = if full {
        BlockTransactions::Full((0..block.txs.len()).map(|i| rpc_tx(block, i)).collect())
    } else {
        BlockTransactions::Hashes(block.txs.iter().map(|t| t.hash).collect())
    };
    RpcBlock {
        header: rpc_header(block),
        uncles: vec![],
        transactions,
        withdrawals: Some(Default::default()),
    }
}

fn rpc_logs_of(block: &Block, index: usize) -> Vec<RpcLog> {
    let receipt = &block.receipts[index];
    receipt
        .envelope
        .logs()
        .iter()
        .enumerate()
        .map(|(i, log)| RpcLog {
            inner: log.clone(),
            block_hash: Some(block.hash),
            block_number: Some(block.header.number),
            block_timestamp: Some(block.header.timestamp),
            transaction_hash: Some(block.txs[index].hash),
            transaction_index: Some(index as u64),
            log_index: Some(receipt.first_log_index + i as u64),
            removed: false,
        })
        .collect()
}

fn rpc_receipt(block: &Block, index: usize) -> TransactionReceipt {
    let receipt = &block.receipts[index];
    let tx = &block.txs[index];
    let logs = rpc_logs_of(block, index);
    let mut logs_iter = logs.into_iter();
    let inner: ReceiptEnvelope<RpcLog> = receipt
        .envelope
        .clone()
        .map_logs(|_| logs_iter.next().unwrap_or_default());
    TransactionReceipt {
        inner,
        transaction_hash: tx.hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.header.number),
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: tx.from,
        to: tx.envelope.to(),
        contract_address: receipt.contract_address,
    }
}

fn block_logs(block: &Block, filter: &Filter) -> Vec<RpcLog> {
    if !filter.matches_bloom(block.header.logs_bloom) {
        return vec![];
    }
    (0..block.txs.len())
        .flat_map(|i| rpc_logs_of(block, i))
        .filter(|log| filter.matches_address(log.address()) && filter.matches_topics(log.topics()))
        .collect()
}

fn logs(chain: &Chain, filter: &Filter) -> RpcResult<Vec<RpcLog>> {
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

#[allow(clippy::disallowed_types)] // eth_feeHistory's gasUsedRatio is a JSON float by specification
fn fee_history(
    chain: &Chain,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<usize>,
) -> RpcResult<Value> {
    let newest = resolve_tag(chain, newest).ok_or_else(|| err(SERVER_ERROR, "header not found"))?;
    let count = count.clamp(1, 1024).min(newest + 1);
    let oldest = newest + 1 - count;
    let mut base_fee_per_gas = Vec::with_capacity(count as usize + 1);
    let mut gas_used_ratio = Vec::with_capacity(count as usize);
    let mut reward = Vec::new();
    for n in oldest..=newest {
        let Some(block) = chain.block(n) else { break };
        base_fee_per_gas.push(u128::from(
            block.header.base_fee_per_gas.unwrap_or_default(),
        ));
        gas_used_ratio.push(block.header.gas_used as f64 / block.header.gas_limit as f64);
        if let Some(k) = percentiles {
            let tips: Vec<u128> = block
                .txs
                .iter()
                .map(|t| {
                    t.envelope
                        .effective_tip_per_gas(block.header.base_fee_per_gas.unwrap_or_default())
                        .unwrap_or_default()
                })
                .collect();
            let median = if tips.is_empty() {
                0
            } else {
                let mut sorted = tips;
                sorted.sort_unstable();
                sorted[sorted.len() / 2]
            };
            reward.push(vec![median; k]);
        }
    }
    base_fee_per_gas.push(u128::from(chain.next_base_fee()));
    let history = FeeHistory {
        base_fee_per_gas,
        gas_used_ratio,
        base_fee_per_blob_gas: vec![],
        blob_gas_used_ratio: vec![],
        oldest_block: oldest,
        reward: percentiles.map(|_| reward),
    };
    to_json(&history)
}
