//! Acceptance: ethers.js (a client kakehashi did not write) against a running
//! `kakehashi devnet evm` process: deploy the ERC-721 from the committed artifact, mint,
//! transfer, read the events, and verify eth_getProof with an independent MPT library
//! (`@ethereumjs/trie`). The JavaScript side is `contracts/e2e/devnet.test.mjs`.
//! Needs `npm ci --prefix contracts` (scripts/test and .ci/run do it); without it the test fails.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `eth_blockNumber` over plain HTTP/1.1: true when the answer carries a result.
fn rpc_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}"#;
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("\"result\"")
}

#[test]
fn ethers_deploys_mints_transfers_and_verifies_proofs_against_the_devnet() {
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    assert!(
        contracts.join("node_modules/ethers").is_dir()
            && contracts.join("node_modules/@ethereumjs/trie").is_dir(),
        "contracts/node_modules is missing: run `npm ci --prefix contracts` first"
    );
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("devnet.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // Port 0: the devnet binds a free loopback port and prints it in its banner, so parallel
    // tests never race for a port.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args([
            "devnet",
            "evm",
            "--instant",
            "--rpc",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data.path().join("chain"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _devnet = KillOnDrop(child);
    let devnet_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // The banner's "RPC: http://ADDR" line is printed once the server listens.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.strip_prefix("RPC: ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "the devnet printed no RPC URL within 60 s; its log:\n{}",
                devnet_log()
            )
        });
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    assert!(addr.ip().is_loopback(), "{url}");
    assert!(
        rpc_answers(addr),
        "the devnet announced {url} but does not answer eth_blockNumber; its log:\n{}",
        devnet_log()
    );

    let out = Command::new("node")
        .args(["--test", "e2e/"])
        .current_dir(&contracts)
        .env("KH_RPC_URL", &url)
        .output()
        .expect("node must be installed to run the ethers end-to-end test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}\n--- devnet log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        devnet_log()
    );
    assert!(
        stdout.contains("# pass 1") && stdout.contains("# fail 0"),
        "{stdout}"
    );
}
