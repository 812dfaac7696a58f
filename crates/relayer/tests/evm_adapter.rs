//! The EVM adapter against the project's devnet over real JSON-RPC: a keystore-loaded signer
//! submits and confirms; concurrent submissions get distinct nonces; a nonce used behind the
//! submitter's back is recovered from; a reverting call is refused before it is sent; an endpoint
//! of another chain is never used; and when the endpoint in use dies (a loopback proxy in front
//! of the devnet, killed mid-run), requests fail over to the next one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Bytes;
use alloy_signer_local::PrivateKeySigner;
use common::{deploy, devnet, key, proxy, url};
use kh_relayer::evm::{FailoverRpc, RpcError, SubmitError, SubmitPolicy, Submitter, open_keystore};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_confirms_and_manages_nonces() {
    let chain = devnet(4242).await;
    let rpc = Arc::new(FailoverRpc::new(4242, &[url(&chain)], Duration::from_secs(10)).unwrap());

    // The relayer's key comes from a v3 keystore written for it.
    let dir = tempfile::tempdir().unwrap();
    let secret = chain.dev_accounts()[0].private_key;
    let mut rng = rand::rngs::OsRng;
    let _ = PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut rng,
        secret,
        "correct horse",
        Some("relayer.json"),
    )
    .unwrap();
    let signer = open_keystore(&dir.path().join("relayer.json"), "correct horse").unwrap();
    assert_eq!(signer.address(), chain.dev_accounts()[0].address);

    let policy = SubmitPolicy {
        confirmations: 2,
        ..SubmitPolicy::default()
    };
    let submitter = Arc::new(Submitter::new(rpc.clone(), signer, policy));
    // STOP: a contract that accepts any call.
    let sink = deploy(&rpc, chain.dev_accounts()[1].address, &[0x00]).await;

    // Concurrent submissions: distinct nonces, all confirmed with a block on top.
    let mut tasks = Vec::new();
    for i in 0..6u8 {
        let s = submitter.clone();
        tasks.push(tokio::spawn(async move {
            s.submit(sink, Bytes::from(vec![i])).await
        }));
    }
    let mut hashes = Vec::new();
    for t in tasks {
        hashes.push(t.await.unwrap().unwrap().tx_hash);
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 6);
    let nonce = rpc
        .quantity(
            "eth_getTransactionCount",
            vec![json!(submitter.address()), json!("latest")],
        )
        .await
        .unwrap();
    assert_eq!(nonce, 6);

    // The same account used behind the submitter's back: its next nonce is taken; the
    // submitter reads the nonce again and still gets its transaction in.
    let other = Submitter::new(rpc.clone(), key(&chain, 0), SubmitPolicy::default());
    other
        .submit(sink, Bytes::from_static(b"elsewhere"))
        .await
        .unwrap();
    submitter
        .submit(sink, Bytes::from_static(b"after"))
        .await
        .unwrap();
    let nonce = rpc
        .quantity(
            "eth_getTransactionCount",
            vec![json!(submitter.address()), json!("latest")],
        )
        .await
        .unwrap();
    assert_eq!(nonce, 8);

    // A call that reverts is refused by the estimate and never sent.
    let reverter = deploy(
        &rpc,
        chain.dev_accounts()[1].address,
        &[0x60, 0, 0x60, 0, 0xfd],
    )
    .await;
    let err = submitter.submit(reverter, Bytes::new()).await.unwrap_err();
    assert!(matches!(err, SubmitError::Reverted { .. }), "{err}");
    let after = rpc
        .quantity(
            "eth_getTransactionCount",
            vec![json!(submitter.address()), json!("pending")],
        )
        .await
        .unwrap();
    assert_eq!(after, 8);
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_endpoint_and_never_uses_another_chain() {
    let chain = devnet(4343).await;
    let stranger = devnet(4444).await;
    let (front, kill_front) = proxy(chain.rpc_addr()).await;
    let front = format!("http://{front}");
    // In order of preference: a node of another chain, the proxy, the devnet itself.
    let rpc = Arc::new(
        FailoverRpc::new(
            4343,
            &[url(&stranger), front.clone(), url(&chain)],
            Duration::from_secs(5),
        )
        .unwrap(),
    );
    let head = rpc.block_number().await.unwrap();
    assert!(head <= chain.head_number());
    assert_eq!(
        rpc.current_url(),
        front,
        "the other chain's node was skipped"
    );

    let submitter = Submitter::new(rpc.clone(), key(&chain, 0), SubmitPolicy::default());
    let sink = deploy(&rpc, chain.dev_accounts()[1].address, &[0x00]).await;
    submitter
        .submit(sink, Bytes::from_static(b"one"))
        .await
        .unwrap();

    // The endpoint in use dies.
    kill_front.send(true).unwrap();
    let receipt = submitter
        .submit(sink, Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(rpc.current_url(), url(&chain));
    assert!(rpc.failovers() >= 2, "{}", rpc.failovers());
    assert!(receipt.block_number > head);

    // With every endpoint of the chain gone, the error says so.
    chain.shutdown().await.unwrap();
    let err = rpc.block_number().await.unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Unavailable { .. } | RpcError::WrongChain { .. }
        ),
        "{err}"
    );
    stranger.shutdown().await.unwrap();
}

/// A remote signer (the devnet's own `eth_signTransaction`, Web3Signer's form) signs the
/// relayer's transactions; a signer whose answer is not the transaction asked for (here a server
/// that always answers one fixed transaction) is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_signer_signs_and_a_lying_one_is_refused() {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_primitives::{TxKind, U256};
    use alloy_signer::SignerSync;
    use kh_relayer::evm::{RemoteSigner, TxSigner};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let chain = devnet(4545).await;
    let rpc = Arc::new(FailoverRpc::new(4545, &[url(&chain)], Duration::from_secs(10)).unwrap());
    let account = chain.dev_accounts()[1].address;
    let remote = RemoteSigner::new(&url(&chain), account).unwrap();
    let submitter = Submitter::with_signer(
        rpc.clone(),
        TxSigner::Remote(remote),
        SubmitPolicy::default(),
    );
    let sink = deploy(&rpc, chain.dev_accounts()[0].address, &[0x00]).await;
    let receipt = submitter
        .submit(sink, Bytes::from_static(b"signed elsewhere"))
        .await
        .unwrap();
    let tx: serde_json::Value = rpc
        .request("eth_getTransactionByHash", vec![json!(receipt.tx_hash)])
        .await
        .unwrap();
    assert_eq!(
        tx["from"].as_str().unwrap().to_lowercase(),
        account.to_string().to_lowercase()
    );

    // A liar: whatever it is asked, it answers a transaction of its own (validly signed).
    let fixed = {
        let tx = TxEip1559 {
            chain_id: 4545,
            nonce: 999,
            gas_limit: 21_000,
            max_fee_per_gas: 1_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(sink),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let signer = key(&chain, 1);
        let sig = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
        let envelope: TxEnvelope = tx.into_signed(sig).into();
        Bytes::from(envelope.encoded_2718())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let fixed = fixed.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body_start = req.find("\r\n\r\n").map(|i| i + 4).unwrap_or(n);
                let id = serde_json::from_str::<serde_json::Value>(&req[body_start..])
                    .map(|v| v["id"].clone())
                    .unwrap_or(json!(0));
                let body = json!({"jsonrpc": "2.0", "id": id, "result": fixed}).to_string();
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let liar = RemoteSigner::new(&format!("http://{liar_addr}"), account).unwrap();
    let submitter =
        Submitter::with_signer(rpc.clone(), TxSigner::Remote(liar), SubmitPolicy::default());
    let err = submitter
        .submit(sink, Bytes::from_static(b"not this"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("another transaction than asked"),
        "{err}"
    );
    chain.shutdown().await.unwrap();
}
