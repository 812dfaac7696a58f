//! The relayer's ledger adapter against real node processes (`kakehashi ledger node`): as an
//! RPC user with read permission (issued with `kakehashi ledger users add`), it follows
//! PartyA's event stream while payments go on, PartyA is `kill -9`ed and started again on the
//! same database, and more payments follow. Every event PartyA recorded arrives exactly once,
//! in cursor order, checked against `kakehashi ledger events` after the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/ledger_net.rs"]
mod ledger_net;

use std::time::Duration;

use kh_relayer::ledger::follow_events;
use ledger_net::{LedgerNet, NodeProcess, json_of as json, ledger_cli as cli, wait_until};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_follower_delivers_every_event_once_across_a_node_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let mut net = LedgerNet::start(dir, "relayer", "read", &[]);
    let endpoint = net.endpoint("relayer");
    let (mut events, stats, task) = follow_events(endpoint, 0, Duration::from_millis(500));

    let alice = json(&cli(
        dir,
        "PartyA",
        &["accounts", "create", "alice", "--json"],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = json(&cli(
        dir,
        "PartyB",
        &["accounts", "create", "bob", "--json"],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let issue = |amount: &str| {
        json(&cli(
            dir,
            "Bank",
            &[
                "issue",
                "--amount",
                amount,
                "--to",
                &format!("PartyA/{alice}"),
                "--json",
            ],
        ));
    };
    let pay = |amount: &str| {
        json(&cli(
            dir,
            "PartyA",
            &[
                "pay",
                "--amount",
                amount,
                "--from",
                &alice,
                "--to",
                &format!("PartyB/{bob}"),
                "--json",
            ],
        ));
    };
    issue("100");
    for _ in 0..3 {
        pay("5");
    }
    // PartyA dies and comes back on its database; the follower reconnects by itself.
    let party_a = net.nodes.iter_mut().find(|(n, _)| n == "PartyA").unwrap();
    party_a.1.kill_9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    party_a.1 = NodeProcess::start(dir, "PartyA");
    wait_until("PartyA again", WAIT, || {
        cli(dir, "PartyA", &["accounts", "list"]).status.success()
    });
    issue("50");
    for _ in 0..3 {
        pay("5");
    }

    // What PartyA recorded, read afterwards with the CLI.
    let out = cli(dir, "PartyA", &["events", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<(u64, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                e["cursor"].as_u64().unwrap(),
                e["tx_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(expected.len() >= 8, "{expected:?}");
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("an event was lost")
            .unwrap();
        got.push((e.cursor, e.tx_id));
    }
    assert_eq!(got, expected, "every event once, in cursor order");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_recv().is_err(), "nothing twice");
    assert!(
        stats.streams.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the stream was replaced after the restart"
    );
    drop(events);
    task.abort();
}
