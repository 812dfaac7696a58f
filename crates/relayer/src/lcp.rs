//! LCP as the relayer's prover (DESIGN §1): the relayer feeds an LCP node the source chain's
//! headers and `eth_getProof` answers; the node's enclave verifies them with the QBFT ELC and
//! signs the result; the destination's LCP client checks one signature.
//!
//! [`LcpEvmProver`] proves an EVM chain's IBC store to the LCP client on the other chain;
//! [`create_lcp_client`] sets a path direction up: the ELC in LCP from the source's current
//! header, the LCP client on the destination's handler from the ELC's signed initial state, and
//! the node's enclave keys registered there from their attestation reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes};
use kh_contracts::ibc_commitment_slot;
use kh_elc::{QbftClientState, QbftConsensusState, QbftHeader, StorageLayout, StorageProof};
use kh_lcp::wire::{
    self, ClientState, ConsensusState, RegisterEnclaveKeyMessage, UpdateClientMessage,
};
use kh_lcp::{CommitmentProofs, ProxyMessage};
use kh_lcp_service::proto;
use kh_lcp_service::service::Client as LcpGrpc;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::evm::ibc::{EvmEnd, IbcError, IbcHeight, Prover};
use crate::evm::rpc::{FailoverRpc, quantity};

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
    lcp: Mutex<LcpGrpc>,
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
            lcp: Mutex::new(lcp),
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
}

impl Prover for LcpEvmProver {
    async fn update(&self, trusted: IbcHeight) -> Result<(Bytes, IbcHeight), IbcError> {
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
        let signed = self
            .lcp
            .lock()
            .await
            .update_client(proto::UpdateClientRequest {
                client_id: self.elc_id.clone(),
                header,
                now_unix_ns: 0,
            })
            .await
            .map_err(lcp_err)?
            .into_inner();
        let message = wire::any(
            wire::UPDATE_CLIENT_URL,
            &UpdateClientMessage {
                proxy_message: signed.message,
                signatures: vec![signed.signature],
            },
        );
        Ok((
            Bytes::from(message),
            IbcHeight {
                revision_number: 0,
                revision_height: head,
            },
        ))
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
        let mut lcp = self.lcp.lock().await;
        let signed = match value {
            Some(v) => lcp
                .verify_membership(proto::VerifyMembershipRequest {
                    client_id: self.elc_id.clone(),
                    height: height.revision_height,
                    proof,
                    path: path.as_bytes().to_vec(),
                    value: v.to_vec(),
                })
                .await
                .map_err(lcp_err)?,
            None => lcp
                .verify_non_membership(proto::VerifyNonMembershipRequest {
                    client_id: self.elc_id.clone(),
                    height: height.revision_height,
                    proof,
                    path: path.as_bytes().to_vec(),
                })
                .await
                .map_err(lcp_err)?,
        }
        .into_inner();
        Ok(Bytes::from(
            CommitmentProofs {
                message: signed.message,
                signatures: vec![signed.signature],
            }
            .encode(),
        ))
    }
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

/// Sets up one direction of a path: creates the QBFT ELC of the source (the chain behind
/// `src_rpc`, handler `src_handler`) in LCP from the source's current header, creates the LCP
/// client on `dst` from the ELC's signed initial state (setting `dst.client_id`), and registers
/// every enclave key of the node there. Returns the ELC's id.
pub async fn create_lcp_client(
    lcp: &mut LcpGrpc,
    src_rpc: &FailoverRpc,
    src_handler: Address,
    dst: &mut EvmEnd,
    params: &LcpClientParams,
) -> Result<String, IbcError> {
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
    let created = lcp
        .create_client(proto::CreateClientRequest {
            client_id: String::new(),
            client_type: "qbft".into(),
            client_state: bcs::to_bytes(&client_state)
                .map_err(|e| IbcError::Prover(e.to_string()))?,
            consensus_state: bcs::to_bytes(&consensus)
                .map_err(|e| IbcError::Prover(e.to_string()))?,
        })
        .await
        .map_err(lcp_err)?
        .into_inner();
    let signed = created
        .proof
        .ok_or_else(|| IbcError::Prover("CreateClient without its signed state".into()))?;
    let ProxyMessage::UpdateState(init) = ProxyMessage::decode(&signed.message)
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
    dst.create_client(
        &params.client_type,
        Bytes::from(wire::any(wire::CLIENT_STATE_URL, &client_state)),
        Bytes::from(wire::any(wire::CONSENSUS_STATE_URL, &consensus_state)),
    )
    .await?;
    register_keys(lcp, dst).await?;
    Ok(created.client_id)
}

/// Registers every enclave key the LCP node offers on `dst`'s LCP client (a key already
/// registered is registered again: the client accepts the same report twice).
pub async fn register_keys(lcp: &mut LcpGrpc, dst: &EvmEnd) -> Result<usize, IbcError> {
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
