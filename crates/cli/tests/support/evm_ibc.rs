//! Shared by the relayer's EVM tests: a devnet in process with the IBC stack deployed by
//! `kakehashi ibc deploy`, an owner account that submits through the relayer's submitter, and
//! light-client contracts deployed and registered by the owner.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use kh_contracts::{IBCChannelPacket as P, IBCClient, PingApp};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use kh_relayer::evm::{ChainLog, FailoverRpc, FollowConfig, SubmitPolicy, Submitter, follow};
use serde_json::{Value, json};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_kakehashi");

pub(crate) struct Chain {
    pub(crate) devnet: Devnet,
    pub(crate) rpc: Arc<FailoverRpc>,
    pub(crate) owner: Arc<Submitter>,
    pub(crate) handler: Address,
    pub(crate) app: Address,
    pub(crate) start_block: u64,
}

/// A devnet (100 ms blocks) with the IBC stack and the ping app.
pub(crate) async fn chain(chain_id: u64) -> Chain {
    let devnet = Devnet::start(DevnetConfig {
        production: BlockProduction::Interval(Duration::from_millis(100)),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        dev_accounts: 2,
        chain_id,
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let url = format!("http://{}", devnet.rpc_addr());
    let key = devnet.dev_accounts()[0].private_key;
    let out = Command::new(BIN)
        .args(["ibc", "deploy", "--rpc", &url])
        .env("KAKEHASHI_EVM_KEY", key.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let handler: Address = d["handler"].as_str().unwrap().parse().unwrap();
    let app: Address = d["app"].as_str().unwrap().parse().unwrap();
    let rpc = Arc::new(FailoverRpc::new(chain_id, &[url], Duration::from_secs(10)).unwrap());
    let owner = Arc::new(Submitter::new(
        rpc.clone(),
        PrivateKeySigner::from_bytes(&key).unwrap(),
        SubmitPolicy::default(),
    ));
    Chain {
        devnet,
        rpc,
        owner,
        handler,
        app,
        start_block: 0,
    }
}

impl Chain {
    /// Deploys `init` (creation code with constructor arguments) from the second account.
    pub(crate) async fn deploy(&self, init: Vec<u8>) -> Address {
        let hash: Value = self
            .rpc
            .request(
                "eth_sendTransaction",
                vec![json!({"from": self.devnet.dev_accounts()[1].address, "data": Bytes::from(init), "gas": "0x1c00000"})],
            )
            .await
            .unwrap();
        loop {
            let r: Value = self
                .rpc
                .request("eth_getTransactionReceipt", vec![hash.clone()])
                .await
                .unwrap();
            if !r.is_null() {
                assert_eq!(r["status"], "0x1", "deployment failed: {r}");
                return r["contractAddress"].as_str().unwrap().parse().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Registers `client` for `client_type` on the handler (owner only).
    pub(crate) async fn register_client(&self, client_type: &str, client: Address) {
        self.owner
            .submit(
                self.handler,
                IBCClient::registerClientCall {
                    clientType: client_type.into(),
                    lightClient: client,
                }
                .abi_encode()
                .into(),
            )
            .await
            .unwrap();
    }

    /// The ping app sends `data` on `channel`.
    pub(crate) async fn ping(&self, channel: &str, data: &[u8], timeout_height: u64) {
        self.owner
            .submit(
                self.app,
                PingApp::pingCall {
                    channelId: channel.into(),
                    data: Bytes::copy_from_slice(data),
                    timeoutHeight: PingApp::Height {
                        revisionNumber: 0,
                        revisionHeight: timeout_height,
                    },
                    timeoutTimestamp: 0,
                }
                .abi_encode()
                .into(),
            )
            .await
            .unwrap();
    }

    /// Sorted sequences of the handler's `E` events since `from`.
    pub(crate) async fn sequences<E: SolEvent>(
        &self,
        from: u64,
        seq: impl Fn(&E) -> u64,
    ) -> Vec<u64> {
        let seqs = handler_sequences(&self.rpc, self.handler, from, seq).await;
        seqs.unwrap()
    }

    /// The packet of the handler's latest `SendPacket` event.
    pub(crate) async fn last_sent(&self) -> P::Packet {
        let logs: Vec<Value> = self
            .rpc
            .request(
                "eth_getLogs",
                vec![json!({"address": self.handler, "fromBlock": "0x0", "toBlock": "latest", "topics": [P::SendPacket::SIGNATURE_HASH]})],
            )
            .await
            .unwrap();
        let l = logs.last().unwrap();
        let topics: Vec<B256> = serde_json::from_value(l["topics"].clone()).unwrap();
        let data: Bytes = serde_json::from_value(l["data"].clone()).unwrap();
        P::SendPacket::decode_raw_log(topics, &data).unwrap().packet
    }

    /// A follower of the handler's logs from `from`.
    pub(crate) fn follower(&self, from: u64) -> tokio::sync::mpsc::Receiver<ChainLog> {
        let (logs, _, _) = follow(
            self.rpc.clone(),
            FollowConfig {
                address: self.handler,
                from_block: from,
                confirmations: 1,
                ws: vec![format!("ws://{}", self.devnet.rpc_addr())],
                reconcile_every: Duration::from_secs(1),
                silence: Duration::from_secs(3),
                max_range: 1000,
                tls: None,
            },
        );
        logs
    }
}

/// Sorted sequences of `handler`'s `E` events since block `from`, read through `rpc`.
pub(crate) async fn handler_sequences<E: SolEvent>(
    rpc: &FailoverRpc,
    handler: Address,
    from: u64,
    seq: impl Fn(&E) -> u64,
) -> Result<Vec<u64>, kh_relayer::evm::RpcError> {
    let logs: Vec<Value> = rpc
        .request(
            "eth_getLogs",
            vec![json!({"address": handler, "fromBlock": format!("{from:#x}"), "toBlock": "latest", "topics": [E::SIGNATURE_HASH]})],
        )
        .await?;
    let mut out: Vec<u64> = logs
        .iter()
        .map(|l| {
            let topics: Vec<B256> = serde_json::from_value(l["topics"].clone()).unwrap();
            let data: Bytes = serde_json::from_value(l["data"].clone()).unwrap();
            seq(&E::decode_raw_log(topics, &data).unwrap())
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}
