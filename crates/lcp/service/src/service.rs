//! The LCP gRPC service (`kakehashi.lcp.v1.Lcp`) with mutual TLS: relayers present client
//! certificates issued by the configured CA. Every call runs the blocking enclave round trip on
//! tokio's blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::host::{HostError, KeyEntry, LcpNode, unix_now};
use crate::proto::lcp_client::LcpClient as LcpGrpcClient;
use crate::proto::lcp_server::{Lcp, LcpServer};
use crate::proto::{self};
use crate::protocol::SignedMessage;

/// Largest gRPC message, bytes.
pub const MAX_GRPC_MESSAGE: usize = 32 * 1024 * 1024;
/// Largest header assembled from a stream, bytes.
pub const MAX_STREAMED_HEADER: usize = 32 * 1024 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Binding failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// TLS or transport setup failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A running server.
#[derive(Debug)]
pub struct ServiceHandle {
    /// The bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl ServiceHandle {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

fn status(e: HostError) -> Status {
    match e {
        HostError::UnknownClient(_) | HostError::UnknownKey(_) => Status::not_found(e.to_string()),
        HostError::BadClientId(_) => Status::invalid_argument(e.to_string()),
        HostError::Refused(_) => Status::failed_precondition(e.to_string()),
        HostError::NoActiveKey => Status::unavailable(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

#[allow(clippy::result_large_err)] // tonic's Status is what handlers return
fn address(bytes: &[u8], what: &str) -> Result<Address, Status> {
    <[u8; 20]>::try_from(bytes)
        .map(Address::from)
        .map_err(|_| Status::invalid_argument(format!("{what} must be 20 bytes")))
}

fn now_or(ns: u64) -> Duration {
    if ns == 0 {
        unix_now()
    } else {
        Duration::from_nanos(ns)
    }
}

fn signed(r: (SignedMessage, Address)) -> proto::SignedResponse {
    proto::SignedResponse {
        message: r.0.message,
        signature: r.0.signature,
        signer: r.1.to_vec(),
    }
}

fn key_info(k: KeyEntry) -> proto::EnclaveKeyInfo {
    proto::EnclaveKeyInfo {
        address: k.address.to_vec(),
        report: k.report,
        operator: k.operator.map(|o| o.to_vec()).unwrap_or_default(),
        attested_at: k.attested_at,
        expires_at: k.expires_at,
        mrenclave: hex::decode(k.mrenclave).unwrap_or_default(),
    }
}

struct Svc {
    node: Arc<LcpNode>,
}

impl Svc {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&LcpNode) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, Status> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || f(&node))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)
    }
}

#[tonic::async_trait]
impl Lcp for Svc {
    async fn create_client(
        &self,
        request: Request<proto::CreateClientRequest>,
    ) -> Result<Response<proto::CreateClientResponse>, Status> {
        let r = request.into_inner();
        let (id, m, signer) = self
            .run(move |n| {
                let id = (!r.client_id.is_empty()).then_some(r.client_id.as_str());
                n.create_client(id, &r.client_type, r.client_state, r.consensus_state)
            })
            .await?;
        Ok(Response::new(proto::CreateClientResponse {
            client_id: id,
            proof: Some(signed((m, signer))),
        }))
    }

    async fn update_client(
        &self,
        request: Request<proto::UpdateClientRequest>,
    ) -> Result<Response<proto::SignedResponse>, Status> {
        let r = request.into_inner();
        let out = self
            .run(move |n| n.update_client(&r.client_id, r.header, now_or(r.now_unix_ns)))
            .await?;
        Ok(Response::new(signed(out)))
    }

    async fn update_client_stream(
        &self,
        request: Request<Streaming<proto::UpdateClientChunk>>,
    ) -> Result<Response<proto::SignedResponse>, Status> {
        let mut stream = request.into_inner();
        let mut client_id = String::new();
        let mut now_ns = 0;
        let mut header = Vec::new();
        let mut first = true;
        while let Some(chunk) = stream.message().await? {
            if first {
                client_id = chunk.client_id;
                now_ns = chunk.now_unix_ns;
                first = false;
            } else if !chunk.client_id.is_empty() && chunk.client_id != client_id {
                return Err(Status::invalid_argument("chunks name different clients"));
            }
            if header.len() + chunk.header_chunk.len() > MAX_STREAMED_HEADER {
                return Err(Status::resource_exhausted("header too large"));
            }
            header.extend_from_slice(&chunk.header_chunk);
        }
        if first {
            return Err(Status::invalid_argument("empty stream"));
        }
        let out = self
            .run(move |n| n.update_client(&client_id, header, now_or(now_ns)))
            .await?;
        Ok(Response::new(signed(out)))
    }

    async fn aggregate_messages(
        &self,
        request: Request<proto::AggregateMessagesRequest>,
    ) -> Result<Response<proto::SignedResponse>, Status> {
        let r = request.into_inner();
        let signer = address(&r.signer, "signer")?;
        let messages = r
            .messages
            .into_iter()
            .map(|m| SignedMessage {
                message: m.message,
                signature: m.signature,
            })
            .collect();
        let out = self.run(move |n| n.aggregate(signer, messages)).await?;
        Ok(Response::new(signed(out)))
    }

    async fn verify_membership(
        &self,
        request: Request<proto::VerifyMembershipRequest>,
    ) -> Result<Response<proto::SignedResponse>, Status> {
        let r = request.into_inner();
        let out = self
            .run(move |n| n.verify_state(&r.client_id, r.height, r.proof, r.path, Some(r.value)))
            .await?;
        Ok(Response::new(signed(out)))
    }

    async fn verify_non_membership(
        &self,
        request: Request<proto::VerifyNonMembershipRequest>,
    ) -> Result<Response<proto::SignedResponse>, Status> {
        let r = request.into_inner();
        let out = self
            .run(move |n| n.verify_state(&r.client_id, r.height, r.proof, r.path, None))
            .await?;
        Ok(Response::new(signed(out)))
    }

    async fn submit_misbehaviour(
        &self,
        request: Request<proto::SubmitMisbehaviourRequest>,
    ) -> Result<Response<proto::SignedResponse>, Status> {
        let r = request.into_inner();
        let out = self
            .run(move |n| n.submit_misbehaviour(&r.client_id, r.evidence, now_or(r.now_unix_ns)))
            .await?;
        Ok(Response::new(signed(out)))
    }

    async fn query_client(
        &self,
        request: Request<proto::QueryClientRequest>,
    ) -> Result<Response<proto::QueryClientResponse>, Status> {
        let id = request.into_inner().client_id;
        let c = self.run(move |n| n.client(&id)).await?;
        let latest_height = c
            .latest_height()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(proto::QueryClientResponse {
            client_type: c.client_type,
            instance: c.instance,
            latest_height,
        }))
    }

    async fn enclave_info(
        &self,
        _: Request<proto::EnclaveInfoRequest>,
    ) -> Result<Response<proto::EnclaveInfoResponse>, Status> {
        Ok(Response::new(proto::EnclaveInfoResponse {
            mrenclave: self.node.mrenclave().to_vec(),
            attestation_root: self.node.attestation_root_der(),
            key_lifetime_secs: self.node.key_lifetime(),
        }))
    }

    async fn available_enclave_keys(
        &self,
        _: Request<proto::AvailableEnclaveKeysRequest>,
    ) -> Result<Response<proto::AvailableEnclaveKeysResponse>, Status> {
        let now = unix_now().as_secs();
        let keys = self.run(|n| n.keys()).await?;
        Ok(Response::new(proto::AvailableEnclaveKeysResponse {
            keys: keys
                .into_iter()
                .filter(|k| now < k.expires_at)
                .map(key_info)
                .collect(),
        }))
    }

    async fn enclave_key(
        &self,
        request: Request<proto::EnclaveKeyRequest>,
    ) -> Result<Response<proto::EnclaveKeyInfo>, Status> {
        let a = address(&request.into_inner().address, "address")?;
        let k = self.run(move |n| n.key(a)).await?;
        Ok(Response::new(key_info(k)))
    }

    async fn generate_enclave_key(
        &self,
        request: Request<proto::GenerateEnclaveKeyRequest>,
    ) -> Result<Response<proto::EnclaveKeyInfo>, Status> {
        let op = request.into_inner().operator;
        let operator = if op.is_empty() {
            None
        } else {
            Some(address(&op, "operator")?)
        };
        let k = self.run(move |n| n.generate_key(operator)).await?;
        Ok(Response::new(key_info(k)))
    }
}

/// Serves `node` on `addr` with TLS identity (`cert_pem`, `key_pem`), requiring client
/// certificates chained to `client_ca_pem`.
pub async fn serve(
    addr: SocketAddr,
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
    node: Arc<LcpNode>,
) -> Result<ServiceHandle, ServiceError> {
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert_pem, key_pem))
        .client_ca_root(Certificate::from_pem(client_ca_pem));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServiceError::Bind { addr, source })?;
    // No Nagle delay: every call is one small request and one small answer.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stop, stopped) = oneshot::channel::<()>();
    let router = Server::builder().tls_config(tls)?.add_service(
        LcpServer::new(Svc { node })
            .max_decoding_message_size(MAX_GRPC_MESSAGE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE),
    );
    let done = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::warn!(error = %e, "LCP gRPC server stopped");
        }
    });
    tracing::info!(addr = %bound, "LCP service listening");
    Ok(ServiceHandle {
        addr: bound,
        stop: Some(stop),
        done: Some(done),
    })
}

/// A connected client.
pub type Client = LcpGrpcClient<Channel>;

/// Connects to an LCP service with a client certificate, trusting `root_pem` for the server.
pub async fn connect(
    addr: SocketAddr,
    cert_pem: &str,
    key_pem: &str,
    root_pem: &str,
) -> Result<Client, ServiceError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| ServiceError::Bind {
            addr,
            source: std::io::Error::other(e.to_string()),
        })?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(LcpGrpcClient::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE)
        .max_encoding_message_size(MAX_GRPC_MESSAGE))
}
