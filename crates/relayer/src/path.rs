//! One configured path between the EVM chain and the ledger, from the configuration file to a
//! running relay: the chain ends, LCP as both chains' prover, the identifiers `relayer tx`
//! created (kept in the path's state file), and the process loop of `relayer start` — the lease
//! that lets one of several processes submit (the others stand by), the metrics and health
//! endpoint, the enclave keys registered again on both chains as LCP offers new ones.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kh_lcp_service::service::{self, Client as LcpGrpc};
use kh_ledger_node::TlsIdentity;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::chain::{
    Chain, HandlerEvent, IbcError, Packet, Positioned, packet_commitment, packet_path,
};
use crate::config::{PathConfig, RelayerConfig};
use crate::evm::follow::{FollowConfig, follow, handler_events};
use crate::evm::ibc::EvmEnd;
use crate::evm::signer::load_tx_signer;
use crate::evm::{EvmTls, FailoverRpc, SubmitPolicy, Submitter};
use crate::handshake::{ChannelSpec, connect, open_channel};
use crate::lcp::{
    LcpClientParams, LcpEvmProver, LcpLedgerProver, create_lcp_client_on, create_ledger_elc,
    create_qbft_elc, register_keys, rotate_key,
};
use crate::lease::Lease;
use crate::ledger::LedgerEndpoint;
use crate::ledger_ibc::{LedgerEnd, ledger_events};
use crate::metrics::{Health, Metrics};
use crate::relay::{RelayEnd, RelayPolicy, RelayStats, relay};

/// Why a path could not be opened, set up or run.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The configuration lacks something the command needs.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A chain or LCP step failed.
    #[error(transparent)]
    Ibc(#[from] IbcError),
    /// The path is not set up far enough for this command.
    #[error("path {0}: run `kakehashi relayer tx {1} {0}` first")]
    NotSetUp(String, &'static str),
}

/// What `relayer tx` created on one chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndState {
    /// This chain's LCP client of the other chain.
    pub client_id: String,
    /// The ELC in LCP that verifies this chain (its prover's).
    pub elc_id: String,
    /// The connection on this chain.
    pub connection_id: String,
    /// The channel on this chain.
    pub channel_id: String,
}

/// The path's state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathState {
    /// The EVM end.
    pub evm: EndState,
    /// The ledger end.
    pub ledger: EndState,
    /// The EVM block the channel opened at: the relay reads logs from there.
    pub evm_from_block: u64,
    /// Where a relay (re)started takes the chains' events up again; absent: from the channel's
    /// opening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// A relay's checkpoint ([`RelayStats::checkpoint`]): every packet, acknowledgement and timeout
/// of the events before these positions was delivered or found done, so a relay started again
/// reads the chains from here instead of replaying the channel's whole history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The EVM block to read handler logs from.
    pub evm_block: u64,
    /// The ledger node's cursor to read host transactions from (that node's numbering).
    pub ledger_cursor: u64,
    /// The ledger node the cursor belongs to; with another node the ledger is read from the start.
    pub ledger_node: String,
}

impl PathState {
    /// Reads the state file (a missing file is an empty state).
    pub fn load(path: &FsPath) -> Result<Self, PathError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PathError::File {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PathState::default()),
            Err(source) => Err(PathError::File {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the state file (whole, through a temporary file).
    pub fn save(&self, path: &FsPath) -> Result<(), PathError> {
        let err = |source| PathError::File {
            path: path.to_path_buf(),
            source,
        };
        // One temporary file per process: relayers sharing a state file never write each other's.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

fn read(path: &FsPath) -> Result<String, PathError> {
    std::fs::read_to_string(path).map_err(|source| PathError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// How to reach the LCP service.
#[derive(Clone)]
pub struct LcpEndpoint {
    /// Its address.
    pub addr: std::net::SocketAddr,
    cert_pem: String,
    key_pem: String,
    root_pem: String,
}

impl std::fmt::Debug for LcpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LcpEndpoint")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl LcpEndpoint {
    /// An endpoint from PEM texts.
    pub fn new(
        addr: std::net::SocketAddr,
        cert_pem: String,
        key_pem: String,
        root_pem: String,
    ) -> Self {
        LcpEndpoint {
            addr,
            cert_pem,
            key_pem,
            root_pem,
        }
    }

    /// A connected client.
    pub async fn connect(&self) -> Result<LcpGrpc, PathError> {
        service::connect(self.addr, &self.cert_pem, &self.key_pem, &self.root_pem)
            .await
            .map_err(|e| IbcError::Prover(format!("LCP at {}: {e}", self.addr)).into())
    }
}

/// A path, opened from the configuration.
#[derive(Debug)]
pub struct RelayPath {
    /// Its name.
    pub name: String,
    /// Its configuration.
    pub config: PathConfig,
    /// The EVM end.
    pub evm: EvmEnd,
    /// The EVM endpoints.
    pub rpc: Arc<FailoverRpc>,
    /// WebSocket endpoints of the EVM chain (doorbell).
    pub ws: Vec<String>,
    /// TLS of the EVM links.
    pub evm_tls: Option<EvmTls>,
    /// The ledger end.
    pub ledger: LedgerEnd,
    /// LCP.
    pub lcp: LcpEndpoint,
    /// What `relayer tx` created.
    pub state: PathState,
    /// Parameters of the LCP clients it creates.
    pub params: LcpClientParams,
    /// The relay's policy.
    pub policy: RelayPolicy,
    /// Reconciliation period of both followers.
    pub reconcile_every: Duration,
}

impl RelayPath {
    /// Opens path `name` of `config`: reads the keys, certificates and the state file; checks
    /// that every EVM endpoint is of the configured chain.
    pub async fn open(config: &RelayerConfig, name: &str) -> Result<Self, PathError> {
        let path = config
            .paths
            .get(name)
            .ok_or_else(|| PathError::Config(format!("no [paths.{name}] in the configuration")))?
            .clone();
        let ledger = config
            .ledger
            .as_ref()
            .ok_or_else(|| PathError::Config("no [ledger] in the configuration".into()))?;
        let lcp = config
            .lcp
            .as_ref()
            .ok_or_else(|| PathError::Config("no [lcp] in the configuration".into()))?;
        let signer = load_tx_signer(&config.evm.signer, config.evm.tls.as_ref())
            .map_err(|e| PathError::Config(format!("evm.signer: {e}")))?;
        let tls = config
            .evm
            .tls
            .as_ref()
            .map(EvmTls::load)
            .transpose()
            .map_err(|e| PathError::Config(format!("evm.tls: {e}")))?;
        let rpc = Arc::new(
            FailoverRpc::with_tls(
                config.evm.chain_id,
                &config.evm.rpc,
                config.evm.request_timeout,
                tls.as_ref(),
            )
            .map_err(|e| PathError::Config(format!("evm.rpc: {e}")))?,
        );
        let submitter = Arc::new(Submitter::with_signer(
            rpc.clone(),
            signer,
            SubmitPolicy {
                confirmations: config.evm.confirmations,
                gas_margin_percent: config.evm.gas_margin_percent,
                confirm_timeout: config.evm.confirm_timeout,
                max_messages_per_tx: config.evm.max_messages_per_tx,
                ..SubmitPolicy::default()
            },
        ));
        let state = PathState::load(&path.state)?;
        let cert_pem = read(&ledger.cert)?;
        let identity = TlsIdentity {
            cert_der: kh_ledger_node::pem_to_der(&cert_pem)
                .map_err(|e| PathError::Config(format!("ledger.cert: {e}")))?,
            cert_pem,
            key_pem: read(&ledger.key)?,
        };
        let mut ledger_end = LedgerEnd::new(
            LedgerEndpoint {
                addr: ledger.rpc,
                identity,
                root_pem: read(&ledger.root_cert)?,
            },
            state.ledger.client_id.clone(),
        );
        ledger_end.flow_timeout = ledger.flow_timeout;
        Ok(RelayPath {
            name: name.to_string(),
            evm: EvmEnd {
                submitter,
                handler: config.evm.handler,
                client_id: state.evm.client_id.clone(),
            },
            rpc,
            ws: config.evm.ws.clone(),
            evm_tls: tls,
            ledger: ledger_end,
            lcp: LcpEndpoint::new(
                lcp.addr,
                read(&lcp.cert)?,
                read(&lcp.key)?,
                read(&lcp.root_cert)?,
            ),
            params: LcpClientParams {
                key_expiration: lcp.key_expiration.as_secs(),
                max_clock_drift: lcp.max_clock_drift,
                ..LcpClientParams::default()
            },
            policy: RelayPolicy {
                max_batch: config.relay.max_batch,
                ..RelayPolicy::default()
            },
            reconcile_every: config.relay.reconcile_every,
            config: path,
            state,
        })
    }

    fn save(&self) -> Result<(), PathError> {
        self.state.save(&self.config.state)
    }

    /// `relayer tx clients`: the ELC of each chain in LCP, the LCP client of each chain on the
    /// other, LCP's enclave keys registered on both.
    pub async fn create_clients(&mut self) -> Result<(), PathError> {
        let mut lcp = self.lcp.connect().await?;
        let (elc_ledger, init) = create_ledger_elc(&mut lcp, &self.ledger, &self.params).await?;
        let evm_client = create_lcp_client_on(&mut lcp, &init, &mut self.evm, &self.params).await?;
        let (elc_evm, init) =
            create_qbft_elc(&mut lcp, &self.rpc, self.evm.handler, &self.params).await?;
        let ledger_client =
            create_lcp_client_on(&mut lcp, &init, &mut self.ledger, &self.params).await?;
        self.state = PathState {
            evm: EndState {
                client_id: evm_client,
                elc_id: elc_evm,
                ..EndState::default()
            },
            ledger: EndState {
                client_id: ledger_client,
                elc_id: elc_ledger,
                ..EndState::default()
            },
            evm_from_block: 0,
            resume: None,
        };
        self.save()?;
        info!(path = %self.name, evm = %self.state.evm.client_id, ledger = %self.state.ledger.client_id, "clients created");
        Ok(())
    }

    /// The two provers: of the EVM chain (towards the ledger's client) and of the ledger.
    pub async fn provers(&self) -> Result<(LcpEvmProver, LcpLedgerProver), PathError> {
        if self.state.evm.elc_id.is_empty() {
            return Err(PathError::NotSetUp(self.name.clone(), "clients"));
        }
        Ok((
            LcpEvmProver::new(
                self.lcp.connect().await?,
                self.state.evm.elc_id.clone(),
                self.rpc.clone(),
                self.evm.handler,
            ),
            LcpLedgerProver::new(
                self.lcp.connect().await?,
                self.state.ledger.elc_id.clone(),
                self.ledger.clone(),
            ),
        ))
    }

    /// `relayer tx connection`: the four connection steps, initiated on the EVM chain.
    pub async fn create_connection(&mut self) -> Result<(), PathError> {
        let (p_evm, p_ledger) = self.provers().await?;
        let (conn_evm, conn_ledger) = connect(&self.evm, &p_evm, &self.ledger, &p_ledger).await?;
        self.state.evm.connection_id = conn_evm;
        self.state.ledger.connection_id = conn_ledger;
        self.save()?;
        info!(path = %self.name, evm = %self.state.evm.connection_id, ledger = %self.state.ledger.connection_id, "connection open");
        Ok(())
    }

    /// `relayer tx channel`: the four channel steps, initiated on the ledger.
    pub async fn create_channel(&mut self) -> Result<(), PathError> {
        if self.state.evm.connection_id.is_empty() {
            return Err(PathError::NotSetUp(self.name.clone(), "connection"));
        }
        let (p_evm, p_ledger) = self.provers().await?;
        let ordering = match self.config.ordering.as_str() {
            "ordered" => ibc_proto::ibc::core::channel::v1::Order::Ordered,
            _ => ibc_proto::ibc::core::channel::v1::Order::Unordered,
        };
        let from_block = self.rpc.block_number().await.map_err(IbcError::from)?;
        let spec = ChannelSpec {
            connection_a: self.state.ledger.connection_id.clone(),
            connection_b: self.state.evm.connection_id.clone(),
            port_a: self.config.ledger_port.clone(),
            port_b: self.config.evm_port.clone(),
            ordering,
            version: self.config.version.clone(),
        };
        let (chan_ledger, chan_evm) =
            open_channel(&self.ledger, &p_ledger, &self.evm, &p_evm, &spec).await?;
        self.state.ledger.channel_id = chan_ledger;
        self.state.evm.channel_id = chan_evm;
        self.state.evm_from_block = from_block;
        self.state.resume = None;
        self.save()?;
        info!(path = %self.name, evm = %self.state.evm.channel_id, ledger = %self.state.ledger.channel_id, "channel open");
        Ok(())
    }

    /// Where the chains' events are read from: the state file's checkpoint when there is one
    /// (read again now: a relayer that took over from another may share its state file), else
    /// the channel's opening — as (EVM block, ledger cursor to read after).
    fn start_positions(&self) -> (u64, u64) {
        let state = PathState::load(&self.config.state).unwrap_or_else(|e| {
            warn!(path = %self.name, error = %e, "state file unreadable; relaying from the channel's opening");
            self.state.clone()
        });
        let mut evm = self.state.evm_from_block;
        let mut ledger_after = 0;
        if let Some(r) = state
            .resume
            .filter(|_| state.evm == self.state.evm && state.ledger == self.state.ledger)
        {
            evm = evm.max(r.evm_block);
            if r.ledger_node == self.ledger.endpoint.addr.to_string() {
                // The checkpoint's own position is read again.
                ledger_after = r.ledger_cursor.saturating_sub(1);
            }
        }
        (evm, ledger_after)
    }

    fn follow_evm(&self, from_block: u64) -> tokio::sync::mpsc::Receiver<Positioned> {
        let (logs, _, _) = follow(
            self.rpc.clone(),
            FollowConfig {
                address: self.evm.handler,
                from_block,
                confirmations: 1,
                ws: self.ws.clone(),
                reconcile_every: self.reconcile_every,
                silence: self.reconcile_every * 5,
                max_range: 5_000,
                tls: self.evm_tls.clone(),
            },
        );
        handler_events(logs)
    }

    /// Relays on the path until both event streams end (they do not, unless the chains'
    /// followers stop): every packet, acknowledgement and timeout since the channel opened,
    /// idempotently.
    pub async fn relay(
        &self,
        stats: Arc<RelayStats>,
        metrics: Option<Metrics>,
    ) -> Result<(), PathError> {
        if self.state.evm.channel_id.is_empty() {
            return Err(PathError::NotSetUp(self.name.clone(), "channel"));
        }
        let (mut p_evm, mut p_ledger) = self.provers().await?;
        if let Some(m) = &metrics {
            p_evm = p_evm.with_lcp_latency(m.lcp_call_latency.clone());
            p_ledger = p_ledger.with_lcp_latency(m.lcp_call_latency.clone());
        }
        let (evm_from, ledger_after) = self.start_positions();
        info!(path = %self.name, evm_block = evm_from, ledger_cursor = ledger_after, "relaying from");
        let checkpoints = self.keep_checkpoints(stats.clone());
        let watch = metrics.clone().map(|m| self.watch_chains(m));
        relay(
            RelayEnd {
                name: "evm".into(),
                chain: self.evm.clone(),
                prover: p_evm,
                events: self.follow_evm(evm_from),
            },
            RelayEnd {
                name: "ledger".into(),
                chain: self.ledger.clone(),
                prover: p_ledger,
                events: ledger_events(self.ledger.clone(), ledger_after, self.reconcile_every),
            },
            stats,
            metrics,
            self.policy.clone(),
        )
        .await;
        checkpoints.abort();
        if let Some(w) = watch {
            w.abort();
        }
        Ok(())
    }

    /// Feeds the chains' heights and the EVM endpoint failovers into `metrics` every
    /// reconciliation period, until aborted.
    fn watch_chains(&self, metrics: Metrics) -> tokio::task::JoinHandle<()> {
        let (evm, ledger, rpc, every) = (
            self.evm.clone(),
            self.ledger.clone(),
            self.rpc.clone(),
            self.reconcile_every,
        );
        tokio::spawn(async move {
            let mut failovers = 0;
            loop {
                for (name, head) in [("evm", evm.head().await), ("ledger", ledger.head().await)] {
                    match head {
                        Ok((height, _)) => {
                            metrics
                                .chain_height
                                .get_or_create(&Metrics::chain(name))
                                .set(i64::try_from(height).unwrap_or(i64::MAX));
                        }
                        Err(e) => debug!(chain = name, error = %e, "reading the head"),
                    }
                }
                let now = rpc.failovers();
                metrics
                    .rpc_failovers
                    .get_or_create(&Metrics::chain("evm"))
                    .inc_by(now.saturating_sub(failovers));
                failovers = now;
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Writes the relay's checkpoint into the state file whenever it moved (checked every
    /// reconciliation period), until aborted.
    fn keep_checkpoints(&self, stats: Arc<RelayStats>) -> tokio::task::JoinHandle<()> {
        let (file, name, every) = (
            self.config.state.clone(),
            self.name.clone(),
            self.reconcile_every,
        );
        let (ends, node) = (
            (self.state.evm.clone(), self.state.ledger.clone()),
            self.ledger.endpoint.addr.to_string(),
        );
        tokio::spawn(async move {
            let mut written = None;
            loop {
                tokio::time::sleep(every).await;
                let [Some(evm_block), Some(ledger_cursor)] = stats.checkpoint() else {
                    continue;
                };
                let resume = Resume {
                    evm_block,
                    ledger_cursor,
                    ledger_node: node.clone(),
                };
                if written.as_ref() == Some(&resume) {
                    continue;
                }
                let result = PathState::load(&file).and_then(|mut state| {
                    // Only for the path as this relay knows it (not one set up again meanwhile).
                    if (state.evm.clone(), state.ledger.clone()) != ends {
                        return Ok(());
                    }
                    state.resume = Some(resume.clone());
                    state.save(&file)
                });
                match result {
                    Ok(()) => written = Some(resume),
                    Err(e) => warn!(path = %name, error = %e, "writing the relay checkpoint"),
                }
            }
        })
    }

    /// Registers LCP's current enclave keys on both chains' LCP clients.
    pub async fn refresh_keys(&self) -> Result<usize, PathError> {
        let mut lcp = self.lcp.connect().await?;
        let n = register_keys(&mut lcp, &self.evm).await?;
        register_keys(&mut lcp, &self.ledger).await?;
        Ok(n)
    }

    /// Has LCP generate a new enclave key when the freshest one nears its expiry on the chains
    /// (a quarter of the validity left), and registers it on both; whether it did.
    pub async fn rotate_keys(&self) -> Result<bool, PathError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut lcp = self.lcp.connect().await?;
        if !rotate_key(&mut lcp, self.params.key_expiration, now).await? {
            return Ok(false);
        }
        info!(path = %self.name, "LCP generated a new enclave key; registering it");
        self.refresh_keys().await?;
        Ok(true)
    }

    /// `relayer query unrelayed`: the packets of the path's channel still in flight — sent
    /// (their commitment still stored at the source) and not yet received at the destination,
    /// or received and not yet acknowledged — by direction, from the chains' events and stores.
    pub async fn unrelayed(&self) -> Result<Unrelayed, PathError> {
        if self.state.evm.channel_id.is_empty() {
            return Err(PathError::NotSetUp(self.name.clone(), "channel"));
        }
        let mut sent: Vec<(bool, Packet)> = Vec::new();
        let (evm_from, ledger_after) = self.start_positions();
        let mut evm_events = self.follow_evm(evm_from);
        let mut ledger_events =
            ledger_events(self.ledger.clone(), ledger_after, self.reconcile_every);
        // The histories up to now: each stream until it has been quiet for a while.
        let quiet = self.reconcile_every * 3;
        while let Ok(Some(e)) = tokio::time::timeout(quiet, evm_events.recv()).await {
            if let (_, HandlerEvent::SendPacket(p)) = e {
                sent.push((true, p));
            }
        }
        while let Ok(Some(e)) = tokio::time::timeout(quiet, ledger_events.recv()).await {
            if let (_, HandlerEvent::SendPacket(p)) = e {
                sent.push((false, p));
            }
        }
        let mut out = Unrelayed::default();
        for (from_evm, p) in sent {
            let (src_channel, list) = if from_evm {
                (&self.state.evm.channel_id, &mut out.evm_to_ledger)
            } else {
                (&self.state.ledger.channel_id, &mut out.ledger_to_evm)
            };
            if &p.sourceChannel != src_channel {
                continue;
            }
            let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
            let held = if from_evm {
                self.evm.holds(&path, &packet_commitment(&p)).await?
            } else {
                self.ledger.holds(&path, &packet_commitment(&p)).await?
            };
            if held {
                list.push(p.sequence);
            }
        }
        out.evm_to_ledger.sort_unstable();
        out.ledger_to_evm.sort_unstable();
        Ok(out)
    }
}

/// Packets still in flight on a path, by sequence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unrelayed {
    /// Sent on the EVM chain, not yet acknowledged or timed out there.
    pub evm_to_ledger: Vec<u64>,
    /// Sent on the ledger, not yet acknowledged or timed out there.
    pub ledger_to_evm: Vec<u64>,
}

/// `relayer start`: serves metrics and health, then relays on `path` while this process holds
/// the lease, standing by while another does, until `shutdown` resolves.
pub async fn serve(
    config: &RelayerConfig,
    path: Arc<RelayPath>,
    holder: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PathError> {
    if path.state.evm.channel_id.is_empty() {
        return Err(PathError::NotSetUp(path.name.clone(), "channel"));
    }
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::new(Duration::from_secs(30));
    let (addr, _metrics_task) =
        crate::metrics::serve(config.metrics.listen, Arc::new(registry), health.clone())
            .await
            .map_err(|source| PathError::File {
                path: PathBuf::from(config.metrics.listen.to_string()),
                source,
            })?;
    info!(%addr, "metrics and health");
    let mut lease = Lease::open(&config.lease, &path.name, holder)
        .await
        .map_err(|e| PathError::Config(format!("lease: {e}")))?;
    let stats = Arc::new(RelayStats::default());
    tokio::pin!(shutdown);
    loop {
        // Standby until the lease is ours.
        metrics.lease_held.set(0);
        loop {
            match lease.try_acquire().await {
                Ok(Some(epoch)) => {
                    info!(epoch, "lease taken: relaying");
                    break;
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "lease"),
            }
            health.beat("standby");
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = tokio::time::sleep(lease.interval()) => {}
            }
        }
        metrics.lease_held.set(1);
        let keys = {
            let path = path.clone();
            let every = config.relay.key_refresh;
            tokio::spawn(async move {
                // Every key LCP offers once on taking over (a key generated while another
                // process held the lease), then new keys as they are generated.
                if let Err(e) = path.refresh_keys().await {
                    warn!(error = %e, "registering LCP's enclave keys");
                }
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = path.rotate_keys().await {
                        warn!(error = %e, "rotating LCP's enclave key");
                    }
                }
            })
        };
        let relaying = {
            let path = path.clone();
            let stats = stats.clone();
            let metrics = metrics.clone();
            tokio::spawn(async move { path.relay(stats, Some(metrics)).await })
        };
        // Active while the lease is renewed.
        let started = Instant::now();
        let lost = loop {
            health.beat("active");
            health.set(
                "relayed_for_s",
                serde_json::json!(started.elapsed().as_secs()),
            );
            tokio::select! {
                _ = &mut shutdown => break false,
                _ = tokio::time::sleep(lease.interval()) => {}
            }
            if relaying.is_finished() {
                break true;
            }
            match lease.try_acquire().await {
                Ok(Some(_)) => {}
                Ok(None) => break true,
                Err(e) => {
                    warn!(error = %e, "renewing the lease");
                    if !lease.is_valid() {
                        break true;
                    }
                }
            }
        };
        relaying.abort();
        keys.abort();
        if !lost {
            let _ = lease.release().await;
            return Ok(());
        }
        warn!("lease lost (or the relay stopped): standing by");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_without_a_checkpoint_still_load_and_checkpoints_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        // A state file written before checkpoints existed.
        std::fs::write(
            &file,
            r#"{"evm":{"client_id":"lcp-client-0","elc_id":"e","connection_id":"connection-0","channel_id":"channel-0"},
               "ledger":{"client_id":"07-lcp-0","elc_id":"l","connection_id":"connection-0","channel_id":"channel-0"},
               "evm_from_block":42}"#,
        )
        .unwrap();
        let mut state = PathState::load(&file).unwrap();
        assert_eq!(state.resume, None);
        assert_eq!(state.evm_from_block, 42);
        state.resume = Some(Resume {
            evm_block: 50,
            ledger_cursor: 7,
            ledger_node: "127.0.0.1:1".into(),
        });
        state.save(&file).unwrap();
        assert_eq!(PathState::load(&file).unwrap(), state);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
