//! The ledger driven through the CLI: a `kakehashi devnet ledger` process (Notary, Bank, PartyA,
//! PartyB, Validator over gRPC with mutual TLS) and `kakehashi ledger ...` client processes.
//! Issue to PartyA, pay to PartyB, balances on both sides, non-participants do not have the
//! transaction, two concurrent overspending payments, and a client without a certificate from
//! the network root.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[path = "ledger_cli_parts/ibc.rs"]
mod ibc;

fn kakehashi(dir: &Path, node: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kakehashi"))
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

fn balance(dir: &Path, node: &str, account: &str) -> u64 {
    json(&kakehashi(
        dir,
        node,
        &["vault", "--account", account, "--json"],
    ))["balance"]
        .as_u64()
        .unwrap()
}

/// The lines a child prints, read on a thread of their own.
fn lines(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The next line, within a bounded wait.
fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(30))
        .expect("no line within 30 s")
}

fn wait_balance(dir: &Path, node: &str, account: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = balance(dir, node, account);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{node}/{account}: balance {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn issue_pay_and_privacy_through_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("devnet.log");
    let mut devnet = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .args(["devnet", "ledger", "--data", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    // Ready once every node answers its RPC.
    for node in ["Notary", "Bank", "PartyA", "PartyB", "Validator"] {
        while !dir.join("root.key").exists()
            || !kakehashi(dir, node, &["accounts", "list"]).status.success()
        {
            if let Ok(Some(status)) = devnet.0.try_wait() {
                panic!(
                    "the ledger devnet exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the ledger devnet did not come up; {node}: {}\ndevnet log:\n{}",
                String::from_utf8_lossy(&kakehashi(dir, node, &["accounts", "list"]).stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let alice = json(&kakehashi(
        dir,
        "PartyA",
        &["accounts", "create", "alice", "--json"],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob = json(&kakehashi(
        dir,
        "PartyB",
        &["accounts", "create", "bob", "--json"],
    ))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = json(&kakehashi(dir, "PartyA", &["accounts", "list", "--json"]));
    assert_eq!(listed["accounts"][0]["id"], alice);

    let issue = json(&kakehashi(
        dir,
        "Bank",
        &[
            "issue",
            "--amount",
            "100",
            "--to",
            &format!("PartyA/{alice}"),
            "--json",
        ],
    ));
    assert!(issue["tx_id"].as_str().unwrap().len() == 64);
    wait_balance(dir, "PartyA", &alice, 100);

    let pay = json(&kakehashi(
        dir,
        "PartyA",
        &[
            "pay",
            "--amount",
            "60",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
            "--json",
        ],
    ));
    let tx = pay["tx_id"].as_str().unwrap().to_string();
    wait_balance(dir, "PartyB", &bob, 60);
    assert_eq!(balance(dir, "PartyA", &alice), 40);

    // Redemption through the CLI: the bank co-signs.
    json(&kakehashi(
        dir,
        "PartyB",
        &["redeem", "--account", &bob, "--amount", "5", "--json"],
    ));
    assert_eq!(balance(dir, "PartyB", &bob), 55);

    // Participants have it; non-participants never received it.
    json(&kakehashi(dir, "PartyB", &["tx", "show", &tx, "--json"]));
    for node in ["Validator", "Bank", "Notary"] {
        let out = kakehashi(dir, node, &["tx", "show", &tx, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{node} has the payment");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }

    // PartyA's events: the issuance (from the bank, no flow of PartyA's) and the payment (its
    // flow), in commit order; resumable after a cursor; --follow with --limit ends.
    let events = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = kakehashi(dir, "PartyA", args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = events(&["events", "--json"]);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        (all[0]["cursor"].as_u64(), all[1]["cursor"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(all[0]["tx_id"], issue["tx_id"]);
    assert!(all[0]["flow_id"].is_null());
    assert_eq!(all[1]["tx_id"], tx.as_str());
    assert_eq!(all[1]["consumed"][0]["tx_id"], issue["tx_id"]);
    assert_eq!(all[1]["produced"][0]["contract"], "kakehashi.stablecoin.v1");
    assert!(all[1]["flow_id"].is_string());
    assert_eq!(events(&["events", "--after", "1", "--json"]), all[1..]);
    assert_eq!(
        events(&["events", "--follow", "--limit", "2", "--json"]),
        all
    );

    // A filtered view of the payment, checked by the CLI with the network's keys only.
    let shown = json(&kakehashi(
        dir,
        "PartyB",
        &[
            "tx",
            "show",
            &tx,
            "--filtered",
            "outputs,commands,notary",
            "--json",
        ],
    ));
    let filtered = &shown["filtered"];
    assert_eq!(filtered["verified"], true);
    assert!(filtered["revealed"]["outputs"]["count"].as_u64().unwrap() >= 1);
    assert!(
        filtered["revealed"]["notary"]["components"][0]["value"]["name"]
            .as_str()
            .unwrap()
            .contains("Notary")
    );
    assert!(filtered["revealed"].get("inputs").is_none());
    let out = kakehashi(
        dir,
        "PartyB",
        &["tx", "show", &tx, "--filtered", "outputs,secrets"],
    );
    assert!(!out.status.success());

    // Following a flow and an account: a subscription to Bob's vault sees the current vault,
    // then the payment of a flow started without waiting.
    let mut watch = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .args([
                "ledger",
                "--network",
                dir.to_str().unwrap(),
                "--node",
                "PartyB",
            ])
            .args(["watch", "--account", &bob, "--updates", "2", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let updates = lines(watch.0.stdout.take().unwrap());
    let first: serde_json::Value = serde_json::from_str(&next_line(&updates)).unwrap();
    assert_eq!(first["balance"], 55);
    let started = json(&kakehashi(
        dir,
        "PartyA",
        &[
            "pay",
            "--amount",
            "10",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
            "--no-wait",
            "--json",
        ],
    ));
    let flow = started["flow_id"].as_str().unwrap().to_string();
    let waited = json(&kakehashi(
        dir,
        "PartyA",
        &["flow", "wait", &flow, "--json"],
    ));
    let paid = waited["tx_id"].as_str().unwrap().to_string();
    let status = json(&kakehashi(
        dir,
        "PartyA",
        &["flow", "status", &flow, "--json"],
    ));
    assert_eq!(status["status"], "completed");
    assert_eq!(status["tx_id"], paid.as_str());
    let watched = kakehashi(dir, "PartyA", &["flow", "watch", &flow, "--json"]);
    assert!(watched.status.success());
    let last: serde_json::Value = serde_json::from_slice(
        watched
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["status"], "completed");
    let second: serde_json::Value = serde_json::from_str(&next_line(&updates)).unwrap();
    assert_eq!(second["balance"], 65);
    assert!(
        second["states"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["tx_id"] == paid.as_str()),
        "the update names the payment"
    );
    let status = watch.0.wait().unwrap();
    assert!(status.success(), "watch stops after --updates 2");
    let out = kakehashi(
        dir,
        "PartyA",
        &["flow", "status", "7b0d4c9e-0000-4000-8000-000000000000"],
    );
    assert_eq!(out.status.code(), Some(1), "unknown flow");

    // Two concurrent payments that together overspend 30: exactly one succeeds.
    let spawn = |amount: &str| {
        Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .args([
                "ledger",
                "--network",
                dir.to_str().unwrap(),
                "--node",
                "PartyA",
                "pay",
                "--amount",
                amount,
                "--from",
                &alice,
                "--to",
                &format!("PartyB/{bob}"),
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p1, p2) = (spawn("20"), spawn("20"));
    let (o1, o2) = (
        p1.wait_with_output().unwrap(),
        p2.wait_with_output().unwrap(),
    );
    let ok = [&o1, &o2].iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one of two overspending payments succeeds");
    let expected_bob = 65 + 20 * ok as u64;
    wait_balance(dir, "PartyB", &bob, expected_bob);
    assert_eq!(
        balance(dir, "PartyA", &alice) + balance(dir, "PartyB", &bob),
        95,
        "value is conserved (100 issued, 5 redeemed)"
    );

    // A payment the Validator must check and co-sign: it carries the Validator's signature,
    // the Validator keeps a copy and a record of it; a node that is not a Validator of the
    // network cannot be named as one.
    let (a_before, b_before) = (balance(dir, "PartyA", &alice), balance(dir, "PartyB", &bob));
    let validated = json(&kakehashi(
        dir,
        "PartyA",
        &[
            "pay",
            "--amount",
            "3",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
            "--validator",
            "Validator",
            "--json",
        ],
    ));
    let vtx = validated["tx_id"].as_str().unwrap().to_string();
    wait_balance(dir, "PartyB", &bob, b_before + 3);
    assert_eq!(balance(dir, "PartyA", &alice), a_before - 3);
    let shown = json(&kakehashi(dir, "PartyB", &["tx", "show", &vtx, "--json"]));
    assert_eq!(
        shown["signers"].as_array().unwrap().len(),
        3,
        "payer, Validator and notary signed: {shown}"
    );
    json(&kakehashi(
        dir,
        "Validator",
        &["tx", "show", &vtx, "--json"],
    ));
    let records = json(&kakehashi(dir, "Validator", &["validations", "--json"]));
    let records = records["validations"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["tx_id"], vtx.as_str());
    assert!(
        records[0]["requester"]
            .as_str()
            .unwrap()
            .contains("O=PartyA")
    );
    let refused = kakehashi(
        dir,
        "PartyA",
        &[
            "pay",
            "--amount",
            "1",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
            "--validator",
            "Bank",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a Validator"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(balance(dir, "PartyA", &alice), a_before - 3);

    // Archiving: PartyA's consumed coins (and the transactions with nothing live left) leave
    // the live vault; balances do not change and archived transactions are still found.
    let archived = json(&kakehashi(
        dir,
        "PartyA",
        &["archive", "--older-than-ms", "0", "--json"],
    ));
    assert!(archived["states"].as_u64().unwrap() >= 3, "{archived}");
    assert!(
        archived["transactions"].as_u64().unwrap() >= 1,
        "{archived}"
    );
    assert!(archived["flows"].as_u64().unwrap() >= 4, "{archived}");
    assert_eq!(balance(dir, "PartyA", &alice), a_before - 3);
    json(&kakehashi(dir, "PartyA", &["tx", "show", &tx, "--json"]));
    let again = json(&kakehashi(
        dir,
        "PartyA",
        &["archive", "--older-than-ms", "0", "--json"],
    ));
    assert_eq!(again["states"], 0, "{again}");
    assert_eq!(again["flows"], 0, "{again}");
    // A forgotten flow is unknown now; new payments still work (below).
    let out = kakehashi(dir, "PartyA", &["flow", "status", &flow]);
    assert_eq!(out.status.code(), Some(1), "archived flow still reported");

    // Bad input: unknown account, malformed target, unknown node.
    let out = kakehashi(
        dir,
        "PartyA",
        &[
            "pay",
            "--amount",
            "1",
            "--from",
            "not-a-uuid",
            "--to",
            &format!("PartyB/{bob}"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = kakehashi(
        dir,
        "PartyA",
        &["pay", "--amount", "1", "--from", &alice, "--to", "PartyB"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = kakehashi(dir, "Nobody", &["accounts", "list"]);
    assert_eq!(out.status.code(), Some(2));

    // A client whose certificate was not issued by the network root is refused.
    let rogue = tempfile::tempdir().unwrap();
    for f in ["network.json", "root.pem"] {
        std::fs::copy(dir.join(f), rogue.path().join(f)).unwrap();
    }
    let other = kh_ledger_node::NetworkCa::generate("rogue")
        .unwrap()
        .issue("mallory")
        .unwrap();
    let rogue_node = rogue.path().join("nodes").join("PartyA");
    std::fs::create_dir_all(&rogue_node).unwrap();
    std::fs::write(rogue_node.join("rpc-admin.pem"), &other.cert_pem).unwrap();
    std::fs::write(rogue_node.join("rpc-admin.key"), &other.key_pem).unwrap();
    let out = kakehashi(rogue.path(), "PartyA", &["accounts", "create", "mallory"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a client without a valid certificate got through"
    );
    let listed = json(&kakehashi(dir, "PartyA", &["accounts", "list", "--json"]));
    assert_eq!(
        listed["accounts"].as_array().unwrap().len(),
        1,
        "the refused client changed nothing"
    );

    // RPC users and permissions: a read-only user added while the node runs may read but not
    // start flows or create accounts; a user of PartyA is nobody on PartyB.
    let added = json(&kakehashi(
        dir,
        "PartyA",
        &[
            "users",
            "add",
            "--name",
            "auditor",
            "--permissions",
            "read",
            "--json",
        ],
    ));
    assert_eq!(added["permission"], "read");
    let as_auditor = |node: &str, args: &[&str]| {
        let mut all = vec!["--user", "auditor"];
        all.extend_from_slice(args);
        kakehashi(dir, node, &all)
    };
    let listed = json(&as_auditor("PartyA", &["accounts", "list", "--json"]));
    assert_eq!(listed["accounts"].as_array().unwrap().len(), 1);
    let out = as_auditor(
        "PartyA",
        &[
            "pay",
            "--amount",
            "1",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has permission read; this call needs flows"),
        "{stderr}"
    );
    let out = as_auditor("PartyA", &["accounts", "create", "sneaky"]);
    assert_eq!(out.status.code(), Some(1));
    // The auditor's certificate used against PartyB (copied next to PartyB's users).
    let a_dir = dir.join("nodes").join("PartyA");
    let b_dir = dir.join("nodes").join("PartyB");
    for ext in ["pem", "key"] {
        std::fs::copy(
            a_dir.join(format!("rpc-auditor.{ext}")),
            b_dir.join(format!("rpc-auditor.{ext}")),
        )
        .unwrap();
    }
    let out = as_auditor("PartyB", &["accounts", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not an RPC user of PartyB"), "{stderr}");
    let users = json(&kakehashi(dir, "PartyA", &["users", "list", "--json"]));
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "auditor"]);

    // Garbage on the wire changes nothing either.
    let before_a = balance(dir, "PartyA", &alice);
    let before_b = balance(dir, "PartyB", &bob);
    garbage_is_refused(dir, &bob);
    assert_eq!(balance(dir, "PartyA", &alice), before_a);
    assert_eq!(balance(dir, "PartyB", &bob), before_b);
    let listed = json(&kakehashi(dir, "PartyB", &["accounts", "list", "--json"]));
    assert_eq!(listed["accounts"].as_array().unwrap().len(), 1);
    // ... and the network still works.
    json(&kakehashi(
        dir,
        "PartyB",
        &[
            "pay",
            "--amount",
            "1",
            "--from",
            &bob,
            "--to",
            &format!("PartyA/{alice}"),
            "--json",
        ],
    ));
    wait_balance(dir, "PartyA", &alice, before_a + 1);

    apps_and_generic_flows(dir, &alice, &bob);
}

/// PartyA and PartyB run the shared-record app, the Bank does not: flows started by name,
/// a node without the app refusing its transaction by name, and a stablecoin payment started
/// generically.
fn apps_and_generic_flows(dir: &Path, alice: &str, bob: &str) {
    ibc::ibc_host(dir);
    let flows = json(&kakehashi(dir, "PartyA", &["flow", "list", "--json"]));
    let names: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"record.create") && names.contains(&"stablecoin.pay"),
        "{names:?}"
    );
    let created = json(&kakehashi(
        dir,
        "PartyA",
        &[
            "flow",
            "start",
            "record.create",
            "--args",
            r#"{"counterparty":"PartyB","text":"hello"}"#,
            "--json",
        ],
    ));
    let tx = created["tx_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !kakehashi(dir, "PartyB", &["tx", "show", &tx, "--json"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "PartyB never recorded {tx}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let records = |node| {
        json(&kakehashi(
            dir,
            node,
            &["states", "--contract", "kakehashi.record.v1", "--json"],
        ))["states"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(records("PartyB"), 1);
    assert_eq!(records("Bank"), 0, "only the participants hold it");
    let refused = kakehashi(
        dir,
        "PartyA",
        &[
            "flow",
            "start",
            "record.create",
            "--args",
            r#"{"counterparty":"Bank","text":"x"}"#,
            "--json",
        ],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && err.contains("Bank refused to co-sign")
            && err.contains("does not run an app with contract kakehashi.record.v1"),
        "{err}"
    );
    let missing = kakehashi(
        dir,
        "Bank",
        &["flow", "start", "record.create", "--args", "{}", "--json"],
    );
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("no flow named"),
        "{err}"
    );

    let before = balance(dir, "PartyB", bob);
    let args =
        format!(r#"{{"amount":2,"from":"{alice}","to_node":"PartyB","to_account":"{bob}"}}"#);
    json(&kakehashi(
        dir,
        "PartyA",
        &["flow", "start", "stablecoin.pay", "--args", &args, "--json"],
    ));
    wait_balance(dir, "PartyB", bob, before + 2);
    let bad = kakehashi(
        dir,
        "PartyA",
        &["flow", "start", "stablecoin.pay", "--args", "not json"],
    );
    assert!(!bad.status.success());
}

/// Bytes that are neither TLS nor gRPC: a deterministic pseudo-random block.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

/// The server must drop the connection (after at most a TLS alert) within a bounded wait.
fn connection_is_dropped(addr: std::net::SocketAddr, bytes: &[u8]) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may close before it read everything; a failed write is a refusal too.
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    let mut received = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received += n;
                assert!(
                    received < 4096,
                    "{addr} answered garbage with {received} bytes"
                );
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("{addr} kept a garbage connection open")
            }
            Err(_) => break, // reset by the server
        }
    }
}

/// Raw garbage, a plaintext HTTP/2 (gRPC without TLS) preface, and well-formed gRPC calls over
/// mutual TLS that carry garbage or impersonate a node on the P2P link.
fn garbage_is_refused(dir: &Path, bob: &str) {
    use kh_ledger_node::proto::peer_client::PeerClient;
    use kh_ledger_node::proto::{DeliverRequest, RunFlowRequest, VaultRequest};
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

    let (directory, root) = kh_ledger_node::NetworkDirectory::read(dir).unwrap();
    let client = kh_ledger_node::NetworkDirectory::client_identity(dir, "PartyB", "admin").unwrap();
    let a_admin =
        kh_ledger_node::NetworkDirectory::client_identity(dir, "PartyA", "admin").unwrap();
    let a_node = kh_ledger_node::TlsIdentity {
        cert_pem: std::fs::read_to_string(dir.join("nodes/PartyA/tls.pem")).unwrap(),
        cert_der: vec![],
        key_pem: std::fs::read_to_string(dir.join("nodes/PartyA/tls.key")).unwrap(),
    };
    for (name, ep) in &directory.nodes {
        for (i, addr) in [ep.rpc, ep.p2p].into_iter().enumerate() {
            connection_is_dropped(addr, &noise(2048, i as u64 + name.len() as u64));
            connection_is_dropped(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        }
    }
    let (party_a, _) = directory.node("PartyA").unwrap();
    let (party_b, b) = directory.node("PartyB").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&root))
            .identity(Identity::from_pem(&client.cert_pem, &client.key_pem))
            .domain_name("localhost");
        let channel = Channel::from_shared(format!("https://{}", b.p2p))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut peer = PeerClient::new(channel);
        for seed in 0..8 {
            let err = peer
                .deliver(DeliverRequest {
                    envelope: noise(64 << seed, seed),
                })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        }
        // A well-formed envelope "from PartyA" sent with a certificate that is not PartyA's.
        let mut peers = kh_ledger_node::PeerDirectory::default();
        peers.peers.insert(
            party_b.clone(),
            kh_ledger_node::PeerEntry {
                address: b.p2p,
                cert_der: kh_ledger_node::pem_to_der(&b.cert_pem).unwrap(),
            },
        );
        let impostor = kh_ledger_node::GrpcTransport::new(peers.into(), &client, &root);
        let env = kh_ledger::Envelope {
            id: uuid::Uuid::new_v4(),
            from: party_a,
            to: party_b,
            payload: noise(100, 99),
        };
        use kh_ledger::Transport as _;
        let refused = impostor.send(env).await;
        assert!(
            matches!(refused, Err(kh_ledger::TransportError::Refused { .. })),
            "{refused:?}"
        );

        // PartyB's RPC admits only PartyB's RPC users: not PartyA's admin, not PartyA's node
        // identity, whatever the call.
        for (who, identity) in [("PartyA's admin", &a_admin), ("PartyA's node", &a_node)] {
            let mut rpc = kh_ledger_node::connect_rpc(b.rpc, identity, &root)
                .await
                .unwrap();
            let err = rpc
                .vault(VaultRequest {
                    account: bob.to_string(),
                })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{who}: {err}");
            assert!(
                err.message().contains("not an RPC user of PartyB"),
                "{who}: {err}"
            );
        }

        // Garbage in well-formed RPC calls.
        let mut rpc = kh_ledger_node::connect_rpc(b.rpc, &client, &root)
            .await
            .unwrap();
        let err = rpc
            .run_flow(RunFlowRequest {
                flow: None,
                timeout_ms: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let err = rpc
            .vault(VaultRequest {
                account: String::from_utf8_lossy(&noise(40, 7)).into_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let err = rpc
            .vault(VaultRequest {
                account: "00000000-0000-4000-8000-000000000000".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(
            rpc.vault(VaultRequest {
                account: bob.to_string()
            })
            .await
            .is_ok()
        );
    });
}
