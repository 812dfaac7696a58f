//! The handshakes as the EVM relayer tests and tools know them: the chain-neutral ones of
//! [`crate::handshake`], re-exported.

pub use crate::handshake::{
    ChannelSpec, EndIds, HandshakeStep, PREFIX, channel_end, connect, connection_end, open_channel,
};
