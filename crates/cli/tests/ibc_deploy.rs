//! `kakehashi ibc deploy --rpc URL` against an in-process devnet: the printed addresses hold
//! the handler (proxy, owned by the deploying key), its implementation and modules, and the
//! ping app bound to "ping". Then test code drives the deployed handler over JSON-RPC through a
//! loopback connection and channel (the test-only client, registered here by the owner, tracks
//! the devnet itself) up to a ping packet, and proves that packet's commitment with
//! `eth_getProof`: the slot is DESIGN §5's, and the account and storage proofs verify with
//! alloy-trie's verifier against the block's state root (not the devnet's own trie code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolConstructor, SolEvent, SolValue};
use alloy_trie::{Nibbles, TrieAccount};
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use kh_contracts::{
    IBCChannelHandshake as H, IBCChannelPacket as P, IBCClient, IBCConnection as C, IBCHandler,
    TestOnlyClient, ibc_commitment_slot,
};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use prost::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PREFIX: &[u8] = b"ibc";

struct Rpc {
    client: HttpClient,
    key: PrivateKeySigner,
    nonce: u64,
}

impl Rpc {
    async fn request<T: serde::de::DeserializeOwned>(&self, method: &str, params: Vec<Value>) -> T {
        self.client.request(method, params).await.unwrap()
    }

    /// Sends a transaction (the devnet mines it before answering); returns its logs.
    async fn send(&mut self, to: TxKind, input: Vec<u8>) -> Vec<(Vec<B256>, Vec<u8>)> {
        let tx = TxEip1559 {
            chain_id: 1337,
            nonce: self.nonce,
            gas_limit: 10_000_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            input: input.into(),
        };
        self.nonce += 1;
        let sig = self.key.sign_hash_sync(&tx.signature_hash()).unwrap();
        let raw = Bytes::from(TxEnvelope::from(tx.into_signed(sig)).encoded_2718());
        let hash: B256 = self
            .request("eth_sendRawTransaction", vec![json!(raw)])
            .await;
        let receipt: Value = self
            .request("eth_getTransactionReceipt", vec![json!(hash)])
            .await;
        assert_eq!(receipt["status"], "0x1", "transaction reverted");
        receipt["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let topics = l["topics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().parse().unwrap())
                    .collect();
                let data =
                    hex::decode(l["data"].as_str().unwrap().trim_start_matches("0x")).unwrap();
                (topics, data)
            })
            .collect()
    }

    async fn call<T: SolCall>(&mut self, to: Address, call: T) -> Vec<(Vec<B256>, Vec<u8>)> {
        self.send(TxKind::Call(to), call.abi_encode()).await
    }

    async fn view<T: SolCall>(&self, to: Address, call: T) -> T::Return {
        let out: Bytes = self
            .request(
                "eth_call",
                vec![
                    json!({"to": to, "data": Bytes::from(call.abi_encode())}),
                    json!("latest"),
                ],
            )
            .await;
        T::abi_decode_returns(&out).unwrap()
    }

    async fn head(&self) -> (u64, u64) {
        let b: Value = self
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await;
        let q = |v: &Value| {
            u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        };
        (q(&b["number"]), q(&b["timestamp"]))
    }
}

fn event<E: SolEvent>(logs: &[(Vec<B256>, Vec<u8>)]) -> E {
    let (t, d) = logs
        .iter()
        .find(|(t, _)| t.first() == Some(&E::SIGNATURE_HASH))
        .expect("event");
    E::decode_raw_log(t.iter().copied(), d).unwrap()
}

fn sha256(d: &[u8]) -> [u8; 32] {
    Sha256::digest(d).into()
}

fn any(url: &str, value: Vec<u8>) -> Vec<u8> {
    ibc_proto::google::protobuf::Any {
        type_url: url.into(),
        value,
    }
    .encode_to_vec()
}

fn client_state(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    prost::encoding::message::encode(
        1,
        &ibc_proto::ibc::core::client::v1::Height {
            revision_number: 0,
            revision_height: n,
        },
        &mut v,
    );
    any("/kakehashi.testonly.v1.ClientState", v)
}

fn consensus_state(t: u64, root: B256) -> Vec<u8> {
    let mut v = Vec::new();
    prost::encoding::uint64::encode(1, &t, &mut v);
    prost::encoding::bytes::encode(2, &root.to_vec(), &mut v);
    any("/kakehashi.testonly.v1.ConsensusState", v)
}

fn connection_end(client: &str, state: conn::State, cp_conn: &str) -> Vec<u8> {
    conn::ConnectionEnd {
        client_id: client.into(),
        versions: vec![conn::Version {
            identifier: "1".into(),
            features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
        }],
        state: state as i32,
        counterparty: Some(conn::Counterparty {
            client_id: client.into(),
            connection_id: cp_conn.into(),
            prefix: Some(MerklePrefix {
                key_prefix: PREFIX.to_vec(),
            }),
        }),
        delay_period: 0,
    }
    .encode_to_vec()
}

fn channel_end(state: chan::State, cp_channel: &str, connection: &str) -> Vec<u8> {
    chan::Channel {
        state: state as i32,
        ordering: chan::Order::Unordered as i32,
        counterparty: Some(chan::Counterparty {
            port_id: "ping".into(),
            channel_id: cp_channel.into(),
        }),
        connection_hops: vec![connection.into()],
        version: "ping-1".into(),
        upgrade_sequence: 0,
    }
    .encode_to_vec()
}

/// Updates the client to the head; returns the height.
async fn update(rpc: &mut Rpc, handler: Address) -> P::Height {
    let (n, t) = rpc.head().await;
    let msg = ((0u64, n), t * 1_000_000_000, keccak256(n.to_be_bytes())).abi_encode_params();
    rpc.call(
        handler,
        IBCClient::updateClientCall {
            clientId: "kh-test-only-0".into(),
            clientMessage: msg.into(),
        },
    )
    .await;
    P::Height {
        revisionNumber: 0,
        revisionHeight: n,
    }
}

/// The test-only proof of `value` at `path`, after checking the handler's slot holds its hash.
async fn prove(rpc: &Rpc, handler: Address, h: &P::Height, path: &str, value: &[u8]) -> Bytes {
    let stored: B256 = rpc
        .request(
            "eth_getStorageAt",
            vec![
                json!(handler),
                json!(ibc_commitment_slot(path)),
                json!("latest"),
            ],
        )
        .await;
    assert_eq!(stored, keccak256(value), "{path}");
    let d = keccak256(
        (
            (h.revisionNumber, h.revisionHeight),
            Bytes::from(PREFIX),
            Bytes::from(path.as_bytes().to_vec()),
            Bytes::from(value.to_vec()),
        )
            .abi_encode_params(),
    );
    Bytes::from(d.to_vec())
}

fn height_c(h: &P::Height) -> C::Height {
    C::Height {
        revisionNumber: h.revisionNumber,
        revisionHeight: h.revisionHeight,
    }
}

fn height_h(h: &P::Height) -> H::Height {
    H::Height {
        revisionNumber: h.revisionNumber,
        revisionHeight: h.revisionHeight,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_the_handler_and_proves_a_packet_commitment() {
    let devnet = Devnet::start(DevnetConfig {
        production: BlockProduction::Instant,
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        dev_accounts: 1,
        ..DevnetConfig::default()
    })
    .await
    .unwrap();
    let url = format!("http://{}", devnet.rpc_addr());
    let account = devnet.dev_accounts()[0].clone();
    let key_hex = format!("{}", account.private_key);

    // Without a key: a usage error (exit code 2).
    let bin = env!("CARGO_BIN_EXE_kakehashi");
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["ibc", "deploy", "--rpc", &u])
            .env_remove("KAKEHASHI_EVM_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["ibc", "deploy", "--rpc", &u])
            .env("KAKEHASHI_EVM_KEY", key_hex)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let addr = |v: &Value| v.as_str().unwrap().parse::<Address>().unwrap();
    let handler = addr(&d["handler"]);
    let app = addr(&d["app"]);
    assert_eq!(addr(&d["owner"]), account.address);
    assert_eq!(d["port"], "ping");

    let key = PrivateKeySigner::from_bytes(&account.private_key).unwrap();
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .build(&url)
        .unwrap();
    let nonce: Value = client
        .request(
            "eth_getTransactionCount",
            vec![json!(account.address), json!("latest")],
        )
        .await
        .unwrap();
    let nonce = u64::from_str_radix(nonce.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let mut rpc = Rpc { client, key, nonce };

    // The printed addresses are the deployed stack.
    for field in ["handler", "implementation", "app"] {
        let code: Bytes = rpc
            .request("eth_getCode", vec![d[field].clone(), json!("latest")])
            .await;
        assert!(!code.is_empty(), "{field} has no code");
    }
    assert_eq!(
        rpc.view(handler, IBCHandler::ownerCall {}).await,
        account.address
    );
    assert_eq!(
        rpc.view(handler, IBCHandler::implementationCall {}).await,
        addr(&d["implementation"])
    );
    assert_eq!(
        rpc.view(handler, IBCHandler::channelPacketModuleCall {})
            .await,
        addr(&d["modules"]["channelPacket"])
    );
    assert_eq!(
        rpc.view(
            handler,
            IBCHandler::getPortAppCall {
                portId: "ping".into()
            }
        )
        .await,
        app
    );

    // Test code (the owner) registers the test-only client and drives a loopback connection
    // and channel on the deployed handler.
    let mut code = TestOnlyClient::BYTECODE.to_vec();
    code.extend(TestOnlyClient::constructorCall { handler_: handler }.abi_encode());
    let lc = rpc.key.address().create(rpc.nonce);
    rpc.send(TxKind::Create, code).await;
    rpc.call(
        handler,
        IBCClient::registerClientCall {
            clientType: "kh-test-only".into(),
            lightClient: lc,
        },
    )
    .await;
    let (n, t) = rpc.head().await;
    rpc.call(
        handler,
        IBCClient::createClientCall {
            msg_: IBCClient::MsgCreateClient {
                clientType: "kh-test-only".into(),
                clientState: client_state(n).into(),
                consensusState: consensus_state(t * 1_000_000_000, keccak256(n.to_be_bytes()))
                    .into(),
            },
        },
    )
    .await;
    let cid = "kh-test-only-0";
    rpc.call(
        handler,
        C::connectionOpenInitCall {
            m: C::MsgConnectionOpenInit {
                clientId: cid.into(),
                counterpartyClientId: cid.into(),
                counterpartyPrefix: PREFIX.into(),
                delayPeriod: 0,
            },
        },
    )
    .await;
    let h = update(&mut rpc, handler).await;
    let proof = prove(
        &rpc,
        handler,
        &h,
        "connections/connection-0",
        &connection_end(cid, conn::State::Init, ""),
    )
    .await;
    rpc.call(
        handler,
        C::connectionOpenTryCall {
            m: C::MsgConnectionOpenTry {
                clientId: cid.into(),
                counterpartyClientId: cid.into(),
                counterpartyConnectionId: "connection-0".into(),
                counterpartyPrefix: PREFIX.into(),
                delayPeriod: 0,
                proofInit: proof,
                proofHeight: height_c(&h),
            },
        },
    )
    .await;
    let h = update(&mut rpc, handler).await;
    let proof = prove(
        &rpc,
        handler,
        &h,
        "connections/connection-1",
        &connection_end(cid, conn::State::Tryopen, "connection-0"),
    )
    .await;
    rpc.call(
        handler,
        C::connectionOpenAckCall {
            m: C::MsgConnectionOpenAck {
                connectionId: "connection-0".into(),
                counterpartyConnectionId: "connection-1".into(),
                proofTry: proof,
                proofHeight: height_c(&h),
            },
        },
    )
    .await;
    let h = update(&mut rpc, handler).await;
    let proof = prove(
        &rpc,
        handler,
        &h,
        "connections/connection-0",
        &connection_end(cid, conn::State::Open, "connection-1"),
    )
    .await;
    rpc.call(
        handler,
        C::connectionOpenConfirmCall {
            m: C::MsgConnectionOpenConfirm {
                connectionId: "connection-1".into(),
                proofAck: proof,
                proofHeight: height_c(&h),
            },
        },
    )
    .await;

    rpc.call(
        handler,
        H::channelOpenInitCall {
            m: H::MsgChannelOpenInit {
                portId: "ping".into(),
                ordering: chan::Order::Unordered as u8,
                connectionId: "connection-0".into(),
                counterpartyPortId: "ping".into(),
                version: "ping-1".into(),
            },
        },
    )
    .await;
    let h = update(&mut rpc, handler).await;
    let proof = prove(
        &rpc,
        handler,
        &h,
        "channelEnds/ports/ping/channels/channel-0",
        &channel_end(chan::State::Init, "", "connection-0"),
    )
    .await;
    rpc.call(
        handler,
        H::channelOpenTryCall {
            m: H::MsgChannelOpenTry {
                portId: "ping".into(),
                ordering: chan::Order::Unordered as u8,
                connectionId: "connection-1".into(),
                counterpartyPortId: "ping".into(),
                counterpartyChannelId: "channel-0".into(),
                counterpartyVersion: "ping-1".into(),
                proofInit: proof,
                proofHeight: height_h(&h),
            },
        },
    )
    .await;
    let h = update(&mut rpc, handler).await;
    let proof = prove(
        &rpc,
        handler,
        &h,
        "channelEnds/ports/ping/channels/channel-1",
        &channel_end(chan::State::Tryopen, "channel-0", "connection-1"),
    )
    .await;
    rpc.call(
        handler,
        H::channelOpenAckCall {
            m: H::MsgChannelOpenAck {
                portId: "ping".into(),
                channelId: "channel-0".into(),
                counterpartyChannelId: "channel-1".into(),
                counterpartyVersion: "ping-1".into(),
                proofTry: proof,
                proofHeight: height_h(&h),
            },
        },
    )
    .await;
    let h = update(&mut rpc, handler).await;
    let proof = prove(
        &rpc,
        handler,
        &h,
        "channelEnds/ports/ping/channels/channel-0",
        &channel_end(chan::State::Open, "channel-1", "connection-0"),
    )
    .await;
    rpc.call(
        handler,
        H::channelOpenConfirmCall {
            m: H::MsgChannelProof {
                portId: "ping".into(),
                channelId: "channel-1".into(),
                proof,
                proofHeight: height_h(&h),
            },
        },
    )
    .await;

    // The owner pings through the app.
    let (n, _) = rpc.head().await;
    let logs = rpc
        .call(
            app,
            kh_contracts::PingApp::pingCall {
                channelId: "channel-0".into(),
                data: Bytes::from_static(b"proven"),
                timeoutHeight: kh_contracts::PingApp::Height {
                    revisionNumber: 0,
                    revisionHeight: n + 100,
                },
                timeoutTimestamp: 0,
            },
        )
        .await;
    let p = event::<P::SendPacket>(&logs).packet;
    assert_eq!(
        (
            p.sourceChannel.as_str(),
            p.destinationChannel.as_str(),
            p.sequence
        ),
        ("channel-0", "channel-1", 1)
    );

    // eth_getProof of the packet commitment slot, verified with alloy-trie.
    let mut pre = Vec::new();
    pre.extend(0u64.to_be_bytes());
    pre.extend(0u64.to_be_bytes());
    pre.extend((n + 100).to_be_bytes());
    pre.extend(sha256(b"proven"));
    let commitment = keccak256(sha256(&pre));
    let slot = ibc_commitment_slot("commitments/ports/ping/channels/channel-0/sequences/1");
    let block: Value = rpc
        .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
        .await;
    let state_root: B256 = block["stateRoot"].as_str().unwrap().parse().unwrap();
    let proof: Value = rpc
        .request(
            "eth_getProof",
            vec![json!(handler), json!([slot]), block["number"].clone()],
        )
        .await;
    let nodes = |v: &Value| -> Vec<Bytes> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().parse().unwrap())
            .collect()
    };
    let u256 = |v: &Value| v.as_str().unwrap().parse::<U256>().unwrap();
    let account = TrieAccount {
        nonce: u256(&proof["nonce"]).to::<u64>(),
        balance: u256(&proof["balance"]),
        storage_root: proof["storageHash"].as_str().unwrap().parse().unwrap(),
        code_hash: proof["codeHash"].as_str().unwrap().parse().unwrap(),
    };
    alloy_trie::proof::verify_proof(
        state_root,
        Nibbles::unpack(keccak256(handler)),
        Some(alloy_rlp::encode(account)),
        &nodes(&proof["accountProof"]),
    )
    .expect("account proof");
    let sp = &proof["storageProof"][0];
    assert_eq!(sp["key"].as_str().unwrap().parse::<B256>().unwrap(), slot);
    assert_eq!(u256(&sp["value"]), U256::from_be_bytes(commitment.0));
    alloy_trie::proof::verify_proof(
        account.storage_root,
        Nibbles::unpack(keccak256(slot)),
        Some(alloy_rlp::encode(U256::from_be_bytes(commitment.0))),
        &nodes(&sp["proof"]),
    )
    .expect("storage proof");
    // A different value does not verify.
    assert!(
        alloy_trie::proof::verify_proof(
            account.storage_root,
            Nibbles::unpack(keccak256(slot)),
            Some(alloy_rlp::encode(U256::from(1))),
            &nodes(&sp["proof"]),
        )
        .is_err()
    );

    // `ibc query` reads the same state.
    let q = |args: &'static [&'static str]| {
        let u = url.clone();
        let h = format!("{handler}");
        tokio::task::spawn_blocking(move || {
            let mut all = vec!["ibc", "query", "--rpc", &u, "--handler", &h];
            all.extend_from_slice(args);
            all.push("--json");
            let out = Command::new(bin).args(&all).output().unwrap();
            (
                out.status.code(),
                serde_json::from_slice::<Value>(&out.stdout).ok(),
            )
        })
    };
    let (code, v) = q(&["client", "kh-test-only-0"]).await.unwrap();
    let v = v.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(v["client_type"], "kh-test-only");
    assert_eq!(
        v["light_client"]
            .as_str()
            .unwrap()
            .parse::<Address>()
            .unwrap(),
        lc
    );
    let (_, v) = q(&["connection", "connection-1"]).await.unwrap();
    let v = v.unwrap();
    assert_eq!(v["state"], "OPEN");
    assert_eq!(v["counterparty"]["connection_id"], "connection-0");
    let open1 = connection_end(cid, conn::State::Open, "connection-0");
    assert_eq!(
        v["commitment"]["commitment"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap(),
        keccak256(&open1)
    );
    let (_, v) = q(&["channel", "ping", "channel-0"]).await.unwrap();
    let v = v.unwrap();
    assert_eq!(
        (v["state"].as_str(), v["ordering"].as_str()),
        (Some("OPEN"), Some("UNORDERED"))
    );
    assert_eq!(v["next_sequence_send"], 2);
    let (_, v) = q(&["packet-commitment", "ping", "channel-0", "1"])
        .await
        .unwrap();
    let v = v.unwrap();
    assert_eq!(
        v["commitment"].as_str().unwrap().parse::<B256>().unwrap(),
        commitment
    );
    assert_eq!(v["slot"].as_str().unwrap().parse::<B256>().unwrap(), slot);
    let (_, v) = q(&["packet-commitment", "ping", "channel-0", "2"])
        .await
        .unwrap();
    assert!(v.unwrap()["commitment"].is_null());
    let (code, _) = q(&["connection", "connection-7"]).await.unwrap();
    assert_eq!(code, Some(1), "unknown connection is an error");

    devnet.shutdown().await.unwrap();
}
