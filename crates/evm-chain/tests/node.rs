//! The devnet as a node: honest block time (never ahead of the wall clock, genesis time, the
//! empty-block period), admin-only validator votes that cannot halt the chain, and the chain
//! settings (gas limit, history, contract size limit).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use alloy_primitives::{Address, TxKind, U256};
use common::*;
use kh_evm_chain::{BlockProduction, DevnetConfig};
use serde_json::{Value, json};

async fn block(client: &jsonrpsee::http_client::HttpClient, n: u64) -> Value {
    call(
        client,
        "eth_getBlockByNumber",
        vec![json!(format!("{n:#x}")), json!(false)],
    )
    .await
}

async fn head(client: &jsonrpsee::http_client::HttpClient) -> u64 {
    hex_u64(&call(client, "eth_blockNumber", vec![]).await)
}

/// Light-client style drift check: every header from `from` on is stamped at or before the
/// wall clock when it was read, at most `drift` seconds behind it, and not before its parent.
async fn check_drift(client: &jsonrpsee::http_client::HttpClient, from: u64, drift: u64) -> u64 {
    let top = head(client).await;
    let mut parent_ts = hex_u64(&block(client, from.saturating_sub(1)).await["timestamp"]);
    for n in from..=top {
        let b = block(client, n).await;
        let seen = now_secs();
        let ts = hex_u64(&b["timestamp"]);
        assert!(
            ts <= seen,
            "block {n} stamped {ts}, ahead of the wall clock {seen}"
        );
        assert!(ts >= parent_ts, "block {n} goes back in time");
        parent_ts = ts;
        // Each block is read right after the whole range was produced, a few seconds at most.
        assert!(
            seen - ts <= drift,
            "block {n} stamped {ts}, {} s behind the wall clock",
            seen - ts
        );
    }
    top
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_never_run_ahead_of_the_wall_clock() {
    // Instant mode: 30 transactions in quick succession, 30 blocks in a second or two.
    let started = now_secs();
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let genesis_ts = hex_u64(&block(&client, 0).await["timestamp"]);
    assert!(
        genesis_ts >= started && genesis_ts <= now_secs(),
        "genesis at creation time"
    );
    let signer = dev_signer(0);
    for nonce in 0..30 {
        let raw = sign(
            &signer,
            Kind::Eip1559,
            nonce,
            TxKind::Call(Address::repeat_byte(7)),
            U256::from(1),
            Default::default(),
            21_000,
        );
        call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    }
    let top = check_drift(&client, 1, 10).await;
    assert_eq!(top, 30, "one block per transaction");
    devnet.shutdown().await.unwrap();

    // 100 ms periods: ten blocks a second share their second instead of running ahead.
    let (devnet, client) = start(BlockProduction::Interval(Duration::from_millis(100)), None).await;
    while head(&client).await < 30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let top = check_drift(&client, 1, 10).await;
    let first = hex_u64(&block(&client, 1).await["timestamp"]);
    let last = hex_u64(&block(&client, top).await["timestamp"]);
    // Over 30 blocks the old rule (parent + 1) would have put the head 30 s after block 1.
    assert!(
        last - first < top / 2,
        "{top} blocks of 100 ms span {} s",
        last - first
    );
    devnet.shutdown().await.unwrap();

    // Whole-second periods: strictly increasing timestamps, still never ahead of the clock.
    let (devnet, client) = start(BlockProduction::Interval(Duration::from_secs(1)), None).await;
    while head(&client).await < 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let top = check_drift(&client, 1, 10).await;
    for n in 1..=top {
        let ts = hex_u64(&block(&client, n).await["timestamp"]);
        let parent = hex_u64(&block(&client, n - 1).await["timestamp"]);
        assert!(
            ts > parent,
            "block {n}: 1 s period, timestamp {ts} after {parent}"
        );
    }
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesis_time_is_kept_and_never_in_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = now_secs() - 3_600;
    let config = DevnetConfig {
        production: BlockProduction::Instant,
        data_dir: Some(dir.path().to_path_buf()),
        genesis_time: Some(genesis),
        ..DevnetConfig::default()
    };
    let (devnet, client) = start_config(config.clone()).await;
    assert_eq!(hex_u64(&block(&client, 0).await["timestamp"]), genesis);
    let genesis_hash = block(&client, 0).await["hash"].clone();
    devnet.shutdown().await.unwrap();

    // Reopened without --genesis-time: the directory's genesis time is used.
    let (devnet, client) = start_config(DevnetConfig {
        genesis_time: None,
        ..config.clone()
    })
    .await;
    assert_eq!(block(&client, 0).await["hash"], genesis_hash);
    devnet.shutdown().await.unwrap();

    // A different genesis time for the same directory is refused.
    let err = kh_evm_chain::Devnet::start(DevnetConfig {
        genesis_time: Some(genesis + 1),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("genesis time"), "{err}");

    // A genesis in the future would put every block ahead of the clock.
    let err = kh_evm_chain::Devnet::start(DevnetConfig {
        genesis_time: Some(now_secs() + 3_600),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        ..DevnetConfig::default()
    })
    .await
    .unwrap_err();
    assert!(err.to_string().contains("future"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_devnet_waits_the_empty_block_period() {
    let (devnet, client) = start_config(DevnetConfig {
        production: BlockProduction::Interval(Duration::from_millis(100)),
        empty_block_period: Some(Duration::from_secs(2)),
        ..DevnetConfig::default()
    })
    .await;
    // Idle for a while: empty blocks come at most every 2 s (by their timestamps).
    while head(&client).await < 2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idle_top = head(&client).await;
    for n in 1..=idle_top {
        let ts = hex_u64(&block(&client, n).await["timestamp"]);
        let parent = hex_u64(&block(&client, n - 1).await["timestamp"]);
        assert!(
            ts >= parent + 2,
            "empty block {n} only {} s after its parent",
            ts - parent
        );
        assert_eq!(block(&client, n).await["transactions"], json!([]));
    }
    // A transaction does not wait for the empty-block period: it is mined within a few block
    // periods (counted in blocks produced, not in time).
    let raw = sign(
        &dev_signer(1),
        Kind::Eip1559,
        0,
        TxKind::Call(Address::repeat_byte(9)),
        U256::from(1),
        Default::default(),
        21_000,
    );
    let before = head(&client).await;
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = loop {
        let r = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
        if !r.is_null() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The next block, or the one after if an empty block was being sealed at that moment.
    assert!(hex_u64(&receipt["blockNumber"]) <= before + 2);
    check_drift(&client, 1, 10).await;
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_votes_need_admin_and_keep_a_quorum() {
    // Without --admin the vote methods do not exist.
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    for (method, params) in [
        (
            "qbft_proposeValidatorVote",
            vec![json!(Address::repeat_byte(1)), json!(true)],
        ),
        (
            "qbft_discardValidatorVote",
            vec![json!(Address::repeat_byte(1))],
        ),
        ("qbft_getPendingVotes", vec![]),
    ] {
        let e = call_err(&client, method, params).await;
        assert_eq!(e.code(), -32601, "{method}");
    }
    // Reading the validators stays open.
    call(
        &client,
        "qbft_getValidatorsByBlockNumber",
        vec![json!("latest")],
    )
    .await;
    devnet.shutdown().await.unwrap();

    // With --admin: 4 validators, all keys held. Two keyless additions still leave 4 of 6
    // (quorum 4); a third would need 5 seals of 7 with 4 keys and is refused.
    let (devnet, client) = start_config(DevnetConfig {
        production: BlockProduction::Instant,
        admin: true,
        ..DevnetConfig::default()
    })
    .await;
    let (a, b, c) = (
        Address::repeat_byte(0xa1),
        Address::repeat_byte(0xb2),
        Address::repeat_byte(0xc3),
    );
    for who in [a, b] {
        let ok = call(
            &client,
            "qbft_proposeValidatorVote",
            vec![json!(who), json!(true)],
        )
        .await;
        assert_eq!(ok, json!(true));
    }
    let e = call_err(
        &client,
        "qbft_proposeValidatorVote",
        vec![json!(c), json!(true)],
    )
    .await;
    assert_eq!(e.code(), -32000);
    assert!(e.message().contains("quorum"), "{}", e.message());
    let pending = call(&client, "qbft_getPendingVotes", vec![]).await;
    assert_eq!(
        pending,
        json!({ format!("{a:#x}"): true, format!("{b:#x}"): true })
    );
    assert_eq!(
        call(&client, "qbft_discardValidatorVote", vec![json!(b)]).await,
        json!(true)
    );
    assert_eq!(
        call(&client, "qbft_discardValidatorVote", vec![json!(b)]).await,
        json!(false)
    );
    // Dropping held validators while a keyless one is being added: {v2, v3, a} still has 2
    // keys for a quorum of 2, but {v3, a} needs 2 seals with 1 key: refused.
    let validators = devnet.validators().to_vec();
    for v in &validators[..2] {
        call(
            &client,
            "qbft_proposeValidatorVote",
            vec![json!(v), json!(false)],
        )
        .await;
    }
    let e = call_err(
        &client,
        "qbft_proposeValidatorVote",
        vec![json!(validators[2]), json!(false)],
    )
    .await;
    assert!(e.message().contains("quorum"), "{}", e.message());
    devnet.shutdown().await.unwrap();

    // One validator cannot be voted out.
    let (devnet, client) = start_config(DevnetConfig {
        production: BlockProduction::Instant,
        admin: true,
        validators: 1,
        ..DevnetConfig::default()
    })
    .await;
    let only = devnet.validators()[0];
    let e = call_err(
        &client,
        "qbft_proposeValidatorVote",
        vec![json!(only), json!(false)],
    )
    .await;
    assert!(e.message().contains("no validators"), "{}", e.message());
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gas_limit_history_and_contract_size_limit_settings() {
    let (devnet, client) = start_config(DevnetConfig {
        production: BlockProduction::Instant,
        gas_limit: 30_000_000,
        history: 2,
        contract_size_limit: 100,
        ..DevnetConfig::default()
    })
    .await;
    assert_eq!(hex_u64(&block(&client, 0).await["gasLimit"]), 30_000_000);
    let signer = dev_signer(0);
    let too_big = sign(
        &signer,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&[0u8; 101]),
        1_000_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(too_big)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash]).await;
    assert_eq!(
        receipt["status"],
        json!("0x0"),
        "101 bytes over a 100-byte limit"
    );
    let fits = sign(
        &signer,
        Kind::Eip1559,
        1,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&[0u8; 100]),
        1_000_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(fits)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash]).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(hex_u64(&receipt["blockNumber"]), 2);
    for _ in 0..3 {
        devnet.mine().await.unwrap();
    }
    // Head is 5; with history 2 the states after blocks 3, 4 and 5 answer, block 1's does not.
    let who = json!(signer.address());
    call(&client, "eth_getBalance", vec![who.clone(), json!("0x3")]).await;
    let e = call_err(&client, "eth_getBalance", vec![who, json!("0x1")]).await;
    assert!(e.message().contains("not available"), "{}", e.message());
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_replaces_caps_evicts_and_never_loses_a_transaction_silently() {
    let (devnet, client) = start_config(DevnetConfig {
        production: BlockProduction::Interval(Duration::from_secs(3600)),
        pool: kh_evm_chain::PoolLimits {
            max_txs: 6,
            max_per_sender: 3,
            lifetime: Duration::from_secs(2),
        },
        ..DevnetConfig::default()
    })
    .await;
    let send = |raw: alloy_primitives::Bytes| {
        let client = client.clone();
        async move { call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await }
    };
    let refused = |raw: alloy_primitives::Bytes| {
        let client = client.clone();
        async move { call_err(&client, "eth_sendRawTransaction", vec![json!(raw)]).await }
    };
    let by_hash = |hash: Value| {
        let client = client.clone();
        async move { call(&client, "eth_getTransactionByHash", vec![hash]).await }
    };
    let (alice, bob, carol, dave) = (dev_signer(0), dev_signer(1), dev_signer(2), dev_signer(3));

    // Same-nonce replacement needs 10 % more on both the fee cap and the tip.
    let first = send(sign_fees(&alice, 0, 3 * GWEI, GWEI, U256::from(1))).await;
    let e = refused(sign_fees(
        &alice,
        0,
        32 * GWEI / 10,
        105 * GWEI / 100,
        U256::from(1),
    ))
    .await;
    assert!(e.message().contains("underpriced"), "{}", e.message());
    let e = refused(sign_fees(&alice, 0, 10 * GWEI, GWEI, U256::from(1))).await;
    assert!(
        e.message().contains("underpriced"),
        "tip not raised: {}",
        e.message()
    );
    let second = send(sign_fees(
        &alice,
        0,
        33 * GWEI / 10,
        11 * GWEI / 10,
        U256::from(1),
    ))
    .await;
    assert!(
        by_hash(first.clone()).await.is_null(),
        "the replaced transaction is gone"
    );
    assert_eq!(by_hash(second.clone()).await["hash"], second);

    // Admission against the next base fee and the balance.
    let e = refused(sign_fees(&dave, 0, GWEI / 2, GWEI / 4, U256::from(1))).await;
    assert!(e.message().contains("base fee"), "{}", e.message());
    let e = refused(sign_fees(
        &dave,
        0,
        3 * GWEI,
        GWEI,
        U256::MAX / U256::from(2),
    ))
    .await;
    assert!(
        e.message().contains("insufficient funds"),
        "{}",
        e.message()
    );

    // Per-sender cap, and nonces too far ahead.
    send(sign_fees(&alice, 1, 3 * GWEI, GWEI, U256::from(1))).await;
    send(sign_fees(&alice, 2, 3 * GWEI, GWEI, U256::from(1))).await;
    let e = refused(sign_fees(&alice, 3, 3 * GWEI, GWEI, U256::from(1))).await;
    assert!(
        e.message().contains("pending transactions"),
        "{}",
        e.message()
    );
    let e = refused(sign_fees(&bob, 5, 3 * GWEI, GWEI, U256::from(1))).await;
    assert!(e.message().contains("nonce too high"), "{}", e.message());
    // A nonce gap: accepted, never executable.
    let gap = send(sign_fees(&bob, 2, 3 * GWEI, GWEI, U256::from(1))).await;
    send(sign_fees(&carol, 0, 3 * GWEI, GWEI, U256::from(1))).await;
    send(sign_fees(&carol, 1, 3 * GWEI, GWEI, U256::from(1))).await;
    // Total cap (6).
    let e = refused(sign_fees(&dave, 0, 3 * GWEI, GWEI, U256::from(1))).await;
    assert!(e.message().contains("pool is full"), "{}", e.message());
    assert_eq!(
        call(&client, "txpool_status", vec![]).await["pending"],
        json!("0x5")
    );

    let n = devnet.mine().await.unwrap();
    let block = call(
        &client,
        "eth_getBlockByNumber",
        vec![json!(format!("{n:#x}")), json!(false)],
    )
    .await;
    assert_eq!(block["transactions"].as_array().unwrap().len(), 5);
    let pending = by_hash(gap.clone()).await;
    assert_eq!(pending["hash"], gap);
    assert!(pending["blockNumber"].is_null());

    // Past its lifetime the gapped transaction is dropped, visibly.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    devnet.mine().await.unwrap();
    assert!(by_hash(gap.clone()).await.is_null());
    assert!(
        call(&client, "eth_getTransactionReceipt", vec![gap])
            .await
            .is_null()
    );

    // Accepted, then invalid at inclusion (the first transaction spends the balance the
    // second was admitted against): dropped, not kept pending forever nor reported mined.
    let balance = hex_u256(
        &call(
            &client,
            "eth_getBalance",
            vec![json!(dave.address()), json!("latest")],
        )
        .await,
    );
    let spend = balance - U256::from(10u64).pow(U256::from(18u64));
    let big = send(sign_fees(&dave, 0, 3 * GWEI, GWEI, spend)).await;
    let doomed = send(sign_fees(
        &dave,
        1,
        3 * GWEI,
        GWEI,
        U256::from(10u64).pow(U256::from(19u64)),
    ))
    .await;
    devnet.mine().await.unwrap();
    let receipt = call(&client, "eth_getTransactionReceipt", vec![big]).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert!(by_hash(doomed.clone()).await.is_null());
    assert!(
        call(&client, "eth_getTransactionReceipt", vec![doomed])
            .await
            .is_null()
    );
    devnet.shutdown().await.unwrap();
}
