//! The connection handshake's TRY and ACK steps as ibc-go (v9 and later) validates them.
//!
//! ibc-rs 0.57 still checks, in `ConnectionOpenTry` and `ConnectionOpenAck`, that the
//! counterparty's client of this ledger describes this ledger (`validate_self_client`) and
//! proves that client state and the consensus state it holds of this ledger. ibc-go dropped
//! those checks, and so does the EVM handler: a counterparty whose client of this ledger is an
//! LCP client (which holds LCP's state ids, not this ledger's consensus states) could never pass
//! them. The host validates these two steps here — the counterparty's connection end proven at
//! a consensus state of an active client, the version supported, the state machine — and then
//! lets ibc-rs execute them. The client-state and consensus-state fields of the messages are
//! not used.

use ibc_core::client::context::ClientValidationContext;
use ibc_core::client::context::client_state::{ClientStateCommon, ClientStateValidation};
use ibc_core::client::context::consensus_state::ConsensusState;
use ibc_core::connection::types::msgs::{MsgConnectionOpenAck, MsgConnectionOpenTry};
use ibc_core::connection::types::{ConnectionEnd, Counterparty, State};
use ibc_core::host::ValidationContext;
use ibc_core::host::types::path::{ClientConsensusStatePath, ConnectionPath, Path};
use ibc_core::primitives::proto::Protobuf;

use crate::ctx::IbcCtx;

/// Validates `ConnectionOpenTry` on this host (as ibc-go v9 does).
pub fn validate_open_try(ctx: &IbcCtx, msg: &MsgConnectionOpenTry) -> Result<(), String> {
    let conn_id_on_a = msg
        .counterparty
        .connection_id()
        .ok_or("the counterparty has no connection id")?;
    // The version this host will pick must exist among the counterparty's.
    ctx.pick_version(&msg.versions_on_a)
        .map_err(|e| e.to_string())?;
    let client_ctx = ctx.get_client_validation_context();
    let client = client_ctx
        .client_state(&msg.client_id_on_b)
        .map_err(|e| e.to_string())?;
    client
        .status(client_ctx, &msg.client_id_on_b)
        .map_err(|e| e.to_string())?
        .verify_is_active()
        .map_err(|e| e.to_string())?;
    client
        .validate_proof_height(msg.proofs_height_on_a)
        .map_err(|e| e.to_string())?;
    let consensus = client_ctx
        .consensus_state(&ClientConsensusStatePath::new(
            msg.client_id_on_b.clone(),
            msg.proofs_height_on_a.revision_number(),
            msg.proofs_height_on_a.revision_height(),
        ))
        .map_err(|e| e.to_string())?;
    let expected = ConnectionEnd::new(
        State::Init,
        msg.counterparty.client_id().clone(),
        Counterparty::new(msg.client_id_on_b.clone(), None, ctx.commitment_prefix()),
        msg.versions_on_a.clone(),
        msg.delay_period,
    )
    .map_err(|e| e.to_string())?;
    client
        .verify_membership(
            msg.counterparty.prefix(),
            &msg.proof_conn_end_on_a,
            consensus.root(),
            Path::Connection(ConnectionPath::new(conn_id_on_a)),
            expected.encode_vec(),
        )
        .map_err(|e| e.to_string())
}

/// Validates `ConnectionOpenAck` on this host (as ibc-go v9 does).
pub fn validate_open_ack(ctx: &IbcCtx, msg: &MsgConnectionOpenAck) -> Result<(), String> {
    let end = ctx
        .connection_end(&msg.conn_id_on_a)
        .map_err(|e| e.to_string())?;
    end.verify_state_matches(&State::Init)
        .map_err(|e| e.to_string())?;
    msg.version
        .verify_is_supported(end.versions())
        .map_err(|e| e.to_string())?;
    let client_ctx = ctx.get_client_validation_context();
    let client_id = end.client_id();
    let client = client_ctx
        .client_state(client_id)
        .map_err(|e| e.to_string())?;
    client
        .status(client_ctx, client_id)
        .map_err(|e| e.to_string())?
        .verify_is_active()
        .map_err(|e| e.to_string())?;
    client
        .validate_proof_height(msg.proofs_height_on_b)
        .map_err(|e| e.to_string())?;
    let consensus = client_ctx
        .consensus_state(&ClientConsensusStatePath::new(
            client_id.clone(),
            msg.proofs_height_on_b.revision_number(),
            msg.proofs_height_on_b.revision_height(),
        ))
        .map_err(|e| e.to_string())?;
    let expected = ConnectionEnd::new(
        State::TryOpen,
        end.counterparty().client_id().clone(),
        Counterparty::new(
            client_id.clone(),
            Some(msg.conn_id_on_a.clone()),
            ctx.commitment_prefix(),
        ),
        vec![msg.version.clone()],
        end.delay_period(),
    )
    .map_err(|e| e.to_string())?;
    client
        .verify_membership(
            end.counterparty().prefix(),
            &msg.proof_conn_end_on_b,
            consensus.root(),
            Path::Connection(ConnectionPath::new(&msg.conn_id_on_b)),
            expected.encode_vec(),
        )
        .map_err(|e| e.to_string())
}
