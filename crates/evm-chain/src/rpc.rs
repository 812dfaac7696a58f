//! Ethereum JSON-RPC over HTTP and WebSocket on one address (jsonrpsee).
//!
//! Errors follow the JSON-RPC 2.0 / Ethereum conventions: -32700 parse error, -32600 invalid
//! request, -32601 method not found, -32602 invalid params (all produced by the server for
//! malformed requests), -32000 for refused transactions and unavailable state, and code 3 with
//! the revert data in `data` for reverted `eth_call` / `eth_estimateGas`.

use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{
    BatchRequestConfig, IdProvider, RpcModule, ServerBuilder, ServerConfig, ServerHandle,
};

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

/// Starts the server; returns its handle and bound address.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    max_body: u32,
    message_buffer: usize,
) -> Result<(ServerHandle, SocketAddr), DevnetError> {
    let config = ServerConfig::builder()
        .max_request_body_size(max_body)
        .max_response_body_size(64 * 1024 * 1024)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .set_id_provider(HexIdProvider::default())
        .set_message_buffer_capacity(u32::try_from(message_buffer).unwrap_or(u32::MAX))
        .build();
    let server = ServerBuilder::default()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors::Cors))
        .build(addr)
        .await
        .map_err(|e| DevnetError::Rpc(format!("binding {addr}: {e}")))?;
    let bound = server
        .local_addr()
        .map_err(|e| DevnetError::Rpc(e.to_string()))?;
    let module = module(shared).map_err(|e| DevnetError::Rpc(e.to_string()))?;
    Ok((server.start(module), bound))
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
