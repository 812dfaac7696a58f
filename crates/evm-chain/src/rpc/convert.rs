//! Conversions from the chain's blocks, transactions and receipts to JSON-RPC types.

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{ReceiptEnvelope, Transaction as _};
use alloy_primitives::U256;
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockTransactions, Header as RpcHeader, Log as RpcLog, Transaction as RpcTx,
    TransactionReceipt,
};

use crate::chain::Block;

pub(super) fn rpc_header(block: &Block) -> RpcHeader {
    RpcHeader {
        hash: block.hash,
        inner: block.header.clone(),
        total_difficulty: Some(U256::from(block.header.number + 1)),
        size: Some(U256::from(block.size)),
    }
}

pub(super) fn rpc_tx(block: &Block, index: usize) -> RpcTx {
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

pub(super) fn rpc_block(block: &Block, full: bool) -> RpcBlock {
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

pub(super) fn rpc_logs_of(block: &Block, index: usize) -> Vec<RpcLog> {
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

pub(super) fn rpc_receipt(block: &Block, index: usize) -> TransactionReceipt {
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
