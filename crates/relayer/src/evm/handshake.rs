//! Connection and channel handshakes between two EVM handlers (ICS-03, ICS-04), each step's
//! proof made by the other chain's [`Prover`] of exactly the end the step expects there (the
//! ibc-go protobuf encoding the handler commits). The identifiers come from the handler's
//! events, so the ends of `a` and `b` learn their connection and channel ids as they go.

use alloy_primitives::Bytes;
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use kh_contracts::{IBCChannelHandshake as H, IBCConnection as C};
use prost::Message;

use super::ibc::{EvmEnd, IbcError, IbcHeight, Prover, event};

/// The commitment prefix of our handlers' stores.
pub const PREFIX: &[u8] = b"ibc";

/// What a handshake established on one end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndIds {
    /// The connection.
    pub connection_id: String,
    /// The channel (after the channel handshake).
    pub channel_id: String,
}

fn h(height: IbcHeight) -> C::Height {
    C::Height {
        revisionNumber: height.revision_number,
        revisionHeight: height.revision_height,
    }
}

fn hc(height: IbcHeight) -> H::Height {
    H::Height {
        revisionNumber: height.revision_number,
        revisionHeight: height.revision_height,
    }
}

/// The ibc-go ConnectionEnd a handler commits.
pub fn connection_end(
    client_id: &str,
    state: conn::State,
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

/// The ibc-go Channel a handler commits.
pub fn channel_end(
    state: chan::State,
    ordering: chan::Order,
    counterparty_port: &str,
    counterparty_channel: &str,
    connection: &str,
    version: &str,
) -> Vec<u8> {
    chan::Channel {
        state: state as i32,
        ordering: ordering as i32,
        counterparty: Some(chan::Counterparty {
            port_id: counterparty_port.into(),
            channel_id: counterparty_channel.into(),
        }),
        connection_hops: vec![connection.into()],
        version: version.into(),
        upgrade_sequence: 0,
    }
    .encode_to_vec()
}

/// The four connection steps, initiated on `a`; both ends' clients must exist.
pub async fn connect<Q: Prover>(
    a: &EvmEnd,
    prover_a: &Q,
    b: &EvmEnd,
    prover_b: &Q,
) -> Result<(String, String), IbcError> {
    let r = a
        .handshake_call(C::connectionOpenInitCall {
            m: C::MsgConnectionOpenInit {
                clientId: a.client_id.clone(),
                counterpartyClientId: b.client_id.clone(),
                counterpartyPrefix: Bytes::from_static(PREFIX),
                delayPeriod: 0,
            },
        })
        .await?;
    let conn_a = event::<C::ConnectionOpenInit>(&r, "ConnectionOpenInit")?.connectionId;

    let height = b.sync_client(prover_a).await?;
    let init = connection_end(&a.client_id, conn::State::Init, &b.client_id, "");
    let proof = prover_a
        .prove(&format!("connections/{conn_a}"), Some(&init), height)
        .await?;
    let r = b
        .handshake_call(C::connectionOpenTryCall {
            m: C::MsgConnectionOpenTry {
                clientId: b.client_id.clone(),
                counterpartyClientId: a.client_id.clone(),
                counterpartyConnectionId: conn_a.clone(),
                counterpartyPrefix: Bytes::from_static(PREFIX),
                delayPeriod: 0,
                proofInit: proof,
                proofHeight: h(height),
            },
        })
        .await?;
    let conn_b = event::<C::ConnectionOpenTry>(&r, "ConnectionOpenTry")?.connectionId;

    let height = a.sync_client(prover_b).await?;
    let tryopen = connection_end(&b.client_id, conn::State::Tryopen, &a.client_id, &conn_a);
    let proof = prover_b
        .prove(&format!("connections/{conn_b}"), Some(&tryopen), height)
        .await?;
    a.handshake_call(C::connectionOpenAckCall {
        m: C::MsgConnectionOpenAck {
            connectionId: conn_a.clone(),
            counterpartyConnectionId: conn_b.clone(),
            proofTry: proof,
            proofHeight: h(height),
        },
    })
    .await?;

    let height = b.sync_client(prover_a).await?;
    let open = connection_end(&a.client_id, conn::State::Open, &b.client_id, &conn_b);
    let proof = prover_a
        .prove(&format!("connections/{conn_a}"), Some(&open), height)
        .await?;
    b.handshake_call(C::connectionOpenConfirmCall {
        m: C::MsgConnectionOpenConfirm {
            connectionId: conn_b.clone(),
            proofAck: proof,
            proofHeight: h(height),
        },
    })
    .await?;
    Ok((conn_a, conn_b))
}

/// A channel to open between `port_a` on `a` and `port_b` on `b`.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// The connection on `a`.
    pub connection_a: String,
    /// The connection on `b`.
    pub connection_b: String,
    /// The port on `a`.
    pub port_a: String,
    /// The port on `b`.
    pub port_b: String,
    /// Ordered or unordered.
    pub ordering: chan::Order,
    /// The app version both apps agree on.
    pub version: String,
}

/// The four channel steps, initiated on `a`; returns the channel ids on `a` and `b`.
pub async fn open_channel<Q: Prover>(
    a: &EvmEnd,
    prover_a: &Q,
    b: &EvmEnd,
    prover_b: &Q,
    spec: &ChannelSpec,
) -> Result<(String, String), IbcError> {
    let order = spec.ordering as u8;
    let r = a
        .handshake_call(H::channelOpenInitCall {
            m: H::MsgChannelOpenInit {
                portId: spec.port_a.clone(),
                ordering: order,
                connectionId: spec.connection_a.clone(),
                counterpartyPortId: spec.port_b.clone(),
                version: spec.version.clone(),
            },
        })
        .await?;
    let chan_a = event::<H::ChannelOpenInit>(&r, "ChannelOpenInit")?.channelId;

    let height = b.sync_client(prover_a).await?;
    let init = channel_end(
        chan::State::Init,
        spec.ordering,
        &spec.port_b,
        "",
        &spec.connection_a,
        &spec.version,
    );
    let path = format!("channelEnds/ports/{}/channels/{chan_a}", spec.port_a);
    let proof = prover_a.prove(&path, Some(&init), height).await?;
    let r = b
        .handshake_call(H::channelOpenTryCall {
            m: H::MsgChannelOpenTry {
                portId: spec.port_b.clone(),
                ordering: order,
                connectionId: spec.connection_b.clone(),
                counterpartyPortId: spec.port_a.clone(),
                counterpartyChannelId: chan_a.clone(),
                counterpartyVersion: spec.version.clone(),
                proofInit: proof,
                proofHeight: hc(height),
            },
        })
        .await?;
    let chan_b = event::<H::ChannelOpenTry>(&r, "ChannelOpenTry")?.channelId;

    let height = a.sync_client(prover_b).await?;
    let tryopen = channel_end(
        chan::State::Tryopen,
        spec.ordering,
        &spec.port_a,
        &chan_a,
        &spec.connection_b,
        &spec.version,
    );
    let path = format!("channelEnds/ports/{}/channels/{chan_b}", spec.port_b);
    let proof = prover_b.prove(&path, Some(&tryopen), height).await?;
    a.handshake_call(H::channelOpenAckCall {
        m: H::MsgChannelOpenAck {
            portId: spec.port_a.clone(),
            channelId: chan_a.clone(),
            counterpartyChannelId: chan_b.clone(),
            counterpartyVersion: spec.version.clone(),
            proofTry: proof,
            proofHeight: hc(height),
        },
    })
    .await?;

    let height = b.sync_client(prover_a).await?;
    let open = channel_end(
        chan::State::Open,
        spec.ordering,
        &spec.port_b,
        &chan_b,
        &spec.connection_a,
        &spec.version,
    );
    let path = format!("channelEnds/ports/{}/channels/{chan_a}", spec.port_a);
    let proof = prover_a.prove(&path, Some(&open), height).await?;
    b.handshake_call(H::channelOpenConfirmCall {
        m: H::MsgChannelProof {
            portId: spec.port_b.clone(),
            channelId: chan_b.clone(),
            proof,
            proofHeight: hc(height),
        },
    })
    .await?;
    Ok((chan_a, chan_b))
}
