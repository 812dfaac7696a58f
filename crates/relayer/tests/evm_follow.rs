//! Following a contract's logs on the devnet while its WebSocket subscription dies under the
//! follower: every log arrives exactly once and in order, and the follower subscribes again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alloy_primitives::B256;
use common::{deploy, devnet, proxy, send, url};
use kh_relayer::evm::{FailoverRpc, FollowConfig, follow};
use serde_json::json;

/// Runtime: `LOG1(topic = calldata[0..32])`.
const EMITTER: [u8; 9] = [0x60, 0x00, 0x35, 0x60, 0x00, 0x60, 0x00, 0xa1, 0x00];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_once_in_order_across_a_dead_subscription() {
    let chain = devnet(4545).await;
    let rpc = Arc::new(FailoverRpc::new(4545, &[url(&chain)], Duration::from_secs(10)).unwrap());
    let from = chain.dev_accounts()[0].address;
    let emitter = deploy(&rpc, from, &EMITTER).await;
    let start = rpc.block_number().await.unwrap();

    // The doorbell goes through a proxy that will die; the devnet's own WebSocket is second.
    let (front, kill) = proxy(chain.rpc_addr()).await;
    let (mut logs, stats, task) = follow(
        rpc.clone(),
        FollowConfig {
            address: emitter,
            from_block: start,
            confirmations: 2,
            ws: vec![
                format!("ws://{front}"),
                format!("ws://{}", chain.rpc_addr()),
            ],
            // Long enough that the timer alone would be noticeably late.
            reconcile_every: Duration::from_secs(2),
            silence: Duration::from_millis(600),
            max_range: 3,
            tls: None,
        },
    );

    let emit = |i: u64| {
        let rpc = rpc.clone();
        async move {
            let topic = B256::from(alloy_primitives::U256::from(i));
            send(
                &rpc,
                json!({"from": from, "to": emitter, "data": topic, "gas": "0x10000"}),
            )
            .await;
        }
    };
    let total = 40u64;
    let mut received = Vec::new();
    for i in 0..total {
        if i == 15 {
            kill.send(true).unwrap();
        }
        emit(i).await;
        while let Ok(log) = logs.try_recv() {
            received.push(log);
        }
    }
    // Everything arrives (two blocks on top of the last one are coming: blocks every 100 ms).
    while received.len() < total as usize {
        let log = tokio::time::timeout(Duration::from_secs(20), logs.recv())
            .await
            .expect("a log was lost")
            .unwrap();
        received.push(log);
    }
    let topics: Vec<u64> = received
        .iter()
        .map(|l| {
            assert_eq!(l.address, emitter);
            alloy_primitives::U256::from_be_bytes(l.topics[0].0).to::<u64>()
        })
        .collect();
    assert_eq!(
        topics,
        (0..total).collect::<Vec<_>>(),
        "in order, once each"
    );
    let mut positions: Vec<(u64, u64)> = received
        .iter()
        .map(|l| (l.block_number, l.log_index))
        .collect();
    positions.dedup();
    assert_eq!(positions.len(), total as usize);
    // Nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(logs.try_recv().is_err());
    assert!(
        stats.subscriptions.load(Ordering::Relaxed) >= 2,
        "the dead subscription was replaced"
    );
    assert!(stats.rings.load(Ordering::Relaxed) > 0);
    drop(logs);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    chain.shutdown().await.unwrap();
}
