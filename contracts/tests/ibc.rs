//! The Solidity IBC handler run in revm: two chains ("A" and "B"), each with its own handler,
//! test-only light client tracking the other chain and ping app; the test code carries the
//! datagrams like a relayer. Connection and channel handshakes, packets and acknowledgements
//! (sync and async), ordered and unordered channels, timeouts by height and by timestamp,
//! timeout-on-close, channel close, and every rejection (replay, wrong proof, out-of-order
//! sequence, receive after timeout, ack for an unknown packet, handshake step out of order,
//! send on a port the sender does not own), and `multicall` (an update and several packets in one
//! transaction, atomic with the failing index, the caller kept behind the proxy and alone, gas).
//!
//! Every proof is made from the sending chain's store: `prove` first checks that the storage
//! slot of the ICS-24 path (DESIGN §5 formula, `ibc_commitment_slot`) holds keccak256 of the
//! value, then builds the test-only client's proof of it. The values are built here with
//! `ibc-proto` (prost) and `sha2`, independently of the Solidity encoder, so a handshake that
//! completes shows the handler's committed ConnectionEnd / Channel bytes are exactly the
//! ibc-go protobuf encodings, and its packet/ack commitments the ICS-04 ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod revm_chain;

use alloy_primitives::{Address, B256, Bytes, Log, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolError, SolEvent, SolValue};
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use kh_contracts::{
    IBCChannelHandshake as H, IBCChannelPacket as P, IBCClient, IBCConnection as C, IBCHandler,
    IBCProxy, PingApp, TestOnlyClient, ibc_commitment_slot, packet_commitment, packet_path,
};
use prost::Message;
use revm_chain::{ALICE, BOB, Chain, OWNER};
use sha2::{Digest, Sha256};

const PORT: &str = "ping";
const VERSION: &str = "ping-1";
const PREFIX: &[u8] = b"ibc";
const CLIENT_TYPE: &str = "kh-test-only";
const RELAYER: Address = ALICE;
const ORDERED: u8 = 2;
const UNORDERED: u8 = 1;

// ---- the test-only client's protobuf states ---------------------------------------------------

#[derive(Clone, PartialEq, Message)]
struct TestOnlyClientState {
    #[prost(message, optional, tag = "1")]
    latest_height: Option<ibc_proto::ibc::core::client::v1::Height>,
}

#[derive(Clone, PartialEq, Message)]
struct TestOnlyConsensusState {
    #[prost(uint64, tag = "1")]
    timestamp: u64,
    #[prost(bytes = "vec", tag = "2")]
    root: Vec<u8>,
}

fn any(type_url: &str, value: Vec<u8>) -> Vec<u8> {
    ibc_proto::google::protobuf::Any {
        type_url: type_url.into(),
        value,
    }
    .encode_to_vec()
}

fn client_state_any(height: u64) -> Vec<u8> {
    any(
        "/kakehashi.testonly.v1.ClientState",
        TestOnlyClientState {
            latest_height: Some(ibc_proto::ibc::core::client::v1::Height {
                revision_number: 0,
                revision_height: height,
            }),
        }
        .encode_to_vec(),
    )
}

fn consensus_state_any(timestamp_ns: u64, root: B256) -> Vec<u8> {
    any(
        "/kakehashi.testonly.v1.ConsensusState",
        TestOnlyConsensusState {
            timestamp: timestamp_ns,
            root: root.to_vec(),
        }
        .encode_to_vec(),
    )
}

// ---- the expected ibc-go encodings --------------------------------------------------------------

fn connection_end(
    client_id: &str,
    state: conn::State,
    cp_client: &str,
    cp_connection: &str,
) -> Vec<u8> {
    conn::ConnectionEnd {
        client_id: client_id.into(),
        versions: vec![conn::Version {
            identifier: "1".into(),
            features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
        }],
        state: state as i32,
        counterparty: Some(conn::Counterparty {
            client_id: cp_client.into(),
            connection_id: cp_connection.into(),
            prefix: Some(MerklePrefix {
                key_prefix: PREFIX.to_vec(),
            }),
        }),
        delay_period: 0,
    }
    .encode_to_vec()
}

fn channel_end(
    state: chan::State,
    ordering: u8,
    cp_port: &str,
    cp_channel: &str,
    connection: &str,
    version: &str,
) -> Vec<u8> {
    chan::Channel {
        state: state as i32,
        ordering: i32::from(ordering),
        counterparty: Some(chan::Counterparty {
            port_id: cp_port.into(),
            channel_id: cp_channel.into(),
        }),
        connection_hops: vec![connection.into()],
        version: version.into(),
        upgrade_sequence: 0,
    }
    .encode_to_vec()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Converts between the `sol!` types of two bindings generated from the same Solidity type.
fn conv<A: SolValue, B: SolValue + From<<B::SolType as alloy_sol_types::SolType>::RustType>>(
    a: &A,
) -> B {
    B::abi_decode(&a.abi_encode()).unwrap()
}

fn height(h: u64) -> P::Height {
    P::Height {
        revisionNumber: 0,
        revisionHeight: h,
    }
}

fn events<E: SolEvent>(logs: &[Log]) -> Vec<E> {
    logs.iter()
        .filter(|l| l.topics().first() == Some(&E::SIGNATURE_HASH))
        .map(|l| E::decode_log_data(&l.data).unwrap())
        .collect()
}

#[track_caller]
fn assert_error<E: SolError + PartialEq + std::fmt::Debug>(
    result: Result<impl Sized, Bytes>,
    expected: E,
) {
    let data = result.err().expect("expected a revert");
    match E::abi_decode(&data) {
        Ok(e) => assert_eq!(e, expected),
        Err(_) => panic!("reverted with {data}, expected {expected:?}"),
    }
}

// ---- one chain -----------------------------------------------------------------------------------

struct Side {
    chain: Chain,
    handler: Address,
    app: Address,
    /// The client on this chain that tracks the other chain.
    client_id: String,
    connection_id: String,
    channel_id: String,
}

impl Side {
    fn deploy(start_time: u64) -> Self {
        let mut chain = Chain::new();
        chain.set_block(1, start_time);
        let implementation = deploy_handler_code(&mut chain);
        let init = IBCHandler::initializeCall { owner_: OWNER }.abi_encode();
        let handler = chain.deploy(
            OWNER,
            &IBCProxy::BYTECODE,
            IBCProxy::constructorCall {
                implementation,
                initData: init.into(),
            }
            .abi_encode(),
        );
        let lc = chain.deploy(
            OWNER,
            &TestOnlyClient::BYTECODE,
            TestOnlyClient::constructorCall { handler_: handler }.abi_encode(),
        );
        chain
            .call(
                OWNER,
                handler,
                IBCClient::registerClientCall {
                    clientType: CLIENT_TYPE.into(),
                    lightClient: lc,
                },
            )
            .unwrap();
        let app = chain.deploy(
            OWNER,
            &PingApp::BYTECODE,
            PingApp::constructorCall {
                handler_: handler,
                portId_: PORT.into(),
            }
            .abi_encode(),
        );
        chain
            .call(
                OWNER,
                handler,
                IBCClient::bindPortCall {
                    portId: PORT.into(),
                    app,
                },
            )
            .unwrap();
        Self {
            chain,
            handler,
            app,
            client_id: String::new(),
            connection_id: String::new(),
            channel_id: String::new(),
        }
    }

    fn call<T: SolCall>(&mut self, call: T) -> Result<(T::Return, Vec<Log>), Bytes> {
        let h = self.handler;
        self.chain.call(RELAYER, h, call)
    }

    fn app_call<T: SolCall>(&mut self, call: T) -> Result<(T::Return, Vec<Log>), Bytes> {
        let a = self.app;
        self.chain.call(OWNER, a, call)
    }

    /// The next block, 5 s later.
    fn tick(&mut self) {
        let (n, t) = self.chain.block();
        self.chain.set_block(n + 1, t + 5);
    }

    fn stored(&self, path: &str) -> B256 {
        B256::from(self.chain.storage(
            self.handler,
            U256::from_be_bytes(ibc_commitment_slot(path).0),
        ))
    }

    /// The test-only client's proof that this chain stores `value` (None: nothing) at `path`
    /// at `h`, after checking the commitment slot does hold keccak256(value) (or zero).
    fn prove(&self, h: &P::Height, path: &str, value: Option<&[u8]>) -> Bytes {
        let hh = (h.revisionNumber, h.revisionHeight);
        let digest = match value {
            Some(v) => {
                assert_eq!(self.stored(path), keccak256(v), "commitment of {path}");
                keccak256(
                    (
                        hh,
                        Bytes::from(PREFIX),
                        Bytes::from(path.as_bytes().to_vec()),
                        Bytes::from(v.to_vec()),
                    )
                        .abi_encode_params(),
                )
            }
            None => {
                assert_eq!(self.stored(path), B256::ZERO, "no commitment at {path}");
                keccak256(
                    (
                        hh,
                        Bytes::from(PREFIX),
                        Bytes::from(path.as_bytes().to_vec()),
                    )
                        .abi_encode_params(),
                )
            }
        };
        Bytes::from(digest.to_vec())
    }

    fn channel(&self, port: &str, channel: &str) -> IBCHandler::ChannelEnd {
        let mut c = self.chain_clone_call();
        c.call(
            BOB,
            self.handler,
            IBCHandler::getChannelCall {
                portId: port.into(),
                channelId: channel.into(),
            },
        )
        .unwrap()
        .0
    }

    /// Views run as transactions of the helper chain; they change no state but bump BOB's nonce.
    fn chain_clone_call(&self) -> ChainView<'_> {
        ChainView(self)
    }
}

/// Deploys the four modules and an IBCHandler implementation using them; returns the latter.
fn deploy_handler_code(chain: &mut Chain) -> Address {
    let client = chain.deploy(OWNER, &IBCClient::BYTECODE, vec![]);
    let connection = chain.deploy(OWNER, &C::BYTECODE, vec![]);
    let handshake = chain.deploy(OWNER, &H::BYTECODE, vec![]);
    let packet = chain.deploy(OWNER, &P::BYTECODE, vec![]);
    let args = IBCHandler::constructorCall {
        client,
        connection,
        channelHandshake: handshake,
        channelPacket: packet,
        owner_: OWNER,
    }
    .abi_encode();
    chain.deploy(OWNER, &IBCHandler::BYTECODE, args)
}

/// A read-only call through a throwaway copy of the chain.
struct ChainView<'a>(&'a Side);

impl ChainView<'_> {
    fn call<T: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: T,
    ) -> Result<(T::Return, Vec<Log>), Bytes> {
        let mut copy = Chain::new();
        copy.evm.ctx.journaled_state.database =
            self.0.chain.evm.ctx.journaled_state.database.clone();
        copy.evm.ctx.block = self.0.chain.evm.ctx.block.clone();
        let nonce = revm::DatabaseRef::basic_ref(&copy.evm.ctx.journaled_state.database, from)
            .unwrap()
            .map_or(0, |info| info.nonce);
        copy.nonces.insert(from, nonce);
        copy.call(from, to, call)
    }
}

/// Updates `dst`'s client of `src` to `src`'s current block; returns that height and moves
/// `src` to its next block.
fn update(dst: &mut Side, src: &mut Side) -> P::Height {
    let (n, t) = src.chain.block();
    let root = keccak256(n.to_be_bytes());
    let message = ((0u64, n), t * 1_000_000_000, root).abi_encode_params();
    let id = dst.client_id.clone();
    let (_, logs) = dst
        .call(IBCClient::updateClientCall {
            clientId: id.clone(),
            clientMessage: message.into(),
        })
        .unwrap();
    let ev = events::<IBCClient::UpdateClient>(&logs);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].heights[0].revisionHeight, n);
    // The client state and the new consensus state are committed as their Any bytes.
    assert_eq!(
        dst.stored(&format!("clients/{id}/clientState")),
        keccak256(client_state_any(n))
    );
    assert_eq!(
        dst.stored(&format!("clients/{id}/consensusStates/0-{n}")),
        keccak256(consensus_state_any(t * 1_000_000_000, root))
    );
    src.tick();
    height(n)
}

struct Pair {
    a: Side,
    b: Side,
}

impl Pair {
    /// Two chains, each with a client of the other.
    fn new() -> Self {
        let mut a = Side::deploy(1_700_000_000);
        let mut b = Side::deploy(1_700_000_100);
        a.client_id = create_client(&mut a, &b);
        b.client_id = create_client(&mut b, &a);
        Self { a, b }
    }

    fn sides(&mut self, a_to_b: bool) -> (&mut Side, &mut Side) {
        if a_to_b {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        }
    }

    /// The four connection handshake steps, A initiating.
    fn connect(&mut self) {
        let (a, b) = (&mut self.a, &mut self.b);
        let (id_a, logs) = a
            .call(C::connectionOpenInitCall {
                m: C::MsgConnectionOpenInit {
                    clientId: a.client_id.clone(),
                    counterpartyClientId: b.client_id.clone(),
                    counterpartyPrefix: PREFIX.into(),
                    delayPeriod: 0,
                },
            })
            .unwrap();
        assert_eq!(id_a, "connection-0");
        let ev = &events::<C::ConnectionOpenInit>(&logs)[0];
        assert_eq!(
            (ev.clientId.as_str(), ev.counterpartyClientId.as_str()),
            (a.client_id.as_str(), b.client_id.as_str())
        );
        // Step out of order: Confirm on an INIT end.
        assert_error(
            a.call(C::connectionOpenConfirmCall {
                m: C::MsgConnectionOpenConfirm {
                    connectionId: id_a.clone(),
                    proofAck: Bytes::new(),
                    proofHeight: conv(&height(1)),
                },
            }),
            C::IBCConnectionStateUnexpected {
                connectionId: id_a.clone(),
                actual: 1,
                expected: 2,
            },
        );

        let h = update(b, a);
        let init = connection_end(&a.client_id, conn::State::Init, &b.client_id, "");
        let proof = a.prove(&h, &format!("connections/{id_a}"), Some(&init));
        let (client_b, client_a) = (b.client_id.clone(), a.client_id.clone());
        let try_msg = |proof: Bytes| C::connectionOpenTryCall {
            m: C::MsgConnectionOpenTry {
                clientId: client_b.clone(),
                counterpartyClientId: client_a.clone(),
                counterpartyConnectionId: id_a.clone(),
                counterpartyPrefix: PREFIX.into(),
                delayPeriod: 0,
                proofInit: proof,
                proofHeight: conv(&h),
            },
        };
        // A wrong proof is rejected.
        let mut bad = proof.to_vec();
        bad[0] ^= 1;
        assert_error(
            b.call(try_msg(bad.into())),
            C::IBCProofVerificationFailed {
                path: format!("connections/{id_a}"),
            },
        );
        let (id_b, logs) = b.call(try_msg(proof)).unwrap();
        assert_eq!(id_b, "connection-0");
        assert_eq!(
            events::<C::ConnectionOpenTry>(&logs)[0].counterpartyConnectionId,
            id_a
        );

        let h = update(a, b);
        let tryopen = connection_end(&b.client_id, conn::State::Tryopen, &a.client_id, &id_a);
        let proof = b.prove(&h, &format!("connections/{id_b}"), Some(&tryopen));
        // Step out of order: Ack on a TRYOPEN end.
        assert_error(
            b.call(C::connectionOpenAckCall {
                m: C::MsgConnectionOpenAck {
                    connectionId: id_b.clone(),
                    counterpartyConnectionId: id_a.clone(),
                    proofTry: proof.clone(),
                    proofHeight: conv(&h),
                },
            }),
            C::IBCConnectionStateUnexpected {
                connectionId: id_b.clone(),
                actual: 2,
                expected: 1,
            },
        );
        a.call(C::connectionOpenAckCall {
            m: C::MsgConnectionOpenAck {
                connectionId: id_a.clone(),
                counterpartyConnectionId: id_b.clone(),
                proofTry: proof,
                proofHeight: conv(&h),
            },
        })
        .unwrap();

        let h = update(b, a);
        let open = connection_end(&a.client_id, conn::State::Open, &b.client_id, &id_b);
        let proof = a.prove(&h, &format!("connections/{id_a}"), Some(&open));
        b.call(C::connectionOpenConfirmCall {
            m: C::MsgConnectionOpenConfirm {
                connectionId: id_b.clone(),
                proofAck: proof,
                proofHeight: conv(&h),
            },
        })
        .unwrap();
        // Both ends are OPEN, committed as the ibc-go ConnectionEnd.
        let open_b = connection_end(&b.client_id, conn::State::Open, &a.client_id, &id_a);
        assert_eq!(b.stored(&format!("connections/{id_b}")), keccak256(&open_b));
        a.connection_id = id_a;
        b.connection_id = id_b;
    }

    /// The four channel handshake steps on port "ping", A initiating.
    fn open_channel(&mut self, ordering: u8) {
        let (a, b) = (&mut self.a, &mut self.b);
        let (ch_a, logs) = a
            .call(H::channelOpenInitCall {
                m: H::MsgChannelOpenInit {
                    portId: PORT.into(),
                    ordering,
                    connectionId: a.connection_id.clone(),
                    counterpartyPortId: PORT.into(),
                    version: VERSION.into(),
                },
            })
            .unwrap();
        let ev = &events::<H::ChannelOpenInit>(&logs)[0];
        assert_eq!(
            (ev.channelId.as_str(), ev.version.as_str()),
            (ch_a.as_str(), VERSION)
        );

        let h = update(b, a);
        let init = channel_end(
            chan::State::Init,
            ordering,
            PORT,
            "",
            &a.connection_id,
            VERSION,
        );
        let proof = a.prove(
            &h,
            &format!("channelEnds/ports/{PORT}/channels/{ch_a}"),
            Some(&init),
        );
        let (ch_b, logs) = b
            .call(H::channelOpenTryCall {
                m: H::MsgChannelOpenTry {
                    portId: PORT.into(),
                    ordering,
                    connectionId: b.connection_id.clone(),
                    counterpartyPortId: PORT.into(),
                    counterpartyChannelId: ch_a.clone(),
                    counterpartyVersion: VERSION.into(),
                    proofInit: proof,
                    proofHeight: conv(&h),
                },
            })
            .unwrap();
        assert_eq!(
            events::<H::ChannelOpenTry>(&logs)[0].counterpartyChannelId,
            ch_a
        );

        let h = update(a, b);
        let tryopen = channel_end(
            chan::State::Tryopen,
            ordering,
            PORT,
            &ch_a,
            &b.connection_id,
            VERSION,
        );
        let proof = b.prove(
            &h,
            &format!("channelEnds/ports/{PORT}/channels/{ch_b}"),
            Some(&tryopen),
        );
        // Step out of order: Confirm on an INIT end.
        assert_error(
            a.call(H::channelOpenConfirmCall {
                m: H::MsgChannelProof {
                    portId: PORT.into(),
                    channelId: ch_a.clone(),
                    proof: proof.clone(),
                    proofHeight: conv(&h),
                },
            }),
            H::IBCChannelStateUnexpected {
                portId: PORT.into(),
                channelId: ch_a.clone(),
                actual: 1,
                expected: 2,
            },
        );
        a.call(H::channelOpenAckCall {
            m: H::MsgChannelOpenAck {
                portId: PORT.into(),
                channelId: ch_a.clone(),
                counterpartyChannelId: ch_b.clone(),
                counterpartyVersion: VERSION.into(),
                proofTry: proof,
                proofHeight: conv(&h),
            },
        })
        .unwrap();

        let h = update(b, a);
        let open = channel_end(
            chan::State::Open,
            ordering,
            PORT,
            &ch_b,
            &a.connection_id,
            VERSION,
        );
        let proof = a.prove(
            &h,
            &format!("channelEnds/ports/{PORT}/channels/{ch_a}"),
            Some(&open),
        );
        b.call(H::channelOpenConfirmCall {
            m: H::MsgChannelProof {
                portId: PORT.into(),
                channelId: ch_b.clone(),
                proof,
                proofHeight: conv(&h),
            },
        })
        .unwrap();
        let open_b = channel_end(
            chan::State::Open,
            ordering,
            PORT,
            &ch_a,
            &b.connection_id,
            VERSION,
        );
        assert_eq!(
            b.stored(&format!("channelEnds/ports/{PORT}/channels/{ch_b}")),
            keccak256(&open_b)
        );
        let end = b.channel(PORT, &ch_b);
        assert_eq!(
            (end.state, end.ordering, end.nextSequenceSend),
            (3, ordering, 1)
        );
        a.channel_id = ch_a;
        b.channel_id = ch_b;
    }

    /// The app of the source side pings; returns the packet of the SendPacket event.
    fn send(
        &mut self,
        a_to_b: bool,
        data: &[u8],
        timeout_height: u64,
        timeout_ns: u64,
    ) -> P::Packet {
        let (src, _) = self.sides(a_to_b);
        let channel = src.channel_id.clone();
        let (seq, logs) = src
            .app_call(PingApp::pingCall {
                channelId: channel,
                data: data.to_vec().into(),
                timeoutHeight: conv(&height(timeout_height)),
                timeoutTimestamp: timeout_ns,
            })
            .unwrap();
        let ev = events::<P::SendPacket>(&logs);
        assert_eq!(ev.len(), 1);
        let p = ev[0].packet.clone();
        assert_eq!(p.sequence, seq);
        // The commitment is the ICS-04 packet commitment, at the DESIGN §5 slot.
        let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
        assert_eq!(src.stored(&path), keccak256(packet_commitment(&p)));
        p
    }

    /// Relays `p` to its destination: updates the client there, proves the commitment, sends
    /// MsgRecvPacket.
    fn recv(&mut self, a_to_b: bool, p: &P::Packet) -> Result<Vec<Log>, Bytes> {
        let (src, dst) = self.sides(a_to_b);
        let h = update(dst, src);
        let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
        let proof = src.prove(&h, &path, Some(&packet_commitment(p)));
        dst.call(P::recvPacketCall {
            m: P::MsgRecvPacket {
                packet: p.clone(),
                proof,
                proofHeight: h,
            },
        })
        .map(|(_, logs)| logs)
    }

    /// Relays the acknowledgement `ack` of `p` back to its source.
    fn ack(&mut self, a_to_b: bool, p: &P::Packet, ack: &[u8]) -> Result<Vec<Log>, Bytes> {
        let (src, dst) = self.sides(a_to_b);
        let h = update(src, dst);
        let path = packet_path(
            "acks",
            &p.destinationPort,
            &p.destinationChannel,
            p.sequence,
        );
        let proof = dst.prove(&h, &path, Some(&sha256(ack)));
        src.call(P::acknowledgePacketCall {
            m: P::MsgAcknowledgement {
                packet: p.clone(),
                acknowledgement: ack.to_vec().into(),
                proof,
                proofHeight: h,
            },
        })
        .map(|(_, logs)| logs)
    }

    /// Relays a timeout of `p` to its source: proof of the receipt's absence (unordered) or of
    /// the destination's nextSequenceRecv (ordered) at the destination's current height.
    fn timeout(&mut self, a_to_b: bool, p: &P::Packet, ordered: bool) -> Result<Vec<Log>, Bytes> {
        let (src, dst) = self.sides(a_to_b);
        let h = update(src, dst);
        let (proof, next) = unreceived_proof(dst, &h, p, ordered);
        src.call(P::timeoutPacketCall {
            m: P::MsgTimeout {
                packet: p.clone(),
                proof,
                proofHeight: h,
                nextSequenceRecv: next,
            },
        })
        .map(|(_, logs)| logs)
    }
}

fn unreceived_proof(dst: &Side, h: &P::Height, p: &P::Packet, ordered: bool) -> (Bytes, u64) {
    if ordered {
        let end = dst.channel(&p.destinationPort, &p.destinationChannel);
        let path = format!(
            "nextSequenceRecv/ports/{}/channels/{}",
            p.destinationPort, p.destinationChannel
        );
        let next = end.nextSequenceRecv;
        (dst.prove(h, &path, Some(&next.to_be_bytes())), next)
    } else {
        let path = packet_path(
            "receipts",
            &p.destinationPort,
            &p.destinationChannel,
            p.sequence,
        );
        (dst.prove(h, &path, None), 0)
    }
}

fn create_client(on: &mut Side, of: &Side) -> String {
    let (n, t) = of.chain.block();
    let cs = client_state_any(n);
    let cons = consensus_state_any(t * 1_000_000_000, keccak256(n.to_be_bytes()));
    let (id, logs) = on
        .call(IBCClient::createClientCall {
            msg_: IBCClient::MsgCreateClient {
                clientType: CLIENT_TYPE.into(),
                clientState: cs.clone().into(),
                consensusState: cons.clone().into(),
            },
        })
        .unwrap();
    assert_eq!(id, format!("{CLIENT_TYPE}-0"));
    assert_eq!(
        events::<IBCClient::CreateClient>(&logs)[0]
            .latestHeight
            .revisionHeight,
        n
    );
    // Client and consensus states are committed as keccak256 of their Any bytes.
    assert_eq!(
        on.stored(&format!("clients/{id}/clientState")),
        keccak256(&cs)
    );
    assert_eq!(
        on.stored(&format!("clients/{id}/consensusStates/0-{n}")),
        keccak256(&cons)
    );
    id
}

fn app_counters(side: &Side) -> (u64, u64, u64) {
    let mut v = side.chain_clone_call();
    let r = v.call(BOB, side.app, PingApp::receivedCall {}).unwrap().0;
    let a = v
        .call(BOB, side.app, PingApp::acknowledgedCall {})
        .unwrap()
        .0;
    let t = v.call(BOB, side.app, PingApp::timedOutCall {}).unwrap().0;
    (r, a, t)
}

fn open_pair(ordering: u8) -> Pair {
    let mut pair = Pair::new();
    pair.connect();
    pair.open_channel(ordering);
    pair
}

fn write_ack_of(logs: &[Log]) -> (P::Packet, Vec<u8>) {
    let ev = events::<P::WriteAcknowledgement>(logs);
    assert_eq!(ev.len(), 1, "one WriteAcknowledgement");
    (ev[0].packet.clone(), ev[0].acknowledgement.to_vec())
}

// ---- tests ---------------------------------------------------------------------------------------

#[test]
fn unordered_packets_acks_and_rejections() {
    let mut pair = open_pair(UNORDERED);
    let p = pair.send(true, b"hello", 1_000, 0);
    assert_eq!(p.sequence, 1);
    assert_eq!(
        (p.destinationPort.as_str(), p.destinationChannel.as_str()),
        (PORT, pair.b.channel_id.as_str())
    );

    // A wrong proof is rejected.
    {
        let (a, b) = (&mut pair.a, &mut pair.b);
        let h = update(b, a);
        let path = packet_path("commitments", PORT, &a.channel_id, 1);
        let wrong = a.prove(&h, &path, Some(&packet_commitment(&p)));
        let mut tampered = p.clone();
        tampered.data = b"hellO".to_vec().into();
        assert_error(
            b.call(P::recvPacketCall {
                m: P::MsgRecvPacket {
                    packet: tampered,
                    proof: wrong,
                    proofHeight: h,
                },
            }),
            P::IBCProofVerificationFailed { path },
        );
    }

    // A packet claiming another source than the channel's counterparty.
    let mut spoofed = p.clone();
    spoofed.sourceChannel = "channel-7".into();
    assert_error(
        pair.b.call(P::recvPacketCall {
            m: P::MsgRecvPacket {
                packet: spoofed,
                proof: Bytes::from(vec![0u8; 32]),
                proofHeight: height(1),
            },
        }),
        P::IBCPacketCounterpartyMismatch {},
    );

    let logs = pair.recv(true, &p).unwrap();
    let ev = &events::<P::RecvPacket>(&logs)[0];
    assert_eq!(
        (ev.destinationChannel.as_str(), ev.sequence),
        (pair.b.channel_id.as_str(), 1)
    );
    let (acked, ack) = write_ack_of(&logs);
    assert_eq!(acked, p);
    assert_eq!(ack, b"echo:hello");
    let receipt = packet_path("receipts", PORT, &pair.b.channel_id, 1);
    assert_eq!(pair.b.stored(&receipt), keccak256([1u8]));
    assert_eq!(app_counters(&pair.b), (1, 0, 0));

    // A replayed packet is rejected.
    assert_error(
        pair.recv(true, &p),
        P::IBCPacketAlreadyReceived { sequence: 1 },
    );

    let logs = pair.ack(true, &p, &ack).unwrap();
    let ev = &events::<P::AcknowledgePacket>(&logs)[0];
    assert_eq!(
        (ev.sourceChannel.as_str(), ev.sequence),
        (pair.a.channel_id.as_str(), 1)
    );
    let ev = &events::<PingApp::PingAcknowledged>(&logs)[0];
    assert_eq!((ev.sequence, ev.acknowledgement.to_vec()), (1, ack.clone()));
    assert_eq!(app_counters(&pair.a), (0, 1, 0));
    let commitment = packet_path("commitments", PORT, &pair.a.channel_id, 1);
    assert_eq!(pair.a.stored(&commitment), B256::ZERO, "commitment deleted");

    // The same ack again, and an ack for a packet never sent: unknown packet.
    assert_error(
        pair.ack(true, &p, &ack),
        P::IBCPacketCommitmentNotFound { sequence: 1 },
    );
    let mut unknown = p.clone();
    unknown.sequence = 7;
    assert_error(
        pair.a.call(P::acknowledgePacketCall {
            m: P::MsgAcknowledgement {
                packet: unknown,
                acknowledgement: ack.clone().into(),
                proof: Bytes::from(vec![0u8; 32]),
                proofHeight: height(1),
            },
        }),
        P::IBCPacketCommitmentNotFound { sequence: 7 },
    );

    // B -> A on the same channel; unordered: the later packet may arrive first.
    let p1 = pair.send(false, b"one", 1_000, 0);
    let p2 = pair.send(false, b"two", 1_000, 0);
    let logs2 = pair.recv(false, &p2).unwrap();
    let logs1 = pair.recv(false, &p1).unwrap();
    pair.ack(false, &p2, &write_ack_of(&logs2).1).unwrap();
    pair.ack(false, &p1, &write_ack_of(&logs1).1).unwrap();
    assert_eq!(app_counters(&pair.b), (1, 2, 0));

    // A modified packet does not match its commitment.
    let p3 = pair.send(true, b"three", 1_000, 0);
    assert_eq!(p3.sequence, 2);
    let logs = pair.recv(true, &p3).unwrap();
    let (_, ack3) = write_ack_of(&logs);
    let mut other = p3.clone();
    other.data = b"thrEE".to_vec().into();
    assert_error(
        pair.a.call(P::acknowledgePacketCall {
            m: P::MsgAcknowledgement {
                packet: other,
                acknowledgement: ack3.into(),
                proof: Bytes::from(vec![0u8; 32]),
                proofHeight: height(1),
            },
        }),
        P::IBCPacketCommitmentMismatch {
            sequence: p3.sequence,
        },
    );
}

#[test]
fn ordered_channel_enforces_sequence() {
    let mut pair = open_pair(ORDERED);
    let p1 = pair.send(true, b"first", 1_000, 0);
    let p2 = pair.send(true, b"second", 1_000, 0);
    assert_error(
        pair.recv(true, &p2),
        P::IBCPacketSequenceOutOfOrder {
            expected: 1,
            sequence: 2,
        },
    );
    let logs1 = pair.recv(true, &p1).unwrap();
    assert_error(
        pair.recv(true, &p1),
        P::IBCPacketAlreadyReceived { sequence: 1 },
    );
    let logs2 = pair.recv(true, &p2).unwrap();
    let next = format!(
        "nextSequenceRecv/ports/{PORT}/channels/{}",
        pair.b.channel_id
    );
    assert_eq!(pair.b.stored(&next), keccak256(3u64.to_be_bytes()));
    // Acks in order only.
    let (_, ack1) = write_ack_of(&logs1);
    let (_, ack2) = write_ack_of(&logs2);
    assert_error(
        pair.ack(true, &p2, &ack2),
        P::IBCPacketSequenceOutOfOrder {
            expected: 1,
            sequence: 2,
        },
    );
    pair.ack(true, &p1, &ack1).unwrap();
    pair.ack(true, &p2, &ack2).unwrap();
    assert_eq!(app_counters(&pair.a), (0, 2, 0));
    assert_eq!(app_counters(&pair.b), (2, 0, 0));
}

#[test]
fn timeout_by_height_unordered() {
    let mut pair = open_pair(UNORDERED);
    let (b_height, _) = pair.b.chain.block();
    let p = pair.send(true, b"late", b_height + 3, 0);
    // Not timed out yet at the destination's current height.
    assert_error(
        pair.timeout(true, &p, false),
        P::IBCPacketNotTimedOut { sequence: 1 },
    );
    for _ in 0..3 {
        pair.b.tick();
    }
    // Receive after timeout is refused.
    assert_error(pair.recv(true, &p), P::IBCPacketTimedOut { sequence: 1 });
    let logs = pair.timeout(true, &p, false).unwrap();
    assert_eq!(events::<P::TimeoutPacket>(&logs)[0].sequence, p.sequence);
    assert_eq!(app_counters(&pair.a), (0, 0, 1));
    assert_error(
        pair.timeout(true, &p, false),
        P::IBCPacketCommitmentNotFound { sequence: 1 },
    );
    // The channel stays open on an unordered channel.
    assert_eq!(pair.a.channel(PORT, &pair.a.channel_id.clone()).state, 3);
}

#[test]
fn timeout_by_timestamp_ordered_closes_channel() {
    let mut pair = open_pair(ORDERED);
    let (_, b_time) = pair.b.chain.block();
    let deadline = (b_time + 20) * 1_000_000_000;
    let p = pair.send(true, b"slow", 0, deadline);
    assert_error(
        pair.timeout(true, &p, true),
        P::IBCPacketNotTimedOut { sequence: 1 },
    );
    let (n, t) = pair.b.chain.block();
    pair.b.chain.set_block(n + 1, t + 30);
    assert_error(pair.recv(true, &p), P::IBCPacketTimedOut { sequence: 1 });
    pair.timeout(true, &p, true).unwrap();
    assert_eq!(app_counters(&pair.a), (0, 0, 1));
    // An ordered channel closes on timeout, committed as CLOSED.
    let ch_a = pair.a.channel_id.clone();
    assert_eq!(pair.a.channel(PORT, &ch_a).state, 4);
    let closed = channel_end(
        chan::State::Closed,
        ORDERED,
        PORT,
        &pair.b.channel_id,
        &pair.a.connection_id,
        VERSION,
    );
    assert_eq!(
        pair.a
            .stored(&format!("channelEnds/ports/{PORT}/channels/{ch_a}")),
        keccak256(&closed)
    );
    // No more sends on it.
    assert_error(
        pair.a.app_call(PingApp::pingCall {
            channelId: ch_a.clone(),
            data: Bytes::from_static(b"x"),
            timeoutHeight: conv(&height(1_000)),
            timeoutTimestamp: 0,
        }),
        P::IBCChannelStateUnexpected {
            portId: PORT.into(),
            channelId: ch_a,
            actual: 4,
            expected: 3,
        },
    );
}

#[test]
fn ordered_timeout_refused_when_received() {
    let mut pair = open_pair(ORDERED);
    let (b_height, _) = pair.b.chain.block();
    let p = pair.send(true, b"fast", b_height + 2, 0);
    pair.recv(true, &p).unwrap();
    pair.b.tick();
    pair.b.tick();
    let (src, dst) = pair.sides(true);
    let h = update(src, dst);
    let (proof, next) = unreceived_proof(dst, &h, &p, true);
    assert_eq!(next, 2);
    assert_error(
        src.call(P::timeoutPacketCall {
            m: P::MsgTimeout {
                packet: p.clone(),
                proof,
                proofHeight: h,
                nextSequenceRecv: next,
            },
        }),
        P::IBCPacketReceivedOnCounterparty {
            sequence: 1,
            nextSequenceRecv: 2,
        },
    );
}

#[test]
fn close_handshake_and_timeout_on_close() {
    let mut pair = open_pair(UNORDERED);
    let p = pair.send(true, b"orphan", 1_000, 0);
    let (ch_a, ch_b) = (pair.a.channel_id.clone(), pair.b.channel_id.clone());

    // Only the app bound to the port may close its channel.
    assert_error(
        pair.b.call(H::channelCloseInitCall {
            portId: PORT.into(),
            channelId: ch_b.clone(),
        }),
        H::IBCPortNotOwned {
            portId: PORT.into(),
            caller: RELAYER,
        },
    );
    let (_, logs) = pair
        .b
        .app_call(PingApp::closeChannelCall {
            channelId: ch_b.clone(),
        })
        .unwrap();
    assert_eq!(
        events::<H::ChannelCloseInit>(&logs)[0].counterpartyChannelId,
        ch_a
    );
    // The packet can no longer be received.
    assert_error(
        pair.recv(true, &p),
        P::IBCChannelStateUnexpected {
            portId: PORT.into(),
            channelId: ch_b.clone(),
            actual: 4,
            expected: 3,
        },
    );

    // A proves B's end CLOSED and the packet unreceived: timeout on close.
    let (a, b) = (&mut pair.a, &mut pair.b);
    let h = update(a, b);
    let closed_b = channel_end(
        chan::State::Closed,
        UNORDERED,
        PORT,
        &ch_a,
        &b.connection_id,
        VERSION,
    );
    let proof_close = b.prove(
        &h,
        &format!("channelEnds/ports/{PORT}/channels/{ch_b}"),
        Some(&closed_b),
    );
    let (proof_unreceived, _) = unreceived_proof(b, &h, &p, false);
    let msg = |proof_close: Bytes| P::timeoutOnCloseCall {
        m: P::MsgTimeoutOnClose {
            packet: p.clone(),
            proofUnreceived: proof_unreceived.clone(),
            proofClose: proof_close,
            proofHeight: h.clone(),
            nextSequenceRecv: 0,
        },
    };
    let mut wrong = proof_close.to_vec();
    wrong[31] ^= 0x80;
    assert_error(
        a.call(msg(wrong.into())),
        P::IBCProofVerificationFailed {
            path: format!("channelEnds/ports/{PORT}/channels/{ch_b}"),
        },
    );
    let logs = a.call(msg(proof_close.clone())).unwrap().1;
    assert_eq!(events::<P::TimeoutPacket>(&logs)[0].sequence, p.sequence);
    assert_eq!(app_counters(a), (0, 0, 1));

    // A confirms the close.
    let (_, logs) = a
        .call(H::channelCloseConfirmCall {
            m: H::MsgChannelProof {
                portId: PORT.into(),
                channelId: ch_a.clone(),
                proof: proof_close.clone(),
                proofHeight: conv(&h),
            },
        })
        .unwrap();
    assert_eq!(events::<H::ChannelCloseConfirm>(&logs)[0].channelId, ch_a);
    assert_eq!(a.channel(PORT, &ch_a).state, 4);
    // Confirming again: the end is already CLOSED.
    assert_error(
        a.call(H::channelCloseConfirmCall {
            m: H::MsgChannelProof {
                portId: PORT.into(),
                channelId: ch_a.clone(),
                proof: proof_close,
                proofHeight: conv(&h),
            },
        }),
        H::IBCChannelStateUnexpected {
            portId: PORT.into(),
            channelId: ch_a,
            actual: 4,
            expected: 3,
        },
    );
}

#[test]
fn asynchronous_acknowledgement() {
    let mut pair = open_pair(UNORDERED);
    pair.b
        .app_call(PingApp::setAsyncAcksCall { on: true })
        .unwrap();
    let p = pair.send(true, b"later", 1_000, 0);
    let logs = pair.recv(true, &p).unwrap();
    assert!(
        events::<P::WriteAcknowledgement>(&logs).is_empty(),
        "no sync ack"
    );
    let ack_path = packet_path("acks", PORT, &pair.b.channel_id, 1);
    assert_eq!(pair.b.stored(&ack_path), B256::ZERO);
    // Nobody but the port's app may write it.
    assert_error(
        pair.b.call(P::writeAcknowledgementCall {
            p: p.clone(),
            acknowledgement: Bytes::from_static(b"forged"),
        }),
        P::IBCPortNotOwned {
            portId: PORT.into(),
            caller: RELAYER,
        },
    );
    let (_, logs) = pair
        .b
        .app_call(PingApp::acknowledgeCall {
            packet: conv(&p),
            ack: Bytes::from_static(b"done"),
        })
        .unwrap();
    let (acked, ack) = write_ack_of(&logs);
    assert_eq!((acked, ack.as_slice()), (p.clone(), &b"done"[..]));
    let logs = pair.ack(true, &p, b"done").unwrap();
    let ev = &events::<PingApp::PingAcknowledged>(&logs)[0];
    assert_eq!(ev.acknowledgement.as_ref(), b"done");
    assert_eq!(app_counters(&pair.a), (0, 1, 0));
}

#[test]
fn send_on_a_port_the_caller_does_not_own() {
    let mut pair = open_pair(UNORDERED);
    let ch = pair.a.channel_id.clone();
    // An app not bound to "ping" (deployed, but the port belongs to the other app).
    let handler = pair.a.handler;
    let intruder = pair.a.chain.deploy(
        BOB,
        &PingApp::BYTECODE,
        PingApp::constructorCall {
            handler_: handler,
            portId_: PORT.into(),
        }
        .abi_encode(),
    );
    assert_error(
        pair.a.chain.call(
            BOB,
            intruder,
            PingApp::pingCall {
                channelId: ch.clone(),
                data: Bytes::from_static(b"spoof"),
                timeoutHeight: conv(&height(1_000)),
                timeoutTimestamp: 0,
            },
        ),
        P::IBCPortNotOwned {
            portId: PORT.into(),
            caller: intruder,
        },
    );
    // An account calling the handler directly.
    assert_error(
        pair.a.call(P::sendPacketCall {
            sourcePort: PORT.into(),
            sourceChannel: ch,
            timeoutHeight: height(1_000),
            timeoutTimestamp: 0,
            data: Bytes::from_static(b"spoof"),
        }),
        P::IBCPortNotOwned {
            portId: PORT.into(),
            caller: RELAYER,
        },
    );
    // Binding a port and registering client types is the owner's.
    assert_error(
        pair.a.call(IBCClient::bindPortCall {
            portId: "other".into(),
            app: intruder,
        }),
        IBCClient::IBCNotOwner { caller: RELAYER },
    );
    assert_error(
        pair.a.chain.call(
            OWNER,
            handler,
            IBCClient::bindPortCall {
                portId: PORT.into(),
                app: intruder,
            },
        ),
        IBCClient::IBCPortAlreadyBound {
            portId: PORT.into(),
        },
    );
}

#[test]
fn handshake_steps_out_of_order_and_unknown_ends() {
    let mut pair = Pair::new();
    // Channel on a connection that does not exist.
    assert_error(
        pair.a.call(H::channelOpenInitCall {
            m: H::MsgChannelOpenInit {
                portId: PORT.into(),
                ordering: UNORDERED,
                connectionId: "connection-9".into(),
                counterpartyPortId: PORT.into(),
                version: VERSION.into(),
            },
        }),
        H::IBCConnectionNotFound {
            connectionId: "connection-9".into(),
        },
    );
    // Channel on an unbound port.
    assert_error(
        pair.a.call(H::channelOpenInitCall {
            m: H::MsgChannelOpenInit {
                portId: "transfer".into(),
                ordering: UNORDERED,
                connectionId: "connection-0".into(),
                counterpartyPortId: PORT.into(),
                version: VERSION.into(),
            },
        }),
        H::IBCPortNotBound {
            portId: "transfer".into(),
        },
    );
    // Counterparty identifiers must be ICS-24 identifiers (no "/" to inject into a path).
    let client_a = pair.a.client_id.clone();
    assert_error(
        pair.a.call(C::connectionOpenInitCall {
            m: C::MsgConnectionOpenInit {
                clientId: client_a,
                counterpartyClientId: "kh-test-only-0/../x".into(),
                counterpartyPrefix: PREFIX.into(),
                delayPeriod: 0,
            },
        }),
        C::IBCInvalidIdentifier {
            identifier: "kh-test-only-0/../x".into(),
        },
    );
    assert_error(
        pair.a.chain.call(
            OWNER,
            pair.a.handler,
            IBCClient::bindPortCall {
                portId: "pi/ng".into(),
                app: pair.a.app,
            },
        ),
        IBCClient::IBCInvalidPortId {
            portId: "pi/ng".into(),
        },
    );
    pair.connect();
    assert_error(
        pair.a.call(H::channelOpenInitCall {
            m: H::MsgChannelOpenInit {
                portId: PORT.into(),
                ordering: UNORDERED,
                connectionId: "connection-0".into(),
                counterpartyPortId: "ping/channels/x".into(),
                version: VERSION.into(),
            },
        }),
        H::IBCInvalidIdentifier {
            identifier: "ping/channels/x".into(),
        },
    );
    // Ack of an already OPEN connection.
    let id = pair.a.connection_id.clone();
    assert_error(
        pair.a.call(C::connectionOpenAckCall {
            m: C::MsgConnectionOpenAck {
                connectionId: id.clone(),
                counterpartyConnectionId: "connection-0".into(),
                proofTry: Bytes::new(),
                proofHeight: conv(&height(1)),
            },
        }),
        C::IBCConnectionStateUnexpected {
            connectionId: id,
            actual: 3,
            expected: 1,
        },
    );
    // Channel ack for a channel that does not exist.
    assert_error(
        pair.a.call(H::channelOpenAckCall {
            m: H::MsgChannelOpenAck {
                portId: PORT.into(),
                channelId: "channel-5".into(),
                counterpartyChannelId: "channel-0".into(),
                counterpartyVersion: VERSION.into(),
                proofTry: Bytes::new(),
                proofHeight: conv(&height(1)),
            },
        }),
        H::IBCChannelNotFound {
            portId: PORT.into(),
            channelId: "channel-5".into(),
        },
    );
    pair.open_channel(UNORDERED);
    // Ack of an OPEN channel.
    let ch = pair.a.channel_id.clone();
    assert_error(
        pair.a.call(H::channelOpenAckCall {
            m: H::MsgChannelOpenAck {
                portId: PORT.into(),
                channelId: ch.clone(),
                counterpartyChannelId: "channel-0".into(),
                counterpartyVersion: VERSION.into(),
                proofTry: Bytes::new(),
                proofHeight: conv(&height(1)),
            },
        }),
        H::IBCChannelStateUnexpected {
            portId: PORT.into(),
            channelId: ch,
            actual: 3,
            expected: 1,
        },
    );
}

#[test]
fn commitment_slots_follow_design_formula() {
    // The ERC-7201 base of namespace "ibc.commitment".
    let ns = U256::from_be_bytes(keccak256("ibc.commitment").0) - U256::from(1);
    let base = keccak256(ns.to_be_bytes::<32>()).0;
    let mut base = base;
    base[31] = 0;
    assert_eq!(B256::from(base), kh_contracts::IBC_COMMITMENTS_BASE);

    // The vectors' worked value for clients/lcp-client-0/clientState.
    let path = format!(
        "{}/../vectors/mpt/ethereum-ibc-rs-proofs.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ibc_commitment_membership")
        .unwrap();
    let expected_slot: B256 = case["storage_key"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        case["ibc_commitments_slot"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap(),
        kh_contracts::IBC_COMMITMENTS_BASE
    );
    assert_eq!(
        ibc_commitment_slot(case["path"].as_str().unwrap()),
        expected_slot
    );
    let value = hex::decode(case["value"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let expected_commitment: B256 = case["expected_commitment"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(keccak256(&value), expected_commitment);

    // The handler stores a client state at exactly that kind of slot: create a client whose
    // client state is the vector's Any bytes' shape (our test-only type), read the raw slot.
    let pair = Pair::new();
    let id = &pair.a.client_id;
    let slot = ibc_commitment_slot(&format!("clients/{id}/clientState"));
    let mut pre = keccak256(format!("clients/{id}/clientState")).to_vec();
    pre.extend(kh_contracts::IBC_COMMITMENTS_BASE.0);
    assert_eq!(slot, keccak256(&pre));
    let (n, _) = pair.b.chain.block();
    assert_eq!(
        pair.a
            .chain
            .storage(pair.a.handler, U256::from_be_bytes(slot.0)),
        U256::from_be_bytes(keccak256(client_state_any(n)).0)
    );

    // A packet commitment: slot of commitments/ports/ping/channels/channel-0/sequences/1,
    // value keccak256(sha256(timeout ‖ rev ‖ height ‖ sha256(data))) with big-endian u64s.
    let mut pair = open_pair(UNORDERED);
    let p = pair.send(true, b"slot", 77, 1_800_000_000_000_000_000);
    let mut pre = Vec::new();
    pre.extend(1_800_000_000_000_000_000u64.to_be_bytes());
    pre.extend(0u64.to_be_bytes());
    pre.extend(77u64.to_be_bytes());
    pre.extend(sha256(b"slot"));
    let commitment = sha256(&pre);
    let slot = ibc_commitment_slot("commitments/ports/ping/channels/channel-0/sequences/1");
    assert_eq!(p.sourceChannel, "channel-0");
    assert_eq!(
        pair.a
            .chain
            .storage(pair.a.handler, U256::from_be_bytes(slot.0)),
        U256::from_be_bytes(keccak256(commitment).0)
    );
}

#[test]
fn client_states_match_the_test_only_encoder() {
    // The Rust prost encoding equals the contract's own encoder (both are what gets committed).
    let mut pair = Pair::new();
    let lc_a = {
        let mut v = pair.a.chain_clone_call();
        v.call(
            BOB,
            pair.a.handler,
            IBCHandler::getClientByTypeCall {
                clientType: CLIENT_TYPE.into(),
            },
        )
        .unwrap()
        .0
    };
    let mut v = pair.a.chain_clone_call();
    let cs = v
        .call(
            BOB,
            lc_a,
            TestOnlyClient::encodeClientStateCall {
                latestHeight: TestOnlyClient::Height {
                    revisionNumber: 0,
                    revisionHeight: 42,
                },
            },
        )
        .unwrap()
        .0;
    assert_eq!(cs.to_vec(), client_state_any(42));
    let root = B256::repeat_byte(7);
    let cons = v
        .call(
            BOB,
            lc_a,
            TestOnlyClient::encodeConsensusStateCall {
                timestamp: 123,
                root,
            },
        )
        .unwrap()
        .0;
    assert_eq!(cons.to_vec(), consensus_state_any(123, root));
    // Only the handler drives the client; garbage create messages are refused.
    assert_error(
        pair.a.chain.call(
            BOB,
            lc_a,
            TestOnlyClient::updateClientCall {
                clientId: pair.a.client_id.clone(),
                clientMessage: Bytes::new(),
            },
        ),
        TestOnlyClient::TestOnlyClientNotHandler { caller: BOB },
    );
    assert!(
        pair.a
            .call(IBCClient::createClientCall {
                msg_: IBCClient::MsgCreateClient {
                    clientType: CLIENT_TYPE.into(),
                    clientState: Bytes::from_static(b"\x0a\x05junk"),
                    consensusState: Bytes::new(),
                },
            })
            .is_err()
    );
    assert_error(
        pair.a.call(IBCClient::createClientCall {
            msg_: IBCClient::MsgCreateClient {
                clientType: "07-tendermint".into(),
                clientState: Bytes::new(),
                consensusState: Bytes::new(),
            },
        }),
        IBCClient::IBCClientTypeNotRegistered {
            clientType: "07-tendermint".into(),
        },
    );
    // An update to an unknown client.
    assert_error(
        pair.b.call(IBCClient::updateClientCall {
            clientId: "kh-test-only-9".into(),
            clientMessage: Bytes::new(),
        }),
        IBCClient::IBCClientNotFound {
            clientId: "kh-test-only-9".into(),
        },
    );
}

#[test]
fn modules_fit_besu_and_refuse_direct_calls() {
    for name in [
        "IBCHandler",
        "IBCProxy",
        "IBCClient",
        "IBCConnection",
        "IBCChannelHandshake",
        "IBCChannelPacket",
        "PingApp",
        "TestOnlyClient",
    ] {
        let path = format!("{}/artifacts/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let a: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let code = a["deployedBytecode"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x")
            .len()
            / 2;
        assert!(
            code <= 24_576,
            "{name}: {code} bytes of code, over the 24 KiB limit"
        );
    }
    let mut pair = Pair::new();
    let mut v = pair.a.chain_clone_call();
    let module = v
        .call(BOB, pair.a.handler, IBCHandler::channelPacketModuleCall {})
        .unwrap()
        .0;
    assert_error(
        pair.a.chain.call(
            BOB,
            module,
            P::sendPacketCall {
                sourcePort: PORT.into(),
                sourceChannel: "channel-0".into(),
                timeoutHeight: height(1),
                timeoutTimestamp: 0,
                data: Bytes::new(),
            },
        ),
        P::IBCNotDelegateCall {},
    );
    // An unknown selector is refused by the router.
    let h = pair.a.handler;
    let r = pair.a.chain.exec(
        BOB,
        alloy_primitives::TxKind::Call(h),
        vec![0xde, 0xad, 0xbe, 0xef],
    );
    match r {
        revm_chain::Outcome::Revert(data) => assert_eq!(
            IBCHandler::IBCUnknownSelector::abi_decode(&data)
                .unwrap()
                .selector,
            alloy_primitives::FixedBytes([0xde, 0xad, 0xbe, 0xef])
        ),
        revm_chain::Outcome::Ok(..) => panic!("unknown selector accepted"),
    }
}

#[test]
fn upgrade_keeps_the_store() {
    let mut pair = open_pair(UNORDERED);
    let p = pair.send(true, b"across the upgrade", 1_000, 0);
    let proxy = pair.a.handler;
    let view = |side: &Side| {
        let mut v = side.chain_clone_call();
        let imp = v
            .call(BOB, side.handler, IBCHandler::implementationCall {})
            .unwrap()
            .0;
        let module = v
            .call(BOB, side.handler, IBCHandler::channelPacketModuleCall {})
            .unwrap()
            .0;
        (imp, module)
    };
    let (old_impl, old_module) = view(&pair.a);
    assert_ne!(old_impl, Address::ZERO);

    // The store cannot be initialized twice, nor the implementation used directly.
    assert_error(
        pair.a.call(IBCHandler::initializeCall { owner_: BOB }),
        IBCHandler::IBCAlreadyInitialized {},
    );
    assert_error(
        pair.a.chain.call(
            OWNER,
            old_impl,
            IBCHandler::upgradeToCall {
                newImplementation: old_impl,
            },
        ),
        IBCHandler::IBCNotDelegateCall {},
    );

    let new_impl = deploy_handler_code(&mut pair.a.chain);
    // Only the owner upgrades, and only to a handler.
    assert_error(
        pair.a.call(IBCHandler::upgradeToCall {
            newImplementation: new_impl,
        }),
        IBCHandler::IBCNotOwner { caller: RELAYER },
    );
    assert_error(
        pair.a.chain.call(
            OWNER,
            proxy,
            IBCHandler::upgradeToCall {
                newImplementation: BOB,
            },
        ),
        IBCHandler::IBCNotAHandler {
            implementation: BOB,
        },
    );
    assert_error(
        pair.a.chain.call(
            OWNER,
            proxy,
            IBCHandler::upgradeToCall {
                newImplementation: pair.a.app,
            },
        ),
        IBCHandler::IBCNotAHandler {
            implementation: pair.a.app,
        },
    );
    let (_, logs) = pair
        .a
        .chain
        .call(
            OWNER,
            proxy,
            IBCHandler::upgradeToCall {
                newImplementation: new_impl,
            },
        )
        .unwrap();
    assert_eq!(
        events::<IBCHandler::Upgraded>(&logs)[0].implementation,
        new_impl
    );
    let (imp, module) = view(&pair.a);
    assert_eq!(imp, new_impl);
    assert_ne!(module, old_module, "new modules in use");

    // The store survived: the packet sent before the upgrade completes its round trip through
    // the new code, and new packets flow.
    let logs = pair.recv(true, &p).unwrap();
    let (_, ack) = write_ack_of(&logs);
    pair.ack(true, &p, &ack).unwrap();
    assert_eq!(app_counters(&pair.a), (0, 1, 0));
    let p2 = pair.send(true, b"after", 1_000, 0);
    assert_eq!(p2.sequence, 2);
    let logs = pair.recv(true, &p2).unwrap();
    pair.ack(true, &p2, &write_ack_of(&logs).1).unwrap();

    // Ownership moves only by the owner.
    assert_error(
        pair.a
            .call(IBCHandler::transferOwnershipCall { newOwner: RELAYER }),
        IBCHandler::IBCNotOwner { caller: RELAYER },
    );
    pair.a
        .chain
        .call(
            OWNER,
            proxy,
            IBCHandler::transferOwnershipCall { newOwner: BOB },
        )
        .unwrap();
    let mut v = pair.a.chain_clone_call();
    assert_eq!(
        v.call(ALICE, proxy, IBCHandler::ownerCall {}).unwrap().0,
        BOB
    );
}

// ---- multicall -----------------------------------------------------------------------------------

/// The update of `dst`'s client to `src`'s current block and the MsgRecvPacket of each packet
/// proved at that height, as handler calldata (not sent); moves `src` to its next block.
fn update_and_recvs(dst: &Side, src: &mut Side, packets: &[P::Packet]) -> (Bytes, Vec<Bytes>) {
    let (n, t) = src.chain.block();
    let message = ((0u64, n), t * 1_000_000_000, keccak256(n.to_be_bytes())).abi_encode_params();
    let update = IBCClient::updateClientCall {
        clientId: dst.client_id.clone(),
        clientMessage: message.into(),
    }
    .abi_encode()
    .into();
    let h = height(n);
    let recvs = packets
        .iter()
        .map(|p| {
            let path = packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence);
            P::recvPacketCall {
                m: P::MsgRecvPacket {
                    packet: p.clone(),
                    proof: src.prove(&h, &path, Some(&packet_commitment(p))),
                    proofHeight: h.clone(),
                },
            }
            .abi_encode()
            .into()
        })
        .collect();
    src.tick();
    (update, recvs)
}

fn multicall_failure(result: Result<impl Sized, Bytes>) -> (U256, Bytes) {
    let data = result.err().expect("expected a revert");
    let e = IBCHandler::IBCMulticallFailed::abi_decode(&data)
        .unwrap_or_else(|_| panic!("reverted with {data}, expected IBCMulticallFailed"));
    (e.index, e.reason)
}

#[test]
fn multicall_lands_an_update_and_packets_in_one_transaction() {
    let mut pair = open_pair(UNORDERED);
    let packets: Vec<_> = (0..3)
        .map(|i| pair.send(true, format!("burst {i}").as_bytes(), 1_000, 0))
        .collect();
    let (a, b) = (&mut pair.a, &mut pair.b);
    let (update_call, recvs) = update_and_recvs(b, a, &packets);
    let mut data = vec![update_call];
    data.extend(recvs);
    let (results, logs) = b
        .call(IBCHandler::multicallCall { data: data.clone() })
        .unwrap();
    // One result per element: updateClient and recvPacket return nothing.
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| r.is_empty()));
    // Every element's events, in order, in the one transaction.
    assert_eq!(events::<IBCClient::UpdateClient>(&logs).len(), 1);
    let received: Vec<u64> = events::<P::RecvPacket>(&logs)
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(received, vec![1, 2, 3]);
    let acks = events::<P::WriteAcknowledgement>(&logs);
    assert_eq!(acks.len(), 3);
    assert_eq!(acks[2].acknowledgement.to_vec(), b"echo:burst 2");
    let first_update = logs
        .iter()
        .position(|l| l.topics()[0] == IBCClient::UpdateClient::SIGNATURE_HASH)
        .unwrap();
    let first_recv = logs
        .iter()
        .position(|l| l.topics()[0] == P::RecvPacket::SIGNATURE_HASH)
        .unwrap();
    assert!(first_update < first_recv, "the update runs first");
    assert_eq!(app_counters(b), (3, 0, 0));
    for p in &packets {
        let receipt = packet_path("receipts", PORT, &b.channel_id, p.sequence);
        assert_eq!(b.stored(&receipt), keccak256([1u8]));
    }
    assert_eq!(events::<PingApp::PingReceived>(&logs).len(), 3);

    // Acknowledgements go back the same way: the update and three acks in one transaction.
    let h = update(a, b);
    let acks: Vec<Bytes> = acks
        .iter()
        .map(|e| {
            let path = packet_path("acks", PORT, &b.channel_id, e.packet.sequence);
            P::acknowledgePacketCall {
                m: P::MsgAcknowledgement {
                    packet: e.packet.clone(),
                    acknowledgement: e.acknowledgement.clone(),
                    proof: b.prove(&h, &path, Some(&sha256(&e.acknowledgement))),
                    proofHeight: h.clone(),
                },
            }
            .abi_encode()
            .into()
        })
        .collect();
    let (_, logs) = a.call(IBCHandler::multicallCall { data: acks }).unwrap();
    assert_eq!(events::<P::AcknowledgePacket>(&logs).len(), 3);
    assert_eq!(app_counters(a), (0, 3, 0));
}

#[test]
fn multicall_is_atomic_and_names_the_failing_element() {
    let mut pair = open_pair(UNORDERED);
    let p1 = pair.send(true, b"one", 1_000, 0);
    pair.recv(true, &p1).unwrap();
    let p2 = pair.send(true, b"two", 1_000, 0);
    let p3 = pair.send(true, b"three", 1_000, 0);
    let (a, b) = (&mut pair.a, &mut pair.b);
    let (n, _) = a.chain.block();
    // p1 was already received (by another relayer, say): element 2 of 4 fails.
    let (update, recvs) = update_and_recvs(b, a, &[p2.clone(), p1, p3.clone()]);
    let mut data = vec![update.clone()];
    data.extend(recvs.clone());
    let (index, reason) = multicall_failure(b.call(IBCHandler::multicallCall { data }));
    assert_eq!(index, U256::from(2));
    assert_eq!(
        P::IBCPacketAlreadyReceived::abi_decode(&reason).unwrap(),
        P::IBCPacketAlreadyReceived { sequence: 1 }
    );
    // Nothing was kept: neither the update before the failure nor the packet after it.
    let id = b.client_id.clone();
    assert_eq!(
        b.stored(&format!("clients/{id}/consensusStates/0-{n}")),
        B256::ZERO
    );
    for seq in [p2.sequence, p3.sequence] {
        let receipt = packet_path("receipts", PORT, &b.channel_id, seq);
        assert_eq!(b.stored(&receipt), B256::ZERO);
    }
    assert_eq!(app_counters(b), (1, 0, 0));

    // Without the stale element the same batch lands.
    let data = vec![update, recvs[0].clone(), recvs[2].clone()];
    let (_, logs) = b.call(IBCHandler::multicallCall { data }).unwrap();
    assert_eq!(events::<P::RecvPacket>(&logs).len(), 2);
    assert_eq!(app_counters(b), (3, 0, 0));

    // An unknown selector inside a multicall: the router's error, wrapped with the index.
    let data = vec![Bytes::from(vec![0xde, 0xad, 0xbe, 0xef])];
    let (index, reason) = multicall_failure(b.call(IBCHandler::multicallCall { data }));
    assert_eq!(index, U256::ZERO);
    assert_eq!(
        IBCHandler::IBCUnknownSelector::abi_decode(&reason)
            .unwrap()
            .selector,
        alloy_primitives::FixedBytes([0xde, 0xad, 0xbe, 0xef])
    );
    // A multicall inside a multicall is refused.
    let inner: Bytes = IBCHandler::multicallCall { data: vec![] }
        .abi_encode()
        .into();
    assert_error(
        b.call(IBCHandler::multicallCall {
            data: vec![
                IBCHandler::getNextSequencesCall {}.abi_encode().into(),
                inner,
            ],
        }),
        IBCHandler::IBCMulticallNested {
            index: U256::from(1),
        },
    );
    // An empty multicall does nothing.
    let (results, logs) = b.call(IBCHandler::multicallCall { data: vec![] }).unwrap();
    assert!(results.is_empty() && logs.is_empty());
}

#[test]
fn multicall_keeps_the_sender_behind_the_proxy_and_alone() {
    // Behind IBCProxy (as deployed) and the handler deployed alone (its constructor's owner).
    let proxied = Side::deploy(1_700_000_000);
    let some_app = proxied.app;
    let mut chain = proxied.chain;
    let alone = deploy_handler_code(&mut chain);
    for (handler, port) in [(proxied.handler, "owned-a"), (alone, "owned-b")] {
        let bind: Bytes = IBCClient::bindPortCall {
            portId: port.into(),
            app: some_app,
        }
        .abi_encode()
        .into();
        let get = IBCHandler::getPortAppCall {
            portId: port.into(),
        };
        let data = vec![bind.clone(), get.abi_encode().into()];
        // A non-owner's owner-only call through the multicall is refused with its own address.
        let (index, reason) = multicall_failure(chain.call(
            BOB,
            handler,
            IBCHandler::multicallCall { data: data.clone() },
        ));
        assert_eq!(index, U256::ZERO);
        assert_eq!(
            IBCClient::IBCNotOwner::abi_decode(&reason).unwrap(),
            IBCClient::IBCNotOwner { caller: BOB }
        );
        // The owner's goes through, and a later element sees the earlier one's write.
        let (results, _) = chain
            .call(OWNER, handler, IBCHandler::multicallCall { data })
            .unwrap();
        assert_eq!(
            IBCHandler::getPortAppCall::abi_decode_returns(&results[1]).unwrap(),
            some_app
        );
        // Not payable.
        let value_tx = revm::context::TxEnv {
            caller: OWNER,
            kind: alloy_primitives::TxKind::Call(handler),
            data: IBCHandler::multicallCall { data: vec![] }
                .abi_encode()
                .into(),
            value: U256::from(1),
            gas_limit: 1_000_000,
            nonce: chain.nonces[&OWNER],
            ..Default::default()
        };
        *chain.nonces.get_mut(&OWNER).unwrap() += 1;
        let r = revm::ExecuteCommitEvm::transact_commit(&mut chain.evm, value_tx).unwrap();
        assert!(!r.is_success(), "a multicall with value was accepted");
    }
    // The handler alone did not write the proxy's store, nor the other way round.
    let app = |v: &mut Chain, handler, port: &str| {
        v.call(
            BOB,
            handler,
            IBCHandler::getPortAppCall {
                portId: port.into(),
            },
        )
        .unwrap()
        .0
    };
    assert_eq!(app(&mut chain, proxied.handler, "owned-b"), Address::ZERO);
    assert_eq!(app(&mut chain, alone, "owned-a"), Address::ZERO);
    assert_eq!(app(&mut chain, alone, "owned-b"), some_app);
}

/// Gas of N packets received through one multicall (with the client update) against the same
/// update and N recvPacket transactions (test-only client: the handler's own cost). Prints the
/// figures (`--nocapture`); checks the multicall is the cheaper.
#[test]
fn multicall_gas_against_separate_transactions() {
    const N: usize = 10;
    let run = |batched: bool| -> u64 {
        let mut pair = open_pair(UNORDERED);
        let packets: Vec<_> = (0..N)
            .map(|i| pair.send(true, format!("packet {i}").as_bytes(), 1_000, 0))
            .collect();
        let (a, b) = (&mut pair.a, &mut pair.b);
        let (update, recvs) = update_and_recvs(b, a, &packets);
        let mut gas = 0;
        if batched {
            let mut data = vec![update];
            data.extend(recvs);
            b.call(IBCHandler::multicallCall { data }).unwrap();
            gas += b.chain.last_gas;
        } else {
            for data in std::iter::once(update).chain(recvs) {
                let h = b.handler;
                match b
                    .chain
                    .exec(RELAYER, alloy_primitives::TxKind::Call(h), data.to_vec())
                {
                    revm_chain::Outcome::Ok(..) => gas += b.chain.last_gas,
                    revm_chain::Outcome::Revert(r) => panic!("reverted: {r}"),
                }
            }
        }
        assert_eq!(app_counters(b), (N as u64, 0, 0));
        gas
    };
    let (one, separate) = (run(true), run(false));
    eprintln!(
        "update + {N} recvPacket (test-only client): multicall {one} gas in 1 tx, \
         separate {separate} gas in {} txs ({} per packet vs {})",
        N + 1,
        one / N as u64,
        separate / N as u64
    );
    assert!(one < separate, "multicall {one} >= separate {separate}");
}
