//! The devnet service: configuration, dev accounts, the block producer task, persistence and
//! the JSON-RPC server, started and stopped as one unit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_signer_local::{MnemonicBuilder, PrivateKeySigner, coins_bip39::English};
use k256::ecdsa::SigningKey;
use kh_qbft::address_of;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

use crate::chain::{Chain, ChainSpec, DEFAULT_CONTRACT_SIZE_LIMIT, DEFAULT_GAS_LIMIT, PoolLimits};
use crate::error::{ChainError, DevnetError};
use crate::node::{Shared, now_ms};
use crate::store::{BlockLog, Meta};
use crate::tls::RpcTls;

/// The mnemonic every Ethereum tool knows.
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// How blocks are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockProduction {
    /// A block every interval (empty blocks included, as Besu does).
    Interval(Duration),
    /// A block per submitted transaction, mined before `eth_sendRawTransaction` returns.
    Instant,
}

/// Devnet settings.
#[derive(Debug, Clone)]
pub struct DevnetConfig {
    /// Number of validators generated from `validator_seed` (ignored when `validator_keys` is set).
    pub validators: usize,
    /// Seed for deterministic validator keys.
    pub validator_seed: String,
    /// Explicit validator secret keys (32 bytes each) instead of generated ones.
    pub validator_keys: Vec<B256>,
    /// Block production mode.
    pub production: BlockProduction,
    /// JSON-RPC listen address (HTTP and WebSocket).
    pub rpc_addr: SocketAddr,
    /// TLS on the JSON-RPC port (and a client-certificate requirement); `None` serves plain
    /// HTTP and WebSocket.
    pub rpc_tls: Option<RpcTls>,
    /// Data directory; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Number of prefunded accounts from `mnemonic`.
    pub dev_accounts: usize,
    /// BIP-39 mnemonic of the dev accounts.
    pub mnemonic: String,
    /// Balance of each dev account (wei).
    pub dev_balance: U256,
    /// Recent blocks whose state is kept for calls and proofs.
    pub history: usize,
    /// Largest JSON-RPC request body accepted (bytes).
    pub max_request_body: u32,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Genesis timestamp (Unix seconds, not in the future); `None` takes the wall clock when
    /// the chain is created. A data directory keeps the time it was created with.
    pub genesis_time: Option<u64>,
    /// With an empty pool, blocks are produced only this long after the head (Besu's
    /// `emptyblockperiodseconds`); `None` produces a block every interval.
    pub empty_block_period: Option<Duration>,
    /// Largest deployed contract code (bytes; Besu's `contractSizeLimit`, 24 KiB by default);
    /// init code may be twice as large.
    pub contract_size_limit: usize,
    /// Transaction pool limits.
    pub pool: PoolLimits,
    /// Serve the `qbft_*` vote methods (`qbft_proposeValidatorVote`,
    /// `qbft_discardValidatorVote`, `qbft_getPendingVotes`).
    pub admin: bool,
    /// How far a WebSocket subscriber may fall behind, in announced blocks and in queued
    /// messages on its connection, before its subscription is closed with an error (1,024).
    pub subscription_buffer: usize,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            validators: 4,
            validator_seed: "kakehashi-devnet".into(),
            validator_keys: vec![],
            production: BlockProduction::Interval(Duration::from_millis(1000)),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            rpc_tls: None,
            data_dir: None,
            chain_id: 1337,
            dev_accounts: 10,
            mnemonic: TEST_MNEMONIC.into(),
            // 10,000 ether
            dev_balance: U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            history: 1024,
            max_request_body: 10 * 1024 * 1024,
            gas_limit: DEFAULT_GAS_LIMIT,
            genesis_time: None,
            empty_block_period: None,
            contract_size_limit: DEFAULT_CONTRACT_SIZE_LIMIT,
            admin: false,
            subscription_buffer: 1024,
            pool: PoolLimits::default(),
        }
    }
}

/// A prefunded account (address and its private key, like anvil prints them).
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// The address.
    pub address: Address,
    /// The secret key.
    pub private_key: B256,
}

/// Deterministic validator key `i` from a seed.
pub fn validator_key(seed: &str, i: usize) -> SigningKey {
    let mut counter = 0u64;
    loop {
        let secret = keccak256(format!("{seed}/validator/{i}/{counter}"));
        if let Ok(key) = SigningKey::from_slice(secret.as_slice()) {
            return key;
        }
        counter += 1;
    }
}

/// The dev accounts of a mnemonic (path m/44'/60'/0'/0/i).
pub fn dev_accounts(mnemonic: &str, count: usize) -> Result<Vec<DevAccount>, ChainError> {
    (0..count)
        .map(|i| {
            let index =
                u32::try_from(i).map_err(|_| ChainError::Config("too many dev accounts".into()))?;
            let signer: PrivateKeySigner = MnemonicBuilder::<English>::default()
                .phrase(mnemonic)
                .index(index)
                .map_err(|e| ChainError::Config(format!("mnemonic path: {e}")))?
                .build()
                .map_err(|e| ChainError::Config(format!("mnemonic: {e}")))?;
            Ok(DevAccount {
                address: signer.address(),
                private_key: B256::from_slice(&signer.credential().to_bytes()),
            })
        })
        .collect()
}

/// A running devnet.
#[derive(Debug)]
pub struct Devnet {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    server: jsonrpsee::server::ServerHandle,
    producer: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    validators: Vec<Address>,
}

impl Devnet {
    /// Builds (or reopens from `data_dir`) the chain, starts block production and the RPC server.
    pub async fn start(config: DevnetConfig) -> Result<Self, DevnetError> {
        let tls = config
            .rpc_tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let keys: Vec<SigningKey> = if config.validator_keys.is_empty() {
            if config.validators == 0 {
                return Err(ChainError::Config("--validators must be at least 1".into()).into());
            }
            (0..config.validators)
                .map(|i| validator_key(&config.validator_seed, i))
                .collect()
        } else {
            config
                .validator_keys
                .iter()
                .map(|k| SigningKey::from_slice(k.as_slice()))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ChainError::Config("a validator key is not a valid secp256k1 secret".into())
                })?
        };
        let validators: Vec<Address> = keys.iter().map(|k| address_of(k.verifying_key())).collect();
        let accounts = dev_accounts(&config.mnemonic, config.dev_accounts)?;
        let spec = ChainSpec {
            chain_id: config.chain_id,
            validator_keys: keys,
            alloc: accounts
                .iter()
                .map(|a| (a.address, config.dev_balance))
                .collect(),
            genesis_timestamp: 0,
            gas_limit: config.gas_limit,
            history: config.history,
            contract_size_limit: config.contract_size_limit,
            pool: config.pool,
        };
        let data_dir = config.data_dir.clone();
        let genesis_time = config.genesis_time;
        let (chain, log) =
            tokio::task::spawn_blocking(move || open_chain(spec, genesis_time, data_dir))
                .await
                .map_err(|e| DevnetError::Task(e.to_string()))??;
        let (blocks, _) = broadcast::channel(config.subscription_buffer.max(1));
        let shared = Arc::new(Shared {
            chain: RwLock::new(chain),
            log: Mutex::new(log),
            blocks,
            production: config.production,
            dev_accounts: accounts,
            min_gap: match config.production {
                // The ticker spaces blocks by the period; a block mined on demand (`mine`) in
                // between still takes the next second rather than waiting a whole period.
                BlockProduction::Interval(every) => every.as_secs().min(1),
                BlockProduction::Instant => 0,
            },
            admin: config.admin,
            filters: Mutex::new(Default::default()),
            heavy: tokio::sync::Semaphore::new(crate::rpc::MAX_HEAVY),
        });
        let (server, addr) = crate::rpc::serve(
            shared.clone(),
            config.rpc_addr,
            config.max_request_body,
            config.subscription_buffer.max(1),
            tls,
        )
        .await?;
        let (stop, stop_rx) = watch::channel(false);
        let producer = match config.production {
            BlockProduction::Interval(every) => Some(tokio::spawn(
                produce_every(shared.clone(), every, config.empty_block_period, stop_rx)
                    .instrument(info_span!("evm.seal", chain = config.chain_id)),
            )),
            BlockProduction::Instant => None,
        };
        info!(
            rpc = %addr,
            tls = config.rpc_tls.is_some(),
            client_certificates = config.rpc_tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            validators = validators.len(),
            "devnet started"
        );
        Ok(Self {
            shared,
            addr,
            tls: config.rpc_tls.is_some(),
            server,
            producer,
            stop,
            validators,
        })
    }

    /// The bound JSON-RPC address.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether JSON-RPC is served over TLS (`https://` and `wss://` at [`Devnet::rpc_addr`]).
    pub fn rpc_tls(&self) -> bool {
        self.tls
    }

    /// The genesis validator set.
    pub fn validators(&self) -> &[Address] {
        &self.validators
    }

    /// The prefunded accounts.
    pub fn dev_accounts(&self) -> &[DevAccount] {
        &self.shared.dev_accounts
    }

    /// The latest block number.
    pub fn head_number(&self) -> u64 {
        self.shared.chain.read().head_number()
    }

    /// Produces one block now (any mode).
    pub async fn mine(&self) -> Result<u64, DevnetError> {
        let shared = self.shared.clone();
        Ok(tokio::task::spawn_blocking(move || shared.produce())
            .await
            .map_err(|e| DevnetError::Task(e.to_string()))??)
    }

    /// Stops block production and the server, and syncs the data directory.
    pub async fn shutdown(mut self) -> Result<(), DevnetError> {
        let _ = self.stop.send(true);
        if let Some(p) = self.producer.take() {
            let _ = p.await;
        }
        let _ = self.server.stop();
        self.server.clone().stopped().await;
        if let Some(log) = self.shared.log.lock().as_mut() {
            log.sync()?;
        }
        info!("devnet stopped");
        Ok(())
    }
}

const GENESIS_TIME_FILE: &str = "genesis-time";

/// The genesis timestamp: the one a data directory was created with, else the given one, else
/// the wall clock. Never in the future (every later block would then be ahead of the clock).
fn genesis_time(dir: Option<&Path>, given: Option<u64>) -> Result<(u64, bool), ChainError> {
    let now = now_ms() / 1000;
    if let Some(g) = given
        && g > now
    {
        return Err(ChainError::Config(format!(
            "--genesis-time {g} is in the future (now {now})"
        )));
    }
    let Some(dir) = dir else {
        return Ok((given.unwrap_or(now), false));
    };
    let path = dir.join(GENESIS_TIME_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored: u64 = text.trim().parse().map_err(|_| {
                ChainError::Config(format!("{}: not a Unix timestamp", path.display()))
            })?;
            if let Some(g) = given
                && g != stored
            {
                return Err(ChainError::ConfigMismatch {
                    key: "genesis time",
                    stored: stored.to_string(),
                    given: g.to_string(),
                });
            }
            Ok((stored, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A directory created before genesis times were recorded has its genesis at 0.
            let existing = dir.join("chain.json").exists();
            let default = if existing { 0 } else { now };
            Ok((given.unwrap_or(default), !existing))
        }
        Err(source) => Err(ChainError::Io {
            what: "reading",
            path,
            source,
        }),
    }
}

fn open_chain(
    mut spec: ChainSpec,
    genesis: Option<u64>,
    data_dir: Option<PathBuf>,
) -> Result<(Chain, Option<BlockLog>), ChainError> {
    let (timestamp, record_time) = genesis_time(data_dir.as_deref(), genesis)?;
    spec.genesis_timestamp = timestamp;
    let mut chain = Chain::new(spec)?;
    let Some(dir) = data_dir else {
        return Ok((chain, None));
    };
    let meta = Meta {
        chain_id: chain.chain_id(),
        genesis_hash: chain.head().hash,
    };
    let log = BlockLog::open(&dir, &meta, |index, record| {
        let header =
            kh_qbft::Header::decode(&record.header).map_err(|e| ChainError::CorruptLog {
                index,
                reason: format!("header: {e}"),
            })?;
        chain.replay_block(
            header.timestamp(),
            &record.txs,
            header.extra_data().vote,
            header.block_hash(),
        )
    })?;
    if record_time {
        let path = dir.join(GENESIS_TIME_FILE);
        let tmp = dir.join(format!("{GENESIS_TIME_FILE}.tmp"));
        std::fs::write(&tmp, timestamp.to_string())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| ChainError::Io {
                what: "writing",
                path,
                source,
            })?;
    }
    if log.count() > 0 {
        info!(
            blocks = log.count(),
            height = chain.head_number(),
            "replayed block log"
        );
    }
    Ok((chain, Some(log)))
}

async fn produce_every(
    shared: Arc<Shared>,
    every: Duration,
    empty_period: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if let Some(period) = empty_period
            && shared.skip_empty(period)
        {
            continue;
        }
        let s = shared.clone();
        match tokio::task::spawn_blocking(move || s.produce()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err @ ChainError::Halted { .. })) => {
                error!(error = %err, "block production stopped");
                return;
            }
            Ok(Err(err)) => warn!(error = %err, "block production failed"),
            Err(err) => warn!(error = %err, "block production task failed"),
        }
    }
}
