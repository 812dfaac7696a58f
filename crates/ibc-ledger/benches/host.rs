#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
//! IBC messages per second through the host-state chain, with real messages: two in-process
//! ledgers (each a notary and two host operators on their own SQLite databases, as in the
//! `ledger_to_ledger` test) with a connection and an unordered ping channel between them.
//!
//! - `send`: ledger A's ping app sends pings (ibc-rs `send_packet`), 1 per host transaction,
//!   then 50 per host transaction.
//! - `recv`: ledger B applies `MsgRecvPacket`s with their ledger proofs (verified by the
//!   `kh-ledger` client: filtered host transaction, signatures, ICS-23), 1 per host
//!   transaction, then 50; the first transaction of each run also carries the client update.
//!
//! Each host transaction is built by PartyA, re-executed and co-signed by PartyB, notarised and
//! recorded by both. Only the submitting is timed (not the relayer's proof fetching). Prints
//! JSON. Run: `cargo bench -p kh-ibc-ledger --bench host` (or, quicker to build, in the debug
//! profile: `cargo test -p kh-ibc-ledger --bench host`).
//!
//! Measured once (release, 2 cores shared with other builds, SQLite): send_packet 103/s at 1
//! per transaction, 2284/s at 50; MsgRecvPacket with proofs 46/s at 1 (the first transaction
//! also carries a 24-height client update), 98/s at 50.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::handshake::*;
use common::*;
use ibc_proto::ibc::core::channel::v1 as chan;

const SINGLE_TXS: u64 = 20;
const BATCH: u64 = 50;
const BATCH_TXS: u64 = 4;

fn rate(messages: u64, micros: u128) -> u128 {
    u128::from(messages) * 1_000_000 / micros.max(1)
}

async fn measure() -> serde_json::Value {
    let (_backend, urls) = kh_test_support::database_urls(6)
        .await
        .into_iter()
        .next()
        .unwrap();
    let mut r = Relay::new(&urls).await;
    open_connection(&mut r).await;
    let ch = open_channel(&mut r, chan::Order::Unordered).await;
    let ping = |count: u64| serde_json::json!({"channel": ch, "data": "bench", "timeout_height": 1_000_000u64, "count": count});

    // Sends.
    let started = Instant::now();
    for _ in 0..SINGLE_TXS {
        r.a.ping(ping(1)).await.unwrap();
    }
    let send_single = started.elapsed().as_micros();
    let started = Instant::now();
    for _ in 0..BATCH_TXS {
        r.a.ping(ping(BATCH)).await.unwrap();
    }
    let send_batch = started.elapsed().as_micros();

    // Receives: every packet proven at A's latest height.
    let total = SINGLE_TXS + BATCH * BATCH_TXS;
    let mut recvs = Vec::with_capacity(total as usize);
    let mut update = None;
    for seq in 1..=total {
        let mut msgs = recv_on_b(&mut r, &packet(&ch, seq, "bench", 1_000_000, 0)).await;
        if msgs.len() == 2 {
            update = Some(msgs.remove(0));
        }
        recvs.push(msgs.pop().unwrap());
    }
    let mut recvs = recvs.into_iter();
    let started = Instant::now();
    for i in 0..SINGLE_TXS {
        let mut msgs: Vec<_> = if i == 0 {
            update.take().into_iter().collect()
        } else {
            vec![]
        };
        msgs.push(recvs.next().unwrap());
        r.b.submit(msgs).await.unwrap();
    }
    let recv_single = started.elapsed().as_micros();
    let started = Instant::now();
    for _ in 0..BATCH_TXS {
        let msgs: Vec<_> = recvs.by_ref().take(BATCH as usize).collect();
        r.b.submit(msgs).await.unwrap();
    }
    let recv_batch = started.elapsed().as_micros();
    let acks = r.b.value(&ack_key(&ch, total)).await;
    assert!(acks.is_some(), "the last packet was received");
    r.a.shutdown().await;
    r.b.shutdown().await;
    serde_json::json!({
        "send_packet": {
            "one_per_tx": { "transactions": SINGLE_TXS, "messages_per_second": rate(SINGLE_TXS, send_single) },
            "fifty_per_tx": { "transactions": BATCH_TXS, "messages_per_second": rate(BATCH * BATCH_TXS, send_batch) },
        },
        "recv_packet": {
            "one_per_tx": { "transactions": SINGLE_TXS, "messages_per_second": rate(SINGLE_TXS, recv_single) },
            "fifty_per_tx": { "transactions": BATCH_TXS, "messages_per_second": rate(BATCH * BATCH_TXS, recv_batch) },
        },
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

fn main() {
    // `cargo test --benches` passes test-harness flags; the measurement runs either way.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{}", rt.block_on(measure()));
}
