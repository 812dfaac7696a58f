//! `kakehashi lcp service init` and `start` with the real binary: the service runs its enclave
//! as a child process (`kakehashi lcp enclave run`, MRENCLAVE = SHA-256 of the binary); a QBFT
//! client from a devnet is created and updated over gRPC with mutual TLS and the signed results
//! pass the Rust LCP client; after a restart the key is unsealed by the new enclave process and
//! the client continues from the host's store. `lcp enclave list-keys` shows the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::Bytes;
use k256::ecdsa::SigningKey;
use kh_elc::{QbftClientState, QbftConsensusState, QbftHeader, StorageLayout};
use kh_evm_chain::{Chain, ChainSpec, PoolLimits};
use kh_lcp::client::{LcpClient, LcpClientState, RegisterEnclaveKeyMessage, UpdateClientMessage};
use kh_lcp::{Height, SignedReport};
use kh_lcp_service::proto;
use sha2::Digest as _;

const BIN: &str = env!("CARGO_BIN_EXE_kakehashi");

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path) -> (Service, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["lcp", "service", "start", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("the listening line");
    let addr = v["listening"].as_str().unwrap().parse().unwrap();
    (Service(child), addr)
}

async fn connect(dir: &Path, addr: SocketAddr) -> kh_lcp_service::service::Client {
    let read = |f: &str| std::fs::read_to_string(dir.join("tls").join(f)).unwrap();
    kh_lcp_service::service::connect(
        addr,
        &read("relayer.pem"),
        &read("relayer-key.pem"),
        &read("root.pem"),
    )
    .await
    .unwrap()
}

fn key(i: u8) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[0] = 0x42;
    secret[31] = i;
    SigningKey::from_slice(&secret).unwrap()
}

fn header(chain: &Chain, number: u64, trusted: u64) -> Vec<u8> {
    bcs::to_bytes(&QbftHeader {
        header_rlp: Bytes::from(alloy_rlp::encode(&chain.block(number).unwrap().header)),
        trusted_height: trusted,
    })
    .unwrap()
}

fn upd(r: proto::SignedResponse) -> UpdateClientMessage {
    UpdateClientMessage {
        proxy_message: r.message,
        signatures: vec![r.signature],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_its_enclave_as_a_child_process_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["lcp", "service", "init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("lcp.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("127.0.0.1:7700", "127.0.0.1:0")).unwrap();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut chain = Chain::new(ChainSpec {
        chain_id: 1337,
        validator_keys: (1..=4).map(key).collect(),
        alloc: vec![],
        genesis_timestamp: now - 600,
        gas_limit: 30_000_000,
        history: 64,
        contract_size_limit: 24_576,
        pool: PoolLimits::default(),
    })
    .unwrap();
    for i in 1..=3 {
        chain.produce_block(now - 600 + i).unwrap();
    }
    let b1 = chain.block(1).unwrap();

    let (service, addr) = start(&config);
    let mut c = connect(dir.path(), addr).await;
    let info = c
        .enclave_info(proto::EnclaveInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let measured: [u8; 32] = sha2::Sha256::digest(std::fs::read(BIN).unwrap()).into();
    assert_eq!(info.mrenclave, measured.to_vec());
    let keys = c
        .available_enclave_keys(proto::AvailableEnclaveKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1, "a key is generated at the first start");
    let mut lcp = LcpClient::new(
        info.attestation_root.clone(),
        LcpClientState::new(measured, info.key_lifetime_secs),
    )
    .unwrap();
    let key_a = lcp
        .register_enclave_key(
            &RegisterEnclaveKeyMessage {
                report: SignedReport::from_json(keys[0].report.as_bytes()).unwrap(),
                operator_signature: None,
            },
            now,
        )
        .unwrap();

    let created = c
        .create_client(proto::CreateClientRequest {
            client_id: "qbft-devnet".into(),
            client_type: "qbft".into(),
            client_state: bcs::to_bytes(&QbftClientState {
                chain_id: 1337,
                ibc_address: alloy_primitives::Address::repeat_byte(0x11),
                layout: StorageLayout::YuiIbcStore,
                trusting_period: Duration::from_secs(3600),
                max_clock_drift: Duration::from_secs(5),
                latest_height: 1,
                frozen: false,
            })
            .unwrap(),
            consensus_state: bcs::to_bytes(&QbftConsensusState {
                block_hash: b1.hash,
                state_root: b1.header.state_root,
                timestamp: b1.header.timestamp,
                validators: b1.validators.clone(),
            })
            .unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    lcp.update_client(&upd(created.proof.unwrap()), now)
        .unwrap();
    let up2 = c
        .update_client(proto::UpdateClientRequest {
            client_id: "qbft-devnet".into(),
            header: header(&chain, 2, 1),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up2.signer, key_a.to_vec());
    lcp.update_client(&upd(up2), now).unwrap();

    // Restart: the new enclave process unseals the same key; the client continues.
    drop(c);
    drop(service);
    let (_service, addr) = start(&config);
    let mut c = connect(dir.path(), addr).await;
    let up3 = c
        .update_client(proto::UpdateClientRequest {
            client_id: "qbft-devnet".into(),
            header: header(&chain, 3, 2),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up3.signer, key_a.to_vec());
    lcp.update_client(&upd(up3), now).unwrap();
    assert_eq!(lcp.state.latest_height, Height::new(0, 3));
    let q = c
        .query_client(proto::QueryClientRequest {
            client_id: "qbft-devnet".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.latest_height, 3);

    let list = Command::new(BIN)
        .args(["lcp", "enclave", "list-keys", "--home"])
        .arg(dir.path().join("lcp-home"))
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(
        keys[0]["address"].as_str().unwrap().to_lowercase(),
        format!("{key_a:#x}")
    );
}
