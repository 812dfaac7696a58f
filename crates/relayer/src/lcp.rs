//! LCP as the relayer's prover (DESIGN §1): the relayer feeds an LCP node the source chain's
//! headers and `eth_getProof` answers; the node's enclave verifies them with the QBFT ELC and
//! signs the result; the destination's LCP client checks one signature.
//!
//! [`LcpEvmProver`] proves an EVM chain's IBC store to the LCP client on the other chain;
//! [`create_lcp_client`] sets a path direction up: the ELC in LCP from the source's current
//! header, the LCP client on the destination's handler from the ELC's signed initial state, and
//! the node's enclave keys registered there from their attestation reports.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, keccak256};
use kh_contracts::ibc_commitment_slot;
use kh_elc::LedgerHeader;
use kh_elc::{QbftClientState, QbftConsensusState, QbftHeader, StorageLayout, StorageProof};
use kh_ibc_host_chain::{HostStateProof, HostTrust};
use kh_lcp::wire::{
    self, ClientState, ConsensusState, RegisterEnclaveKeyMessage, UpdateClientMessage,
};
use kh_lcp::{CommitmentProofs, ProxyMessage};
use kh_lcp_service::proto;
use kh_lcp_service::service::Client as LcpGrpc;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prost::Message;
use serde_json::{Value, json};
use tracing::debug;

use crate::evm::ibc::{EvmEnd, IbcError, IbcHeight, Prover};
use crate::evm::rpc::{FailoverRpc, quantity};
use crate::ledger_ibc::LedgerEnd;
use crate::metrics::MethodLabel;

/// A prover's connection to LCP, timing every call into the relayer's `lcp_call_seconds`
/// histogram when metrics are attached. The gRPC client multiplexes one channel, so calls of
/// concurrent relay jobs do not wait for each other.
///
/// It keeps the last few signed client updates: LCP applies a header once, so when the
/// transaction carrying its signed update did not land (an EVM multicall is all or nothing: one
/// stale packet in it drops the update too), asking again for the same header is refused as
/// applied already, and the update kept is given again instead.
#[derive(Debug, Clone)]
pub struct LcpLink {
    client: LcpGrpc,
    latency: Option<Family<MethodLabel, Histogram>>,
    /// keccak256(client id ‖ 0 ‖ header) and LCP's answer, the latest last.
    signed_updates: Arc<std::sync::Mutex<VecDeque<(B256, proto::SignedResponse)>>>,
}

/// How many signed client updates [`LcpLink`] keeps.
const SIGNED_UPDATES_KEPT: usize = 16;

impl LcpLink {
    /// A link over a connected client, without metrics.
    pub fn new(client: LcpGrpc) -> Self {
        LcpLink {
            client,
            latency: None,
            signed_updates: Arc::default(),
        }
    }

    /// Records every call's latency in `latency`, labelled by method.
    pub fn with_latency(mut self, latency: Family<MethodLabel, Histogram>) -> Self {
        self.latency = Some(latency);
        self
    }

    /// `call`'s answer, its latency recorded under `method`.
    async fn timed<T>(
        &self,
        method: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        let started = Instant::now();
        let answer = call.await;
        if let Some(h) = &self.latency {
            h.get_or_create(&MethodLabel {
                method: method.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        }
        answer.map(tonic::Response::into_inner)
    }

    async fn update_client(
        &self,
        request: proto::UpdateClientRequest,
    ) -> Result<proto::SignedResponse, IbcError> {
        let key = keccak256([request.client_id.as_bytes(), &[0], &request.header].concat());
        let answer = self
            .timed("UpdateClient", self.client.clone().update_client(request))
            .await;
        let mut kept = self
            .signed_updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match answer {
            Ok(signed) => {
                if kept.len() >= SIGNED_UPDATES_KEPT {
                    kept.pop_front();
                }
                kept.push_back((key, signed.clone()));
                Ok(signed)
            }
            // Refused (applied already) a header LCP signed before: the same signed update.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                match kept.iter().rev().find(|(k, _)| *k == key) {
                    Some((_, signed)) => {
                        debug!(
                            reason = status.message(),
                            "LCP signed this header before: the same update again"
                        );
                        Ok(signed.clone())
                    }
                    None => Err(lcp_err(status)),
                }
            }
            Err(status) => Err(lcp_err(status)),
        }
    }

    async fn verify_membership(
        &self,
        request: proto::VerifyMembershipRequest,
    ) -> Result<proto::SignedResponse, IbcError> {
        self.timed(
            "VerifyMembership",
            self.client.clone().verify_membership(request),
        )
        .await
        .map_err(lcp_err)
    }

    async fn verify_non_membership(
        &self,
        request: proto::VerifyNonMembershipRequest,
    ) -> Result<proto::SignedResponse, IbcError> {
        self.timed(
            "VerifyNonMembership",
            self.client.clone().verify_non_membership(request),
        )
        .await
        .map_err(lcp_err)
    }
}

fn lcp_err(e: tonic::Status) -> IbcError {
    IbcError::Prover(format!("LCP: {}", e.message()))
}

/// The sealed header of block `number` (RLP, seals included), rebuilt from the standard
/// `eth_getBlockByNumber` answer (every field of the header, London to Cancun and later).
pub async fn header_rlp(rpc: &FailoverRpc, number: u64) -> Result<(Bytes, Value), IbcError> {
    let block: Value = rpc
        .request(
            "eth_getBlockByNumber",
            vec![json!(format!("{number:#x}")), json!(false)],
        )
        .await?;
    if block.is_null() {
        return Err(IbcError::Prover(format!("no block {number}")));
    }
    let header: alloy_rpc_types_eth::Header = serde_json::from_value(block.clone())
        .map_err(|e| IbcError::Prover(format!("block {number}: {e}")))?;
    Ok((Bytes::from(alloy_rlp::encode(&header.inner)), block))
}

/// Proves an EVM chain's handler store through an LCP node's QBFT ELC.
#[derive(Debug)]
pub struct LcpEvmProver {
    lcp: LcpLink,
    elc_id: String,
    rpc: Arc<FailoverRpc>,
    handler: Address,
    /// Bound on the wait for a block newer than the client's.
    pub wait: Duration,
}

impl LcpEvmProver {
    /// A prover of the chain behind `rpc` through ELC `elc_id` of the node behind `lcp`.
    pub fn new(lcp: LcpGrpc, elc_id: String, rpc: Arc<FailoverRpc>, handler: Address) -> Self {
        LcpEvmProver {
            lcp: LcpLink::new(lcp),
            elc_id,
            rpc,
            handler,
            wait: Duration::from_secs(30),
        }
    }

    /// The ELC this prover uses.
    pub fn elc_id(&self) -> &str {
        &self.elc_id
    }

    /// Times every LCP call into `latency`.
    pub fn with_lcp_latency(mut self, latency: Family<MethodLabel, Histogram>) -> Self {
        self.lcp = self.lcp.with_latency(latency);
        self
    }
}

impl Prover for LcpEvmProver {
    async fn update(&self, trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        // Nothing newer than the client's height: every event seen so far (the followers only
        // hand over included blocks) is provable at that height, without waiting for a block.
        if self.rpc.block_number().await? <= trusted.revision_height {
            return Ok((None, trusted));
        }
        // A block newer than the trusted one, with a later timestamp (the ELC requires it; a
        // devnet with sub-second blocks has several blocks per second). The chain moves on by
        // itself.
        let (_, trusted_block) = header_rlp(&self.rpc, trusted.revision_height).await?;
        let trusted_time = quantity(&trusted_block["timestamp"]).unwrap_or(0);
        let started = Instant::now();
        let (head, rlp) = loop {
            let head = self.rpc.block_number().await?;
            if head > trusted.revision_height {
                let (rlp, block) = header_rlp(&self.rpc, head).await?;
                if quantity(&block["timestamp"]).unwrap_or(0) > trusted_time {
                    break (head, rlp);
                }
            }
            if started.elapsed() > self.wait {
                return Err(IbcError::Prover(format!(
                    "no block after {} within {:?}",
                    trusted.revision_height, self.wait
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let header = bcs::to_bytes(&QbftHeader {
            header_rlp: rlp,
            trusted_height: trusted.revision_height,
        })
        .map_err(|e| IbcError::Prover(e.to_string()))?;
        let message = signed_update(&self.lcp, &self.elc_id, header).await?;
        Ok((Some(message), IbcHeight::at(head)))
    }

    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        let slot = ibc_commitment_slot(path);
        let answer: Value = self
            .rpc
            .request(
                "eth_getProof",
                vec![
                    json!(self.handler),
                    json!([slot]),
                    json!(format!("{:#x}", height.revision_height)),
                ],
            )
            .await?;
        let nodes = |v: &Value| -> Result<Vec<Bytes>, IbcError> {
            serde_json::from_value(v.clone())
                .map_err(|e| IbcError::Prover(format!("eth_getProof: {e}")))
        };
        let proof = bcs::to_bytes(&StorageProof {
            account_proof: nodes(&answer["accountProof"])?,
            storage_proof: nodes(&answer["storageProof"][0]["proof"])?,
        })
        .map_err(|e| IbcError::Prover(e.to_string()))?;
        signed_proof(&self.lcp, &self.elc_id, path, value, height, proof).await
    }
}

/// Proves the ledger's IBC host store through an LCP node's Ledger ELC: client updates are the
/// chain of host-state proofs from the trusted height; membership proofs are the node's
/// ledger proofs, verified by the ELC and signed by the enclave.
#[derive(Debug)]
pub struct LcpLedgerProver {
    lcp: LcpLink,
    elc_id: String,
    ledger: LedgerEnd,
    /// At most this many host heights in one update.
    pub max_heights: u64,
}

impl LcpLedgerProver {
    /// A prover of the ledger behind `ledger` through ELC `elc_id` of the node behind `lcp`.
    pub fn new(lcp: LcpGrpc, elc_id: String, ledger: LedgerEnd) -> Self {
        LcpLedgerProver {
            lcp: LcpLink::new(lcp),
            elc_id,
            ledger,
            max_heights: 64,
        }
    }

    /// Times every LCP call into `latency`.
    pub fn with_lcp_latency(mut self, latency: Family<MethodLabel, Histogram>) -> Self {
        self.lcp = self.lcp.with_latency(latency);
        self
    }
}

impl Prover for LcpLedgerProver {
    async fn update(&self, trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        let latest = self.ledger.latest().await?.height;
        if latest <= trusted.revision_height {
            return Ok((None, trusted));
        }
        let to = latest.min(trusted.revision_height.saturating_add(self.max_heights));
        let proofs = futures::future::join_all(
            (trusted.revision_height + 1..=to).map(|height| self.ledger.host_proof(height)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let header = bcs::to_bytes(&LedgerHeader {
            trusted_height: trusted.revision_height,
            proofs,
        })
        .map_err(|e| IbcError::Prover(e.to_string()))?;
        let message = signed_update(&self.lcp, &self.elc_id, header).await?;
        Ok((Some(message), IbcHeight::at(to)))
    }

    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        let (stored, proof) = self.ledger.query(path, height.revision_height).await?;
        if stored.as_deref() != value {
            return Err(IbcError::Prover(format!(
                "{path} does not hold the value to prove at ledger height {}",
                height.revision_height
            )));
        }
        signed_proof(
            &self.lcp,
            &self.elc_id,
            path,
            value,
            height,
            proof.to_bytes(),
        )
        .await
    }
}

/// LCP's signed UpdateState for `header` (the ELC's own header form) of ELC `elc_id`, as the
/// LCP client's `UpdateClientMessage` (a protobuf `Any`).
async fn signed_update(lcp: &LcpLink, elc_id: &str, header: Vec<u8>) -> Result<Bytes, IbcError> {
    let signed = lcp
        .update_client(proto::UpdateClientRequest {
            client_id: elc_id.to_string(),
            header,
            now_unix_ns: 0,
        })
        .await?;
    Ok(Bytes::from(wire::any(
        wire::UPDATE_CLIENT_URL,
        &UpdateClientMessage {
            proxy_message: signed.message,
            signatures: vec![signed.signature],
        },
    )))
}

/// LCP's signed verification of `proof` (the source chain's own proof form) of `value` (None:
/// absence) at `path`, as the LCP client's `CommitmentProofs`.
async fn signed_proof(
    lcp: &LcpLink,
    elc_id: &str,
    path: &str,
    value: Option<&[u8]>,
    height: IbcHeight,
    proof: Vec<u8>,
) -> Result<Bytes, IbcError> {
    let signed = match value {
        Some(v) => {
            lcp.verify_membership(proto::VerifyMembershipRequest {
                client_id: elc_id.to_string(),
                height: height.revision_height,
                proof,
                path: path.as_bytes().to_vec(),
                value: v.to_vec(),
            })
            .await?
        }
        None => {
            lcp.verify_non_membership(proto::VerifyNonMembershipRequest {
                client_id: elc_id.to_string(),
                height: height.revision_height,
                proof,
                path: path.as_bytes().to_vec(),
            })
            .await?
        }
    };
    Ok(Bytes::from(
        CommitmentProofs {
            message: signed.message,
            signatures: vec![signed.signature],
        }
        .encode(),
    ))
}

/// How the LCP client on the destination is configured.
#[derive(Debug, Clone)]
pub struct LcpClientParams {
    /// The client type the LCP client contract is registered under on the destination's
    /// handler (`lcp-client`, as Datachain's LCP names it; ICS-24 client ids need 9 characters
    /// at least, so a type of 3 letters would make ids the counterparty refuses).
    pub client_type: String,
    /// Seconds a key stays valid after its attestation.
    pub key_expiration: u64,
    /// Quote statuses accepted besides OK.
    pub allowed_quote_statuses: Vec<String>,
    /// The QBFT ELC's trusting period.
    pub trusting_period: Duration,
    /// The QBFT ELC's clock drift bound.
    pub max_clock_drift: Duration,
}

impl Default for LcpClientParams {
    fn default() -> Self {
        LcpClientParams {
            client_type: "lcp-client".into(),
            key_expiration: 86_400,
            allowed_quote_statuses: vec![],
            trusting_period: Duration::from_secs(14 * 86_400),
            max_clock_drift: Duration::from_secs(10),
        }
    }
}

/// Creates the QBFT ELC of the EVM chain behind `src_rpc` (handler `src_handler`) in LCP from
/// the chain's current header; the ELC's id and its signed initial state.
pub async fn create_qbft_elc(
    lcp: &mut LcpGrpc,
    src_rpc: &FailoverRpc,
    src_handler: Address,
    params: &LcpClientParams,
) -> Result<(String, proto::SignedResponse), IbcError> {
    let head = src_rpc.block_number().await?;
    let (rlp, block) = header_rlp(src_rpc, head).await?;
    let header = kh_qbft::Header::decode(&rlp)
        .map_err(|e| IbcError::Prover(format!("block {head}: {e}")))?;
    let hash: B256 = serde_json::from_value(block["hash"].clone())
        .map_err(|e| IbcError::Prover(format!("block {head} hash: {e}")))?;
    let state_root: B256 = serde_json::from_value(block["stateRoot"].clone())
        .map_err(|e| IbcError::Prover(format!("block {head} stateRoot: {e}")))?;
    let timestamp = quantity(&block["timestamp"])
        .ok_or_else(|| IbcError::Prover(format!("block {head}: no timestamp")))?;
    let client_state = QbftClientState {
        chain_id: src_rpc.chain_id(),
        ibc_address: src_handler,
        layout: StorageLayout::YuiIbcStore,
        trusting_period: params.trusting_period,
        max_clock_drift: params.max_clock_drift,
        latest_height: head,
        frozen: false,
    };
    let consensus = QbftConsensusState {
        block_hash: hash,
        state_root,
        timestamp,
        validators: header.extra_data().validators.clone(),
    };
    create_elc(lcp, "qbft", &client_state, &consensus).await
}

/// The trust a ledger client starts from, read off a host state proof from the relayer's own
/// node: the notary that notarised it and the host operators of the state.
pub fn ledger_trust(proof: &HostStateProof) -> Result<HostTrust, IbcError> {
    let notaries: Vec<kh_ledger::Party> = proof
        .tx
        .filtered
        .whole_group(kh_ledger::ComponentGroup::Notary)
        .map_err(|e| IbcError::Prover(format!("host state proof: {e}")))?;
    let [notary] = notaries.as_slice() else {
        return Err(IbcError::Prover(format!(
            "a host state proof with {} notary components",
            notaries.len()
        )));
    };
    let state = proof
        .claimed_state()
        .map_err(|e| IbcError::Prover(format!("host state proof: {e}")))?;
    let trust = HostTrust {
        notary: notary.owning_key,
        operators: state.operators,
    };
    proof
        .verify(&trust)
        .map_err(|e| IbcError::Prover(format!("host state proof: {e}")))?;
    Ok(trust)
}

/// Creates the Ledger ELC of the ledger behind `src` in LCP from the host's latest state; the
/// ELC's id and its signed initial state.
pub async fn create_ledger_elc(
    lcp: &mut LcpGrpc,
    src: &LedgerEnd,
    params: &LcpClientParams,
) -> Result<(String, proto::SignedResponse), IbcError> {
    let latest = match src.latest().await {
        Ok(latest) => latest,
        // A host at its genesis has no store to prove yet: one (empty) host transaction gives
        // it height 1.
        Err(_) => {
            src.submit_messages(&[]).await?;
            src.latest().await?
        }
    };
    let proof = src.host_proof(latest.height).await?;
    let trust = ledger_trust(&proof)?;
    let (height, consensus) = kh_elc::LedgerClient::consensus_state_of(&trust, &proof)
        .map_err(|e| IbcError::Prover(format!("host state proof: {e}")))?;
    let client_state = kh_elc::LedgerClientState {
        trust,
        max_clock_drift: params.max_clock_drift,
        latest_height: height,
        frozen: false,
    };
    create_elc(lcp, "ledger", &client_state, &consensus).await
}

async fn create_elc<S: serde::Serialize, C: serde::Serialize>(
    lcp: &mut LcpGrpc,
    client_type: &str,
    client_state: &S,
    consensus: &C,
) -> Result<(String, proto::SignedResponse), IbcError> {
    let created = lcp
        .create_client(proto::CreateClientRequest {
            client_id: String::new(),
            client_type: client_type.into(),
            client_state: bcs::to_bytes(client_state)
                .map_err(|e| IbcError::Prover(e.to_string()))?,
            consensus_state: bcs::to_bytes(consensus)
                .map_err(|e| IbcError::Prover(e.to_string()))?,
        })
        .await
        .map_err(lcp_err)?
        .into_inner();
    let signed = created
        .proof
        .ok_or_else(|| IbcError::Prover("CreateClient without its signed state".into()))?;
    Ok((created.client_id, signed))
}

/// A chain that hosts LCP clients: it creates one and updates it.
pub trait ClientHost {
    /// Creates a client from protobuf `Any` states; sets and returns its id.
    fn create_client(
        &mut self,
        client_type: &str,
        client_state: Bytes,
        consensus_state: Bytes,
    ) -> impl std::future::Future<Output = Result<String, IbcError>> + Send;
    /// Updates the client with a client message (a protobuf `Any`).
    fn update_client(
        &self,
        message: Bytes,
    ) -> impl std::future::Future<Output = Result<(), IbcError>> + Send;
}

impl ClientHost for EvmEnd {
    async fn create_client(
        &mut self,
        client_type: &str,
        client_state: Bytes,
        consensus_state: Bytes,
    ) -> Result<String, IbcError> {
        EvmEnd::create_client(self, client_type, client_state, consensus_state).await
    }
    async fn update_client(&self, message: Bytes) -> Result<(), IbcError> {
        EvmEnd::update_client(self, message).await.map(|_| ())
    }
}

impl ClientHost for LedgerEnd {
    async fn create_client(
        &mut self,
        _client_type: &str,
        client_state: Bytes,
        consensus_state: Bytes,
    ) -> Result<String, IbcError> {
        let decode = |b: &Bytes| {
            ibc_proto::google::protobuf::Any::decode(b.as_ref())
                .map_err(|e| IbcError::Decode(e.to_string()))
        };
        let msg = ibc_proto::ibc::core::client::v1::MsgCreateClient {
            client_state: Some(decode(&client_state)?),
            consensus_state: Some(decode(&consensus_state)?),
            signer: crate::ledger_ibc::SIGNER.into(),
        };
        let tx = self
            .submit_messages(&[ibc_proto::google::protobuf::Any {
                type_url: "/ibc.core.client.v1.MsgCreateClient".into(),
                value: msg.encode_to_vec(),
            }])
            .await?;
        let events = self.events_of(&tx).await?;
        let id = events
            .iter()
            .find(|e| e.kind == "create_client")
            .and_then(|e| e.attribute("client_id"))
            .ok_or(IbcError::MissingEvent("create_client"))?;
        self.client_id = id.to_string();
        Ok(self.client_id.clone())
    }
    async fn update_client(&self, message: Bytes) -> Result<(), IbcError> {
        crate::chain::Chain::submit(self, vec![crate::chain::Datagram::UpdateClient(message)]).await
    }
}

/// Creates the LCP client on `dst` from an ELC's signed initial state (`init`, from
/// [`create_qbft_elc`] / [`create_ledger_elc`]) and registers every enclave key of the node
/// there; the client's id.
pub async fn create_lcp_client_on<D: ClientHost>(
    lcp: &mut LcpGrpc,
    init: &proto::SignedResponse,
    dst: &mut D,
    params: &LcpClientParams,
) -> Result<String, IbcError> {
    let ProxyMessage::UpdateState(init) = ProxyMessage::decode(&init.message)
        .map_err(|e| IbcError::Prover(format!("CreateClient message: {e}")))?
    else {
        return Err(IbcError::Prover(
            "CreateClient did not sign an UpdateState".into(),
        ));
    };
    let info = lcp
        .enclave_info(proto::EnclaveInfoRequest {})
        .await
        .map_err(lcp_err)?
        .into_inner();
    let post = init.post_height;
    let client_state = ClientState {
        mrenclave: info.mrenclave,
        key_expiration: params.key_expiration,
        frozen: false,
        latest_height: Some(wire::ProtoHeight {
            revision_number: post.revision_number,
            revision_height: post.revision_height,
        }),
        allowed_quote_statuses: params.allowed_quote_statuses.clone(),
        allowed_advisory_ids: vec![],
        operators: vec![],
        operators_nonce: 0,
        operators_threshold_numerator: 0,
        operators_threshold_denominator: 0,
    };
    let consensus_state = ConsensusState {
        state_id: init.post_state_id.0.to_vec(),
        timestamp: u64::try_from(init.timestamp_ns)
            .map_err(|_| IbcError::Prover("timestamp out of range".into()))?,
    };
    let id = dst
        .create_client(
            &params.client_type,
            Bytes::from(wire::any(wire::CLIENT_STATE_URL, &client_state)),
            Bytes::from(wire::any(wire::CONSENSUS_STATE_URL, &consensus_state)),
        )
        .await?;
    register_keys(lcp, dst).await?;
    Ok(id)
}

/// Sets up one direction of a path between EVM chains: creates the QBFT ELC of the source in
/// LCP, the LCP client on `dst` (setting `dst.client_id`) and registers the node's enclave keys
/// there. Returns the ELC's id.
pub async fn create_lcp_client(
    lcp: &mut LcpGrpc,
    src_rpc: &FailoverRpc,
    src_handler: Address,
    dst: &mut EvmEnd,
    params: &LcpClientParams,
) -> Result<String, IbcError> {
    let (elc, init) = create_qbft_elc(lcp, src_rpc, src_handler, params).await?;
    create_lcp_client_on(lcp, &init, dst, params).await?;
    Ok(elc)
}

/// Has the LCP node generate (and attest) a new enclave key when its freshest key has less than
/// a quarter of `key_expiration` (seconds, the LCP clients' key validity) left at `now` (Unix
/// seconds), so that the new key is registered on the chains before the old one expires there.
/// Whether it generated one.
pub async fn rotate_key(
    lcp: &mut LcpGrpc,
    key_expiration: u64,
    now: u64,
) -> Result<bool, IbcError> {
    let keys = lcp
        .available_enclave_keys(proto::AvailableEnclaveKeysRequest {})
        .await
        .map_err(lcp_err)?
        .into_inner()
        .keys;
    let valid_until = keys
        .iter()
        .map(|k| {
            k.attested_at
                .saturating_add(key_expiration)
                .min(k.expires_at)
        })
        .max();
    if valid_until.is_some_and(|until| until.saturating_sub(now) > key_expiration / 4) {
        return Ok(false);
    }
    lcp.generate_enclave_key(proto::GenerateEnclaveKeyRequest { operator: vec![] })
        .await
        .map_err(lcp_err)?;
    Ok(true)
}

/// Registers every enclave key the LCP node offers on `dst`'s LCP client (a key already
/// registered is registered again: the client accepts the same report twice).
pub async fn register_keys<D: ClientHost>(lcp: &mut LcpGrpc, dst: &D) -> Result<usize, IbcError> {
    let keys = lcp
        .available_enclave_keys(proto::AvailableEnclaveKeysRequest {})
        .await
        .map_err(lcp_err)?
        .into_inner()
        .keys;
    for key in &keys {
        let report = kh_lcp::SignedReport::from_json(key.report.as_bytes())
            .map_err(|e| IbcError::Prover(format!("enclave key report: {e}")))?;
        let message = RegisterEnclaveKeyMessage {
            report: report.avr,
            signature: report.signature,
            signing_cert: report.signing_cert,
            operator_signature: vec![],
        };
        dst.update_client(Bytes::from(wire::any(wire::REGISTER_URL, &message)))
            .await?;
    }
    Ok(keys.len())
}
