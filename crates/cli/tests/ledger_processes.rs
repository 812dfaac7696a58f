//! Every node of the ledger network as its own process (`kakehashi ledger node --config`),
//! driven by the CLI. Cold standby: a node is `kill -9`ed at a failpoint in the middle of a flow
//! (after it sent a message, before finality) and a standby process started on the same
//! database finishes the flow, with no duplicate transaction and the counterparty agreeing;
//! then the same with the counterparty killed instead.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kakehashi");
const WAIT: Duration = Duration::from_secs(60);

struct NodeProcess {
    child: Child,
    log: mpsc::Receiver<String>,
}

impl NodeProcess {
    fn start(config: &Path, failpoint: Option<&str>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["ledger", "node", "--config", config.to_str().unwrap()]);
        if let Some(f) = failpoint {
            cmd.args(["--failpoint", f]);
        }
        let mut child = cmd
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, log }
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no {needle:?} in the node's log"),
            }
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn vault(dir: &Path, node: &str, account: &str) -> serde_json::Value {
    json(&cli(dir, node, &["vault", "--account", account, "--json"]))
}

fn config(dir: &Path, org: &str) -> PathBuf {
    dir.join("nodes").join(org).join("node.toml")
}

/// On SQLite, then (one after the other, to keep the machine's load bounded) with every node
/// on its own PostgreSQL database when a server is given (scripts/test starts one and sets
/// KH_TEST_POSTGRES_URL).
#[test]
fn cold_standby_after_kill_9_on_sqlite_and_postgres() {
    let data = tempfile::tempdir().unwrap();
    init(data.path());
    scenario(data.path());
    on_postgres();
}

fn on_postgres() {
    let Ok(url) = std::env::var("KH_TEST_POSTGRES_URL") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but KH_TEST_POSTGRES_URL is not set: the PostgreSQL variant must run in CI"
        );
        eprintln!(
            "KH_TEST_POSTGRES_URL is not set: the PostgreSQL variant runs under scripts/test"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    init(data.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = rt.block_on(kh_ledger::Store::connect(&url)).unwrap();
    let base = url.rsplit_once('/').unwrap().0.to_string();
    for org in ["Notary", "Bank", "PartyA", "PartyB", "Validator"] {
        let name = format!("kh_cli_{}_{}", org.to_lowercase(), std::process::id());
        rt.block_on(async {
            use sqlx::Executor;
            admin
                .pool()
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
        });
        let path = config(data.path(), org);
        let text = std::fs::read_to_string(&path).unwrap();
        let rewritten: String = text
            .lines()
            .map(|l| {
                if l.starts_with("database_url") {
                    format!("database_url = \"{base}/{name}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, rewritten).unwrap();
    }
    scenario(data.path());
}

fn init(dir: &Path) {
    let init = Command::new(BIN)
        .args([
            "devnet",
            "ledger",
            "--init-only",
            "--data",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
}

fn scenario(dir: &Path) {
    // Every config validates; a wrong one is a usage error naming its key.
    for org in ["Notary", "Bank", "PartyA", "PartyB", "Validator"] {
        let out = Command::new(BIN)
            .args(["ledger", "node", "--check", "--json", "--config"])
            .arg(config(dir, org))
            .output()
            .unwrap();
        assert_eq!(json(&out)["valid"], true);
    }
    let broken = dir.join("broken.toml");
    let text = std::fs::read_to_string(config(dir, "PartyA")).unwrap();
    std::fs::write(
        &broken,
        text.replace("role = \"regular\"", "role = \"boss\""),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["ledger", "node", "--check", "--config"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("role"));
    let _notary = NodeProcess::start(&config(dir, "Notary"), None);
    let _bank = NodeProcess::start(&config(dir, "Bank"), None);
    let mut a = NodeProcess::start(&config(dir, "PartyA"), Some("crash-after-notarise-request"));
    let mut b = NodeProcess::start(&config(dir, "PartyB"), None);
    let _validator = NodeProcess::start(&config(dir, "Validator"), None);
    for node in ["Notary", "Bank", "PartyA", "PartyB", "Validator"] {
        wait_until(node, || {
            cli(dir, node, &["accounts", "list"]).status.success()
        });
    }
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
    json(&cli(
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
    wait_until("the issuance at PartyA", || {
        vault(dir, "PartyA", &alice)["balance"] == 100
    });

    // The payer dies right after its notarisation request went out.
    let pay = Command::new(BIN)
        .args([
            "ledger",
            "--network",
            dir.to_str().unwrap(),
            "--node",
            "PartyA",
            "pay",
            "--amount",
            "60",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    a.wait_for_log("failpoint reached");
    a.kill_9();
    let _ = pay.wait_with_output().unwrap(); // the client lost its node; the flow lives on in the database
    let _a2 = NodeProcess::start(&config(dir, "PartyA"), None);
    wait_until("the payment at PartyB", || {
        cli(dir, "PartyB", &["vault", "--account", &bob, "--json"])
            .status
            .success()
            && vault(dir, "PartyB", &bob)["balance"] == 60
    });
    let alice_vault = vault(dir, "PartyA", &alice);
    assert_eq!(alice_vault["balance"], 40);
    let bob_vault = vault(dir, "PartyB", &bob);
    assert_eq!(
        bob_vault["states"].as_array().unwrap().len(),
        1,
        "no duplicate transaction"
    );
    let tx = bob_vault["states"][0]["tx_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        alice_vault["states"][0]["tx_id"], tx,
        "both sides hold the same transaction"
    );
    // Only the participants (and the notary's uniqueness record, not its vault) know it.
    json(&cli(dir, "PartyA", &["tx", "show", &tx, "--json"]));
    json(&cli(dir, "PartyB", &["tx", "show", &tx, "--json"]));
    for node in ["Bank", "Validator", "Notary"] {
        let out = cli(dir, node, &["tx", "show", &tx, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{node} received the payment");
    }

    // Now the payee dies right after answering the key request.
    b.kill_9();
    // This time the failpoint comes from the node's config file (a copy of its node.toml).
    let with_failpoint = dir.join("nodes").join("PartyB").join("node-failpoint.toml");
    let text = std::fs::read_to_string(config(dir, "PartyB")).unwrap();
    std::fs::write(
        &with_failpoint,
        format!("{text}\nfailpoint = \"crash-after-key-response\"\n"),
    )
    .unwrap();
    let mut b2 = NodeProcess::start(&with_failpoint, None);
    wait_until("PartyB again", || {
        cli(dir, "PartyB", &["accounts", "list"]).status.success()
    });
    let pay = Command::new(BIN)
        .args([
            "ledger",
            "--network",
            dir.to_str().unwrap(),
            "--node",
            "PartyA",
            "pay",
            "--amount",
            "15",
            "--from",
            &alice,
            "--to",
            &format!("PartyB/{bob}"),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    b2.wait_for_log("failpoint reached");
    b2.kill_9();
    // The payment completes only once the payee recorded it: the payee's standby takes over,
    // receives the payment and confirms; then the payer's command returns.
    let _b3 = NodeProcess::start(&config(dir, "PartyB"), None);
    let out = pay.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the payer completes once the payee's standby recorded the payment: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(vault(dir, "PartyB", &bob)["balance"], 75);
    assert_eq!(vault(dir, "PartyA", &alice)["balance"], 25);
}
