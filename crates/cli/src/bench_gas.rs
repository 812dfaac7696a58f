//! `kakehashi bench gas`: the gas the Solidity IBC handler uses per operation, measured on two
//! in-process QBFT devnets ("A" and "B", one block per transaction) over their JSON-RPC.
//!
//! Each devnet gets the handler behind its `IBCProxy` (as `kakehashi ibc deploy` deploys it, so
//! the figures include the proxy's delegatecall), a `PingApp` bound to port "ping", and a
//! `TestOnlyClient` tracking the other devnet (its verification is a keccak256 comparison, so
//! the figures are the handler's own cost). The bench carries the datagrams: clients, the
//! connection and channel handshakes, a warm-up packet round, then the measured packet (send,
//! receive with its synchronous acknowledgement, acknowledge) and a packet timed out by height.
//! Each figure is the transaction's `gasUsed` from its receipt (intrinsic gas and calldata
//! included). Every transaction must succeed, and every proof is made from the value the source
//! handler committed (read back with `eth_getStorageAt` at its commitment slot).

use std::collections::BTreeMap;
use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolConstructor, SolValue};
use anyhow::{Context, ensure};
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use jsonrpsee::core::client::ClientT;
use kh_contracts::{
    IBCChannelHandshake as H, IBCChannelPacket as P, IBCClient, IBCConnection as C, PingApp,
    TestOnlyClient, ibc_commitment_slot, packet_commitment, packet_path,
};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig};
use prost::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::evm_tx::{Mined, Sender, quantity};
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

pub(crate) type Gas = BTreeMap<&'static str, u64>;

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// One devnet with its handler, ping app and test-only client (of the other devnet).
struct Chain {
    devnet: Devnet,
    sender: Sender,
    handler: Address,
    app: Address,
    client_id: String,
    connection_id: String,
    channel_id: String,
}

impl Chain {
    async fn start(chain_id: u64) -> anyhow::Result<Self> {
        let devnet = Devnet::start(DevnetConfig {
            production: BlockProduction::Instant,
            rpc_addr: "127.0.0.1:0".parse()?,
            dev_accounts: 1,
            chain_id,
            ..DevnetConfig::default()
        })
        .await?;
        match Self::deploy(&devnet).await {
            Ok((sender, handler, app)) => Ok(Self {
                devnet,
                sender,
                handler,
                app,
                client_id: String::new(),
                connection_id: String::new(),
                channel_id: String::new(),
            }),
            Err(e) => {
                devnet.shutdown().await?;
                Err(e)
            }
        }
    }

    async fn deploy(devnet: &Devnet) -> anyhow::Result<(Sender, Address, Address)> {
        let key = PrivateKeySigner::from_bytes(
            &devnet
                .dev_accounts()
                .first()
                .context("no dev account")?
                .private_key,
        )?;
        let url = format!("http://{}", devnet.rpc_addr());
        let mut sender = Sender::connect(&url, key, Duration::from_secs(60)).await?;
        let d = deploy_stack(&mut sender, PORT).await?;
        let lc = sender
            .deploy(
                &TestOnlyClient::BYTECODE,
                TestOnlyClient::constructorCall {
                    handler_: d.handler,
                }
                .abi_encode(),
                None,
            )
            .await?;
        sender
            .call(
                d.handler,
                IBCClient::registerClientCall {
                    clientType: CLIENT_TYPE.into(),
                    lightClient: lc,
                },
                None,
            )
            .await?;
        Ok((sender, d.handler, d.app))
    }

    async fn call<T: SolCall>(&mut self, call: T) -> anyhow::Result<Mined> {
        let h = self.handler;
        self.sender.call(h, call, CALL_GAS).await
    }

    async fn ping(&mut self, timeout_height: u64, data: &'static [u8]) -> anyhow::Result<Mined> {
        let (app, channel) = (self.app, self.channel_id.clone());
        self.sender
            .call(
                app,
                PingApp::pingCall {
                    channelId: channel,
                    data: Bytes::from_static(data),
                    timeoutHeight: PingApp::Height {
                        revisionNumber: 0,
                        revisionHeight: timeout_height,
                    },
                    timeoutTimestamp: 0,
                },
                CALL_GAS,
            )
            .await
    }

    /// The head: (number, timestamp in seconds).
    async fn head(&self) -> anyhow::Result<(u64, u64)> {
        let block: Value = self
            .sender
            .client
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await?;
        Ok((quantity(&block["number"])?, quantity(&block["timestamp"])?))
    }

    /// The test-only client's proof of `value` (None: absence) at `path` of this chain's store
    /// at `h`, after checking the commitment slot holds keccak256(value) (or zero).
    async fn prove(
        &self,
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
                vec![json!(self.handler), json!(slot), json!("latest")],
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
}

/// Creates `on`'s client of `of` at `of`'s head.
async fn create_client(on: &mut Chain, of: &Chain) -> anyhow::Result<u64> {
    let (n, t) = of.head().await?;
    let mined = on
        .call(IBCClient::createClientCall {
            msg_: IBCClient::MsgCreateClient {
                clientType: CLIENT_TYPE.into(),
                clientState: client_state_any(n).into(),
                consensusState: consensus_state_any(t * 1_000_000_000, root(n)).into(),
            },
        })
        .await?;
    on.client_id = mined.event::<IBCClient::CreateClient>()?.clientId;
    Ok(mined.gas)
}

/// Updates `on`'s client of `of` to `of`'s head; returns that height and the gas.
async fn update(on: &mut Chain, of: &Chain) -> anyhow::Result<(P::Height, u64)> {
    let (n, t) = of.head().await?;
    let message = ((0u64, n), t * 1_000_000_000, root(n)).abi_encode_params();
    let id = on.client_id.clone();
    let mined = on
        .call(IBCClient::updateClientCall {
            clientId: id,
            clientMessage: message.into(),
        })
        .await?;
    Ok((
        P::Height {
            revisionNumber: 0,
            revisionHeight: n,
        },
        mined.gas,
    ))
}

async fn connect(a: &mut Chain, b: &mut Chain, gas: &mut Gas) -> anyhow::Result<()> {
    let mined = a
        .call(C::connectionOpenInitCall {
            m: C::MsgConnectionOpenInit {
                clientId: a.client_id.clone(),
                counterpartyClientId: b.client_id.clone(),
                counterpartyPrefix: PREFIX.into(),
                delayPeriod: 0,
            },
        })
        .await?;
    gas.insert("connectionOpenInit", mined.gas);
    a.connection_id = mined.event::<C::ConnectionOpenInit>()?.connectionId;

    let (h, update_gas) = update(b, a).await?;
    gas.insert("updateClient", update_gas);
    let init = connection_end(&a.client_id, conn::State::Init, &b.client_id, "");
    let proof = a
        .prove(&h, &format!("connections/{}", a.connection_id), Some(&init))
        .await?;
    let mined = b
        .call(C::connectionOpenTryCall {
            m: C::MsgConnectionOpenTry {
                clientId: b.client_id.clone(),
                counterpartyClientId: a.client_id.clone(),
                counterpartyConnectionId: a.connection_id.clone(),
                counterpartyPrefix: PREFIX.into(),
                delayPeriod: 0,
                proofInit: proof,
                proofHeight: conv(&h)?,
            },
        })
        .await?;
    gas.insert("connectionOpenTry", mined.gas);
    b.connection_id = mined.event::<C::ConnectionOpenTry>()?.connectionId;

    let (h, _) = update(a, b).await?;
    let tryopen = connection_end(
        &b.client_id,
        conn::State::Tryopen,
        &a.client_id,
        &a.connection_id,
    );
    let proof = b
        .prove(
            &h,
            &format!("connections/{}", b.connection_id),
            Some(&tryopen),
        )
        .await?;
    let mined = a
        .call(C::connectionOpenAckCall {
            m: C::MsgConnectionOpenAck {
                connectionId: a.connection_id.clone(),
                counterpartyConnectionId: b.connection_id.clone(),
                proofTry: proof,
                proofHeight: conv(&h)?,
            },
        })
        .await?;
    gas.insert("connectionOpenAck", mined.gas);

    let (h, _) = update(b, a).await?;
    let open = connection_end(
        &a.client_id,
        conn::State::Open,
        &b.client_id,
        &b.connection_id,
    );
    let proof = a
        .prove(&h, &format!("connections/{}", a.connection_id), Some(&open))
        .await?;
    let mined = b
        .call(C::connectionOpenConfirmCall {
            m: C::MsgConnectionOpenConfirm {
                connectionId: b.connection_id.clone(),
                proofAck: proof,
                proofHeight: conv(&h)?,
            },
        })
        .await?;
    gas.insert("connectionOpenConfirm", mined.gas);
    Ok(())
}

async fn open_channel(a: &mut Chain, b: &mut Chain, gas: &mut Gas) -> anyhow::Result<()> {
    let unordered = chan::Order::Unordered as u8;
    let mined = a
        .call(H::channelOpenInitCall {
            m: H::MsgChannelOpenInit {
                portId: PORT.into(),
                ordering: unordered,
                connectionId: a.connection_id.clone(),
                counterpartyPortId: PORT.into(),
                version: VERSION.into(),
            },
        })
        .await?;
    gas.insert("channelOpenInit", mined.gas);
    a.channel_id = mined.event::<H::ChannelOpenInit>()?.channelId;

    let (h, _) = update(b, a).await?;
    let init = channel_end(chan::State::Init, PORT, "", &a.connection_id);
    let path = format!("channelEnds/ports/{PORT}/channels/{}", a.channel_id);
    let proof = a.prove(&h, &path, Some(&init)).await?;
    let mined = b
        .call(H::channelOpenTryCall {
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
        })
        .await?;
    gas.insert("channelOpenTry", mined.gas);
    b.channel_id = mined.event::<H::ChannelOpenTry>()?.channelId;

    let (h, _) = update(a, b).await?;
    let tryopen = channel_end(chan::State::Tryopen, PORT, &a.channel_id, &b.connection_id);
    let path = format!("channelEnds/ports/{PORT}/channels/{}", b.channel_id);
    let proof = b.prove(&h, &path, Some(&tryopen)).await?;
    let mined = a
        .call(H::channelOpenAckCall {
            m: H::MsgChannelOpenAck {
                portId: PORT.into(),
                channelId: a.channel_id.clone(),
                counterpartyChannelId: b.channel_id.clone(),
                counterpartyVersion: VERSION.into(),
                proofTry: proof,
                proofHeight: conv(&h)?,
            },
        })
        .await?;
    gas.insert("channelOpenAck", mined.gas);

    let (h, _) = update(b, a).await?;
    let open = channel_end(chan::State::Open, PORT, &b.channel_id, &a.connection_id);
    let path = format!("channelEnds/ports/{PORT}/channels/{}", a.channel_id);
    let proof = a.prove(&h, &path, Some(&open)).await?;
    let mined = b
        .call(H::channelOpenConfirmCall {
            m: H::MsgChannelProof {
                portId: PORT.into(),
                channelId: b.channel_id.clone(),
                proof,
                proofHeight: conv(&h)?,
            },
        })
        .await?;
    gas.insert("channelOpenConfirm", mined.gas);
    Ok(())
}

/// One packet A -> B: send, receive (sync ack), acknowledge; recorded in `gas` if given.
async fn packet_round(a: &mut Chain, b: &mut Chain, gas: Option<&mut Gas>) -> anyhow::Result<()> {
    let (n, _) = b.head().await?;
    let mined = a.ping(n + 1_000, b"ping").await?;
    let p = mined.event::<P::SendPacket>()?.packet;
    let send_gas = mined.gas;

    let (h, _) = update(b, a).await?;
    let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
    let proof = a.prove(&h, &path, Some(&packet_commitment(&p))).await?;
    let mined = b
        .call(P::recvPacketCall {
            m: P::MsgRecvPacket {
                packet: p.clone(),
                proof,
                proofHeight: h,
            },
        })
        .await?;
    let ack = mined
        .event::<P::WriteAcknowledgement>()?
        .acknowledgement
        .to_vec();
    let recv_gas = mined.gas;

    let (h, _) = update(a, b).await?;
    let path = packet_path(
        "acks",
        &p.destinationPort,
        &p.destinationChannel,
        p.sequence,
    );
    let proof = b.prove(&h, &path, Some(&sha256(&ack))).await?;
    let mined = a
        .call(P::acknowledgePacketCall {
            m: P::MsgAcknowledgement {
                packet: p,
                acknowledgement: ack.into(),
                proof,
                proofHeight: h,
            },
        })
        .await?;
    if let Some(gas) = gas {
        gas.insert("sendPacket", send_gas);
        gas.insert("recvPacket", recv_gas);
        gas.insert("acknowledgePacket", mined.gas);
    }
    Ok(())
}

/// A packet A -> B that times out by B's height, then its timeout on A.
async fn timeout(a: &mut Chain, b: &mut Chain, gas: &mut Gas) -> anyhow::Result<()> {
    let (n, _) = b.head().await?;
    let mined = a.ping(n + 2, b"late").await?;
    let p = mined.event::<P::SendPacket>()?.packet;
    b.devnet.mine().await?;
    b.devnet.mine().await?;
    let (h, _) = update(a, b).await?;
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
    let proof = b.prove(&h, &path, None).await?;
    let mined = a
        .call(P::timeoutPacketCall {
            m: P::MsgTimeout {
                packet: p,
                proof,
                proofHeight: h,
                nextSequenceRecv: 0,
            },
        })
        .await?;
    gas.insert("timeoutPacket", mined.gas);
    Ok(())
}

fn root(n: u64) -> B256 {
    keccak256(n.to_be_bytes())
}

fn conv<A: SolValue, B: SolValue + From<<B::SolType as alloy_sol_types::SolType>::RustType>>(
    a: &A,
) -> anyhow::Result<B> {
    Ok(B::abi_decode(&a.abi_encode())?)
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
    let mut a = Chain::start(1337).await?;
    let mut b = match Chain::start(1338).await {
        Ok(b) => b,
        Err(e) => {
            a.devnet.shutdown().await?;
            return Err(e);
        }
    };
    let result = measure(&mut a, &mut b).await;
    a.devnet.shutdown().await?;
    b.devnet.shutdown().await?;
    print_json(&result?)
}

async fn measure(a: &mut Chain, b: &mut Chain) -> anyhow::Result<Gas> {
    let mut gas = Gas::new();
    gas.insert("createClient", create_client(a, b).await?);
    create_client(b, a).await?;
    connect(a, b, &mut gas).await?;
    open_channel(a, b, &mut gas).await?;
    // The first packet of a channel also pays for the apps' first counter writes (zero to
    // non-zero): warm up, then measure the second.
    packet_round(a, b, None).await?;
    packet_round(a, b, Some(&mut gas)).await?;
    timeout(a, b, &mut gas).await?;
    let (_, now) = a.head().await?;
    crate::bench_gas_lcp::measure(&mut a.sender, now, &mut gas).await?;
    crate::bench_gas_qbft::measure(&mut a.sender, now, &mut gas).await?;
    Ok(gas)
}
