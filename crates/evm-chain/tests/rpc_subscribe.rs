//! WebSocket subscriptions: hex-string ids, and a subscriber that falls behind is closed with
//! an error rather than silently losing events.
#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Bytes, TxKind, U256};
use common::*;
use kh_evm_chain::BlockProduction;
use serde_json::json;

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
