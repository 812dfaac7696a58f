//! For integrators, over the node RPC with mutual TLS on loopback: the event stream of
//! recorded transactions followed by a client that disconnects while payments continue and
//! reconnects with its cursor, also across a restart of the node — every event once, none
//! missing, checked against the vault; and a filtered transaction fetched over RPC that
//! verifies with `kh_ledger::verify_filtered_transaction` and the network's public keys only,
//! while any changed byte is rejected.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use kh_app_stablecoin::{CoinVault, StablecoinApp, StablecoinFlow, StablecoinState};
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

/// What the P2P server of one node hands envelopes to: the node running now, so that the node
/// can be restarted behind a listening address that stays the same.
#[derive(Default)]
struct Current(RwLock<Option<Weak<dyn Receiver>>>);

impl Current {
    fn set(&self, node: &Node) {
        *self.0.write().unwrap() = Some(node.receiver());
    }
}

impl Receiver for Current {
    fn receive(&self, env: Envelope) -> SendFuture<'_> {
        let node = self.0.read().unwrap().as_ref().and_then(Weak::upgrade);
        Box::pin(async move {
            match node {
                Some(node) => node.receive(env).await,
                None => Err(TransportError::Unreachable(env.to)),
            }
        })
    }
}

struct Net {
    integrator: TlsIdentity,
    root: String,
    params: NetworkParameters,
    keys: Vec<(PartyName, KeyPair)>,
    identities: Vec<TlsIdentity>,
    directory: Arc<PeerDirectory>,
    urls: Vec<String>,
    current: Vec<Arc<Current>>,
    _servers: Vec<PeerServerHandle>,
}

impl Net {
    async fn new() -> Self {
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
        let mut current = vec![];
        let mut servers = vec![];
        for (i, address) in listeners.iter().enumerate() {
            let c = Arc::new(Current::default());
            let as_receiver: Arc<dyn Receiver> = c.clone();
            servers.push(
                serve_peer(
                    *address,
                    &identities[i],
                    &root,
                    Arc::downgrade(&as_receiver),
                    directory.clone(),
                )
                .await
                .unwrap(),
            );
            current.push(c);
        }
        Self {
            integrator: ca.issue("integrator").unwrap(),
            root,
            params,
            keys,
            identities,
            directory,
            urls: (0..NAMES.len()).map(|_| db()).collect(),
            current,
            _servers: servers,
        }
    }

    /// Opens node `i` on its database and routes its P2P traffic to it.
    async fn open(&self, i: usize) -> Node {
        let (name, key) = &self.keys[i];
        let transport = Arc::new(GrpcTransport::new(
            self.directory.clone(),
            &self.identities[i],
            &self.root,
        ));
        let config = NodeConfig {
            name: name.clone(),
            key: key.clone(),
            database_url: self.urls[i].clone(),
            role: if i == 0 {
                NodeRole::Notary
            } else {
                NodeRole::Regular
            },
            network: self.params.clone(),
            apps: vec![StablecoinApp::arc()],
            flow_timeout: DEFAULT_FLOW_TIMEOUT,
            failpoint: None,
        };
        let node = Node::open(config, transport).await.unwrap();
        self.current[i].set(&node);
        node
    }

    async fn rpc(&self, i: usize, node: &Node) -> PeerServerHandle {
        let user = RpcUser {
            name: "integrator".into(),
            permission: Permission::Read,
            cert_sha256: cert_fingerprint(&self.integrator.cert_der),
        };
        serve_rpc(
            "127.0.0.1:0".parse().unwrap(),
            &self.identities[i],
            &self.root,
            node.clone(),
            RpcUsers::fixed(vec![user]),
        )
        .await
        .unwrap()
    }

    async fn client(&self, rpc: &PeerServerHandle) -> RpcClient {
        connect_rpc(rpc.address, &self.integrator, &self.root)
            .await
            .unwrap()
    }
}

fn completed(status: FlowStatus) -> TxId {
    match status {
        FlowStatus::Completed { tx_id } => tx_id,
        other => panic!("flow did not complete: {other:?}"),
    }
}

async fn wait_balance(node: &Node, key: &PublicKey, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.vault().balance(key).await.unwrap() != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "balance never {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pay(from: &Node, account: &Account, to: &Node, to_account: &Account) -> TxId {
    let flow = from
        .start_flow(StablecoinFlow::Pay {
            amount: 1,
            from: account.id,
            to_node: to.name().clone(),
            to_account: to_account.id,
            validator: None,
        })
        .await
        .unwrap();
    completed(from.wait_flow(flow, WAIT).await.unwrap())
}

type EventStream = tonic::Streaming<proto::LedgerEvent>;

async fn follow(client: &mut RpcClient, after_cursor: u64) -> EventStream {
    client
        .events(proto::EventsRequest {
            after_cursor,
            follow: true,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Reads `n` events from a following stream, each within a bounded wait.
async fn take(stream: &mut EventStream, n: usize, seen: &mut Vec<proto::LedgerEvent>) {
    for _ in 0..n {
        let next = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("no event within the wait")
            .unwrap()
            .expect("the stream ended");
        seen.push(next);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_from_a_cursor_across_disconnects_and_a_restart() {
    let net = Net::new().await;
    let _notary = net.open(0).await;
    let bank = net.open(1).await;
    let mut a = net.open(2).await;
    let b = net.open(3).await;
    let alice = a.create_account("alice").await.unwrap();
    let bob = b.create_account("bob").await.unwrap();
    let issue = bank
        .start_flow(StablecoinFlow::Issue {
            amount: 100,
            currency: "JPY".into(),
            to_node: a.name().clone(),
            to_account: alice.id,
        })
        .await
        .unwrap();
    let mut expected = vec![completed(bank.wait_flow(issue, WAIT).await.unwrap())];
    wait_balance(&a, &alice.public_key, 100).await;

    // Connected: the issuance (backlog) and three payments (live).
    let mut rpc_a = net.rpc(2, &a).await;
    let mut client = net.client(&rpc_a).await;
    let mut stream = follow(&mut client, 0).await;
    let mut seen = vec![];
    for _ in 0..3 {
        expected.push(pay(&a, &alice, &b, &bob).await);
    }
    take(&mut stream, 4, &mut seen).await;
    drop(stream);
    drop(client);

    // Disconnected: payments continue.
    for _ in 0..3 {
        expected.push(pay(&a, &alice, &b, &bob).await);
    }
    let mut client = net.client(&rpc_a).await;
    let mut stream = follow(&mut client, seen.last().unwrap().cursor).await;
    for _ in 0..2 {
        expected.push(pay(&a, &alice, &b, &bob).await);
    }
    take(&mut stream, 5, &mut seen).await;
    drop(stream);
    drop(client);

    // Two more payments, then the node restarts on its database (RPC server too).
    for _ in 0..2 {
        expected.push(pay(&a, &alice, &b, &bob).await);
    }
    a.shutdown();
    rpc_a.stop();
    drop(a);
    a = net.open(2).await;
    rpc_a = net.rpc(2, &a).await;
    for _ in 0..2 {
        expected.push(pay(&a, &alice, &b, &bob).await);
    }
    let mut client = net.client(&rpc_a).await;
    let mut stream = follow(&mut client, seen.last().unwrap().cursor).await;
    take(&mut stream, 4, &mut seen).await;
    // Nothing more is sent while nothing more is recorded.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.message())
            .await
            .is_err(),
        "an event nobody recorded"
    );
    drop(stream);

    // Every event once, in cursor order without gap, each the vault's.
    let cursors: Vec<u64> = seen.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, (1..=expected.len() as u64).collect::<Vec<_>>());
    let ids: Vec<TxId> = seen.iter().map(|e| e.tx_id.parse().unwrap()).collect();
    assert_eq!(ids, expected);
    assert_eq!(
        a.vault().transaction_count().await.unwrap(),
        expected.len() as u64
    );
    let stored = a.vault().events_after(0, 1000).await.unwrap();
    assert_eq!(stored.len(), seen.len());
    for (e, s) in seen.iter().zip(&stored) {
        let stx = a.vault().transaction(&s.tx_id).await.unwrap().unwrap();
        assert_eq!(e.cursor, s.cursor);
        let consumed: Vec<(String, u32)> = e
            .consumed
            .iter()
            .map(|r| (r.tx_id.clone(), r.index))
            .collect();
        let inputs: Vec<(String, u32)> = stx
            .tx
            .inputs
            .iter()
            .map(|r| (r.tx_id.to_string(), r.index))
            .collect();
        assert_eq!(consumed, inputs);
        assert_eq!(e.produced.len(), stx.tx.outputs.len());
        for (p, out) in e.produced.iter().zip(&stx.tx.outputs) {
            assert_eq!(p.contract, out.contract.to_string());
            assert_eq!(p.state.as_ref().unwrap().tx_id, s.tx_id.to_string());
        }
        assert_eq!(e.flow_id, s.flow.map(|f| f.to_string()).unwrap_or_default());
    }
    // The issuance came from the bank; the payments were recorded by PartyA's flows.
    assert!(seen[0].flow_id.is_empty());
    assert!(seen[1..].iter().all(|e| !e.flow_id.is_empty()));

    // Without follow: the backlog after a cursor, then the end; a limit is honoured.
    let mut client = net.client(&rpc_a).await;
    let mut backlog = client
        .events(proto::EventsRequest {
            after_cursor: 9,
            follow: false,
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut rest = vec![];
    while let Some(e) = backlog.message().await.unwrap() {
        rest.push(e.cursor);
    }
    assert_eq!(rest, (10..=expected.len() as u64).collect::<Vec<_>>());
    let mut limited = client
        .events(proto::EventsRequest {
            after_cursor: 0,
            follow: true,
            limit: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limited.message().await.unwrap().unwrap().cursor, 1);
    assert_eq!(limited.message().await.unwrap().unwrap().cursor, 2);
    assert!(limited.message().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_transaction_over_rpc_verifies_with_public_keys_only() {
    let net = Net::new().await;
    let _notary = net.open(0).await;
    let bank = net.open(1).await;
    let a = net.open(2).await;
    let b = net.open(3).await;
    let alice = a.create_account("alice").await.unwrap();
    let bob = b.create_account("bob").await.unwrap();
    let issue = bank
        .start_flow(StablecoinFlow::Issue {
            amount: 10,
            currency: "JPY".into(),
            to_node: a.name().clone(),
            to_account: alice.id,
        })
        .await
        .unwrap();
    completed(bank.wait_flow(issue, WAIT).await.unwrap());
    wait_balance(&a, &alice.public_key, 10).await;
    let tx = pay(&a, &alice, &b, &bob).await;
    wait_balance(&b, &bob.public_key, 1).await;

    let rpc_b = net.rpc(3, &b).await;
    let mut client = net.client(&rpc_b).await;
    let reveal = ["outputs", "commands", "notary"].map(String::from).to_vec();
    let answer = client
        .get_transaction(proto::GetTransactionRequest {
            tx_id: tx.to_string(),
            whole: true,
            reveal,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.found);

    // What a light client knows: the network parameters' notary key. Nothing else.
    let notary_key = net.params.notary.owning_key;
    let ftx: FilteredTransaction = bcs::from_bytes(&answer.filtered_transaction).unwrap();
    let sigs: Vec<TransactionSignature> = bcs::from_bytes(&answer.signatures).unwrap();
    assert_eq!(ftx.id, tx);
    verify_filtered_transaction(&ftx, &sigs, &[notary_key]).unwrap();
    let outputs: Vec<TransactionState> = ftx.whole_group(ComponentGroup::Outputs).unwrap();
    let coins: Vec<StablecoinState> = outputs.iter().map(|o| o.decode().unwrap()).collect();
    assert!(
        coins
            .iter()
            .any(|c| c.owner == bob.public_key && c.amount == 1)
    );
    // The inputs were not revealed.
    assert!(ftx.whole_group::<StateRef>(ComponentGroup::Inputs).is_err());
    // A key that did not sign is not accepted in place of the notary.
    assert!(verify_filtered_transaction(&ftx, &sigs, &[KeyPair::generate().public()]).is_err());

    // Any changed byte, of the filtered transaction or of the signatures, is rejected.
    let check = |ftx_bytes: &[u8], sig_bytes: &[u8]| -> bool {
        let Ok(ftx) = bcs::from_bytes::<FilteredTransaction>(ftx_bytes) else {
            return false;
        };
        let Ok(sigs) = bcs::from_bytes::<Vec<TransactionSignature>>(sig_bytes) else {
            return false;
        };
        ftx.id == tx && verify_filtered_transaction(&ftx, &sigs, &[notary_key]).is_ok()
    };
    assert!(check(&answer.filtered_transaction, &answer.signatures));
    for i in 0..answer.filtered_transaction.len() {
        let mut changed = answer.filtered_transaction.clone();
        changed[i] ^= 0x01;
        assert!(!check(&changed, &answer.signatures), "ftx byte {i}");
    }
    for i in 0..answer.signatures.len() {
        let mut changed = answer.signatures.clone();
        changed[i] ^= 0x01;
        assert!(
            !check(&answer.filtered_transaction, &changed),
            "sig byte {i}"
        );
    }

    // The whole transaction, with its signatures.
    let whole =
        SignedTransaction::from_bytes(&answer.signed_transaction, DEFAULT_MAX_TRANSACTION_SIZE)
            .unwrap();
    assert_eq!(whole.id(), tx);
    whole.verify(DEFAULT_MAX_TRANSACTION_SIZE, &[]).unwrap();
    assert_eq!(Some(whole), b.vault().transaction(&tx).await.unwrap());

    // A group that does not exist is refused; a transaction the node lacks is not found.
    let bad = client
        .get_transaction(proto::GetTransactionRequest {
            tx_id: tx.to_string(),
            whole: false,
            reveal: vec!["signatures".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let missing = client
        .get_transaction(proto::GetTransactionRequest {
            tx_id: SecureHash::of(&[b"none"]).to_string(),
            whole: true,
            reveal: vec!["outputs".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!missing.found && missing.signed_transaction.is_empty());
}
