//! Shared by the relayer's ledger tests: the devnet ledger network (`kakehashi devnet ledger
//! --init-only`), each node its own `kakehashi ledger node` process, an RPC user for the
//! relayer, and the ledger CLI.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kh_ledger_node::NetworkDirectory;
use std::collections::BTreeMap;

use kh_relayer::ledger::LedgerEndpoint;
use kh_relayer::ledger_ibc::{LedgerEnd, host_events};

pub(crate) const LEDGER_BIN: &str = env!("CARGO_BIN_EXE_kakehashi");
pub(crate) const NODES: [&str; 5] = ["Notary", "Bank", "PartyA", "PartyB", "Validator"];

/// A node process, killed when dropped.
pub(crate) struct NodeProcess(pub(crate) Child);

impl NodeProcess {
    pub(crate) fn start(dir: &Path, org: &str) -> Self {
        let mut child = Command::new(LEDGER_BIN)
            .args(["ledger", "node", "--config"])
            .arg(node_config(dir, org))
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

    pub(crate) fn kill_9(&mut self) {
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

pub(crate) fn node_config(dir: &Path, org: &str) -> PathBuf {
    dir.join("nodes").join(org).join("node.toml")
}

/// `kakehashi ledger --network DIR --node NODE ARGS…`.
pub(crate) fn ledger_cli(dir: &Path, node: &str, args: &[&str]) -> Output {
    Command::new(LEDGER_BIN)
        .args(["ledger", "--network", dir.to_str().unwrap(), "--node", node])
        .args(args)
        .output()
        .unwrap()
}

/// The JSON a successful command printed.
pub(crate) fn json_of(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running devnet ledger network with an RPC user `user` on PartyA.
pub(crate) struct LedgerNet {
    pub(crate) dir: PathBuf,
    pub(crate) nodes: Vec<(String, NodeProcess)>,
}

impl LedgerNet {
    /// Writes the network into `dir`, adds `user` with `permissions` on PartyA and starts
    /// every node; returns once each answers.
    /// `init_args` go to `devnet ledger --init-only` (e.g. `--lcp-attestation-root FILE`).
    pub(crate) fn start(dir: &Path, user: &str, permissions: &str, init_args: &[&str]) -> Self {
        let init = Command::new(LEDGER_BIN)
            .args(["devnet", "ledger", "--init-only", "--data"])
            .arg(dir)
            .args(init_args)
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        json_of(&ledger_cli(
            dir,
            "PartyA",
            &[
                "users",
                "add",
                "--name",
                user,
                "--permissions",
                permissions,
                "--json",
            ],
        ));
        let nodes = NODES
            .iter()
            .map(|n| (n.to_string(), NodeProcess::start(dir, n)))
            .collect();
        for node in NODES {
            wait_until(node, Duration::from_secs(60), || {
                ledger_cli(dir, node, &["accounts", "list"])
                    .status
                    .success()
            });
        }
        LedgerNet {
            dir: dir.to_path_buf(),
            nodes,
        }
    }

    /// The endpoint of PartyA for RPC user `user`.
    pub(crate) fn endpoint(&self, user: &str) -> LedgerEndpoint {
        let (network, root_pem) = NetworkDirectory::read(&self.dir).unwrap();
        let (_, party_a) = network.node("PartyA").unwrap();
        LedgerEndpoint {
            addr: party_a.rpc,
            identity: NetworkDirectory::client_identity(&self.dir, "PartyA", user).unwrap(),
            root_pem,
        }
    }

    /// Runs flow `name` on `node` with `args` (JSON) and returns its result.
    pub(crate) fn flow(
        &self,
        node: &str,
        name: &str,
        args: &serde_json::Value,
    ) -> serde_json::Value {
        json_of(&ledger_cli(
            &self.dir,
            node,
            &["flow", "start", name, "--args", &args.to_string(), "--json"],
        ))
    }
}

/// How often each sequence appears in the ledger's recorded `kind` events whose attribute `key`
/// is `channel` (the node's history read up to the first quiet moment).
pub(crate) async fn ledger_counts(
    end: &LedgerEnd,
    kind: &str,
    key: &str,
    channel: &str,
) -> BTreeMap<u64, u32> {
    let mut transactions = host_events(end.clone(), 0, Duration::from_secs(1));
    let mut out = BTreeMap::new();
    while let Ok(Some((_, hs))) =
        tokio::time::timeout(Duration::from_millis(800), transactions.recv()).await
    {
        for h in hs {
            if h.kind == kind && h.attribute(key) == Some(channel) {
                let seq: u64 = h.attribute("packet_sequence").unwrap().parse().unwrap();
                *out.entry(seq).or_insert(0) += 1;
            }
        }
    }
    out
}
