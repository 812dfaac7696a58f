//! IBC between two ledgers, end to end through ibc-rs on both hosts (see `common`): two
//! in-process ledger networks, `ledger-a` and `ledger-b`, each a notary and two host operators
//! on their own databases, each with the `kh-ledger` light client of the other. The test is the
//! relayer: it carries the datagrams and the proofs it fetches from the nodes.
//!
//! Covered: client creation on both sides, the four connection steps, the four channel steps,
//! a ping received and acknowledged (`pong:<data>`, recorded by both ping apps), timeouts by
//! height, by timestamp and on close, channel close; and the rejections — a replayed packet, a
//! proof with one byte changed, an out-of-order packet on an ordered channel, a receive after
//! the timeout, an acknowledgement of an unknown packet, a handshake step out of order, a send
//! on a port the app does not own.
#![allow(clippy::unwrap_used)]

mod common;

use common::handshake::*;
use common::*;
use ibc_proto::ibc::core::channel::v1 as chan;
use kh_ibc_ledger::PingApp;
use sha2::{Digest, Sha256};

fn refused(result: Result<u64, String>, want: &str) {
    match result {
        Err(reason) => {
            assert!(reason.contains(want), "{want:?} not in: {reason}")
        }
        Ok(h) => panic!("accepted at height {h}; expected a refusal with {want:?}"),
    }
}

fn now_ms() -> u64 {
    u64::try_from(kh_ledger::util::now_ms()).unwrap()
}

fn ping_args(channel: &str, data: &str, timeout_height: u64, timeout_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "channel": channel, "data": data,
        "timeout_height": timeout_height, "timeout_timestamp_ms": timeout_ms,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_handshake_ping_timeout_and_close() {
    let (_backend, urls) = kh_test_support::database_urls(6)
        .await
        .into_iter()
        .next()
        .unwrap();
    let mut r = Relay::new(&urls).await;

    open_connection(&mut r).await;
    // A handshake step out of order: B confirms connection-0 again (it is open already), and
    // A confirms its connection-0, which it opened with Init/Ack (Confirm is B's step).
    let (update, ha) = r.update_on_b().await;
    let (_, proof) = r.a.proof(&format!("connections/{CONN_0}"), ha).await;
    refused(
        r.b.submit(with_update(update, conn_open_confirm(proof.clone(), ha)))
            .await,
        "expected `TRYOPEN`, actual `OPEN`",
    );
    refused(
        r.a.submit(vec![conn_open_confirm(proof, ha)]).await,
        "expected `TRYOPEN`, actual `OPEN`",
    );
    let ch = open_channel(&mut r, chan::Order::Unordered).await;
    assert_eq!(ch, "channel-0");

    // A ping: sent by A's ping app, received on B (pong), acknowledged on A.
    r.a.ping(ping_args(&ch, "hello", 10_000, 0)).await.unwrap();
    let p1 = packet(&ch, 1, "hello", 10_000, 0);
    // The packet commitment is ibc-go's.
    let mut c = Sha256::new();
    c.update(0u64.to_be_bytes());
    c.update(0u64.to_be_bytes());
    c.update(10_000u64.to_be_bytes());
    c.update(Sha256::digest(b"hello"));
    assert_eq!(
        r.a.value(&commitment_key(&ch, 1)).await.unwrap(),
        c.finalize().to_vec()
    );
    // A proof with one byte changed is refused.
    let mut bad = recv_on_b(&mut r, &p1).await;
    let good = bad.clone();
    let recv = bad.last_mut().unwrap();
    let mut m: chan::MsgRecvPacket = prost::Message::decode(recv.value.as_slice()).unwrap();
    let last = m.proof_commitment.len() - 1;
    m.proof_commitment[last] ^= 1;
    *recv = any(&m);
    refused(r.b.submit(bad).await, "membership does not verify");
    r.b.submit(good.clone()).await.unwrap();
    assert_eq!(
        r.b.value(&ack_key(&ch, 1)).await.unwrap(),
        Sha256::digest(b"pong:hello").to_vec()
    );
    // A replayed packet is refused.
    let replay = recv_on_b(&mut r, &p1).await;
    refused(r.b.submit(replay).await, "already received");
    let ack = ack_on_a(&mut r, &p1, b"pong:hello").await;
    r.a.submit(ack).await.unwrap();
    assert!(r.a.value(&commitment_key(&ch, 1)).await.is_none());
    // An acknowledgement of an unknown packet (or the same one again) is refused.
    let unknown = packet(&ch, 99, "nope", 10_000, 0);
    let ack = ack_on_a(&mut r, &unknown, b"pong:nope").await;
    refused(r.a.submit(ack).await, "no packet 99 is pending");
    // Both ping apps recorded it (on each operator).
    for i in 1..=2 {
        let got = PingApp::received(r.b.nodes[i].hub()).await.unwrap();
        assert_eq!(got, vec![(ch.clone(), 1, "hello".to_string())]);
        let got = PingApp::outcomes(r.a.nodes[i].hub()).await.unwrap();
        assert_eq!(got, vec![(ch.clone(), 1, "pong:hello".to_string())]);
    }

    // A send on a port the ping app does not own is refused.
    let mut args = ping_args(&ch, "x", 10_000, 0);
    args["port"] = "transfer".into();
    refused(r.a.ping(args).await, "does not own port");

    // Timeout by height: B's next height is past the timeout height (ibc-rs: a packet
    // times out at heights strictly above it).
    let timeout_height = r.b.height().await;
    r.a.ping(ping_args(&ch, "late", timeout_height, 0))
        .await
        .unwrap();
    let p2 = packet(&ch, 2, "late", timeout_height, 0);
    let recv = recv_on_b(&mut r, &p2).await;
    refused(r.b.submit(recv).await, "insufficient packet timeout height");
    r.b.submit(vec![]).await.unwrap();
    let timeout = timeout_on_a(&mut r, &p2).await;
    r.a.submit(timeout).await.unwrap();
    assert!(r.a.value(&commitment_key(&ch, 2)).await.is_none());

    // Timeout by timestamp: B's host time passes it before B sees the packet.
    let deadline = now_ms() + 1;
    r.a.ping(ping_args(&ch, "slow", 0, deadline)).await.unwrap();
    let p3 = packet(&ch, 3, "slow", 0, deadline);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let recv = recv_on_b(&mut r, &p3).await;
    refused(r.b.submit(recv).await, "expired packet timestamp");
    r.b.submit(vec![]).await.unwrap();
    let timeout = timeout_on_a(&mut r, &p3).await;
    r.a.submit(timeout).await.unwrap();
    let outcomes = PingApp::outcomes(r.a.nodes[1].hub()).await.unwrap();
    assert_eq!(
        outcomes.iter().map(|o| o.2.as_str()).collect::<Vec<_>>(),
        ["pong:hello", "timeout", "timeout"]
    );

    // Out of order on an ordered channel: 2 before 1 is refused, 1 then 2 pass.
    let ordered = open_channel(&mut r, chan::Order::Ordered).await;
    assert_eq!(ordered, "channel-1");
    r.a.ping(ping_args(&ordered, "o1", 10_000, 0))
        .await
        .unwrap();
    r.a.ping(ping_args(&ordered, "o2", 10_000, 0))
        .await
        .unwrap();
    let o1 = packet(&ordered, 1, "o1", 10_000, 0);
    let o2 = packet(&ordered, 2, "o2", 10_000, 0);
    let recv = recv_on_b(&mut r, &o2).await;
    refused(r.b.submit(recv).await, "mismatched packet sequence");
    let mut both = recv_on_b(&mut r, &o1).await;
    both.extend(recv_on_b(&mut r, &o2).await);
    r.b.submit(both).await.unwrap();

    // Timeout on close: B closes channel-0 with a ping of A in flight; A times the ping out
    // and confirms the close in one transaction.
    r.a.ping(ping_args(&ch, "orphan", 10_000, 0)).await.unwrap();
    let p4 = packet(&ch, 4, "orphan", 10_000, 0);
    r.b.submit(vec![any(&chan::MsgChannelCloseInit {
        port_id: PING.into(),
        channel_id: ch.clone(),
        signer: SIGNER.into(),
    })])
    .await
    .unwrap();
    let (update, hb) = r.update_on_a().await;
    let (_, proof_unreceived) = r.b.proof(&receipt_key(&ch, 4), hb).await;
    let (_, proof_close) = r.b.proof(&chan_key(&ch), hb).await;
    let mut msgs: Vec<_> = update.into_iter().collect();
    msgs.push(any(&chan::MsgTimeoutOnClose {
        packet: Some(p4),
        proof_unreceived,
        proof_close: proof_close.clone(),
        proof_height: h(hb),
        next_sequence_recv: 4,
        signer: SIGNER.into(),
        counterparty_upgrade_sequence: 0,
    }));
    msgs.push(any(&chan::MsgChannelCloseConfirm {
        port_id: PING.into(),
        channel_id: ch.clone(),
        proof_init: proof_close,
        proof_height: h(hb),
        signer: SIGNER.into(),
        counterparty_upgrade_sequence: 0,
    }));
    r.a.submit(msgs).await.unwrap();
    assert!(r.a.value(&commitment_key(&ch, 4)).await.is_none());
    let end: chan::Channel =
        prost::Message::decode(r.a.value(&chan_key(&ch)).await.unwrap().as_slice()).unwrap();
    assert_eq!(end.state, chan::State::Closed as i32);
    // Nothing more is sent on a closed channel.
    refused(
        r.a.ping(ping_args(&ch, "after", 10_000, 0)).await,
        "not be Closed",
    );

    r.a.shutdown().await;
    r.b.shutdown().await;
}
