//! The LCP client on the ledger, end to end with real parts: a ledger network in process (a
//! notary and two host operators on SQLite, the `ibc-host` app configured with the LCP node's
//! simulation attestation root), a QBFT devnet with the IBC stack and the EVM `LCPClient`, and
//! an LCP node (enclave in simulation, in process behind its call boundary) running the QBFT
//! ELC of the devnet and the Ledger ELC of the ledger.
//!
//! Ledger ← EVM: the ledger host creates `lcp-client-0` from the QBFT ELC's signed initial
//! state, refuses an update before any key, registers the enclave key from its simulated
//! attestation report (refusing a key of another MRENCLAVE), applies LCP's signed UpdateState
//! (refusing one byte changed in the message or in the signature, and an unregistered key),
//! and accepts LCP's proofs of the devnet handler's real `ConnectionOpenInit` end and of an
//! absent connection (refusing a changed proof byte and another value); a client whose key
//! expired (host time past the expiry) refuses the key's updates. A real handshake step on the
//! ledger: `MsgConnectionOpenTry` proving, through LCP, the devnet's `ConnectionOpenInit`, the
//! devnet's LCP client of the ledger and its consensus state (the Ledger ELC's state id of the
//! ledger's host state, which the ledger recomputes for its self-check); the same step is
//! refused when the devnet's client of the ledger runs a Ledger ELC of other parameters.
//!
//! EVM ← ledger: the Ledger ELC in LCP verifies the ledger's real host-state proofs; the EVM
//! `LCPClient` accepts the signed update, a membership proof of a ledger IBC value (the
//! ledger's client state of the devnet) and a non-membership proof of an absent connection. A ledger proof missing a host operator's signature,
//! or with a second notary component (signed by every trusted key), is refused by the ELC in
//! the enclave (kh-elc's `every_signature_is_required` and
//! `a_second_notary_component_is_refused_even_when_signed` check the ELC alone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/evm_ibc.rs"]
mod evm_ibc;
#[path = "support/lcp_node.rs"]
mod lcp_node;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{B256, Bytes};
use alloy_sol_types::SolCall;
use evm_ibc::Chain;
use ibc_proto::google::protobuf::Any;
use ibc_proto::ibc::core::client::v1::{Height as RawHeight, MsgCreateClient, MsgUpdateClient};
use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
use ibc_proto::ibc::core::connection::v1 as conn;
use kh_contracts::{IBCConnection as C, LCPClient, ibc_commitment_slot};
use kh_elc::{QbftClientState, QbftConsensusState, QbftHeader, StorageLayout, StorageProof};
use kh_ibc_ledger::{
    GENESIS_FLOW, HostStateProof, HostTrust, IbcHostApp, LedgerProof, ProofCheck, SUBMIT_FLOW,
    SubmitArgs, ledger_elc_client_state,
};
use kh_lcp::wire::{self, ClientState, ConsensusState, RegisterEnclaveKeyMessage};
use kh_lcp::{CommitmentProofs, ProxyMessage};
use kh_lcp_service::enclave::Enclave;
use kh_lcp_service::host::{KeyEntry, unix_now};
use kh_lcp_service::protocol::SignedMessage;
use kh_lcp_service::seal::{PlatformSecret, Sealer};
use kh_lcp_service::{EnclaveHandle, LcpNode};
use kh_ledger::{
    App, ComponentGroup, DEFAULT_FLOW_TIMEOUT, DEFAULT_MAX_TRANSACTION_SIZE, FilteredComponent,
    FlowStart, FlowStatus, InMemoryNetwork, KeyPair, NetworkParameters, Node, NodeConfig, NodeRole,
    Party, PartyName, SecureHash, TransactionSignature,
};
use kh_relayer::evm::handshake::{PREFIX, connection_end};
use kh_relayer::evm::ibc::{EvmEnd, event};
use kh_relayer::evm::rpc::quantity;
use kh_relayer::lcp::header_rlp;
use lcp_node::lcp_chain_and_client;
use prost::Message;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const NAMES: [&str; 3] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
];
const SIGNER: &str = "relayer";

// ---------------------------------------------------------------- the ledger

struct Ledger {
    keys: Vec<(PartyName, KeyPair)>,
    nodes: Vec<Node>,
    hosts: Vec<Arc<IbcHostApp>>,
    _dir: tempfile::TempDir,
}

impl Ledger {
    /// A notary and two host operators, each on its own SQLite database, running the host with
    /// the LCP attestation root `root_der`.
    async fn new(chain_id: &str, root_der: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<(PartyName, KeyPair)> = NAMES
            .iter()
            .map(|n| (n.parse().unwrap(), KeyPair::generate()))
            .collect();
        let parties: Vec<Party> = keys
            .iter()
            .map(|(n, k)| Party {
                name: n.clone(),
                owning_key: k.public(),
            })
            .collect();
        let params = NetworkParameters {
            notary: parties[0].clone(),
            nodes: parties,
            max_transaction_size: DEFAULT_MAX_TRANSACTION_SIZE,
            notary_validating: false,
            validators: vec![],
        };
        let transport = InMemoryNetwork::new();
        let (mut nodes, mut hosts) = (vec![], vec![]);
        for (i, (name, key)) in keys.iter().enumerate() {
            let host = Arc::new(IbcHostApp::with_lcp_attestation_root(
                chain_id,
                root_der.to_vec(),
            ));
            let config = NodeConfig {
                name: name.clone(),
                key: key.clone(),
                database_url: format!("sqlite:{}", dir.path().join(format!("n{i}.db")).display()),
                role: if i == 0 {
                    NodeRole::Notary
                } else {
                    NodeRole::Regular
                },
                network: params.clone(),
                apps: vec![host.clone() as Arc<dyn App>],
                flow_timeout: DEFAULT_FLOW_TIMEOUT,
                failpoint: None,
            };
            let node = Node::open(config, transport.clone()).await.unwrap();
            transport.register(name.clone(), node.receiver());
            nodes.push(node);
            hosts.push(host);
        }
        let ledger = Ledger {
            keys,
            nodes,
            hosts,
            _dir: dir,
        };
        ledger
            .run(json!({"operators": ["PartyA", "PartyB"]}), GENESIS_FLOW)
            .await
            .unwrap();
        ledger
    }

    async fn run(&self, args: Value, flow: &str) -> Result<(), String> {
        let n = &self.nodes[1];
        let id = n.start_flow(FlowStart::new(flow, args)).await.unwrap();
        match n.wait_flow(id, WAIT).await.unwrap() {
            FlowStatus::Completed { .. } => Ok(()),
            FlowStatus::Failed { reason } => Err(reason),
            other => Err(format!("{other:?}")),
        }
    }

    /// Applies `messages` as one host transaction; the height it produced.
    async fn submit(&self, messages: Vec<Any>) -> Result<u64, String> {
        self.run(SubmitArgs::of(&messages), SUBMIT_FLOW).await?;
        Ok(self.height().await)
    }

    async fn height(&self) -> u64 {
        self.hosts[1].height(self.nodes[1].hub()).await.unwrap()
    }

    fn trust(&self) -> HostTrust {
        HostTrust {
            notary: self.keys[0].1.public(),
            operators: vec![self.keys[1].1.public(), self.keys[2].1.public()],
        }
    }

    async fn host_proof(&self, height: u64) -> HostStateProof {
        self.hosts[2]
            .host_state_proof(self.nodes[2].hub(), height)
            .await
            .unwrap()
    }

    /// The value at `key` and its proof at `height`, from PartyB's node.
    async fn proof(&self, key: &str, height: u64) -> (Option<Vec<u8>>, LedgerProof) {
        self.hosts[2]
            .proof(self.nodes[2].hub(), key.as_bytes(), height)
            .await
            .unwrap()
    }

    async fn check(&self, q: ProofCheck) -> Result<(), String> {
        self.hosts[1]
            .check_proof(self.nodes[1].hub(), q)
            .await
            .map_err(|e| e.to_string())
    }

    fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown();
        }
    }
}

fn refused<T: std::fmt::Debug>(result: Result<T, String>, want: &[&str]) -> String {
    match result {
        Err(reason) => {
            assert!(
                want.iter().any(|w| reason.contains(w)),
                "none of {want:?} in: {reason}"
            );
            reason
        }
        Ok(v) => panic!("accepted ({v:?}); expected a refusal with {want:?}"),
    }
}

fn proto_any<M: Message>(type_url: &str, m: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: m.encode_to_vec(),
    }
}

fn create_msg(cs: &ClientState, cons: &ConsensusState) -> Any {
    proto_any(
        "/ibc.core.client.v1.MsgCreateClient",
        &MsgCreateClient {
            client_state: Some(proto_any(wire::CLIENT_STATE_URL, cs)),
            consensus_state: Some(proto_any(wire::CONSENSUS_STATE_URL, cons)),
            signer: SIGNER.into(),
        },
    )
}

fn update_msg(client_id: &str, message: Any) -> Any {
    proto_any(
        "/ibc.core.client.v1.MsgUpdateClient",
        &MsgUpdateClient {
            client_id: client_id.into(),
            client_message: Some(message),
            signer: SIGNER.into(),
        },
    )
}

fn register_wire(key: &KeyEntry) -> RegisterEnclaveKeyMessage {
    let report = kh_lcp::SignedReport::from_json(key.report.as_bytes()).unwrap();
    RegisterEnclaveKeyMessage {
        report: report.avr,
        signature: report.signature,
        signing_cert: report.signing_cert,
        operator_signature: vec![],
    }
}

fn register_any(key: &KeyEntry) -> Any {
    proto_any(wire::REGISTER_URL, &register_wire(key))
}

fn signed_update_any(signed: &SignedMessage) -> Any {
    proto_any(
        wire::UPDATE_CLIENT_URL,
        &wire::UpdateClientMessage {
            proxy_message: signed.message.clone(),
            signatures: vec![signed.signature.clone()],
        },
    )
}

fn proofs_of(signed: &SignedMessage) -> Vec<u8> {
    CommitmentProofs {
        message: signed.message.clone(),
        signatures: vec![signed.signature.clone()],
    }
    .encode()
}

/// The LCP client parameters of an ELC's signed initial state.
fn lcp_client_of(
    init: &SignedMessage,
    mrenclave: [u8; 32],
    key_expiration: u64,
) -> (ClientState, ConsensusState) {
    let ProxyMessage::UpdateState(u) = ProxyMessage::decode(&init.message).unwrap() else {
        panic!("CreateClient signs an UpdateState")
    };
    let post = u.post_height;
    (
        ClientState {
            mrenclave: mrenclave.to_vec(),
            key_expiration,
            frozen: false,
            latest_height: Some(wire::ProtoHeight {
                revision_number: post.revision_number,
                revision_height: post.revision_height,
            }),
            allowed_quote_statuses: vec![],
            allowed_advisory_ids: vec![],
            operators: vec![],
            operators_nonce: 0,
            operators_threshold_numerator: 0,
            operators_threshold_denominator: 0,
        },
        ConsensusState {
            state_id: u.post_state_id.0.to_vec(),
            timestamp: u64::try_from(u.timestamp_ns).unwrap(),
        },
    )
}

// ---------------------------------------------------------------- LCP and the devnet

/// An LCP node in `dir` whose enclave build is `mrenclave`, with one attested key.
fn lcp_node(dir: &std::path::Path, mrenclave: [u8; 32]) -> LcpNode {
    let platform = PlatformSecret::load_or_create(&dir.join("platform-secret")).unwrap();
    let enclave =
        EnclaveHandle::in_process(Enclave::new(Sealer::new(&platform, mrenclave))).unwrap();
    let node = LcpNode::open(dir, enclave, 3600).unwrap();
    node.generate_key(None).unwrap();
    node
}

/// Creates the QBFT ELC of the devnet's current block in LCP: its id and signed initial state.
async fn qbft_elc(lcp: &LcpNode, c: &Chain) -> (String, SignedMessage, u64) {
    let head = c.rpc.block_number().await.unwrap();
    let (rlp, block) = header_rlp(&c.rpc, head).await.unwrap();
    let header = kh_qbft::Header::decode(&rlp).unwrap();
    let cs = QbftClientState {
        chain_id: c.rpc.chain_id(),
        ibc_address: c.handler,
        layout: StorageLayout::YuiIbcStore,
        trusting_period: Duration::from_secs(14 * 86_400),
        max_clock_drift: Duration::from_secs(10),
        latest_height: head,
        frozen: false,
    };
    let cons = QbftConsensusState {
        block_hash: serde_json::from_value::<B256>(block["hash"].clone()).unwrap(),
        state_root: serde_json::from_value::<B256>(block["stateRoot"].clone()).unwrap(),
        timestamp: quantity(&block["timestamp"]).unwrap(),
        validators: header.extra_data().validators.clone(),
    };
    let (id, signed, _) = lcp
        .create_client(
            None,
            "qbft",
            bcs::to_bytes(&cs).unwrap(),
            bcs::to_bytes(&cons).unwrap(),
        )
        .unwrap();
    (id, signed, head)
}

/// LCP's signed update of QBFT ELC `elc` (trusting `trusted`) to a later devnet block with a
/// later timestamp; the block's height.
async fn qbft_update(lcp: &LcpNode, c: &Chain, elc: &str, trusted: u64) -> (SignedMessage, u64) {
    let (_, trusted_block) = header_rlp(&c.rpc, trusted).await.unwrap();
    let trusted_time = quantity(&trusted_block["timestamp"]).unwrap();
    let mut tries = 0;
    let (head, rlp) = loop {
        let head = c.rpc.block_number().await.unwrap();
        if head > trusted {
            let (rlp, block) = header_rlp(&c.rpc, head).await.unwrap();
            if quantity(&block["timestamp"]).unwrap() > trusted_time {
                break (head, rlp);
            }
        }
        tries += 1;
        assert!(tries < 600, "no devnet block after {trusted}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let header = bcs::to_bytes(&QbftHeader {
        header_rlp: rlp,
        trusted_height: trusted,
    })
    .unwrap();
    let (signed, _) = lcp.update_client(elc, header, unix_now()).unwrap();
    (signed, head)
}

/// LCP's signed (non-)membership of `path` in the devnet handler's store at `height`.
async fn qbft_prove(
    lcp: &LcpNode,
    c: &Chain,
    elc: &str,
    path: &str,
    value: Option<&[u8]>,
    height: u64,
) -> SignedMessage {
    let answer: Value = c
        .rpc
        .request(
            "eth_getProof",
            vec![
                json!(c.handler),
                json!([ibc_commitment_slot(path)]),
                json!(format!("{height:#x}")),
            ],
        )
        .await
        .unwrap();
    let nodes = |v: &Value| -> Vec<Bytes> { serde_json::from_value(v.clone()).unwrap() };
    let proof = bcs::to_bytes(&StorageProof {
        account_proof: nodes(&answer["accountProof"]),
        storage_proof: nodes(&answer["storageProof"][0]["proof"]),
    })
    .unwrap();
    lcp.verify_state(
        elc,
        height,
        proof,
        path.as_bytes().to_vec(),
        value.map(<[u8]>::to_vec),
    )
    .unwrap()
    .0
}

struct EvmCheck<'a> {
    end: &'a EvmEnd,
    client: alloy_primitives::Address,
    height: u64,
    path: String,
    /// `None`: non-membership.
    value: Option<Vec<u8>>,
    proof: Vec<u8>,
}

/// The EVM `LCPClient`'s `verifyMembership` / `verifyNonMembership` (view calls).
async fn evm_verify(c: EvmCheck<'_>) -> Result<bool, String> {
    let height = LCPClient::Height {
        revisionNumber: 0,
        revisionHeight: c.height,
    };
    let (client_id, proof, path) = (
        c.end.client_id.clone(),
        Bytes::from(c.proof),
        Bytes::from(c.path.into_bytes()),
    );
    let prefix = Bytes::from_static(PREFIX);
    let call = match c.value {
        Some(v) => LCPClient::verifyMembershipCall {
            clientId: client_id,
            height,
            _2: 0,
            _3: 0,
            proof,
            prefix,
            path,
            value: v.into(),
        }
        .abi_encode(),
        None => LCPClient::verifyNonMembershipCall {
            clientId: client_id,
            height,
            _2: 0,
            _3: 0,
            proof,
            prefix,
            path,
        }
        .abi_encode(),
    };
    let out = c
        .end
        .submitter
        .call(c.client, &call)
        .await
        .map_err(|e| e.to_string())?;
    // Both return one bool.
    LCPClient::verifyMembershipCall::abi_decode_returns(&out).map_err(|e| e.to_string())
}

/// A `MsgConnectionOpenTry` on the ledger's client `client` of the devnet.
struct OpenTry<'a> {
    client: &'a str,
    counterparty_client: String,
    counterparty_connection: String,
    client_state: Vec<u8>,
    proof_height: u64,
    consensus_height: u64,
    proof_init: Vec<u8>,
    proof_client: Vec<u8>,
    proof_consensus: Vec<u8>,
}

impl OpenTry<'_> {
    fn msg(self) -> Any {
        proto_any(
            "/ibc.core.connection.v1.MsgConnectionOpenTry",
            &conn::MsgConnectionOpenTry {
                client_id: self.client.into(),
                client_state: Some(Any::decode(self.client_state.as_slice()).unwrap()),
                counterparty: Some(conn::Counterparty {
                    client_id: self.counterparty_client,
                    connection_id: self.counterparty_connection,
                    prefix: Some(MerklePrefix {
                        key_prefix: PREFIX.to_vec(),
                    }),
                }),
                delay_period: 0,
                counterparty_versions: vec![conn::Version {
                    identifier: "1".into(),
                    features: vec!["ORDER_ORDERED".into(), "ORDER_UNORDERED".into()],
                }],
                proof_height: Some(RawHeight {
                    revision_number: 0,
                    revision_height: self.proof_height,
                }),
                proof_init: self.proof_init,
                proof_client: self.proof_client,
                proof_consensus: self.proof_consensus,
                consensus_height: Some(RawHeight {
                    revision_number: 0,
                    revision_height: self.consensus_height,
                }),
                signer: SIGNER.into(),
                ..Default::default()
            },
        )
    }
}

/// Waits until Unix time is past `t` seconds (the ledger's host time follows the clock).
async fn wait_past(t: u64) {
    let mut tries = 0;
    while unix_now().as_secs() <= t {
        tries += 1;
        assert!(tries < 400, "the clock does not pass {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- the forged ledger proof

fn two_leaf_group_root(a: SecureHash, b: SecureHash) -> SecureHash {
    let inner = SecureHash::of(&[&a.0, &b.0]);
    SecureHash::of(&[&2u32.to_be_bytes(), &inner.0])
}

fn id_of(group_roots: &[SecureHash]) -> SecureHash {
    let mut level = group_roots.to_vec();
    level.resize(8, SecureHash::ZERO);
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| SecureHash::of(&[&p[0].0, &p[1].0]))
            .collect();
    }
    level[0]
}

/// `p` with a second notary component in its filtered transaction, re-signed by every key of
/// the ledger (notary and operators): consistent and fully signed, but not a host transaction.
fn with_second_notary(ledger: &Ledger, mut p: HostStateProof) -> HostStateProof {
    let ftx = &mut p.tx.filtered;
    let group = ftx
        .groups
        .iter_mut()
        .find(|g| g.group == ComponentGroup::Notary)
        .unwrap();
    let first = group.components[0].clone();
    let leaf = |c: &FilteredComponent| SecureHash::of(&[&c.nonce.0, &c.bytes]);
    let second = FilteredComponent {
        index: 1,
        bytes: first.bytes.clone(),
        nonce: SecureHash::of(&[b"second notary"]),
        path: vec![],
    };
    let (l0, l1) = (leaf(&first), leaf(&second));
    group.count = 2;
    group.components = vec![
        FilteredComponent {
            path: vec![l1],
            ..first
        },
        FilteredComponent {
            path: vec![l0],
            ..second
        },
    ];
    ftx.group_roots[ComponentGroup::Notary as usize] = two_leaf_group_root(l0, l1);
    ftx.id = id_of(&ftx.group_roots);
    ftx.verify().unwrap();
    let id = ftx.id;
    p.tx.signatures = ledger
        .keys
        .iter()
        .map(|(_, k)| TransactionSignature::sign(k, &id))
        .collect();
    p
}

// ---------------------------------------------------------------- the test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_and_evm_verify_each_other_through_lcp() {
    let home = tempfile::tempdir().unwrap();
    let mrenclave = [0x5a; 32];
    let lcp = lcp_node(home.path(), mrenclave);
    let root_der = lcp.attestation_root_der();
    let first_key = lcp.keys().unwrap()[0].clone();
    // Another enclave build on the same (simulated) attestation service.
    let other_home = tempfile::tempdir().unwrap();
    let ca = home.path().join("simulation-ca");
    std::fs::create_dir_all(other_home.path().join("simulation-ca")).unwrap();
    for f in ["root.der", "signing.der", "signing-key.der"] {
        std::fs::copy(ca.join(f), other_home.path().join("simulation-ca").join(f)).unwrap();
    }
    let other = lcp_node(other_home.path(), [0xa5; 32]);
    assert_eq!(other.attestation_root_der(), root_der);

    let ledger = Ledger::new("ledger-lcp", &root_der).await;
    assert_eq!(ledger.submit(vec![]).await.unwrap(), 1);
    let (evm, evm_lcp_client) = lcp_chain_and_client(1701, &root_der).await;

    // ---- ledger ← EVM: lcp-client-0 of the devnet on the ledger.
    let (elc, init, mut trusted) = qbft_elc(&lcp, &evm).await;
    let (cs, cons) = lcp_client_of(&init, mrenclave, 3600);
    ledger.submit(vec![create_msg(&cs, &cons)]).await.unwrap();
    let client = "lcp-client-0";

    // An update before any key is registered.
    let (signed, head) = qbft_update(&lcp, &evm, &elc, trusted).await;
    refused(
        ledger
            .submit(vec![update_msg(client, signed_update_any(&signed))])
            .await,
        &["is not registered"],
    );
    // A key of another enclave build (its report chains to the same root).
    refused(
        ledger
            .submit(vec![update_msg(
                client,
                register_any(&other.keys().unwrap()[0]),
            )])
            .await,
        &["MRENCLAVE"],
    );
    ledger
        .submit(vec![update_msg(client, register_any(&first_key))])
        .await
        .unwrap();
    // One byte changed in the proxy message, then in the signature.
    let mut bad = signed.clone();
    let last = bad.message.len() - 1;
    bad.message[last] ^= 1;
    refused(
        ledger
            .submit(vec![update_msg(client, signed_update_any(&bad))])
            .await,
        &["is not registered", "not the canonical", "not a valid ABI"],
    );
    let mut bad = signed.clone();
    bad.signature[10] ^= 1;
    refused(
        ledger
            .submit(vec![update_msg(client, signed_update_any(&bad))])
            .await,
        &["is not registered", "does not recover"],
    );
    ledger
        .submit(vec![update_msg(client, signed_update_any(&signed))])
        .await
        .unwrap();
    trusted = head;

    // ---- EVM ← ledger: the Ledger ELC in LCP and the EVM's LCP client of the ledger.
    let h0 = ledger.height().await;
    let (ledger_h, ledger_cons) =
        kh_elc::LedgerClient::consensus_state_of(&ledger.trust(), &ledger.host_proof(h0).await)
            .unwrap();
    let (ledger_elc, ledger_init, _) = lcp
        .create_client(
            None,
            "ledger",
            bcs::to_bytes(&ledger_elc_client_state(ledger.trust(), ledger_h)).unwrap(),
            bcs::to_bytes(&ledger_cons).unwrap(),
        )
        .unwrap();
    let mut end = EvmEnd {
        submitter: evm.owner.clone(),
        handler: evm.handler,
        client_id: String::new(),
    };
    let (ecs, econs) = lcp_client_of(&ledger_init, mrenclave, 3600);
    end.create_client(
        "lcp-client",
        wire::any(wire::CLIENT_STATE_URL, &ecs).into(),
        wire::any(wire::CONSENSUS_STATE_URL, &econs).into(),
    )
    .await
    .unwrap();
    assert_eq!(end.client_id, "lcp-client-0");
    let report = kh_lcp::SignedReport::from_json(first_key.report.as_bytes()).unwrap();
    end.update_client(
        wire::any(
            wire::REGISTER_URL,
            &RegisterEnclaveKeyMessage {
                report: report.avr,
                signature: report.signature,
                signing_cert: report.signing_cert,
                operator_signature: vec![],
            },
        )
        .into(),
    )
    .await
    .unwrap();

    // The devnet's ConnectionOpenInit (its client of the ledger, the ledger's of it).
    let r = end
        .handshake_call(C::connectionOpenInitCall {
            m: C::MsgConnectionOpenInit {
                clientId: end.client_id.clone(),
                counterpartyClientId: client.into(),
                counterpartyPrefix: Bytes::from_static(PREFIX),
                delayPeriod: 0,
            },
        })
        .await
        .unwrap();
    let conn_id = event::<C::ConnectionOpenInit>(&r, "ConnectionOpenInit")
        .unwrap()
        .connectionId;
    let init_end = connection_end(&end.client_id, conn::State::Init, client, "");

    // The ledger's client catches up past it and accepts LCP's proof of that end.
    let (signed, head) = qbft_update(&lcp, &evm, &elc, trusted).await;
    ledger
        .submit(vec![update_msg(client, signed_update_any(&signed))])
        .await
        .unwrap();
    let conn_path = format!("connections/{conn_id}");
    let member = qbft_prove(&lcp, &evm, &elc, &conn_path, Some(&init_end), head).await;
    let check = |path: &str, value: Option<Vec<u8>>, proof: Vec<u8>| ProofCheck {
        client_id: client.into(),
        height: (0, head),
        prefix: PREFIX.to_vec(),
        path: path.into(),
        value,
        proof,
    };
    ledger
        .check(check(
            &conn_path,
            Some(init_end.clone()),
            proofs_of(&member),
        ))
        .await
        .unwrap();
    // Another value, a changed proof byte (message, then signature), another path.
    refused(
        ledger
            .check(check(
                &conn_path,
                Some(b"other".to_vec()),
                proofs_of(&member),
            ))
            .await,
        &["value does not match"],
    );
    let mut bad = member.clone();
    let i = bad.message.len() - 40;
    bad.message[i] ^= 1;
    refused(
        ledger
            .check(check(&conn_path, Some(init_end.clone()), proofs_of(&bad)))
            .await,
        &[
            "does not match",
            "is not registered",
            "not the canonical",
            "not a valid ABI",
        ],
    );
    let mut bad = member.clone();
    bad.signature[10] ^= 1;
    refused(
        ledger
            .check(check(&conn_path, Some(init_end.clone()), proofs_of(&bad)))
            .await,
        &["is not registered", "does not recover"],
    );
    refused(
        ledger
            .check(check(
                "connections/connection-9",
                Some(init_end.clone()),
                proofs_of(&member),
            ))
            .await,
        &["path does not match"],
    );
    // Non-membership of a connection the devnet does not have.
    let absent = qbft_prove(&lcp, &evm, &elc, "connections/connection-9", None, head).await;
    ledger
        .check(check("connections/connection-9", None, proofs_of(&absent)))
        .await
        .unwrap();
    refused(
        ledger
            .check(check(&conn_path, None, proofs_of(&absent)))
            .await,
        &["path does not match"],
    );

    // ---- EVM ← ledger: LCP verifies the ledger's host-state proofs; the EVM client accepts.
    let h1 = ledger.height().await;
    let mut proofs = vec![];
    for h in h0 + 1..=h1 {
        proofs.push(ledger.host_proof(h).await);
    }
    let header = kh_elc::LedgerHeader {
        trusted_height: h0,
        proofs: proofs.clone(),
    };
    // Through LCP, a host-state proof missing an operator's signature or with a second notary
    // component is refused by the ELC in the enclave.
    let mut missing = header.clone();
    missing.proofs[0].tx.signatures.remove(1);
    let err = lcp
        .update_client(&ledger_elc, bcs::to_bytes(&missing).unwrap(), unix_now())
        .unwrap_err();
    assert!(err.to_string().contains("enclave refused"), "{err}");
    let mut forged = header.clone();
    forged.proofs[0] = with_second_notary(&ledger, forged.proofs[0].clone());
    let err = lcp
        .update_client(&ledger_elc, bcs::to_bytes(&forged).unwrap(), unix_now())
        .unwrap_err();
    assert!(err.to_string().contains("notary"), "{err}");
    let (signed, _) = lcp
        .update_client(&ledger_elc, bcs::to_bytes(&header).unwrap(), unix_now())
        .unwrap();
    let ProxyMessage::UpdateState(ledger_update) = ProxyMessage::decode(&signed.message).unwrap()
    else {
        panic!("an UpdateState")
    };
    end.update_client(
        wire::any(
            wire::UPDATE_CLIENT_URL,
            &wire::UpdateClientMessage {
                proxy_message: signed.message.clone(),
                signatures: vec![signed.signature.clone()],
            },
        )
        .into(),
    )
    .await
    .unwrap();
    // A membership proof of the ledger's client state of the devnet, at h1.
    let cs_path = format!("clients/{client}/clientState");
    let (value, lproof) = ledger.proof(&cs_path, h1).await;
    let value = value.unwrap();
    let (signed, _) = lcp
        .verify_state(
            &ledger_elc,
            h1,
            lproof.to_bytes(),
            cs_path.clone().into_bytes(),
            Some(value.clone()),
        )
        .unwrap();
    let at = |path: &str, value: Option<Vec<u8>>, proof: Vec<u8>| EvmCheck {
        end: &end,
        client: evm_lcp_client,
        height: h1,
        path: path.into(),
        value,
        proof,
    };
    assert!(
        evm_verify(at(&cs_path, Some(value.clone()), proofs_of(&signed)))
            .await
            .unwrap()
    );
    assert!(
        !evm_verify(at(&cs_path, Some(b"other".to_vec()), proofs_of(&signed)))
            .await
            .unwrap()
    );
    // Non-membership of a connection the ledger does not have.
    let absent_path = "connections/connection-9";
    let (none, absent_proof) = ledger.proof(absent_path, h1).await;
    assert!(none.is_none());
    let (absent, _) = lcp
        .verify_state(
            &ledger_elc,
            h1,
            absent_proof.to_bytes(),
            absent_path.as_bytes().to_vec(),
            None,
        )
        .unwrap();
    assert!(
        evm_verify(at(absent_path, None, proofs_of(&absent)))
            .await
            .unwrap()
    );
    assert!(
        !evm_verify(at(&cs_path, None, proofs_of(&absent)))
            .await
            .unwrap()
    );
    // The same proof missing an operator's signature, or forged with a second notary
    // component: the enclave signs nothing.
    let mut missing = lproof.clone();
    missing.host.tx.signatures.remove(2);
    let err = lcp
        .verify_state(
            &ledger_elc,
            h1,
            missing.to_bytes(),
            cs_path.clone().into_bytes(),
            Some(value.clone()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("enclave refused"), "{err}");
    let mut forged = lproof.clone();
    forged.host = with_second_notary(&ledger, forged.host.clone());
    let err = lcp
        .verify_state(
            &ledger_elc,
            h1,
            forged.to_bytes(),
            cs_path.clone().into_bytes(),
            Some(value.clone()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("enclave refused"), "{err}");

    // ---- key lifecycle on the ledger: an unregistered key, then an expired one.
    let newer = lcp.generate_key(None).unwrap();
    let (signed, head) = qbft_update(&lcp, &evm, &elc, head).await;
    let reason = refused(
        ledger
            .submit(vec![update_msg(client, signed_update_any(&signed))])
            .await,
        &["is not registered"],
    );
    assert!(
        reason.contains(&format!("{:#x}", newer.address))
            || reason.contains(&newer.address.to_string()),
        "{reason}"
    );
    ledger
        .submit(vec![
            update_msg(client, register_any(&newer)),
            update_msg(client, signed_update_any(&signed)),
        ])
        .await
        .unwrap();

    // ---- A handshake step on the ledger through LCP: ConnectionOpenTry proving the devnet's
    // ConnectionOpenInit, the devnet's LCP client of the ledger and its consensus state of the
    // ledger (the Ledger ELC's state id of this host's state, which the host recomputes).
    let evm_client_state = wire::any(
        wire::CLIENT_STATE_URL,
        &ClientState {
            latest_height: Some(wire::ProtoHeight {
                revision_number: 0,
                revision_height: h1,
            }),
            ..ecs.clone()
        },
    );
    let evm_cs_path = format!("clients/{}/clientState", end.client_id);
    assert!(end.holds(&evm_cs_path, &evm_client_state).await.unwrap());
    let evm_consensus = wire::any(
        wire::CONSENSUS_STATE_URL,
        &ConsensusState {
            state_id: ledger_update.post_state_id.0.to_vec(),
            timestamp: u64::try_from(ledger_update.timestamp_ns).unwrap(),
        },
    );
    let evm_cons_path = format!("clients/{}/consensusStates/0-{h1}", end.client_id);
    assert!(end.holds(&evm_cons_path, &evm_consensus).await.unwrap());
    let proof_init = qbft_prove(&lcp, &evm, &elc, &conn_path, Some(&init_end), head).await;
    let proof_client = qbft_prove(
        &lcp,
        &evm,
        &elc,
        &evm_cs_path,
        Some(&evm_client_state),
        head,
    )
    .await;
    let proof_consensus =
        qbft_prove(&lcp, &evm, &elc, &evm_cons_path, Some(&evm_consensus), head).await;
    let open_try = |proof_init: &SignedMessage| {
        OpenTry {
            client,
            counterparty_client: end.client_id.clone(),
            counterparty_connection: conn_id.clone(),
            client_state: evm_client_state.clone(),
            proof_height: head,
            consensus_height: h1,
            proof_init: proofs_of(proof_init),
            proof_client: proofs_of(&proof_client),
            proof_consensus: proofs_of(&proof_consensus),
        }
        .msg()
    };
    // The counterparty's connection end is what the proof must show: a proof of another path
    // (its client state) in its place is refused. The client-state and consensus-state fields
    // are carried but not checked: the host validates TRY as ibc-go v9 does
    // (`kh_ibc_ledger::conn`).
    refused(
        ledger.submit(vec![open_try(&proof_client)]).await,
        &["path does not match"],
    );
    let at = ledger.submit(vec![open_try(&proof_init)]).await.unwrap();
    let (stored, _) = ledger.proof("connections/connection-0", at).await;
    let stored = conn::ConnectionEnd::decode(stored.unwrap().as_slice()).unwrap();
    assert_eq!(stored.state, conn::State::Tryopen as i32);
    assert_eq!(stored.client_id, client);
    assert_eq!(stored.counterparty.unwrap().connection_id, conn_id.clone());

    // A second client whose keys live 8 s: its key is refused once the host time passes.
    let (elc2, init2, trusted2) = qbft_elc(&lcp, &evm).await;
    let short = lcp.generate_key(None).unwrap();
    let (cs2, cons2) = lcp_client_of(&init2, mrenclave, 8);
    ledger
        .submit(vec![
            create_msg(&cs2, &cons2),
            update_msg("lcp-client-1", register_any(&short)),
        ])
        .await
        .unwrap();
    wait_past(short.attested_at + 8).await;
    let (signed, _) = qbft_update(&lcp, &evm, &elc2, trusted2).await;
    refused(
        ledger
            .submit(vec![update_msg("lcp-client-1", signed_update_any(&signed))])
            .await,
        &["expired"],
    );

    ledger.shutdown();
    evm.devnet.shutdown().await.unwrap();
}
