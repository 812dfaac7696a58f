//! Acceptance: ethers.js (a client kakehashi did not write) against a running
//! `kakehashi devnet evm` process: deploy the ERC-721 from the committed artifact, mint,
//! transfer, read the events, and verify eth_getProof with an independent MPT library.
//! Needs `npm ci --prefix contracts` (scripts/test and .ci/run do it).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rpc_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
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
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("\"result\"")
}

#[test]
fn ethers_deploys_mints_transfers_and_verifies_proofs_against_the_devnet() {
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    assert!(
        contracts.join("node_modules/ethers").exists(),
        "contracts/node_modules is missing: run `npm ci --prefix contracts` first"
    );
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let _devnet = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_kakehashi"))
            .args([
                "devnet",
                "evm",
                "--instant",
                "--rpc",
                &addr.to_string(),
                "--data",
            ])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rpc_answers(addr) {
        assert!(
            Instant::now() < deadline,
            "the devnet did not answer on {addr} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("node")
        .args(["--test", "e2e/"])
        .current_dir(&contracts)
        .env("KH_RPC_URL", format!("http://{addr}"))
        .output()
        .expect("node must be installed to run the ethers end-to-end test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# pass 1"), "{stdout}");
}
