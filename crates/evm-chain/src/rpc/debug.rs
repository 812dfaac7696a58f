//! `debug_traceTransaction` and `debug_traceCall` with geth's default struct logger or its
//! `callTracer`, and `eth_createAccessList`. All run on the heavy-work pool.

use std::sync::Arc;

use alloy_eips::BlockId;
use alloy_eips::eip2930::AccessList;
use alloy_primitives::{B256, U64};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_eth::state::StateOverride;
use jsonrpsee::server::RpcModule;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::heavy::register_heavy;
use crate::chain::{CallTracerOptions, StructLogOptions, TraceError};
use crate::node::Shared;

use super::*;

/// geth's tracer options (second parameter of `debug_traceTransaction`, third of
/// `debug_traceCall`): the default struct logger, or `{"tracer": "callTracer"}` with its
/// `tracerConfig` (`onlyTopCall`, `withLog`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceOptions {
    #[serde(default)]
    enable_memory: bool,
    #[serde(default)]
    disable_stack: bool,
    #[serde(default)]
    disable_storage: bool,
    #[serde(default)]
    tracer: Option<String>,
    #[serde(default)]
    tracer_config: Option<Value>,
    #[serde(default)]
    state_overrides: Option<StateOverride>,
}

/// Which tracer a request asked for.
enum Tracer {
    StructLogger(StructLogOptions),
    Call(CallTracerOptions),
}

impl TraceOptions {
    fn tracer(&self) -> RpcResult<Tracer> {
        match self.tracer.as_deref() {
            None => Ok(Tracer::StructLogger(StructLogOptions {
                enable_memory: self.enable_memory,
                disable_stack: self.disable_stack,
                disable_storage: self.disable_storage,
            })),
            Some("callTracer") => {
                let options = match &self.tracer_config {
                    None | Some(Value::Null) => CallTracerOptions::default(),
                    Some(config) => serde_json::from_value(config.clone())
                        .map_err(|e| invalid(format!("callTracer tracerConfig: {e}")))?,
                };
                Ok(Tracer::Call(options))
            }
            Some(t) => Err(invalid(format!(
                "tracer {t:?} is not supported; the default struct logger and callTracer are"
            ))),
        }
    }
}

fn trace_error(e: TraceError) -> jsonrpsee::types::ErrorObjectOwned {
    err(LIMIT_EXCEEDED, e.to_string())
}

/// `eth_createAccessList`'s answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessListAnswer {
    access_list: AccessList,
    gas_used: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(super) fn register(
    m: &mut RpcModule<Arc<Shared>>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    register_heavy(
        m,
        "eth_createAccessList",
        |p, s| -> RpcResult<AccessListAnswer> {
            let (req, block) = call_params(&p)?;
            let view = {
                let chain = s.chain.read();
                let number = block_number(&chain, block)?;
                chain.call_view(number).ok_or_else(state_unavailable)?
            };
            let r = view.create_access_list(&req);
            Ok(AccessListAnswer {
                access_list: r.access_list,
                gas_used: U64::from(r.gas_used),
                error: r.error,
            })
        },
    )?;
    register_heavy(m, "debug_traceTransaction", |p, s| -> RpcResult<Value> {
        let mut seq = p.sequence();
        let hash: B256 = seq.next()?;
        let options: TraceOptions = seq.optional_next()?.unwrap_or_default();
        let tracer = options.tracer()?;
        let view = {
            let chain = s.chain.read();
            match chain.replay_view(&hash) {
                None => return Err(err(SERVER_ERROR, "transaction not found")),
                Some(None) => return Err(state_unavailable()),
                Some(Some(v)) => v,
            }
        };
        match tracer {
            Tracer::StructLogger(o) => to_json(&view.trace(o).map_err(trace_error)?),
            Tracer::Call(o) => to_json(&view.call_trace(o).map_err(trace_error)?),
        }
    })?;
    register_heavy(m, "debug_traceCall", |p, s| -> RpcResult<Value> {
        let mut seq = p.sequence();
        let tx: TransactionRequest = seq.next()?;
        let block: BlockId = seq.optional_next()?.unwrap_or_default();
        let options: TraceOptions = seq.optional_next()?.unwrap_or_default();
        let tracer = options.tracer()?;
        if let Some(o) = &options.state_overrides {
            crate::chain::check_overrides(o).map_err(invalid)?;
        }
        let req = request_of(tx, options.state_overrides);
        let view = {
            let chain = s.chain.read();
            let number = block_number(&chain, block)?;
            chain.call_view(number).ok_or_else(state_unavailable)?
        };
        match tracer {
            Tracer::StructLogger(o) => to_json(&view.trace(&req, o).map_err(trace_error)?),
            Tracer::Call(o) => to_json(&view.call_trace(&req, o).map_err(trace_error)?),
        }
    })?;
    Ok(())
}
