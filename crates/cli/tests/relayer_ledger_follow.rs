//! The relayer's ledger adapter against real node processes (`kakehashi ledger node`): as an
//! RPC user with read permission (issued with `kakehashi ledger users add`), it follows
//! PartyA's event stream while payments go on, PartyA is `kill -9`ed and started again on the
//! same database, and more payments follow. Every event PartyA recorded arrives exactly once,
//! in cursor order, checked against `kakehashi ledger events` after the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kh_ledger_node::NetworkDirectory;
use kh_relayer::ledger::{LedgerEndpoint, follow_events};

const BIN: &str = env!("CARGO_BIN_EXE_kakehashi");
const WAIT: Duration = Duration::from_secs(60);

struct NodeProcess(Child);

impl NodeProcess {
    fn start(dir: &Path, org: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["ledger", "node", "--config"])
            .arg(config(dir, org))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(
            move || for _ in BufReader::new(stderr).lines().map_while(Result::ok) {},
        );
        NodeProcess(child)
    }

    fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, org: &str) -> PathBuf {
    dir.join("nodes").join(org).join("node.toml")
}

fn cli(dir: &Path, node: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ledger", "--network", dir.to_str().unwrap(), "--node", node])
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_follower_delivers_every_event_once_across_a_node_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let init = Command::new(BIN)
        .args(["devnet", "ledger", "--init-only", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let added = json(&cli(
        dir,
        "PartyA",
        &[
            "users",
            "add",
            "--name",
            "relayer",
            "--permissions",
            "read",
            "--json",
        ],
    ));
    assert_eq!(added["name"], "relayer");

    let _notary = NodeProcess::start(dir, "Notary");
    let _bank = NodeProcess::start(dir, "Bank");
    let mut a = NodeProcess::start(dir, "PartyA");
    let _b = NodeProcess::start(dir, "PartyB");
    let _validator = NodeProcess::start(dir, "Validator");
    for node in ["Notary", "Bank", "PartyA", "PartyB", "Validator"] {
        wait_until(node, || {
            cli(dir, node, &["accounts", "list"]).status.success()
        });
    }

    let (network, root_pem) = NetworkDirectory::read(dir).unwrap();
    let (_, party_a) = network.node("PartyA").unwrap();
    let endpoint = LedgerEndpoint {
        addr: party_a.rpc,
        identity: NetworkDirectory::client_identity(dir, "PartyA", "relayer").unwrap(),
        root_pem,
    };
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
    a.kill_9();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _a = NodeProcess::start(dir, "PartyA");
    wait_until("PartyA again", || {
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
