//! Issue 12's acceptance run, every component its own process: the EVM devnet
//! (`kakehashi devnet evm`, IBC stack and LCP client from `kakehashi ibc deploy
//! --lcp-root-der-hex`), the ledger network (`kakehashi ledger node` ×5), the LCP service
//! (`kakehashi lcp service start`) and two relayers (`kakehashi relayer start`) on one path and
//! one lock file, set up with `kakehashi relayer tx clients|connection|channel`.
//!
//! 100 pings each way with their acknowledgements, and one ping that times out, while:
//! the active relayer is killed (the standby takes over); the LCP service is killed and started
//! again (its ELCs restored from its home); the EVM endpoint the relayers use dies (they fail
//! over to the second, and their WebSocket doorbell with it); the ledger node they use is
//! killed and started again. Every packet is received once and acknowledged (or timed out)
//! once, checked from both chains' events; `relayer query unrelayed` ends empty.
//!
//! The EVM links are TLS with client certificates, as every relayer link (R10): the devnet
//! serves JSON-RPC over TLS and requires a certificate of the chain's CA; `ibc deploy` and the
//! relayers reach it over https:// and wss:// with theirs (the killable endpoint is a TCP
//! proxy, so TLS passes through it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/evm_ibc.rs"]
mod evm_ibc;
#[path = "support/ledger_net.rs"]
mod ledger_net;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use evm_ibc::handler_sequences;
use kh_contracts::{IBCChannelPacket as P, PingApp};
use kh_relayer::config::EvmTlsConfig;
use kh_relayer::evm::{EvmTls, FailoverRpc, SubmitPolicy, Submitter};
use kh_relayer::ledger_ibc::LedgerEnd;
use ledger_net::{LEDGER_BIN as BIN, LedgerNet, NodeProcess, json_of, ledger_counts};
use serde_json::{Value, json};

const CHAIN_ID: u64 = 1337;
const N: u64 = 100;

/// A child process, killed when dropped; its stderr goes to `log`.
struct Proc(Child);

impl Proc {
    fn spawn(args: &[&str], log: &Path) -> (Self, std::process::ChildStdout) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        (Proc(child), out)
    }

    fn kill_9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_9();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The EVM chain's CA and certificates (PEM files in `dir`): the devnet's (`node.pem`,
/// `node.key`) and the relayers' and deployer's client certificate (`client.pem`,
/// `client.key`), both of `ca.pem`.
fn evm_pki(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ca = kh_ledger_node::NetworkCa::generate("evm").unwrap();
    std::fs::write(dir.join("ca.pem"), ca.root_pem()).unwrap();
    for (name, label) in [("node", "devnet rpc"), ("client", "relayer")] {
        let identity = ca.issue(label).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), &identity.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), &identity.key_pem).unwrap();
    }
}

fn path_str(p: std::path::PathBuf) -> String {
    p.to_str().unwrap().to_string()
}

/// The EVM devnet process (JSON-RPC over TLS, client certificates of `pki`'s CA required):
/// its RPC address and dev account keys.
fn start_devnet(log: &Path, pki: &Path) -> (Proc, SocketAddr, Vec<B256>) {
    let (p, out) = Proc::spawn(
        &[
            "devnet",
            "evm",
            "--rpc",
            "127.0.0.1:0",
            "--rpc-tls-cert",
            &path_str(pki.join("node.pem")),
            "--rpc-tls-key",
            &path_str(pki.join("node.key")),
            "--rpc-tls-client-ca",
            &path_str(pki.join("ca.pem")),
            "--block-time",
            "250",
            "--chain-id",
            &CHAIN_ID.to_string(),
            "--accounts",
            "4",
        ],
        log,
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut addr = None;
        let mut keys = vec![];
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("RPC: https://") {
                addr = Some(a.trim().to_string());
            }
            if let Some((_, k)) = line.split_once(" key ") {
                keys.push(k.trim().to_string());
                if keys.len() == 4 {
                    let _ = tx.send((addr.clone().unwrap(), keys.clone()));
                }
            }
        }
    });
    let (addr, keys) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    (
        p,
        addr.parse().unwrap(),
        keys.iter().map(|k| k.parse().unwrap()).collect(),
    )
}

/// The LCP service process on `listen` (the config's address is set to it).
fn start_lcp(dir: &Path, log: &Path) -> Proc {
    let (p, out) = Proc::spawn(
        &[
            "lcp",
            "service",
            "start",
            "--config",
            dir.join("lcp.toml").to_str().unwrap(),
        ],
        log,
    );
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "LCP service: {line}");
    p
}

fn run(args: &[&str]) -> Value {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "kakehashi {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Sorted sequences of the handler's `E` events (none while the chain does not answer).
async fn sequences<E: SolEvent>(
    rpc: &FailoverRpc,
    handler: Address,
    seq: impl Fn(&E) -> u64,
) -> Vec<u64> {
    handler_sequences(rpc, handler, 0, seq)
        .await
        .unwrap_or_default()
}

/// The relayer's `/health` answer (empty while it does not answer).
async fn health(addr: SocketAddr) -> String {
    http_get(addr, "/health").await
}

/// The answer of the relayer's metrics server to `GET path` (empty while it does not answer).
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if s.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_deliver_everything_once_through_faults() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let logs = w.join("logs");
    std::fs::create_dir_all(&logs).unwrap();

    // LCP: a node directory, a test PKI, a fixed address (it restarts on it).
    let lcp_dir = w.join("lcp");
    run(&["lcp", "service", "init", "--dir", lcp_dir.to_str().unwrap()]);
    let lcp_addr = free_addr();
    let config = std::fs::read_to_string(lcp_dir.join("lcp.toml")).unwrap();
    let config = config
        .lines()
        .map(|l| {
            if l.starts_with("listen") {
                format!("listen = \"{lcp_addr}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(lcp_dir.join("lcp.toml"), config).unwrap();
    let mut lcp = start_lcp(&lcp_dir, &logs.join("lcp.log"));
    let info = run(&[
        "lcp",
        "enclave",
        "info",
        "--home",
        lcp_dir.join("lcp-home").to_str().unwrap(),
    ]);
    let root_hex = info["attestation_root_der_hex"]
        .as_str()
        .unwrap()
        .to_string();
    let root_file = w.join("lcp-root.der");
    std::fs::write(&root_file, hex::decode(&root_hex).unwrap()).unwrap();

    // The EVM devnet, the IBC stack and the LCP client on it; a proxy in front of its RPC (the
    // endpoint that will die).
    let pki = w.join("evm-tls");
    evm_pki(&pki);
    let (_devnet, evm_addr, keys) = start_devnet(&logs.join("devnet.log"), &pki);
    let direct = format!("https://{evm_addr}");
    let deployed = {
        let out = Command::new(BIN)
            .args([
                "ibc",
                "deploy",
                "--rpc",
                &direct,
                "--rpc-tls-ca",
                &path_str(pki.join("ca.pem")),
                "--rpc-tls-cert",
                &path_str(pki.join("client.pem")),
                "--rpc-tls-key",
                &path_str(pki.join("client.key")),
                "--lcp-root-der-hex",
                &root_hex,
            ])
            .env("KAKEHASHI_EVM_KEY", keys[0].to_string())
            .output()
            .unwrap();
        json_of(&out)
    };
    let handler: Address = deployed["handler"].as_str().unwrap().parse().unwrap();
    let app: Address = deployed["app"].as_str().unwrap().parse().unwrap();
    let (proxy_addr, kill_proxy) = kh_test_support::net::proxy(evm_addr).await;

    // The ledger network with the LCP root, its IBC host, the relayer's RPC user.
    let ledger_dir = w.join("ledger");
    let mut net = LedgerNet::start(
        &ledger_dir,
        "relayer",
        "flows",
        &["--lcp-attestation-root", root_file.to_str().unwrap()],
    );
    net.flow(
        "PartyA",
        "ibc.host.genesis",
        &json!({"operators": ["PartyA", "PartyB"]}),
    );

    // The relayers' configuration: their key in a keystore, two EVM endpoints.
    let mut rng = rand::rngs::OsRng;
    PrivateKeySigner::encrypt_keystore(w, &mut rng, keys[1], "pass", Some("relayer-key.json"))
        .unwrap();
    let party_a_rpc = net.endpoint("relayer").addr;
    let node_dir = ledger_dir.join("nodes").join("PartyA");
    let config = |metrics: &str| {
        format!(
            r#"
[evm]
chain_id = {CHAIN_ID}
rpc = ["https://{proxy_addr}", "{direct}"]
ws = ["wss://{proxy_addr}", "wss://{evm_addr}"]
handler = "{handler}"
confirmations = 1
request_timeout = "3s"
# A debug-built devnet estimates a 50-message multicall slower than the 3 s above.
max_messages_per_tx = 20

[evm.tls]
ca = "{evm_ca}"
cert = "{evm_cert}"
key = "{evm_key}"

[evm.signer]
kind = "keystore"
path = "{keystore}"
password_env = "KH_TEST_RELAYER_PASSWORD"

[ledger]
rpc = "{party_a_rpc}"
cert = "{cert}"
key = "{key}"
root_cert = "{root}"
flow_timeout = "30s"

[lcp]
addr = "{lcp_addr}"
cert = "{lcp_cert}"
key = "{lcp_key}"
root_cert = "{lcp_root}"

[paths.p]
state = "{state}"

[relay]
reconcile_every = "1s"

[lease]
kind = "file"
path = "{lock}"
poll = "300ms"

[metrics]
listen = "{metrics}"
"#,
            keystore = w.join("relayer-key.json").display(),
            evm_ca = pki.join("ca.pem").display(),
            evm_cert = pki.join("client.pem").display(),
            evm_key = pki.join("client.key").display(),
            cert = node_dir.join("rpc-relayer.pem").display(),
            key = node_dir.join("rpc-relayer.key").display(),
            root = ledger_dir.join("root.pem").display(),
            lcp_cert = lcp_dir.join("tls/relayer.pem").display(),
            lcp_key = lcp_dir.join("tls/relayer-key.pem").display(),
            lcp_root = lcp_dir.join("tls/root.pem").display(),
            state = w.join("path-p.json").display(),
            lock = w.join("relayer.lock").display(),
        )
    };
    let (metrics_a, metrics_b) = (free_addr(), free_addr());
    std::fs::write(w.join("relayer-a.toml"), config(&metrics_a.to_string())).unwrap();
    std::fs::write(w.join("relayer-b.toml"), config(&metrics_b.to_string())).unwrap();
    let relayer = |args: &[&str], cfg: &str| {
        let out = Command::new(BIN)
            .args(["relayer"])
            .args(args)
            .args(["p", "--config", w.join(cfg).to_str().unwrap()])
            .env("KH_TEST_RELAYER_PASSWORD", "pass")
            .output()
            .unwrap();
        json_of(&out)
    };
    relayer(&["tx", "clients"], "relayer-a.toml");
    relayer(&["tx", "connection"], "relayer-a.toml");
    let state = relayer(&["tx", "channel"], "relayer-a.toml");
    let chan_evm = state["evm"]["channel_id"].as_str().unwrap().to_string();
    let chan_ledger = state["ledger"]["channel_id"].as_str().unwrap().to_string();

    // The test's own access to both chains.
    let tls = EvmTls::load(&EvmTlsConfig {
        ca: pki.join("ca.pem"),
        cert: Some(pki.join("client.pem")),
        key: Some(pki.join("client.key")),
    })
    .unwrap();
    let rpc = Arc::new(
        FailoverRpc::with_tls(
            CHAIN_ID,
            std::slice::from_ref(&direct),
            Duration::from_secs(10),
            Some(&tls),
        )
        .unwrap(),
    );
    let pinger = Arc::new(Submitter::new(
        rpc.clone(),
        PrivateKeySigner::from_bytes(&keys[0]).unwrap(),
        SubmitPolicy::default(),
    ));
    let ledger = LedgerEnd::new(net.endpoint("relayer"), "");
    let ping = move |data: String, timeout_height: u64| {
        let pinger = pinger.clone();
        let chan = chan_evm.clone();
        async move {
            pinger
                .submit(
                    app,
                    PingApp::pingCall {
                        channelId: chan,
                        data: data.into_bytes().into(),
                        timeoutHeight: PingApp::Height {
                            revisionNumber: 0,
                            revisionHeight: timeout_height,
                        },
                        timeoutTimestamp: 0,
                    }
                    .abi_encode()
                    .into(),
                )
                .await
                .unwrap();
        }
    };
    // Sequence 1 from the EVM times out on the ledger: sent before any relayer runs, with the
    // ledger's next height as its timeout.
    let next = ledger.latest().await.unwrap().height + 1;
    ping("too late".into(), next).await;

    // Relayer A takes the lease; B stands by.
    let start_relayer = |cfg: &str, log: &str| {
        let log = std::fs::File::create(logs.join(log)).unwrap();
        Command::new(BIN)
            .args([
                "relayer",
                "start",
                "p",
                "--config",
                w.join(cfg).to_str().unwrap(),
            ])
            .env("KH_TEST_RELAYER_PASSWORD", "pass")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map(Proc)
            .unwrap()
    };
    let mut relayer_a = start_relayer("relayer-a.toml", "relayer-a.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health(metrics_a).await.contains("\"active\"") {
        assert!(
            Instant::now() < deadline,
            "relayer A not active: {}",
            tail(&logs.join("relayer-a.log"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _relayer_b = start_relayer("relayer-b.toml", "relayer-b.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !health(metrics_b).await.contains("\"standby\"") {
        assert!(
            Instant::now() < deadline,
            "relayer B not standing by: {}",
            tail(&logs.join("relayer-b.log"))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Traffic: N pings each way (the ledger's in flows of 10).
    let evm_pings = {
        let ping = ping.clone();
        tokio::spawn(async move {
            for i in 0..N {
                ping(format!("evm-{i}"), 1_000_000).await;
            }
        })
    };
    for i in 0..N / 10 {
        net.flow(
            "PartyA",
            "ibc.ping.send",
            &json!({"channel": chan_ledger, "data": format!("ledger-{i}"), "timeout_height": 1_000_000, "count": 10}),
        );
    }

    // Faults, each once the traffic has moved on.
    let acked = || sequences::<P::AcknowledgePacket>(&rpc, handler, |e| e.sequence);
    let wait_acks = |n: usize, what: &'static str| {
        let logs = logs.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(180);
            while acked().await.len() < n {
                assert!(
                    Instant::now() < deadline,
                    "{what}: fewer than {n} acks; relayer logs:\n{}\n---\n{}",
                    tail(&logs.join("relayer-a.log")),
                    tail(&logs.join("relayer-b.log"))
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    wait_acks(15, "before killing relayer A").await;
    relayer_a.kill_9();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !health(metrics_b).await.contains("\"active\"") {
        assert!(
            Instant::now() < deadline,
            "B did not take over: {}",
            tail(&logs.join("relayer-b.log"))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_acks(35, "after the takeover").await;
    lcp.kill_9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _lcp = start_lcp(&lcp_dir, &logs.join("lcp.log"));
    wait_acks(55, "after the LCP restart").await;
    kill_proxy.send(true).unwrap();
    wait_acks(70, "after the EVM endpoint died").await;
    evm_pings.await.unwrap();
    let party_a = net.nodes.iter_mut().find(|(n, _)| n == "PartyA").unwrap();
    party_a.1.kill_9();
    party_a.1 = NodeProcess::start(&ledger_dir, "PartyA");
    wait_acks(N as usize, "after the ledger node restart").await;

    // Everything once: the EVM's packets 2..=N+1 received on the ledger and acknowledged on the
    // EVM, packet 1 timed out; the ledger's N packets received on the EVM and acknowledged on
    // the ledger.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let recv_evm = sequences::<P::RecvPacket>(&rpc, handler, |e| e.sequence).await;
        let acked_evm = acked().await;
        let timed_out = sequences::<P::TimeoutPacket>(&rpc, handler, |e| e.sequence).await;
        let acked_ledger = ledger_counts(
            &ledger,
            "acknowledge_packet",
            "packet_src_channel",
            &chan_ledger,
        )
        .await;
        if recv_evm.len() as u64 == N
            && acked_evm.len() as u64 == N
            && timed_out.len() == 1
            && acked_ledger.len() as u64 == N
        {
            assert_eq!(recv_evm, (1..=N).collect::<Vec<_>>());
            assert_eq!(acked_evm, (2..=N + 1).collect::<Vec<_>>());
            assert_eq!(timed_out, vec![1]);
            assert!(acked_ledger.values().all(|c| *c == 1), "{acked_ledger:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all relayed: EVM received {}, acked {}, timed out {timed_out:?}; ledger acked {}\n{}",
            recv_evm.len(),
            acked_evm.len(),
            acked_ledger.len(),
            tail(&logs.join("relayer-b.log"))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recv_ledger =
        ledger_counts(&ledger, "recv_packet", "packet_dst_channel", &chan_ledger).await;
    assert_eq!(
        recv_ledger.keys().copied().collect::<Vec<_>>(),
        (2..=N + 1).collect::<Vec<_>>()
    );
    assert!(recv_ledger.values().all(|c| *c == 1), "{recv_ledger:?}");
    let unrelayed = relayer(&["query", "unrelayed"], "relayer-b.toml");
    assert_eq!(unrelayed, json!({"evm_to_ledger": [], "ledger_to_evm": []}));

    // What the active relayer reports to Prometheus after its share of the traffic: relay
    // hops and LCP calls observed, both chains' heights seen.
    let metrics = http_get(metrics_b, "/metrics").await;
    let count = |series: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    };
    // Hops in either direction: which directions still had work when B took over depends on
    // timing (A may have finished the ledger-bound work before it was killed).
    let hops = count("kh_relayer_hop_latency_seconds_count{direction=\"evm->ledger\"}")
        + count("kh_relayer_hop_latency_seconds_count{direction=\"ledger->evm\"}");
    assert!(hops > 0, "no relay hop in\n{metrics}");
    for series in [
        "kh_relayer_lcp_call_seconds_count{method=\"UpdateClient\"}",
        "kh_relayer_lcp_call_seconds_count{method=\"VerifyMembership\"}",
        "kh_relayer_chain_height{chain=\"evm\"}",
        "kh_relayer_chain_height{chain=\"ledger\"}",
        // The proxy it used died under it.
        "kh_relayer_rpc_failovers_total{chain=\"evm\"}",
    ] {
        assert!(count(series) > 0, "{series} in\n{metrics}");
    }
    // The relay's checkpoint is in the shared state file (where relayer B took up A's work, and
    // where a restart takes the chains up again), past the channel's opening.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("path-p.json")).unwrap()).unwrap();
    let from = state["evm_from_block"].as_u64().unwrap();
    assert!(
        state["resume"]["evm_block"].as_u64().unwrap_or(0) > from,
        "{state}"
    );
    assert!(
        state["resume"]["ledger_cursor"].as_u64().unwrap_or(0) > 0,
        "{state}"
    );
}
