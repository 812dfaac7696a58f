//! `kakehashi run`: the main job on embedded defaults, everything in one process.
//!
//! Today that is the QBFT EVM devnet and the ledger network (five nodes over gRPC with mutual
//! TLS); LCP and the relayer join them as their issues land.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use kh_evm_chain::{Devnet, DevnetConfig};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSON-RPC address of the EVM devnet.
    #[arg(long, default_value = "127.0.0.1:8545")]
    evm_rpc: SocketAddr,
    /// Data directory: the EVM chain goes to DATA/evm (in memory when absent) and the ledger
    /// network to DATA/ledger (./kakehashi-ledger when absent).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// Starts every component on defaults and runs until Ctrl-C / SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let config = DevnetConfig {
        rpc_addr: args.evm_rpc,
        data_dir: args.data.as_ref().map(|d| d.join("evm")),
        ..DevnetConfig::default()
    };
    let chain_id = config.chain_id;
    let devnet = Devnet::start(config)
        .await
        .context("starting the EVM devnet")?;
    crate::devnet_evm::print_banner(&devnet, chain_id);
    let ledger_dir = args
        .data
        .as_ref()
        .map_or_else(|| PathBuf::from("kakehashi-ledger"), |d| d.join("ledger"));
    let mut ledger = vec![];
    for file in crate::devnet_ledger::init(&ledger_dir, false)
        .context("writing the ledger network directory")?
    {
        ledger.push(crate::devnet_ledger::start_node(&file, None).await?);
    }
    println!("Ledger network directory: {}", ledger_dir.display());
    println!(
        "  try: kakehashi ledger --network {} --node PartyA accounts create alice",
        ledger_dir.display()
    );
    crate::signal::shutdown_signal().await;
    for n in &ledger {
        n.node.shutdown();
    }
    devnet.shutdown().await.context("stopping the EVM devnet")?;
    Ok(())
}
