//! `kakehashi devnet ...`: local development networks.

use clap::Subcommand;

use crate::{devnet_evm, devnet_ledger};

/// Local development networks.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a QBFT EVM devnet with Ethereum JSON-RPC.
    Evm(Box<devnet_evm::Args>),
    /// Run a ledger network (Notary, Bank, PartyA, PartyB, Validator) in one process.
    Ledger(devnet_ledger::Args),
}

/// Runs a `devnet` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Evm(args) => devnet_evm::run(*args).await,
        Command::Ledger(args) => devnet_ledger::run(args).await,
    }
}
