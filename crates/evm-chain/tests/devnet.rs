//! The devnet end to end over its JSON-RPC: transactions of every type, receipts and logs,
//! proofs checked by an independent verifier, QBFT verification of every header across
//! validator votes, persistence, bad input and subscriptions.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use common::*;
use kh_evm_chain::{BlockProduction, DevnetConfig};
use serde_json::{Value, json};

fn load_mpt() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/mpt/ethereum-ibc-rs-proofs.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn nodes(v: &Value) -> Vec<Vec<u8>> {
    v.as_array().unwrap().iter().map(hex_bytes).collect()
}

#[test]
fn verifier_agrees_with_the_shared_mpt_vectors() {
    let v = load_mpt();
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let root: B256 = case
            .get("state_root")
            .or_else(|| case.get("storage_root"))
            .unwrap()
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let key: B256 = case["mpt_key"].as_str().unwrap().parse().unwrap();
        let proof = nodes(&case["proof_nodes"]);
        let got = verify_mpt(root, key, &proof).unwrap_or_else(|e| panic!("{name}: {e}"));
        match name {
            "account_storage_root_existence" | "account_verification_light_client_rs" => {
                let leaf = got.unwrap();
                assert_eq!(leaf, hex_bytes(&case["expected_account_rlp"]), "{name}");
                let (_, _, storage_root, _) = decode_account(&leaf);
                assert_eq!(
                    storage_root,
                    case["expected_storage_root"]
                        .as_str()
                        .unwrap()
                        .parse::<B256>()
                        .unwrap()
                );
            }
            "account_non_existence" | "ibc_commitment_non_membership" => {
                assert_eq!(got, None, "{name}")
            }
            "ibc_commitment_membership" => {
                assert_eq!(got.unwrap(), hex_bytes(&case["expected_leaf_value_rlp"]));
                // The leaf holds keccak256(value), as the yui IBC store commits.
                let value = hex_bytes(&case["value"]);
                assert_eq!(
                    keccak256(&value).as_slice(),
                    &hex_bytes(&case["expected_commitment"])[..]
                );
            }
            other => panic!("unexpected case {other}"),
        }
        // Any flipped byte in the first node breaks the proof.
        let mut tampered = proof.clone();
        tampered[0][5] ^= 1;
        assert!(
            verify_mpt(root, key, &tampered).is_err(),
            "{name}: tampered proof accepted"
        );
    }
}

fn io_response(name: &str) -> Value {
    let path = format!(
        "{}/../../vectors/mpt/execution-apis/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with("<<")).unwrap();
    serde_json::from_str::<Value>(line.trim_start_matches("<<").trim()).unwrap()["result"].clone()
}

#[test]
fn verifier_agrees_with_execution_apis_transcripts() {
    let state_root: B256 = io_response("eth_getBlockByNumber-get-latest.io")["stateRoot"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for file in [
        "get-account-proof-blockhash.io",
        "get-account-proof-latest.io",
        "get-account-proof-with-storage.io",
    ] {
        let r = io_response(file);
        let address: Address = r["address"].as_str().unwrap().parse().unwrap();
        let leaf = verify_mpt(state_root, keccak256(address), &nodes(&r["accountProof"]))
            .unwrap()
            .unwrap();
        let (nonce, balance, storage_root, code_hash) = decode_account(&leaf);
        assert_eq!(nonce, hex_u64(&r["nonce"]));
        assert_eq!(balance, hex_u256(&r["balance"]));
        assert_eq!(
            storage_root,
            r["storageHash"].as_str().unwrap().parse::<B256>().unwrap()
        );
        assert_eq!(
            code_hash,
            r["codeHash"].as_str().unwrap().parse::<B256>().unwrap()
        );
        for sp in r["storageProof"].as_array().unwrap() {
            let slot = B256::from(hex_u256(&sp["key"]));
            let got = verify_mpt(storage_root, keccak256(slot), &nodes(&sp["proof"])).unwrap();
            assert_eq!(
                got.map(|l| decode_storage(&l)).unwrap_or_default(),
                hex_u256(&sp["value"])
            );
        }
    }
}

/// Checks every header: hash rule, parent links, and QBFT seals against the block's validators.
async fn verify_all_headers(client: &jsonrpsee::http_client::HttpClient) -> usize {
    let head = hex_u64(&call(client, "eth_blockNumber", vec![]).await);
    let mut parent = B256::ZERO;
    for n in 0..=head {
        let block = call(
            client,
            "eth_getBlockByNumber",
            vec![json!(format!("{n:#x}")), json!(false)],
        )
        .await;
        let typed: alloy_rpc_types_eth::Block = serde_json::from_value(block.clone()).unwrap();
        let rlp = alloy_rlp::encode(&typed.header.inner);
        let header = kh_qbft::Header::decode(&rlp).unwrap();
        let hash: B256 = block["hash"].as_str().unwrap().parse().unwrap();
        // The block hash is keccak256 of the header RLP in QBFT's hash form (round 0, no seals).
        let mut hash_form = typed.header.inner.clone();
        hash_form.extra_data = Bytes::from(header.extra_data().encode_for_hash());
        assert_eq!(keccak256(alloy_rlp::encode(&hash_form)), hash, "block {n}");
        assert_eq!(header.block_hash(), hash);
        assert_eq!(header.parent_hash(), parent, "block {n} parent link");
        header.check_bft_constants().unwrap();
        let validators: Vec<Address> = serde_json::from_value(
            call(
                client,
                "qbft_getValidatorsByBlockNumber",
                vec![json!(format!("{n:#x}"))],
            )
            .await,
        )
        .unwrap();
        assert_eq!(header.extra_data().validators, validators);
        if n > 0 {
            let signers = kh_qbft::verify_commit_seals(&header, &validators).unwrap();
            assert!(signers.len() >= kh_qbft::quorum(validators.len()));
        }
        parent = hash;
    }
    (head + 1) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_receipts_logs_calls_and_proofs() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let bob = Address::repeat_byte(0xb0);
    let mut nonce = 0u64;

    // Value transfers with each supported transaction type.
    for kind in [Kind::Legacy, Kind::Eip2930, Kind::Eip1559] {
        let raw = sign(
            &alice,
            kind,
            nonce,
            TxKind::Call(bob),
            U256::from(1000),
            Bytes::new(),
            21_000,
        );
        let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
        let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
        assert_eq!(receipt["status"], "0x1");
        assert_eq!(hex_u64(&receipt["gasUsed"]), 21_000);
        let tx = call(&client, "eth_getTransactionByHash", vec![hash.clone()]).await;
        assert_eq!(tx["hash"], hash);
        assert_eq!(
            tx["from"].as_str().unwrap().parse::<Address>().unwrap(),
            alice.address()
        );
        nonce += 1;
    }
    let balance = call(&client, "eth_getBalance", vec![json!(bob), json!("latest")]).await;
    assert_eq!(hex_u256(&balance), U256::from(3000));
    assert_eq!(
        hex_u64(
            &call(
                &client,
                "eth_getTransactionCount",
                vec![json!(alice.address()), json!("pending")]
            )
            .await
        ),
        3
    );

    // Deploy a contract that stores its argument and logs it.
    let raw = sign(
        &alice,
        Kind::Eip1559,
        nonce,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&store_and_log_runtime()),
        200_000,
    );
    nonce += 1;
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash]).await;
    assert_eq!(receipt["status"], "0x1");
    let contract: Address = receipt["contractAddress"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(contract, alice.address().create(3));
    let code = call(
        &client,
        "eth_getCode",
        vec![json!(contract), json!("latest")],
    )
    .await;
    assert_eq!(hex_bytes(&code), store_and_log_runtime());

    let word = B256::from(U256::from(0x42));
    let raw = sign(
        &alice,
        Kind::Eip1559,
        nonce,
        TxKind::Call(contract),
        U256::ZERO,
        Bytes::from(word.to_vec()),
        100_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(
        receipt["logs"][0]["topics"][0],
        json!(B256::from(LOG_TOPIC))
    );
    assert_eq!(
        receipt["logs"][0]["data"],
        json!(Bytes::from(word.to_vec()))
    );
    let block_number = receipt["blockNumber"].clone();

    let logs = call(&client, "eth_getLogs", vec![json!({"fromBlock": "0x0", "toBlock": "latest", "address": contract, "topics": [B256::from(LOG_TOPIC)]})]).await;
    assert_eq!(logs.as_array().unwrap().len(), 1);
    assert_eq!(logs[0]["transactionHash"], hash);
    let none = call(
        &client,
        "eth_getLogs",
        vec![json!({"fromBlock": "0x0", "address": contract, "topics": [B256::repeat_byte(1)]})],
    )
    .await;
    assert!(none.as_array().unwrap().is_empty());
    let slot = call(
        &client,
        "eth_getStorageAt",
        vec![json!(contract), json!("0x0"), json!("latest")],
    )
    .await;
    assert_eq!(slot, json!(word));

    // eth_getProof at the receipt's block, verified against that block's stateRoot.
    let block = call(
        &client,
        "eth_getBlockByNumber",
        vec![block_number.clone(), json!(true)],
    )
    .await;
    assert_eq!(block["transactions"][0]["hash"], hash);
    let state_root: B256 = block["stateRoot"].as_str().unwrap().parse().unwrap();
    let proof = call(
        &client,
        "eth_getProof",
        vec![json!(contract), json!(["0x0"]), block_number.clone()],
    )
    .await;
    let leaf = verify_mpt(
        state_root,
        keccak256(contract),
        &nodes(&proof["accountProof"]),
    )
    .unwrap()
    .unwrap();
    let (_, _, storage_root, code_hash) = decode_account(&leaf);
    assert_eq!(code_hash, keccak256(store_and_log_runtime()));
    assert_eq!(
        storage_root,
        proof["storageHash"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap()
    );
    let sp = &proof["storageProof"][0];
    let value = verify_mpt(storage_root, keccak256(B256::ZERO), &nodes(&sp["proof"]))
        .unwrap()
        .unwrap();
    assert_eq!(decode_storage(&value), U256::from(0x42));
    assert_eq!(hex_u256(&sp["value"]), U256::from(0x42));
    // An absent account is proven absent.
    let absent = Address::repeat_byte(0x77);
    let proof = call(
        &client,
        "eth_getProof",
        vec![json!(absent), json!([]), block_number],
    )
    .await;
    assert_eq!(
        verify_mpt(
            state_root,
            keccak256(absent),
            &nodes(&proof["accountProof"])
        )
        .unwrap(),
        None
    );

    // eth_call and estimateGas, including a revert with data.
    let out = call(
        &client,
        "eth_call",
        vec![json!({"to": contract, "data": word}), json!("latest")],
    )
    .await;
    assert_eq!(out, "0x");
    let gas = call(
        &client,
        "eth_estimateGas",
        vec![json!({"from": alice.address(), "to": bob, "value": "0x1"})],
    )
    .await;
    assert_eq!(hex_u64(&gas), 21_000);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        nonce + 1,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&revert_runtime()),
        200_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let reverter: Address =
        call(&client, "eth_getTransactionReceipt", vec![hash]).await["contractAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    let e = call_err(
        &client,
        "eth_call",
        vec![json!({"to": reverter}), json!("latest")],
    )
    .await;
    assert_eq!(e.code(), 3);
    assert_eq!(e.data().unwrap().get(), "\"0xdeadbeef\"");
    let e = call_err(&client, "eth_estimateGas", vec![json!({"to": reverter})]).await;
    assert_eq!(e.code(), 3);

    // Fee market endpoints.
    let history = call(
        &client,
        "eth_feeHistory",
        vec![json!("0x4"), json!("latest"), json!([50])],
    )
    .await;
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 5);
    assert!(hex_u64(&call(&client, "eth_gasPrice", vec![]).await) > 0);

    assert!(verify_all_headers(&client).await > 5);
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_votes_add_and_remove_and_every_header_verifies() {
    let (devnet, client) = start_config(DevnetConfig {
        production: BlockProduction::Instant,
        admin: true,
        ..DevnetConfig::default()
    })
    .await;
    let original = devnet.validators().to_vec();
    let newcomer = Address::repeat_byte(0x5e);
    assert_eq!(
        call(
            &client,
            "qbft_proposeValidatorVote",
            vec![json!(newcomer), json!(true)]
        )
        .await,
        json!(true)
    );
    let mut added_at = None;
    for _ in 0..20 {
        let n = devnet.mine().await.unwrap();
        let set: Vec<Address> = serde_json::from_value(
            call(
                &client,
                "qbft_getValidatorsByBlockNumber",
                vec![json!("latest")],
            )
            .await,
        )
        .unwrap();
        if set.contains(&newcomer) {
            added_at = Some(n);
            break;
        }
    }
    let added_at = added_at.expect("the newcomer was voted in within 20 blocks");
    devnet.mine().await.unwrap();
    let dropped = original[0];
    call(
        &client,
        "qbft_proposeValidatorVote",
        vec![json!(dropped), json!(false)],
    )
    .await;
    let mut removed = false;
    for _ in 0..20 {
        devnet.mine().await.unwrap();
        let set: Vec<Address> = serde_json::from_value(
            call(
                &client,
                "qbft_getValidatorsByBlockNumber",
                vec![json!("latest")],
            )
            .await,
        )
        .unwrap();
        if !set.contains(&dropped) {
            assert!(set.contains(&newcomer));
            assert_eq!(set.len(), original.len());
            removed = true;
            break;
        }
    }
    assert!(removed, "the validator was voted out within 20 blocks");
    assert!(added_at > 1);
    verify_all_headers(&client).await;
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_same_data_directory_keeps_chain_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let alice = dev_signer(0);
    let bob = Address::repeat_byte(0xb1);
    let (devnet, client) = start(BlockProduction::Instant, Some(dir.path().to_path_buf())).await;
    for nonce in 0..3 {
        let raw = sign(
            &alice,
            Kind::Eip1559,
            nonce,
            TxKind::Call(bob),
            U256::from(7),
            Bytes::new(),
            21_000,
        );
        call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    }
    devnet.mine().await.unwrap();
    let head = call(
        &client,
        "eth_getBlockByNumber",
        vec![json!("latest"), json!(false)],
    )
    .await;
    devnet.shutdown().await.unwrap();

    let (devnet, client) = start(BlockProduction::Instant, Some(dir.path().to_path_buf())).await;
    let again = call(
        &client,
        "eth_getBlockByNumber",
        vec![json!("latest"), json!(false)],
    )
    .await;
    assert_eq!(again["hash"], head["hash"]);
    assert_eq!(again["stateRoot"], head["stateRoot"]);
    assert_eq!(
        hex_u256(&call(&client, "eth_getBalance", vec![json!(bob)]).await),
        U256::from(21)
    );
    // The chain goes on from where it was.
    let raw = sign(
        &alice,
        Kind::Eip1559,
        3,
        TxKind::Call(bob),
        U256::from(7),
        Bytes::new(),
        21_000,
    );
    call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    assert_eq!(
        hex_u256(&call(&client, "eth_getBalance", vec![json!(bob)]).await),
        U256::from(28)
    );
    verify_all_headers(&client).await;
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_json_rpc_errors_and_the_node_keeps_serving() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let addr = devnet.rpc_addr();
    let code_of = |body: &str| {
        serde_json::from_str::<Value>(body).unwrap()["error"]["code"]
            .as_i64()
            .unwrap()
    };

    let (_, body) = raw_http(addr, b"{not json").await;
    assert_eq!(code_of(&body), -32700);
    let (_, body) = raw_http(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[12345]}"#,
    )
    .await;
    assert_eq!(code_of(&body), -32602);
    let (_, body) = raw_http(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_nope","params":[]}"#,
    )
    .await;
    assert_eq!(code_of(&body), -32601);
    let (_, body) = raw_http(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0xzz"]}"#,
    )
    .await;
    assert_eq!(code_of(&body), -32602);
    let big = vec![b' '; 11 * 1024 * 1024];
    let (status, _) = raw_http(addr, &big).await;
    assert_eq!(status, 413);

    let alice = dev_signer(0);
    let e = call_err(&client, "eth_sendRawTransaction", vec![json!("0x02f8")]).await;
    assert_eq!(e.code(), -32000);
    // A signature over other bytes recovers another sender, which has no funds.
    let mut raw = sign(
        &alice,
        Kind::Legacy,
        0,
        TxKind::Call(Address::ZERO),
        U256::from(1),
        Bytes::new(),
        21_000,
    )
    .to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let e = call_err(
        &client,
        "eth_sendRawTransaction",
        vec![json!(Bytes::from(raw))],
    )
    .await;
    assert_eq!(e.code(), -32000);
    let ok = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Call(Address::ZERO),
        U256::from(1),
        Bytes::new(),
        21_000,
    );
    call(&client, "eth_sendRawTransaction", vec![json!(ok)]).await;
    let again = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Call(Address::ZERO),
        U256::from(2),
        Bytes::new(),
        21_000,
    );
    let e = call_err(&client, "eth_sendRawTransaction", vec![json!(again)]).await;
    assert_eq!(e.code(), -32000);
    assert!(e.message().contains("nonce too low"), "{}", e.message());
    let pauper = alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(9)).unwrap();
    let poor = sign(
        &pauper,
        Kind::Eip1559,
        0,
        TxKind::Call(Address::ZERO),
        U256::from(1),
        Bytes::new(),
        21_000,
    );
    let e = call_err(&client, "eth_sendRawTransaction", vec![json!(poor)]).await;
    assert!(
        e.message().contains("insufficient funds"),
        "{}",
        e.message()
    );
    let wrong_chain = {
        use alloy_consensus::{SignableTransaction, TxEip1559};
        use alloy_eips::eip2718::Encodable2718;
        use alloy_signer::SignerSync;
        let tx = TxEip1559 {
            chain_id: 1,
            nonce: 1,
            gas_limit: 21_000,
            max_fee_per_gas: 3_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::ZERO),
            ..Default::default()
        };
        let sig = alice.sign_hash_sync(&tx.signature_hash()).unwrap();
        Bytes::from(alloy_consensus::TxEnvelope::from(tx.into_signed(sig)).encoded_2718())
    };
    let e = call_err(&client, "eth_sendRawTransaction", vec![json!(wrong_chain)]).await;
    assert!(e.message().contains("chain id"), "{}", e.message());

    // Still serving, and none of the refused transactions changed anything.
    assert_eq!(hex_u64(&call(&client, "eth_blockNumber", vec![]).await), 1);
    assert_eq!(
        hex_u64(
            &call(
                &client,
                "eth_getTransactionCount",
                vec![json!(alice.address())]
            )
            .await
        ),
        1
    );
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriptions_deliver_heads_and_logs() {
    use jsonrpsee::core::client::SubscriptionClientT;
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let ws = jsonrpsee::ws_client::WsClientBuilder::default()
        .build(format!("ws://{}", devnet.rpc_addr()))
        .await
        .unwrap();
    let mut heads = ws
        .subscribe::<Value, _>("eth_subscribe", vec![json!("newHeads")], "eth_unsubscribe")
        .await
        .unwrap();
    let mut logs = ws
        .subscribe::<Value, _>(
            "eth_subscribe",
            vec![json!("logs"), json!({"topics": [B256::from(LOG_TOPIC)]})],
            "eth_unsubscribe",
        )
        .await
        .unwrap();
    let alice = dev_signer(0);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        0,
        TxKind::Create,
        U256::ZERO,
        deploy_code(&store_and_log_runtime()),
        200_000,
    );
    call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let contract = alice.address().create(0);
    let raw = sign(
        &alice,
        Kind::Eip1559,
        1,
        TxKind::Call(contract),
        U256::ZERO,
        Bytes::from(vec![7u8; 32]),
        100_000,
    );
    call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let first = tokio::time::timeout(Duration::from_secs(10), heads.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(hex_u64(&first["number"]), 1);
    let second = tokio::time::timeout(Duration::from_secs(10), heads.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(hex_u64(&second["number"]), 2);
    let log = tokio::time::timeout(Duration::from_secs(10), logs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        log["address"].as_str().unwrap().parse::<Address>().unwrap(),
        contract
    );
    assert_eq!(hex_u64(&log["blockNumber"]), 2);
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_pack_by_gas_used_and_keep_the_rest_in_order() {
    let devnet = kh_evm_chain::Devnet::start(kh_evm_chain::DevnetConfig {
        production: BlockProduction::Interval(Duration::from_secs(3600)),
        rpc_addr: "127.0.0.1:0".parse().unwrap(),
        chain_id: CHAIN_ID,
        gas_limit: 100_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = client(&devnet);
    let alice = dev_signer(0);
    let mut hashes = vec![];
    for nonce in 0..10 {
        // Each declares 50,000 gas but uses 21,000.
        let raw = sign(
            &alice,
            Kind::Eip1559,
            nonce,
            TxKind::Call(Address::repeat_byte(1)),
            U256::from(1),
            Bytes::new(),
            50_000,
        );
        hashes.push(call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await);
    }
    let mut per_block = vec![];
    for _ in 0..4 {
        let n = devnet.mine().await.unwrap();
        let block = call(
            &client,
            "eth_getBlockByNumber",
            vec![json!(format!("{n:#x}")), json!(false)],
        )
        .await;
        per_block.push(block["transactions"].as_array().unwrap().len());
    }
    // 21,000 + 21,000 + 21,000 used, and a fourth 50,000 would not fit in 100,000.
    assert_eq!(per_block, vec![3, 3, 3, 1]);
    for (nonce, hash) in hashes.iter().enumerate() {
        let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
        assert_eq!(receipt["status"], "0x1", "nonce {nonce}");
    }
    devnet.shutdown().await.unwrap();
}
