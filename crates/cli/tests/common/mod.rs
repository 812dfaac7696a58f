//! A `kakehashi devnet evm --instant` process on a free loopback port, for the end-to-end tests
//! that drive it with clients kakehashi did not write (ethers.js, web3.py).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running devnet, killed when dropped.
pub(crate) struct Devnet {
    /// Its HTTP JSON-RPC URL (`http://127.0.0.1:PORT`).
    pub(crate) url: String,
    child: Child,
    log_path: PathBuf,
    _data: tempfile::TempDir,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Devnet {
    /// Starts an instant-mining devnet on a fresh data directory and waits until it answers.
    pub(crate) fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let log_path = data.path().join("devnet.log");
        let log = std::fs::File::create(&log_path).unwrap();
        // Port 0: the devnet binds a free loopback port and prints it in its banner, so
        // parallel tests never race for a port.
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
        let mut devnet = Self {
            url: String::new(),
            child,
            log_path,
            _data: data,
        };
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
                    devnet.log()
                )
            });
        let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
        assert!(addr.ip().is_loopback(), "{url}");
        assert!(
            rpc_answers(addr),
            "the devnet announced {url} but does not answer eth_blockNumber; its log:\n{}",
            devnet.log()
        );
        devnet.url = url;
        devnet
    }

    /// What the devnet wrote to stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
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
