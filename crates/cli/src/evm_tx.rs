//! Signed EIP-1559 transactions to any EVM JSON-RPC endpoint: one account, its nonce tracked
//! locally from `eth_getTransactionCount(pending)`, gas from `eth_estimateGas` (+20 %) unless
//! given, fee cap twice `eth_gasPrice` plus the node's suggested tip, and a bounded wait for
//! each receipt. A reverted transaction is an error.

use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{Context, bail, ensure};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::{Value, json};

/// TLS of an EVM JSON-RPC link given on the command line (an `https://` `--rpc`): the roots
/// its certificate must chain to and the client certificate to present, as the relayer's
/// `[evm.tls]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct RpcTlsArgs {
    /// Trust only these root certificates (PEM) for an https:// --rpc (default: the system's).
    #[arg(long)]
    pub(crate) rpc_tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for a node that requires one (with --rpc-tls-key).
    #[arg(long, requires_all = ["rpc_tls_key", "rpc_tls_ca"])]
    pub(crate) rpc_tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "rpc_tls_cert")]
    pub(crate) rpc_tls_key: Option<std::path::PathBuf>,
}

impl RpcTlsArgs {
    /// An HTTP JSON-RPC client for `url` with these TLS settings.
    pub(crate) fn client(&self, url: &str, timeout: Duration) -> anyhow::Result<HttpClient> {
        let mut builder = HttpClientBuilder::default().request_timeout(timeout);
        if let Some(ca) = &self.rpc_tls_ca {
            let tls = kh_relayer::evm::EvmTls::load(&kh_relayer::config::EvmTlsConfig {
                ca: ca.clone(),
                cert: self.rpc_tls_cert.clone(),
                key: self.rpc_tls_key.clone(),
            })?;
            anyhow::ensure!(
                url.starts_with("https://"),
                "--rpc-tls-ca is given but {url} is not https://"
            );
            builder = builder.with_custom_cert_store(tls.client_config());
        }
        builder
            .build(url)
            .with_context(|| format!("JSON-RPC client for {url}"))
    }
}

/// One account sending signed transactions.
pub(crate) struct Sender {
    pub(crate) client: HttpClient,
    pub(crate) key: PrivateKeySigner,
    nonce: u64,
    chain_id: u64,
    max_fee: u128,
    tip: u128,
    timeout: Duration,
}

/// What a mined transaction left: gas used and logs (topics, data).
pub(crate) struct Mined {
    pub(crate) gas: u64,
    pub(crate) logs: Vec<(Vec<B256>, Vec<u8>)>,
}

impl Mined {
    /// The first log that decodes as `E`.
    pub(crate) fn event<E: SolEvent>(&self) -> anyhow::Result<E> {
        for (topics, data) in &self.logs {
            if topics.first() == Some(&E::SIGNATURE_HASH) {
                return Ok(E::decode_raw_log(topics.iter().copied(), data)?);
            }
        }
        bail!("no {} event", E::SIGNATURE)
    }
}

/// A JSON-RPC quantity ("0x..") as u64.
pub(crate) fn quantity(v: &Value) -> anyhow::Result<u64> {
    let s = v.as_str().context("quantity is not a string")?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

impl Sender {
    /// Connects to `url` and reads the chain id, the account's pending nonce and the fees.
    /// `timeout` bounds each request and each wait for a receipt.
    pub(crate) async fn connect(
        url: &str,
        key: PrivateKeySigner,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Self::connect_with(url, key, timeout, &RpcTlsArgs::default()).await
    }

    /// As [`Sender::connect`], over TLS as `tls` says.
    pub(crate) async fn connect_with(
        url: &str,
        key: PrivateKeySigner,
        timeout: Duration,
        tls: &RpcTlsArgs,
    ) -> anyhow::Result<Self> {
        let client = tls.client(url, timeout)?;
        let chain_id = quantity(
            &client
                .request::<Value, _>("eth_chainId", Vec::<Value>::new())
                .await
                .context("eth_chainId")?,
        )?;
        let nonce = quantity(
            &client
                .request::<Value, _>(
                    "eth_getTransactionCount",
                    vec![json!(key.address()), json!("pending")],
                )
                .await
                .context("eth_getTransactionCount")?,
        )?;
        let price: U256 = client
            .request("eth_gasPrice", Vec::<Value>::new())
            .await
            .context("eth_gasPrice")?;
        let tip: U256 = client
            .request("eth_maxPriorityFeePerGas", Vec::<Value>::new())
            .await
            .unwrap_or(U256::ZERO);
        let price = u128::try_from(price).context("gas price out of range")?;
        let tip = u128::try_from(tip).context("priority fee out of range")?;
        Ok(Self {
            client,
            key,
            nonce,
            chain_id,
            max_fee: price.saturating_mul(2).saturating_add(tip),
            tip,
            timeout,
        })
    }

    /// The sending account.
    pub(crate) fn address(&self) -> Address {
        self.key.address()
    }

    /// Signs and sends a transaction, waits for its receipt; an error if it reverted.
    pub(crate) async fn send(
        &mut self,
        to: TxKind,
        input: Vec<u8>,
        gas: Option<u64>,
    ) -> anyhow::Result<Mined> {
        let gas = match gas {
            Some(g) => g,
            None => {
                let mut call = json!({"from": self.address(), "data": Bytes::from(input.clone())});
                if let TxKind::Call(to) = to {
                    call["to"] = json!(to);
                }
                let estimate = quantity(
                    &self
                        .client
                        .request::<Value, _>("eth_estimateGas", vec![call])
                        .await
                        .context("eth_estimateGas (the transaction would revert?)")?,
                )?;
                estimate.saturating_add(estimate / 5)
            }
        };
        let tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: gas,
            max_fee_per_gas: self.max_fee,
            max_priority_fee_per_gas: self.tip,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            input: input.into(),
        };
        let sig = self.key.sign_hash_sync(&tx.signature_hash())?;
        let raw = Bytes::from(TxEnvelope::from(tx.into_signed(sig)).encoded_2718());
        let hash: B256 = self
            .client
            .request("eth_sendRawTransaction", vec![json!(raw)])
            .await
            .context("eth_sendRawTransaction")?;
        self.nonce += 1;
        let deadline = Instant::now() + self.timeout;
        let receipt = loop {
            let r: Value = self
                .client
                .request("eth_getTransactionReceipt", vec![json!(hash)])
                .await
                .context("eth_getTransactionReceipt")?;
            if !r.is_null() {
                break r;
            }
            ensure!(
                Instant::now() < deadline,
                "transaction {hash} not mined within {:?}",
                self.timeout
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure!(receipt["status"] == "0x1", "transaction {hash} reverted");
        let gas = quantity(&receipt["gasUsed"])?;
        let mut logs = Vec::new();
        for log in receipt["logs"].as_array().into_iter().flatten() {
            let topics = log["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t.as_str().unwrap_or_default().parse::<B256>())
                .collect::<Result<Vec<_>, _>>()?;
            let data = hex::decode(
                log["data"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("0x"),
            )?;
            logs.push((topics, data));
        }
        Ok(Mined { gas, logs })
    }

    /// Deploys `code` with constructor `args`; returns the new contract's address.
    pub(crate) async fn deploy(
        &mut self,
        code: &[u8],
        args: Vec<u8>,
        gas: Option<u64>,
    ) -> anyhow::Result<Address> {
        let address = self.address().create(self.nonce);
        let mut input = code.to_vec();
        input.extend(args);
        self.send(TxKind::Create, input, gas).await?;
        Ok(address)
    }

    /// Calls `to` with `call` in a transaction.
    pub(crate) async fn call<T: SolCall>(
        &mut self,
        to: Address,
        call: T,
        gas: Option<u64>,
    ) -> anyhow::Result<Mined> {
        self.send(TxKind::Call(to), call.abi_encode(), gas)
            .await
            .with_context(|| T::SIGNATURE)
    }
}
