//! `kakehashi devnet evm`: the QBFT EVM devnet as a foreground process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig, RpcTls};

use crate::output::UsageError;

/// Arguments of `devnet evm`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Number of validators (keys derived from --validator-seed).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Seed of the deterministic validator keys.
    #[arg(long, default_value = "kakehashi-devnet")]
    validator_seed: String,
    /// File with the validators' secret keys, one 32-byte hex key per line (instead of
    /// --validators/--validator-seed).
    #[arg(long, conflicts_with_all = ["validators", "validator_seed"])]
    validator_keys: Option<PathBuf>,
    /// Block interval in milliseconds.
    #[arg(long, default_value_t = 1000, conflicts_with = "instant")]
    block_time: u64,
    /// Mine a block for every transaction, before eth_sendRawTransaction returns.
    #[arg(long)]
    instant: bool,
    /// JSON-RPC address (HTTP and WebSocket).
    #[arg(long, default_value = "127.0.0.1:8545")]
    rpc: SocketAddr,
    /// Serve JSON-RPC over TLS (https:// and wss://) with this certificate chain (PEM, leaf
    /// first; Besu's --rpc-http-tls-enabled).
    #[arg(long, requires = "rpc_tls_key")]
    rpc_tls_cert: Option<PathBuf>,
    /// The private key of --rpc-tls-cert (PEM).
    #[arg(long, requires = "rpc_tls_cert")]
    rpc_tls_key: Option<PathBuf>,
    /// Require a client certificate issued by this CA (PEM) from every JSON-RPC client; others
    /// are refused during the TLS handshake (Besu's --rpc-http-tls-client-auth-enabled with
    /// CA-signed clients).
    #[arg(long, requires = "rpc_tls_cert")]
    rpc_tls_client_ca: Option<PathBuf>,
    /// Data directory (blocks survive restarts); in memory when absent.
    #[arg(long)]
    data: Option<PathBuf>,
    /// EIP-155 chain id.
    #[arg(long, default_value_t = 1337)]
    chain_id: u64,
    /// Number of prefunded dev accounts (standard test mnemonic).
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Block gas limit.
    #[arg(long, default_value_t = kh_evm_chain::DEFAULT_GAS_LIMIT)]
    gas_limit: u64,
    /// Recent blocks whose state is kept for calls and proofs at past heights.
    #[arg(long, default_value_t = 1024)]
    history: usize,
    /// Largest deployed contract code in bytes (Besu's contractSizeLimit; init code may be
    /// twice as large).
    #[arg(long, default_value_t = kh_evm_chain::DEFAULT_CONTRACT_SIZE_LIMIT)]
    contract_size_limit: usize,
    /// Genesis timestamp (Unix seconds, not in the future); default: the wall clock when the
    /// chain is created (a data directory keeps its own).
    #[arg(long)]
    genesis_time: Option<u64>,
    /// With no pending transactions, seal an empty block only this many seconds after the
    /// last block (Besu's emptyblockperiodseconds); default: every --block-time.
    #[arg(long, conflicts_with = "instant")]
    empty_block_period: Option<u64>,
    /// Serve the validator vote methods (qbft_proposeValidatorVote, qbft_discardValidatorVote,
    /// qbft_getPendingVotes). Anyone who can reach the RPC address can then vote.
    #[arg(long)]
    admin: bool,
}

impl Args {
    pub(crate) fn config(&self) -> anyhow::Result<DevnetConfig> {
        if self.validators == 0 {
            return Err(UsageError("--validators must be at least 1".into()).into());
        }
        if !self.instant && self.block_time == 0 {
            return Err(UsageError("--block-time must be positive".into()).into());
        }
        if self.gas_limit < 21_000 {
            return Err(UsageError("--gas-limit must be at least 21000".into()).into());
        }
        if self.contract_size_limit == 0 {
            return Err(UsageError("--contract-size-limit must be positive".into()).into());
        }
        if self.empty_block_period == Some(0) {
            return Err(UsageError("--empty-block-period must be positive".into()).into());
        }
        let validator_keys = match &self.validator_keys {
            None => vec![],
            Some(path) => read_keys(path)?,
        };
        Ok(DevnetConfig {
            validators: self.validators,
            validator_keys,
            validator_seed: self.validator_seed.clone(),
            production: if self.instant {
                BlockProduction::Instant
            } else {
                BlockProduction::Interval(Duration::from_millis(self.block_time))
            },
            rpc_addr: self.rpc,
            rpc_tls: match (&self.rpc_tls_cert, &self.rpc_tls_key) {
                (Some(cert), Some(key)) => Some(RpcTls {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.rpc_tls_client_ca.clone(),
                }),
                _ => None,
            },
            data_dir: self.data.clone(),
            chain_id: self.chain_id,
            dev_accounts: self.accounts,
            gas_limit: self.gas_limit,
            history: self.history,
            contract_size_limit: self.contract_size_limit,
            genesis_time: self.genesis_time,
            empty_block_period: self.empty_block_period.map(Duration::from_secs),
            admin: self.admin,
            ..DevnetConfig::default()
        })
    }
}

/// Reads one hex secret key per non-empty line.
fn read_keys(path: &std::path::Path) -> anyhow::Result<Vec<alloy_primitives::B256>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("reading {}: {e}", path.display())))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            l.parse::<alloy_primitives::B256>().map_err(|_| {
                UsageError(format!(
                    "{} line {}: not a 32-byte hex key",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(UsageError(format!("{} holds no keys", path.display())).into());
    }
    Ok(keys)
}

/// Starts the devnet, prints its endpoints and accounts, and runs until Ctrl-C / SIGTERM.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let devnet = Devnet::start(args.config()?)
        .await
        .context("starting the EVM devnet")?;
    print_banner(&devnet, args.chain_id);
    crate::signal::shutdown_signal().await;
    devnet.shutdown().await.context("stopping the EVM devnet")?;
    Ok(())
}

pub(crate) fn print_banner(devnet: &Devnet, chain_id: u64) {
    let addr = devnet.rpc_addr();
    println!(
        "kakehashi QBFT EVM devnet (chain id {chain_id}, head #{})",
        devnet.head_number()
    );
    let (http, ws) = if devnet.rpc_tls() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    println!("RPC: {http}://{addr}");
    println!("WS:  {ws}://{addr}");
    println!("Validators:");
    for v in devnet.validators() {
        println!("  {v}");
    }
    println!(
        "Dev accounts (mnemonic \"{}\"):",
        kh_evm_chain::TEST_MNEMONIC
    );
    for (i, a) in devnet.dev_accounts().iter().enumerate() {
        println!("  ({i}) {} key {}", a.address, a.private_key);
    }
}
