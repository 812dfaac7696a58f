//! Cold-standby fencing with node processes (SQLite, and PostgreSQL with KH_TEST_POSTGRES_URL): a second PartyA on the same config is
//! refused while the first lives; a `--standby` PartyA waits without serving anything (the CLI
//! keeps reaching the primary, the standby stays alive, its log says it waits); after the
//! primary is `kill -9`ed, the standby takes over and a payment completes through it.
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
    fn start(config: &Path, standby: bool) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["ledger", "node", "--config", config.to_str().unwrap()]);
        if standby {
            cmd.arg("--standby");
        }
        let mut child = cmd
            .env("RUST_LOG", "info")
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

fn config(dir: &Path, org: &str) -> PathBuf {
    dir.join("nodes").join(org).join("node.toml")
}

fn balance(dir: &Path, node: &str, account: &str) -> Option<u64> {
    let out = cli(dir, node, &["vault", "--account", account, "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()?
        .get("balance")?
        .as_u64()
}

/// On SQLite, then with every node on its own PostgreSQL database when a server is given
/// (scripts/test starts one and sets KH_TEST_POSTGRES_URL).
#[test]
fn standby_waits_while_the_primary_lives_and_takes_over_after_kill_9() {
    let data = tempfile::tempdir().unwrap();
    init(data.path());
    scenario(data.path());
    let Ok(url) = std::env::var("KH_TEST_POSTGRES_URL") else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but KH_TEST_POSTGRES_URL is not set: the PostgreSQL variant must run in CI"
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
        let name = format!("kh_fence_{}_{}", org.to_lowercase(), std::process::id());
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
        let rewritten: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("database_url") {
                    format!("database_url = \"{base}/{name}\"")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&path, rewritten.join("\n")).unwrap();
    }
    scenario(data.path());
}

fn init(dir: &Path) {
    let init = Command::new(BIN)
        .args(["devnet", "ledger", "--init-only", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(init.status.success());
}

fn scenario(dir: &Path) {
    let _notary = NodeProcess::start(&config(dir, "Notary"), false);
    let _bank = NodeProcess::start(&config(dir, "Bank"), false);
    let mut primary = NodeProcess::start(&config(dir, "PartyA"), false);
    let _b = NodeProcess::start(&config(dir, "PartyB"), false);
    let _validator = NodeProcess::start(&config(dir, "Validator"), false);
    let started = [&_notary, &_bank, &primary, &_b, &_validator];
    for (node, process) in ["Notary", "Bank", "PartyA", "PartyB", "Validator"]
        .into_iter()
        .zip(started)
    {
        let deadline = Instant::now() + WAIT;
        while !cli(dir, node, &["accounts", "list"]).status.success() {
            if Instant::now() >= deadline {
                let log: Vec<String> = process.log.try_iter().collect();
                panic!(
                    "{node} did not answer within {WAIT:?}; its log:\n{}",
                    log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // A second PartyA without --standby is refused and exits.
    let refused = Command::new(BIN)
        .args(["ledger", "node", "--config"])
        .arg(config(dir, "PartyA"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("held by another live node"), "{err}");

    // A standby waits: it stays alive and serves nothing; the CLI still reaches the primary.
    let mut standby = NodeProcess::start(&config(dir, "PartyA"), true);
    standby.wait_for_log("waiting for it");
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
        balance(dir, "PartyA", &alice) == Some(100)
    });
    assert!(
        standby.child.try_wait().unwrap().is_none(),
        "the standby exited while the primary lives"
    );
    assert!(
        standby.log.try_iter().all(|l| !l.contains("took over")),
        "the standby started while the primary lives"
    );

    // The primary dies; the standby takes over and a payment goes through it.
    primary.kill_9();
    standby.wait_for_log("standby took over");
    wait_until("the standby's RPC", || {
        cli(dir, "PartyA", &["accounts", "list"]).status.success()
    });
    assert_eq!(balance(dir, "PartyA", &alice), Some(100));
    json(&cli(
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
    wait_until("the payment at PartyB", || {
        balance(dir, "PartyB", &bob) == Some(60)
    });
    assert_eq!(balance(dir, "PartyA", &alice), Some(40));
}
