//! The LCP client wired into the Solidity IBC handler (revm): registered under client type
//! "lcp", a client created and its enclave key registered through `updateClient`, an
//! UpdateState committed by the handler, and `connectionOpenTry` whose proof of the
//! counterparty's INIT connection end is a VerifyMembership proxy message signed by the enclave
//! key (kh-lcp). The counterparty's connection end is built with ibc-proto (prost), so the
//! proof checks the handler's expected ibc-go bytes.
//!
//! Gas: N packets received through LCP (the signed update and N VerifyMembership proofs) in one
//! `multicall` transaction against the same datagrams as N + 1 transactions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lcp_support;
mod revm_chain;

use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolError, SolEvent};
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use kh_contracts::{
    IBCChannelHandshake, IBCChannelPacket, IBCClient, IBCConnection as C, IBCHandler, IBCProxy,
    LCPAttestation, LCPClient, PingApp, ibc_commitment_slot, packet_commitment,
};
use kh_lcp::{
    CommitmentProofs, EnclaveKey, Height, ProxyMessage, SimulationCa, StateId,
    TrustingPeriodContext, UpdateStateMessage, ValidationContext, VerifyMembershipMessage,
};
use lcp_support::{
    Avr, CLIENT_STATE_URL, REGISTER_URL, RegisterEnclaveKeyMessage, any, client_state,
    consensus_state_any, update_message_any,
};
use prost::Message;
use revm_chain::{ALICE, Chain, OWNER, Outcome};

const T0: u64 = 1_800_000_000;
const MRENCLAVE: [u8; 32] = [0x6b; 32];
const RELAYER: Address = ALICE;
const PREFIX: &[u8] = b"ibc";
const COUNTERPARTY_CLIENT: &str = "07-tendermint-0";

fn deploy_handler(chain: &mut Chain) -> Address {
    let client = chain.deploy(OWNER, &IBCClient::BYTECODE, vec![]);
    let connection = chain.deploy(OWNER, &C::BYTECODE, vec![]);
    let handshake = chain.deploy(OWNER, &IBCChannelHandshake::BYTECODE, vec![]);
    let packet = chain.deploy(OWNER, &IBCChannelPacket::BYTECODE, vec![]);
    let implementation = chain.deploy(
        OWNER,
        &IBCHandler::BYTECODE,
        IBCHandler::constructorCall {
            client,
            connection,
            channelHandshake: handshake,
            channelPacket: packet,
            owner_: OWNER,
        }
        .abi_encode(),
    );
    chain.deploy(
        OWNER,
        &IBCProxy::BYTECODE,
        IBCProxy::constructorCall {
            implementation,
            initData: IBCHandler::initializeCall { owner_: OWNER }
                .abi_encode()
                .into(),
        }
        .abi_encode(),
    )
}

/// A simulation CA and, behind `handler`, an LCP client trusting it, registered as client type
/// "lcp"; the client's address.
fn deploy_lcp_client(chain: &mut Chain, handler: Address) -> (Address, SimulationCa) {
    let ca = SimulationCa::generate(T0 - 86_400, T0 + 365 * 86_400).unwrap();
    let attestation = chain.deploy(OWNER, &LCPAttestation::BYTECODE, vec![]);
    let lc = chain.deploy(
        OWNER,
        &LCPClient::BYTECODE,
        LCPClient::constructorCall {
            handler_: handler,
            attestation_: attestation,
            rootCert: ca.root_der().to_vec().into(),
            developmentMode_: false,
        }
        .abi_encode(),
    );
    chain
        .call(
            OWNER,
            handler,
            IBCClient::registerClientCall {
                clientType: "lcp".into(),
                lightClient: lc,
            },
        )
        .unwrap();
    (lc, ca)
}

/// The enclave key registration of `report`, as an `updateClient` message.
fn register_message(report: &kh_lcp::SignedReport) -> Vec<u8> {
    any(
        REGISTER_URL,
        RegisterEnclaveKeyMessage {
            report: report.avr.clone(),
            signature: report.signature.clone(),
            signing_cert: report.signing_cert.clone(),
            operator_signature: vec![],
        }
        .encode_to_vec(),
    )
}

/// A connection end (ibc-go encoding) of `client_id` in `state`, facing `counterparty_client`'s
/// `counterparty_connection` (empty while unknown).
fn connection_end(
    state: conn::State,
    client_id: &str,
    counterparty_client: &str,
    counterparty_connection: &str,
) -> Vec<u8> {
    conn::ConnectionEnd {
        client_id: client_id.into(),
        versions: vec![conn::Version {
            identifier: "1".into(),
            features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
        }],
        state: state as i32,
        counterparty: Some(conn::Counterparty {
            client_id: counterparty_client.into(),
            connection_id: counterparty_connection.into(),
            prefix: Some(MerklePrefix {
                key_prefix: PREFIX.to_vec(),
            }),
        }),
        delay_period: 0,
    }
    .encode_to_vec()
}

fn stored(chain: &Chain, handler: Address, path: &str) -> alloy_primitives::B256 {
    alloy_primitives::B256::from(
        chain.storage(handler, U256::from_be_bytes(ibc_commitment_slot(path).0)),
    )
}

fn update_message(prev: (Height, StateId, u64), post: (Height, StateId, u64)) -> Vec<u8> {
    ProxyMessage::UpdateState(UpdateStateMessage {
        prev: Some((prev.0, prev.1)),
        post_height: post.0,
        post_state_id: post.1,
        timestamp_ns: u128::from(post.2),
        context: ValidationContext::TrustingPeriod(TrustingPeriodContext {
            untrusted_header_timestamp_ns: u128::from(post.2),
            trusted_state_timestamp_ns: u128::from(prev.2),
            trusting_period_ns: 1_209_600_000_000_000,
            clock_drift_ns: 5_000_000_000,
        }),
        emitted_states: vec![],
    })
    .encode()
}

/// The counterparty's connection end in INIT (ibc-go encoding).
fn init_connection_end(our_client: &str) -> Vec<u8> {
    connection_end(conn::State::Init, COUNTERPARTY_CLIENT, our_client, "")
}

#[test]
fn lcp_client_behind_the_ibc_handler_opens_a_connection() {
    let mut chain = Chain::new();
    chain.set_block(1, T0);
    let handler = deploy_handler(&mut chain);
    let (lc, ca) = deploy_lcp_client(&mut chain, handler);

    // createClient at 1-10 with the trusted consensus state.
    let key = EnclaveKey::generate();
    let report = ca
        .simulate(key.address(), None, MRENCLAVE, T0, false)
        .unwrap();
    let avr = Avr::from_signed(&report, MRENCLAVE);
    let h1 = (
        Height::new(1, 10),
        StateId([1; 32]),
        (T0 - 60) * 1_000_000_000,
    );
    let cs = any(
        CLIENT_STATE_URL,
        client_state(&avr, h1.0, &[], (0, 0)).encode_to_vec(),
    );
    let cons = consensus_state_any(h1.1.0, h1.2);
    let (client_id, _) = chain
        .call(
            RELAYER,
            handler,
            IBCClient::createClientCall {
                msg_: IBCClient::MsgCreateClient {
                    clientType: "lcp".into(),
                    clientState: cs.clone().into(),
                    consensusState: cons.clone().into(),
                },
            },
        )
        .unwrap();
    assert_eq!(client_id, "lcp-0");
    assert_eq!(
        stored(&chain, handler, "clients/lcp-0/consensusStates/1-10"),
        keccak256(&cons)
    );
    assert_eq!(
        stored(&chain, handler, "clients/lcp-0/clientState"),
        keccak256(&cs)
    );

    // A direct updateClient on the light client is refused: only the handler calls it.
    let update = update_message(
        h1,
        (
            Height::new(1, 11),
            StateId([2; 32]),
            (T0 - 30) * 1_000_000_000,
        ),
    );
    let sig = key.sign(&update).unwrap().to_vec();
    let err = chain
        .call(
            RELAYER,
            lc,
            LCPClient::updateClientCall {
                clientId: client_id.clone(),
                clientMessage: update_message_any(&update, std::slice::from_ref(&sig)).into(),
            },
        )
        .unwrap_err();
    assert_eq!(err[..4], LCPClient::LCPClientNotHandler::SELECTOR);

    // The enclave key is registered through the handler's updateClient.
    let register = register_message(&report);
    chain
        .call(
            RELAYER,
            handler,
            IBCClient::updateClientCall {
                clientId: client_id.clone(),
                clientMessage: register.into(),
            },
        )
        .unwrap();

    // UpdateState 1-10 -> 1-11, committed by the handler.
    chain.set_block(2, T0 + 5);
    chain
        .call(
            RELAYER,
            handler,
            IBCClient::updateClientCall {
                clientId: client_id.clone(),
                clientMessage: update_message_any(&update, &[sig]).into(),
            },
        )
        .unwrap();
    let h2 = Height::new(1, 11);
    assert_eq!(
        stored(&chain, handler, "clients/lcp-0/consensusStates/1-11"),
        keccak256(consensus_state_any([2; 32], (T0 - 30) * 1_000_000_000))
    );
    let latest_cs = any(
        CLIENT_STATE_URL,
        client_state(&avr, h2, &[], (0, 0)).encode_to_vec(),
    );
    assert_eq!(
        stored(&chain, handler, "clients/lcp-0/clientState"),
        keccak256(&latest_cs),
        "the committed client state is the canonical encoding at the new height"
    );

    // connectionOpenTry, proving the counterparty's INIT end with a signed VerifyMembership.
    let init = init_connection_end(&client_id);
    let statement = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
        PREFIX.to_vec(),
        b"connections/connection-0".to_vec(),
        &init,
        h2,
        StateId([2; 32]),
    ))
    .encode();
    let proof = |sig: Vec<u8>| -> Bytes {
        CommitmentProofs {
            message: statement.clone(),
            signatures: vec![sig],
        }
        .encode()
        .into()
    };
    let try_call = |proof: Bytes, counterparty_connection: &str| C::connectionOpenTryCall {
        m: C::MsgConnectionOpenTry {
            clientId: client_id.clone(),
            counterpartyClientId: COUNTERPARTY_CLIENT.into(),
            counterpartyConnectionId: counterparty_connection.into(),
            counterpartyPrefix: PREFIX.to_vec().into(),
            delayPeriod: 0,
            proofInit: proof,
            proofHeight: C::Height {
                revisionNumber: 1,
                revisionHeight: 11,
            },
        },
    };
    let good = key.sign(&statement).unwrap().to_vec();
    // Signed by a key that was never registered.
    let stranger = EnclaveKey::generate().sign(&statement).unwrap().to_vec();
    let err = chain
        .call(RELAYER, handler, try_call(proof(stranger), "connection-0"))
        .unwrap_err();
    assert_eq!(
        err[..4],
        LCPClient::LCPClientEnclaveKeyNotRegistered::SELECTOR
    );
    // The statement is about connection-0: it does not prove connection-1.
    let err = chain
        .call(
            RELAYER,
            handler,
            try_call(proof(good.clone()), "connection-1"),
        )
        .unwrap_err();
    assert_eq!(err[..4], C::IBCProofVerificationFailed::SELECTOR);
    let (connection_id, _) = chain
        .call(RELAYER, handler, try_call(proof(good), "connection-0"))
        .unwrap();
    assert_eq!(connection_id, "connection-0");
    // Our end is TRYOPEN, committed as the ibc-go ConnectionEnd.
    let tryopen = connection_end(
        conn::State::Tryopen,
        &client_id,
        COUNTERPARTY_CLIENT,
        "connection-0",
    );
    assert_eq!(
        stored(&chain, handler, "connections/connection-0"),
        keccak256(&tryopen)
    );
}

#[test]
fn lcp_contracts_fit_the_code_size_limit() {
    for (name, code) in [
        ("LCPClient", &LCPClient::DEPLOYED_BYTECODE[..]),
        ("LCPAttestation", &LCPAttestation::DEPLOYED_BYTECODE[..]),
    ] {
        assert!(code.len() <= 24_576, "{name}: {} bytes", code.len());
    }
}

/// The LCP client's proof of `value` at `path` on the counterparty at (`height`, `state`).
fn lcp_proof(key: &EnclaveKey, path: &str, value: &[u8], height: Height, state: StateId) -> Bytes {
    let message = ProxyMessage::VerifyMembership(VerifyMembershipMessage::membership(
        PREFIX.to_vec(),
        path.as_bytes().to_vec(),
        value,
        height,
        state,
    ))
    .encode();
    let signature = key.sign(&message).unwrap().to_vec();
    CommitmentProofs {
        message,
        signatures: vec![signature],
    }
    .encode()
    .into()
}

/// A handler with an LCP client (key registered, state at 1-11), connection-0 and an unordered
/// "ping" channel-0 to the counterparty open through LCP-signed proofs, PingApp on port "ping".
fn lcp_channel(chain: &mut Chain) -> (Address, EnclaveKey, String) {
    use ibc_proto::ibc::core::channel::v1 as chan;
    chain.set_block(1, T0);
    let handler = deploy_handler(chain);
    let (_, ca) = deploy_lcp_client(chain, handler);
    let key = EnclaveKey::generate();
    let report = ca
        .simulate(key.address(), None, MRENCLAVE, T0, false)
        .unwrap();
    let avr = Avr::from_signed(&report, MRENCLAVE);
    let h1 = (
        Height::new(1, 10),
        StateId([1; 32]),
        (T0 - 60) * 1_000_000_000,
    );
    let (client_id, _) = chain
        .call(
            RELAYER,
            handler,
            IBCClient::createClientCall {
                msg_: IBCClient::MsgCreateClient {
                    clientType: "lcp".into(),
                    clientState: any(
                        CLIENT_STATE_URL,
                        client_state(&avr, h1.0, &[], (0, 0)).encode_to_vec(),
                    )
                    .into(),
                    consensusState: consensus_state_any(h1.1.0, h1.2).into(),
                },
            },
        )
        .unwrap();
    let registration = register_message(&report);
    let h2 = (
        Height::new(1, 11),
        StateId([2; 32]),
        (T0 - 30) * 1_000_000_000,
    );
    let update = update_message(h1, h2);
    let sig = key.sign(&update).unwrap().to_vec();
    chain.set_block(2, T0 + 5);
    for message in [registration, update_message_any(&update, &[sig])] {
        chain
            .call(
                RELAYER,
                handler,
                IBCClient::updateClientCall {
                    clientId: client_id.clone(),
                    clientMessage: message.into(),
                },
            )
            .unwrap();
    }
    let at_h2 = |path: &str, value: &[u8]| lcp_proof(&key, path, value, h2.0, h2.1);
    let proof_height = C::Height {
        revisionNumber: 1,
        revisionHeight: 11,
    };
    chain
        .call(
            RELAYER,
            handler,
            C::connectionOpenTryCall {
                m: C::MsgConnectionOpenTry {
                    clientId: client_id.clone(),
                    counterpartyClientId: COUNTERPARTY_CLIENT.into(),
                    counterpartyConnectionId: "connection-0".into(),
                    counterpartyPrefix: PREFIX.to_vec().into(),
                    delayPeriod: 0,
                    proofInit: at_h2("connections/connection-0", &init_connection_end(&client_id)),
                    proofHeight: proof_height.clone(),
                },
            },
        )
        .unwrap();
    let open = connection_end(
        conn::State::Open,
        COUNTERPARTY_CLIENT,
        &client_id,
        "connection-0",
    );
    chain
        .call(
            RELAYER,
            handler,
            C::connectionOpenConfirmCall {
                m: C::MsgConnectionOpenConfirm {
                    connectionId: "connection-0".into(),
                    proofAck: at_h2("connections/connection-0", &open),
                    proofHeight: proof_height.clone(),
                },
            },
        )
        .unwrap();
    let app = chain.deploy(
        OWNER,
        &PingApp::BYTECODE,
        PingApp::constructorCall {
            handler_: handler,
            portId_: "ping".into(),
        }
        .abi_encode(),
    );
    chain
        .call(
            OWNER,
            handler,
            IBCClient::bindPortCall {
                portId: "ping".into(),
                app,
            },
        )
        .unwrap();
    let channel = |state: chan::State, cp_channel: &str| {
        chan::Channel {
            state: state as i32,
            ordering: chan::Order::Unordered as i32,
            counterparty: Some(chan::Counterparty {
                port_id: "ping".into(),
                channel_id: cp_channel.into(),
            }),
            connection_hops: vec!["connection-0".into()],
            version: "ping-1".into(),
            upgrade_sequence: 0,
        }
        .encode_to_vec()
    };
    let hh = IBCChannelHandshake::Height {
        revisionNumber: 1,
        revisionHeight: 11,
    };
    let (channel_id, _) = chain
        .call(
            RELAYER,
            handler,
            IBCChannelHandshake::channelOpenTryCall {
                m: IBCChannelHandshake::MsgChannelOpenTry {
                    portId: "ping".into(),
                    ordering: 1,
                    connectionId: "connection-0".into(),
                    counterpartyPortId: "ping".into(),
                    counterpartyChannelId: "channel-0".into(),
                    counterpartyVersion: "ping-1".into(),
                    proofInit: at_h2(
                        "channelEnds/ports/ping/channels/channel-0",
                        &channel(chan::State::Init, ""),
                    ),
                    proofHeight: hh.clone(),
                },
            },
        )
        .unwrap();
    assert_eq!(channel_id, "channel-0");
    chain
        .call(
            RELAYER,
            handler,
            IBCChannelHandshake::channelOpenConfirmCall {
                m: IBCChannelHandshake::MsgChannelProof {
                    portId: "ping".into(),
                    channelId: "channel-0".into(),
                    proof: at_h2(
                        "channelEnds/ports/ping/channels/channel-0",
                        &channel(chan::State::Open, "channel-0"),
                    ),
                    proofHeight: hh,
                },
            },
        )
        .unwrap();
    (handler, key, client_id)
}

/// Gas of N packets received through LCP: the client update (UpdateState 1-11 -> 1-12, signed
/// by the enclave key) and N recvPacket (each a VerifyMembership signed by the key) in one
/// `multicall` transaction, against the same update and N recvPacket as N + 1 transactions.
/// Each figure is the transactions' gas used (intrinsic gas included), every slot cold at the
/// start of a transaction as on chain. Prints the figures (`--nocapture`); checks the multicall
/// is the cheaper and that every packet was received.
#[test]
fn lcp_packets_in_one_multicall_against_separate_transactions() {
    for n in [1usize, 5, 20] {
        let run = |batched: bool| -> (u64, usize) {
            let mut chain = Chain::new();
            let (handler, key, client_id) = lcp_channel(&mut chain);
            let h2 = (
                Height::new(1, 11),
                StateId([2; 32]),
                (T0 - 30) * 1_000_000_000,
            );
            let h3 = (Height::new(1, 12), StateId([3; 32]), T0 * 1_000_000_000);
            let update = update_message(h2, h3);
            let sig = key.sign(&update).unwrap().to_vec();
            let mut calls: Vec<Bytes> = vec![
                IBCClient::updateClientCall {
                    clientId: client_id,
                    clientMessage: update_message_any(&update, &[sig]).into(),
                }
                .abi_encode()
                .into(),
            ];
            for seq in 1..=n as u64 {
                let packet = IBCChannelPacket::Packet {
                    sequence: seq,
                    sourcePort: "ping".into(),
                    sourceChannel: "channel-0".into(),
                    destinationPort: "ping".into(),
                    destinationChannel: "channel-0".into(),
                    data: format!("packet {seq}").into_bytes().into(),
                    timeoutHeight: IBCChannelPacket::Height {
                        revisionNumber: 0,
                        revisionHeight: 0,
                    },
                    timeoutTimestamp: (T0 + 86_400) * 1_000_000_000,
                };
                let path = format!("commitments/ports/ping/channels/channel-0/sequences/{seq}");
                let proof = lcp_proof(&key, &path, &packet_commitment(&packet), h3.0, h3.1);
                calls.push(
                    IBCChannelPacket::recvPacketCall {
                        m: IBCChannelPacket::MsgRecvPacket {
                            packet,
                            proof,
                            proofHeight: IBCChannelPacket::Height {
                                revisionNumber: 1,
                                revisionHeight: 12,
                            },
                        },
                    }
                    .abi_encode()
                    .into(),
                );
            }
            chain.set_block(3, T0 + 10);
            let mut gas = 0;
            let mut received = 0;
            let topic = IBCChannelPacket::RecvPacket::SIGNATURE_HASH;
            let count = |logs: &[alloy_primitives::Log]| {
                logs.iter().filter(|l| l.topics()[0] == topic).count()
            };
            if batched {
                let (_, logs) = chain
                    .call(RELAYER, handler, IBCHandler::multicallCall { data: calls })
                    .unwrap();
                gas += chain.last_gas;
                received += count(&logs);
            } else {
                for data in calls {
                    match chain.exec(RELAYER, TxKind::Call(handler), data.to_vec()) {
                        Outcome::Ok(_, logs) => received += count(&logs),
                        Outcome::Revert(r) => panic!("reverted: {r}"),
                    }
                    gas += chain.last_gas;
                }
            }
            (gas, received)
        };
        let (one, received) = run(true);
        assert_eq!(received, n);
        let (separate, received) = run(false);
        assert_eq!(received, n);
        eprintln!(
            "LCP update + {n} recvPacket: multicall {one} gas in 1 tx, separate {separate} gas \
             in {} txs; saved {} ({}%)",
            n + 1,
            separate - one,
            (separate - one) * 100 / separate
        );
        assert!(one < separate, "multicall {one} >= separate {separate}");
    }
}
