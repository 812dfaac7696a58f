//! `kakehashi bench ...`: benchmarks that print one JSON object.

use clap::Subcommand;

use crate::{bench_crash, bench_evm, bench_gas, bench_ledger_rpc};

/// Benchmarks (JSON on stdout).
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// ERC-721 transfers per second on the QBFT devnet, and eth_getProof latency.
    Evm(bench_evm::Args),
    /// Gas per IBC handler operation on the devnet, with the test-only light client (JSON
    /// object: operation -> gas used).
    Gas(bench_gas::Args),
    /// Stablecoin payments over the ledger nodes' gRPC: flow latency p50/p99 and payments/s.
    LedgerRpc(bench_ledger_rpc::Args),
    /// Crash campaign: payments while a random node stops at a random crash point and its
    /// standby takes over; anomalies (must be 0) make it exit non-zero.
    Crash(bench_crash::Args),
}

/// Runs a `bench` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Evm(args) => bench_evm::run(args).await,
        Command::Gas(args) => bench_gas::run(args).await,
        Command::LedgerRpc(args) => bench_ledger_rpc::run(args).await,
        Command::Crash(args) => bench_crash::run(args).await,
    }
}
