//! Simulated calls: `eth_call` / `eth_estimateGas` fee fields, nonce, value and state
//! overrides, `eth_createAccessList`, and expensive calls that must not stall block production.
#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use common::*;
use kh_evm_chain::BlockProduction;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_honour_value_fees_and_nonce() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0).address();
    let poor = Address::repeat_byte(0x99);
    let to = Address::repeat_byte(0x42);
    // Free calls still need the balance to cover the value.
    call(
        &client,
        "eth_call",
        vec![
            json!({"from": alice, "to": to, "value": "0x1"}),
            json!("latest"),
        ],
    )
    .await;
    let e = call_err(
        &client,
        "eth_call",
        vec![
            json!({"from": poor, "to": to, "value": "0x1"}),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(e.code(), -32000, "{e:?}");
    let e = call_err(
        &client,
        "eth_estimateGas",
        vec![json!({"from": poor, "to": to, "value": "0x1"})],
    )
    .await;
    assert_eq!(e.code(), -32000, "{e:?}");
    // Fee fields: a price the sender cannot pay, or a fee cap under the base fee, fails.
    let e = call_err(
        &client,
        "eth_call",
        vec![json!({"from": alice, "to": to, "gas": "0x5208", "gasPrice": "0xffffffffffffffffffffffff"}), json!("latest")],
    )
    .await;
    assert_eq!(e.code(), -32000, "{e:?}");
    let e = call_err(
        &client,
        "eth_call",
        vec![
            json!({"from": alice, "to": to, "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x0"}),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(e.code(), -32000, "{e:?}");
    call(
        &client,
        "eth_call",
        vec![json!({"from": alice, "to": to, "maxFeePerGas": "0x174876e800", "maxPriorityFeePerGas": "0x1"}), json!("latest")],
    )
    .await;
    // A given nonce is used, not validated (geth and Besu): a creation's address follows it.
    call(
        &client,
        "eth_call",
        vec![
            json!({"from": alice, "to": to, "nonce": "0x5"}),
            json!("latest"),
        ],
    )
    .await;
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_take_state_overrides_for_that_call_only() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let poor = Address::repeat_byte(0x99);
    let x = Address::repeat_byte(0x55);
    // Balance override: the value is covered now.
    let e = call_err(
        &client,
        "eth_call",
        vec![
            json!({"from": poor, "to": x, "value": "0x1"}),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(e.code(), -32000);
    call(
        &client,
        "eth_call",
        vec![
            json!({"from": poor, "to": x, "value": "0x1"}),
            json!("latest"),
            json!({ poor.to_string(): {"balance": "0x10"} }),
        ],
    )
    .await;
    // Code and storage overrides: a contract returning slot 0.
    let sload0 = "0x60005460005260206000f3";
    let slot0 = B256::ZERO;
    let word = B256::from(U256::from(0x2a));
    let out = call(
        &client,
        "eth_call",
        vec![
            json!({"to": x}),
            json!("latest"),
            json!({ x.to_string(): {"code": sload0, "stateDiff": { slot0.to_string(): word }} }),
        ],
    )
    .await;
    assert_eq!(out, json!(word));
    // `state` replaces the whole storage: slot 0 is empty again.
    let out = call(
        &client,
        "eth_call",
        vec![
            json!({"to": x}),
            json!("latest"),
            json!({ x.to_string(): {"code": sload0, "state": { B256::with_last_byte(1).to_string(): word }} }),
        ],
    )
    .await;
    assert_eq!(out, json!(B256::ZERO));
    let e = call_err(
        &client,
        "eth_call",
        vec![
            json!({"to": x}),
            json!("latest"),
            json!({ x.to_string(): {"state": {}, "stateDiff": {}} }),
        ],
    )
    .await;
    assert_eq!(e.code(), -32602);
    // Overrides last for one call only.
    assert_eq!(
        call(&client, "eth_call", vec![json!({"to": x}), json!("latest")]).await,
        json!("0x")
    );
    assert_eq!(
        call(&client, "eth_getCode", vec![json!(x), json!("latest")]).await,
        json!("0x")
    );
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_calls_do_not_stall_block_production() {
    let (devnet, client) = start(
        BlockProduction::Interval(std::time::Duration::from_millis(500)),
        None,
    )
    .await;
    // A contract that loops until it runs out of gas.
    let raw = sign(
        &dev_signer(0),
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&[0x5b, 0x60, 0x00, 0x56]),
        200_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = loop {
        let r = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
        if !r.is_null() {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let looper = receipt["contractAddress"].clone();
    let start_head = hex_u64(&call(&client, "eth_blockNumber", vec![]).await);
    let started = std::time::Instant::now();
    // Six 10M-gas executions at once (more than the heavy-work permits).
    let mut tasks = vec![];
    for i in 0..6 {
        let client = client.clone();
        let looper = looper.clone();
        tasks.push(tokio::spawn(async move {
            let method = if i % 2 == 0 {
                "eth_call"
            } else {
                "eth_estimateGas"
            };
            let mut params = vec![json!({"to": looper, "gas": "0x989680"})];
            if method == "eth_call" {
                params.push(json!("latest"));
            }
            call_err(&client, method, params).await
        }));
    }
    for t in tasks {
        let e = t.await.unwrap();
        assert_eq!(e.code(), -32000, "{e:?}");
        assert!(e.message().contains("OutOfGas"), "{}", e.message());
    }
    // Observe at least 1.2 s (the calls may finish sooner on a fast machine): 500 ms blocks
    // make at least two blocks in that time unless production stalled.
    if let Some(rest) = std::time::Duration::from_millis(1_200).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let end_head = hex_u64(&call(&client, "eth_blockNumber", vec![]).await);
    assert!(
        end_head >= start_head + 2,
        "blocks kept coming: {start_head} -> {end_head}"
    );
    // No gap in the block times while the calls ran: 500 ms blocks are at most a second apart.
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
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_access_list_lists_touched_slots_and_reports_reverts() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let send = |nonce: u64, to: TxKind, input: Bytes| {
        sign(&alice, Kind::Eip1559, nonce, to, U256::ZERO, input, 200_000)
    };
    let store = alice.address().create(0);
    call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(
            0,
            TxKind::Create,
            deploy_code(&store_and_log_runtime())
        ))],
    )
    .await;
    let reverter = alice.address().create(1);
    call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(
            1,
            TxKind::Create,
            deploy_code(&revert_runtime())
        ))],
    )
    .await;

    let word = B256::repeat_byte(0x07);
    let req = json!({"from": alice.address(), "to": store, "data": word});
    let answer = call(&client, "eth_createAccessList", vec![req.clone()]).await;
    // The contract's slot 0 is written: it is listed under the contract, nothing else is.
    assert_eq!(
        answer["accessList"],
        json!([{"address": store, "storageKeys": [B256::ZERO]}]),
        "{answer}"
    );
    assert!(answer.get("error").is_none(), "{answer}");
    let with_list = hex_u64(&answer["gasUsed"]);
    // The gas reported is what the call costs with that list: an estimate with the list agrees.
    let estimate = call(
        &client,
        "eth_estimateGas",
        vec![json!({"from": alice.address(), "to": store, "data": word,
                    "accessList": answer["accessList"]})],
    )
    .await;
    assert!(hex_u64(&estimate) >= with_list, "{estimate} < {with_list}");
    assert!(with_list > 21_000);

    let answer = call(
        &client,
        "eth_createAccessList",
        vec![
            json!({"from": alice.address(), "to": reverter}),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(answer["error"], json!("execution reverted"), "{answer}");
    assert_eq!(answer["accessList"], json!([]), "{answer}");
    devnet.shutdown().await.unwrap();
}
