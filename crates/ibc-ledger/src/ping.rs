//! The ping module: the IBC side of the ledger's ping app (port `ping`, version `ping-1`).
//!
//! On receiving a packet it acknowledges `pong:<data>`; acknowledgements and timeouts of the
//! pings it sent need nothing from it on the host (the app records them, see
//! [`crate::ping_app`]). Channels of any order are accepted, with version `ping-1`.

use ibc_core::channel::types::Version;
use ibc_core::channel::types::acknowledgement::Acknowledgement;
use ibc_core::channel::types::channel::{Counterparty, Order};
use ibc_core::channel::types::error::ChannelError;
use ibc_core::channel::types::packet::Packet;
use ibc_core::host::types::identifiers::{ChannelId, ConnectionId, PortId};
use ibc_core::primitives::Signer;
use ibc_core::router::module::Module;
use ibc_core::router::types::module::ModuleExtras;

/// The ping port.
pub const PING_PORT: &str = "ping";
/// The ping channel version.
pub const PING_VERSION: &str = "ping-1";

/// The acknowledgement of a ping carrying `data`.
pub fn pong(data: &[u8]) -> Vec<u8> {
    let mut ack = b"pong:".to_vec();
    ack.extend_from_slice(data);
    ack
}

/// The ping module.
#[derive(Debug, Default)]
pub struct PingModule;

fn check_version(version: &Version) -> Result<Version, ChannelError> {
    if version.as_str() != PING_VERSION && !version.as_str().is_empty() {
        return Err(ChannelError::InvalidState {
            expected: PING_VERSION.into(),
            actual: version.to_string(),
        });
    }
    Ok(Version::new(PING_VERSION.into()))
}

impl Module for PingModule {
    fn on_chan_open_init_validate(
        &self,
        _order: Order,
        _connection_hops: &[ConnectionId],
        _port_id: &PortId,
        _channel_id: &ChannelId,
        _counterparty: &Counterparty,
        version: &Version,
    ) -> Result<Version, ChannelError> {
        check_version(version)
    }

    fn on_chan_open_init_execute(
        &mut self,
        _order: Order,
        _connection_hops: &[ConnectionId],
        _port_id: &PortId,
        _channel_id: &ChannelId,
        _counterparty: &Counterparty,
        version: &Version,
    ) -> Result<(ModuleExtras, Version), ChannelError> {
        Ok((ModuleExtras::empty(), check_version(version)?))
    }

    fn on_chan_open_try_validate(
        &self,
        _order: Order,
        _connection_hops: &[ConnectionId],
        _port_id: &PortId,
        _channel_id: &ChannelId,
        _counterparty: &Counterparty,
        counterparty_version: &Version,
    ) -> Result<Version, ChannelError> {
        check_version(counterparty_version)
    }

    fn on_chan_open_try_execute(
        &mut self,
        _order: Order,
        _connection_hops: &[ConnectionId],
        _port_id: &PortId,
        _channel_id: &ChannelId,
        _counterparty: &Counterparty,
        counterparty_version: &Version,
    ) -> Result<(ModuleExtras, Version), ChannelError> {
        Ok((ModuleExtras::empty(), check_version(counterparty_version)?))
    }

    fn on_recv_packet_execute(
        &mut self,
        packet: &Packet,
        _relayer: &Signer,
    ) -> (ModuleExtras, Option<Acknowledgement>) {
        let ack = Acknowledgement::try_from(pong(&packet.data)).ok();
        (ModuleExtras::empty(), ack)
    }

    fn on_acknowledgement_packet_validate(
        &self,
        _packet: &Packet,
        _acknowledgement: &Acknowledgement,
        _relayer: &Signer,
    ) -> Result<(), ChannelError> {
        Ok(())
    }

    fn on_acknowledgement_packet_execute(
        &mut self,
        _packet: &Packet,
        _acknowledgement: &Acknowledgement,
        _relayer: &Signer,
    ) -> (ModuleExtras, Result<(), ChannelError>) {
        (ModuleExtras::empty(), Ok(()))
    }

    fn on_timeout_packet_validate(
        &self,
        _packet: &Packet,
        _relayer: &Signer,
    ) -> Result<(), ChannelError> {
        Ok(())
    }

    fn on_timeout_packet_execute(
        &mut self,
        _packet: &Packet,
        _relayer: &Signer,
    ) -> (ModuleExtras, Result<(), ChannelError>) {
        (ModuleExtras::empty(), Ok(()))
    }
}
