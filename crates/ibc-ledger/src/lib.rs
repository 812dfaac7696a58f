//! The IBC host on the ledger (DESIGN §6).
//!
//! Owns: the ibc-rs validation and execution contexts over the host store ([`ctx`]), the
//! light clients the host runs as ibc-rs client types ([`client`]: `kh-ledger`, a counterparty
//! ledger, verified by the Ledger ELC of `kh-elc`; `lcp-client` ([`lcp_client`]), a counterparty
//! verified through LCP with `kh-lcp`'s client rules), the execution of a host transaction's IBC
//! messages and app packet sends ([`exec`]: ibc-rs `dispatch`, the router of port modules, the
//! messages contract), ledger apps on ports ([`ports`], the ping module [`ping`] and the ping app
//! [`ping_app`]), and the host as a ledger app ([`app`], [`flows`]: `ibc.host.genesis`,
//! `ibc.host.submit`, co-signing by re-execution, proofs served from each node's store).
//!
//! The host-state chain itself — host contract, JMT store, ledger proofs — is
//! `kh-ibc-host-chain`, re-exported here as [`host`], [`store`] and [`proof`].

pub mod app;
pub mod client;
pub mod conn;
pub mod ctx;
pub mod exec;
pub mod flows;
pub mod lcp_client;
pub mod ping;
pub mod ping_app;
pub mod ports;

pub use kh_ibc_host_chain::{host, proof, store};

pub use app::{APP_NAME, DEFAULT_CHAIN_ID, HostShared, IbcHostApp, ProofCheck};
pub use client::{
    AnyClientState, AnyConsensusState, LEDGER_CLIENT_TYPE, LedgerClientState, LedgerConsensusState,
    header_any,
};
pub use ctx::{COMMITMENT_PREFIX, HostEnv, IbcCtx, SharedStore, StoreAt, host_state_key};
pub use exec::{
    ExecError, Executed, HostEvent, HostMessage, MESSAGES_CONTRACT, MessagesCommand,
    MessagesContract, PortBinding, SendPacket, execute, host_events,
};
pub use flows::{GENESIS_FLOW, SUBMIT_FLOW, SubmitArgs, submit};
pub use kh_ibc_host_chain::{
    HOST_CONTRACT, HostCommand, HostContract, HostState, HostStateProof, HostStore, HostTrust,
    LedgerProof, MAX_HOST_WINDOW_MS, PreparedUpdate, ProofError, StoreError, Update, empty_root,
    host_contract_id, key_hash, verify_transition,
};
pub use lcp_client::{
    LCP_CLIENT_TYPE, LEDGER_ELC_MAX_CLOCK_DRIFT, LcpClientState, LcpConsensusState,
    ledger_elc_client_state,
};
pub use ping::{PING_PORT, PING_VERSION, PingModule, pong};
pub use ping_app::{PING_APP, PING_SEND_FLOW, PingApp, PingArgs};
pub use ports::{PacketEvent, PortApp, packet_events};

/// The latest height (revision number, height) of a stored client state — the protobuf `Any`
/// bytes at `clients/{id}/clientState` — whatever its client type.
pub fn client_latest_height(client_state: &[u8]) -> Result<(u64, u64), String> {
    use ibc_core::client::context::client_state::ClientStateCommon;
    use prost::Message;
    let any = ibc_core::primitives::proto::Any::decode(client_state).map_err(|e| e.to_string())?;
    let state = AnyClientState::try_from(any).map_err(|e| e.to_string())?;
    let h = state.latest_height();
    Ok((h.revision_number(), h.revision_height()))
}
