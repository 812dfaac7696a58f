//! Connection and channel handshakes between two ledgers, message by message, and packet
//! relaying (the relayer's part, with proofs from the other side's node).
#![allow(dead_code, unreachable_pub, deprecated, clippy::unwrap_used)]

use ibc_core::primitives::proto::Any;
use ibc_proto::ibc::core::channel::v1 as chan;
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use prost::Message;

use super::{CLIENT_0, Relay, SIGNER, any, h, with_update};

pub const CONN_0: &str = "connection-0";
pub const PING: &str = "ping";

fn prefix() -> Option<MerklePrefix> {
    Some(MerklePrefix {
        key_prefix: b"ibc".to_vec(),
    })
}

fn version() -> conn::Version {
    conn::Version {
        identifier: "1".into(),
        features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
    }
}

pub fn conn_open_init() -> Any {
    any(&conn::MsgConnectionOpenInit {
        client_id: CLIENT_0.into(),
        counterparty: Some(conn::Counterparty {
            client_id: CLIENT_0.into(),
            connection_id: String::new(),
            prefix: prefix(),
        }),
        version: None,
        delay_period: 0,
        signer: SIGNER.into(),
    })
}

pub fn conn_open_confirm(proof: Vec<u8>, height: u64) -> Any {
    any(&conn::MsgConnectionOpenConfirm {
        connection_id: CONN_0.into(),
        proof_ack: proof,
        proof_height: h(height),
        signer: SIGNER.into(),
    })
}

/// The four connection steps: Init on A, Try on B, Ack on A, Confirm on B.
pub async fn open_connection(r: &mut Relay) {
    r.a.submit(vec![conn_open_init()]).await.unwrap();

    let (update, ha) = r.update_on_b().await;
    let key = format!("clients/{CLIENT_0}/clientState");
    let (client_state, proof_client) = r.a.proof(&key, ha).await;
    let (_, proof_init) = r.a.proof(&format!("connections/{CONN_0}"), ha).await;
    let consensus_height = super::client_latest(&r.a, CLIENT_0).await;
    let (_, proof_consensus) =
        r.a.proof(
            &format!("clients/{CLIENT_0}/consensusStates/0-{consensus_height}"),
            ha,
        )
        .await;
    let open_try = any(&conn::MsgConnectionOpenTry {
        client_id: CLIENT_0.into(),
        client_state: Some(Any::decode(client_state.unwrap().as_slice()).unwrap()),
        counterparty: Some(conn::Counterparty {
            client_id: CLIENT_0.into(),
            connection_id: CONN_0.into(),
            prefix: prefix(),
        }),
        delay_period: 0,
        counterparty_versions: vec![version()],
        proof_height: h(ha),
        proof_init,
        proof_client,
        proof_consensus,
        consensus_height: h(consensus_height),
        signer: SIGNER.into(),
        ..Default::default()
    });
    r.b.submit(with_update(update, open_try)).await.unwrap();

    let (update, hb) = r.update_on_a().await;
    let (client_state, proof_client) = r.b.proof(&key, hb).await;
    let (_, proof_try) = r.b.proof(&format!("connections/{CONN_0}"), hb).await;
    let consensus_height = super::client_latest(&r.b, CLIENT_0).await;
    let (_, proof_consensus) =
        r.b.proof(
            &format!("clients/{CLIENT_0}/consensusStates/0-{consensus_height}"),
            hb,
        )
        .await;
    let ack = any(&conn::MsgConnectionOpenAck {
        connection_id: CONN_0.into(),
        counterparty_connection_id: CONN_0.into(),
        version: Some(version()),
        client_state: Some(Any::decode(client_state.unwrap().as_slice()).unwrap()),
        proof_height: h(hb),
        proof_try,
        proof_client,
        proof_consensus,
        consensus_height: h(consensus_height),
        signer: SIGNER.into(),
        ..Default::default()
    });
    r.a.submit(with_update(update, ack)).await.unwrap();

    let (update, ha) = r.update_on_b().await;
    let (_, proof) = r.a.proof(&format!("connections/{CONN_0}"), ha).await;
    r.b.submit(with_update(update, conn_open_confirm(proof, ha)))
        .await
        .unwrap();
}

pub fn chan_key(channel: &str) -> String {
    format!("channelEnds/ports/{PING}/channels/{channel}")
}

/// The four channel steps on the ping ports (A: Init, Ack; B: Try, Confirm); returns the
/// channel id (the same on both sides: both ledgers open their channels in the same order).
pub async fn open_channel(r: &mut Relay, ordering: chan::Order) -> String {
    let channel_id = format!(
        "channel-{}",
        r.a.value("nextChannelSequence")
            .await
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
            .unwrap_or(0)
    );
    let end = |state: chan::State, counterparty_channel: &str| chan::Channel {
        state: state as i32,
        ordering: ordering as i32,
        counterparty: Some(chan::Counterparty {
            port_id: PING.into(),
            channel_id: counterparty_channel.into(),
        }),
        connection_hops: vec![CONN_0.into()],
        version: kh_ibc_ledger::PING_VERSION.into(),
        upgrade_sequence: 0,
    };
    r.a.submit(vec![any(&chan::MsgChannelOpenInit {
        port_id: PING.into(),
        channel: Some(end(chan::State::Init, "")),
        signer: SIGNER.into(),
    })])
    .await
    .unwrap();

    let (update, ha) = r.update_on_b().await;
    let (_, proof_init) = r.a.proof(&chan_key(&channel_id), ha).await;
    let open_try = any(&chan::MsgChannelOpenTry {
        port_id: PING.into(),
        previous_channel_id: String::new(),
        channel: Some(end(chan::State::Tryopen, &channel_id)),
        counterparty_version: kh_ibc_ledger::PING_VERSION.into(),
        proof_init,
        proof_height: h(ha),
        signer: SIGNER.into(),
    });
    r.b.submit(with_update(update, open_try)).await.unwrap();

    let (update, hb) = r.update_on_a().await;
    let (_, proof_try) = r.b.proof(&chan_key(&channel_id), hb).await;
    let ack = any(&chan::MsgChannelOpenAck {
        port_id: PING.into(),
        channel_id: channel_id.clone(),
        counterparty_channel_id: channel_id.clone(),
        counterparty_version: kh_ibc_ledger::PING_VERSION.into(),
        proof_try,
        proof_height: h(hb),
        signer: SIGNER.into(),
    });
    r.a.submit(with_update(update, ack)).await.unwrap();

    let (update, ha) = r.update_on_b().await;
    let (_, proof_ack) = r.a.proof(&chan_key(&channel_id), ha).await;
    let confirm = any(&chan::MsgChannelOpenConfirm {
        port_id: PING.into(),
        channel_id: channel_id.clone(),
        proof_ack,
        proof_height: h(ha),
        signer: SIGNER.into(),
    });
    r.b.submit(with_update(update, confirm)).await.unwrap();
    channel_id
}

/// A ping packet from A's ping port to B's.
pub fn packet(
    channel: &str,
    sequence: u64,
    data: &str,
    timeout_height: u64,
    timeout_ms: u64,
) -> chan::Packet {
    chan::Packet {
        sequence,
        source_port: PING.into(),
        source_channel: channel.into(),
        destination_port: PING.into(),
        destination_channel: channel.into(),
        data: data.as_bytes().to_vec(),
        timeout_height: h(timeout_height),
        timeout_timestamp: timeout_ms * 1_000_000,
    }
}

pub fn commitment_key(channel: &str, sequence: u64) -> String {
    format!("commitments/ports/{PING}/channels/{channel}/sequences/{sequence}")
}

pub fn ack_key(channel: &str, sequence: u64) -> String {
    format!("acks/ports/{PING}/channels/{channel}/sequences/{sequence}")
}

pub fn receipt_key(channel: &str, sequence: u64) -> String {
    format!("receipts/ports/{PING}/channels/{channel}/sequences/{sequence}")
}

/// `MsgRecvPacket` on B for `p`, proven at A's latest height (with B's client update).
pub async fn recv_on_b(r: &mut Relay, p: &chan::Packet) -> Vec<Any> {
    let (update, ha) = r.update_on_b().await;
    let (_, proof_commitment) =
        r.a.proof(&commitment_key(&p.source_channel, p.sequence), ha)
            .await;
    with_update(
        update,
        any(&chan::MsgRecvPacket {
            packet: Some(p.clone()),
            proof_commitment,
            proof_height: h(ha),
            signer: SIGNER.into(),
        }),
    )
}

/// `MsgAcknowledgement` on A for `p` with `ack`, proven at B's latest height.
pub async fn ack_on_a(r: &mut Relay, p: &chan::Packet, ack: &[u8]) -> Vec<Any> {
    let (update, hb) = r.update_on_a().await;
    let (_, proof_acked) =
        r.b.proof(&ack_key(&p.destination_channel, p.sequence), hb)
            .await;
    with_update(
        update,
        any(&chan::MsgAcknowledgement {
            packet: Some(p.clone()),
            acknowledgement: ack.to_vec(),
            proof_acked,
            proof_height: h(hb),
            signer: SIGNER.into(),
        }),
    )
}

/// `MsgTimeout` on A for `p`, proven (no receipt) at B's latest height.
pub async fn timeout_on_a(r: &mut Relay, p: &chan::Packet) -> Vec<Any> {
    let (update, hb) = r.update_on_a().await;
    let (_, proof_unreceived) =
        r.b.proof(&receipt_key(&p.destination_channel, p.sequence), hb)
            .await;
    with_update(
        update,
        any(&chan::MsgTimeout {
            packet: Some(p.clone()),
            proof_unreceived,
            proof_height: h(hb),
            next_sequence_recv: p.sequence,
            signer: SIGNER.into(),
        }),
    )
}
