//! `kakehashi demo ibc`: in one process, the whole stack ([`crate::stack`]) — EVM devnet,
//! ledger network, LCP in simulation, relayer — then N pings each way over the channel it set
//! up, with progress, and a summary of what was delivered and how long it took.
//!
//! Timings: a packet's round trip runs from its send transaction's inclusion (the send returned)
//! to its acknowledgement seen on the source chain (polled every 50 ms). A hop is one datagram
//! the relayer delivered; its latency runs from the relayer receiving the source event to the
//! destination confirming the datagram, and its relayer overhead from receiving the event to
//! submitting the datagram (store reads, LCP's client update and proofs): the relayer's and
//! LCP's share, the rest being the chains' inclusion.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use alloy_sol_types::SolEvent;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use kh_contracts::IBCChannelPacket as P;
use kh_relayer::ledger_ibc::host_events;
use kh_relayer::relay::{HopSample, RelayStats};
use serde_json::{Value, json};

use crate::output::print_json;
use crate::stack::StackOptions;

/// `demo …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Pings between the EVM chain and the ledger through LCP, everything in this process.
    Ibc(IbcArgs),
}

/// Arguments of `demo ibc`.
#[derive(Debug, clap::Args)]
pub(crate) struct IbcArgs {
    /// Pings sent each way.
    #[arg(long, default_value_t = 10)]
    packets: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// EVM block interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_time: u64,
    /// Send every ping at once (the relayer batches them: throughput) instead of one ping
    /// each way at a time, each after the previous one's acknowledgement (latency).
    #[arg(long)]
    burst: bool,
}

/// Runs a `demo` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ibc(args) => ibc(args).await,
    }
}

/// The `pct`-th percentile (nearest rank) of sorted microseconds.
fn percentile(sorted: &[u64], pct: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) * pct + 50) / 100;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds, rounded, of microseconds.
fn ms_of(us: u64) -> u64 {
    (us + 500) / 1000
}

/// p50 and p99 in ms (and µs, for figures under a millisecond).
fn stats_of(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    let (p50, p99) = (percentile(&v, 50), percentile(&v, 99));
    json!({"p50": ms_of(p50), "p99": ms_of(p99), "p50_us": p50, "p99_us": p99, "n": v.len()})
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn ibc(args: IbcArgs) -> anyhow::Result<()> {
    let n = args.packets;
    anyhow::ensure!(n > 0, "--packets must be at least 1");
    let temp = tempfile::Builder::new()
        .prefix("kakehashi-demo")
        .tempdir()?;
    let progress = ProgressBar::new_spinner();
    progress.enable_steady_tick(Duration::from_millis(200));
    progress.set_message("starting the EVM devnet, the ledger network, LCP; creating clients, connection and channel");
    let setup = Instant::now();
    let stack = crate::stack::start(&StackOptions {
        data: temp.path().join("stack"),
        evm_rpc: "127.0.0.1:0".parse()?,
        block_time: Duration::from_millis(args.block_time),
        metrics: "127.0.0.1:0".parse()?,
    })
    .await?;
    let setup = setup.elapsed();
    let stats = Arc::new(RelayStats::default());
    let relay = {
        let path = stack.path.clone();
        let stats = stats.clone();
        tokio::spawn(async move { path.relay(stats, None).await })
    };
    let stack = Arc::new(stack);
    progress.finish_and_clear();

    // Acknowledgements seen on each source chain, by sequence.
    let acked_evm: Arc<tokio::sync::Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let acked_ledger: Arc<tokio::sync::Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let from_block = stack.owner.rpc().block_number().await?;
    let watch_evm = {
        let (stack, acked) = (stack.clone(), acked_evm.clone());
        tokio::spawn(async move {
            loop {
                let logs: Vec<Value> = stack
                    .owner
                    .rpc()
                    .request(
                        "eth_getLogs",
                        vec![json!({"address": stack.config.evm.handler, "fromBlock": format!("{from_block:#x}"), "toBlock": "latest", "topics": [P::AcknowledgePacket::SIGNATURE_HASH]})],
                    )
                    .await
                    .unwrap_or_default();
                let now = Instant::now();
                let mut acked = acked.lock().await;
                for l in logs {
                    let topics: Vec<B256> =
                        serde_json::from_value(l["topics"].clone()).unwrap_or_default();
                    let data: alloy_primitives::Bytes =
                        serde_json::from_value(l["data"].clone()).unwrap_or_default();
                    if let Ok(e) = P::AcknowledgePacket::decode_raw_log(topics, &data) {
                        acked.entry(e.sequence).or_insert(now);
                    }
                }
                drop(acked);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let watch_ledger = {
        let (stack, acked) = (stack.clone(), acked_ledger.clone());
        tokio::spawn(async move {
            let channel = stack.path.state.ledger.channel_id.clone();
            let mut transactions =
                host_events(stack.path.ledger.clone(), 0, Duration::from_millis(500));
            while let Some((_, hs)) = transactions.recv().await {
                let now = Instant::now();
                let mut acked = acked.lock().await;
                for h in hs {
                    if h.kind == "acknowledge_packet"
                        && h.attribute("packet_src_channel") == Some(channel.as_str())
                        && let Some(seq) =
                            h.attribute("packet_sequence").and_then(|s| s.parse().ok())
                    {
                        acked.entry(seq).or_insert(now);
                    }
                }
            }
        })
    };

    // N pings each way: the EVM's one per transaction (sent together), the ledger's in host
    // transactions of up to 10.
    let bar = ProgressBar::new(2 * n);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} pings acknowledged ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let (evm_sent, ledger_sent) = if args.burst {
        let evm_sent = {
            let stack = stack.clone();
            tokio::spawn(async move {
                let sends = (0..n).map(|i| {
                    let stack = stack.clone();
                    async move {
                        let seq = stack
                            .ping_from_evm(format!("evm-{i}").as_bytes(), 1_000_000_000)
                            .await?;
                        anyhow::Ok((seq, Instant::now()))
                    }
                });
                futures::future::join_all(sends)
                    .await
                    .into_iter()
                    .collect::<anyhow::Result<BTreeMap<u64, Instant>>>()
            })
        };
        let mut ledger_sent = BTreeMap::new();
        let mut left = n;
        while left > 0 {
            let count = left.min(10);
            for seq in stack.ping_from_ledger("ledger", count).await? {
                ledger_sent.insert(seq, Instant::now());
            }
            left -= count;
        }
        (evm_sent.await??, ledger_sent)
    } else {
        // One ping each way at a time: each hop meets an idle relayer.
        let (mut evm_sent, mut ledger_sent) = (BTreeMap::new(), BTreeMap::new());
        for i in 0..n {
            let data = format!("evm-{i}");
            let (e, l) = tokio::join!(
                stack.ping_from_evm(data.as_bytes(), 1_000_000_000),
                stack.ping_from_ledger("ledger", 1)
            );
            evm_sent.insert(e?, Instant::now());
            for seq in l? {
                ledger_sent.insert(seq, Instant::now());
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let done = acked_evm.lock().await.len() + acked_ledger.lock().await.len();
                bar.set_position(done as u64);
                if done as u64 >= 2 * (i + 1) {
                    break;
                }
                if Instant::now() > deadline {
                    bar.abandon();
                    anyhow::bail!("ping {i} not acknowledged in 60 s: {stats:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        (evm_sent, ledger_sent)
    };
    let deadline = Instant::now()
        + Duration::from_secs(120)
        + Duration::from_millis(500) * u32::try_from(n).unwrap_or(u32::MAX);
    loop {
        let done = acked_evm.lock().await.len() + acked_ledger.lock().await.len();
        bar.set_position(done as u64);
        if done as u64 >= 2 * n {
            break;
        }
        if Instant::now() > deadline {
            bar.abandon();
            anyhow::bail!(
                "only {done} of {} pings acknowledged in time: {stats:?}",
                2 * n
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    relay.abort();
    watch_evm.abort();
    watch_ledger.abort();

    // The summary.
    let samples: Vec<HopSample> = stats.samples.lock().map(|s| s.clone()).unwrap_or_default();
    let acked_evm = acked_evm.lock().await.clone();
    let acked_ledger = acked_ledger.lock().await.clone();
    let round_trips = |sent: &BTreeMap<u64, Instant>, acked: &BTreeMap<u64, Instant>| {
        sent.iter()
            .filter_map(|(seq, t)| acked.get(seq).map(|a| us(a.saturating_duration_since(*t))))
            .collect::<Vec<u64>>()
    };
    let mut rts = round_trips(&evm_sent, &acked_evm);
    rts.extend(round_trips(&ledger_sent, &acked_ledger));
    let direction = |from: &str, to: &str, sent: usize, acked: usize| {
        let hops: Vec<&HopSample> = samples
            .iter()
            .filter(|s| s.from == from && s.to == to)
            .collect();
        json!({
            "from": from,
            "to": to,
            "sent": sent,
            "received": hops.iter().filter(|s| s.kind == "recv").count(),
            "acknowledged": acked,
            "timed_out": samples.iter().filter(|s| s.kind == "timeout" && s.to == from).count(),
            "hop_latency_ms": stats_of(hops.iter().map(|s| us(s.total)).collect()),
            "relayer_overhead_ms": stats_of(hops.iter().map(|s| us(s.overhead)).collect()),
        })
    };
    let overhead = |from: &str| {
        let mut v: Vec<u64> = samples
            .iter()
            .filter(|s| s.from == from)
            .map(|s| us(s.overhead))
            .collect();
        v.sort_unstable();
        percentile(&v, 50)
    };
    // A round trip is two hops: the packet's and its acknowledgement's.
    let relay_us = overhead("evm") + overhead("ledger");
    let rt = stats_of(rts.clone());
    let rt_p50_us = rt["p50_us"].as_u64().unwrap_or(0);
    let elapsed_us = us(elapsed).max(1);
    let summary = json!({
        "directions": [
            direction("evm", "ledger", evm_sent.len(), acked_evm.len()),
            direction("ledger", "evm", ledger_sent.len(), acked_ledger.len()),
        ],
        "round_trip_ms": {
            "p50": rt["p50"],
            "p99": rt["p99"],
            "relay_ms": ms_of(relay_us),
            "chain_ms": ms_of(rt_p50_us.saturating_sub(relay_us)),
        },
        "packets": 2 * n,
        "elapsed_ms": ms_of(elapsed_us),
        "packets_per_second": (2 * n * 1_000_000 + elapsed_us / 2) / elapsed_us,
        "submissions": stats.submissions.load(std::sync::atomic::Ordering::Relaxed),
        "block_time_ms": args.block_time,
        "setup_ms": ms_of(us(setup)),
    });
    if args.json {
        print_json(&summary)?;
    } else {
        for d in summary["directions"].as_array().into_iter().flatten() {
            println!(
                "{} -> {}: sent {}, received {}, acknowledged {}, timed out {}; hop p50 {} ms, p99 {} ms (relayer+LCP p50 {} ms)",
                d["from"].as_str().unwrap_or(""),
                d["to"].as_str().unwrap_or(""),
                d["sent"],
                d["received"],
                d["acknowledged"],
                d["timed_out"],
                d["hop_latency_ms"]["p50"],
                d["hop_latency_ms"]["p99"],
                d["relayer_overhead_ms"]["p50"],
            );
        }
        println!(
            "round trip p50 {} ms, p99 {} ms (relayer+LCP about {} ms of it); {} packets in {} ms ({} per second, {} submissions)",
            summary["round_trip_ms"]["p50"],
            summary["round_trip_ms"]["p99"],
            summary["round_trip_ms"]["relay_ms"],
            2 * n,
            summary["elapsed_ms"],
            summary["packets_per_second"],
            summary["submissions"],
        );
    }
    match Arc::try_unwrap(stack) {
        Ok(stack) => stack.shutdown().await?,
        Err(_) => tracing::warn!("the stack is still in use at exit"),
    }
    Ok(())
}
