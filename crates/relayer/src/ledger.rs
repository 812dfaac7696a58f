//! The ledger adapter: the relayer is an RPC user of the node that runs the IBC host (mutual
//! TLS with the certificate the node's operator issued to it), follows the node's event stream
//! of recorded transactions by cursor, and fetches IBC proofs.
//!
//! The follower delivers every event once, in cursor order, across broken connections and node
//! restarts: it reconnects with backoff and resumes after the last cursor it delivered. A stream
//! that stays open but silent (a half-open connection, a node that restarted behind a proxy) is
//! caught by reconciliation: after `reconcile_every` without an event, a one-shot query asks
//! for what follows the cursor; if there is anything and the stream has still not delivered it
//! a moment later, the stream is stale and is replaced (the new stream starts from the cursor,
//! so nothing is lost or repeated).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kh_ledger_node::proto::{EventsRequest, IbcProofRequest, LedgerEvent};
use kh_ledger_node::{RpcClient, TlsIdentity, connect_rpc};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How to reach the node as an RPC user.
#[derive(Clone)]
pub struct LedgerEndpoint {
    /// The node's RPC address.
    pub addr: SocketAddr,
    /// The relayer's RPC user certificate and key.
    pub identity: TlsIdentity,
    /// The network root certificate (PEM).
    pub root_pem: String,
}

impl std::fmt::Debug for LedgerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Why a ledger call failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No connection.
    #[error("cannot reach the ledger node at {addr}: {reason}")]
    Connect {
        /// The node.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The node refused or failed the call.
    #[error("ledger node call failed: {0}")]
    Call(#[from] tonic::Status),
    /// The host refused the messages (or the flow did not complete).
    #[error("the ledger refused: {0}")]
    Refused(String),
}

/// An IBC proof from the node.
#[derive(Debug, Clone)]
pub struct IbcProof {
    /// Whether the path holds a value.
    pub exists: bool,
    /// The value, if it does.
    pub value: Vec<u8>,
    /// The proof (a `kh_ibc_ledger::LedgerProof`, BCS).
    pub proof: Vec<u8>,
    /// The host transaction of that height.
    pub host_tx_id: String,
}

impl LedgerEndpoint {
    /// A connected RPC client.
    pub async fn connect(&self) -> Result<RpcClient, LedgerError> {
        connect_rpc(self.addr, &self.identity, &self.root_pem)
            .await
            .map_err(|e| LedgerError::Connect {
                addr: self.addr,
                reason: e.to_string(),
            })
    }

    /// The proof that the IBC host's store holds (or does not hold) `path` at `height`.
    pub async fn ibc_proof(&self, path: &[u8], height: u64) -> Result<IbcProof, LedgerError> {
        let mut client = self.connect().await?;
        let r = client
            .ibc_proof(IbcProofRequest {
                path: path.to_vec(),
                height,
            })
            .await?
            .into_inner();
        Ok(IbcProof {
            exists: r.exists,
            value: r.value,
            proof: r.proof,
            host_tx_id: r.host_tx_id,
        })
    }
}

/// Counters of a running follower.
#[derive(Debug, Default)]
pub struct LedgerFollowStats {
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Streams opened (the first included).
    pub streams: AtomicU64,
    /// Streams found stale by reconciliation.
    pub stale: AtomicU64,
    /// The last cursor delivered.
    pub cursor: AtomicU64,
}

/// Follows the node's events after `after_cursor`; they arrive on the receiver in cursor order.
/// The task ends when the receiver is dropped.
pub fn follow_events(
    endpoint: LedgerEndpoint,
    after_cursor: u64,
    reconcile_every: Duration,
) -> (
    mpsc::Receiver<LedgerEvent>,
    Arc<LedgerFollowStats>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(1024);
    let stats = Arc::new(LedgerFollowStats::default());
    stats.cursor.store(after_cursor, Ordering::Relaxed);
    let task = tokio::spawn(run(
        endpoint,
        after_cursor,
        reconcile_every,
        tx,
        stats.clone(),
    ));
    (rx, stats, task)
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long a stream found behind the node may take to catch up before it is replaced.
const STALE_GRACE: Duration = Duration::from_millis(500);

async fn run(
    endpoint: LedgerEndpoint,
    mut cursor: u64,
    reconcile_every: Duration,
    out: mpsc::Sender<LedgerEvent>,
    stats: Arc<LedgerFollowStats>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if out.is_closed() {
            return;
        }
        let mut client = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "ledger event stream: reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let request = EventsRequest {
            after_cursor: cursor,
            follow: true,
            limit: 0,
        };
        let mut stream = match client.events(request).await {
            Ok(s) => s.into_inner(),
            Err(e) => {
                warn!(error = %e, "ledger event stream refused");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        stats.streams.fetch_add(1, Ordering::Relaxed);
        info!(cursor, node = %endpoint.addr, "following ledger events");
        backoff = BACKOFF_MIN;
        // The probe found an event after the cursor: the stream gets a short grace to deliver
        // it (the probe may have seen a transaction recorded an instant ago) before it is
        // replaced.
        let mut suspect = false;
        loop {
            let wait = if suspect {
                STALE_GRACE.min(reconcile_every)
            } else {
                reconcile_every
            };
            let next = tokio::time::timeout(wait, stream.message()).await;
            match next {
                Ok(Ok(Some(event))) => {
                    suspect = false;
                    if event.cursor <= cursor {
                        warn!(
                            got = event.cursor,
                            cursor, "ledger event out of order; reconnecting"
                        );
                        break;
                    }
                    let c = event.cursor;
                    if out.send(event).await.is_err() {
                        return;
                    }
                    cursor = c;
                    stats.cursor.store(c, Ordering::Relaxed);
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(None)) => {
                    warn!("ledger event stream ended; reconnecting");
                    break;
                }
                Ok(Err(status)) => {
                    warn!(%status, "ledger event stream failed; reconnecting");
                    break;
                }
                Err(_idle) => {
                    if out.is_closed() {
                        return;
                    }
                    if suspect {
                        stats.stale.fetch_add(1, Ordering::Relaxed);
                        warn!(cursor, "ledger event stream is stale; replacing it");
                        break;
                    }
                    suspect = stale(&endpoint, cursor).await;
                }
            }
        }
    }
}

/// Whether the node has an event after `cursor` (or cannot be asked): the open stream then
/// missed it.
async fn stale(endpoint: &LedgerEndpoint, cursor: u64) -> bool {
    let Ok(mut client) = endpoint.connect().await else {
        return true;
    };
    let probe = EventsRequest {
        after_cursor: cursor,
        follow: false,
        limit: 1,
    };
    match client.events(probe).await {
        Ok(s) => matches!(s.into_inner().message().await, Ok(Some(_)) | Err(_)),
        Err(_) => true,
    }
}
