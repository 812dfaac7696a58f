//! Log and fee-history reads (`eth_getLogs`, the filter polls, `eth_feeHistory`): they scan
//! shared block data after the chain lock is released, so many wide queries at once never hold
//! up block production.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use alloy_primitives::{Bytes, TxKind, U256};
use common::*;
use kh_evm_chain::BlockProduction;
use serde_json::{Value, json};

/// Runtime: emits 1,024 `LOG1` records (topic: a counter from 1,024 down to 1, no data).
fn many_logs_runtime() -> Vec<u8> {
    vec![
        0x61, 0x04, 0x00, // PUSH2 1024
        0x5b, // loop: JUMPDEST
        0x80, 0x15, 0x60, 0x16, 0x57, // DUP1 ISZERO PUSH1 end JUMPI
        0x80, 0x60, 0x00, 0x60, 0x00, 0xa1, // DUP1 PUSH1 0 PUSH1 0 LOG1 (topic = counter)
        0x60, 0x01, 0x90, 0x03, // counter - 1
        0x60, 0x03, 0x56, // PUSH1 loop JUMP
        0x5b, 0x00, // end: JUMPDEST STOP
    ]
}

async fn receipt(client: &jsonrpsee::http_client::HttpClient, hash: &Value) -> Value {
    for _ in 0..300 {
        let r = call(client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
        if !r.is_null() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("transaction {hash} not mined within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_log_fee_and_filter_reads_keep_the_block_period() {
    let (devnet, client) = start(BlockProduction::Interval(Duration::from_millis(500)), None).await;
    let alice = dev_signer(0);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&many_logs_runtime()),
        200_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let logger = receipt(&client, &hash).await["contractAddress"].clone();
    let query = json!({"address": logger});

    // One polling filter per reader task, installed before the logs exist.
    const READERS: usize = 6;
    let mut filters = vec![];
    for _ in 0..READERS {
        filters.push(call(&client, "eth_newFilter", vec![query.clone()]).await);
    }

    // 12 calls of 1,024 logs each: 12,288 logs, more than one query may return.
    let mut last = Value::Null;
    for nonce in 1..=12 {
        let raw = sign(
            &alice,
            Kind::Eip1559,
            nonce,
            TxKind::Call(serde_json::from_value(logger.clone()).unwrap()),
            U256::ZERO,
            Bytes::new(),
            1_500_000,
        );
        last = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    }
    let r = receipt(&client, &last).await;
    assert_eq!(r["status"], json!("0x1"), "{r}");
    let logs_of_last = r["logs"].as_array().unwrap().len();
    assert_eq!(logs_of_last, 1024);

    // The first poll of each filter finds every log: too many, so it fails and the filter
    // is not moved past them (the same error on the next poll, never a silent gap).
    for f in &filters {
        for _ in 0..2 {
            let e = call_err(&client, "eth_getFilterChanges", vec![f.clone()]).await;
            assert_eq!(e.code(), -32005, "{e:?}");
        }
    }

    let start_head = hex_u64(&call(&client, "eth_blockNumber", vec![]).await);
    let percentiles: Vec<Value> = (0..100).map(|p| json!(p)).collect();
    // Readers run wide queries back to back until the chain has grown by four blocks (each
    // task at most 40 rounds).
    let mut tasks = vec![];
    for filter in filters.clone() {
        let client = client.clone();
        let query = query.clone();
        let percentiles = percentiles.clone();
        tasks.push(tokio::spawn(async move {
            let mut rounds = 0;
            while rounds < 40 {
                rounds += 1;
                let wide =
                    json!({"fromBlock": "0x0", "toBlock": "latest", "address": query["address"]});
                let e = call_err(&client, "eth_getLogs", vec![wide]).await;
                assert_eq!(e.code(), -32005, "{e:?}");
                let e = call_err(&client, "eth_getFilterChanges", vec![filter.clone()]).await;
                assert_eq!(e.code(), -32005, "{e:?}");
                let history = call(
                    &client,
                    "eth_feeHistory",
                    vec![json!("0x400"), json!("latest"), json!(percentiles)],
                )
                .await;
                assert_eq!(
                    history["reward"].as_array().unwrap()[0]
                        .as_array()
                        .unwrap()
                        .len(),
                    100
                );
                let head = hex_u64(&call(&client, "eth_blockNumber", vec![]).await);
                if head >= start_head + 4 {
                    break;
                }
            }
            rounds
        }));
    }
    let mut rounds = 0;
    for t in tasks {
        rounds += t.await.unwrap();
    }
    let end_head = hex_u64(&call(&client, "eth_blockNumber", vec![]).await);
    assert!(
        end_head >= start_head + 4,
        "blocks kept coming under {rounds} rounds of wide reads: {start_head} -> {end_head}"
    );
    // No gap in the block times while the reads ran: 500 ms blocks are at most a second apart.
    let mut previous = None;
    for n in start_head..=end_head {
        let b = call(
            &client,
            "eth_getBlockByNumber",
            vec![json!(format!("{n:#x}")), json!(false)],
        )
        .await;
        let ts = hex_u64(&b["timestamp"]);
        if let Some(p) = previous {
            assert!(ts - p <= 1, "block {n} came {} s after its parent", ts - p);
        }
        previous = Some(ts);
    }

    // A narrow query still answers: the last call's logs, topics counting down from 1,024.
    let block = r["blockNumber"].clone();
    let found = call(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": block, "toBlock": block, "address": logger, "topics": [format!("{:#066x}", 1024)]})],
    )
    .await;
    assert!(!found.as_array().unwrap().is_empty(), "{found}");
    // eth_getFilterLogs over the whole range is refused the same way.
    let wide_filter = call(
        &client,
        "eth_newFilter",
        vec![json!({"fromBlock": "0x0", "address": logger})],
    )
    .await;
    let e = call_err(&client, "eth_getFilterLogs", vec![wide_filter]).await;
    assert_eq!(e.code(), -32005, "{e:?}");
    devnet.shutdown().await.unwrap();
}
