//! JSON-RPC methods beyond the core set: block-scoped getters, receipts of a block, uncles,
//! txpool, informational methods, and CORS for browsers.
#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
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
