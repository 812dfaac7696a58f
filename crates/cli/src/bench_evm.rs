//! `kakehashi bench evm`: ERC-721 transfer throughput of the QBFT devnet over its JSON-RPC, and
//! `eth_getProof` latency. Starts an in-process devnet on a loopback port, deploys `KhNft`,
//! mints the tokens, then submits pre-signed transfers with bounded concurrency and waits until
//! every one is in a block.

use std::time::{Duration, Instant};

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolConstructor};
use anyhow::{Context, bail};
use futures::{StreamExt, stream};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use kh_contracts::{KhNft, kh_nft_owner_slot};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use serde::Serialize;
use serde_json::{Value, json};

use crate::output::{UsageError, print_json};

/// Arguments of `bench evm`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Block interval in milliseconds.
    #[arg(long, default_value_t = 1000, conflicts_with = "instant")]
    block_time: u64,
    /// Mine one block per transaction.
    #[arg(long)]
    instant: bool,
    /// Number of ERC-721 transfers.
    #[arg(long, default_value_t = 5000)]
    txs: usize,
    /// Number of sending accounts (transfers are spread over them).
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Concurrent JSON-RPC requests.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Number of eth_getProof calls for the latency figures.
    #[arg(long, default_value_t = 1000)]
    proofs: usize,
    /// Keep the chain in this (new or empty) data directory, so every block is synced to disk
    /// as in `devnet evm --data`; in memory when absent.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize)]
struct Report {
    mode: String,
    durable: bool,
    validators: usize,
    transfers: usize,
    senders: usize,
    elapsed_ms: u128,
    transfers_per_second: u64,
    submit_ms: u128,
    accepted_per_second: u64,
    blocks: u64,
    max_transfers_per_block: usize,
    get_proof: Latency,
}

#[derive(Debug, Serialize)]
struct Latency {
    calls: usize,
    p50_us: u128,
    p99_us: u128,
    max_us: u128,
}

const CHAIN_ID: u64 = 1337;
const MAX_FEE: u128 = 100_000_000_000;

fn sign(
    key: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    input: Vec<u8>,
    gas: u64,
) -> anyhow::Result<Bytes> {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: MAX_FEE,
        max_priority_fee_per_gas: 1,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input: input.into(),
    };
    let sig = key.sign_hash_sync(&tx.signature_hash())?;
    Ok(Bytes::from(
        TxEnvelope::from(tx.into_signed(sig)).encoded_2718(),
    ))
}

async fn send_all(
    client: &HttpClient,
    raws: Vec<Bytes>,
    concurrency: usize,
) -> anyhow::Result<Vec<B256>> {
    let results: Vec<anyhow::Result<B256>> = stream::iter(raws)
        .map(|raw| async move {
            client
                .request::<B256, _>("eth_sendRawTransaction", vec![json!(raw)])
                .await
                .context("eth_sendRawTransaction")
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

async fn wait_receipt(client: &HttpClient, hash: B256, deadline: Instant) -> anyhow::Result<Value> {
    loop {
        let receipt: Value = client
            .request("eth_getTransactionReceipt", vec![json!(hash)])
            .await?;
        if !receipt.is_null() {
            return Ok(receipt);
        }
        if Instant::now() > deadline {
            bail!("transaction {hash} not mined before the deadline");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the benchmark and prints the report.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.txs == 0 || args.senders == 0 {
        return Err(UsageError("--txs and --senders must be positive".into()).into());
    }
    let production = if args.instant {
        BlockProduction::Instant
    } else {
        BlockProduction::Interval(Duration::from_millis(args.block_time))
    };
    let devnet = Devnet::start(DevnetConfig {
        production,
        rpc_addr: "127.0.0.1:0".parse()?,
        dev_accounts: args.senders + 1,
        data_dir: args.data.clone(),
        ..DevnetConfig::default()
    })
    .await?;
    let result = bench(&devnet, &args).await;
    devnet.shutdown().await?;
    print_json(&result?)
}

async fn bench(devnet: &Devnet, args: &Args) -> anyhow::Result<Report> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(120))
        .max_request_size(64 * 1024 * 1024)
        .build(format!("http://{}", devnet.rpc_addr()))?;
    let keys: Vec<PrivateKeySigner> = devnet
        .dev_accounts()
        .iter()
        .map(|a| PrivateKeySigner::from_bytes(&a.private_key))
        .collect::<Result<_, _>>()?;
    let deployer = &keys[0];
    let senders = &keys[1..=args.senders];
    let deadline = Instant::now() + Duration::from_secs(600);

    // Deploy and mint: token i belongs to sender i % senders.
    let ctor = KhNft::constructorCall {
        name_: "Bench".into(),
        symbol_: "B".into(),
        baseUri_: "b/".into(),
    };
    let mut code = KhNft::BYTECODE.to_vec();
    code.extend(ctor.abi_encode());
    let nft = deployer.address().create(0);
    let hash = send_all(
        &client,
        vec![sign(deployer, 0, TxKind::Create, code, 3_000_000)?],
        1,
    )
    .await?[0];
    wait_receipt(&client, hash, deadline).await?;
    let mints = (0..args.txs)
        .map(|i| {
            let to = senders[i % senders.len()].address();
            let call = KhNft::mintCall {
                to,
                tokenId: U256::from(i),
            };
            sign(
                deployer,
                1 + i as u64,
                TxKind::Call(nft),
                call.abi_encode(),
                200_000,
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let hashes = send_all(&client, mints, args.concurrency).await?;
    if let Some(last) = hashes.last() {
        wait_receipt(&client, *last, deadline).await?;
    }

    // Transfers, pre-signed so the measurement is the chain, not the signer.
    let receiver = Address::repeat_byte(0x99);
    let mut nonces = vec![0u64; senders.len()];
    let transfers = (0..args.txs)
        .map(|i| {
            let s = i % senders.len();
            let from = senders[s].address();
            let call = KhNft::transferFromCall {
                from,
                to: receiver,
                tokenId: U256::from(i),
            };
            let raw = sign(
                &senders[s],
                nonces[s],
                TxKind::Call(nft),
                call.abi_encode(),
                120_000,
            );
            nonces[s] += 1;
            raw
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start_block = devnet.head_number();
    let started = Instant::now();
    let hashes = send_all(&client, transfers, args.concurrency).await?;
    let submitted = started.elapsed();
    let mut last_block = start_block;
    for hash in hashes.iter().rev().take(senders.len()) {
        let receipt = wait_receipt(&client, *hash, deadline).await?;
        if receipt["status"] != "0x1" {
            bail!("transfer {hash} failed");
        }
        let n = receipt["blockNumber"]
            .as_str()
            .map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16))
            .transpose()?;
        last_block = last_block.max(n.unwrap_or(0));
    }
    let elapsed = started.elapsed();
    let mut max_per_block = 0;
    for n in start_block + 1..=last_block {
        let block: Value = client
            .request(
                "eth_getBlockByNumber",
                vec![json!(format!("{n:#x}")), json!(false)],
            )
            .await?;
        max_per_block = max_per_block.max(block["transactions"].as_array().map_or(0, Vec::len));
    }
    let owner: Value = client
        .request("eth_call", vec![json!({"to": nft, "data": Bytes::from(KhNft::ownerOfCall { tokenId: U256::ZERO }.abi_encode())})])
        .await?;
    if !owner
        .as_str()
        .unwrap_or_default()
        .ends_with(&hex::encode(receiver))
    {
        bail!("token 0 did not reach the receiver");
    }

    // eth_getProof latency: the NFT contract with the slot of one token's owner.
    let mut samples = Vec::with_capacity(args.proofs);
    for i in 0..args.proofs {
        let slot = kh_nft_owner_slot(U256::from(i % args.txs));
        let t = Instant::now();
        let _: Value = client
            .request(
                "eth_getProof",
                vec![json!(nft), json!([slot]), json!("latest")],
            )
            .await?;
        samples.push(t.elapsed().as_micros());
    }
    samples.sort_unstable();
    let pct = |p: usize| {
        samples
            .get((samples.len() * p / 100).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let elapsed_ms = elapsed.as_millis().max(1);
    Ok(Report {
        mode: if args.instant {
            "instant".into()
        } else {
            format!("interval {} ms", args.block_time)
        },
        durable: args.data.is_some(),
        validators: devnet.validators().len(),
        transfers: args.txs,
        senders: senders.len(),
        elapsed_ms,
        transfers_per_second: (args.txs as u128 * 1000 / elapsed_ms) as u64,
        submit_ms: submitted.as_millis(),
        accepted_per_second: (args.txs as u128 * 1000 / submitted.as_millis().max(1)) as u64,
        blocks: last_block - start_block,
        max_transfers_per_block: max_per_block,
        get_proof: Latency {
            calls: samples.len(),
            p50_us: pct(50),
            p99_us: pct(99),
            max_us: samples.last().copied().unwrap_or(0),
        },
    })
}
