//! Connection and channel handshakes (ICS-03, ICS-04) between any two chains of the path, each
//! step's proof made by the other chain's [`Prover`] of exactly the end the step expects there
//! (the ibc-go protobuf encoding both handlers commit). Identifiers come from the chains' own
//! answers (events), so each end learns its connection and channel ids as the steps go.

use alloy_primitives::Bytes;
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use prost::Message;

use crate::chain::{Chain, IbcError, IbcHeight, Prover};

/// One handshake step, with the counterparty's proof where the step needs one.
#[derive(Debug, Clone)]
pub enum HandshakeStep {
    /// ConnectionOpenInit on this chain's client.
    ConnOpenInit {
        /// The counterparty's client of this chain.
        counterparty_client: String,
    },
    /// ConnectionOpenTry.
    ConnOpenTry {
        /// The counterparty's client of this chain.
        counterparty_client: String,
        /// The counterparty's connection (INIT).
        counterparty_connection: String,
        /// Proof of the counterparty's INIT end.
        proof_init: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// ConnectionOpenAck.
    ConnOpenAck {
        /// This chain's connection.
        connection: String,
        /// The counterparty's connection (TRYOPEN).
        counterparty_connection: String,
        /// Proof of the counterparty's TRYOPEN end.
        proof_try: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// ConnectionOpenConfirm.
    ConnOpenConfirm {
        /// This chain's connection.
        connection: String,
        /// Proof of the counterparty's OPEN end.
        proof_ack: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// ChannelOpenInit.
    ChanOpenInit {
        /// This chain's port.
        port: String,
        /// Ordering.
        ordering: chan::Order,
        /// This chain's connection.
        connection: String,
        /// The counterparty's port.
        counterparty_port: String,
        /// The app version.
        version: String,
    },
    /// ChannelOpenTry.
    ChanOpenTry {
        /// This chain's port.
        port: String,
        /// Ordering.
        ordering: chan::Order,
        /// This chain's connection.
        connection: String,
        /// The counterparty's port.
        counterparty_port: String,
        /// The counterparty's channel (INIT).
        counterparty_channel: String,
        /// The app version.
        version: String,
        /// Proof of the counterparty's INIT end.
        proof_init: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// ChannelOpenAck.
    ChanOpenAck {
        /// This chain's port.
        port: String,
        /// This chain's channel.
        channel: String,
        /// The counterparty's channel (TRYOPEN).
        counterparty_channel: String,
        /// The app version.
        version: String,
        /// Proof of the counterparty's TRYOPEN end.
        proof_try: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
    /// ChannelOpenConfirm.
    ChanOpenConfirm {
        /// This chain's port.
        port: String,
        /// This chain's channel.
        channel: String,
        /// Proof of the counterparty's OPEN end.
        proof_ack: Bytes,
        /// Height of the proof.
        proof_height: IbcHeight,
    },
}

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

/// Brings `target`'s client of the prover's chain up to date: the client message (None: up to
/// date already) and the height proofs are to be made at.
async fn sync<C: Chain, Q: Prover>(
    target: &C,
    prover: &Q,
) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
    let trusted = target.client_latest().await?;
    prover.update(trusted).await
}

fn created(id: Option<String>, what: &'static str) -> Result<String, IbcError> {
    id.ok_or(IbcError::MissingEvent(what))
}

/// The four connection steps, initiated on `a`; both ends' clients must exist. Returns the
/// connection ids on `a` and `b`.
pub async fn connect<A: Chain, QA: Prover, B: Chain, QB: Prover>(
    a: &A,
    prover_a: &QA,
    b: &B,
    prover_b: &QB,
) -> Result<(String, String), IbcError> {
    let (client_a, client_b) = (a.client_id().to_string(), b.client_id().to_string());
    let conn_a = created(
        a.handshake(
            None,
            HandshakeStep::ConnOpenInit {
                counterparty_client: client_b.clone(),
            },
        )
        .await?,
        "ConnectionOpenInit",
    )?;

    let (update, height) = sync(b, prover_a).await?;
    let init = connection_end(&client_a, conn::State::Init, &client_b, "");
    let proof = prover_a
        .prove(&format!("connections/{conn_a}"), Some(&init), height)
        .await?;
    let conn_b = created(
        b.handshake(
            update,
            HandshakeStep::ConnOpenTry {
                counterparty_client: client_a.clone(),
                counterparty_connection: conn_a.clone(),
                proof_init: proof,
                proof_height: height,
            },
        )
        .await?,
        "ConnectionOpenTry",
    )?;

    let (update, height) = sync(a, prover_b).await?;
    let tryopen = connection_end(&client_b, conn::State::Tryopen, &client_a, &conn_a);
    let proof = prover_b
        .prove(&format!("connections/{conn_b}"), Some(&tryopen), height)
        .await?;
    a.handshake(
        update,
        HandshakeStep::ConnOpenAck {
            connection: conn_a.clone(),
            counterparty_connection: conn_b.clone(),
            proof_try: proof,
            proof_height: height,
        },
    )
    .await?;

    let (update, height) = sync(b, prover_a).await?;
    let open = connection_end(&client_a, conn::State::Open, &client_b, &conn_b);
    let proof = prover_a
        .prove(&format!("connections/{conn_a}"), Some(&open), height)
        .await?;
    b.handshake(
        update,
        HandshakeStep::ConnOpenConfirm {
            connection: conn_b.clone(),
            proof_ack: proof,
            proof_height: height,
        },
    )
    .await?;
    Ok((conn_a, conn_b))
}

/// The four channel steps, initiated on `a`; returns the channel ids on `a` and `b`.
pub async fn open_channel<A: Chain, QA: Prover, B: Chain, QB: Prover>(
    a: &A,
    prover_a: &QA,
    b: &B,
    prover_b: &QB,
    spec: &ChannelSpec,
) -> Result<(String, String), IbcError> {
    let chan_a = created(
        a.handshake(
            None,
            HandshakeStep::ChanOpenInit {
                port: spec.port_a.clone(),
                ordering: spec.ordering,
                connection: spec.connection_a.clone(),
                counterparty_port: spec.port_b.clone(),
                version: spec.version.clone(),
            },
        )
        .await?,
        "ChannelOpenInit",
    )?;

    let (update, height) = sync(b, prover_a).await?;
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
    let chan_b = created(
        b.handshake(
            update,
            HandshakeStep::ChanOpenTry {
                port: spec.port_b.clone(),
                ordering: spec.ordering,
                connection: spec.connection_b.clone(),
                counterparty_port: spec.port_a.clone(),
                counterparty_channel: chan_a.clone(),
                version: spec.version.clone(),
                proof_init: proof,
                proof_height: height,
            },
        )
        .await?,
        "ChannelOpenTry",
    )?;

    let (update, height) = sync(a, prover_b).await?;
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
    a.handshake(
        update,
        HandshakeStep::ChanOpenAck {
            port: spec.port_a.clone(),
            channel: chan_a.clone(),
            counterparty_channel: chan_b.clone(),
            version: spec.version.clone(),
            proof_try: proof,
            proof_height: height,
        },
    )
    .await?;

    let (update, height) = sync(b, prover_a).await?;
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
    b.handshake(
        update,
        HandshakeStep::ChanOpenConfirm {
            port: spec.port_b.clone(),
            channel: chan_b.clone(),
            proof_ack: proof,
            proof_height: height,
        },
    )
    .await?;
    Ok((chan_a, chan_b))
}
