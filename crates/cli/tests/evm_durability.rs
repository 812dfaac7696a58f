//! `kill -9` of `kakehashi devnet evm --data DIR` under load never changes a block a client has
//! seen: every block is on disk before it is announced or served. Each round starts the devnet
//! on the same data directory, sends transfers from one thread while another records the hash
//! of every block it is served, SIGKILLs the process in the middle of the load, and after the
//! next start every recorded block must have the same hash. Rounds alternate instant mode (a
//! block per transaction) and 50 ms blocks; counts and waits are bounded.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_kakehashi");
const WAIT: Duration = Duration::from_secs(60);
/// Blocks served before the kill, per round.
const BLOCKS_PER_ROUND: u64 = 40;
const MAX_TXS_PER_ROUND: u64 = 3_000;

struct Devnet {
    child: Child,
    addr: SocketAddr,
}

impl Devnet {
    fn start(data: &Path, mode: &[&str], log: &Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["devnet", "evm", "--rpc", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(mode)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("RPC: http://") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("the devnet printed no RPC address")
            .parse()
            .unwrap();
        Self { child, addr }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call over plain HTTP/1.1; `Err` when the connection fails or the answer is an
/// error.
fn rpc(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (_, body) = out.split_once("\r\n\r\n").ok_or("no HTTP body")?;
    let v: Value = serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))?;
    match v.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(v.to_string()),
    }
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

fn transfer(signer: &PrivateKeySigner, nonce: u64) -> String {
    let tx = TxEip1559 {
        chain_id: 1337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x77)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    let env: TxEnvelope = tx.into_signed(sig).into();
    alloy_primitives::hex::encode_prefixed(env.encoded_2718())
}

/// Runs one round: load, record every served block, kill -9 mid-load. Returns the blocks seen.
fn round(data: &Path, mode: &[&str], log: &Path, seen: &mut BTreeMap<u64, B256>) {
    let devnet = Devnet::start(data, mode, log);
    let addr = devnet.addr;
    // Everything seen before must still be there, unchanged.
    check(addr, seen);

    let accounts = kh_evm_chain::dev_accounts(kh_evm_chain::TEST_MNEMONIC, 1).unwrap();
    let signer = PrivateKeySigner::from_bytes(&accounts[0].private_key).unwrap();
    let nonce = hex_u64(
        &rpc(
            addr,
            "eth_getTransactionCount",
            json!([signer.address(), "latest"]),
        )
        .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for n in nonce..nonce + MAX_TXS_PER_ROUND {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if rpc(
                    addr,
                    "eth_sendRawTransaction",
                    json!([transfer(&signer, n)]),
                )
                .is_err()
                {
                    return; // killed
                }
            }
        })
    };
    // Record every block as it is served, from the head down to what was seen before.
    let recorded = Arc::new(Mutex::new(BTreeMap::new()));
    let start_head = seen.keys().next_back().copied().unwrap_or(0);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the devnet made too few blocks");
        let head = rpc(addr, "eth_getBlockByNumber", json!(["latest", false])).unwrap();
        let number = hex_u64(&head["number"]);
        let hash: B256 = head["hash"].as_str().unwrap().parse().unwrap();
        recorded.lock().unwrap().insert(number, hash);
        if number >= start_head + BLOCKS_PER_ROUND {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Kill while transactions are still arriving.
    devnet.kill_9();
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let recorded = std::mem::take(&mut *recorded.lock().unwrap());
    for (n, h) in recorded {
        if let Some(before) = seen.insert(n, h) {
            assert_eq!(before, h, "block {n} changed between runs");
        }
    }
}

/// Every block in `seen` is served with the same hash, and the head is at least the highest.
fn check(addr: SocketAddr, seen: &BTreeMap<u64, B256>) {
    let head = hex_u64(&rpc(addr, "eth_blockNumber", json!([])).unwrap());
    if let Some(max) = seen.keys().next_back() {
        assert!(head >= *max, "head {head} is below the seen block {max}");
    }
    for (n, h) in seen {
        let block = rpc(
            addr,
            "eth_getBlockByNumber",
            json!([format!("0x{n:x}"), false]),
        )
        .unwrap();
        let got: B256 = block["hash"].as_str().unwrap().parse().unwrap();
        assert_eq!(got, *h, "block {n} changed after kill -9 and restart");
    }
}

#[test]
fn kill_9_under_load_never_changes_a_served_block() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chain");
    let log = dir.path().join("devnet.log");
    let mut seen = BTreeMap::new();
    let modes: [&[&str]; 3] = [&["--instant"], &["--block-time", "50"], &["--instant"]];
    for mode in modes {
        round(&data, mode, &log, &mut seen);
    }
    assert!(seen.len() as u64 >= BLOCKS_PER_ROUND, "{seen:?}");
    let devnet = Devnet::start(&data, &["--block-time", "1000"], &log);
    check(devnet.addr, &seen);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panicked"), "{text}");
}
