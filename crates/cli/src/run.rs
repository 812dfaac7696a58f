//! `kakehashi run`: the main job on embedded defaults, everything in one process.
//!
//! Today that is the QBFT EVM devnet; the ledger network, LCP and the relayer join it as their
//! issues land.

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
    /// Data directory (the EVM chain goes to DATA/evm); in memory when absent.
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
    crate::signal::shutdown_signal().await;
    devnet.shutdown().await.context("stopping the EVM devnet")?;
    Ok(())
}
