//! The call boundary between the host and the enclave process: length-prefixed frames
//! (4-byte big-endian length, then the bcs encoding of a [`Request`] or [`Response`]) over
//! the child's stdin and stdout. Private keys never cross it unsealed: the host keeps sealed
//! blobs and passes them back with each call that signs.

use std::io::{Read, Write};

use alloy_primitives::Address;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::elc::StoredClient;

/// Largest frame accepted, in bytes.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// A proxy message and one enclave signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The encoded proxy message.
    pub message: Vec<u8>,
    /// 65-byte `r‖s‖v` signature.
    pub signature: Vec<u8>,
}

/// A call into the enclave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// The enclave's measurement.
    Info,
    /// Generate a key inside the enclave and return it sealed.
    GenerateKey,
    /// Create a client and sign its initial state.
    CreateClient {
        /// The sealed key to sign with.
        key: Vec<u8>,
        /// `qbft` or `ledger`.
        client_type: String,
        /// bcs client state.
        client_state: Vec<u8>,
        /// bcs consensus state.
        consensus_state: Vec<u8>,
    },
    /// Verify a header and sign the UpdateState (or Misbehaviour, if it proves a conflict).
    UpdateClient {
        /// The sealed key.
        key: Vec<u8>,
        /// The client as the host stores it.
        client: StoredClient,
        /// bcs header.
        header: Vec<u8>,
        /// The time to judge it at, Unix nanoseconds.
        now_ns: u64,
    },
    /// Verify (non-)membership and sign a VerifyMembership message.
    VerifyState {
        /// The sealed key.
        key: Vec<u8>,
        /// The client.
        client: StoredClient,
        /// The height.
        height: u64,
        /// bcs proof.
        proof: Vec<u8>,
        /// The ICS-24 path.
        path: Vec<u8>,
        /// The value, or `None` for absence.
        value: Option<Vec<u8>>,
    },
    /// Check misbehaviour evidence and sign a Misbehaviour message.
    Misbehaviour {
        /// The sealed key.
        key: Vec<u8>,
        /// The client.
        client: StoredClient,
        /// bcs evidence.
        evidence: Vec<u8>,
        /// The time, Unix nanoseconds.
        now_ns: u64,
    },
    /// Combine consecutive UpdateState messages signed by this key into one.
    Aggregate {
        /// The sealed key.
        key: Vec<u8>,
        /// The messages, in order.
        messages: Vec<SignedMessage>,
    },
}

/// The enclave's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// The measurement of the running enclave build.
    Info {
        /// MRENCLAVE.
        mrenclave: [u8; 32],
    },
    /// A new key.
    Key {
        /// Its Ethereum address.
        address: Address,
        /// The secret, sealed.
        sealed: Vec<u8>,
    },
    /// A signed message, with the client after the call if the call changes it.
    Signed {
        /// The client after the call.
        client: Option<StoredClient>,
        /// The message and signature.
        signed: SignedMessage,
        /// The signing key's address.
        signer: Address,
    },
    /// The call was refused.
    Error(String),
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> std::io::Result<()> {
    let bytes = bcs::to_bytes(value).map_err(std::io::Error::other)?;
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|l| (*l as usize) <= MAX_FRAME)
        .ok_or_else(|| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes is too large"
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    bcs::from_bytes(&buf)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
