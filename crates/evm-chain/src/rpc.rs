//! Ethereum JSON-RPC over HTTP and WebSocket on one address (jsonrpsee).
//!
//! Errors follow the JSON-RPC 2.0 / Ethereum conventions: -32700 parse error, -32600 invalid
//! request, -32601 method not found, -32602 invalid params (all produced by the server for
//! malformed requests), -32000 for refused transactions and unavailable state, and code 3 with
//! the revert data in `data` for reverted `eth_call` / `eth_estimateGas`.
//!
//! Plain TCP by default; over TLS (with an optional client-certificate requirement) when the
//! devnet is given [`crate::RpcTls`].

use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{
    BatchRequestConfig, HttpBody, IdProvider, Methods, RpcModule, ServerBuilder, ServerConfig,
    ServerHandle, serve_with_graceful_shutdown, stop_channel,
};
use tracing::{debug, warn};

use jsonrpsee::types::SubscriptionId;

use crate::error::DevnetError;
use crate::node::Shared;

mod accounts;
mod blocks;
mod convert;
mod cors;
mod debug;
mod errors;
mod eth;
mod fees;
mod heavy;

pub(crate) use heavy::MAX_HEAVY;
mod filters;
mod logs;
mod params;
mod qbft;
mod state;
mod subscribe;
mod txpool;

use convert::*;
use errors::*;
use fees::*;
use logs::*;
use params::*;
use subscribe::subscribe;

/// Most calls in one batch request (geth's default is 1,000).
pub(crate) const MAX_BATCH: u32 = 1000;

/// Subscription ids as geth and Besu write them: `0x` and 32 hex digits. Unguessable (keccak of
/// a random per-server seed and a counter), so one client cannot unsubscribe another's.
#[derive(Debug)]
struct HexIdProvider {
    seed: [u8; 32],
    counter: std::sync::atomic::AtomicU64,
}

impl Default for HexIdProvider {
    fn default() -> Self {
        Self {
            seed: rand::random(),
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let digest = alloy_primitives::keccak256([self.seed.as_slice(), &n.to_be_bytes()].concat());
        SubscriptionId::Str(format!("0x{}", alloy_primitives::hex::encode(&digest[..16])).into())
    }
}

/// How long a client may take to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts the server (over TLS when `tls` is given); returns its handle and bound address.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    max_body: u32,
    message_buffer: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(ServerHandle, SocketAddr), DevnetError> {
    let config = ServerConfig::builder()
        .max_request_body_size(max_body)
        .max_response_body_size(64 * 1024 * 1024)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .set_id_provider(HexIdProvider::default())
        .set_message_buffer_capacity(u32::try_from(message_buffer).unwrap_or(u32::MAX))
        .build();
    let builder = ServerBuilder::default()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors::Cors));
    let module = module(shared).map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let Some(tls) = tls else {
        let server = builder
            .build(addr)
            .await
            .map_err(|e| DevnetError::Rpc(format!("binding {addr}: {e}")))?;
        let bound = server
            .local_addr()
            .map_err(|e| DevnetError::Rpc(e.to_string()))?;
        return Ok((server.start(module), bound));
    };
    // Over TLS the connections are accepted here and handed, once their handshake is done, to
    // the same jsonrpsee service (same limits, same middleware) as in plain mode.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| DevnetError::Rpc(format!("binding {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let services = builder.to_service_builder();
    let methods: Methods = module.into();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop, handle) = stop_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        debug!(error = %e, "accepting a JSON-RPC connection failed");
                        // Out of descriptors, typically: do not spin.
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stop.clone().shutdown() => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let service = services.clone().build(methods.clone(), stop.clone());
            let service = IncomingBody(service);
            let stopped = stop.clone().shutdown();
            tokio::spawn(async move {
                tokio::pin!(stopped);
                let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                let stream = tokio::select! {
                    done = handshake => match done {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            warn!(%peer, error = %e, "JSON-RPC TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "JSON-RPC TLS handshake timed out");
                            return;
                        }
                    },
                    () = &mut stopped => return,
                };
                if let Err(e) = serve_with_graceful_shutdown(stream, service, stopped).await {
                    debug!(%peer, error = %e, "JSON-RPC connection ended");
                }
            });
        }
    });
    Ok((handle, bound))
}

/// hyper hands requests over with its own body type; the middleware takes jsonrpsee's.
#[derive(Debug, Clone)]
struct IncomingBody<S>(S);

impl<S> tower::Service<http::Request<hyper::body::Incoming>> for IncomingBody<S>
where
    S: tower::Service<jsonrpsee::server::HttpRequest>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        self.0.call(request.map(HttpBody::new))
    }
}

fn module(
    shared: Arc<Shared>,
) -> Result<RpcModule<Arc<Shared>>, jsonrpsee::core::RegisterMethodError> {
    let admin = shared.admin;
    let mut m = RpcModule::new(shared);
    eth::register(&mut m)?;
    state::register(&mut m)?;
    qbft::register(&mut m, admin)?;
    txpool::register(&mut m)?;
    blocks::register(&mut m)?;
    accounts::register(&mut m)?;
    filters::register(&mut m)?;
    debug::register(&mut m)?;
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        subscribe,
    )?;
    Ok(m)
}
