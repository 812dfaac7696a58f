//! The relayer between two QBFT devnets (EVM↔EVM): each chain gets the IBC stack with
//! `kakehashi ibc deploy` and a test-only light client of the other chain (registered by the
//! owner; FOR TESTS ONLY — the production client is LCP's); the relayer library runs the
//! connection and channel handshakes, then relays event-driven from both chains' logs: ten
//! pings each way with their acknowledgements, and a packet that times out by height. Every
//! delivery is checked from the chains' own events: each sequence received and acknowledged
//! exactly once. A second relayer replaying the whole history afterwards submits nothing.
//!
//! The rejections over the same two devnets: a proof with one byte changed (receive and ack), a
//! replayed packet, an ack for a packet never sent and a timeout for a packet received (both
//! "proven" by a lying relayer), a receive after the timeout height, a timeout before it, an
//! out-of-order packet on an ordered channel, a handshake step out of order, and a send on a
//! port the caller does not own — each refused with the handler's own error. And the rest of
//! the packet life cycle: a timeout by timestamp, an asynchronous acknowledgement, a channel
//! closed by its app with a packet in flight (timed out on close), and the close confirmed.
//!
//! Batches: the EVM end submits a client update and the packets it proves as one handler
//! `multicall` transaction (a burst of pings lands in one), cuts a batch larger than its
//! `max_messages_per_tx` into several, and names the refused datagram when one is stale; the
//! relay delivers in fewer transactions than messages plus updates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/evm_ibc.rs"]
mod evm_ibc;

use evm_ibc::{Chain, chain};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolError, SolEvent, SolValue};
use ibc_proto::ibc::core::channel::v1 as chan;
use kh_contracts::{IBCChannelPacket as P, PingApp, TestOnlyClient, ibc_commitment_slot};
use kh_relayer::evm::FailoverRpc;
use kh_relayer::evm::follow::handler_events;
use kh_relayer::evm::handshake::{ChannelSpec, PREFIX, connect, open_channel};
use kh_relayer::evm::ibc::{EvmEnd, IbcError, IbcHeight, Prover};
use kh_relayer::relay::{RelayEnd, RelayPolicy, RelayStats, relay};
use prost::Message;
use serde_json::{Value, json};

const CLIENT_TYPE: &str = "kh-test-only";

/// The test-only client's prover: the client accepts keccak256(abi.encode(height, prefix,
/// path, value)) for a value the source handler really holds (checked here at its slot).
struct TestOnlyProver {
    rpc: Arc<FailoverRpc>,
    handler: Address,
}

impl TestOnlyProver {
    async fn head(&self) -> (u64, u64) {
        let b: Value = self
            .rpc
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await
            .unwrap();
        let q = |k: &str| {
            u64::from_str_radix(b[k].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
        };
        (q("number"), q("timestamp"))
    }
}

fn root(n: u64) -> B256 {
    keccak256(n.to_be_bytes())
}

impl Prover for TestOnlyProver {
    async fn update(&self, _trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        let (n, t) = self.head().await;
        let message = ((0u64, n), t * 1_000_000_000, root(n)).abi_encode_params();
        Ok((
            Some(message.into()),
            IbcHeight {
                revision_number: 0,
                revision_height: n,
            },
        ))
    }

    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        let stored: B256 = self
            .rpc
            .request(
                "eth_getStorageAt",
                vec![
                    json!(self.handler),
                    json!(ibc_commitment_slot(path)),
                    json!("latest"),
                ],
            )
            .await?;
        match value {
            Some(v) if stored == keccak256(v) => {}
            None if stored == B256::ZERO => {}
            _ => {
                return Err(IbcError::Prover(format!(
                    "{path} does not hold the value to prove"
                )));
            }
        }
        Ok(token(path, value, height))
    }
}

/// What the test-only client accepts as a proof of `value` (None: absence) at `path`.
fn token(path: &str, value: Option<&[u8]>, height: IbcHeight) -> Bytes {
    let hh = (height.revision_number, height.revision_height);
    let p = Bytes::from(path.as_bytes().to_vec());
    let digest = match value {
        Some(v) => keccak256(
            (hh, Bytes::from_static(PREFIX), p, Bytes::from(v.to_vec())).abi_encode_params(),
        ),
        None => keccak256((hh, Bytes::from_static(PREFIX), p).abi_encode_params()),
    };
    Bytes::from(digest.to_vec())
}

/// A relayer that lies: it "proves" whatever it is asked, whether the chain holds it or not
/// (the test-only client cannot tell; the handler's own checks must).
struct Liar<'a>(&'a TestOnlyProver);

impl Prover for Liar<'_> {
    async fn update(&self, trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        self.0.update(trusted).await
    }

    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        Ok(token(path, value, height))
    }
}

fn any(type_url: &str, value: Vec<u8>) -> Bytes {
    ibc_proto::google::protobuf::Any {
        type_url: type_url.into(),
        value,
    }
    .encode_to_vec()
    .into()
}

async fn create_client(on: &mut EvmEnd, of: &TestOnlyProver) {
    let (n, t) = of.head().await;
    let h = ibc_proto::ibc::core::client::v1::Height {
        revision_number: 0,
        revision_height: n,
    };
    let mut cs = Vec::new();
    prost::encoding::message::encode(1, &h, &mut cs);
    let mut consensus = Vec::new();
    prost::encoding::uint64::encode(1, &(t * 1_000_000_000), &mut consensus);
    prost::encoding::bytes::encode(2, &root(n).to_vec(), &mut consensus);
    on.create_client(
        CLIENT_TYPE,
        any("/kakehashi.testonly.v1.ClientState", cs),
        any("/kakehashi.testonly.v1.ConsensusState", consensus),
    )
    .await
    .unwrap();
}

/// A devnet with the IBC stack and the test-only client registered.
async fn test_only_chain(chain_id: u64) -> Chain {
    let c = chain(chain_id).await;
    let mut init = TestOnlyClient::BYTECODE.to_vec();
    init.extend(
        TestOnlyClient::constructorCall {
            handler_: c.handler,
        }
        .abi_encode(),
    );
    let client = c.deploy(init).await;
    c.register_client(CLIENT_TYPE, client).await;
    c
}

struct Setup {
    a: Chain,
    b: Chain,
    end_a: EvmEnd,
    end_b: EvmEnd,
    chan_a: String,
    chan_b: String,
    conn_a: String,
    conn_b: String,
}

/// Two devnets with the IBC stack, clients of each other, a connection and an unordered ping
/// channel, all made by the relayer library's handshakes.
async fn setup(ids: (u64, u64)) -> Setup {
    let (a, b) = (test_only_chain(ids.0).await, test_only_chain(ids.1).await);
    let prover_a = TestOnlyProver {
        rpc: a.rpc.clone(),
        handler: a.handler,
    };
    let prover_b = TestOnlyProver {
        rpc: b.rpc.clone(),
        handler: b.handler,
    };
    let mut end_a = EvmEnd {
        submitter: a.owner.clone(),
        handler: a.handler,
        client_id: String::new(),
    };
    let mut end_b = EvmEnd {
        submitter: b.owner.clone(),
        handler: b.handler,
        client_id: String::new(),
    };
    create_client(&mut end_a, &prover_b).await;
    create_client(&mut end_b, &prover_a).await;
    let (conn_a, conn_b) = connect(&end_a, &prover_a, &end_b, &prover_b).await.unwrap();
    let spec = ChannelSpec {
        connection_a: conn_a.clone(),
        connection_b: conn_b.clone(),
        port_a: "ping".into(),
        port_b: "ping".into(),
        ordering: chan::Order::Unordered,
        version: "ping-1".into(),
    };
    let (chan_a, chan_b) = open_channel(&end_a, &prover_a, &end_b, &prover_b, &spec)
        .await
        .unwrap();
    Setup {
        a,
        b,
        end_a,
        end_b,
        chan_a,
        chan_b,
        conn_a,
        conn_b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_to_evm_handshake_packets_acks_and_a_timeout_each_once() {
    let Setup {
        mut a,
        mut b,
        end_a,
        end_b,
        chan_a,
        chan_b,
        ..
    } = setup((1401, 1402)).await;
    let prover_a = TestOnlyProver {
        rpc: a.rpc.clone(),
        handler: a.handler,
    };
    let prover_b = TestOnlyProver {
        rpc: b.rpc.clone(),
        handler: b.handler,
    };
    a.start_block = a.rpc.block_number().await.unwrap();
    b.start_block = b.rpc.block_number().await.unwrap();

    // A packet that times out: sent while no relayer runs, its timeout height passes on B.
    let b_head = b.rpc.block_number().await.unwrap();
    a.ping(&chan_a, b"too late", b_head + 3).await;
    while b.rpc.block_number().await.unwrap() < b_head + 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The relayer, event-driven from both chains' logs since the channel opened.
    let stats = Arc::new(RelayStats::default());
    let relayer = tokio::spawn(relay(
        RelayEnd {
            name: "evm-a".into(),
            chain: end_a.clone(),
            prover: TestOnlyProver {
                rpc: a.rpc.clone(),
                handler: a.handler,
            },
            events: handler_events(a.follower(a.start_block)),
        },
        RelayEnd {
            name: "evm-b".into(),
            chain: end_b.clone(),
            prover: TestOnlyProver {
                rpc: b.rpc.clone(),
                handler: b.handler,
            },
            events: handler_events(b.follower(b.start_block)),
        },
        stats.clone(),
        None,
        RelayPolicy::default(),
    ));
    let n = 10u64;
    for i in 0..n {
        a.ping(&chan_a, format!("a{i}").as_bytes(), 1_000_000).await;
        b.ping(&chan_b, format!("b{i}").as_bytes(), 1_000_000).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while stats.acknowledged.load(Ordering::Relaxed) < 2 * n
        || stats.timed_out.load(Ordering::Relaxed) < 1
    {
        assert!(Instant::now() < deadline, "not relayed in time: {stats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stats.received.load(Ordering::Relaxed), 2 * n);

    // The chains' own events: every sequence received and acknowledged exactly once.
    let seqs: Vec<u64> = (1..=n + 1).collect();
    let recv_b = b
        .sequences::<P::RecvPacket>(b.start_block, |e| e.sequence)
        .await;
    let ack_a = a
        .sequences::<P::AcknowledgePacket>(a.start_block, |e| e.sequence)
        .await;
    let timeout_a = a
        .sequences::<P::TimeoutPacket>(a.start_block, |e| e.sequence)
        .await;
    assert_eq!(
        timeout_a,
        vec![1],
        "the late packet timed out at its source"
    );
    assert_eq!(recv_b, seqs[1..].to_vec());
    assert_eq!(ack_a, seqs[1..].to_vec());
    let recv_a = a
        .sequences::<P::RecvPacket>(a.start_block, |e| e.sequence)
        .await;
    let ack_b = b
        .sequences::<P::AcknowledgePacket>(b.start_block, |e| e.sequence)
        .await;
    assert_eq!(recv_a, (1..=n).collect::<Vec<_>>());
    assert_eq!(ack_b, (1..=n).collect::<Vec<_>>());
    // Each client update rode in the transaction of the messages it proves: no transaction
    // holds an update alone, and there are no more transactions than messages.
    for c in [&a, &b] {
        let txs = delivery_txs(c, c.start_block).await;
        let messages: usize = txs.values().map(|(_, m)| m).sum();
        assert!(txs.values().all(|(_, m)| *m > 0), "{txs:?}");
        assert!(
            txs.len() <= messages,
            "{} txs for {messages} messages",
            txs.len()
        );
    }
    relayer.abort();

    // A second relayer replaying everything since the channel opened submits nothing.
    let again = Arc::new(RelayStats::default());
    let replay = tokio::spawn(relay(
        RelayEnd {
            name: "evm-a".into(),
            chain: end_a.clone(),
            prover: prover_a,
            events: handler_events(a.follower(a.start_block)),
        },
        RelayEnd {
            name: "evm-b".into(),
            chain: end_b.clone(),
            prover: prover_b,
            events: handler_events(b.follower(b.start_block)),
        },
        again.clone(),
        None,
        RelayPolicy::default(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    // Every SendPacket (2n + 1) and WriteAcknowledgement (2n) seen, all skipped.
    while again.skipped.load(Ordering::Relaxed) < 4 * n + 1 {
        assert!(
            Instant::now() < deadline,
            "replay did not finish: {again:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(again.received.load(Ordering::Relaxed), 0);
    assert_eq!(again.acknowledged.load(Ordering::Relaxed), 0);
    assert_eq!(again.timed_out.load(Ordering::Relaxed), 0);
    replay.abort();
    assert_eq!(
        b.sequences::<P::RecvPacket>(b.start_block, |e| e.sequence)
            .await
            .len(),
        n as usize
    );
    a.devnet.shutdown().await.unwrap();
    b.devnet.shutdown().await.unwrap();
}

/// A prover that changes one byte of every proof of the real one.
struct Tampered<'a>(&'a TestOnlyProver);

impl Prover for Tampered<'_> {
    async fn update(&self, trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        self.0.update(trusted).await
    }

    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        let mut proof = self.0.prove(path, value, height).await?.to_vec();
        proof[7] ^= 1;
        Ok(proof.into())
    }
}

/// The handler's refusal, by its custom error selector.
fn refused_with(result: Result<impl std::fmt::Debug, IbcError>, selector: [u8; 4]) {
    match result {
        Err(IbcError::Submit(kh_relayer::evm::SubmitError::Reverted { data: Some(d), .. }))
            if d.len() >= 4 && d[..4] == selector => {}
        other => panic!(
            "expected the error 0x{}, got {other:?}",
            alloy_primitives::hex::encode(selector)
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_to_evm_rejections_over_two_devnets() {
    let Setup {
        a,
        b,
        end_a,
        end_b,
        chan_a,
        conn_a,
        conn_b,
        ..
    } = setup((1403, 1404)).await;
    let prover_a = TestOnlyProver {
        rpc: a.rpc.clone(),
        handler: a.handler,
    };
    let prover_b = TestOnlyProver {
        rpc: b.rpc.clone(),
        handler: b.handler,
    };

    // A wrong proof (one byte changed) is refused; the right one is accepted; a replay is refused.
    a.ping(&chan_a, b"once", 1_000_000).await;
    let packet = a.last_sent().await;
    refused_with(
        end_b.recv_packet(&Tampered(&prover_a), &packet).await,
        P::IBCProofVerificationFailed::SELECTOR,
    );
    let ack = end_b
        .recv_packet(&prover_a, &packet)
        .await
        .unwrap()
        .expect("a synchronous ack");
    refused_with(
        end_b.recv_packet(&prover_a, &packet).await,
        P::IBCPacketAlreadyReceived::SELECTOR,
    );
    // An ack with a wrong proof is refused; the right one ends the packet; then the packet is
    // unknown to its source: a second ack is refused.
    refused_with(
        end_a.acknowledge(&Tampered(&prover_b), &packet, &ack).await,
        P::IBCProofVerificationFailed::SELECTOR,
    );
    end_a.acknowledge(&prover_b, &packet, &ack).await.unwrap();
    refused_with(
        end_a.acknowledge(&prover_b, &packet, &ack).await,
        P::IBCPacketCommitmentNotFound::SELECTOR,
    );
    // An ack for a packet that was never sent, even with a "proof" of its ack.
    let mut invented = packet.clone();
    invented.sequence = 999;
    refused_with(
        end_a.acknowledge(&Liar(&prover_b), &invented, &ack).await,
        P::IBCPacketCommitmentNotFound::SELECTOR,
    );

    // A receive after the timeout height passed is refused; the timeout at the source works,
    // and a timeout for a packet that has not timed out is refused.
    let b_head = b.rpc.block_number().await.unwrap();
    a.ping(&chan_a, b"late", b_head + 2).await;
    let late = a.last_sent().await;
    a.ping(&chan_a, b"in time", 1_000_000).await;
    let in_time = a.last_sent().await;
    while b.rpc.block_number().await.unwrap() < b_head + 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused_with(
        end_b.recv_packet(&prover_a, &late).await,
        P::IBCPacketTimedOut::SELECTOR,
    );
    // A lying relayer cannot time out a packet that was received either.
    refused_with(
        end_a.timeout(&Liar(&prover_b), &packet).await,
        P::IBCPacketCommitmentNotFound::SELECTOR,
    );
    refused_with(
        end_a.timeout(&prover_b, &in_time).await,
        P::IBCPacketNotTimedOut::SELECTOR,
    );
    end_a.timeout(&prover_b, &late).await.unwrap();

    // A handshake step out of order: confirming a channel that is already open.
    let prover_proof = prover_b
        .prove(
            "channelEnds/ports/ping/channels/channel-0",
            None,
            IbcHeight {
                revision_number: 0,
                revision_height: 1,
            },
        )
        .await;
    assert!(
        prover_proof.is_err(),
        "the channel end exists on b: no absence proof"
    );
    let r = end_a
        .handshake_call(kh_contracts::IBCChannelHandshake::channelOpenConfirmCall {
            m: kh_contracts::IBCChannelHandshake::MsgChannelProof {
                portId: "ping".into(),
                channelId: chan_a.clone(),
                proof: Bytes::from_static(&[0; 32]),
                proofHeight: kh_contracts::IBCChannelHandshake::Height {
                    revisionNumber: 0,
                    revisionHeight: 1,
                },
            },
        })
        .await;
    refused_with(
        r,
        kh_contracts::IBCChannelHandshake::IBCChannelStateUnexpected::SELECTOR,
    );

    // An ordered channel: a packet delivered before its predecessor is refused.
    let spec = ChannelSpec {
        connection_a: conn_a.clone(),
        connection_b: conn_b.clone(),
        port_a: "ping".into(),
        port_b: "ping".into(),
        ordering: chan::Order::Ordered,
        version: "ping-1".into(),
    };
    let (ordered_a, _) = open_channel(&end_a, &prover_a, &end_b, &prover_b, &spec)
        .await
        .unwrap();
    a.ping(&ordered_a, b"first", 1_000_000).await;
    let first = a.last_sent().await;
    a.ping(&ordered_a, b"second", 1_000_000).await;
    let second = a.last_sent().await;
    refused_with(
        end_b.recv_packet(&prover_a, &second).await,
        P::IBCPacketSequenceOutOfOrder::SELECTOR,
    );
    end_b.recv_packet(&prover_a, &first).await.unwrap();
    end_b.recv_packet(&prover_a, &second).await.unwrap();

    // A send on a port the caller does not own: the owner's account is not the ping app.
    let r = end_a
        .handshake_call(P::sendPacketCall {
            sourcePort: "ping".into(),
            sourceChannel: chan_a.clone(),
            timeoutHeight: P::Height {
                revisionNumber: 0,
                revisionHeight: 1_000_000,
            },
            timeoutTimestamp: 0,
            data: Bytes::from_static(b"not mine"),
        })
        .await;
    refused_with(r, P::IBCPortNotOwned::SELECTOR);
    a.devnet.shutdown().await.unwrap();
    b.devnet.shutdown().await.unwrap();
}

/// How many `WriteAcknowledgement` events the handler of `c` emitted.
async fn acks_written(c: &Chain) -> usize {
    let logs: Vec<Value> = c
        .rpc
        .request(
            "eth_getLogs",
            vec![json!({"address": c.handler, "fromBlock": "0x0", "toBlock": "latest", "topics": [P::WriteAcknowledgement::SIGNATURE_HASH]})],
        )
        .await
        .unwrap();
    logs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_to_evm_timestamp_timeout_async_ack_close_and_timeout_on_close() {
    let Setup {
        a,
        b,
        end_a,
        end_b,
        chan_a,
        chan_b,
        conn_a,
        conn_b,
    } = setup((1405, 1406)).await;
    let prover_a = TestOnlyProver {
        rpc: a.rpc.clone(),
        handler: a.handler,
    };
    let prover_b = TestOnlyProver {
        rpc: b.rpc.clone(),
        handler: b.handler,
    };

    // Timeout by timestamp: 2 s after B's latest block time; refused before, accepted after.
    let (_, b_time) = prover_b.head().await;
    let deadline_ns = (b_time + 2) * 1_000_000_000;
    a.owner
        .submit(
            a.app,
            PingApp::pingCall {
                channelId: chan_a.clone(),
                data: Bytes::from_static(b"by time"),
                timeoutHeight: PingApp::Height {
                    revisionNumber: 0,
                    revisionHeight: 0,
                },
                timeoutTimestamp: deadline_ns,
            }
            .abi_encode()
            .into(),
        )
        .await
        .unwrap();
    let by_time = a.last_sent().await;
    refused_with(
        end_a.timeout(&prover_b, &by_time).await,
        P::IBCPacketNotTimedOut::SELECTOR,
    );
    while prover_b.head().await.1 * 1_000_000_000 < deadline_ns {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    refused_with(
        end_b.recv_packet(&prover_a, &by_time).await,
        P::IBCPacketTimedOut::SELECTOR,
    );
    end_a.timeout(&prover_b, &by_time).await.unwrap();

    // An asynchronous acknowledgement: B's app acks later; A then processes it.
    b.owner
        .submit(
            b.app,
            PingApp::setAsyncAcksCall { on: true }.abi_encode().into(),
        )
        .await
        .unwrap();
    a.ping(&chan_a, b"later", 1_000_000).await;
    let later = a.last_sent().await;
    let before = acks_written(&b).await;
    assert_eq!(
        end_b.recv_packet(&prover_a, &later).await.unwrap(),
        None,
        "no synchronous ack"
    );
    assert_eq!(acks_written(&b).await, before);
    let ack = Bytes::from_static(b"done later");
    b.owner
        .submit(
            b.app,
            PingApp::acknowledgeCall {
                packet: PingApp::Packet::abi_decode(&later.abi_encode()).unwrap(),
                ack: ack.clone(),
            }
            .abi_encode()
            .into(),
        )
        .await
        .unwrap();
    end_a.acknowledge(&prover_b, &later, &ack).await.unwrap();

    // Close: a packet is in flight A -> B when B's app closes its end; A times it out on close
    // (B proves its end CLOSED and no receipt), then confirms the close of its own end.
    a.ping(&chan_a, b"in flight", 1_000_000).await;
    let in_flight = a.last_sent().await;
    b.owner
        .submit(
            b.app,
            PingApp::closeChannelCall {
                channelId: chan_b.clone(),
            }
            .abi_encode()
            .into(),
        )
        .await
        .unwrap();
    // B refuses packets on the closed channel.
    refused_with(
        end_b.recv_packet(&prover_a, &in_flight).await,
        P::IBCChannelStateUnexpected::SELECTOR,
    );
    let closed_b = kh_relayer::evm::handshake::channel_end(
        chan::State::Closed,
        chan::Order::Unordered,
        "ping",
        &chan_a,
        &conn_b,
        "ping-1",
    );
    end_a
        .timeout_on_close(&prover_b, &in_flight, &closed_b)
        .await
        .unwrap();
    end_a
        .close_confirm(&prover_b, "ping", &chan_a, "ping", &chan_b, &closed_b)
        .await
        .unwrap();
    // A's end is now CLOSED as ibc-go encodes it, and no packet can be sent on it.
    let closed_a = kh_relayer::evm::handshake::channel_end(
        chan::State::Closed,
        chan::Order::Unordered,
        "ping",
        &chan_b,
        &conn_a,
        "ping-1",
    );
    assert!(
        end_a
            .holds(
                &format!("channelEnds/ports/ping/channels/{chan_a}"),
                &closed_a
            )
            .await
            .unwrap()
    );
    let r = a
        .owner
        .submit(
            a.app,
            PingApp::pingCall {
                channelId: chan_a.clone(),
                data: Bytes::from_static(b"after close"),
                timeoutHeight: PingApp::Height {
                    revisionNumber: 0,
                    revisionHeight: 1_000_000,
                },
                timeoutTimestamp: 0,
            }
            .abi_encode()
            .into(),
        )
        .await;
    assert!(r.is_err(), "a send on a closed channel is refused");
    a.devnet.shutdown().await.unwrap();
    b.devnet.shutdown().await.unwrap();
}

/// The handler's delivery transactions since block `from`: per transaction, its client updates
/// and its messages (packets received, acknowledged, timed out), from the handler's events.
async fn delivery_txs(c: &Chain, from: u64) -> std::collections::BTreeMap<B256, (usize, usize)> {
    let mut txs = std::collections::BTreeMap::<B256, (usize, usize)>::new();
    for (topic, update) in [
        (kh_contracts::IBCClient::UpdateClient::SIGNATURE_HASH, true),
        (P::RecvPacket::SIGNATURE_HASH, false),
        (P::AcknowledgePacket::SIGNATURE_HASH, false),
        (P::TimeoutPacket::SIGNATURE_HASH, false),
    ] {
        let logs: Vec<Value> = c
            .rpc
            .request(
                "eth_getLogs",
                vec![json!({"address": c.handler, "fromBlock": format!("{from:#x}"), "toBlock": "latest", "topics": [topic]})],
            )
            .await
            .unwrap();
        for l in logs {
            let tx: B256 = serde_json::from_value(l["transactionHash"].clone()).unwrap();
            let e = txs.entry(tx).or_default();
            if update {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    txs
}

/// Every packet the handler of `c` sent since block `from`, in order.
async fn sent_since(c: &Chain, from: u64) -> Vec<P::Packet> {
    let logs: Vec<Value> = c
        .rpc
        .request(
            "eth_getLogs",
            vec![json!({"address": c.handler, "fromBlock": format!("{from:#x}"), "toBlock": "latest", "topics": [P::SendPacket::SIGNATURE_HASH]})],
        )
        .await
        .unwrap();
    logs.iter()
        .map(|l| {
            let topics: Vec<B256> = serde_json::from_value(l["topics"].clone()).unwrap();
            let data: Bytes = serde_json::from_value(l["data"].clone()).unwrap();
            P::SendPacket::decode_raw_log(topics, &data).unwrap().packet
        })
        .collect()
}

/// A client update of `to`'s client and the MsgRecvPacket of each of `packets`, proven now.
async fn burst_datagrams(
    to: &EvmEnd,
    prover: &TestOnlyProver,
    packets: &[P::Packet],
) -> Vec<kh_relayer::evm::ibc::Datagram> {
    use kh_relayer::evm::ibc::{Datagram, packet_commitment, packet_path};
    let (update, height) = prover
        .update(to.client_latest().await.unwrap())
        .await
        .unwrap();
    let mut out = vec![Datagram::UpdateClient(update.unwrap())];
    for p in packets {
        let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
        let proof = prover
            .prove(&path, Some(&packet_commitment(p)), height)
            .await
            .unwrap();
        out.push(Datagram::RecvPacket {
            packet: p.clone(),
            proof,
            proof_height: height,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_batches_go_in_multicall_transactions() {
    use kh_relayer::evm::ibc::Chain as _;
    let Setup {
        a,
        b,
        end_b,
        chan_a,
        ..
    } = setup((1405, 1406)).await;
    let prover_a = TestOnlyProver {
        rpc: a.rpc.clone(),
        handler: a.handler,
    };
    let from_a = a.rpc.block_number().await.unwrap();
    let from_b = b.rpc.block_number().await.unwrap();

    // A burst of five pings, delivered as one batch: the update and the five packets in one
    // transaction.
    for i in 0..5 {
        a.ping(&chan_a, format!("burst {i}").as_bytes(), 1_000_000)
            .await;
    }
    let burst = sent_since(&a, from_a).await;
    assert_eq!(burst.len(), 5);
    end_b
        .submit(burst_datagrams(&end_b, &prover_a, &burst).await)
        .await
        .unwrap();
    let txs = delivery_txs(&b, from_b).await;
    assert_eq!(
        txs.values().copied().collect::<Vec<_>>(),
        vec![(1, 5)],
        "{txs:?}"
    );
    assert_eq!(
        b.sequences::<P::RecvPacket>(from_b, |e| e.sequence).await,
        vec![1, 2, 3, 4, 5]
    );

    // At most two messages per transaction (another account, so the nonces stay apart): five
    // packets go in three transactions, the update in the first.
    let key = b.devnet.dev_accounts()[1].private_key;
    let small = EvmEnd {
        submitter: Arc::new(kh_relayer::evm::Submitter::new(
            b.rpc.clone(),
            alloy_signer_local::PrivateKeySigner::from_bytes(&key).unwrap(),
            kh_relayer::evm::SubmitPolicy {
                max_messages_per_tx: 2,
                ..Default::default()
            },
        )),
        handler: b.handler,
        client_id: end_b.client_id.clone(),
    };
    let from_b = b.rpc.block_number().await.unwrap() + 1;
    let from_a = a.rpc.block_number().await.unwrap() + 1;
    for i in 0..5 {
        a.ping(&chan_a, format!("cut {i}").as_bytes(), 1_000_000)
            .await;
    }
    let cut = sent_since(&a, from_a).await;
    assert_eq!(cut.len(), 5);
    small
        .submit(burst_datagrams(&small, &prover_a, &cut).await)
        .await
        .unwrap();
    let mut shapes: Vec<(usize, usize)> = delivery_txs(&b, from_b).await.into_values().collect();
    shapes.sort_unstable();
    assert_eq!(shapes, vec![(0, 1), (0, 2), (1, 2)]);
    assert_eq!(
        b.sequences::<P::RecvPacket>(from_b, |e| e.sequence).await,
        vec![6, 7, 8, 9, 10]
    );

    // A batch with a packet received already (by another relayer, say): refused as a whole,
    // the stale datagram named by its position; nothing of it landed.
    let from_b = b.rpc.block_number().await.unwrap() + 1;
    let from_a = a.rpc.block_number().await.unwrap() + 1;
    for i in 0..2 {
        a.ping(&chan_a, format!("fresh {i}").as_bytes(), 1_000_000)
            .await;
    }
    let fresh = sent_since(&a, from_a).await;
    let mixed = [fresh[0].clone(), burst[2].clone(), fresh[1].clone()];
    match end_b
        .submit(burst_datagrams(&end_b, &prover_a, &mixed).await)
        .await
    {
        Err(IbcError::Refused { index, reason }) => {
            assert_eq!(index, 2, "{reason}");
            assert!(reason.contains("IBCPacketAlreadyReceived"), "{reason}");
        }
        other => panic!("expected the stale packet refused, got {other:?}"),
    }
    assert!(delivery_txs(&b, from_b).await.is_empty());
    a.devnet.shutdown().await.unwrap();
    b.devnet.shutdown().await.unwrap();
}
