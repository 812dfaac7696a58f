//! `kakehashi bench gas`: the gas the Solidity IBC handler uses per operation, measured on an
//! in-process QBFT devnet (one block per transaction) over its JSON-RPC.
//!
//! Two handlers ("A" and "B") are deployed on the one devnet, each behind its `IBCProxy` as in
//! production (so the figures include the proxy's delegatecall), each with a `TestOnlyClient`
//! (whose verification is a keccak256 comparison, so the figures are the handler's own cost)
//! tracking the devnet itself, and a `PingApp` bound to port "ping". The bench carries the
//! datagrams: clients, the connection and channel handshakes, a warm-up packet round, then the
//! measured packet (send, receive with its synchronous acknowledgement, acknowledge) and a
//! packet timed out by height. Each figure is the transaction's `gasUsed` from its receipt
//! (intrinsic gas and calldata included). Every transaction must succeed, and every proof is
//! made from the value the source handler committed (read back with `eth_getStorageAt`).

use std::collections::BTreeMap;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolConstructor, SolValue};
use anyhow::{Context, ensure};
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use jsonrpsee::core::client::ClientT;
use kh_contracts::{
    IBCChannelHandshake as H, IBCChannelPacket as P, IBCClient, IBCConnection as C, PingApp,
    TestOnlyClient, ibc_commitment_slot,
};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use prost::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::evm_tx::{Sender, quantity};
use crate::ibc::deploy_stack;
use crate::output::print_json;

/// Arguments of `bench gas`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print JSON (the only format; accepted so the documented command line works).
    #[arg(long)]
    json: bool,
}

const PORT: &str = "ping";
const VERSION: &str = "ping-1";
const PREFIX: &[u8] = b"ibc";
const CLIENT_TYPE: &str = "kh-test-only";
/// Gas limit of the measured calls (fixed: no estimate round trip per transaction).
const CALL_GAS: Option<u64> = Some(3_000_000);

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// One handler with its test-only client and ping app.
struct Side {
    handler: Address,
    app: Address,
    client_id: String,
    connection_id: String,
    channel_id: String,
}

struct Bench<'a> {
    devnet: &'a Devnet,
    sender: Sender,
    gas: BTreeMap<&'static str, u64>,
}

impl Bench<'_> {
    async fn deploy_side(&mut self) -> anyhow::Result<Side> {
        let d = deploy_stack(&mut self.sender, PORT).await?;
        let s = &mut self.sender;
        let lc = s
            .deploy(
                &TestOnlyClient::BYTECODE,
                TestOnlyClient::constructorCall {
                    handler_: d.handler,
                }
                .abi_encode(),
                None,
            )
            .await?;
        s.call(
            d.handler,
            IBCClient::registerClientCall {
                clientType: CLIENT_TYPE.into(),
                lightClient: lc,
            },
            None,
        )
        .await?;
        Ok(Side {
            handler: d.handler,
            app: d.app,
            client_id: String::new(),
            connection_id: String::new(),
            channel_id: String::new(),
        })
    }

    /// The devnet's head: (number, timestamp in seconds).
    async fn head(&self) -> anyhow::Result<(u64, u64)> {
        let block: Value = self
            .sender
            .client
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await?;
        Ok((quantity(&block["number"])?, quantity(&block["timestamp"])?))
    }

    async fn create_client(&mut self, side: &mut Side, record: bool) -> anyhow::Result<()> {
        let (n, t) = self.head().await?;
        let mined = self
            .sender
            .call(
                side.handler,
                IBCClient::createClientCall {
                    msg_: IBCClient::MsgCreateClient {
                        clientType: CLIENT_TYPE.into(),
                        clientState: client_state_any(n).into(),
                        consensusState: consensus_state_any(t * 1_000_000_000, root(n)).into(),
                    },
                },
                CALL_GAS,
            )
            .await?;
        side.client_id = mined.event::<IBCClient::CreateClient>()?.clientId;
        if record {
            self.gas.insert("createClient", mined.gas);
        }
        Ok(())
    }

    /// Updates `on`'s client to the devnet's head; returns that height.
    async fn update(&mut self, on: &Side, record: bool) -> anyhow::Result<P::Height> {
        let (n, t) = self.head().await?;
        let message = ((0u64, n), t * 1_000_000_000, root(n)).abi_encode_params();
        let mined = self
            .sender
            .call(
                on.handler,
                IBCClient::updateClientCall {
                    clientId: on.client_id.clone(),
                    clientMessage: message.into(),
                },
                CALL_GAS,
            )
            .await?;
        if record {
            self.gas.insert("updateClient", mined.gas);
        }
        Ok(P::Height {
            revisionNumber: 0,
            revisionHeight: n,
        })
    }

    /// The test-only client's proof of `value` (None: absence) at `path` of `side`'s store at
    /// `h`, after checking the commitment slot holds keccak256(value) (or zero) at the head.
    async fn prove(
        &self,
        side: &Side,
        h: &P::Height,
        path: &str,
        value: Option<&[u8]>,
    ) -> anyhow::Result<Bytes> {
        let slot = ibc_commitment_slot(path);
        let stored: B256 = self
            .sender
            .client
            .request(
                "eth_getStorageAt",
                vec![json!(side.handler), json!(slot), json!("latest")],
            )
            .await?;
        let hh = (h.revisionNumber, h.revisionHeight);
        let path_bytes = Bytes::from(path.as_bytes().to_vec());
        let digest = match value {
            Some(v) => {
                ensure!(
                    stored == keccak256(v),
                    "{path}: not the expected commitment"
                );
                keccak256(
                    (hh, Bytes::from(PREFIX), path_bytes, Bytes::from(v.to_vec()))
                        .abi_encode_params(),
                )
            }
            None => {
                ensure!(stored == B256::ZERO, "{path}: unexpected commitment");
                keccak256((hh, Bytes::from(PREFIX), path_bytes).abi_encode_params())
            }
        };
        Ok(Bytes::from(digest.to_vec()))
    }

    async fn connect(&mut self, a: &mut Side, b: &mut Side) -> anyhow::Result<()> {
        let mined = self
            .sender
            .call(
                a.handler,
                C::connectionOpenInitCall {
                    m: C::MsgConnectionOpenInit {
                        clientId: a.client_id.clone(),
                        counterpartyClientId: b.client_id.clone(),
                        counterpartyPrefix: PREFIX.into(),
                        delayPeriod: 0,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("connectionOpenInit", mined.gas);
        a.connection_id = mined.event::<C::ConnectionOpenInit>()?.connectionId;

        let h = self.update(b, true).await?;
        let init = connection_end(&a.client_id, conn::State::Init, &b.client_id, "");
        let proof = self
            .prove(
                a,
                &h,
                &format!("connections/{}", a.connection_id),
                Some(&init),
            )
            .await?;
        let mined = self
            .sender
            .call(
                b.handler,
                C::connectionOpenTryCall {
                    m: C::MsgConnectionOpenTry {
                        clientId: b.client_id.clone(),
                        counterpartyClientId: a.client_id.clone(),
                        counterpartyConnectionId: a.connection_id.clone(),
                        counterpartyPrefix: PREFIX.into(),
                        delayPeriod: 0,
                        proofInit: proof,
                        proofHeight: conv(&h)?,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("connectionOpenTry", mined.gas);
        b.connection_id = mined.event::<C::ConnectionOpenTry>()?.connectionId;

        let h = self.update(a, false).await?;
        let tryopen = connection_end(
            &b.client_id,
            conn::State::Tryopen,
            &a.client_id,
            &a.connection_id,
        );
        let proof = self
            .prove(
                b,
                &h,
                &format!("connections/{}", b.connection_id),
                Some(&tryopen),
            )
            .await?;
        let mined = self
            .sender
            .call(
                a.handler,
                C::connectionOpenAckCall {
                    m: C::MsgConnectionOpenAck {
                        connectionId: a.connection_id.clone(),
                        counterpartyConnectionId: b.connection_id.clone(),
                        proofTry: proof,
                        proofHeight: conv(&h)?,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("connectionOpenAck", mined.gas);

        let h = self.update(b, false).await?;
        let open = connection_end(
            &a.client_id,
            conn::State::Open,
            &b.client_id,
            &b.connection_id,
        );
        let proof = self
            .prove(
                a,
                &h,
                &format!("connections/{}", a.connection_id),
                Some(&open),
            )
            .await?;
        let mined = self
            .sender
            .call(
                b.handler,
                C::connectionOpenConfirmCall {
                    m: C::MsgConnectionOpenConfirm {
                        connectionId: b.connection_id.clone(),
                        proofAck: proof,
                        proofHeight: conv(&h)?,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("connectionOpenConfirm", mined.gas);
        Ok(())
    }

    async fn open_channel(&mut self, a: &mut Side, b: &mut Side) -> anyhow::Result<()> {
        let unordered = chan::Order::Unordered as u8;
        let mined = self
            .sender
            .call(
                a.handler,
                H::channelOpenInitCall {
                    m: H::MsgChannelOpenInit {
                        portId: PORT.into(),
                        ordering: unordered,
                        connectionId: a.connection_id.clone(),
                        counterpartyPortId: PORT.into(),
                        version: VERSION.into(),
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("channelOpenInit", mined.gas);
        a.channel_id = mined.event::<H::ChannelOpenInit>()?.channelId;

        let h = self.update(b, false).await?;
        let init = channel_end(chan::State::Init, PORT, "", &a.connection_id);
        let path = format!("channelEnds/ports/{PORT}/channels/{}", a.channel_id);
        let proof = self.prove(a, &h, &path, Some(&init)).await?;
        let mined = self
            .sender
            .call(
                b.handler,
                H::channelOpenTryCall {
                    m: H::MsgChannelOpenTry {
                        portId: PORT.into(),
                        ordering: unordered,
                        connectionId: b.connection_id.clone(),
                        counterpartyPortId: PORT.into(),
                        counterpartyChannelId: a.channel_id.clone(),
                        counterpartyVersion: VERSION.into(),
                        proofInit: proof,
                        proofHeight: conv(&h)?,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("channelOpenTry", mined.gas);
        b.channel_id = mined.event::<H::ChannelOpenTry>()?.channelId;

        let h = self.update(a, false).await?;
        let tryopen = channel_end(chan::State::Tryopen, PORT, &a.channel_id, &b.connection_id);
        let path = format!("channelEnds/ports/{PORT}/channels/{}", b.channel_id);
        let proof = self.prove(b, &h, &path, Some(&tryopen)).await?;
        let mined = self
            .sender
            .call(
                a.handler,
                H::channelOpenAckCall {
                    m: H::MsgChannelOpenAck {
                        portId: PORT.into(),
                        channelId: a.channel_id.clone(),
                        counterpartyChannelId: b.channel_id.clone(),
                        counterpartyVersion: VERSION.into(),
                        proofTry: proof,
                        proofHeight: conv(&h)?,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("channelOpenAck", mined.gas);

        let h = self.update(b, false).await?;
        let open = channel_end(chan::State::Open, PORT, &b.channel_id, &a.connection_id);
        let path = format!("channelEnds/ports/{PORT}/channels/{}", a.channel_id);
        let proof = self.prove(a, &h, &path, Some(&open)).await?;
        let mined = self
            .sender
            .call(
                b.handler,
                H::channelOpenConfirmCall {
                    m: H::MsgChannelProof {
                        portId: PORT.into(),
                        channelId: b.channel_id.clone(),
                        proof,
                        proofHeight: conv(&h)?,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("channelOpenConfirm", mined.gas);
        Ok(())
    }

    /// One packet A -> B: send, receive (sync ack), acknowledge; recorded when `record`.
    async fn packet_round(&mut self, a: &Side, b: &Side, record: bool) -> anyhow::Result<()> {
        let (n, _) = self.head().await?;
        let mined = self
            .sender
            .call(
                a.app,
                PingApp::pingCall {
                    channelId: a.channel_id.clone(),
                    data: Bytes::from_static(b"ping"),
                    timeoutHeight: PingApp::Height {
                        revisionNumber: 0,
                        revisionHeight: n + 1_000,
                    },
                    timeoutTimestamp: 0,
                },
                CALL_GAS,
            )
            .await?;
        let p = mined.event::<P::SendPacket>()?.packet;
        let send_gas = mined.gas;

        let h = self.update(b, false).await?;
        let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
        let proof = self
            .prove(a, &h, &path, Some(&packet_commitment(&p)))
            .await?;
        let mined = self
            .sender
            .call(
                b.handler,
                P::recvPacketCall {
                    m: P::MsgRecvPacket {
                        packet: p.clone(),
                        proof,
                        proofHeight: h,
                    },
                },
                CALL_GAS,
            )
            .await?;
        let ack = mined
            .event::<P::WriteAcknowledgement>()?
            .acknowledgement
            .to_vec();
        let recv_gas = mined.gas;

        let h = self.update(a, false).await?;
        let path = packet_path(
            "acks",
            &p.destinationPort,
            &p.destinationChannel,
            p.sequence,
        );
        let proof = self.prove(b, &h, &path, Some(&sha256(&ack))).await?;
        let mined = self
            .sender
            .call(
                a.handler,
                P::acknowledgePacketCall {
                    m: P::MsgAcknowledgement {
                        packet: p,
                        acknowledgement: ack.into(),
                        proof,
                        proofHeight: h,
                    },
                },
                CALL_GAS,
            )
            .await?;
        if record {
            self.gas.insert("sendPacket", send_gas);
            self.gas.insert("recvPacket", recv_gas);
            self.gas.insert("acknowledgePacket", mined.gas);
        }
        Ok(())
    }

    /// A packet A -> B that times out by height, then its timeout on A.
    async fn timeout(&mut self, a: &Side, b: &Side) -> anyhow::Result<()> {
        let (n, _) = self.head().await?;
        let mined = self
            .sender
            .call(
                a.app,
                PingApp::pingCall {
                    channelId: a.channel_id.clone(),
                    data: Bytes::from_static(b"late"),
                    timeoutHeight: PingApp::Height {
                        revisionNumber: 0,
                        revisionHeight: n + 2,
                    },
                    timeoutTimestamp: 0,
                },
                CALL_GAS,
            )
            .await?;
        let p = mined.event::<P::SendPacket>()?.packet;
        self.devnet.mine().await?;
        self.devnet.mine().await?;
        let h = self.update(a, false).await?;
        ensure!(
            h.revisionHeight >= n + 2,
            "the timeout height has not passed"
        );
        let path = packet_path(
            "receipts",
            &p.destinationPort,
            &p.destinationChannel,
            p.sequence,
        );
        let proof = self.prove(b, &h, &path, None).await?;
        let mined = self
            .sender
            .call(
                a.handler,
                P::timeoutPacketCall {
                    m: P::MsgTimeout {
                        packet: p,
                        proof,
                        proofHeight: h,
                        nextSequenceRecv: 0,
                    },
                },
                CALL_GAS,
            )
            .await?;
        self.gas.insert("timeoutPacket", mined.gas);
        Ok(())
    }
}

fn root(n: u64) -> B256 {
    keccak256(n.to_be_bytes())
}

fn conv<A: SolValue, B: SolValue + From<<B::SolType as alloy_sol_types::SolType>::RustType>>(
    a: &A,
) -> anyhow::Result<B> {
    Ok(B::abi_decode(&a.abi_encode())?)
}

fn packet_path(kind: &str, port: &str, channel: &str, seq: u64) -> String {
    format!("{kind}/ports/{port}/channels/{channel}/sequences/{seq}")
}

/// ICS-04: sha256(timeout_timestamp ‖ revision_number ‖ revision_height ‖ sha256(data)).
fn packet_commitment(p: &P::Packet) -> [u8; 32] {
    let mut pre = Vec::with_capacity(56);
    pre.extend(p.timeoutTimestamp.to_be_bytes());
    pre.extend(p.timeoutHeight.revisionNumber.to_be_bytes());
    pre.extend(p.timeoutHeight.revisionHeight.to_be_bytes());
    pre.extend(sha256(&p.data));
    sha256(&pre)
}

fn any(type_url: &str, value: Vec<u8>) -> Vec<u8> {
    ibc_proto::google::protobuf::Any {
        type_url: type_url.into(),
        value,
    }
    .encode_to_vec()
}

/// "/kakehashi.testonly.v1.ClientState" {1: latest_height}.
fn client_state_any(height: u64) -> Vec<u8> {
    let h = ibc_proto::ibc::core::client::v1::Height {
        revision_number: 0,
        revision_height: height,
    };
    let mut value = Vec::new();
    prost::encoding::message::encode(1, &h, &mut value);
    any("/kakehashi.testonly.v1.ClientState", value)
}

/// "/kakehashi.testonly.v1.ConsensusState" {1: timestamp, 2: root}.
fn consensus_state_any(timestamp_ns: u64, root: B256) -> Vec<u8> {
    let mut value = Vec::new();
    prost::encoding::uint64::encode(1, &timestamp_ns, &mut value);
    prost::encoding::bytes::encode(2, &root.to_vec(), &mut value);
    any("/kakehashi.testonly.v1.ConsensusState", value)
}

fn connection_end(client_id: &str, state: conn::State, cp_client: &str, cp_conn: &str) -> Vec<u8> {
    conn::ConnectionEnd {
        client_id: client_id.into(),
        versions: vec![conn::Version {
            identifier: "1".into(),
            features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
        }],
        state: state as i32,
        counterparty: Some(conn::Counterparty {
            client_id: cp_client.into(),
            connection_id: cp_conn.into(),
            prefix: Some(MerklePrefix {
                key_prefix: PREFIX.to_vec(),
            }),
        }),
        delay_period: 0,
    }
    .encode_to_vec()
}

fn channel_end(state: chan::State, cp_port: &str, cp_channel: &str, connection: &str) -> Vec<u8> {
    chan::Channel {
        state: state as i32,
        ordering: chan::Order::Unordered as i32,
        counterparty: Some(chan::Counterparty {
            port_id: cp_port.into(),
            channel_id: cp_channel.into(),
        }),
        connection_hops: vec![connection.into()],
        version: VERSION.into(),
        upgrade_sequence: 0,
    }
    .encode_to_vec()
}

/// Runs the benchmark and prints `{operation: gas used}`.
pub(crate) async fn run(_args: Args) -> anyhow::Result<()> {
    let devnet = Devnet::start(DevnetConfig {
        production: BlockProduction::Instant,
        rpc_addr: "127.0.0.1:0".parse()?,
        dev_accounts: 1,
        ..DevnetConfig::default()
    })
    .await?;
    let result = async {
        let key = PrivateKeySigner::from_bytes(
            &devnet
                .dev_accounts()
                .first()
                .context("no dev account")?
                .private_key,
        )?;
        let url = format!("http://{}", devnet.rpc_addr());
        let sender = Sender::connect(&url, key, Duration::from_secs(60)).await?;
        let mut bench = Bench {
            devnet: &devnet,
            sender,
            gas: BTreeMap::new(),
        };
        measure(&mut bench).await?;
        anyhow::Ok(bench.gas)
    }
    .await;
    devnet.shutdown().await?;
    print_json(&result?)
}

async fn measure(bench: &mut Bench<'_>) -> anyhow::Result<()> {
    let mut a = bench.deploy_side().await?;
    let mut b = bench.deploy_side().await?;
    bench.create_client(&mut a, true).await?;
    bench.create_client(&mut b, false).await?;
    bench.connect(&mut a, &mut b).await?;
    bench.open_channel(&mut a, &mut b).await?;
    // The first packet of a channel also pays for the apps' first counter writes (zero to
    // non-zero): warm up, then measure the second.
    bench.packet_round(&a, &b, false).await?;
    bench.packet_round(&a, &b, true).await?;
    bench.timeout(&a, &b).await?;
    Ok(())
}
