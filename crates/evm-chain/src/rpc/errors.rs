//! JSON-RPC error objects and codes.

use alloy_primitives::U256;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;

use crate::chain::CallOutcome;

pub(super) type RpcResult<T> = Result<T, ErrorObjectOwned>;

pub(super) const INVALID_PARAMS: i32 = -32602;
pub(super) const SERVER_ERROR: i32 = -32000;
pub(super) const EXECUTION_REVERTED: i32 = 3;
/// A request over one of the server's limits (EIP-1474 "limit exceeded").
pub(super) const LIMIT_EXCEEDED: i32 = -32005;

pub(super) fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

pub(super) fn invalid(msg: impl std::fmt::Display) -> ErrorObjectOwned {
    err(INVALID_PARAMS, format!("invalid params: {msg}"))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> RpcResult<Value> {
    serde_json::to_value(value).map_err(|e| err(-32603, format!("internal error: {e}")))
}

pub(super) fn call_error(outcome: CallOutcome) -> ErrorObjectOwned {
    match outcome {
        CallOutcome::Revert { output, .. } => {
            let reason = revert_reason(&output);
            let msg = match reason {
                Some(r) => format!("execution reverted: {r}"),
                None => "execution reverted".to_string(),
            };
            ErrorObjectOwned::owned(EXECUTION_REVERTED, msg, Some(output))
        }
        CallOutcome::Halt { reason } => err(SERVER_ERROR, format!("execution halted: {reason}")),
        CallOutcome::Success { .. } => err(-32603, "internal error: success reported as failure"),
    }
}

/// Decodes `Error(string)` revert data.
pub(super) fn revert_reason(output: &[u8]) -> Option<String> {
    let data = output.strip_prefix(&[0x08, 0xc3, 0x79, 0xa0][..])?;
    if data.len() < 64 {
        return None;
    }
    let len = usize::try_from(U256::from_be_slice(&data[32..64])).ok()?;
    let bytes = data.get(64..64 + len)?;
    String::from_utf8(bytes.to_vec()).ok()
}

pub(super) fn state_unavailable() -> ErrorObjectOwned {
    err(
        SERVER_ERROR,
        "state for that block is not available (pruned or unknown block)",
    )
}
