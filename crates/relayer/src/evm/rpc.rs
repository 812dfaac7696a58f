//! Ethereum JSON-RPC over several endpoints with failover (R5: the chain's RPC nodes are hot
//! standbys of each other for the relayer).
//!
//! Requests go to the endpoint in use. When it does not answer (connection refused, reset,
//! timeout), the next endpoint in the list is tried, and so on once around the list; the one
//! that answers becomes the endpoint in use. An endpoint that *answers* with a JSON-RPC error
//! (a revert, a bad nonce) is not failed over from: the answer is the chain's. Before its first
//! use, every endpoint must report the configured chain id, so a misconfigured or hostile node of
//! another chain is never used.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use jsonrpsee::core::client::{ClientT, Error as ClientError};
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::warn;

use super::tls::EvmTls;

/// Why a JSON-RPC request failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// No endpoint answered.
    #[error("no EVM endpoint answered {method}; last failure at {url}: {reason}")]
    Unavailable {
        /// The method.
        method: String,
        /// The last endpoint tried.
        url: String,
        /// Its failure.
        reason: String,
    },
    /// The endpoint answered with a JSON-RPC error.
    #[error("{url} answered {method} with error {code}: {message}")]
    Call {
        /// The endpoint.
        url: String,
        /// The method.
        method: String,
        /// The JSON-RPC error code.
        code: i32,
        /// The error message.
        message: String,
        /// The error's data (e.g. revert data), as JSON text.
        data: Option<String>,
    },
    /// An endpoint serves another chain.
    #[error("{url} serves chain {got}, not the configured {expected}")]
    WrongChain {
        /// The endpoint.
        url: String,
        /// Its chain id.
        got: u64,
        /// The configured chain id.
        expected: u64,
    },
    /// The answer did not have the expected shape.
    #[error("{url}: malformed answer to {method}: {reason}")]
    Malformed {
        /// The endpoint.
        url: String,
        /// The method.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// An endpoint URL that cannot be used.
    #[error("invalid EVM endpoint {url}: {reason}")]
    Endpoint {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

struct Endpoint {
    url: String,
    client: HttpClient,
    chain_checked: AtomicBool,
}

/// JSON-RPC client over an ordered list of endpoints of one chain.
pub struct FailoverRpc {
    chain_id: u64,
    endpoints: Vec<Endpoint>,
    current: AtomicUsize,
    failovers: AtomicU64,
}

impl std::fmt::Debug for FailoverRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailoverRpc")
            .field("chain_id", &self.chain_id)
            .field("current", &self.current_url())
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

/// A JSON-RPC quantity (`"0x…"`) as u64.
pub fn quantity(value: &Value) -> Option<u64> {
    let s = value.as_str()?.strip_prefix("0x")?;
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

impl FailoverRpc {
    /// Clients for `urls` (in order of preference), each request bounded by `timeout`.
    pub fn new(chain_id: u64, urls: &[String], timeout: Duration) -> Result<Self, RpcError> {
        Self::with_tls(chain_id, urls, timeout, None)
    }

    /// As [`FailoverRpc::new`], `https://` endpoints checked against and authenticated with
    /// `tls` (without it: the system's roots, no client certificate).
    pub fn with_tls(
        chain_id: u64,
        urls: &[String],
        timeout: Duration,
        tls: Option<&EvmTls>,
    ) -> Result<Self, RpcError> {
        if urls.is_empty() {
            return Err(RpcError::Endpoint {
                url: String::new(),
                reason: "no endpoint given".into(),
            });
        }
        let endpoints = urls
            .iter()
            .map(|url| {
                let mut builder = HttpClientBuilder::default()
                    .request_timeout(timeout)
                    .max_response_size(64 << 20);
                if let Some(tls) = tls {
                    builder = builder.with_custom_cert_store(tls.client_config());
                }
                let client = builder.build(url).map_err(|e| RpcError::Endpoint {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Endpoint {
                    url: url.clone(),
                    client,
                    chain_checked: AtomicBool::new(false),
                })
            })
            .collect::<Result<Vec<_>, RpcError>>()?;
        Ok(FailoverRpc {
            chain_id,
            endpoints,
            current: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
        })
    }

    /// The configured chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The endpoint in use.
    pub fn current_url(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        &self.endpoints[i].url
    }

    /// How many times the endpoint in use changed.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Sends `method(params)` to the endpoint in use, failing over as the module doc says.
    pub async fn request<R: DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<R, RpcError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last: Option<RpcError> = None;
        for attempt in 0..n {
            let i = (start + attempt) % n;
            let endpoint = &self.endpoints[i];
            if !endpoint.chain_checked.load(Ordering::Relaxed) {
                match self.check_chain(endpoint).await {
                    Ok(()) => endpoint.chain_checked.store(true, Ordering::Relaxed),
                    Err(e) => {
                        warn!(url = %endpoint.url, error = %e, "EVM endpoint not usable");
                        last = Some(e);
                        continue;
                    }
                }
            }
            match call::<R>(endpoint, method, &params).await {
                Ok(value) => {
                    if i != start
                        && self
                            .current
                            .compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        self.failovers.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            from = %self.endpoints[start].url,
                            to = %endpoint.url,
                            "EVM endpoint failover"
                        );
                    }
                    return Ok(value);
                }
                Err(e @ (RpcError::Call { .. } | RpcError::Malformed { .. })) => return Err(e),
                Err(e) => {
                    warn!(url = %endpoint.url, %method, error = %e, "EVM endpoint did not answer");
                    // A node that comes back may have been replaced: check its chain again.
                    endpoint.chain_checked.store(false, Ordering::Relaxed);
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(RpcError::Unavailable { url, reason, .. }) => RpcError::Unavailable {
                method: method.to_string(),
                url,
                reason,
            },
            Some(other) => other,
            None => RpcError::Unavailable {
                method: method.to_string(),
                url: String::new(),
                reason: "no endpoint".into(),
            },
        })
    }

    async fn check_chain(&self, endpoint: &Endpoint) -> Result<(), RpcError> {
        let value: Value = call(endpoint, "eth_chainId", &[]).await?;
        let got = quantity(&value).ok_or_else(|| RpcError::Malformed {
            url: endpoint.url.clone(),
            method: "eth_chainId".into(),
            reason: format!("not a quantity: {value}"),
        })?;
        if got != self.chain_id {
            return Err(RpcError::WrongChain {
                url: endpoint.url.clone(),
                got,
                expected: self.chain_id,
            });
        }
        Ok(())
    }

    /// `method(params)` answered with a quantity.
    pub async fn quantity(&self, method: &str, params: Vec<Value>) -> Result<u64, RpcError> {
        let value: Value = self.request(method, params).await?;
        quantity(&value).ok_or_else(|| RpcError::Malformed {
            url: self.current_url().to_string(),
            method: method.to_string(),
            reason: format!("not a quantity: {value}"),
        })
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64, RpcError> {
        self.quantity("eth_blockNumber", vec![]).await
    }
}

async fn call<R: DeserializeOwned>(
    endpoint: &Endpoint,
    method: &str,
    params: &[Value],
) -> Result<R, RpcError> {
    let mut array = ArrayParams::new();
    for p in params {
        array.insert(p).map_err(|e| RpcError::Malformed {
            url: endpoint.url.clone(),
            method: method.to_string(),
            reason: e.to_string(),
        })?;
    }
    endpoint
        .client
        .request::<R, _>(method, array)
        .await
        .map_err(|e| match e {
            ClientError::Call(obj) => RpcError::Call {
                url: endpoint.url.clone(),
                method: method.to_string(),
                code: obj.code(),
                message: obj.message().to_string(),
                data: obj.data().map(|d| d.get().to_string()),
            },
            ClientError::ParseError(e) => RpcError::Malformed {
                url: endpoint.url.clone(),
                method: method.to_string(),
                reason: e.to_string(),
            },
            other => RpcError::Unavailable {
                method: method.to_string(),
                url: endpoint.url.clone(),
                reason: other.to_string(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_strict() {
        assert_eq!(quantity(&Value::from("0x0")), Some(0));
        assert_eq!(quantity(&Value::from("0x1a")), Some(26));
        assert_eq!(quantity(&Value::from("0x01")), None);
        assert_eq!(quantity(&Value::from("0x")), None);
        assert_eq!(quantity(&Value::from("12")), None);
        assert_eq!(quantity(&Value::from(12)), None);
    }
}
