//! Helpers shared by the relayer's integration tests: an in-process devnet, a loopback TCP proxy
//! that can be killed (an endpoint dying under the relayer), and contract deployment.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use alloy_primitives::{Address, Bytes};
use alloy_signer_local::PrivateKeySigner;
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use kh_relayer::evm::FailoverRpc;
use serde_json::{Value, json};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

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

/// A TCP proxy on loopback forwarding to `target`, connections included; send on the returned
/// channel (or drop it) to kill it.
pub(crate) async fn proxy(target: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (kill, killed) = watch::channel(false);
    tokio::spawn(async move {
        let mut stop = killed.clone();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
            };
            let Ok((mut inbound, _)) = accepted else {
                return;
            };
            let mut stop = killed.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = stop.changed() => {}
                    }
                }
            });
        }
    });
    (addr, kill)
}

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
