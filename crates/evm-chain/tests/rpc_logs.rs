//! Log and fee-history reads: `eth_getLogs` edge cases and limits, `eth_feeHistory` rewards and
//! limits, the polling filters; they scan shared block data after the chain lock is released,
//! so many wide queries at once never hold up block production.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_logs_past_the_head_is_empty_and_ranges_are_limited() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&store_and_log_runtime()),
        200_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let contract =
        call(&client, "eth_getTransactionReceipt", vec![hash]).await["contractAddress"].clone();
    let raw = sign(
        &alice,
        Kind::Eip1559,
        1,
        TxKind::Call(serde_json::from_value(contract.clone()).unwrap()),
        U256::ZERO,
        Bytes::from(B256::repeat_byte(9).to_vec()),
        100_000,
    );
    call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let all = call(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x0", "address": contract})],
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    // fromBlock past the head: nothing (not the head's logs).
    let past = call(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x3", "address": contract})],
    )
    .await;
    assert_eq!(past, json!([]));
    let past = call(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x100", "toBlock": "0x200"})],
    )
    .await;
    assert_eq!(past, json!([]));
    // A range reaching past the head ends at the head.
    let wide = call(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x0", "toBlock": "0x100", "address": contract})],
    )
    .await;
    assert_eq!(wide, all);
    let e = call_err(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x2", "toBlock": "0x1"})],
    )
    .await;
    assert_eq!(e.code(), -32602);
    let e = call_err(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x0", "toBlock": "0x100000"})],
    )
    .await;
    // Range limit: checked against the requested range, before anything is read.
    assert_eq!(e.code(), -32005, "{e:?}");
    assert!(e.message().contains("range"), "{}", e.message());
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_history_rewards_per_percentile_and_request_limits() {
    let (devnet, client) = start(
        BlockProduction::Interval(std::time::Duration::from_secs(3600)),
        None,
    )
    .await;
    // Three transfers tipping 1, 2 and 3 gwei (21,000 gas each) in one block.
    for (i, tip) in [3u128, 1, 2].into_iter().enumerate() {
        let raw = sign_fees(&dev_signer(i), 0, 10 * GWEI, tip * GWEI, U256::from(1));
        call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    }
    let n = devnet.mine().await.unwrap();
    devnet.mine().await.unwrap();
    let history = call(
        &client,
        "eth_feeHistory",
        vec![
            json!("0x2"),
            json!(format!("{n:#x}")),
            json!([0, 10, 34, 50, 67, 90, 100]),
        ],
    )
    .await;
    let gwei = |g: u128| json!(format!("{:#x}", g * GWEI));
    // Gas-weighted: each transaction is a third of the gas used.
    assert_eq!(
        history["reward"][1],
        json!([
            gwei(1),
            gwei(1),
            gwei(2),
            gwei(2),
            gwei(3),
            gwei(3),
            gwei(3)
        ])
    );
    // The block before (empty) pays 0 at every percentile.
    assert_eq!(
        history["reward"][0],
        json!(["0x0", "0x0", "0x0", "0x0", "0x0", "0x0", "0x0"])
    );
    assert_eq!(history["oldestBlock"], json!(format!("{:#x}", n - 1)));
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 3);

    // Percentile lists: bounded, in [0, 100], increasing.
    let many: Vec<u32> = (0..101).map(|i| i.min(100)).collect();
    let e = call_err(
        &client,
        "eth_feeHistory",
        vec![json!("0x1"), json!("latest"), json!(many)],
    )
    .await;
    assert_eq!(e.code(), -32005);
    let e = call_err(
        &client,
        "eth_feeHistory",
        vec![json!("0x1"), json!("latest"), json!([50, 10])],
    )
    .await;
    assert_eq!(e.code(), -32602);
    let e = call_err(
        &client,
        "eth_feeHistory",
        vec![json!("0x1"), json!("latest"), json!([150])],
    )
    .await;
    assert_eq!(e.code(), -32602);
    // Huge block counts are clamped, not allocated.
    let h = call(
        &client,
        "eth_feeHistory",
        vec![json!("0xffffffffffff"), json!("latest")],
    )
    .await;
    assert_eq!(h["oldestBlock"], json!("0x0"));

    // eth_getProof: at most 1024 keys.
    let keys: Vec<B256> = (0..1025u64).map(|i| B256::from(U256::from(i))).collect();
    let e = call_err(
        &client,
        "eth_getProof",
        vec![
            json!(Address::repeat_byte(1)),
            json!(keys[..1025]),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(e.code(), -32005);
    call(
        &client,
        "eth_getProof",
        vec![
            json!(Address::repeat_byte(1)),
            json!(keys[..1024]),
            json!("latest"),
        ],
    )
    .await;

    // Batches: at most 1000 calls.
    let batch = |n: usize| {
        serde_json::to_vec(
            &(0..n)
                .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "eth_blockNumber", "params": []}))
                .collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let (status, body) = raw_http(devnet.rpc_addr(), &batch(1000)).await;
    assert_eq!(status, 200);
    let answers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 1000);
    let (_, body) = raw_http(devnet.rpc_addr(), &batch(1001)).await;
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(answer["error"]["code"].as_i64().is_some(), "{answer}");
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_filters_report_new_blocks_and_logs_once() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&store_and_log_runtime()),
        200_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let contract: Address = serde_json::from_value(
        call(&client, "eth_getTransactionReceipt", vec![hash]).await["contractAddress"].clone(),
    )
    .unwrap();

    let blocks = call(&client, "eth_newBlockFilter", vec![]).await;
    let id = blocks.as_str().unwrap();
    assert!(id.starts_with("0x") && id.len() == 34, "{id}");
    let logs = call(
        &client,
        "eth_newFilter",
        vec![json!({"address": contract, "topics": [B256::from(LOG_TOPIC)]})],
    )
    .await;
    let everything = call(
        &client,
        "eth_newFilter",
        vec![json!({"fromBlock": "0x0", "address": contract})],
    )
    .await;
    // Nothing new yet.
    assert_eq!(
        call(&client, "eth_getFilterChanges", vec![blocks.clone()]).await,
        json!([])
    );
    assert_eq!(
        call(&client, "eth_getFilterChanges", vec![logs.clone()]).await,
        json!([])
    );

    for (nonce, word) in [(1u64, 5u8), (2, 6)] {
        let raw = sign(
            &alice,
            Kind::Eip1559,
            nonce,
            TxKind::Call(contract),
            U256::ZERO,
            Bytes::from(B256::repeat_byte(word).to_vec()),
            100_000,
        );
        call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    }
    let new_blocks = call(&client, "eth_getFilterChanges", vec![blocks.clone()]).await;
    let mut expected = vec![];
    for n in [2u64, 3] {
        expected.push(
            call(
                &client,
                "eth_getBlockByNumber",
                vec![json!(format!("{n:#x}")), json!(false)],
            )
            .await["hash"]
                .clone(),
        );
    }
    assert_eq!(new_blocks, json!(expected));
    let new_logs = call(&client, "eth_getFilterChanges", vec![logs.clone()]).await;
    let new_logs = new_logs.as_array().unwrap();
    assert_eq!(new_logs.len(), 2);
    assert_eq!(new_logs[0]["data"], json!(B256::repeat_byte(5)));
    assert_eq!(new_logs[1]["data"], json!(B256::repeat_byte(6)));
    // Reported once.
    assert_eq!(
        call(&client, "eth_getFilterChanges", vec![blocks.clone()]).await,
        json!([])
    );
    assert_eq!(
        call(&client, "eth_getFilterChanges", vec![logs.clone()]).await,
        json!([])
    );
    // eth_getFilterLogs answers the whole range again.
    let all = call(&client, "eth_getFilterLogs", vec![everything.clone()]).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let e = call_err(&client, "eth_getFilterLogs", vec![blocks.clone()]).await;
    assert_eq!(e.code(), -32000);

    // Uninstalled filters are gone.
    assert_eq!(
        call(&client, "eth_uninstallFilter", vec![logs.clone()]).await,
        json!(true)
    );
    assert_eq!(
        call(&client, "eth_uninstallFilter", vec![logs.clone()]).await,
        json!(false)
    );
    let e = call_err(&client, "eth_getFilterChanges", vec![logs]).await;
    assert_eq!(e.code(), -32000);
    assert!(e.message().contains("filter not found"));
    let e = call_err(&client, "eth_getFilterChanges", vec![json!("0x1234")]).await;
    assert!(e.message().contains("filter not found"));
    let e = call_err(
        &client,
        "eth_newFilter",
        vec![json!({"blockHash": B256::repeat_byte(1)})],
    )
    .await;
    assert_eq!(e.code(), -32602);
    devnet.shutdown().await.unwrap();
}
