//! Atomic app storage under kill -9: PartyA's node process starts shared-record flows (the app
//! stages a row in its own `record_started` table with the flow's first checkpoint, and writes
//! `record_latest` in the transaction that records the result) while the test kills it with
//! SIGKILL at an arbitrary moment. Read straight from PartyA's database afterwards, every flow
//! checkpoint has its app row and every app row its checkpoint — neither or both, never one —
//! and a completed flow always has its record in `record_latest`. A standby process on the same
//! database then finishes every flow in flight.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;

const BIN: &str = env!("CARGO_BIN_EXE_kakehashi");
const WAIT: Duration = Duration::from_secs(60);

struct NodeProcess(Child);

impl NodeProcess {
    fn start(dir: &Path, org: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["ledger", "node", "--config"])
            .arg(dir.join("nodes").join(org).join("node.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{line}]");
            }
        });
        Self(child)
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

fn cli(dir: &Path, node: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ledger", "--network", dir.to_str().unwrap(), "--node", node])
        .args(args)
        .output()
        .unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// (flow ids of record.create checkpoints, flow ids in record_started, completed flows whose
/// record is missing from record_latest, record_latest rows of flows not completed).
async fn read_state(url: &str) -> (BTreeSet<String>, BTreeSet<String>, i64, i64) {
    let store = kh_ledger::Store::connect(url).await.unwrap();
    let pool = store.pool();
    let flows = sqlx::query("SELECT id FROM flow_checkpoints WHERE name = 'record.create'")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect();
    let started = sqlx::query("SELECT flow_id FROM record_started")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect();
    let count = |sql: &'static str| async move {
        sqlx::query(sql)
            .fetch_one(pool)
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap()
    };
    let completed_without_record = count(
        "SELECT COUNT(*) FROM record_started s JOIN flow_checkpoints f ON f.id = s.flow_id
         WHERE f.status IN ('completed', 'finalising') AND NOT EXISTS (SELECT 1 FROM record_latest l WHERE l.record_id = s.record_id)",
    )
    .await;
    let record_without_completion = count(
        "SELECT COUNT(*) FROM record_latest l JOIN record_started s ON s.record_id = l.record_id
         JOIN flow_checkpoints f ON f.id = s.flow_id WHERE f.status NOT IN ('completed', 'finalising')",
    )
    .await;
    store.pool().close().await;
    (
        flows,
        started,
        completed_without_record,
        record_without_completion,
    )
}

#[test]
fn kill_9_never_separates_an_app_write_from_its_checkpoint() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let init = Command::new(BIN)
        .args(["devnet", "ledger", "--init-only", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(init.status.success());
    let _notary = NodeProcess::start(dir, "Notary");
    let _b = NodeProcess::start(dir, "PartyB");
    let mut a = NodeProcess::start(dir, "PartyA");
    for node in ["Notary", "PartyA", "PartyB"] {
        wait_until(node, || cli(dir, node, &["flow", "list"]).status.success());
    }

    // Clients keep starting flows (without waiting for them) until the node is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let starters: Vec<_> = (0..3)
        .map(|i| {
            let (stop, dir) = (stop.clone(), dir.to_path_buf());
            std::thread::spawn(move || {
                let mut started = 0u32;
                while !stop.load(Ordering::SeqCst) && started < 200 {
                    let args = format!(r#"{{"counterparty":"PartyB","text":"t{i}-{started}"}}"#);
                    let out = cli(
                        &dir,
                        "PartyA",
                        &[
                            "--no-wait",
                            "flow",
                            "start",
                            "record.create",
                            "--args",
                            &args,
                        ],
                    );
                    if out.status.success() {
                        started += 1;
                    }
                }
                started
            })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    let url = format!(
        "sqlite:{}",
        dir.join("nodes").join("PartyA").join("node.db").display()
    );
    // Kill once a good number of flows are under way, in the middle of the load.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let (flows, ..) = rt.block_on(read_state(&url));
        if flows.len() >= 12 {
            break;
        }
        assert!(Instant::now() < deadline, "flows never started");
    }
    a.kill_9();
    stop.store(true, Ordering::SeqCst);
    let started: u32 = starters.into_iter().map(|t| t.join().unwrap()).sum();

    let (flows, app_rows, completed_without_record, record_without_completion) =
        rt.block_on(read_state(&url));
    assert!(flows.len() >= 12 && started as usize >= flows.len() - 3);
    assert_eq!(
        flows, app_rows,
        "every checkpoint has its app row and every app row its checkpoint"
    );
    assert_eq!(completed_without_record, 0);
    assert_eq!(record_without_completion, 0);

    // The standby finishes whatever was in flight.
    let _a2 = NodeProcess::start(dir, "PartyA");
    wait_until("PartyA's standby", || {
        cli(dir, "PartyA", &["flow", "list"]).status.success()
    });
    for flow in &flows {
        let out = cli(dir, "PartyA", &["flow", "wait", flow, "--json"]);
        assert!(
            out.status.success(),
            "flow {flow}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (after, app_rows, completed_without_record, _) = rt.block_on(read_state(&url));
    assert_eq!(after, app_rows);
    assert_eq!(completed_without_record, 0);
    eprintln!(
        "{} flows started, {} checkpointed before the kill, all completed by the standby",
        started,
        flows.len()
    );
}
