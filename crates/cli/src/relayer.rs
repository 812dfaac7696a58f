//! `kakehashi relayer …`: set a path up (`tx clients|connection|channel`), relay on it
//! (`start`: lease, metrics, relay until Ctrl-C / SIGTERM), and see what is in flight
//! (`query unrelayed`). The configuration is `crates/relayer/relayer.example.toml`'s form.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kh_relayer::RelayerConfig;
use kh_relayer::path::{RelayPath, serve};

use crate::output::print_json;

/// `relayer …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Set a path up, one stage at a time: `clients`, then `connection`, then `channel`.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Relay on a path until stopped: only the lease holder submits; other processes on the
    /// same path stand by and take over when it dies.
    Start(StartArgs),
    /// What a path has in flight.
    #[command(subcommand)]
    Query(QueryCommand),
}

/// `relayer tx …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TxCommand {
    /// The ELC of each chain in LCP, the LCP client of each chain on the other, and LCP's
    /// enclave keys registered on both.
    Clients(PathArgs),
    /// The connection handshake (initiated on the EVM chain).
    Connection(PathArgs),
    /// The channel handshake (initiated on the ledger).
    Channel(PathArgs),
}

/// `relayer query …`.
#[derive(Debug, Subcommand)]
pub(crate) enum QueryCommand {
    /// Packets sent on the path's channel and not yet acknowledged or timed out, by direction
    /// (JSON).
    Unrelayed(PathArgs),
}

/// A path of a configuration file.
#[derive(Debug, Args)]
pub(crate) struct PathArgs {
    /// The path's name (a `[paths.NAME]` table of the configuration).
    path: String,
    /// The relayer configuration (TOML).
    #[arg(long, default_value = "relayer.toml")]
    config: PathBuf,
}

/// Arguments of `relayer start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    path: PathArgs,
    /// This process's name in the lease (default: host name and process id).
    #[arg(long)]
    holder: Option<String>,
}

async fn open(args: &PathArgs) -> anyhow::Result<(RelayerConfig, RelayPath)> {
    let config = RelayerConfig::load(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let path = RelayPath::open(&config, &args.path)
        .await
        .with_context(|| format!("opening path {}", args.path))?;
    Ok((config, path))
}

/// Runs a `relayer` subcommand.
pub(crate) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Tx(tx) => {
            let (args, stage) = match &tx {
                TxCommand::Clients(a) => (a, "clients"),
                TxCommand::Connection(a) => (a, "connection"),
                TxCommand::Channel(a) => (a, "channel"),
            };
            let (_, mut path) = open(args).await?;
            match tx {
                TxCommand::Clients(_) => path.create_clients().await,
                TxCommand::Connection(_) => path.create_connection().await,
                TxCommand::Channel(_) => path.create_channel().await,
            }
            .with_context(|| format!("relayer tx {stage} {}", path.name))?;
            print_json(&path.state)
        }
        Command::Start(args) => {
            let (config, path) = open(&args.path).await?;
            let holder = args.holder.unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    std::env::var("HOSTNAME").unwrap_or_else(|_| "relayer".into()),
                    std::process::id()
                )
            });
            serve(
                &config,
                std::sync::Arc::new(path),
                &holder,
                crate::signal::shutdown_signal(),
            )
            .await
            .context("relayer start")
        }
        Command::Query(QueryCommand::Unrelayed(args)) => {
            let (_, path) = open(&args).await?;
            print_json(&path.unrelayed().await?)
        }
    }
}
