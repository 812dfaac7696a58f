//! The node's client RPC over gRPC with mutual TLS, mapped onto `kh_ledger::Node`.

#![allow(clippy::result_large_err)] // tonic::Status is the error type of every handler

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;

use kh_app_stablecoin::{StablecoinFlow, StablecoinState};
use kh_ledger::{
    ComponentGroup, ContractId, FlowStart, FlowStatus, LedgerEvent, Node, StateQuery, StateStatus,
    TransactionProof, TxId,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::proto::node_rpc_client::NodeRpcClient;
use crate::proto::node_rpc_server::{NodeRpc, NodeRpcServer};
use crate::proto::{self, run_flow_request::Flow};
use crate::{PeerError, PeerServerHandle, Permission, RpcUsers, TlsIdentity};

/// Longest a client may ask `RunFlow` to wait.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How often a `WatchFlow` stream looks at the flow's checkpoint.
const WATCH_FLOW_EVERY: Duration = Duration::from_millis(50);
/// How often a `Subscribe` stream looks at the account's vault.
const WATCH_VAULT_EVERY: Duration = Duration::from_millis(100);

/// Events read from the database at a time by an `Events` stream.
const EVENTS_PAGE: usize = 256;
/// Longest an `Events` stream waits for a new event before it checks that the node still runs.
const EVENTS_WAIT: Duration = Duration::from_secs(5);

/// A server stream of RPC messages.
type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct RpcService {
    node: Node,
    users: std::sync::Arc<RpcUsers>,
}

fn uuid(field: &'static str, text: &str) -> Result<Uuid, Status> {
    text.parse()
        .map_err(|_| Status::invalid_argument(format!("{field} is not a UUID: {text:?}")))
}

impl RpcService {
    /// Admits the call only from one of this node's RPC users holding `need` (see
    /// [`crate::RpcUsers`]); anyone else — another node's TLS identity, a user of another
    /// node — is refused.
    fn authorise<T>(&self, request: &Request<T>, need: Permission) -> Result<(), Status> {
        let cert = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()))
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let user = self
            .users
            .find(&cert)
            .map_err(|e| Status::internal(format!("reading the RPC users: {e}")))?
            .ok_or_else(|| {
                tracing::warn!(node = %self.node.name(), "RPC call from a certificate that is not one of this node's users");
                Status::permission_denied(format!(
                    "this certificate is not an RPC user of {}",
                    self.node.name().organisation()
                ))
            })?;
        if user.permission < need {
            return Err(Status::permission_denied(format!(
                "RPC user {:?} has permission {}; this call needs {need}",
                user.name, user.permission
            )));
        }
        Ok(())
    }

    fn node_name(&self, text: &str) -> Result<kh_ledger::PartyName, Status> {
        self.node
            .resolve_node(text)
            .ok_or_else(|| Status::invalid_argument(format!("unknown node {text:?}")))
    }

    /// Maps a request's flow onto a [`FlowStart`] and starts it.
    async fn start(&self, flow: Option<Flow>) -> Result<Uuid, Status> {
        let flow = match flow.ok_or_else(|| Status::invalid_argument("no flow given"))? {
            Flow::Generic(g) => {
                if g.name.is_empty() || g.name.len() > 128 {
                    return Err(Status::invalid_argument(
                        "a flow name is 1 to 128 characters",
                    ));
                }
                let args = if g.args_json.trim().is_empty() {
                    serde_json::Value::Object(Default::default())
                } else {
                    serde_json::from_str(&g.args_json).map_err(|e| {
                        Status::invalid_argument(format!("args_json is not JSON: {e}"))
                    })?
                };
                return self
                    .node
                    .start_flow(FlowStart::new(g.name, args))
                    .await
                    .map_err(flow_error);
            }
            Flow::Issue(i) => StablecoinFlow::Issue {
                amount: i.amount,
                currency: if i.currency.is_empty() {
                    "JPY".into()
                } else {
                    i.currency
                },
                to_node: self.node_name(&i.to_node)?,
                to_account: uuid("to_account", &i.to_account)?,
            },
            Flow::Pay(p) => StablecoinFlow::Pay {
                amount: p.amount,
                from: uuid("from_account", &p.from_account)?,
                to_node: self.node_name(&p.to_node)?,
                to_account: uuid("to_account", &p.to_account)?,
                validator: if p.validator.is_empty() {
                    None
                } else {
                    Some(self.node_name(&p.validator)?)
                },
            },
            Flow::Redeem(r) => StablecoinFlow::Redeem {
                account: uuid("account", &r.account)?,
                amount: r.amount,
            },
            Flow::Split(s) => StablecoinFlow::Split {
                account: uuid("account", &s.account)?,
                parts: s.parts,
            },
        };
        if matches!(
            flow,
            StablecoinFlow::Issue { amount: 0, .. }
                | StablecoinFlow::Pay { amount: 0, .. }
                | StablecoinFlow::Redeem { amount: 0, .. }
        ) {
            return Err(Status::invalid_argument("amount must be positive"));
        }
        self.node.start_flow(flow).await.map_err(flow_error)
    }

    /// Waits for a flow at most `wait`; a flow still running then is reported as running.
    async fn wait(&self, id: Uuid, wait: Duration) -> Result<proto::FlowResult, Status> {
        let status = match self.node.wait_flow(id, wait).await {
            Ok(s) => s,
            Err(kh_ledger::NodeError::Timeout(_)) => FlowStatus::Running {
                step: "timed out waiting".into(),
            },
            Err(e) => return Err(flow_error(e)),
        };
        Ok(flow_result(id, status))
    }

    /// The key of one of the node's accounts.
    async fn account_key(&self, text: &str) -> Result<kh_ledger::PublicKey, Status> {
        let id = uuid("account", text)?;
        self.node
            .vault()
            .accounts()
            .await
            .map_err(internal)?
            .into_iter()
            .find(|a| a.id == id)
            .map(|a| a.public_key)
            .ok_or_else(|| Status::not_found(format!("unknown account {id}")))
    }
}

fn flow_error(e: kh_ledger::NodeError) -> Status {
    match e {
        kh_ledger::NodeError::Vault(kh_ledger::VaultError::UnknownAccount(a)) => {
            Status::not_found(format!("unknown account {a}"))
        }
        kh_ledger::NodeError::UnknownFlow(f) => Status::not_found(format!("unknown flow {f}")),
        e @ kh_ledger::NodeError::UnknownFlowName { .. } => Status::not_found(e.to_string()),
        other => internal(other),
    }
}

fn flow_result(id: Uuid, status: FlowStatus) -> proto::FlowResult {
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
    out
}

/// An account's balance and unconsumed stablecoin states, from one read of the vault (the
/// balance is the sum of the states listed, so a snapshot never mixes two moments).
async fn vault_snapshot(
    node: &Node,
    key: &kh_ledger::PublicKey,
) -> Result<proto::VaultResponse, Status> {
    let states: Vec<proto::State> = node
        .vault()
        .query(&StateQuery {
            contract: Some(kh_app_stablecoin::stablecoin_id()),
            owner: Some(*key),
            ..StateQuery::default()
        })
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
    let balance = states.iter().fold(0u64, |t, s| t.saturating_add(s.amount));
    Ok(proto::VaultResponse { balance, states })
}

/// Where an `Events` stream is: the last cursor sent, events read but not yet sent.
struct EventCursor {
    node: Node,
    cursor: u64,
    buffered: VecDeque<LedgerEvent>,
    remaining: u64,
    follow: bool,
    done: bool,
}

fn state_ref_proto(r: &kh_ledger::StateRef) -> proto::StateRef {
    proto::StateRef {
        tx_id: r.tx_id.to_string(),
        index: r.index,
    }
}

fn event_proto(e: LedgerEvent) -> proto::LedgerEvent {
    proto::LedgerEvent {
        cursor: e.cursor,
        tx_id: e.tx_id.to_string(),
        consumed: e.consumed.iter().map(state_ref_proto).collect(),
        produced: e
            .produced
            .iter()
            .map(|p| proto::ProducedState {
                state: Some(state_ref_proto(&p.reference)),
                contract: p.contract.to_string(),
            })
            .collect(),
        flow_id: e.flow.map(|f| f.to_string()).unwrap_or_default(),
        recorded_ms: e.recorded_ms,
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
        self.authorise(&request, Permission::Flows)?;
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
        request: Request<proto::ListAccountsRequest>,
    ) -> Result<Response<proto::ListAccountsResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
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
        self.authorise(&request, Permission::Flows)?;
        let req = request.into_inner();
        let id = self.start(req.flow).await?;
        let wait = Duration::from_millis(req.timeout_ms.max(1)).min(MAX_WAIT);
        Ok(Response::new(self.wait(id, wait).await?))
    }

    async fn start_flow(
        &self,
        request: Request<proto::RunFlowRequest>,
    ) -> Result<Response<proto::FlowResult>, Status> {
        self.authorise(&request, Permission::Flows)?;
        let id = self.start(request.into_inner().flow).await?;
        let status = self.node.flow_status(id).await.map_err(flow_error)?;
        Ok(Response::new(flow_result(id, status)))
    }

    async fn flow_status(
        &self,
        request: Request<proto::FlowStatusRequest>,
    ) -> Result<Response<proto::FlowResult>, Status> {
        self.authorise(&request, Permission::Read)?;
        let id = uuid("flow_id", &request.into_inner().flow_id)?;
        let status = self.node.flow_status(id).await.map_err(flow_error)?;
        Ok(Response::new(flow_result(id, status)))
    }

    async fn wait_flow(
        &self,
        request: Request<proto::WaitFlowRequest>,
    ) -> Result<Response<proto::FlowResult>, Status> {
        self.authorise(&request, Permission::Read)?;
        let req = request.into_inner();
        let id = uuid("flow_id", &req.flow_id)?;
        let wait = Duration::from_millis(req.timeout_ms.max(1)).min(MAX_WAIT);
        Ok(Response::new(self.wait(id, wait).await?))
    }

    async fn kill_flow(
        &self,
        request: Request<proto::KillFlowRequest>,
    ) -> Result<Response<proto::FlowResult>, Status> {
        self.authorise(&request, Permission::Admin)?;
        let req = request.into_inner();
        let id = uuid("flow_id", &req.flow_id)?;
        let reason = if req.reason.is_empty() {
            "by the node's operator".to_string()
        } else {
            req.reason.chars().take(512).collect()
        };
        let status = self.node.kill_flow(id, &reason).await.map_err(flow_error)?;
        Ok(Response::new(flow_result(id, status)))
    }

    async fn list_flows(
        &self,
        request: Request<proto::ListFlowsRequest>,
    ) -> Result<Response<proto::ListFlowsResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
        Ok(Response::new(proto::ListFlowsResponse {
            flows: self.node.flow_names(),
            apps: self.node.apps(),
        }))
    }

    type WatchFlowStream = RpcStream<proto::FlowResult>;

    async fn watch_flow(
        &self,
        request: Request<proto::FlowStatusRequest>,
    ) -> Result<Response<Self::WatchFlowStream>, Status> {
        self.authorise(&request, Permission::Read)?;
        let id = uuid("flow_id", &request.into_inner().flow_id)?;
        // Unknown flows fail the call itself rather than the first stream item.
        self.node.flow_status(id).await.map_err(flow_error)?;
        let node = self.node.clone();
        // State: the last status sent (None before the first), and whether the stream is done.
        let stream = futures::stream::unfold(
            (node, None::<FlowStatus>, false),
            move |(node, last, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let status = match node.flow_status(id).await {
                        Ok(s) => s,
                        Err(e) => return Some((Err(flow_error(e)), (node, last, true))),
                    };
                    if last.as_ref() != Some(&status) {
                        let finished = !matches!(status, FlowStatus::Running { .. });
                        let item = flow_result(id, status.clone());
                        return Some((Ok(item), (node, Some(status), finished)));
                    }
                    if node.is_stopped() {
                        let e = Status::unavailable("node is shutting down");
                        return Some((Err(e), (node, last, true)));
                    }
                    tokio::time::sleep(WATCH_FLOW_EVERY).await;
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn vault(
        &self,
        request: Request<proto::VaultRequest>,
    ) -> Result<Response<proto::VaultResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
        let key = self.account_key(&request.into_inner().account).await?;
        Ok(Response::new(vault_snapshot(&self.node, &key).await?))
    }

    async fn query_states(
        &self,
        request: Request<proto::QueryStatesRequest>,
    ) -> Result<Response<proto::QueryStatesResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
        let r = request.into_inner();
        let key = |field: &'static str, text: &str| -> Result<kh_ledger::PublicKey, Status> {
            hex::decode(text)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(kh_ledger::PublicKey)
                .ok_or_else(|| Status::invalid_argument(format!("{field} is not a hex key")))
        };
        let owner = match (r.account.is_empty(), r.owner.is_empty()) {
            (false, false) => {
                return Err(Status::invalid_argument("give account or owner, not both"));
            }
            (false, true) => Some(self.account_key(&r.account).await?),
            (true, false) => Some(key("owner", &r.owner)?),
            (true, true) => None,
        };
        let query = StateQuery {
            contract: (!r.contract.is_empty()).then(|| ContractId(r.contract.clone())),
            owner,
            participant: if r.participant.is_empty() {
                None
            } else {
                Some(key("participant", &r.participant)?)
            },
            status: match r.status.as_str() {
                "" | "unconsumed" => StateStatus::Unconsumed,
                "consumed" => StateStatus::Consumed,
                "archived" => StateStatus::Archived,
                other => {
                    return Err(Status::invalid_argument(format!(
                        "status {other:?} is not unconsumed, consumed or archived"
                    )));
                }
            },
            offset: r.offset,
            limit: r.limit,
        };
        let states = self.node.vault().query(&query).await.map_err(internal)?;
        Ok(Response::new(proto::QueryStatesResponse {
            states: states
                .into_iter()
                .map(|s| proto::StateEntry {
                    tx_id: s.reference.tx_id.to_string(),
                    index: s.reference.index,
                    contract: s.state.contract.0,
                    participants: s.state.participants.iter().map(|p| p.to_string()).collect(),
                    notary: s.state.notary.name.to_string(),
                    data: s.state.data,
                })
                .collect(),
        }))
    }

    type SubscribeStream = RpcStream<proto::VaultResponse>;

    async fn subscribe(
        &self,
        request: Request<proto::VaultRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        self.authorise(&request, Permission::Read)?;
        let key = self.account_key(&request.into_inner().account).await?;
        let node = self.node.clone();
        // Runs until the client goes away (tonic then drops the stream) or the node stops.
        let stream = futures::stream::unfold(
            (node, None::<proto::VaultResponse>, false),
            move |(node, last, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let snapshot = match vault_snapshot(&node, &key).await {
                        Ok(s) => s,
                        Err(e) => return Some((Err(e), (node, last, true))),
                    };
                    if last.as_ref() != Some(&snapshot) {
                        return Some((Ok(snapshot.clone()), (node, Some(snapshot), false)));
                    }
                    if node.is_stopped() {
                        let e = Status::unavailable("node is shutting down");
                        return Some((Err(e), (node, last, true)));
                    }
                    tokio::time::sleep(WATCH_VAULT_EVERY).await;
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_transaction(
        &self,
        request: Request<proto::GetTransactionRequest>,
    ) -> Result<Response<proto::GetTransactionResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
        let req = request.into_inner();
        let text = req.tx_id;
        let id: TxId = text
            .parse()
            .map_err(|_| Status::invalid_argument(format!("not a transaction id: {text:?}")))?;
        if req.reveal.len() > kh_ledger::GROUPS.len() {
            return Err(Status::invalid_argument("too many groups to reveal"));
        }
        let reveal = req
            .reveal
            .iter()
            .map(|g| g.parse::<ComponentGroup>())
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let tx = self.node.vault().transaction(&id).await.map_err(internal)?;
        let Some(stx) = tx else {
            return Ok(Response::new(proto::GetTransactionResponse::default()));
        };
        let mut out = proto::GetTransactionResponse {
            found: true,
            inputs: stx.tx.inputs.iter().map(|r| r.to_string()).collect(),
            outputs: stx.tx.outputs.len() as u32,
            signers: stx.sigs.iter().map(|s| s.by.to_string()).collect(),
            ..Default::default()
        };
        if req.whole {
            out.signed_transaction = stx.to_bytes();
        }
        if !reveal.is_empty() {
            let proof = TransactionProof::of(&stx, &reveal);
            out.filtered_transaction = bcs::to_bytes(&proof.filtered).map_err(internal)?;
            out.signatures = bcs::to_bytes(&proof.signatures).map_err(internal)?;
        }
        Ok(Response::new(out))
    }

    type EventsStream = RpcStream<proto::LedgerEvent>;

    async fn events(
        &self,
        request: Request<proto::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        self.authorise(&request, Permission::Read)?;
        let req = request.into_inner();
        let start = EventCursor {
            node: self.node.clone(),
            cursor: req.after_cursor,
            buffered: VecDeque::new(),
            remaining: if req.limit == 0 { u64::MAX } else { req.limit },
            follow: req.follow,
            done: false,
        };
        // Runs until the backlog is sent (without follow), the limit is reached, the client
        // goes away (tonic then drops the stream) or the node stops.
        let stream = futures::stream::unfold(start, |mut s| async move {
            loop {
                if s.done || s.remaining == 0 {
                    return None;
                }
                if let Some(event) = s.buffered.pop_front() {
                    s.cursor = event.cursor;
                    s.remaining -= 1;
                    return Some((Ok(event_proto(event)), s));
                }
                if s.node.is_stopped() {
                    s.done = true;
                    return Some((Err(Status::unavailable("node is shutting down")), s));
                }
                let page = usize::try_from(s.remaining)
                    .unwrap_or(usize::MAX)
                    .min(EVENTS_PAGE);
                let vault = s.node.vault();
                let read = if s.follow {
                    vault.wait_events(s.cursor, page, EVENTS_WAIT).await
                } else {
                    vault.events_after(s.cursor, page).await
                };
                match read {
                    Err(e) => {
                        s.done = true;
                        return Some((Err(internal(e)), s));
                    }
                    Ok(events) if events.is_empty() && !s.follow => return None,
                    Ok(events) => {
                        // Cursor order is the query's; anything else would be a broken store.
                        let mut last = s.cursor;
                        for e in events {
                            if e.cursor <= last {
                                s.done = true;
                                let e = Status::internal("events out of cursor order");
                                return Some((Err(e), s));
                            }
                            last = e.cursor;
                            s.buffered.push_back(e);
                        }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn archive(
        &self,
        request: Request<proto::ArchiveRequest>,
    ) -> Result<Response<proto::ArchiveResponse>, Status> {
        self.authorise(&request, Permission::Admin)?;
        let older = i64::try_from(request.into_inner().older_than_ms)
            .map_err(|_| Status::invalid_argument("older_than_ms is too large"))?;
        let now = kh_ledger::util::now_ms();
        let (done, flows) = self
            .node
            .archive(now.saturating_sub(older))
            .await
            .map_err(flow_error)?;
        tracing::info!(
            states = done.states,
            transactions = done.transactions,
            flows,
            "archived"
        );
        Ok(Response::new(proto::ArchiveResponse {
            states: done.states,
            transactions: done.transactions,
            flows,
        }))
    }

    async fn ibc_proof(
        &self,
        request: Request<proto::IbcProofRequest>,
    ) -> Result<Response<proto::IbcProofResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
        if !self
            .node
            .apps()
            .iter()
            .any(|a| a == kh_ibc_ledger::APP_NAME)
        {
            return Err(Status::failed_precondition(format!(
                "{} does not run the {} app",
                self.node.name().organisation(),
                kh_ibc_ledger::APP_NAME
            )));
        }
        let req = request.into_inner();
        if req.path.is_empty() || req.path.len() > 4096 {
            return Err(Status::invalid_argument("a path is 1 to 4096 bytes"));
        }
        // The node's own instance, whose store is in memory.
        let instance = self.node.app(kh_ibc_ledger::APP_NAME);
        let app = instance
            .as_deref()
            .and_then(|a| a.as_any())
            .and_then(|a| a.downcast_ref::<kh_ibc_ledger::IbcHostApp>())
            .ok_or_else(|| Status::internal("the ibc-host app instance is not reachable"))?;
        // Height 0: the latest height this node's store holds.
        let height = match req.height {
            0 => app.height(self.node.hub()).await.map_err(|e| match e {
                kh_ledger::FlowError::Failed(reason) => Status::not_found(reason),
                kh_ledger::FlowError::Store(e) => internal(e),
            })?,
            h => h,
        };
        let (value, proof) = app
            .proof(self.node.hub(), &req.path, height)
            .await
            .map_err(|e| match e {
                kh_ledger::FlowError::Failed(reason) => Status::not_found(reason),
                kh_ledger::FlowError::Store(e) => internal(e),
            })?;
        Ok(Response::new(proto::IbcProofResponse {
            exists: value.is_some(),
            value: value.unwrap_or_default(),
            host_tx_id: proof.host.tx_id().to_string(),
            proof: proof.to_bytes(),
        }))
    }

    async fn list_validations(
        &self,
        request: Request<proto::ListValidationsRequest>,
    ) -> Result<Response<proto::ListValidationsResponse>, Status> {
        self.authorise(&request, Permission::Read)?;
        let validations = self.node.validations().await.map_err(flow_error)?;
        Ok(Response::new(proto::ListValidationsResponse {
            validations: validations
                .into_iter()
                .map(|v| proto::Validation {
                    tx_id: v.tx_id.to_string(),
                    requester: v.requester.to_string(),
                    validated_ms: v.validated_ms,
                })
                .collect(),
        }))
    }
}

/// Serves the node's client RPC with mutual TLS on `addr`, admitting only `users`.
pub async fn serve_rpc(
    addr: SocketAddr,
    identity: &TlsIdentity,
    root_pem: &str,
    node: Node,
    users: RpcUsers,
) -> Result<PeerServerHandle, PeerError> {
    let users = std::sync::Arc::new(users);
    crate::peer::serve_mtls(addr, identity, root_pem, |mut server| {
        server.add_service(
            NodeRpcServer::new(RpcService { node, users })
                .max_decoding_message_size(crate::peer::MAX_PEER_MESSAGE)
                .max_encoding_message_size(crate::peer::MAX_PEER_MESSAGE),
        )
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
    Ok(NodeRpcClient::new(channel)
        .max_decoding_message_size(crate::peer::MAX_PEER_MESSAGE)
        .max_encoding_message_size(crate::peer::MAX_PEER_MESSAGE))
}
