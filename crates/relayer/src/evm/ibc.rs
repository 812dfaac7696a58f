//! The Solidity IBC handler as the relayer sees it: its events decoded from logs, its store
//! read at the DESIGN §5 commitment slots, and the datagrams it accepts (client updates,
//! handshake steps, packets, acknowledgements, timeouts), submitted through the [`Submitter`].
//!
//! Proofs come from a [`Prover`] of the *other* chain: what its client on this handler accepts
//! (LCP's signed messages in production).

use std::sync::Arc;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_sol_types::{SolCall, SolError, SolEvent};
use kh_contracts::{
    IBCChannelHandshake as H, IBCChannelPacket as P, IBCClient, IBCHandler, LCPClient,
    ibc_commitment_slot,
};
use serde_json::json;
use tracing::debug;

use super::follow::ChainLog;
use super::rpc::quantity;
use super::submit::{Receipt, SubmitError, Submitter};
pub use crate::chain::{
    Chain, Datagram, HandlerEvent, IbcError, IbcHeight, Packet, Prover, ack_commitment,
    packet_commitment, packet_path,
};
use crate::handshake::HandshakeStep;

fn sol_height(h: IbcHeight) -> P::Height {
    P::Height {
        revisionNumber: h.revision_number,
        revisionHeight: h.revision_height,
    }
}

/// Decodes the handler events the relay acts on; other logs give `None`.
pub fn decode_event(log: &ChainLog) -> Option<HandlerEvent> {
    let topic = *log.topics.first()?;
    let topics = log.topics.iter().copied();
    if topic == P::SendPacket::SIGNATURE_HASH {
        let e = P::SendPacket::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::SendPacket(e.packet))
    } else if topic == P::WriteAcknowledgement::SIGNATURE_HASH {
        let e = P::WriteAcknowledgement::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::WriteAcknowledgement(
            e.packet,
            e.acknowledgement,
        ))
    } else if topic == P::AcknowledgePacket::SIGNATURE_HASH {
        let e = P::AcknowledgePacket::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::AcknowledgePacket {
            port: e.sourcePort,
            channel: e.sourceChannel,
            sequence: e.sequence,
        })
    } else if topic == P::TimeoutPacket::SIGNATURE_HASH {
        let e = P::TimeoutPacket::decode_raw_log(topics, &log.data).ok()?;
        Some(HandlerEvent::TimeoutPacket {
            port: e.sourcePort,
            channel: e.sourceChannel,
            sequence: e.sequence,
        })
    } else {
        None
    }
}

/// One end of a path on an EVM chain: the handler and the identifiers on it.
#[derive(Debug, Clone)]
pub struct EvmEnd {
    /// Sends the datagrams.
    pub submitter: Arc<Submitter>,
    /// The handler (proxy) address.
    pub handler: Address,
    /// This chain's client of the counterparty.
    pub client_id: String,
}

impl EvmEnd {
    /// The value stored at the commitment slot of `path` (zero: nothing) at the latest block.
    pub async fn stored(&self, path: &str) -> Result<B256, IbcError> {
        let slot = ibc_commitment_slot(path);
        Ok(self
            .submitter
            .rpc()
            .request(
                "eth_getStorageAt",
                vec![json!(self.handler), json!(slot), json!("latest")],
            )
            .await?)
    }

    /// Whether the handler holds exactly `commitment` at `path`.
    pub async fn holds(&self, path: &str, commitment: &[u8]) -> Result<bool, IbcError> {
        Ok(self.stored(path).await? == keccak256(commitment))
    }

    async fn send<T: SolCall>(&self, call: T) -> Result<Receipt, IbcError> {
        Ok(self
            .submitter
            .submit(self.handler, Bytes::from(call.abi_encode()))
            .await?)
    }

    /// Updates this chain's client of the counterparty with `message`.
    pub async fn update_client(&self, message: Bytes) -> Result<Receipt, IbcError> {
        self.send(IBCClient::updateClientCall {
            clientId: self.client_id.clone(),
            clientMessage: message,
        })
        .await
    }

    /// The latest height of this chain's client of the counterparty.
    pub async fn client_latest(&self) -> Result<IbcHeight, IbcError> {
        let out = self
            .submitter
            .call(
                self.handler,
                &IBCHandler::getClientCall {
                    clientId: self.client_id.clone(),
                }
                .abi_encode(),
            )
            .await?;
        let client = IBCHandler::getClientCall::abi_decode_returns(&out)
            .map_err(|e| IbcError::Prover(format!("getClient: {e}")))?
            .lightClient;
        let out = self
            .submitter
            .call(
                client,
                &LCPClient::getLatestHeightCall {
                    clientId: self.client_id.clone(),
                }
                .abi_encode(),
            )
            .await?;
        let h = LCPClient::getLatestHeightCall::abi_decode_returns(&out)
            .map_err(|e| IbcError::Prover(format!("getLatestHeight: {e}")))?;
        Ok(IbcHeight {
            revision_number: h.revisionNumber,
            revision_height: h.revisionHeight,
        })
    }

    /// Brings this chain's client of the counterparty up to the prover's height.
    pub async fn sync_client<Q: Prover>(&self, counterparty: &Q) -> Result<IbcHeight, IbcError> {
        let trusted = self.client_latest().await?;
        let (message, height) = counterparty.update(trusted).await?;
        if let Some(message) = message {
            self.update_client(message).await?;
        }
        Ok(height)
    }

    /// Creates this chain's client of the counterparty; sets and returns its id.
    pub async fn create_client(
        &mut self,
        client_type: &str,
        client_state: Bytes,
        consensus_state: Bytes,
    ) -> Result<String, IbcError> {
        let r = self
            .send(IBCClient::createClientCall {
                msg_: IBCClient::MsgCreateClient {
                    clientType: client_type.into(),
                    clientState: client_state,
                    consensusState: consensus_state,
                },
            })
            .await?;
        let e: IBCClient::CreateClient = event(&r, "CreateClient")?;
        self.client_id = e.clientId.clone();
        Ok(e.clientId)
    }

    /// Delivers `packet` (sent on the counterparty) with the counterparty's proof; returns the
    /// acknowledgement written, if the app acknowledged synchronously.
    pub async fn recv_packet<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
    ) -> Result<Option<Bytes>, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = packet_path(
            "commitments",
            &packet.sourcePort,
            &packet.sourceChannel,
            packet.sequence,
        );
        let proof = counterparty
            .prove(&path, Some(&packet_commitment(packet)), height)
            .await?;
        let r = self
            .send(P::recvPacketCall {
                m: P::MsgRecvPacket {
                    packet: packet.clone(),
                    proof,
                    proofHeight: sol_height(height),
                },
            })
            .await?;
        Ok(event::<P::WriteAcknowledgement>(&r, "WriteAcknowledgement")
            .ok()
            .map(|e| e.acknowledgement))
    }

    /// Acknowledges `packet` (sent here) with the counterparty's proof of `ack`.
    pub async fn acknowledge<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
        ack: &[u8],
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = packet_path(
            "acks",
            &packet.destinationPort,
            &packet.destinationChannel,
            packet.sequence,
        );
        let proof = counterparty
            .prove(&path, Some(&ack_commitment(ack)), height)
            .await?;
        self.send(P::acknowledgePacketCall {
            m: P::MsgAcknowledgement {
                packet: packet.clone(),
                acknowledgement: Bytes::copy_from_slice(ack),
                proof,
                proofHeight: sol_height(height),
            },
        })
        .await
    }

    /// Times `packet` (sent here, unordered channel) out with the counterparty's proof that it
    /// holds no receipt.
    pub async fn timeout<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = packet_path(
            "receipts",
            &packet.destinationPort,
            &packet.destinationChannel,
            packet.sequence,
        );
        let proof = counterparty.prove(&path, None, height).await?;
        self.send(P::timeoutPacketCall {
            m: P::MsgTimeout {
                packet: packet.clone(),
                proof,
                proofHeight: sol_height(height),
                nextSequenceRecv: 0,
            },
        })
        .await
    }

    /// Times `packet` (sent here) out because its destination channel is closed: the
    /// counterparty proves `closed_end` (its channel end, CLOSED) and that it holds no receipt.
    pub async fn timeout_on_close<Q: Prover>(
        &self,
        counterparty: &Q,
        packet: &Packet,
        closed_end: &[u8],
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let receipt_path = packet_path(
            "receipts",
            &packet.destinationPort,
            &packet.destinationChannel,
            packet.sequence,
        );
        let proof_unreceived = counterparty.prove(&receipt_path, None, height).await?;
        let channel_path = format!(
            "channelEnds/ports/{}/channels/{}",
            packet.destinationPort, packet.destinationChannel
        );
        let proof_close = counterparty
            .prove(&channel_path, Some(closed_end), height)
            .await?;
        self.send(P::timeoutOnCloseCall {
            m: P::MsgTimeoutOnClose {
                packet: packet.clone(),
                proofUnreceived: proof_unreceived,
                proofClose: proof_close,
                proofHeight: sol_height(height),
                nextSequenceRecv: 0,
            },
        })
        .await
    }

    /// Closes this end of `port`/`channel` after the counterparty closed its end, proven as
    /// `closed_end` at `counterparty_port`/`counterparty_channel`.
    pub async fn close_confirm<Q: Prover>(
        &self,
        counterparty: &Q,
        port: &str,
        channel: &str,
        counterparty_port: &str,
        counterparty_channel: &str,
        closed_end: &[u8],
    ) -> Result<Receipt, IbcError> {
        let height = self.sync_client(counterparty).await?;
        let path = format!("channelEnds/ports/{counterparty_port}/channels/{counterparty_channel}");
        let proof = counterparty.prove(&path, Some(closed_end), height).await?;
        self.send(H::channelCloseConfirmCall {
            m: H::MsgChannelProof {
                portId: port.into(),
                channelId: channel.into(),
                proof,
                proofHeight: H::Height {
                    revisionNumber: height.revision_number,
                    revisionHeight: height.revision_height,
                },
            },
        })
        .await
    }

    /// Sends a raw handshake call (built with the handler's ABI) and returns the receipt.
    pub async fn handshake_call<T: SolCall>(&self, call: T) -> Result<Receipt, IbcError> {
        self.send(call).await
    }
}

impl Chain for EvmEnd {
    async fn head(&self) -> Result<(u64, u64), IbcError> {
        let block: serde_json::Value = self
            .submitter
            .rpc()
            .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
            .await?;
        let n = block.get("number").and_then(quantity).unwrap_or(0);
        let t = block.get("timestamp").and_then(quantity).unwrap_or(0);
        Ok((n, t.saturating_mul(1_000_000_000)))
    }

    async fn holds(&self, path: &str, commitment: &[u8]) -> Result<bool, IbcError> {
        EvmEnd::holds(self, path, commitment).await
    }

    async fn has(&self, path: &str) -> Result<bool, IbcError> {
        Ok(self.stored(path).await? != B256::ZERO)
    }

    async fn client_latest(&self) -> Result<IbcHeight, IbcError> {
        EvmEnd::client_latest(self).await
    }

    fn client_id(&self) -> &str {
        &self.client_id
    }

    async fn handshake(
        &self,
        update: Option<Bytes>,
        step: HandshakeStep,
    ) -> Result<Option<String>, IbcError> {
        use kh_contracts::IBCConnection as C;
        if let Some(message) = update {
            self.update_client(message).await?;
        }
        let ch = |h: IbcHeight| C::Height {
            revisionNumber: h.revision_number,
            revisionHeight: h.revision_height,
        };
        let hh = |h: IbcHeight| H::Height {
            revisionNumber: h.revision_number,
            revisionHeight: h.revision_height,
        };
        let prefix = Bytes::from_static(crate::handshake::PREFIX);
        Ok(match step {
            HandshakeStep::ConnOpenInit {
                counterparty_client,
            } => {
                let r = self
                    .send(C::connectionOpenInitCall {
                        m: C::MsgConnectionOpenInit {
                            clientId: self.client_id.clone(),
                            counterpartyClientId: counterparty_client,
                            counterpartyPrefix: prefix,
                            delayPeriod: 0,
                        },
                    })
                    .await?;
                Some(event::<C::ConnectionOpenInit>(&r, "ConnectionOpenInit")?.connectionId)
            }
            HandshakeStep::ConnOpenTry {
                counterparty_client,
                counterparty_connection,
                proof_init,
                proof_height,
            } => {
                let r = self
                    .send(C::connectionOpenTryCall {
                        m: C::MsgConnectionOpenTry {
                            clientId: self.client_id.clone(),
                            counterpartyClientId: counterparty_client,
                            counterpartyConnectionId: counterparty_connection,
                            counterpartyPrefix: prefix,
                            delayPeriod: 0,
                            proofInit: proof_init,
                            proofHeight: ch(proof_height),
                        },
                    })
                    .await?;
                Some(event::<C::ConnectionOpenTry>(&r, "ConnectionOpenTry")?.connectionId)
            }
            HandshakeStep::ConnOpenAck {
                connection,
                counterparty_connection,
                proof_try,
                proof_height,
            } => {
                self.send(C::connectionOpenAckCall {
                    m: C::MsgConnectionOpenAck {
                        connectionId: connection,
                        counterpartyConnectionId: counterparty_connection,
                        proofTry: proof_try,
                        proofHeight: ch(proof_height),
                    },
                })
                .await?;
                None
            }
            HandshakeStep::ConnOpenConfirm {
                connection,
                proof_ack,
                proof_height,
            } => {
                self.send(C::connectionOpenConfirmCall {
                    m: C::MsgConnectionOpenConfirm {
                        connectionId: connection,
                        proofAck: proof_ack,
                        proofHeight: ch(proof_height),
                    },
                })
                .await?;
                None
            }
            HandshakeStep::ChanOpenInit {
                port,
                ordering,
                connection,
                counterparty_port,
                version,
            } => {
                let r = self
                    .send(H::channelOpenInitCall {
                        m: H::MsgChannelOpenInit {
                            portId: port,
                            ordering: ordering as u8,
                            connectionId: connection,
                            counterpartyPortId: counterparty_port,
                            version,
                        },
                    })
                    .await?;
                Some(event::<H::ChannelOpenInit>(&r, "ChannelOpenInit")?.channelId)
            }
            HandshakeStep::ChanOpenTry {
                port,
                ordering,
                connection,
                counterparty_port,
                counterparty_channel,
                version,
                proof_init,
                proof_height,
            } => {
                let r = self
                    .send(H::channelOpenTryCall {
                        m: H::MsgChannelOpenTry {
                            portId: port,
                            ordering: ordering as u8,
                            connectionId: connection,
                            counterpartyPortId: counterparty_port,
                            counterpartyChannelId: counterparty_channel,
                            counterpartyVersion: version,
                            proofInit: proof_init,
                            proofHeight: hh(proof_height),
                        },
                    })
                    .await?;
                Some(event::<H::ChannelOpenTry>(&r, "ChannelOpenTry")?.channelId)
            }
            HandshakeStep::ChanOpenAck {
                port,
                channel,
                counterparty_channel,
                version,
                proof_try,
                proof_height,
            } => {
                self.send(H::channelOpenAckCall {
                    m: H::MsgChannelOpenAck {
                        portId: port,
                        channelId: channel,
                        counterpartyChannelId: counterparty_channel,
                        counterpartyVersion: version,
                        proofTry: proof_try,
                        proofHeight: hh(proof_height),
                    },
                })
                .await?;
                None
            }
            HandshakeStep::ChanOpenConfirm {
                port,
                channel,
                proof_ack,
                proof_height,
            } => {
                self.send(H::channelOpenConfirmCall {
                    m: H::MsgChannelProof {
                        portId: port,
                        channelId: channel,
                        proof: proof_ack,
                        proofHeight: hh(proof_height),
                    },
                })
                .await?;
                None
            }
        })
    }

    async fn submit(&self, datagrams: Vec<Datagram>) -> Result<(), IbcError> {
        // The handler's `multicall` takes several messages in one transaction: a client update
        // and the messages its height makes provable go together, atomically. At most
        // `max_messages_per_tx` messages per transaction: a larger batch is cut, the first
        // transaction carries the update and is confirmed before the others, which go out at
        // once (the submitter numbers them) and are confirmed together (on an ordered channel
        // a later transaction can then be refused for a sequence not yet received: the relay
        // retries that step). A single call is sent as itself.
        let calls: Vec<Bytes> = datagrams.into_iter().map(|d| self.encode(d)).collect();
        let (update, messages) = match calls.split_first() {
            Some((first, rest)) if first.starts_with(&IBCClient::updateClientCall::SELECTOR) => {
                (Some(first.clone()), rest)
            }
            _ => (None, calls.as_slice()),
        };
        let offset = usize::from(update.is_some());
        let per_tx = self.submitter.policy().max_messages_per_tx.max(1);
        let mut chunks = messages.chunks(per_tx);
        let mut first: Vec<Bytes> = update.into_iter().collect();
        first.extend(chunks.next().unwrap_or_default().iter().cloned());
        if !first.is_empty() {
            self.send_batch(first, 0).await?;
        }
        let rest = futures::future::join_all(
            chunks
                .enumerate()
                .map(|(i, chunk)| self.send_batch(chunk.to_vec(), offset + (i + 1) * per_tx)),
        )
        .await;
        rest.into_iter().collect()
    }
}

impl EvmEnd {
    /// The handler calldata of `datagram`.
    fn encode(&self, datagram: Datagram) -> Bytes {
        let data = match datagram {
            Datagram::UpdateClient(message) => IBCClient::updateClientCall {
                clientId: self.client_id.clone(),
                clientMessage: message,
            }
            .abi_encode(),
            Datagram::RecvPacket {
                packet,
                proof,
                proof_height,
            } => P::recvPacketCall {
                m: P::MsgRecvPacket {
                    packet,
                    proof,
                    proofHeight: sol_height(proof_height),
                },
            }
            .abi_encode(),
            Datagram::Acknowledge {
                packet,
                ack,
                proof,
                proof_height,
            } => P::acknowledgePacketCall {
                m: P::MsgAcknowledgement {
                    packet,
                    acknowledgement: ack,
                    proof,
                    proofHeight: sol_height(proof_height),
                },
            }
            .abi_encode(),
            Datagram::Timeout {
                packet,
                proof,
                proof_height,
            } => P::timeoutPacketCall {
                m: P::MsgTimeout {
                    packet,
                    proof,
                    proofHeight: sol_height(proof_height),
                    nextSequenceRecv: 0,
                },
            }
            .abi_encode(),
        };
        Bytes::from(data)
    }

    /// Sends handler calls `calls` (the datagrams from position `base` of the submitted ones)
    /// in one transaction: the call itself when there is one, else a `multicall`. A multicall
    /// whose gas would not fit in a block is halved (the halves in order, the first confirmed
    /// before the second is estimated). A refused element (or single call) is reported as
    /// [`IbcError::Refused`] with its position in the submitted datagrams.
    fn send_batch(
        &self,
        calls: Vec<Bytes>,
        base: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), IbcError>> + Send + '_>>
    {
        Box::pin(async move {
            if calls.len() == 1 {
                let data = calls.into_iter().next().unwrap_or_default();
                return match self.submitter.submit(self.handler, data).await {
                    Ok(_) => Ok(()),
                    Err(SubmitError::Reverted {
                        data: Some(data), ..
                    }) => Err(IbcError::Refused {
                        index: base,
                        reason: describe_revert(&data),
                    }),
                    Err(e) => Err(e.into()),
                };
            }
            let count = calls.len();
            let data = Bytes::from(
                IBCHandler::multicallCall {
                    data: calls.clone(),
                }
                .abi_encode(),
            );
            let estimate = self
                .submitter
                .estimate(self.handler, &data)
                .await
                .map_err(|e| refused(e, base))?;
            let limit = self.submitter.block_gas_limit().await?;
            if self.submitter.gas_limit_for(estimate) > limit {
                let mid = count / 2;
                debug!(
                    count,
                    estimate, limit, "multicall over the block gas limit: halved"
                );
                let mut calls = calls;
                let second = calls.split_off(mid);
                self.send_batch(calls, base).await?;
                return self.send_batch(second, base + mid).await;
            }
            self.submitter
                .submit_estimated(self.handler, data, estimate)
                .await
                .map_err(|e| refused(e, base))?;
            debug!(count, estimate, "multicall confirmed");
            Ok(())
        })
    }
}

/// A multicall's refusal as [`IbcError::Refused`] (the element's position plus `base`, its
/// revert decoded); other failures unchanged.
fn refused(e: SubmitError, base: usize) -> IbcError {
    if let SubmitError::Reverted {
        data: Some(data), ..
    } = &e
        && let Ok(failed) = IBCHandler::IBCMulticallFailed::abi_decode(data)
    {
        let index = usize::try_from(failed.index)
            .unwrap_or(usize::MAX)
            .saturating_add(base);
        return IbcError::Refused {
            index,
            reason: describe_revert(&failed.reason),
        };
    }
    e.into()
}

/// A revert's data as text: `Error(string)`'s message, the handler's or the LCP client's
/// custom error by name, else hex.
pub fn describe_revert(data: &[u8]) -> String {
    use alloy_sol_types::SolInterface;
    if let Ok(r) = alloy_sol_types::Revert::abi_decode(data) {
        return r.reason;
    }
    if let Ok(e) = P::IBCChannelPacketErrors::abi_decode(data) {
        return format!("{e:?}");
    }
    if let Ok(e) = IBCClient::IBCClientErrors::abi_decode(data) {
        return format!("{e:?}");
    }
    if let Ok(e) = LCPClient::LCPClientErrors::abi_decode(data) {
        return format!("{e:?}");
    }
    if data.is_empty() {
        return "no revert data (out of gas?)".into();
    }
    format!("custom error 0x{}", alloy_primitives::hex::encode(data))
}

/// The first log of `receipt` that decodes as `E`.
pub fn event<E: SolEvent>(receipt: &Receipt, name: &'static str) -> Result<E, IbcError> {
    receipt
        .logs
        .iter()
        .filter(|l| l.topics.first() == Some(&E::SIGNATURE_HASH))
        .find_map(|l| E::decode_raw_log(l.topics.iter().copied(), &l.data).ok())
        .ok_or(IbcError::MissingEvent(name))
}

/// Re-exported handshake ABIs for building the calls.
pub mod abi {
    pub use kh_contracts::{
        IBCChannelHandshake as Channel, IBCChannelPacket as Packet, IBCClient as Client,
        IBCConnection as Connection,
    };
}
