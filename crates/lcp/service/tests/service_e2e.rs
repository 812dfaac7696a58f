//! The LCP service end to end: a QBFT ELC created from the project's own devnet (in process)
//! through the gRPC service with mutual TLS, updated, proving a storage slot; every signed
//! result checked by the Rust LCP client; aggregation; the streaming update; a restart that
//! unseals the keys and restores the ELC from the host's store; another measurement that
//! cannot unseal; a fresh node restoring the client from the chain (R6) with a new key taking
//! over; tampered inputs refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use k256::ecdsa::SigningKey;
use kh_elc::{QbftClientState, QbftConsensusState, QbftHeader, StorageLayout, StorageProof};
use kh_evm_chain::{Chain, ChainSpec, PoolLimits};
use kh_lcp::client::{
    LcpClient, LcpClientError, LcpClientState, RegisterEnclaveKeyMessage, UpdateClientMessage,
};
use kh_lcp::{CommitmentProofs, Height, ProxyMessage, SignedReport};
use kh_lcp_service::enclave::Enclave;
use kh_lcp_service::host::unix_now;
use kh_lcp_service::proto;
use kh_lcp_service::protocol::Request;
use kh_lcp_service::seal::{PlatformSecret, Sealer};
use kh_lcp_service::service::{self, Client};
use kh_lcp_service::{EnclaveHandle, HostError, LcpNode};
use kh_ledger_node::NetworkCa;

const CHAIN_ID: u64 = 1337;

fn key(i: u8) -> SigningKey {
    let mut secret = [0u8; 32];
    secret[0] = 0x42;
    secret[31] = i;
    SigningKey::from_slice(&secret).unwrap()
}

fn tx(signer: &PrivateKeySigner, nonce: u64, to: TxKind, input: Vec<u8>) -> Bytes {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::from(input),
    };
    let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    let envelope: TxEnvelope = tx.into_signed(sig).into();
    Bytes::from(envelope.encoded_2718())
}

/// Init code of `SSTORE(calldata[0..32], calldata[32..64])`.
fn slot_writer() -> Vec<u8> {
    let runtime = [0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00];
    let mut init = vec![
        0x60, 0x08, 0x60, 0x0c, 0x60, 0x00, 0x39, 0x60, 0x08, 0x60, 0x00, 0xf3,
    ];
    init.extend_from_slice(&runtime);
    init
}

fn header(chain: &Chain, number: u64, trusted: u64) -> Vec<u8> {
    bcs::to_bytes(&QbftHeader {
        header_rlp: Bytes::from(alloy_rlp::encode(&chain.block(number).unwrap().header)),
        trusted_height: trusted,
    })
    .unwrap()
}

fn consensus_at(chain: &Chain, number: u64) -> QbftConsensusState {
    let b = chain.block(number).unwrap();
    QbftConsensusState {
        block_hash: b.hash,
        state_root: b.header.state_root,
        timestamp: b.header.timestamp,
        validators: b.validators.clone(),
    }
}

struct Tls {
    root: String,
    server: kh_ledger_node::TlsIdentity,
    client: kh_ledger_node::TlsIdentity,
}

fn tls() -> Tls {
    let ca = NetworkCa::generate("lcp-test").unwrap();
    Tls {
        root: ca.root_pem(),
        server: ca.issue("lcp").unwrap(),
        client: ca.issue("relayer").unwrap(),
    }
}

fn node(home: &Path, platform: &PlatformSecret, mrenclave: [u8; 32], lifetime: u64) -> LcpNode {
    let enclave =
        EnclaveHandle::in_process(Enclave::new(Sealer::new(platform, mrenclave))).unwrap();
    LcpNode::open(home, enclave, lifetime).unwrap()
}

async fn start(node: LcpNode, tls: &Tls) -> (service::ServiceHandle, Client) {
    let h = service::serve(
        "127.0.0.1:0".parse().unwrap(),
        &tls.server.cert_pem,
        &tls.server.key_pem,
        &tls.root,
        Arc::new(node),
    )
    .await
    .unwrap();
    let c = service::connect(h.addr, &tls.client.cert_pem, &tls.client.key_pem, &tls.root)
        .await
        .unwrap();
    (h, c)
}

fn upd(r: &proto::SignedResponse) -> UpdateClientMessage {
    UpdateClientMessage {
        proxy_message: r.message.clone(),
        signatures: vec![r.signature.clone()],
    }
}

fn proof_of(r: &proto::SignedResponse) -> Vec<u8> {
    CommitmentProofs {
        message: r.message.clone(),
        signatures: vec![r.signature.clone()],
    }
    .encode()
}

async fn register_current_keys(c: &mut Client, lcp: &mut LcpClient, now: u64) -> Vec<Address> {
    let keys = c
        .available_enclave_keys(proto::AvailableEnclaveKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let mut out = vec![];
    for k in keys {
        let report = SignedReport::from_json(k.report.as_bytes()).unwrap();
        out.push(
            lcp.register_enclave_key(
                &RegisterEnclaveKeyMessage {
                    report,
                    operator_signature: None,
                },
                now,
            )
            .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lcp_service_end_to_end() {
    let home = tempfile::tempdir().unwrap();
    let platform = PlatformSecret::load_or_create(&home.path().join("platform-secret")).unwrap();
    let mrenclave = kh_lcp_service::seal::measure(&std::env::current_exe().unwrap()).unwrap();
    let tls = tls();

    // The devnet: genesis 10 minutes ago; block 1 deploys the slot writer, block 2 stores a
    // commitment at the DESIGN §5 slot, blocks 3.. are empty.
    let t0 = unix_now().as_secs() - 600;
    let sender = PrivateKeySigner::from_signing_key(key(99));
    let mut chain = Chain::new(ChainSpec {
        chain_id: CHAIN_ID,
        validator_keys: (1..=4).map(key).collect(),
        alloc: vec![(sender.address(), U256::from(10u128.pow(21)))],
        genesis_timestamp: t0,
        gas_limit: 30_000_000,
        history: 64,
        contract_size_limit: 24_576,
        pool: PoolLimits::default(),
    })
    .unwrap();
    let contract = sender.address().create(0);
    chain
        .submit(&tx(&sender, 0, TxKind::Create, slot_writer()))
        .unwrap();
    chain.produce_block(t0 + 1).unwrap();
    let layout = StorageLayout::YuiIbcStore;
    let path = b"commitments/ports/ping/channels/channel-0/sequences/1".to_vec();
    let commitment = b"a packet commitment".to_vec();
    let slot = layout.slot(&path);
    let mut call = slot.to_vec();
    call.extend_from_slice(layout.stored_value(&commitment).unwrap().as_slice());
    chain
        .submit(&tx(&sender, 1, TxKind::Call(contract), call))
        .unwrap();
    chain.produce_block(t0 + 2).unwrap();
    for i in 3..=8 {
        chain.produce_block(t0 + i).unwrap();
    }
    let client_state = QbftClientState {
        chain_id: CHAIN_ID,
        ibc_address: contract,
        layout,
        trusting_period: Duration::from_secs(3600),
        max_clock_drift: Duration::from_secs(5),
        latest_height: 1,
        frozen: false,
    };

    // Start: a key is generated and attested; the LCP client registers it.
    let n = node(home.path(), &platform, mrenclave, 3600);
    let key_a = n.generate_key(None).unwrap();
    let (server, mut c) = start(n, &tls).await;
    let info = c
        .enclave_info(proto::EnclaveInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.mrenclave, mrenclave.to_vec());
    let now = unix_now().as_secs();
    let mut state = LcpClientState::new(mrenclave, 3600);
    state.development_mode = false;
    let mut lcp = LcpClient::new(info.attestation_root.clone(), state).unwrap();
    assert_eq!(
        register_current_keys(&mut c, &mut lcp, now).await,
        vec![key_a.address]
    );

    // CreateClient from block 1, UpdateClient to 2.
    let created = c
        .create_client(proto::CreateClientRequest {
            client_id: String::new(),
            client_type: "qbft".into(),
            client_state: bcs::to_bytes(&client_state).unwrap(),
            consensus_state: bcs::to_bytes(&consensus_at(&chain, 1)).unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.client_id, "qbft-0");
    let id = created.client_id.clone();
    lcp.update_client(&upd(&created.proof.unwrap()), now)
        .unwrap();
    let up2 = c
        .update_client(proto::UpdateClientRequest {
            client_id: id.clone(),
            header: header(&chain, 2, 1),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up2.signer, key_a.address.to_vec());
    lcp.update_client(&upd(&up2), now).unwrap();
    assert_eq!(lcp.state.latest_height, Height::new(0, 2));

    // A tampered header is refused by the enclave.
    let mut bad = header(&chain, 3, 2);
    let last = bad.len() - 40;
    bad[last] ^= 1;
    assert!(
        c.update_client(proto::UpdateClientRequest {
            client_id: id.clone(),
            header: bad,
            now_unix_ns: 0,
        })
        .await
        .is_err()
    );

    // Membership of the commitment and absence of a receipt at height 2.
    let other = layout.slot(b"receipts/ports/ping/channels/channel-0/sequences/1");
    let answer = chain.state_at(2).unwrap().proof(contract, &[slot, other]);
    let present = bcs::to_bytes(&StorageProof {
        account_proof: answer.account_proof.clone(),
        storage_proof: answer.storage_proofs[0].2.clone(),
    })
    .unwrap();
    let absent = bcs::to_bytes(&StorageProof {
        account_proof: answer.account_proof.clone(),
        storage_proof: answer.storage_proofs[1].2.clone(),
    })
    .unwrap();
    let vm = c
        .verify_membership(proto::VerifyMembershipRequest {
            client_id: id.clone(),
            height: 2,
            proof: present.clone(),
            path: path.clone(),
            value: commitment.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let h2 = Height::new(0, 2);
    lcp.verify_membership(h2, &proof_of(&vm), b"ibc", &path, &commitment, now)
        .unwrap();
    let receipt = b"receipts/ports/ping/channels/channel-0/sequences/1".to_vec();
    let vn = c
        .verify_non_membership(proto::VerifyNonMembershipRequest {
            client_id: id.clone(),
            height: 2,
            proof: absent,
            path: receipt.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    lcp.verify_non_membership(h2, &proof_of(&vn), b"ibc", &receipt, now)
        .unwrap();
    // A tampered proof is refused by the enclave; a tampered message by the LCP client.
    let mut bad_proof = present.clone();
    let mid = bad_proof.len() / 2;
    bad_proof[mid] ^= 1;
    assert!(
        c.verify_membership(proto::VerifyMembershipRequest {
            client_id: id.clone(),
            height: 2,
            proof: bad_proof,
            path: path.clone(),
            value: commitment.clone(),
        })
        .await
        .is_err()
    );
    let mut bad_vm = vm.clone();
    let k = bad_vm.message.len() - 1;
    bad_vm.message[k] ^= 1;
    assert!(
        lcp.verify_membership(h2, &proof_of(&bad_vm), b"ibc", &path, &commitment, now)
            .is_err()
    );

    // Two updates (3, then 4 from 3) aggregated into one 2 → 4 message.
    let up3 = c
        .update_client(proto::UpdateClientRequest {
            client_id: id.clone(),
            header: header(&chain, 3, 2),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let up4 = c
        .update_client(proto::UpdateClientRequest {
            client_id: id.clone(),
            header: header(&chain, 4, 3),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let as_msg = |r: &proto::SignedResponse| proto::SignedMessage {
        message: r.message.clone(),
        signature: r.signature.clone(),
    };
    // Out of order: refused.
    assert!(
        c.aggregate_messages(proto::AggregateMessagesRequest {
            signer: key_a.address.to_vec(),
            messages: vec![as_msg(&up4), as_msg(&up3)],
        })
        .await
        .is_err()
    );
    let agg = c
        .aggregate_messages(proto::AggregateMessagesRequest {
            signer: key_a.address.to_vec(),
            messages: vec![as_msg(&up3), as_msg(&up4)],
        })
        .await
        .unwrap()
        .into_inner();
    let ProxyMessage::UpdateState(a) = ProxyMessage::decode(&agg.message).unwrap() else {
        panic!("not an update");
    };
    assert_eq!(a.prev.unwrap().0, Height::new(0, 2));
    assert_eq!(a.post_height, Height::new(0, 4));
    lcp.update_client(&upd(&agg), now).unwrap();
    assert_eq!(lcp.state.latest_height, Height::new(0, 4));

    // The client-streaming update (the header in 3 chunks): 4 → 5.
    let h5 = header(&chain, 5, 4);
    let chunks: Vec<proto::UpdateClientChunk> = h5
        .chunks(h5.len() / 3 + 1)
        .enumerate()
        .map(|(i, part)| proto::UpdateClientChunk {
            client_id: if i == 0 { id.clone() } else { String::new() },
            now_unix_ns: 0,
            header_chunk: part.to_vec(),
        })
        .collect();
    let up5 = c
        .update_client_stream(futures::stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    lcp.update_client(&upd(&up5), now).unwrap();
    let q = c
        .query_client(proto::QueryClientRequest {
            client_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(q.latest_height, 5);

    // Restart: the same build on the same platform unseals the key; the ELC comes back from
    // the host's store and continues 5 → 6.
    server.stop().await;
    drop(c);
    let n = node(home.path(), &platform, mrenclave, 3600);
    assert_eq!(n.signing_key(now).unwrap().address, key_a.address);
    let (server, mut c) = start(n, &tls).await;
    let up6 = c
        .update_client(proto::UpdateClientRequest {
            client_id: id.clone(),
            header: header(&chain, 6, 5),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up6.signer, key_a.address.to_vec());
    lcp.update_client(&upd(&up6), now).unwrap();
    server.stop().await;
    drop(c);

    // Another measurement (a changed enclave build) cannot unseal the key.
    let other_build =
        EnclaveHandle::in_process(Enclave::new(Sealer::new(&platform, [0xee; 32]))).unwrap();
    let sealed = hex::decode(&key_a.sealed).unwrap();
    let n = node(home.path(), &platform, mrenclave, 3600);
    let stored = n.client(&id).unwrap();
    assert!(matches!(
        other_build.call(&Request::UpdateClient {
            key: sealed,
            client: stored,
            header: header(&chain, 7, 6),
            now_ns: u64::try_from(unix_now().as_nanos()).unwrap(),
        }),
        Err(HostError::Refused(e)) if e.contains("does not open")
    ));
    let reopened = LcpNode::open(
        home.path(),
        EnclaveHandle::in_process(Enclave::new(Sealer::new(&platform, [0xee; 32]))).unwrap(),
        3600,
    )
    .unwrap();
    assert!(matches!(
        reopened.signing_key(now),
        Err(HostError::NoActiveKey)
    ));
    drop(n);

    // R6: a fresh LCP node (new platform, new key) recreates the ELC from the chain's trusted
    // header at the LCP client's latest height; its next update chains onto the state id the
    // LCP client already has. Its key, registered while the old one is still valid, takes over.
    let home2 = tempfile::tempdir().unwrap();
    let platform2 = PlatformSecret::load_or_create(&home2.path().join("platform-secret")).unwrap();
    let n2 = node(home2.path(), &platform2, mrenclave, 7200);
    // Attested in a later second than key A, so that it outlives A in the LCP client (whose
    // expiry is attestation time + its own key_expiration).
    while unix_now().as_secs() <= key_a.attested_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    let key_b = n2.generate_key(None).unwrap();
    let (server2, mut c2) = start(n2, &tls).await;
    let root2 = c2
        .enclave_info(proto::EnclaveInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .attestation_root;
    // The fresh node has its own simulation authority: a client trusting the first root
    // refuses its reports.
    let report_b = SignedReport::from_json(key_b.report.as_bytes()).unwrap();
    assert!(matches!(
        lcp.register_enclave_key(
            &RegisterEnclaveKeyMessage {
                report: report_b.clone(),
                operator_signature: None
            },
            now
        ),
        Err(LcpClientError::Attestation(_))
    ));
    lcp.root_ca_der = root2;
    lcp.register_enclave_key(
        &RegisterEnclaveKeyMessage {
            report: report_b,
            operator_signature: None,
        },
        now,
    )
    .unwrap();
    let mut restored_state = client_state.clone();
    restored_state.latest_height = 6;
    let re = c2
        .create_client(proto::CreateClientRequest {
            client_id: id.clone(),
            client_type: "qbft".into(),
            client_state: bcs::to_bytes(&restored_state).unwrap(),
            consensus_state: bcs::to_bytes(&consensus_at(&chain, 6)).unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    let ProxyMessage::UpdateState(init) = ProxyMessage::decode(&re.proof.unwrap().message).unwrap()
    else {
        panic!("not an update");
    };
    assert_eq!(
        lcp.consensus_states[&Height::new(0, 6)].state_id,
        init.post_state_id,
        "the restored client has the state id the LCP client holds"
    );
    let up7 = c2
        .update_client(proto::UpdateClientRequest {
            client_id: id.clone(),
            header: header(&chain, 7, 6),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(up7.signer, key_b.address.to_vec());
    lcp.update_client(&upd(&up7), now).unwrap();
    assert_eq!(lcp.state.latest_height, Height::new(0, 7));

    // Key lifecycle: once key A has expired its proofs are refused, key B's are accepted.
    let vm_b = c2
        .verify_membership(proto::VerifyMembershipRequest {
            client_id: id.clone(),
            height: 7,
            proof: bcs::to_bytes(&StorageProof {
                account_proof: chain
                    .state_at(7)
                    .unwrap()
                    .proof(contract, &[slot])
                    .account_proof,
                storage_proof: chain
                    .state_at(7)
                    .unwrap()
                    .proof(contract, &[slot])
                    .storage_proofs[0]
                    .2
                    .clone(),
            })
            .unwrap(),
            path: path.clone(),
            value: commitment.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let later = key_a.expires_at;
    assert!(matches!(
        lcp.verify_membership(h2, &proof_of(&vm), b"ibc", &path, &commitment, later),
        Err(LcpClientError::KeyExpired { .. })
    ));
    lcp.verify_membership(
        Height::new(0, 7),
        &proof_of(&vm_b),
        b"ibc",
        &path,
        &commitment,
        later,
    )
    .unwrap();
    server2.stop().await;
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let home = tempfile::tempdir().unwrap();
        let platform = PlatformSecret::generate();
        let n = node(home.path(), &platform, [1; 32], 3600);
        n.generate_key(None).unwrap();
        let tls = tls();
        let (server, mut ok) = start(n, &tls).await;
        ok.enclave_info(proto::EnclaveInfoRequest {}).await.unwrap();
        // A certificate from another CA.
        let stranger = NetworkCa::generate("other").unwrap().issue("x").unwrap();
        let refused = match service::connect(
            server.addr,
            &stranger.cert_pem,
            &stranger.key_pem,
            &tls.root,
        )
        .await
        {
            Err(_) => true,
            Ok(mut c) => c.enclave_info(proto::EnclaveInfoRequest {}).await.is_err(),
        };
        assert!(refused);
        server.stop().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_headers_give_a_signed_misbehaviour_that_freezes_the_lcp_client() {
    let home = tempfile::tempdir().unwrap();
    let platform = PlatformSecret::generate();
    let n = node(home.path(), &platform, [3; 32], 3600);
    n.generate_key(None).unwrap();
    let tls = tls();
    let (server, mut c) = start(n, &tls).await;
    // Two devnets with the same validators and genesis that agree on block 1 and fork at 2.
    let t0 = unix_now().as_secs() - 600;
    let spec = || ChainSpec {
        chain_id: CHAIN_ID,
        validator_keys: (1..=4).map(key).collect(),
        alloc: vec![],
        genesis_timestamp: t0,
        gas_limit: 30_000_000,
        history: 64,
        contract_size_limit: 24_576,
        pool: PoolLimits::default(),
    };
    let (mut a, mut b) = (Chain::new(spec()).unwrap(), Chain::new(spec()).unwrap());
    a.produce_block(t0 + 1).unwrap();
    b.produce_block(t0 + 1).unwrap();
    assert_eq!(a.block(1).unwrap().hash, b.block(1).unwrap().hash);
    a.produce_block(t0 + 2).unwrap();
    b.produce_block(t0 + 3).unwrap();
    assert_ne!(a.block(2).unwrap().hash, b.block(2).unwrap().hash);

    let info = c
        .enclave_info(proto::EnclaveInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let now = unix_now().as_secs();
    let mut lcp = LcpClient::new(
        info.attestation_root,
        LcpClientState::new(info.mrenclave.try_into().unwrap(), 3600),
    )
    .unwrap();
    register_current_keys(&mut c, &mut lcp, now).await;
    let cs = QbftClientState {
        chain_id: CHAIN_ID,
        ibc_address: Address::repeat_byte(0x11),
        layout: StorageLayout::YuiIbcStore,
        trusting_period: Duration::from_secs(3600),
        max_clock_drift: Duration::from_secs(5),
        latest_height: 1,
        frozen: false,
    };
    let created = c
        .create_client(proto::CreateClientRequest {
            client_id: "fork".into(),
            client_type: "qbft".into(),
            client_state: bcs::to_bytes(&cs).unwrap(),
            consensus_state: bcs::to_bytes(&consensus_at(&a, 1)).unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    lcp.update_client(&upd(&created.proof.unwrap()), now)
        .unwrap();

    let hdr = |chain: &Chain| QbftHeader {
        header_rlp: Bytes::from(alloy_rlp::encode(&chain.block(2).unwrap().header)),
        trusted_height: 1,
    };
    // Two copies of one header are no evidence.
    let same = kh_elc::QbftMisbehaviour {
        header_1: hdr(&a),
        header_2: hdr(&a),
    };
    assert!(
        c.submit_misbehaviour(proto::SubmitMisbehaviourRequest {
            client_id: "fork".into(),
            evidence: bcs::to_bytes(&same).unwrap(),
            now_unix_ns: 0,
        })
        .await
        .is_err()
    );
    let evidence = kh_elc::QbftMisbehaviour {
        header_1: hdr(&a),
        header_2: hdr(&b),
    };
    let m = c
        .submit_misbehaviour(proto::SubmitMisbehaviourRequest {
            client_id: "fork".into(),
            evidence: bcs::to_bytes(&evidence).unwrap(),
            now_unix_ns: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        ProxyMessage::decode(&m.message).unwrap(),
        ProxyMessage::Misbehaviour(_)
    ));
    assert_eq!(
        lcp.update_client(&upd(&m), now),
        Ok(kh_lcp::client::UpdateResult::Frozen)
    );
    assert!(lcp.state.frozen);
    // The frozen ELC refuses further updates.
    assert!(
        c.update_client(proto::UpdateClientRequest {
            client_id: "fork".into(),
            header: header(&a, 2, 1),
            now_unix_ns: 0,
        })
        .await
        .is_err()
    );
    server.stop().await;
}
