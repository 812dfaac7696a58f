//! The relayer's EVM links over TLS with client certificates (R10), against the devnet serving
//! JSON-RPC over TLS and requiring a client certificate of its CA: the failover RPC, the
//! `wss://` doorbell and the remote signer work with the relayer's certificate; a client
//! without a certificate, with one of another CA, or trusting another CA than the one that
//! signed the server's certificate, is refused during the handshake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use alloy_primitives::{B256, Bytes};
use common::{deploy, send};
use kh_evm_chain::{BlockProduction, Devnet, DevnetConfig, DevnetError, RpcTls};
use kh_ledger_node::NetworkCa;
use kh_relayer::config::{EvmTlsConfig, SignerConfig};
use kh_relayer::evm::{
    EvmTls, FailoverRpc, FollowConfig, RpcError, SubmitPolicy, Submitter, follow, load_tx_signer,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHAIN: u64 = 4646;
/// The devnet's request body limit (small, to see it kept over TLS).
const MAX_BODY: u32 = 16 * 1024;

/// Runtime: `LOG1(topic = calldata[0..32])`.
const EMITTER: [u8; 9] = [0x60, 0x00, 0x35, 0x60, 0x00, 0x60, 0x00, 0xa1, 0x00];

/// The PEM files of a test: the chain's CA, the devnet's and the relayer's certificates of it,
/// and a second CA with a relayer certificate of its own.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = NetworkCa::generate("evm").unwrap();
        let other = NetworkCa::generate("other").unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", &ca.root_pem());
        write("other-ca.pem", &other.root_pem());
        for (prefix, identity) in [
            ("node", ca.issue("devnet rpc").unwrap()),
            ("relayer", ca.issue("relayer").unwrap()),
            ("stranger", other.issue("relayer").unwrap()),
        ] {
            write(&format!("{prefix}.pem"), &identity.cert_pem);
            write(&format!("{prefix}.key"), &identity.key_pem);
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// The relayer's `[evm.tls]`: trusting `ca`, presenting `client` (`relayer`, `stranger`).
    fn config(&self, ca: &str, client: Option<&str>) -> EvmTlsConfig {
        EvmTlsConfig {
            ca: self.path(ca),
            cert: client.map(|c| self.path(&format!("{c}.pem"))),
            key: client.map(|c| self.path(&format!("{c}.key"))),
        }
    }

    fn tls(&self, ca: &str, client: Option<&str>) -> EvmTls {
        EvmTls::load(&self.config(ca, client)).unwrap()
    }
}

fn tls_devnet_config(pki: &Pki, client_ca: bool) -> DevnetConfig {
    DevnetConfig {
        production: BlockProduction::Interval(Duration::from_millis(100)),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        rpc_tls: Some(RpcTls {
            cert: pki.path("node.pem"),
            key: pki.path("node.key"),
            client_ca: client_ca.then(|| pki.path("ca.pem")),
        }),
        dev_accounts: 2,
        chain_id: CHAIN,
        max_request_body: MAX_BODY,
        ..DevnetConfig::default()
    }
}

fn rpc(url: &str, tls: Option<&EvmTls>) -> FailoverRpc {
    FailoverRpc::with_tls(CHAIN, &[url.to_string()], Duration::from_secs(5), tls).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_doorbell_and_remote_signer_over_tls_with_the_relayers_certificate() {
    let pki = Pki::new();
    let chain = Devnet::start(tls_devnet_config(&pki, true)).await.unwrap();
    assert!(chain.rpc_tls());
    let https = format!("https://{}", chain.rpc_addr());
    let tls = pki.tls("ca.pem", Some("relayer"));
    assert!(tls.client_auth());
    let rpc = Arc::new(rpc(&https, Some(&tls)));
    // The chain id check and a call, both over TLS.
    assert!(rpc.block_number().await.unwrap() < 1_000);
    let from = chain.dev_accounts()[0].address;
    let emitter = deploy(&rpc, from, &EMITTER).await;
    let start = rpc.block_number().await.unwrap();

    // The doorbell over wss:// with the same certificate. The timer is far too slow to deliver
    // anything in this test's bounds: rings are what make the follower look.
    let (mut logs, stats, task) = follow(
        rpc.clone(),
        FollowConfig {
            address: emitter,
            from_block: start,
            confirmations: 1,
            ws: vec![format!("wss://{}", chain.rpc_addr())],
            reconcile_every: Duration::from_secs(600),
            silence: Duration::from_secs(600),
            max_range: 100,
            tls: Some(tls.clone()),
        },
    );
    for i in 1..=3u64 {
        let topic = B256::from(alloy_primitives::U256::from(i));
        send(
            &rpc,
            json!({"from": from, "to": emitter, "data": topic, "gas": "0x100000"}),
        )
        .await;
        let log = tokio::time::timeout(Duration::from_secs(20), logs.recv())
            .await
            .expect("a log within 20 s")
            .unwrap();
        assert_eq!(log.topics, vec![topic]);
    }
    assert_eq!(stats.subscriptions.load(Ordering::Relaxed), 1);
    assert!(stats.rings.load(Ordering::Relaxed) > 0);
    task.abort();

    // The remote signer (here the devnet, which holds the dev keys) over https:// with the
    // EVM links' TLS settings, as the configuration gives them.
    let account = chain.dev_accounts()[1].address;
    let signer = load_tx_signer(
        &SignerConfig::Remote {
            url: https.clone(),
            address: account,
            tls: None,
        },
        Some(&pki.config("ca.pem", Some("relayer"))),
    )
    .unwrap();
    let submitter = Submitter::with_signer(rpc.clone(), signer, SubmitPolicy::default());
    let receipt = submitter
        .submit(emitter, Bytes::from(B256::repeat_byte(7).to_vec()))
        .await
        .unwrap();
    let tx: Value = rpc
        .request("eth_getTransactionByHash", vec![json!(receipt.tx_hash)])
        .await
        .unwrap();
    assert_eq!(
        tx["from"].as_str().unwrap().to_lowercase(),
        account.to_string().to_lowercase()
    );
    // Without a client certificate the signer is refused like any other client.
    let anonymous = load_tx_signer(
        &SignerConfig::Remote {
            url: https.clone(),
            address: account,
            tls: Some(pki.config("ca.pem", None)),
        },
        Some(&pki.config("ca.pem", Some("relayer"))),
    )
    .unwrap();
    let err = Submitter::with_signer(rpc.clone(), anonymous, SubmitPolicy::default())
        .submit(emitter, Bytes::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("remote signer"), "{err}");
    chain.shutdown().await.unwrap();
}

/// What the devnet answers a TLS client trusting `ca` and presenting `client` (an io error
/// when the handshake fails): the whole HTTP/1.1 response to a POST of `body`.
async fn raw_exchange(
    addr: std::net::SocketAddr,
    ca: &[u8],
    client: Option<(&[u8], &[u8])>,
    body: &str,
) -> std::io::Result<String> {
    let config = EvmTls::from_pem(ca, client).unwrap().client_config();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(
        format!(
            "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\norigin: http://dapp.example\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(String::from_utf8_lossy(&answer).to_lowercase())
}

const CHAIN_ID_CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;

fn assert_unavailable(result: Result<u64, RpcError>, what: &str) {
    match result {
        Err(RpcError::Unavailable { .. }) => {}
        other => panic!("{what}: expected the endpoint to be unreachable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_right_certificates_are_refused_at_the_handshake() {
    let pki = Pki::new();
    let chain = Devnet::start(tls_devnet_config(&pki, true)).await.unwrap();
    let addr = chain.rpc_addr();
    let https = format!("https://{addr}");
    let (ca, other_ca) = (pki.read("ca.pem"), pki.read("other-ca.pem"));
    let relayer = (pki.read("relayer.pem"), pki.read("relayer.key"));
    let stranger = (pki.read("stranger.pem"), pki.read("stranger.key"));
    let id = |p: &(Vec<u8>, Vec<u8>)| (p.0.clone(), p.1.clone());

    // The right certificate: answered, with the plain server's CORS headers and limits.
    let (c, k) = id(&relayer);
    let answer = raw_exchange(addr, &ca, Some((&c, &k)), CHAIN_ID_CALL)
        .await
        .unwrap();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(
        answer.contains("access-control-allow-origin: *"),
        "{answer}"
    );
    assert!(
        answer.contains(&format!("\"result\":\"{CHAIN:#x}\"")),
        "{answer}"
    );
    let oversized = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":["{}"]}}"#,
        "0".repeat(MAX_BODY as usize)
    );
    let answer = raw_exchange(addr, &ca, Some((&c, &k)), &oversized)
        .await
        .unwrap();
    assert!(answer.starts_with("http/1.1 413"), "{answer}");

    // No certificate: the server ends the handshake with certificate_required.
    let err = raw_exchange(addr, &ca, None, CHAIN_ID_CALL)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CertificateRequired"), "{err}");
    // A certificate of another CA: unknown_ca.
    let (c, k) = id(&stranger);
    let err = raw_exchange(addr, &ca, Some((&c, &k)), CHAIN_ID_CALL)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("UnknownCA"), "{err}");
    // Trusting another CA than the one that signed the server's certificate: the client
    // itself refuses the server.
    let (c, k) = id(&relayer);
    let err = raw_exchange(addr, &other_ca, Some((&c, &k)), CHAIN_ID_CALL)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");

    // The same three through the relayer's clients: the endpoint is unusable.
    assert!(
        rpc(&https, Some(&pki.tls("ca.pem", Some("relayer"))))
            .block_number()
            .await
            .is_ok()
    );
    for (what, tls) in [
        ("no client certificate", pki.tls("ca.pem", None)),
        (
            "another CA's client certificate",
            pki.tls("ca.pem", Some("stranger")),
        ),
        (
            "another CA trusted",
            pki.tls("other-ca.pem", Some("relayer")),
        ),
    ] {
        assert_unavailable(rpc(&https, Some(&tls)).block_number().await, what);
        let ws = jsonrpsee::ws_client::WsClientBuilder::default()
            .connection_timeout(Duration::from_secs(5))
            .with_custom_cert_store(tls.client_config())
            .build(format!("wss://{addr}"))
            .await;
        if let Ok(client) = ws {
            // A TLS 1.3 client learns of its refusal only when it reads.
            use jsonrpsee::core::client::ClientT;
            let answer: Result<Value, _> = client
                .request("eth_chainId", jsonrpsee::rpc_params![])
                .await;
            assert!(answer.is_err(), "{what}: wss answered {answer:?}");
        }
    }
    // Plain HTTP to the TLS port is not JSON-RPC either; nor the system's roots.
    assert_unavailable(
        rpc(&format!("http://{addr}"), None).block_number().await,
        "plain http",
    );
    assert_unavailable(rpc(&https, None).block_number().await, "system roots");
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_client_authentication_and_unusable_files() {
    let pki = Pki::new();
    // TLS only: any client that trusts the CA is served, with or without a certificate.
    let chain = Devnet::start(tls_devnet_config(&pki, false)).await.unwrap();
    let https = format!("https://{}", chain.rpc_addr());
    assert!(
        rpc(&https, Some(&pki.tls("ca.pem", None)))
            .block_number()
            .await
            .is_ok()
    );
    assert!(
        rpc(&https, Some(&pki.tls("ca.pem", Some("stranger"))))
            .block_number()
            .await
            .is_ok()
    );
    chain.shutdown().await.unwrap();

    // Files the devnet cannot use are refused before it starts.
    let missing = DevnetConfig {
        rpc_tls: Some(RpcTls {
            cert: pki.path("absent.pem"),
            key: pki.path("node.key"),
            client_ca: None,
        }),
        ..tls_devnet_config(&pki, false)
    };
    let err = Devnet::start(missing).await.unwrap_err();
    assert!(matches!(err, DevnetError::Tls(_)), "{err}");
    let mismatched = DevnetConfig {
        rpc_tls: Some(RpcTls {
            cert: pki.path("node.pem"),
            key: pki.path("relayer.key"),
            client_ca: Some(pki.path("ca.pem")),
        }),
        ..tls_devnet_config(&pki, false)
    };
    let err = Devnet::start(mismatched).await.unwrap_err();
    assert!(matches!(err, DevnetError::Tls(_)), "{err}");
    let not_a_ca = DevnetConfig {
        rpc_tls: Some(RpcTls {
            cert: pki.path("node.pem"),
            key: pki.path("node.key"),
            client_ca: Some(pki.path("node.key")),
        }),
        ..tls_devnet_config(&pki, false)
    };
    let err = Devnet::start(not_a_ca).await.unwrap_err();
    assert!(matches!(err, DevnetError::Tls(_)), "{err}");

    // And the relayer's side: a key without a certificate, a CA file without certificates.
    let err = EvmTls::load(&EvmTlsConfig {
        ca: pki.path("ca.pem"),
        cert: None,
        key: Some(pki.path("relayer.key")),
    })
    .unwrap_err();
    assert!(err.to_string().contains("both cert and key"), "{err}");
    let err = EvmTls::load(&pki.config("relayer.key", None)).unwrap_err();
    assert!(err.to_string().contains("relayer.key"), "{err}");
}
