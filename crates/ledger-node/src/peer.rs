//! Node-to-node gRPC: the receiving service and the [`GrpcTransport`] used by senders.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use kh_ledger::{Envelope, PartyName, Receiver, SendFuture, Transport, TransportError};
use tokio::sync::oneshot;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Channel, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::TlsIdentity;
use crate::proto::peer_client::PeerClient;
use crate::proto::peer_server::{Peer, PeerServer};
use crate::proto::{DeliverRequest, DeliverResponse};

/// Where a node is and which certificate it presents.
#[derive(Debug, Clone)]
pub struct PeerEntry {
    /// Its P2P address.
    pub address: SocketAddr,
    /// Its certificate (DER), pinned.
    pub cert_der: Vec<u8>,
}

/// The network directory as the P2P layer needs it.
#[derive(Debug, Clone, Default)]
pub struct PeerDirectory {
    /// Entries by legal name.
    pub peers: HashMap<PartyName, PeerEntry>,
}

/// P2P failures.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// TLS or server setup failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The address does not form a valid URI.
    #[error("invalid endpoint: {0}")]
    Uri(String),
    /// Binding the listener failed.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

struct PeerService {
    node: Weak<dyn Receiver>,
    directory: Arc<PeerDirectory>,
}

/// Largest envelope the node link carries (both ends): a transaction at the network's 10 MB
/// limit together with the transactions that produced its inputs. Larger messages are refused
/// with that reason rather than retried.
pub const MAX_PEER_MESSAGE: usize = 64 * 1024 * 1024;

#[tonic::async_trait]
impl Peer for PeerService {
    async fn deliver(
        &self,
        request: Request<DeliverRequest>,
    ) -> Result<Response<DeliverResponse>, Status> {
        let presented = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()))
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let env: Envelope = bcs::from_bytes(&request.into_inner().envelope)
            .map_err(|e| Status::invalid_argument(format!("malformed envelope: {e}")))?;
        // The sender's legal name is the subject of its certificate (which chains to the
        // network root: the TLS handshake checked that). It must be a node of the network and
        // the envelope's sender ...
        let name = crate::legal_name_of(&presented).map_err(|e| {
            warn!(error = %e, "peer certificate without a legal name");
            Status::permission_denied(format!("not a node certificate: {e}"))
        })?;
        if name != env.from {
            warn!(from = %env.from, certificate = %name, "envelope sender is not the peer");
            return Err(Status::permission_denied(format!(
                "the certificate belongs to {name}, not to the envelope's sender {}",
                env.from
            )));
        }
        // ... and the certificate must be the one registered for that node (pinned), so a
        // second certificate issued for the same name is refused too.
        let registered = self.directory.peers.get(&env.from).map(|p| &p.cert_der);
        if registered != Some(&presented) {
            warn!(from = %env.from, "envelope sender does not match the peer certificate");
            return Err(Status::permission_denied(
                "the certificate is not the one registered for the sender",
            ));
        }
        let node = self
            .node
            .upgrade()
            .ok_or_else(|| Status::unavailable("node is shutting down"))?;
        // Process on a task of our own: a client that disconnects must not cancel the
        // receiver half-way through a database transaction.
        let result = tokio::spawn(async move { node.receive(env).await })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        match result {
            Ok(()) => Ok(Response::new(DeliverResponse {})),
            Err(TransportError::Refused { reason, .. }) => Err(Status::invalid_argument(reason)),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}

/// A running P2P server.
#[derive(Debug)]
pub struct PeerServerHandle {
    /// The bound address.
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl PeerServerHandle {
    pub(crate) fn new(address: SocketAddr, stop: oneshot::Sender<()>) -> Self {
        Self {
            address,
            stop: Some(stop),
        }
    }

    /// Stops accepting connections.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for PeerServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` and serves the router built by `router` with mutual TLS (clients must present
/// a certificate issued by the network root) until the returned handle stops or drops.
pub(crate) async fn serve_mtls(
    addr: SocketAddr,
    identity: &TlsIdentity,
    root_pem: &str,
    router: impl FnOnce(Server) -> Router,
) -> Result<PeerServerHandle, PeerError> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .client_ca_root(Certificate::from_pem(root_pem));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| PeerError::Bind { addr, source })?;
    let address = listener
        .local_addr()
        .map_err(|source| PeerError::Bind { addr, source })?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = router(Server::builder().tls_config(tls)?);
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = server
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            warn!(error = %e, "gRPC server stopped");
        }
    });
    Ok(PeerServerHandle::new(address, stop))
}

/// Serves the node's P2P endpoint with mutual TLS on `addr` (use port 0 for any).
pub async fn serve_peer(
    addr: SocketAddr,
    identity: &TlsIdentity,
    root_pem: &str,
    node: Weak<dyn Receiver>,
    directory: Arc<PeerDirectory>,
) -> Result<PeerServerHandle, PeerError> {
    serve_mtls(addr, identity, root_pem, |mut server| {
        server.add_service(
            PeerServer::new(PeerService { node, directory })
                .max_decoding_message_size(MAX_PEER_MESSAGE),
        )
    })
    .await
}

/// `kh_ledger::Transport` over gRPC with mutual TLS; each peer must present the certificate
/// pinned for it in the directory (see [`crate::pinned_client_config`]).
pub struct GrpcTransport {
    directory: Arc<PeerDirectory>,
    identity: TlsIdentity,
    root_pem: String,
    channels: Mutex<HashMap<PartyName, Channel>>,
}

impl std::fmt::Debug for GrpcTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrpcTransport({} peers)", self.directory.peers.len())
    }
}

impl GrpcTransport {
    /// A transport presenting `identity` and trusting `root_pem`.
    pub fn new(directory: Arc<PeerDirectory>, identity: &TlsIdentity, root_pem: &str) -> Self {
        Self {
            directory,
            identity: identity.clone(),
            root_pem: root_pem.to_string(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    #[allow(clippy::result_large_err)] // rare path; the error names the node
    fn channel(&self, to: &PartyName) -> Result<Channel, TransportError> {
        let unreachable = || TransportError::Unreachable(to.clone());
        let mut map = self.channels.lock().map_err(|_| unreachable())?;
        if let Some(c) = map.get(to) {
            return Ok(c.clone());
        }
        let entry = self.directory.peers.get(to).ok_or_else(unreachable)?;
        let channel =
            crate::pinned::pinned_client_config(&self.identity, &self.root_pem, &entry.cert_der)
                .and_then(|config| crate::pinned::pinned_channel(entry.address, config))
                .map_err(|e| {
                    warn!(to = %to, error = %e, "cannot set up the node link");
                    unreachable()
                })?;
        map.insert(to.clone(), channel.clone());
        Ok(channel)
    }
}

impl Transport for GrpcTransport {
    fn send(&self, env: Envelope) -> SendFuture<'_> {
        Box::pin(async move {
            let to = env.to.clone();
            let channel = self.channel(&to)?;
            let body = bcs::to_bytes(&env).map_err(|e| TransportError::Refused {
                to: to.clone(),
                id: env.id,
                reason: e.to_string(),
            })?;
            if body.len() > MAX_PEER_MESSAGE {
                // It would be refused by every receiver: say so once instead of retrying.
                return Err(TransportError::Refused {
                    to,
                    id: env.id,
                    reason: format!(
                        "a message of {} bytes exceeds the node link's limit of {MAX_PEER_MESSAGE} bytes",
                        body.len()
                    ),
                });
            }
            let mut client = PeerClient::new(channel).max_encoding_message_size(MAX_PEER_MESSAGE);
            match client.deliver(DeliverRequest { envelope: body }).await {
                Ok(_) => Ok(()),
                Err(s)
                    if s.code() == tonic::Code::InvalidArgument
                        || s.code() == tonic::Code::PermissionDenied
                        || s.code() == tonic::Code::ResourceExhausted
                        || s.code() == tonic::Code::OutOfRange =>
                {
                    Err(TransportError::Refused {
                        to,
                        id: env.id,
                        reason: s.message().to_string(),
                    })
                }
                Err(s) => Err(TransportError::Failed {
                    to,
                    reason: s.to_string(),
                }),
            }
        })
    }
}
