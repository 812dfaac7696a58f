//! Shared helpers of the LCP client tests: the vectors of `vectors/lcp`, the LCP protobuf
//! messages (built with prost, independently of the Solidity decoder), and a revm chain with
//! an `LCPAttestation` + `LCPClient` deployed.
#![allow(dead_code, reason = "each test binary uses a part of the helper")]

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolConstructor, SolError};
use base64::Engine as _;
use kh_contracts::{LCPAttestation, LCPClient};
use prost::Message;
use serde_json::Value;

use crate::revm_chain::{ALICE, Chain, OWNER};

pub(crate) const HANDLER: Address = OWNER;
pub(crate) const SUBMITTER: Address = ALICE;

pub(crate) fn vector_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/lcp")
        .join(rel)
}

pub(crate) fn json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(vector_path(rel)).unwrap()).unwrap()
}

pub(crate) fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

pub(crate) fn der(rel: &str) -> Vec<u8> {
    std::fs::read(vector_path(rel)).unwrap()
}

/// A `*-avr` vector file.
#[derive(Clone)]
pub(crate) struct Avr {
    pub(crate) avr: String,
    pub(crate) signature: Vec<u8>,
    pub(crate) signing_cert: Vec<u8>,
    pub(crate) mrenclave: [u8; 32],
}

impl Avr {
    pub(crate) fn read(rel: &str) -> Self {
        let j = json(rel);
        Avr {
            avr: j["avr"].as_str().unwrap().to_string(),
            signature: b64(&j["signature"]),
            signing_cert: b64(&j["signing_cert"]),
            mrenclave: j
                .get("mrenclave")
                .map(|m| b64(m).try_into().unwrap())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn from_signed(r: &kh_lcp::SignedReport, mrenclave: [u8; 32]) -> Self {
        Avr {
            avr: r.avr.clone(),
            signature: r.signature.clone(),
            signing_cert: r.signing_cert.clone(),
            mrenclave,
        }
    }

    /// (isvEnclaveQuoteStatus, advisoryIDs) of the report.
    pub(crate) fn status_and_advisories(&self) -> (String, Vec<String>) {
        let j: Value = serde_json::from_str(&self.avr).unwrap();
        let status = j["isvEnclaveQuoteStatus"].as_str().unwrap().to_string();
        let adv = j["advisoryIDs"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        (status, adv)
    }
}

// ---- protobuf messages (ibc.lightclients.lcp.v1) -------------------------------------------------

pub(crate) use kh_lcp::wire::{
    CLIENT_STATE_URL, CONSENSUS_STATE_URL, ClientState as LcpClientState,
    ConsensusState as LcpConsensusState, REGISTER_URL, RegisterEnclaveKeyMessage,
    UPDATE_CLIENT_URL, UpdateClientMessage,
};

pub(crate) fn any(type_url: &str, value: Vec<u8>) -> Vec<u8> {
    ibc_proto::google::protobuf::Any {
        type_url: type_url.into(),
        value,
    }
    .encode_to_vec()
}

/// A client state allowing the report's status and advisories (as lcp-solidity's tests build it).
pub(crate) fn client_state(
    avr: &Avr,
    latest: kh_lcp::Height,
    operators: &[Address],
    threshold: (u64, u64),
) -> LcpClientState {
    let (status, advisories) = avr.status_and_advisories();
    LcpClientState {
        mrenclave: avr.mrenclave.to_vec(),
        key_expiration: 604_800,
        frozen: false,
        latest_height: Some(kh_lcp::wire::ProtoHeight {
            revision_number: latest.revision_number,
            revision_height: latest.revision_height,
        }),
        allowed_quote_statuses: vec![status],
        allowed_advisory_ids: advisories,
        operators: operators.iter().map(|a| a.to_vec()).collect(),
        operators_nonce: 0,
        operators_threshold_numerator: threshold.0,
        operators_threshold_denominator: threshold.1,
    }
}

pub(crate) fn consensus_state_any(state_id: [u8; 32], timestamp_ns: u64) -> Vec<u8> {
    any(
        CONSENSUS_STATE_URL,
        LcpConsensusState {
            state_id: state_id.to_vec(),
            timestamp: timestamp_ns,
        }
        .encode_to_vec(),
    )
}

pub(crate) fn update_message_any(proxy_message: &[u8], signatures: &[Vec<u8>]) -> Vec<u8> {
    any(
        UPDATE_CLIENT_URL,
        UpdateClientMessage {
            proxy_message: proxy_message.to_vec(),
            signatures: signatures.to_vec(),
        }
        .encode_to_vec(),
    )
}

pub(crate) fn height(h: kh_lcp::Height) -> LCPClient::Height {
    LCPClient::Height {
        revisionNumber: h.revision_number,
        revisionHeight: h.revision_height,
    }
}

/// Whether `revert` is the custom error `E`.
pub(crate) fn is<E: SolError>(revert: &Bytes) -> bool {
    revert.len() >= 4 && revert[..4] == E::SELECTOR
}

/// A chain with LCPAttestation and LCPClient (handler = [`HANDLER`]) deployed at `at`.
pub(crate) struct Lcp {
    pub(crate) chain: Chain,
    pub(crate) client: Address,
    pub(crate) attestation: Address,
}

impl Lcp {
    pub(crate) fn deploy(root_der: &[u8], at: u64, development_mode: bool) -> Self {
        let mut chain = Chain::new();
        chain.set_block(1, at);
        let attestation = chain.deploy(OWNER, &LCPAttestation::BYTECODE, vec![]);
        let client = chain.deploy(
            OWNER,
            &LCPClient::BYTECODE,
            LCPClient::constructorCall {
                handler_: HANDLER,
                attestation_: attestation,
                rootCert: root_der.to_vec().into(),
                developmentMode_: development_mode,
            }
            .abi_encode(),
        );
        Lcp {
            chain,
            client,
            attestation,
        }
    }

    pub(crate) fn warp(&mut self, t: u64) {
        let (n, _) = self.chain.block();
        self.chain.set_block(n + 1, t);
    }

    pub(crate) fn init(
        &mut self,
        id: &str,
        cs: &LcpClientState,
        consensus: Vec<u8>,
    ) -> Result<LCPClient::Height, Bytes> {
        self.chain
            .call(
                HANDLER,
                self.client,
                LCPClient::initializeClientCall {
                    clientId: id.into(),
                    clientState: any(CLIENT_STATE_URL, cs.encode_to_vec()).into(),
                    consensusState: consensus.into(),
                },
            )
            .map(|(h, _)| h)
    }

    /// Direct registration (any sender).
    pub(crate) fn register(
        &mut self,
        id: &str,
        avr: &Avr,
        operator_sig: &[u8],
    ) -> Result<(), Bytes> {
        self.chain
            .call(
                SUBMITTER,
                self.client,
                LCPClient::registerEnclaveKeyCall {
                    clientId: id.into(),
                    message: LCPClient::RegisterEnclaveKeyMessage {
                        report: avr.avr.clone(),
                        signature: avr.signature.clone().into(),
                        signingCert: avr.signing_cert.clone().into(),
                        operatorSignature: operator_sig.to_vec().into(),
                    },
                },
            )
            .map(|_| ())
    }

    pub(crate) fn update(
        &mut self,
        id: &str,
        message: &[u8],
        sigs: &[Vec<u8>],
    ) -> Result<LCPClient::updateClientReturn, Bytes> {
        self.update_raw(id, update_message_any(message, sigs))
    }

    pub(crate) fn update_raw(
        &mut self,
        id: &str,
        client_message: Vec<u8>,
    ) -> Result<LCPClient::updateClientReturn, Bytes> {
        self.chain
            .call(
                HANDLER,
                self.client,
                LCPClient::updateClientCall {
                    clientId: id.into(),
                    clientMessage: client_message.into(),
                },
            )
            .map(|(r, _)| r)
    }

    pub(crate) fn verify_membership(
        &mut self,
        id: &str,
        h: kh_lcp::Height,
        proof: Vec<u8>,
        prefix: &[u8],
        path: &[u8],
        value: Option<&[u8]>,
    ) -> Result<bool, Bytes> {
        match value {
            Some(v) => self
                .chain
                .call(
                    SUBMITTER,
                    self.client,
                    LCPClient::verifyMembershipCall {
                        clientId: id.into(),
                        height: height(h),
                        _2: 0,
                        _3: 0,
                        proof: proof.into(),
                        prefix: prefix.to_vec().into(),
                        path: path.to_vec().into(),
                        value: v.to_vec().into(),
                    },
                )
                .map(|(b, _)| b),
            None => self
                .chain
                .call(
                    SUBMITTER,
                    self.client,
                    LCPClient::verifyNonMembershipCall {
                        clientId: id.into(),
                        height: height(h),
                        _2: 0,
                        _3: 0,
                        proof: proof.into(),
                        prefix: prefix.to_vec().into(),
                        path: path.to_vec().into(),
                    },
                )
                .map(|(b, _)| b),
        }
    }

    pub(crate) fn key_info(&mut self, id: &str, key: Address) -> (u64, Address) {
        let (r, _) = self
            .chain
            .call(
                SUBMITTER,
                self.client,
                LCPClient::getEnclaveKeyInfoCall {
                    clientId: id.into(),
                    key,
                },
            )
            .unwrap();
        (r._0, r._1)
    }

    pub(crate) fn consensus(&mut self, id: &str, h: kh_lcp::Height) -> ([u8; 32], u64) {
        let (r, _) = self
            .chain
            .call(
                SUBMITTER,
                self.client,
                LCPClient::getConsensusStateCall {
                    clientId: id.into(),
                    height: height(h),
                },
            )
            .unwrap();
        (r._0.0, r._1)
    }

    pub(crate) fn latest(&mut self, id: &str) -> kh_lcp::Height {
        let (r, _) = self
            .chain
            .call(
                SUBMITTER,
                self.client,
                LCPClient::getLatestHeightCall {
                    clientId: id.into(),
                },
            )
            .unwrap();
        kh_lcp::Height::new(r.revisionNumber, r.revisionHeight)
    }
}

/// The `U256` of a `u64` (for storage reads).
pub(crate) fn u(v: u64) -> U256 {
    U256::from(v)
}
