//! The node's client RPC over gRPC with mutual TLS, mapped onto `kh_ledger::Node`.

#![allow(clippy::result_large_err)] // tonic::Status is the error type of every handler

use std::net::SocketAddr;
use std::time::Duration;

use kh_ledger::{FlowRequest, FlowStatus, Node, StablecoinState, StateStatus, TxId};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::proto::node_rpc_client::NodeRpcClient;
use crate::proto::node_rpc_server::{NodeRpc, NodeRpcServer};
use crate::proto::{self, run_flow_request::Flow};
use crate::{PeerError, PeerServerHandle, TlsIdentity};

/// Longest a client may ask `RunFlow` to wait.
const MAX_WAIT: Duration = Duration::from_secs(300);

struct RpcService {
    node: Node,
}

fn uuid(field: &'static str, text: &str) -> Result<Uuid, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{field} is not a UUID: {text:?}")))
}

impl RpcService {
    fn node_name(&self, text: &str) -> Result<kh_ledger::PartyName, Status> {
        self.node
            .resolve_node(text)
            .ok_or_else(|| Status::invalid_argument(format!("unknown node {text:?}")))
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[tonic::async_trait]
impl NodeRpc for RpcService {
    async fn create_account(
        &self,
        request: Request<proto::CreateAccountRequest>,
    ) -> Result<Response<proto::Account>, Status> {
        let label = request.into_inner().label;
        if label.is_empty() || label.len() > 128 {
            return Err(Status::invalid_argument(
                "label must be 1 to 128 characters",
            ));
        }
        let a = self.node.create_account(&label).await.map_err(internal)?;
        Ok(Response::new(proto::Account {
            id: a.id.to_string(),
            label: a.label,
            public_key: a.public_key.to_string(),
        }))
    }

    async fn list_accounts(
        &self,
        _: Request<proto::ListAccountsRequest>,
    ) -> Result<Response<proto::ListAccountsResponse>, Status> {
        let accounts = self.node.vault().accounts().await.map_err(internal)?;
        Ok(Response::new(proto::ListAccountsResponse {
            accounts: accounts
                .into_iter()
                .map(|a| proto::Account {
                    id: a.id.to_string(),
                    label: a.label,
                    public_key: a.public_key.to_string(),
                })
                .collect(),
        }))
    }

    async fn run_flow(
        &self,
        request: Request<proto::RunFlowRequest>,
    ) -> Result<Response<proto::FlowResult>, Status> {
        let req = request.into_inner();
        let flow = match req
            .flow
            .ok_or_else(|| Status::invalid_argument("no flow given"))?
        {
            Flow::Issue(i) => FlowRequest::Issue {
                amount: i.amount,
                currency: if i.currency.is_empty() {
                    "JPY".into()
                } else {
                    i.currency
                },
                to_node: self.node_name(&i.to_node)?,
                to_account: uuid("to_account", &i.to_account)?,
            },
            Flow::Pay(p) => FlowRequest::Pay {
                amount: p.amount,
                from: uuid("from_account", &p.from_account)?,
                to_node: self.node_name(&p.to_node)?,
                to_account: uuid("to_account", &p.to_account)?,
            },
            Flow::Redeem(r) => FlowRequest::Redeem {
                account: uuid("account", &r.account)?,
                amount: r.amount,
            },
            Flow::Split(s) => FlowRequest::Split {
                account: uuid("account", &s.account)?,
                parts: s.parts,
            },
        };
        if matches!(
            flow,
            FlowRequest::Issue { amount: 0, .. }
                | FlowRequest::Pay { amount: 0, .. }
                | FlowRequest::Redeem { amount: 0, .. }
        ) {
            return Err(Status::invalid_argument("amount must be positive"));
        }
        let id = self.node.start_flow(flow).await.map_err(|e| match e {
            kh_ledger::NodeError::Vault(kh_ledger::VaultError::UnknownAccount(a)) => {
                Status::not_found(format!("unknown account {a}"))
            }
            other => internal(other),
        })?;
        let wait = Duration::from_millis(req.timeout_ms.max(1)).min(MAX_WAIT);
        let status = match self.node.wait_flow(id, wait).await {
            Ok(s) => s,
            Err(kh_ledger::NodeError::Timeout(_)) => FlowStatus::Running {
                step: "timed out waiting".into(),
            },
            Err(e) => return Err(internal(e)),
        };
        let mut out = proto::FlowResult {
            flow_id: id.to_string(),
            ..Default::default()
        };
        match status {
            FlowStatus::Completed { tx_id } => {
                out.status = "completed".into();
                out.tx_id = tx_id.to_string();
            }
            FlowStatus::Failed { reason } => {
                out.status = "failed".into();
                out.reason = reason;
            }
            FlowStatus::Running { step } => {
                out.status = "running".into();
                out.reason = step;
            }
        }
        Ok(Response::new(out))
    }

    async fn vault(
        &self,
        request: Request<proto::VaultRequest>,
    ) -> Result<Response<proto::VaultResponse>, Status> {
        let id = uuid("account", &request.into_inner().account)?;
        let account = self
            .node
            .vault()
            .accounts()
            .await
            .map_err(internal)?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| Status::not_found(format!("unknown account {id}")))?;
        let vault = self.node.vault();
        let balance = vault.balance(&account.public_key).await.map_err(internal)?;
        let states = vault
            .states(&account.public_key, StateStatus::Unconsumed)
            .await
            .map_err(internal)?
            .into_iter()
            .filter_map(|s| {
                let coin: StablecoinState = s.state.decode().ok()?;
                Some(proto::State {
                    tx_id: s.reference.tx_id.to_string(),
                    index: s.reference.index,
                    amount: coin.amount,
                    currency: coin.currency,
                    issuer: coin.issuer.to_string(),
                })
            })
            .collect();
        Ok(Response::new(proto::VaultResponse { balance, states }))
    }

    async fn get_transaction(
        &self,
        request: Request<proto::GetTransactionRequest>,
    ) -> Result<Response<proto::GetTransactionResponse>, Status> {
        let text = request.into_inner().tx_id;
        let id: TxId = text
            .parse()
            .map_err(|_| Status::invalid_argument(format!("not a transaction id: {text:?}")))?;
        let tx = self.node.vault().transaction(&id).await.map_err(internal)?;
        Ok(Response::new(match tx {
            None => proto::GetTransactionResponse::default(),
            Some(stx) => proto::GetTransactionResponse {
                found: true,
                inputs: stx.tx.inputs.iter().map(|r| r.to_string()).collect(),
                outputs: stx.tx.outputs.len() as u32,
                signers: stx.sigs.iter().map(|s| s.by.to_string()).collect(),
            },
        }))
    }
}

/// Serves the node's client RPC with mutual TLS on `addr`.
pub async fn serve_rpc(
    addr: SocketAddr,
    identity: &TlsIdentity,
    root_pem: &str,
    node: Node,
) -> Result<PeerServerHandle, PeerError> {
    crate::peer::serve_mtls(addr, identity, root_pem, |mut server| {
        server.add_service(NodeRpcServer::new(RpcService { node }))
    })
    .await
}

/// A connected RPC client.
pub type RpcClient = NodeRpcClient<Channel>;

/// Connects to a node's RPC with a client certificate.
pub async fn connect_rpc(
    addr: SocketAddr,
    identity: &TlsIdentity,
    root_pem: &str,
) -> Result<RpcClient, PeerError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{addr}"))
        .map_err(|e| PeerError::Uri(e.to_string()))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(NodeRpcClient::new(channel))
}
