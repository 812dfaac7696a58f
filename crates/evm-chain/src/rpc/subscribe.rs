//! `eth_subscribe`: new heads and logs over WebSocket.

use std::sync::Arc;

use alloy_rpc_types_eth::Filter;
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::server::SubscriptionMessage;
use jsonrpsee::types::Params;
use serde_json::Value;

use crate::node::Shared;

use super::*;

#[allow(clippy::redundant_allocation)] // jsonrpsee hands the module context over in its own Arc
pub(super) async fn subscribe(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    shared: Arc<Arc<Shared>>,
    _ext: jsonrpsee::Extensions,
) -> jsonrpsee::core::SubscriptionResult {
    let mut seq = params.sequence();
    let kind: String = seq.next()?;
    let filter: Option<Filter> = match kind.as_str() {
        "newHeads" => None,
        "logs" => Some(seq.optional_next::<Filter>()?.unwrap_or_default()),
        other => {
            pending
                .reject(invalid(format!("unsupported subscription {other:?}")))
                .await;
            return Ok(());
        }
    };
    let mut blocks = shared.blocks.subscribe();
    let sink = pending.accept().await?;
    loop {
        let number = tokio::select! {
            n = blocks.recv() => match n {
                Ok(n) => n,
                // Skipping would silently lose events: close the subscription with an error
                // so the client knows to resubscribe and catch up with eth_getLogs.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "closing a subscription that fell behind");
                    return Err(format!(
                        "subscriber fell behind by {missed} blocks; resubscribe and fetch the gap"
                    )
                    .into());
                }
                Err(_) => return Ok(()),
            },
            _ = sink.closed() => return Ok(()),
        };
        let messages: Vec<Value> = {
            // The block is taken under the chain lock; its logs are matched without it.
            let Some(block) = shared.chain.read().blocks_shared(number, number).pop() else {
                continue;
            };
            match &filter {
                None => vec![serde_json::to_value(rpc_header(&block))?],
                Some(f) => block_logs(&block, f)
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?,
            }
        };
        for msg in messages {
            sink.send(SubscriptionMessage::new(
                sink.method_name(),
                sink.subscription_id(),
                &msg,
            )?)
            .await?;
        }
    }
}
