//! JSON-RPC methods beyond the core set: block-scoped getters, receipts of a block, uncles,
//! txpool, informational methods, and `eth_getLogs` edge cases and limits.
#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use common::*;
use kh_evm_chain::BlockProduction;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_scoped_getters_receipts_uncles_and_small_methods() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    // A deployment that fails (init code reverts) still reports the address it used.
    let failing_init = Bytes::from(vec![0x60, 0x00, 0x60, 0x00, 0xfd]);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        failing_init,
        100_000,
    );
    let failed = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![failed.clone()]).await;
    assert_eq!(receipt["status"], json!("0x0"));
    let expected: Address = alice.address().create(0);
    assert_eq!(receipt["contractAddress"], json!(expected));

    let raw = sign(
        &alice,
        Kind::Legacy,
        1,
        TxKind::Call(Address::repeat_byte(3)),
        U256::from(5),
        Bytes::new(),
        21_000,
    );
    let transfer = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let block = call(
        &client,
        "eth_getBlockByNumber",
        vec![json!("0x2"), json!(false)],
    )
    .await;
    let block_hash = block["hash"].clone();
    assert_eq!(block["transactions"], json!([transfer]));

    assert_eq!(
        call(
            &client,
            "eth_getBlockTransactionCountByNumber",
            vec![json!("0x2")]
        )
        .await,
        json!("0x1")
    );
    assert_eq!(
        call(
            &client,
            "eth_getBlockTransactionCountByHash",
            vec![block_hash.clone()]
        )
        .await,
        json!("0x1")
    );
    assert!(
        call(
            &client,
            "eth_getBlockTransactionCountByNumber",
            vec![json!("0x99")]
        )
        .await
        .is_null()
    );
    let by_number = call(
        &client,
        "eth_getTransactionByBlockNumberAndIndex",
        vec![json!("0x2"), json!("0x0")],
    )
    .await;
    assert_eq!(by_number["hash"], transfer);
    assert_eq!(by_number["blockNumber"], json!("0x2"));
    let by_hash = call(
        &client,
        "eth_getTransactionByBlockHashAndIndex",
        vec![block_hash.clone(), json!("0x0")],
    )
    .await;
    assert_eq!(by_hash, by_number);
    assert!(
        call(
            &client,
            "eth_getTransactionByBlockHashAndIndex",
            vec![block_hash.clone(), json!("0x1")],
        )
        .await
        .is_null()
    );

    // eth_getBlockReceipts equals the receipts one by one.
    for (tag, tx) in [(json!("0x1"), &failed), (block_hash.clone(), &transfer)] {
        let receipts = call(&client, "eth_getBlockReceipts", vec![tag]).await;
        let one = call(&client, "eth_getTransactionReceipt", vec![tx.clone()]).await;
        assert_eq!(receipts, json!([one]));
    }
    assert!(
        call(&client, "eth_getBlockReceipts", vec![json!("0x99")])
            .await
            .is_null()
    );

    // No uncles in QBFT.
    assert_eq!(
        call(
            &client,
            "eth_getUncleCountByBlockNumber",
            vec![json!("0x2")]
        )
        .await,
        json!("0x0")
    );
    assert_eq!(
        call(
            &client,
            "eth_getUncleCountByBlockHash",
            vec![block_hash.clone()]
        )
        .await,
        json!("0x0")
    );
    assert!(
        call(
            &client,
            "eth_getUncleByBlockHashAndIndex",
            vec![block_hash, json!("0x0")]
        )
        .await
        .is_null()
    );
    assert!(
        call(
            &client,
            "eth_getUncleByBlockNumberAndIndex",
            vec![json!("latest"), json!("0x0")]
        )
        .await
        .is_null()
    );

    // Small methods.
    assert_eq!(call(&client, "net_peerCount", vec![]).await, json!("0x0"));
    assert_eq!(
        call(&client, "web3_sha3", vec![json!("0x68656c6c6f")]).await,
        json!(keccak256(b"hello"))
    );
    let coinbase: Address =
        serde_json::from_value(call(&client, "eth_coinbase", vec![]).await).unwrap();
    assert!(devnet.validators().contains(&coinbase));
    assert_eq!(call(&client, "eth_blobBaseFee", vec![]).await, json!("0x1"));
    let status = call(&client, "txpool_status", vec![]).await;
    assert_eq!(status, json!({"pending": "0x0", "queued": "0x0"}));
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txpool_content_lists_pending_and_queued_by_sender_and_nonce() {
    let (devnet, client) = start(
        BlockProduction::Interval(std::time::Duration::from_secs(3600)),
        None,
    )
    .await;
    let alice = dev_signer(0);
    let mut hashes = vec![];
    for nonce in [0u64, 1, 3] {
        let raw = sign(
            &alice,
            Kind::Eip1559,
            nonce,
            TxKind::Call(Address::repeat_byte(3)),
            U256::from(1),
            Bytes::new(),
            21_000,
        );
        hashes.push(call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await);
    }
    assert_eq!(
        call(&client, "txpool_status", vec![]).await,
        json!({"pending": "0x2", "queued": "0x1"})
    );
    let content = call(&client, "txpool_content", vec![]).await;
    let sender = format!("{:#x}", alice.address());
    let pending = &content["pending"][&sender];
    assert_eq!(pending["0"]["hash"], hashes[0]);
    assert_eq!(pending["1"]["hash"], hashes[1]);
    assert_eq!(content["queued"][&sender]["3"]["hash"], hashes[2]);
    assert!(pending["0"]["blockNumber"].is_null());
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
async fn subscription_ids_are_hex_strings() {
    use jsonrpsee::core::client::{SubscriptionClientT, SubscriptionKind};
    let (devnet, _client) = start(BlockProduction::Instant, None).await;
    let ws = jsonrpsee::ws_client::WsClientBuilder::default()
        .build(format!("ws://{}", devnet.rpc_addr()))
        .await
        .unwrap();
    let mut ids = vec![];
    let mut subs = vec![];
    for _ in 0..2 {
        let sub = ws
            .subscribe::<serde_json::Value, _>(
                "eth_subscribe",
                vec![json!("newHeads")],
                "eth_unsubscribe",
            )
            .await
            .unwrap();
        let SubscriptionKind::Subscription(id) = sub.kind() else {
            panic!("not a subscription id");
        };
        let jsonrpsee::types::SubscriptionId::Str(s) = id else {
            panic!("subscription id {id:?} is not a string");
        };
        assert!(s.starts_with("0x") && s.len() == 34, "{s}");
        assert!(s[2..].chars().all(|c| c.is_ascii_hexdigit()), "{s}");
        ids.push(s.to_string());
        subs.push(sub);
    }
    assert_ne!(ids[0], ids[1]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_accounts_sign_messages_and_send_transactions() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0).address();
    let message = b"kakehashi";
    let sig = call(
        &client,
        "eth_sign",
        vec![json!(alice), json!(Bytes::from(message.to_vec()))],
    )
    .await;
    let bytes = hex_bytes(&sig);
    assert_eq!(bytes.len(), 65);
    let parsed = alloy_primitives::Signature::try_from(bytes.as_slice()).unwrap();
    assert_eq!(parsed.recover_address_from_msg(message).unwrap(), alice);
    let personal = call(
        &client,
        "personal_sign",
        vec![json!(Bytes::from(message.to_vec())), json!(alice)],
    )
    .await;
    assert_eq!(personal, sig);
    let e = call_err(
        &client,
        "eth_sign",
        vec![json!(Address::repeat_byte(9)), json!("0x00")],
    )
    .await;
    assert_eq!(e.code(), -32000);
    assert!(e.message().contains("unknown account"));

    // eth_sendTransaction fills nonce, gas and fees, signs with the dev key and submits.
    let to = Address::repeat_byte(0x42);
    let hash = call(
        &client,
        "eth_sendTransaction",
        vec![json!({"from": alice, "to": to, "value": "0x5"})],
    )
    .await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(receipt["from"], json!(alice));
    assert_eq!(receipt["type"], json!("0x2"));
    assert_eq!(receipt["gasUsed"], json!("0x5208"));
    let legacy = call(
        &client,
        "eth_sendTransaction",
        vec![json!({"from": alice, "to": to, "value": "0x5", "gasPrice": "0xb2d05e00"})],
    )
    .await;
    let tx = call(&client, "eth_getTransactionByHash", vec![legacy]).await;
    assert_eq!(tx["type"], json!("0x0"));
    assert_eq!(tx["nonce"], json!("0x1"));
    assert_eq!(
        call(&client, "eth_getBalance", vec![json!(to), json!("latest")]).await,
        json!("0xa")
    );
    let e = call_err(
        &client,
        "eth_sendTransaction",
        vec![json!({"from": Address::repeat_byte(9), "to": to})],
    )
    .await;
    assert!(e.message().contains("unknown account"));
    devnet.shutdown().await.unwrap();
}

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
async fn dev_accounts_sign_eip712_typed_data() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0).address();
    // The EIP-712 specification's example ("Mail"); its signing hash is given there.
    let typed = json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [
                {"name": "from", "type": "Person"},
                {"name": "to", "type": "Person"},
                {"name": "contents", "type": "string"}
            ]
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": 1,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
        },
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    });
    let digest: B256 = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        .parse()
        .unwrap();
    for data in [typed.clone(), json!(typed.to_string())] {
        let sig = call(&client, "eth_signTypedData_v4", vec![json!(alice), data]).await;
        let parsed = alloy_primitives::Signature::try_from(hex_bytes(&sig).as_slice()).unwrap();
        assert_eq!(parsed.recover_address_from_prehash(&digest).unwrap(), alice);
    }
    let e = call_err(
        &client,
        "eth_signTypedData_v4",
        vec![json!(alice), json!({"types": 1})],
    )
    .await;
    assert_eq!(e.code(), -32602);
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

async fn raw_request(addr: std::net::SocketAddr, request: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_cors_headers_and_preflight_answers() {
    let (devnet, _client) = start(BlockProduction::Instant, None).await;
    let addr = devnet.rpc_addr();
    let preflight = raw_request(
        addr,
        format!(
            "OPTIONS / HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://localhost:3000\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-headers: content-type"),
        "{preflight}"
    );
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let answer = raw_request(
        addr,
        format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://localhost:3000\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("access-control-allow-origin: *"),
        "{answer}"
    );
    assert!(answer.contains("\"result\":\"0x539\""), "{answer}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_traces_follow_geths_struct_logger() {
    use alloy_sol_types::{SolCall, SolConstructor};
    use kh_contracts::KhNft;

    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let bob = dev_signer(1).address();
    let ctor = KhNft::constructorCall {
        name_: "Trace".into(),
        symbol_: "T".into(),
        baseUri_: "t/".into(),
    };
    let mut code = KhNft::BYTECODE.to_vec();
    code.extend(ctor.abi_encode());
    let nft = alice.address().create(0);
    let send = |nonce: u64, to: TxKind, input: Vec<u8>| {
        sign(
            &alice,
            Kind::Eip1559,
            nonce,
            to,
            U256::ZERO,
            Bytes::from(input),
            3_000_000,
        )
    };
    call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(0, TxKind::Create, code))],
    )
    .await;
    let mint = KhNft::mintCall {
        to: alice.address(),
        tokenId: U256::from(7),
    };
    call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(1, TxKind::Call(nft), mint.abi_encode()))],
    )
    .await;
    let transfer = KhNft::transferFromCall {
        from: alice.address(),
        to: bob,
        tokenId: U256::from(7),
    };
    let hash = call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(2, TxKind::Call(nft), transfer.abi_encode()))],
    )
    .await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], json!("0x1"));

    let trace = call(&client, "debug_traceTransaction", vec![hash.clone()]).await;
    assert_eq!(trace["failed"], json!(false), "{trace}");
    // geth writes gas as a JSON number.
    assert_eq!(trace["gas"].as_u64(), Some(hex_u64(&receipt["gasUsed"])));
    let logs = trace["structLogs"].as_array().unwrap();
    assert!(logs.len() > 50, "{} steps", logs.len());
    let last = logs.last().unwrap();
    assert!(
        last["op"] == json!("STOP") || last["op"] == json!("RETURN"),
        "{last}"
    );
    assert_eq!(logs[0]["pc"], json!(0));
    assert_eq!(logs[0]["depth"], json!(1));
    assert_eq!(logs[0]["stack"], json!([]));
    // Gas only goes down, by each step's cost.
    for pair in logs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a["depth"] == b["depth"] && a["op"] != json!("SSTORE") {
            assert_eq!(
                a["gas"].as_u64().unwrap() - a["gasCost"].as_u64().unwrap(),
                b["gas"].as_u64().unwrap(),
                "{a} -> {b}"
            );
        }
    }
    // The owner slot is written: an SSTORE step carries the new owner in its storage.
    let bob_word = format!("{:0>64}", alloy_primitives::hex::encode(bob));
    assert!(
        logs.iter().any(|l| l["op"] == json!("SSTORE")
            && l["storage"]
                .as_object()
                .is_some_and(|s| s.values().any(|v| v == &json!(bob_word)))),
        "no SSTORE of the new owner"
    );
    // Memory only when asked for.
    assert!(logs.iter().all(|l| l.get("memory").is_none()));
    let with_memory = call(
        &client,
        "debug_traceTransaction",
        vec![
            hash.clone(),
            json!({"enableMemory": true, "disableStack": true}),
        ],
    )
    .await;
    let logs = with_memory["structLogs"].as_array().unwrap();
    assert!(
        logs.iter()
            .any(|l| l["memory"].as_array().is_some_and(|m| !m.is_empty()))
    );
    assert!(logs.iter().all(|l| l.get("stack").is_none()));

    // The same transfer as a call after it was mined: the token is bob's, so it reverts.
    let trace = call(
        &client,
        "debug_traceCall",
        vec![
            json!({"from": alice.address(), "to": nft, "data": Bytes::from(transfer.abi_encode())}),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(trace["failed"], json!(true), "{trace}");
    let logs = trace["structLogs"].as_array().unwrap();
    assert_eq!(logs.last().unwrap()["op"], json!("REVERT"));
    assert!(!trace["returnValue"].as_str().unwrap().is_empty());

    // Only the default struct logger and callTracer (tests/rpc_trace.rs); an unknown
    // transaction is an error.
    let e = call_err(
        &client,
        "debug_traceCall",
        vec![
            json!({"from": alice.address(), "to": nft}),
            json!("latest"),
            json!({"tracer": "prestateTracer"}),
        ],
    )
    .await;
    assert_eq!(e.code(), -32602, "{e:?}");
    let e = call_err(
        &client,
        "debug_traceTransaction",
        vec![json!(B256::repeat_byte(0x42))],
    )
    .await;
    assert_eq!(e.code(), -32000, "{e:?}");
    devnet.shutdown().await.unwrap();
}

/// Reads one WebSocket frame sent by the server (unmasked): opcode and payload.
async fn ws_read_frame(stream: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.ok()?;
    let opcode = head[0] & 0x0f;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    assert!(len < 1 << 24, "frame of {len} bytes");
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some((opcode, payload))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_closed_with_an_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A subscriber may fall 8 blocks (and 8 queued messages) behind.
    let (devnet, client) = start_config(kh_evm_chain::DevnetConfig {
        production: BlockProduction::Instant,
        subscription_buffer: 8,
        ..kh_evm_chain::DevnetConfig::default()
    })
    .await;
    let addr = devnet.rpc_addr();
    let alice = dev_signer(0);
    // Runtime: LOG0 of the whole calldata (CALLDATACOPY to memory 0, LOG0(0, CALLDATASIZE)).
    let logger_runtime = vec![
        0x36, 0x60, 0x00, 0x60, 0x00, 0x37, 0x36, 0x60, 0x00, 0xa0, 0x00,
    ];
    let logger = alice.address().create(0);
    let deploy = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&logger_runtime),
        200_000,
    );
    call(&client, "eth_sendRawTransaction", vec![json!(deploy)]).await;

    // A WebSocket client that subscribes to the contract's logs and then stops reading, with a
    // small receive buffer: the server's notifications back up into its own bounded buffers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut ws = socket.connect(addr).await.unwrap();
    let handshake = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    ws.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        ws.read_exact(&mut byte).await.unwrap();
        response.push(byte[0]);
    }
    assert!(
        response.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    let request = serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
        "params": ["logs", {"address": logger}]}),
    )
    .unwrap();
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81, 0x80 | u8::try_from(request.len()).unwrap()];
    frame.extend_from_slice(&mask);
    frame.extend(request.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.write_all(&frame).await.unwrap();
    let (_, reply) = ws_read_frame(&mut ws).await.unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    let id = reply["result"].as_str().unwrap().to_string();

    // 100 blocks, each with a 60 KB log (120 KB of hex per notification): far more than the
    // socket buffers plus 8 queued messages plus 8 announced blocks.
    const BLOCKS: u64 = 100;
    // Small batches (1.2 MB each), so each HTTP request answers well within its timeout.
    for start in (1..=BLOCKS).step_by(10) {
        let batch: Vec<serde_json::Value> = (start..start + 10)
            .map(|nonce| {
                let data = Bytes::from(vec![u8::try_from(nonce % 251).unwrap() | 1; 60_000]);
                let raw = sign(&alice, Kind::Eip1559, nonce, TxKind::Call(logger), U256::ZERO, data, 2_000_000);
                json!({"jsonrpc": "2.0", "id": nonce, "method": "eth_sendRawTransaction", "params": [raw]})
            })
            .collect();
        let (status, _) = raw_http(addr, serde_json::to_vec(&batch).unwrap().as_slice()).await;
        assert_eq!(status, 200);
    }
    let head = hex_u64(&call(&client, "eth_blockNumber", vec![]).await);
    assert_eq!(head, 1 + BLOCKS, "every transaction in its own block");

    // Reading again: the buffered logs, then the subscription's closing error. Bounded by the
    // number of blocks produced and a timeout per frame.
    let mut delivered = 0u64;
    let mut closed_with = None;
    while delivered <= BLOCKS {
        let Ok(Some((opcode, payload))) =
            tokio::time::timeout(std::time::Duration::from_secs(10), ws_read_frame(&mut ws)).await
        else {
            break;
        };
        if opcode != 1 {
            continue;
        }
        let msg: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            msg["params"]["subscription"],
            json!(id),
            "{}",
            &msg.to_string()[..200]
        );
        if let Some(error) = msg["params"].get("error") {
            closed_with = Some(error.clone());
            break;
        }
        delivered += 1;
    }
    let error = closed_with.unwrap_or_else(|| panic!("no closing error after {delivered} logs"));
    assert!(error.to_string().contains("fell behind"), "{error}");
    assert!(
        delivered < BLOCKS,
        "{delivered} logs delivered before the close"
    );
    devnet.shutdown().await.unwrap();
}
