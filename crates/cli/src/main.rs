//! `kakehashi`: the one binary of the kakehashi stack.
//!
//! Owns: argument parsing, logging setup, the tokio runtime, and the translation of library
//! results into stdout JSON / exit codes. Does not own any protocol logic: every subcommand
//! calls into a library crate (`kh-qbft`, `kh-evm-chain`, `kh-ledger`, ...).
//!
//! Exit codes: `0` success, `1` operation failed, `2` usage or config error.

mod bench;
mod bench_crash;
mod bench_evm;
mod bench_gas;
mod bench_gas_lcp;
mod bench_gas_qbft;
mod bench_ledger_rpc;
mod demo;
mod devnet;
mod devnet_evm;
mod devnet_ledger;
mod evm_tx;
mod ibc;
mod lcp;
mod lcp_node;
mod ledger;
mod ledger_ibc;
mod ledger_users;
mod output;
mod qbft;
mod relayer;
mod run;
mod signal;
mod stack;

use clap::{Parser, Subcommand, ValueEnum};

/// kakehashi: QBFT EVM <-> Corda-model ledger interoperability.
///
/// Exit codes: 0 success, 1 operation failed, 2 usage or config error.
#[derive(Debug, Parser)]
#[command(name = "kakehashi", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    // One variant per subcommand; each lives in its own module with `Args` and `run`.
    /// Benchmarks printing one JSON object.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Demonstrations of the whole stack in one process.
    #[command(subcommand)]
    Demo(demo::Command),
    /// Local development networks (EVM devnet, ledger network).
    #[command(subcommand)]
    Devnet(devnet::Command),
    /// The IBC handler on an EVM chain (deploy).
    #[command(subcommand)]
    Ibc(ibc::Command),
    /// Light Client Proxy: attestation reports, the enclave, the LCP service.
    #[command(subcommand)]
    Lcp(lcp::Command),
    /// Ledger node client commands.
    Ledger(ledger::Args),
    /// QBFT header tools.
    #[command(subcommand)]
    Qbft(qbft::Command),
    /// The relayer between the EVM chain and the ledger (through LCP).
    #[command(subcommand)]
    Relayer(relayer::Command),
    /// Run the whole stack on embedded defaults in one process.
    Run(run::Args),
}

fn init_logging(format: LogFormat, default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo prints its own progress; other commands log what they do.
    let default_filter = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_filter);
    let result: anyhow::Result<()> = match cli.command {
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Demo(cmd) => demo::run(cmd).await,
        Command::Devnet(cmd) => devnet::run(cmd).await,
        Command::Ibc(cmd) => ibc::run(cmd).await,
        Command::Lcp(cmd) => lcp::run(cmd).await,
        Command::Ledger(args) => ledger::run(args).await,
        Command::Qbft(cmd) => qbft::run(cmd),
        Command::Relayer(cmd) => relayer::run(cmd).await,
        Command::Run(args) => run::run(args).await,
    };
    output::conclude(result)
}
