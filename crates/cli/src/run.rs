//! `kakehashi run`: the main job on embedded defaults, everything in one process — the QBFT EVM
//! devnet, the ledger network, LCP in simulation and the relayer, with clients, connection and
//! channel established between the EVM chain and the ledger ([`crate::stack`]). Runs until
//! Ctrl-C / SIGTERM and prints how to send a packet each way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::stack::{PATH, StackOptions};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSON-RPC address of the EVM devnet.
    #[arg(long, default_value = "127.0.0.1:8545")]
    evm_rpc: SocketAddr,
    /// EVM block interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    block_time: u64,
    /// The relayer's metrics and health address.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics: SocketAddr,
    /// Data directory (must be empty or absent): the ledger network, the LCP node, the
    /// relayer's configuration and keys. Default: a fresh temporary directory, removed at exit.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Starts every component on defaults and runs until Ctrl-C / SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let temp = match &args.data {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("kakehashi-run").tempdir()?),
    };
    let data = args
        .data
        .clone()
        .or_else(|| temp.as_ref().map(|t| t.path().join("stack")))
        .context("no data directory")?;
    eprintln!("starting the EVM devnet, the ledger network, LCP and the relayer…");
    let stack = crate::stack::start(&StackOptions {
        data: data.clone(),
        evm_rpc: args.evm_rpc,
        block_time: Duration::from_millis(args.block_time),
        metrics: args.metrics,
    })
    .await?;
    let state = stack.path.state.clone();
    let evm_url = format!("http://{}", stack.devnet.rpc_addr());
    let owner_key = stack.devnet.dev_accounts()[0].private_key;
    println!("kakehashi is running: the EVM devnet and the ledger, connected through LCP.");
    println!(
        "  EVM JSON-RPC:      {evm_url} (chain id {})",
        stack.config.evm.chain_id
    );
    println!("  EVM IBC handler:   {}", stack.config.evm.handler);
    println!("  EVM ping app:      {}", stack.app);
    println!("  ledger network:    {}", stack.ledger_dir.display());
    println!("  relayer config:    {}", stack.config_path.display());
    println!("  relayer metrics:   http://{}/metrics", args.metrics);
    println!(
        "  channel:           {} (EVM, port ping) <-> {} (ledger, port ping)",
        state.evm.channel_id, state.ledger.channel_id
    );
    println!();
    println!("Send a ping from the ledger to the EVM chain:");
    println!(
        "  kakehashi ledger --network {} --node PartyA flow start ibc.ping.send --args '{{\"channel\":\"{}\",\"data\":\"hello\",\"timeout_height\":1000000}}'",
        stack.ledger_dir.display(),
        state.ledger.channel_id
    );
    println!("Send a ping from the EVM chain to the ledger (Foundry's cast, the app's owner key):");
    println!(
        "  cast send --rpc-url {evm_url} --private-key {owner_key} {} 'ping(string,bytes,(uint64,uint64),uint64)' {} 0x68656c6c6f '(0,1000000)' 0",
        stack.app, state.evm.channel_id
    );
    println!("What is still in flight:");
    println!(
        "  kakehashi relayer query unrelayed {PATH} --config {}",
        stack.config_path.display()
    );
    let crate::stack::Stack {
        devnet,
        ledger,
        config,
        path,
        ..
    } = stack;
    kh_relayer::path::serve(
        &config,
        path,
        "kakehashi-run",
        crate::signal::shutdown_signal(),
    )
    .await
    .context("the relayer")?;
    for n in &ledger {
        n.node.shutdown();
    }
    devnet.shutdown().await.context("stopping the EVM devnet")?;
    drop(temp);
    Ok(())
}
