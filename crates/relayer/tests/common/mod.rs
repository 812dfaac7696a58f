//! Helpers shared by the relayer's integration tests: an in-process devnet, a loopback TCP proxy
//! that can be killed (an endpoint dying under the relayer), and contract deployment.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_primitives::{Address, Bytes};
use alloy_signer_local::PrivateKeySigner;
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use kh_relayer::evm::FailoverRpc;
use serde_json::{Value, json};

pub(crate) async fn devnet(chain_id: u64) -> Devnet {
    Devnet::start(DevnetConfig {
        // Blocks keep coming, so a wait for confirmations always ends.
        production: BlockProduction::Interval(Duration::from_millis(100)),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        dev_accounts: 2,
        chain_id,
        ..DevnetConfig::default()
    })
    .await
    .unwrap()
}

#[allow(unused_imports)]
pub(crate) use kh_test_support::net::proxy;

pub(crate) fn url(devnet: &Devnet) -> String {
    format!("http://{}", devnet.rpc_addr())
}

pub(crate) fn key(devnet: &Devnet, i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&devnet.dev_accounts()[i].private_key).unwrap()
}

/// Init code deploying `runtime`.
fn init_code(runtime: &[u8]) -> Vec<u8> {
    let n = u8::try_from(runtime.len()).unwrap();
    let mut init = vec![
        0x60, n, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xf3,
    ];
    init.extend_from_slice(runtime);
    init
}

/// Sends a transaction from an unlocked dev account and waits for its receipt.
pub(crate) async fn send(rpc: &FailoverRpc, tx: Value) -> Value {
    let hash: Value = rpc.request("eth_sendTransaction", vec![tx]).await.unwrap();
    for _ in 0..200 {
        let receipt: Value = rpc
            .request("eth_getTransactionReceipt", vec![hash.clone()])
            .await
            .unwrap();
        if !receipt.is_null() {
            return receipt;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not mined");
}

/// Deploys `runtime` from `from`; returns the contract's address.
pub(crate) async fn deploy(rpc: &FailoverRpc, from: Address, runtime: &[u8]) -> Address {
    let receipt = send(
        rpc,
        json!({"from": from, "data": Bytes::from(init_code(runtime)), "gas": "0x100000"}),
    )
    .await;
    receipt["contractAddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}
