//! `/metrics` and `/health` over real HTTP on loopback: the Prometheus text carries the
//! relayer's metrics with their labels; health turns 503 when the relay loop stops beating.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use kh_relayer::metrics::{Health, Metrics, serve};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (code, body)
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::new(Duration::from_millis(300));
    let (addr, task) = serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(registry),
        health.clone(),
    )
    .await
    .unwrap();
    assert!(addr.ip().is_loopback());

    let dir = Metrics::direction("evm", "ledger");
    metrics.backlog.get_or_create(&dir).set(3);
    metrics.hop_latency.get_or_create(&dir).observe(0.042);
    metrics
        .chain_height
        .get_or_create(&Metrics::chain("evm"))
        .set(120);
    metrics
        .submission_errors
        .get_or_create(&Metrics::chain("ledger"))
        .inc();
    metrics.lease_held.set(1);
    let (code, text) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "kh_relayer_backlog_packets{direction=\"evm->ledger\"} 3",
        "kh_relayer_chain_height{chain=\"evm\"} 120",
        "kh_relayer_submission_errors_total{chain=\"ledger\"} 1",
        "kh_relayer_lease_held 1",
        "kh_relayer_hop_latency_seconds_count{direction=\"evm->ledger\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }

    // Not started: unhealthy. Beating: healthy, with its role. Silent too long: unhealthy.
    assert_eq!(get(addr, "/health").await.0, 503);
    health.beat("active");
    health.set("evm_height", 120.into());
    let (code, body) = get(addr, "/health").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["role"], "active");
    assert_eq!(v["detail"]["evm_height"], 120);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(addr, "/health").await.0, 503);
    assert_eq!(get(addr, "/other").await.0, 404);
    task.abort();
}
