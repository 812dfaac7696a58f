//! `kakehashi ledger ... ibc proof|query`: the ledger's IBC store read through a node's
//! `IbcProof` RPC, every answer checked against the network's notary key and the operators the
//! host state names before it is shown.

use anyhow::bail;
use clap::Subcommand;
use kh_ledger_node::{RpcClient, proto};
use prost::Message;
use serde_json::{Value, json};

/// What `ibc query` reads (at the latest host height unless `--height` says otherwise).
#[derive(Debug, Subcommand)]
pub(crate) enum IbcQuery {
    /// A client state (`clients/ID/clientState`).
    Client {
        /// Client identifier (e.g. kh-ledger-0).
        client_id: String,
    },
    /// A connection end (`connections/ID`).
    Connection {
        /// Connection identifier (e.g. connection-0).
        connection_id: String,
    },
    /// A channel end (`channelEnds/ports/PORT/channels/CHANNEL`).
    Channel {
        /// Port identifier (e.g. ping).
        port: String,
        /// Channel identifier (e.g. channel-0).
        channel: String,
    },
    /// A packet commitment (`commitments/ports/PORT/channels/CHANNEL/sequences/SEQ`).
    PacketCommitment {
        /// Port identifier.
        port: String,
        /// Channel identifier.
        channel: String,
        /// Packet sequence.
        sequence: u64,
    },
}

/// A value of the store, proven: the node's answer after the proof checked out.
pub(crate) struct Proven {
    pub(crate) height: u64,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) json: Value,
}

/// Fetches `path` at `height` (0: the node's latest) and checks the proof.
pub(crate) async fn proven(
    rpc: &mut RpcClient,
    notary: kh_ledger::PublicKey,
    path: &str,
    height: u64,
) -> anyhow::Result<Proven> {
    let r = rpc
        .ibc_proof(proto::IbcProofRequest {
            path: path.as_bytes().to_vec(),
            height,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let proof = kh_ibc_ledger::LedgerProof::from_bytes(&r.proof)?;
    let host = proof.host.claimed_state()?;
    let trust = kh_ibc_ledger::HostTrust {
        notary,
        operators: host.operators.clone(),
    };
    let verified = if r.exists {
        proof.verify_membership(&trust, host.height, path.as_bytes(), &r.value)
    } else {
        proof.verify_non_membership(&trust, host.height, path.as_bytes())
    };
    if let Err(e) = &verified {
        bail!("the node's proof does not verify: {e}");
    }
    let json = json!({
        "path": path,
        "height": host.height,
        "exists": r.exists,
        "value": hex::encode(&r.value),
        "store_root": hex::encode(host.store_root),
        "host_tx_id": r.host_tx_id,
        "operators": host.operators.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "verified": true,
        "proof": hex::encode(&r.proof),
    });
    Ok(Proven {
        height: host.height,
        value: r.exists.then_some(r.value),
        json,
    })
}

fn decoded(query: &IbcQuery, bytes: &[u8]) -> anyhow::Result<Value> {
    use ibc_proto::ibc::core::channel::v1 as chan;
    use ibc_proto::ibc::core::connection::v1 as conn;
    Ok(match query {
        IbcQuery::Client { .. } => {
            let any = ibc_proto::google::protobuf::Any::decode(bytes)?;
            let mut out = json!({"type_url": any.type_url});
            if let Ok(kh_ibc_ledger::AnyClientState::Ledger(c)) =
                kh_ibc_ledger::AnyClientState::try_from(any)
            {
                out["chain_id"] = c.chain_id.into();
                out["latest_height"] = c.inner.latest_height.into();
                out["frozen"] = c.inner.frozen.into();
                out["notary"] = c.inner.trust.notary.to_string().into();
                out["operators"] = c
                    .inner
                    .trust
                    .operators
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .into();
            }
            out
        }
        IbcQuery::Connection { .. } => {
            let c = conn::ConnectionEnd::decode(bytes)?;
            let cp = c.counterparty.unwrap_or_default();
            json!({
                "state": conn::State::try_from(c.state).map(|s| s.as_str_name()).unwrap_or("?"),
                "client_id": c.client_id,
                "counterparty": {"client_id": cp.client_id, "connection_id": cp.connection_id},
                "versions": c.versions.iter().map(|v| json!({"identifier": v.identifier, "features": v.features})).collect::<Vec<_>>(),
                "delay_period": c.delay_period,
            })
        }
        IbcQuery::Channel { .. } => {
            let c = chan::Channel::decode(bytes)?;
            let cp = c.counterparty.unwrap_or_default();
            json!({
                "state": chan::State::try_from(c.state).map(|s| s.as_str_name()).unwrap_or("?"),
                "ordering": chan::Order::try_from(c.ordering).map(|o| o.as_str_name()).unwrap_or("?"),
                "counterparty": {"port_id": cp.port_id, "channel_id": cp.channel_id},
                "connection_hops": c.connection_hops,
                "version": c.version,
            })
        }
        IbcQuery::PacketCommitment { .. } => json!({"commitment": hex::encode(bytes)}),
    })
}

/// `ibc query`: the ICS-24 path of `query`, proven, with its value decoded.
pub(crate) async fn query(
    rpc: &mut RpcClient,
    notary: kh_ledger::PublicKey,
    query: IbcQuery,
    height: u64,
) -> anyhow::Result<Value> {
    let path = match &query {
        IbcQuery::Client { client_id } => format!("clients/{client_id}/clientState"),
        IbcQuery::Connection { connection_id } => format!("connections/{connection_id}"),
        IbcQuery::Channel { port, channel } => {
            format!("channelEnds/ports/{port}/channels/{channel}")
        }
        IbcQuery::PacketCommitment {
            port,
            channel,
            sequence,
        } => format!("commitments/ports/{port}/channels/{channel}/sequences/{sequence}"),
    };
    let p = proven(rpc, notary, &path, height).await?;
    let Some(bytes) = p.value else {
        bail!("nothing at {path} at host height {}", p.height);
    };
    let mut out = decoded(&query, &bytes)?;
    out["path"] = path.into();
    out["height"] = p.height.into();
    out["verified"] = true.into();
    out["host_tx_id"] = p.json["host_tx_id"].clone();
    Ok(out)
}
