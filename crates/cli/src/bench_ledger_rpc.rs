//! `kakehashi bench ledger-rpc`: stablecoin payments driven over the nodes' client RPC (gRPC,
//! mutual TLS) against a five-node ledger network whose nodes talk to each other over gRPC on
//! loopback, each on its own SQLite database. Reports the flow latency seen by an RPC client
//! (start of the call until the payer's flow finished: payee key, notarisation, finality) and
//! payments per second, with one payment in flight or several from a pre-split holding.
//! (`cargo bench -p kh-ledger` measures the same flows in process, without gRPC.)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kh_ledger_node::{NetworkDirectory, RpcClient, connect_rpc, proto};
use serde::Serialize;

use crate::output::{UsageError, print_json};

/// Arguments of `bench ledger-rpc`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Payments to time (1 unit each).
    #[arg(long, default_value_t = 200)]
    payments: u32,
    /// Payments in flight at once; the payer's holding is pre-split into this many states.
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Directory for the network (a fresh temporary directory, removed afterwards, when
    /// absent).
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    transport: &'static str,
    storage: &'static str,
    payments: u32,
    concurrency: u32,
    failed: u32,
    elapsed_ms: u128,
    payments_per_second: u64,
    flow_latency: Latency,
    payee_balance: u64,
    value_conserved: bool,
}

#[derive(Debug, Serialize)]
struct Latency {
    p50_us: u128,
    p99_us: u128,
    max_us: u128,
}

/// Waits for a flow at most this long.
const FLOW_TIMEOUT_MS: u64 = 60_000;
/// The network must come up and settle within this.
const SETTLE: Duration = Duration::from_secs(60);

async fn run_flow(
    rpc: &mut RpcClient,
    flow: proto::run_flow_request::Flow,
) -> anyhow::Result<String> {
    let r = rpc
        .run_flow(proto::RunFlowRequest {
            flow: Some(flow),
            timeout_ms: FLOW_TIMEOUT_MS,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    if r.status != "completed" {
        bail!("flow {} {}: {}", r.flow_id, r.status, r.reason);
    }
    Ok(r.tx_id)
}

async fn balance(rpc: &mut RpcClient, account: &str) -> anyhow::Result<u64> {
    Ok(rpc
        .vault(proto::VaultRequest {
            account: account.to_string(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner()
        .balance)
}

/// Polls until `account` holds `want` (finality reaches a payee after the payer's flow ends).
async fn settle(rpc: &mut RpcClient, account: &str, want: u64) -> anyhow::Result<u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let got = balance(rpc, account).await?;
        if got == want || Instant::now() >= deadline {
            return Ok(got);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], pct: usize) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (sorted.len() * pct).div_ceil(100).saturating_sub(1);
    sorted[i.min(sorted.len() - 1)].as_micros()
}

/// Runs the benchmark and prints one JSON object.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.payments == 0 || args.concurrency == 0 || args.concurrency > args.payments {
        return Err(UsageError("need 1 <= --concurrency <= --payments".into()).into());
    }
    let (dir, temporary) = match &args.data {
        Some(d) => (d.clone(), false),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let d = std::env::temp_dir().join(format!(
                "kh-bench-ledger-rpc-{}-{nanos}",
                std::process::id()
            ));
            (d, true)
        }
    };
    let result = bench(&args, &dir).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    print_json(&result?)
}

async fn bench(args: &Args, dir: &std::path::Path) -> anyhow::Result<Report> {
    let mut nodes = vec![];
    for file in crate::devnet_ledger::init(dir, false)? {
        nodes.push(crate::devnet_ledger::start_node(&file, None).await?);
    }
    let (directory, root) = NetworkDirectory::read(dir)?;
    let connect = |org: &'static str| {
        let endpoints = directory.node(org).map(|(_, e)| e.rpc);
        let client = NetworkDirectory::client_identity(dir, org, "admin");
        let root = root.clone();
        async move {
            let addr = endpoints?;
            let client = client?;
            connect_rpc(addr, &client, &root)
                .await
                .with_context(|| format!("connecting to {org}"))
        }
    };
    let mut bank = connect("Bank").await?;
    let mut party_a = connect("PartyA").await?;
    let mut party_b = connect("PartyB").await?;
    let alice = party_a
        .create_account(proto::CreateAccountRequest {
            label: "bench-payer".into(),
        })
        .await?
        .into_inner()
        .id;
    let bob = party_b
        .create_account(proto::CreateAccountRequest {
            label: "bench-payee".into(),
        })
        .await?
        .into_inner()
        .id;
    let total = u64::from(args.payments);
    run_flow(
        &mut bank,
        proto::run_flow_request::Flow::Issue(proto::Issue {
            amount: total,
            currency: "JPY".into(),
            to_node: "PartyA".into(),
            to_account: alice.clone(),
        }),
    )
    .await
    .context("issuing the payer's holding")?;
    if settle(&mut party_a, &alice, total).await? != total {
        bail!("the issuance did not reach PartyA");
    }
    if args.concurrency > 1 {
        run_flow(
            &mut party_a,
            proto::run_flow_request::Flow::Split(proto::Split {
                account: alice.clone(),
                parts: args.concurrency,
            }),
        )
        .await
        .context("pre-splitting the payer's holding")?;
    }

    // Each worker has its own connection and makes its share of the payments one by one.
    let per_worker = args.payments / args.concurrency;
    let extra = args.payments % args.concurrency;
    let started = Instant::now();
    let mut workers = vec![];
    for w in 0..args.concurrency {
        let mut rpc = connect("PartyA").await?;
        let (alice, bob) = (alice.clone(), bob.clone());
        let count = per_worker + u32::from(w < extra);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count as usize);
            let mut failed = 0u32;
            for _ in 0..count {
                let t = Instant::now();
                let flow = proto::run_flow_request::Flow::Pay(proto::Pay {
                    amount: 1,
                    from_account: alice.clone(),
                    to_node: "PartyB".into(),
                    to_account: bob.clone(),
                    validator: String::new(),
                });
                match run_flow(&mut rpc, flow).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(e) => {
                        tracing::warn!(error = %e, "payment failed");
                        failed += 1;
                    }
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = vec![];
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await.context("a payment worker panicked")?;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let paid = u64::from(args.payments - failed);
    let payee_balance = settle(&mut party_b, &bob, paid).await?;
    let payer_balance = balance(&mut party_a, &alice).await?;
    for n in &nodes {
        n.node.shutdown();
    }
    let elapsed_ms = elapsed.as_millis().max(1);
    Ok(Report {
        transport: "gRPC + mutual TLS on loopback, client RPC and node-to-node",
        storage: "SQLite, one database per node",
        payments: args.payments,
        concurrency: args.concurrency,
        failed,
        elapsed_ms,
        payments_per_second: (u128::from(paid) * 1000 / elapsed_ms) as u64,
        flow_latency: Latency {
            p50_us: percentile(&latencies, 50),
            p99_us: percentile(&latencies, 99),
            max_us: latencies.last().map_or(0, Duration::as_micros),
        },
        payee_balance,
        value_conserved: payer_balance + payee_balance == total,
    })
}
