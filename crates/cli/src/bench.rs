//! `kakehashi bench ...`: benchmarks that print one JSON object.

use clap::Subcommand;

use crate::bench_evm;

/// Benchmarks (JSON on stdout).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// ERC-721 transfers per second on the QBFT devnet, and eth_getProof latency.
    Evm(bench_evm::Args),
}

/// Runs a `bench` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Evm(args) => bench_evm::run(args).await,
    }
}
