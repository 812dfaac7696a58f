//! Nodes talking over gRPC with mutual TLS on loopback: an issue and a payment across nodes;
//! a peer without a certificate from the network root, and a peer presenting another node's
//! identity, are refused and change nothing; a server impersonating a node with another valid
//! certificate of the root is refused by the sender's pin.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use kh_app_stablecoin::CoinVault;
use kh_ledger::*;
use kh_ledger_node::*;

const NAMES: [&str; 4] = [
    "O=Notary, L=Tokyo, C=JP",
    "O=Bank, L=Tokyo, C=JP",
    "O=PartyA, L=Tokyo, C=JP",
    "O=PartyB, L=Osaka, C=JP",
];
const WAIT: Duration = Duration::from_secs(30);

fn db() -> String {
    let dir = std::env::temp_dir().join("kh-ledger-node-tests");
    std::fs::create_dir_all(&dir).unwrap();
    format!(
        "sqlite:{}",
        dir.join(format!("{}.db", uuid::Uuid::new_v4())).display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_over_mutual_tls_and_impostors_are_refused() {
    let ca = NetworkCa::generate("test").unwrap();
    let root = ca.root_pem();
    let keys: Vec<(PartyName, KeyPair)> = NAMES
        .iter()
        .map(|n| (n.parse().unwrap(), KeyPair::generate()))
        .collect();
    let identities: Vec<TlsIdentity> = keys
        .iter()
        .map(|(n, _)| ca.issue_node(n).unwrap())
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

    // Pick free loopback ports (released here, bound again by the servers below).
    let listeners: Vec<std::net::SocketAddr> = (0..NAMES.len())
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .collect();
    let mut directory = PeerDirectory::default();
    for (i, (name, _)) in keys.iter().enumerate() {
        directory.peers.insert(
            name.clone(),
            PeerEntry {
                address: listeners[i],
                cert_der: identities[i].cert_der.clone(),
            },
        );
    }
    let directory = Arc::new(directory);

    let mut nodes = vec![];
    let mut servers = vec![];
    for (i, (name, key)) in keys.iter().enumerate() {
        let transport = Arc::new(GrpcTransport::new(directory.clone(), &identities[i], &root));
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: db(),
            role: if i == 0 {
                NodeRole::Notary
            } else {
                NodeRole::Regular
            },
            network: params.clone(),
            apps: vec![kh_app_stablecoin::StablecoinApp::arc()],
            flow_timeout: kh_ledger::DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        };
        let node = Node::open(config, transport).await.unwrap();
        servers.push(
            serve_peer(
                listeners[i],
                &identities[i],
                &root,
                node.receiver(),
                directory.clone(),
            )
            .await
            .unwrap(),
        );
        nodes.push(node);
    }
    let (bank, a, b) = (&nodes[1], &nodes[2], &nodes[3]);
    let alice = a.create_account("alice").await.unwrap();
    let bob = b.create_account("bob").await.unwrap();
    let issue = bank
        .start_flow(kh_app_stablecoin::StablecoinFlow::Issue {
            amount: 100,
            currency: "JPY".into(),
            to_node: a.name().clone(),
            to_account: alice.id,
        })
        .await
        .unwrap();
    assert!(matches!(
        bank.wait_flow(issue, WAIT).await.unwrap(),
        FlowStatus::Completed { .. }
    ));
    // The issuance completes at the bank first; wait until its finality message reached PartyA.
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.vault().balance(&alice.public_key).await.unwrap() != 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the issuance did not reach PartyA"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pay = a
        .start_flow(kh_app_stablecoin::StablecoinFlow::Pay {
            amount: 70,
            from: alice.id,
            to_node: b.name().clone(),
            to_account: bob.id,
            validator: None,
        })
        .await
        .unwrap();
    let tx = match a.wait_flow(pay, WAIT).await.unwrap() {
        FlowStatus::Completed { tx_id } => tx_id,
        other => panic!("{other:?}"),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.vault().balance(&bob.public_key).await.unwrap() != 70 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payment did not reach PartyB"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(a.vault().balance(&alice.public_key).await.unwrap(), 30);
    assert!(
        bank.vault().transaction(&tx).await.unwrap().is_none(),
        "the bank was not a participant"
    );

    // An impostor: a certificate from another root cannot even connect.
    let rogue_ca = NetworkCa::generate("rogue").unwrap();
    let rogue = rogue_ca.issue(NAMES[2]).unwrap();
    let rogue_transport = GrpcTransport::new(directory.clone(), &rogue, &root);
    let env = Envelope {
        id: uuid::Uuid::new_v4(),
        from: a.name().clone(),
        to: b.name().clone(),
        payload: vec![1, 2, 3],
    };
    assert!(rogue_transport.send(env.clone()).await.is_err());
    // A real node (the bank) claiming to be PartyA: its certificate names the bank.
    let bank_as_a = GrpcTransport::new(directory.clone(), &identities[1], &root);
    assert!(matches!(
        bank_as_a.send(env.clone()).await,
        Err(TransportError::Refused { reason, .. }) if reason.contains("O=Bank")
    ));
    // A second certificate for PartyA from the network root is not the pinned one.
    let reissued = ca.issue_node(a.name()).unwrap();
    let second_a = GrpcTransport::new(directory.clone(), &reissued, &root);
    assert!(matches!(
        second_a.send(env.clone()).await,
        Err(TransportError::Refused { reason, .. }) if reason.contains("registered")
    ));
    // A client certificate from the network root carries no legal name.
    let client = GrpcTransport::new(directory.clone(), &ca.issue("client").unwrap(), &root);
    assert!(matches!(
        client.send(env).await,
        Err(TransportError::Refused { reason, .. }) if reason.contains("not a node certificate")
    ));
    // Garbage from PartyA's own identity is refused as malformed.
    let a_transport = GrpcTransport::new(directory.clone(), &identities[2], &root);
    let garbage = Envelope {
        id: uuid::Uuid::new_v4(),
        from: a.name().clone(),
        to: b.name().clone(),
        payload: vec![0xde, 0xad],
    };
    assert!(matches!(
        a_transport.send(garbage).await,
        Err(TransportError::Refused { .. })
    ));
    assert_eq!(b.vault().transaction_count().await.unwrap(), 1);

    // A server impersonating PartyB with a valid certificate of the root (the Bank's): a sender
    // that looks PartyB up reaches the impostor's address but refuses it during the handshake,
    // because the certificate is not the one pinned for PartyB; nothing is delivered.
    let impostor = Arc::new(Recorder::default());
    let impostor_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let receiver: Arc<dyn Receiver> = impostor.clone();
    let _impostor_server = serve_peer(
        impostor_addr,
        &identities[1],
        &root,
        Arc::downgrade(&receiver),
        directory.clone(),
    )
    .await
    .unwrap();
    let mut hijacked = (*directory).clone();
    if let Some(entry) = hijacked.peers.get_mut(b.name()) {
        entry.address = impostor_addr;
    }
    let to_b = Envelope {
        id: uuid::Uuid::new_v4(),
        from: a.name().clone(),
        to: b.name().clone(),
        payload: vec![1, 2, 3],
    };
    let fooled = GrpcTransport::new(Arc::new(hijacked.clone()), &identities[2], &root);
    assert!(matches!(
        fooled.send(to_b.clone()).await,
        Err(TransportError::Failed { .. } | TransportError::Unreachable(_))
    ));
    assert_eq!(impostor.count(), 0, "the impostor received a message");
    // Control: pinned to the Bank's certificate, the same sender does reach that server — the
    // refusal above is the pin's doing.
    if let Some(entry) = hijacked.peers.get_mut(b.name()) {
        entry.cert_der = identities[1].cert_der.clone();
    }
    let pinned_to_bank = GrpcTransport::new(Arc::new(hijacked), &identities[2], &root);
    pinned_to_bank.send(to_b).await.unwrap();
    assert_eq!(impostor.count(), 1);
    for n in &nodes {
        n.shutdown();
    }
    drop(servers);
}

/// A receiver that only counts what reaches it.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Envelope>>);

impl Recorder {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Receiver for Recorder {
    fn receive(&self, env: Envelope) -> SendFuture<'_> {
        self.0.lock().unwrap().push(env);
        Box::pin(async { Ok(()) })
    }
}
