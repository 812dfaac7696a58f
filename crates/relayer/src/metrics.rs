//! What operators watch (R8): Prometheus metrics and a health endpoint, served over HTTP on one
//! address (loopback by default).
//!
//! - `GET /metrics`: the Prometheus text format (OpenMetrics).
//! - `GET /health`: `200` with a JSON summary while the relayer is live, `503` once its loop has
//!   not reported for longer than the configured staleness (a stuck process is unhealthy even if
//!   its HTTP server still answers).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::Mutex;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// A direction of relay, e.g. `evm->ledger`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `from->to`.
    pub direction: String,
}

/// A chain, e.g. `evm` or `ledger`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChainLabel {
    /// The chain's name in the path.
    pub chain: String,
}

/// An LCP call, e.g. `UpdateClient`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// The gRPC method.
    pub method: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The relayer's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Packets (and acks) seen on the source and not yet delivered, per direction.
    pub backlog: Family<DirectionLabel, Gauge>,
    /// Age in milliseconds of the oldest unrelayed packet, per direction.
    pub oldest_unrelayed_ms: Family<DirectionLabel, Gauge>,
    /// One relay step: from taking the event off the queue to the destination's confirmation.
    pub hop_latency: Family<DirectionLabel, Histogram>,
    /// LCP call latency per method.
    pub lcp_call_latency: Family<MethodLabel, Histogram>,
    /// Failed submissions per destination chain.
    pub submission_errors: Family<ChainLabel, Counter>,
    /// Latest height seen per chain.
    pub chain_height: Family<ChainLabel, Gauge>,
    /// Endpoint failovers per chain.
    pub rpc_failovers: Family<ChainLabel, Counter>,
    /// 1 while this process holds the lease (submits), 0 as a standby.
    pub lease_held: Gauge,
}

impl Metrics {
    /// New metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            backlog: Family::default(),
            oldest_unrelayed_ms: Family::default(),
            hop_latency: Family::new_with_constructor(latency_histogram),
            lcp_call_latency: Family::new_with_constructor(latency_histogram),
            submission_errors: Family::default(),
            chain_height: Family::default(),
            rpc_failovers: Family::default(),
            lease_held: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("kh_relayer");
        r.register(
            "backlog_packets",
            "Packets and acknowledgements not yet relayed",
            m.backlog.clone(),
        );
        r.register(
            "oldest_unrelayed_age_milliseconds",
            "Age of the oldest packet not yet relayed",
            m.oldest_unrelayed_ms.clone(),
        );
        r.register(
            "hop_latency_seconds",
            "One relay step, from taking the event off the queue to the destination's confirmation",
            m.hop_latency.clone(),
        );
        r.register(
            "lcp_call_seconds",
            "Latency of calls to LCP",
            m.lcp_call_latency.clone(),
        );
        r.register(
            "submission_errors",
            "Submissions that failed",
            m.submission_errors.clone(),
        );
        r.register("chain_height", "Latest height seen", m.chain_height.clone());
        r.register(
            "rpc_failovers",
            "Changes of the endpoint in use",
            m.rpc_failovers.clone(),
        );
        r.register(
            "lease_held",
            "1 while this process holds the lease",
            m.lease_held.clone(),
        );
        m
    }

    /// The label of a direction.
    pub fn direction(from: &str, to: &str) -> DirectionLabel {
        DirectionLabel {
            direction: format!("{from}->{to}"),
        }
    }

    /// The label of a chain.
    pub fn chain(name: &str) -> ChainLabel {
        ChainLabel {
            chain: name.to_string(),
        }
    }
}

/// What `/health` reports.
#[derive(Debug)]
pub struct Health {
    started: Instant,
    stale_after: Duration,
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    last_beat: Option<Instant>,
    role: &'static str,
    detail: serde_json::Map<String, serde_json::Value>,
}

impl Health {
    /// Healthy while [`Health::beat`] was called within `stale_after`.
    pub fn new(stale_after: Duration) -> Arc<Self> {
        Arc::new(Health {
            started: Instant::now(),
            stale_after,
            state: Mutex::new(HealthState {
                role: "starting",
                ..HealthState::default()
            }),
        })
    }

    /// The relay loop is alive, in `role` (`active` or `standby`).
    pub fn beat(&self, role: &'static str) {
        if let Ok(mut s) = self.state.lock() {
            s.last_beat = Some(Instant::now());
            s.role = role;
        }
    }

    /// Adds a field to the health summary (e.g. a chain's height).
    pub fn set(&self, key: &str, value: serde_json::Value) {
        if let Ok(mut s) = self.state.lock() {
            s.detail.insert(key.to_string(), value);
        }
    }

    fn report(&self) -> (StatusCode, serde_json::Value) {
        let Ok(s) = self.state.lock() else {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "poisoned"}),
            );
        };
        let since = s.last_beat.map(|t| t.elapsed());
        let healthy = since.is_some_and(|d| d <= self.stale_after);
        let body = json!({
            "status": if healthy { "ok" } else { "stale" },
            "role": s.role,
            "uptime_s": self.started.elapsed().as_secs(),
            "last_beat_ms_ago": since.map(|d| d.as_millis() as u64),
            "detail": s.detail,
        });
        let code = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (code, body)
    }
}

/// Serves `/metrics` and `/health` on `addr` until the task is dropped; returns the bound
/// address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "metrics listener");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (registry, health) = (registry.clone(), health.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (registry, health) = (registry.clone(), health.clone());
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &registry, &health)) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(%peer, error = %e, "metrics connection");
                }
            });
        }
    });
    Ok((bound, task))
}

fn answer(req: &Request<Incoming>, registry: &Registry, health: &Health) -> Response<Full<Bytes>> {
    let respond = |code: StatusCode, content_type: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        if let Ok(v) = content_type.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != hyper::Method::GET {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let mut text = String::new();
            match encode(&mut text, registry) {
                Ok(()) => respond(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(e) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    e.to_string(),
                ),
            }
        }
        "/health" => {
            let (code, body) = health.report();
            respond(code, "application/json", body.to_string())
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
