//! The node-to-node messaging seam: an [`Envelope`] carries opaque bytes from one node to
//! another. The in-memory network lives next to the trait; the gRPC/mTLS transport implements the
//! same trait in the node process.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::identity::PartyName;

/// One message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id: the receiver processes each id once.
    pub id: Uuid,
    /// Sending node.
    pub from: PartyName,
    /// Receiving node.
    pub to: PartyName,
    /// BCS-encoded node message; opaque to transports.
    pub payload: Vec<u8>,
}

/// Delivery failed; the sender keeps the message and retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No route to the node.
    #[error("node {0} is unreachable")]
    Unreachable(PartyName),
    /// The receiver could not process the message now (e.g. its database failed); retry.
    #[error("node {to} failed to process the message: {reason}")]
    Failed {
        /// Receiver.
        to: PartyName,
        /// What failed.
        reason: String,
    },
    /// The receiver refused the message (it will not accept it on retry either).
    #[error("node {to} refused message {id}: {reason}")]
    Refused {
        /// Receiver.
        to: PartyName,
        /// Message id.
        id: Uuid,
        /// Its reason.
        reason: String,
    },
}

/// A boxed future returned by [`Transport::send`].
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), TransportError>> + Send + 'a>>;

/// Outbound messaging. `Ok` means the receiver durably processed the message.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Delivers `env` to `env.to`.
    fn send(&self, env: Envelope) -> SendFuture<'_>;
}

/// Something that accepts inbound envelopes (a node).
pub trait Receiver: Send + Sync {
    /// Processes `env`; idempotent by `env.id`.
    fn receive(&self, env: Envelope) -> SendFuture<'_>;
}

/// An in-process network: nodes register themselves by name.
#[derive(Default)]
pub struct InMemoryNetwork {
    nodes: RwLock<HashMap<PartyName, Weak<dyn Receiver>>>,
}

impl std::fmt::Debug for InMemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.nodes.read().map(|m| m.len()).unwrap_or(0);
        write!(f, "InMemoryNetwork({n} nodes)")
    }
}

impl InMemoryNetwork {
    /// A new, empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers (or replaces, e.g. a standby taking over) the receiver for `name`.
    pub fn register(&self, name: PartyName, node: Weak<dyn Receiver>) {
        if let Ok(mut m) = self.nodes.write() {
            m.insert(name, node);
        }
    }

    /// Removes `name` (a node going down).
    pub fn unregister(&self, name: &PartyName) {
        if let Ok(mut m) = self.nodes.write() {
            m.remove(name);
        }
    }
}

#[allow(clippy::result_large_err)] // rare path; the error names the node
impl Transport for InMemoryNetwork {
    fn send(&self, env: Envelope) -> SendFuture<'_> {
        let node = self
            .nodes
            .read()
            .ok()
            .and_then(|m| m.get(&env.to).and_then(Weak::upgrade));
        Box::pin(async move {
            let Some(n) = node else {
                return Err(TransportError::Unreachable(env.to));
            };
            let to = env.to.clone();
            // The receiver processes on its own task: a sender that goes away (or is cancelled)
            // must not cancel the receiver half-way through a database transaction.
            tokio::spawn(async move { n.receive(env).await })
                .await
                .unwrap_or_else(|e| {
                    Err(TransportError::Failed {
                        to,
                        reason: e.to_string(),
                    })
                })
        })
    }
}
