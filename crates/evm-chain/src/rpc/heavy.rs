//! Expensive methods (calls, gas estimation, proofs, log queries, fee history) run on
//! blocking threads, at most [`MAX_HEAVY`] at a time, so they never occupy the async workers
//! that serve other requests and announce blocks; further requests wait for a permit.

use std::sync::Arc;

use jsonrpsee::server::RpcModule;
use jsonrpsee::types::Params;

use super::errors::{RpcResult, err};
use crate::node::Shared;

/// Expensive requests executed at once.
pub(crate) const MAX_HEAVY: usize = 4;

/// Registers `f` as a method run on a blocking thread under the heavy-work semaphore.
pub(super) fn register_heavy<T, F>(
    m: &mut RpcModule<Arc<Shared>>,
    name: &'static str,
    f: F,
) -> Result<(), jsonrpsee::core::RegisterMethodError>
where
    T: serde::Serialize + Clone + Send + 'static,
    F: Fn(Params<'static>, &Shared) -> RpcResult<T> + Clone + Send + Sync + 'static,
{
    m.register_async_method(name, move |p, s, _| {
        let f = f.clone();
        async move {
            let _permit = s
                .heavy
                .acquire()
                .await
                .map_err(|_| err(-32603, "internal error: the server is stopping"))?;
            let node = s.clone();
            tokio::task::spawn_blocking(move || f(p, &node))
                .await
                .map_err(|e| err(-32603, format!("internal error: {e}")))?
        }
    })?;
    Ok(())
}
