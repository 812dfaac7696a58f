//! Submitting transactions: gas estimation (with a margin), EIP-1559 fees from the chain, a
//! locally managed nonce, and confirmation depth.
//!
//! The nonce is read once (`eth_getTransactionCount(pending)`) and then counted locally under a
//! lock, so concurrent submissions never share one. A node that says the nonce is too low (the
//! account was used elsewhere) makes the submitter read it again and sign again, a bounded number
//! of times. A transaction the node already knows counts as sent. A failure to reach one
//! endpoint re-sends the same signed bytes to the next (the same hash: never a second
//! transaction).

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{Revert, SolError};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use super::rpc::{FailoverRpc, RpcError, quantity};

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The chain could not be asked.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The call reverts (found by the estimate, or the mined transaction failed).
    #[error("reverted: {reason}")]
    Reverted {
        /// `Error(string)`'s message, or the custom error's data in hex.
        reason: String,
        /// The revert data, when the node gave it.
        data: Option<Bytes>,
    },
    /// Not confirmed in time (it may still be mined; its hash is given).
    #[error("transaction {tx_hash} not confirmed within {waited:?}")]
    Timeout {
        /// The transaction.
        tx_hash: B256,
        /// How long the submitter waited.
        waited: Duration,
    },
    /// The node's answer did not have the expected shape.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The signer failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// One event log of a confirmed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// The emitting contract.
    pub address: Address,
    /// Its topics.
    pub topics: Vec<B256>,
    /// Its data.
    pub data: Bytes,
}

/// A confirmed, successful transaction.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// Its hash.
    pub tx_hash: B256,
    /// The block it is in.
    pub block_number: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Its logs.
    pub logs: Vec<Log>,
}

/// Submission policy.
#[derive(Debug, Clone, Copy)]
pub struct SubmitPolicy {
    /// Blocks on top of the transaction's (1 = included).
    pub confirmations: u64,
    /// Added to the estimate, in percent.
    pub gas_margin_percent: u64,
    /// Bound on the wait for confirmation.
    pub confirm_timeout: Duration,
    /// How often the receipt is polled.
    pub poll: Duration,
    /// At most this many IBC messages (packets, acknowledgements, timeouts; a client update not
    /// counted) in one handler `multicall` transaction; a larger batch goes in several.
    pub max_messages_per_tx: usize,
}

impl Default for SubmitPolicy {
    fn default() -> Self {
        SubmitPolicy {
            confirmations: 1,
            gas_margin_percent: 20,
            confirm_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(50),
            // 50 messages through LCP are about 5.6M gas. A multicall's eth_estimateGas runs the
            // whole batch once per step of its binary search: on a slow node (a debug-built
            // devnet under load) that one request can outlast a short request timeout; lower
            // this there (the process test uses 20).
            max_messages_per_tx: 50,
        }
    }
}

/// A remote signer: `eth_signTransaction` over JSON-RPC (Web3Signer's form: the answer is the
/// signed transaction). Its answers are checked, never trusted: decoded, compared field by field
/// with the request, and the signer recovered.
#[derive(Debug, Clone)]
pub struct RemoteSigner {
    client: jsonrpsee::http_client::HttpClient,
    url: String,
    address: Address,
}

impl RemoteSigner {
    /// A signer at `url` for `address`.
    pub fn new(url: &str, address: Address) -> Result<Self, String> {
        Self::with_tls(url, address, None)
    }

    /// A signer at `url` for `address`, an `https://` URL checked and authenticated with `tls`.
    pub fn with_tls(
        url: &str,
        address: Address,
        tls: Option<&super::tls::EvmTls>,
    ) -> Result<Self, String> {
        let mut builder = jsonrpsee::http_client::HttpClientBuilder::default()
            .request_timeout(std::time::Duration::from_secs(10));
        if let Some(tls) = tls {
            builder = builder.with_custom_cert_store(tls.client_config());
        }
        let client = builder.build(url).map_err(|e| e.to_string())?;
        Ok(RemoteSigner {
            client,
            url: url.to_string(),
            address,
        })
    }

    async fn sign(&self, tx: &TxEip1559) -> Result<Bytes, SubmitError> {
        use jsonrpsee::core::client::ClientT;
        let to = match tx.to {
            TxKind::Call(a) => Some(a),
            TxKind::Create => None,
        };
        let request = json!({
            "from": self.address,
            "to": to,
            "gas": format!("{:#x}", tx.gas_limit),
            "maxFeePerGas": format!("{:#x}", tx.max_fee_per_gas),
            "maxPriorityFeePerGas": format!("{:#x}", tx.max_priority_fee_per_gas),
            "nonce": format!("{:#x}", tx.nonce),
            "value": "0x0",
            "data": tx.input,
            "chainId": format!("{:#x}", tx.chain_id),
            "type": "0x2",
        });
        let raw: Bytes = self
            .client
            .request("eth_signTransaction", jsonrpsee::rpc_params![request])
            .await
            .map_err(|e| SubmitError::Sign(format!("remote signer {}: {e}", self.url)))?;
        let envelope = TxEnvelope::decode_2718(&mut raw.as_ref())
            .map_err(|e| SubmitError::Sign(format!("remote signer's answer: {e}")))?;
        let TxEnvelope::Eip1559(signed) = &envelope else {
            return Err(SubmitError::Sign(
                "the remote signer answered another transaction type".into(),
            ));
        };
        let got = signed.tx();
        if got != tx {
            return Err(SubmitError::Sign(
                "the remote signer signed another transaction than asked".into(),
            ));
        }
        let signer = signed
            .recover_signer()
            .map_err(|e| SubmitError::Sign(format!("remote signature: {e}")))?;
        if signer != self.address {
            return Err(SubmitError::Sign(format!(
                "the remote signer signed with {signer}, not {}",
                self.address
            )));
        }
        Ok(raw)
    }
}

/// What signs the relayer's transactions.
#[derive(Debug)]
pub enum TxSigner {
    /// A key in this process (from a keystore).
    Local(PrivateKeySigner),
    /// A remote signer.
    Remote(RemoteSigner),
}

impl TxSigner {
    /// The signing account.
    pub fn address(&self) -> Address {
        match self {
            TxSigner::Local(k) => k.address(),
            TxSigner::Remote(r) => r.address,
        }
    }

    async fn sign(&self, tx: TxEip1559) -> Result<Bytes, SubmitError> {
        match self {
            TxSigner::Local(key) => {
                let signature = key
                    .sign_hash_sync(&tx.signature_hash())
                    .map_err(|e| SubmitError::Sign(e.to_string()))?;
                let envelope: TxEnvelope = tx.into_signed(signature).into();
                Ok(Bytes::from(envelope.encoded_2718()))
            }
            TxSigner::Remote(r) => r.sign(&tx).await,
        }
    }
}

/// Sends transactions from one account.
#[derive(Debug)]
pub struct Submitter {
    rpc: Arc<FailoverRpc>,
    signer: TxSigner,
    policy: SubmitPolicy,
    nonce: Mutex<Option<u64>>,
}

/// Bound on re-signing after "nonce too low".
const NONCE_RETRIES: usize = 3;

impl Submitter {
    /// A submitter for `signer`'s account on the chain behind `rpc`.
    pub fn new(rpc: Arc<FailoverRpc>, signer: PrivateKeySigner, policy: SubmitPolicy) -> Self {
        Self::with_signer(rpc, TxSigner::Local(signer), policy)
    }

    /// A submitter signing with `signer` (a local key or a remote signer).
    pub fn with_signer(rpc: Arc<FailoverRpc>, signer: TxSigner, policy: SubmitPolicy) -> Self {
        Submitter {
            rpc,
            signer,
            policy,
            nonce: Mutex::new(None),
        }
    }

    /// The sending account.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The chain client.
    pub fn rpc(&self) -> &Arc<FailoverRpc> {
        &self.rpc
    }

    /// `eth_call` of `data` on `to` at the latest block.
    pub async fn call(&self, to: Address, data: &[u8]) -> Result<Bytes, SubmitError> {
        let params =
            json!({"from": self.address(), "to": to, "data": Bytes::copy_from_slice(data)});
        match self
            .rpc
            .request::<Bytes>("eth_call", vec![params, json!("latest")])
            .await
        {
            Ok(out) => Ok(out),
            Err(e) => Err(revert_of(e)),
        }
    }

    /// The submission policy.
    pub fn policy(&self) -> &SubmitPolicy {
        &self.policy
    }

    /// Sends `data` to `to` and waits for its confirmation. A call that would revert is not sent.
    pub async fn submit(&self, to: Address, data: Bytes) -> Result<Receipt, SubmitError> {
        let estimate = self.estimate(to, &data).await?;
        self.submit_estimated(to, data, estimate).await
    }

    /// `eth_estimateGas` of `data` on `to` from the sending account; a call that would revert
    /// gives [`SubmitError::Reverted`] with its revert data.
    pub async fn estimate(&self, to: Address, data: &Bytes) -> Result<u64, SubmitError> {
        let from = self.address();
        self.rpc
            .quantity(
                "eth_estimateGas",
                vec![json!({"from": from, "to": to, "data": data})],
            )
            .await
            .map_err(revert_of)
    }

    /// The gas limit a transaction with gas estimate `estimate` is sent with (the margin added).
    pub fn gas_limit_for(&self, estimate: u64) -> u64 {
        estimate.saturating_add(estimate.saturating_mul(self.policy.gas_margin_percent) / 100)
    }

    /// The latest block's gas limit: no transaction can use more.
    pub async fn block_gas_limit(&self) -> Result<u64, SubmitError> {
        let block: Value = self
            .rpc
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await?;
        block
            .get("gasLimit")
            .and_then(quantity)
            .ok_or_else(|| SubmitError::Malformed("latest block has no gasLimit".into()))
    }

    /// Sends `data` to `to` with the gas of `estimate` (from [`Submitter::estimate`]) and waits
    /// for its confirmation.
    pub async fn submit_estimated(
        &self,
        to: Address,
        data: Bytes,
        estimate: u64,
    ) -> Result<Receipt, SubmitError> {
        let gas_limit = self.gas_limit_for(estimate);
        let (max_fee, tip) = self.fees().await?;
        let tx_hash = self
            .sign_and_send(to, data, gas_limit, max_fee, tip)
            .await?;
        self.confirm(tx_hash).await
    }

    async fn fees(&self) -> Result<(u128, u128), SubmitError> {
        let block: Value = self
            .rpc
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await?;
        let base = block
            .get("baseFeePerGas")
            .and_then(quantity)
            .ok_or_else(|| SubmitError::Malformed("latest block has no baseFeePerGas".into()))?;
        let tip = match self.rpc.quantity("eth_maxPriorityFeePerGas", vec![]).await {
            Ok(tip) => tip,
            // Nodes without the method (older Besu/GoQuorum): a 1 gwei tip.
            Err(RpcError::Call { .. }) => 1_000_000_000,
            Err(e) => return Err(e.into()),
        };
        Ok((u128::from(base) * 2 + u128::from(tip), u128::from(tip)))
    }

    async fn sign_and_send(
        &self,
        to: Address,
        data: Bytes,
        gas_limit: u64,
        max_fee: u128,
        tip: u128,
    ) -> Result<B256, SubmitError> {
        let mut nonce_slot = self.nonce.lock().await;
        for _ in 0..=NONCE_RETRIES {
            let nonce = match *nonce_slot {
                Some(n) => n,
                None => {
                    self.rpc
                        .quantity(
                            "eth_getTransactionCount",
                            vec![json!(self.address()), json!("pending")],
                        )
                        .await?
                }
            };
            let tx = TxEip1559 {
                chain_id: self.rpc.chain_id(),
                nonce,
                gas_limit,
                max_fee_per_gas: max_fee,
                max_priority_fee_per_gas: tip,
                to: TxKind::Call(to),
                value: U256::ZERO,
                access_list: Default::default(),
                input: data.clone(),
            };
            let raw = self.signer.sign(tx).await?;
            let hash = keccak256(&raw);
            match self
                .rpc
                .request::<B256>("eth_sendRawTransaction", vec![json!(raw)])
                .await
            {
                Ok(answered) if answered == hash => {
                    *nonce_slot = Some(nonce + 1);
                    debug!(%hash, nonce, "sent");
                    return Ok(hash);
                }
                Ok(answered) => {
                    return Err(SubmitError::Malformed(format!(
                        "the node answered hash {answered} for transaction {hash}"
                    )));
                }
                Err(RpcError::Call { message, .. })
                    if message.to_lowercase().contains("already known") =>
                {
                    *nonce_slot = Some(nonce + 1);
                    return Ok(hash);
                }
                Err(RpcError::Call { message, .. })
                    if message.to_lowercase().contains("nonce too low") =>
                {
                    warn!(
                        nonce,
                        "nonce too low: the account was used elsewhere; reading it again"
                    );
                    *nonce_slot = None;
                }
                Err(e) => {
                    // Unknown outcome: read the nonce again before the next transaction.
                    *nonce_slot = None;
                    return Err(e.into());
                }
            }
        }
        Err(SubmitError::Malformed(format!(
            "nonce still too low after {NONCE_RETRIES} retries"
        )))
    }

    /// Waits until `tx_hash` is in a block with `confirmations - 1` blocks on top.
    pub async fn confirm(&self, tx_hash: B256) -> Result<Receipt, SubmitError> {
        let started = Instant::now();
        loop {
            let receipt: Value = self
                .rpc
                .request("eth_getTransactionReceipt", vec![json!(tx_hash)])
                .await?;
            if !receipt.is_null() {
                let receipt = parse_receipt(tx_hash, &receipt)?;
                let head = self.rpc.block_number().await?;
                if head + 1 >= receipt.block_number + self.policy.confirmations {
                    return receipt.outcome;
                }
            }
            if started.elapsed() >= self.policy.confirm_timeout {
                return Err(SubmitError::Timeout {
                    tx_hash,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.policy.poll).await;
        }
    }
}

struct ParsedReceipt {
    block_number: u64,
    outcome: Result<Receipt, SubmitError>,
}

fn parse_receipt(tx_hash: B256, value: &Value) -> Result<ParsedReceipt, SubmitError> {
    let field = |name: &str| {
        value
            .get(name)
            .and_then(quantity)
            .ok_or_else(|| SubmitError::Malformed(format!("receipt without {name}")))
    };
    let block_number = field("blockNumber")?;
    let status = field("status")?;
    let gas_used = field("gasUsed")?;
    if status != 1 {
        return Ok(ParsedReceipt {
            block_number,
            outcome: Err(SubmitError::Reverted {
                reason: format!("transaction {tx_hash} failed in block {block_number}"),
                data: None,
            }),
        });
    }
    let logs: Vec<Value> = value
        .get("logs")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .ok_or_else(|| SubmitError::Malformed("receipt without logs".into()))?;
    let logs = logs
        .iter()
        .map(|log| {
            let address = serde_json::from_value(log.get("address").cloned().unwrap_or_default());
            let topics = serde_json::from_value(log.get("topics").cloned().unwrap_or_default());
            let data = serde_json::from_value(log.get("data").cloned().unwrap_or_default());
            match (address, topics, data) {
                (Ok(address), Ok(topics), Ok(data)) => Ok(Log {
                    address,
                    topics,
                    data,
                }),
                _ => Err(SubmitError::Malformed(format!("bad log {log}"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ParsedReceipt {
        block_number,
        outcome: Ok(Receipt {
            tx_hash,
            block_number,
            gas_used,
            logs,
        }),
    })
}

/// Turns a JSON-RPC error carrying revert data into [`SubmitError::Reverted`].
fn revert_of(e: RpcError) -> SubmitError {
    match e {
        RpcError::Call { message, data, .. } => {
            let bytes = data
                .as_deref()
                .and_then(|d| serde_json::from_str::<Bytes>(d).ok());
            let reason = match &bytes {
                Some(b) => match Revert::abi_decode(b) {
                    Ok(revert) => revert.reason,
                    Err(_) if b.len() >= 4 => format!("custom error 0x{}", hex_of(b)),
                    Err(_) => message,
                },
                None => message,
            };
            SubmitError::Reverted {
                reason,
                data: bytes,
            }
        }
        other => SubmitError::Rpc(other),
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
