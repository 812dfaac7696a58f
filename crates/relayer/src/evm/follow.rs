//! Following a contract's event logs so that none is ever missed or delivered twice, even when a
//! WebSocket subscription dies silently (the complaint most often made of other relayers).
//!
//! The data always comes from `eth_getLogs` over a block range the follower has not delivered
//! yet, cut at the confirmation depth; logs are delivered in chain order and the range start
//! moves past them only once they are handed over. A WebSocket `newHeads` subscription is only a
//! doorbell that makes the follower look at once; a timer (`reconcile_every`) makes it look
//! anyway. When the doorbell has been quiet for longer than `silence` while the chain moved on,
//! the follower treats the subscription as dead and subscribes again (next WebSocket endpoint
//! first). So a dead subscription costs latency, never a log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes};
use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::rpc::{FailoverRpc, RpcError, quantity};
use super::tls::EvmTls;

/// One log, with where it is in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLog {
    /// Its block.
    pub block_number: u64,
    /// Its transaction.
    pub tx_hash: B256,
    /// Its index in the block.
    pub log_index: u64,
    /// The emitting contract.
    pub address: Address,
    /// Its topics.
    pub topics: Vec<B256>,
    /// Its data.
    pub data: Bytes,
}

/// What and how to follow.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// The contract whose logs are followed.
    pub address: Address,
    /// The first block to deliver.
    pub from_block: u64,
    /// Blocks on top before a block's logs are delivered (1 = as soon as included).
    pub confirmations: u64,
    /// WebSocket endpoints for the `newHeads` doorbell (may be empty: then only the timer).
    pub ws: Vec<String>,
    /// The timer of the reconciliation.
    pub reconcile_every: Duration,
    /// The doorbell counts as dead after this long without a ring while the chain moved.
    pub silence: Duration,
    /// Largest block range of one `eth_getLogs`.
    pub max_range: u64,
    /// TLS of the `wss://` endpoints (without it: the system's roots, no client certificate).
    pub tls: Option<EvmTls>,
}

/// Counters of a running follower.
#[derive(Debug, Default)]
pub struct FollowStats {
    /// Logs delivered.
    pub delivered: AtomicU64,
    /// Doorbell rings.
    pub rings: AtomicU64,
    /// Subscriptions made (the first included).
    pub subscriptions: AtomicU64,
    /// Highest block fully delivered.
    pub delivered_through: AtomicU64,
}

/// Starts following; logs arrive on the returned receiver in chain order. The task ends when
/// the receiver is dropped.
pub fn follow(
    rpc: Arc<FailoverRpc>,
    config: FollowConfig,
) -> (
    mpsc::Receiver<ChainLog>,
    Arc<FollowStats>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(1024);
    let stats = Arc::new(FollowStats::default());
    let task = tokio::spawn(run(rpc, config, tx, stats.clone()));
    (rx, stats, task)
}

struct Doorbell {
    urls: Vec<String>,
    tls: Option<EvmTls>,
    next_url: usize,
    live: Option<(WsClient, Subscription<Value>)>,
    last_ring: Instant,
}

impl Doorbell {
    async fn connect(&mut self, stats: &FollowStats) {
        self.live = None;
        for _ in 0..self.urls.len() {
            let url = self.urls[self.next_url % self.urls.len()].clone();
            self.next_url += 1;
            let mut builder = WsClientBuilder::default().connection_timeout(Duration::from_secs(2));
            if let Some(tls) = &self.tls {
                builder = builder.with_custom_cert_store(tls.client_config());
            }
            let client = match builder.build(&url).await {
                Ok(c) => c,
                Err(e) => {
                    warn!(%url, error = %e, "WebSocket endpoint not reachable");
                    continue;
                }
            };
            let mut params = ArrayParams::new();
            if params.insert("newHeads").is_err() {
                continue;
            }
            match client
                .subscribe::<Value, _>("eth_subscribe", params, "eth_unsubscribe")
                .await
            {
                Ok(sub) => {
                    stats.subscriptions.fetch_add(1, Ordering::Relaxed);
                    info!(%url, "subscribed to new heads");
                    self.last_ring = Instant::now();
                    self.live = Some((client, sub));
                    return;
                }
                Err(e) => warn!(%url, error = %e, "newHeads subscription refused"),
            }
        }
    }

    /// Waits for a ring or `timeout`; true if it rang.
    async fn wait(&mut self, timeout: Duration) -> bool {
        let Some((_, sub)) = self.live.as_mut() else {
            tokio::time::sleep(timeout).await;
            return false;
        };
        match tokio::time::timeout(timeout, sub.next()).await {
            Ok(Some(Ok(_))) => {
                self.last_ring = Instant::now();
                true
            }
            Ok(Some(Err(e))) => {
                debug!(error = %e, "malformed newHeads notification");
                true
            }
            Ok(None) => {
                warn!("newHeads subscription closed");
                self.live = None;
                false
            }
            Err(_) => false,
        }
    }
}

async fn run(
    rpc: Arc<FailoverRpc>,
    config: FollowConfig,
    out: mpsc::Sender<ChainLog>,
    stats: Arc<FollowStats>,
) {
    let mut next = config.from_block;
    let mut bell = Doorbell {
        urls: config.ws.clone(),
        tls: config.tls.clone(),
        next_url: 0,
        live: None,
        last_ring: Instant::now(),
    };
    if !bell.urls.is_empty() {
        bell.connect(&stats).await;
    }
    let mut last_head = 0u64;
    loop {
        match deliver(&rpc, &config, &mut next, &out, &stats).await {
            Ok(Some(head)) => {
                // The chain moved while the doorbell stayed quiet: it is dead.
                if head > last_head
                    && last_head != 0
                    && !bell.urls.is_empty()
                    && (bell.live.is_none() || bell.last_ring.elapsed() > config.silence)
                {
                    warn!(head, "no newHeads while the chain moved: subscribing again");
                    bell.connect(&stats).await;
                }
                last_head = last_head.max(head);
            }
            Ok(None) => return, // the receiver is gone
            Err(e) => warn!(error = %e, "log reconciliation failed; retrying"),
        }
        if bell.wait(config.reconcile_every).await {
            stats.rings.fetch_add(1, Ordering::Relaxed);
        }
        if out.is_closed() {
            return;
        }
    }
}

/// Delivers every log of confirmed blocks from `next` on; returns the head seen, or `None` when
/// the receiver is gone.
async fn deliver(
    rpc: &FailoverRpc,
    config: &FollowConfig,
    next: &mut u64,
    out: &mpsc::Sender<ChainLog>,
    stats: &FollowStats,
) -> Result<Option<u64>, RpcError> {
    let head = rpc.block_number().await?;
    let confirmed = (head + 1).saturating_sub(config.confirmations);
    while *next <= confirmed {
        let to = confirmed.min(*next + config.max_range.max(1) - 1);
        let logs: Vec<Value> = rpc
            .request(
                "eth_getLogs",
                vec![json!({
                    "address": config.address,
                    "fromBlock": format!("{:#x}", *next),
                    "toBlock": format!("{to:#x}"),
                })],
            )
            .await?;
        let mut parsed = logs
            .iter()
            .map(|l| parse_log(l, rpc.current_url()))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort_by_key(|l| (l.block_number, l.log_index));
        for log in parsed {
            if log.block_number < *next || log.block_number > to {
                return Err(RpcError::Malformed {
                    url: rpc.current_url().to_string(),
                    method: "eth_getLogs".into(),
                    reason: format!("log of block {} outside {}..={to}", log.block_number, *next),
                });
            }
            if out.send(log).await.is_err() {
                return Ok(None);
            }
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
        *next = to + 1;
        stats.delivered_through.store(to, Ordering::Relaxed);
    }
    Ok(Some(head))
}

fn parse_log(value: &Value, url: &str) -> Result<ChainLog, RpcError> {
    let bad = |what: &str| RpcError::Malformed {
        url: url.to_string(),
        method: "eth_getLogs".into(),
        reason: format!("log without a valid {what}: {value}"),
    };
    let field = |name: &str| value.get(name).cloned().unwrap_or(Value::Null);
    if field("removed").as_bool() == Some(true) {
        return Err(bad("removed flag (a reorganised log in a confirmed range)"));
    }
    Ok(ChainLog {
        block_number: quantity(&field("blockNumber")).ok_or_else(|| bad("blockNumber"))?,
        log_index: quantity(&field("logIndex")).ok_or_else(|| bad("logIndex"))?,
        tx_hash: serde_json::from_value(field("transactionHash"))
            .map_err(|_| bad("transactionHash"))?,
        address: serde_json::from_value(field("address")).map_err(|_| bad("address"))?,
        topics: serde_json::from_value(field("topics")).map_err(|_| bad("topics"))?,
        data: serde_json::from_value(field("data")).map_err(|_| bad("data"))?,
    })
}

/// The handler events among `logs`, in order (other logs dropped); ends when `logs` ends or the
/// receiver is dropped.
pub fn handler_events(
    mut logs: mpsc::Receiver<ChainLog>,
) -> mpsc::Receiver<crate::chain::Positioned> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Some(log) = logs.recv().await {
            if let Some(e) = super::ibc::decode_event(&log)
                && tx.send((log.block_number, e)).await.is_err()
            {
                return;
            }
        }
    });
    rx
}
