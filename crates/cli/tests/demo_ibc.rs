//! `kakehashi demo ibc --packets 2 --json`: the whole stack in one process (devnet, ledger
//! network, LCP, relayer), two pings each way, and the summary the issue specifies — every ping
//! received and acknowledged, with hop and round-trip latencies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn demo_ibc_delivers_and_summarises() {
    let out = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args([
            "demo",
            "ibc",
            "--packets",
            "2",
            "--json",
            "--block-time",
            "500",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let directions = v["directions"].as_array().unwrap();
    assert_eq!(directions.len(), 2);
    for (d, (from, to)) in directions
        .iter()
        .zip([("evm", "ledger"), ("ledger", "evm")])
    {
        assert_eq!(d["from"], from, "{v}");
        assert_eq!(d["to"], to, "{v}");
        assert_eq!(d["sent"], 2, "{v}");
        assert_eq!(d["received"], 2, "{v}");
        assert_eq!(d["acknowledged"], 2, "{v}");
        assert_eq!(d["timed_out"], 0, "{v}");
        assert!(d["hop_latency_ms"]["p50"].as_u64().is_some(), "{v}");
        assert!(
            d["hop_latency_ms"]["p99_us"].as_u64().unwrap()
                >= d["hop_latency_ms"]["p50_us"].as_u64().unwrap()
        );
    }
    let rt = &v["round_trip_ms"];
    assert!(rt["p50"].as_u64().unwrap() > 0, "{v}");
    assert!(rt["p99"].as_u64().unwrap() >= rt["p50"].as_u64().unwrap());
    assert!(rt["chain_ms"].as_u64().is_some() && rt["relay_ms"].as_u64().is_some());
}

/// `kakehashi run`: the stack comes up with the path set up, the relayer active (its `/health`),
/// nothing in flight, and the printed instructions name the channel.
#[test]
fn run_starts_the_stack_with_an_active_relayer() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::time::{Duration, Instant};
    let data = tempfile::tempdir().unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args([
            "run",
            "--evm-rpc",
            "127.0.0.1:0",
            "--block-time",
            "500",
            "--metrics",
        ])
        .arg(metrics.to_string())
        .arg("--data")
        .arg(data.path().join("stack"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut config = None;
    let mut channel_line = None;
    while config.is_none() || channel_line.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("run printed its banner");
        if let Some(c) = line.trim().strip_prefix("relayer config:") {
            config = Some(c.trim().to_string());
        }
        if line.trim().starts_with("channel:") {
            channel_line = Some(line);
        }
    }
    assert!(channel_line.unwrap().contains("channel-0"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut body = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(metrics) {
            let _ = s.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let _ = s.read_to_string(&mut body);
        }
        if body.contains("\"active\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relayer is not active: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args(["relayer", "query", "unrelayed", "evm-ledger", "--config"])
        .arg(config.unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"evm_to_ledger": [], "ledger_to_evm": []})
    );
}
