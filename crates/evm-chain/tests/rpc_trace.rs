//! `debug_traceTransaction` / `debug_traceCall`: geth's default struct logger, and its
//! `callTracer` (the call tree of a contract that calls another and statically calls one that
//! reverts, creations, a reverting transaction with its decoded reason, `onlyTopCall` and
//! `withLog`).
#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use common::*;
use kh_evm_chain::BlockProduction;
use serde_json::{Value, json};

/// `Error("nope")` as Solidity encodes it.
fn error_nope() -> Vec<u8> {
    let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
    data.extend_from_slice(&U256::from(32).to_be_bytes::<32>());
    data.extend_from_slice(&U256::from(4).to_be_bytes::<32>());
    let mut text = [0u8; 32];
    text[..4].copy_from_slice(b"nope");
    data.extend_from_slice(&text);
    data
}

/// Runtime: reverts with `Error("nope")` (copied from the code after its 12 instruction bytes).
fn reverter_runtime() -> Vec<u8> {
    let data = error_nope();
    let len = u8::try_from(data.len()).unwrap();
    let mut code = vec![
        0x60, len, 0x60, 12, 0x60, 0x00, 0x39, // CODECOPY(0, 12, len)
        0x60, len, 0x60, 0x00, 0xfd, // REVERT(0, len)
    ];
    code.extend_from_slice(&data);
    code
}

/// Runtime: CALLs the address in calldata word 0 (no input, no value), then STATICCALLs the
/// address in word 1, ignoring both results, and stops.
fn caller_runtime() -> Vec<u8> {
    vec![
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, // ret, args, value
        0x60, 0x00, 0x35, 0x5a, 0xf1, 0x50, // CALLDATALOAD(0) GAS CALL POP
        0x60, 0x00, 0x60, 0x00, 0x60, 0x00, 0x60, 0x00, // ret, args
        0x60, 0x20, 0x35, 0x5a, 0xfa, 0x50, // CALLDATALOAD(32) GAS STATICCALL POP
        0x00,
    ]
}

fn word(a: &Value) -> Vec<u8> {
    let a: Address = serde_json::from_value(a.clone()).unwrap();
    let mut w = vec![0u8; 12];
    w.extend_from_slice(a.as_slice());
    w
}

async fn deploy(
    client: &jsonrpsee::http_client::HttpClient,
    nonce: u64,
    runtime: &[u8],
) -> (Value, Value) {
    let raw = sign(
        &dev_signer(0),
        Kind::Eip1559,
        nonce,
        TxKind::Create,
        U256::ZERO,
        deploy_code(runtime),
        300_000,
    );
    let hash = call(client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = call(client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    (hash, receipt["contractAddress"].clone())
}

fn lower(v: &Value) -> String {
    v.as_str().unwrap().to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_tracer_reports_the_call_tree_like_geth() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let (_, logger) = deploy(&client, 0, &store_and_log_runtime()).await;
    let (_, reverter) = deploy(&client, 1, &reverter_runtime()).await;
    let (deploy_hash, caller) = deploy(&client, 2, &caller_runtime()).await;
    let tracer = json!({"tracer": "callTracer"});

    // The creation: one CREATE frame naming the new contract, its output the runtime code.
    let trace = call(
        &client,
        "debug_traceTransaction",
        vec![deploy_hash, tracer.clone()],
    )
    .await;
    assert_eq!(trace["type"], json!("CREATE"), "{trace}");
    assert_eq!(lower(&trace["from"]), format!("{:#x}", alice.address()));
    assert_eq!(lower(&trace["to"]), lower(&caller));
    assert_eq!(trace["value"], json!("0x0"));
    assert_eq!(trace["output"], json!(Bytes::from(caller_runtime())));
    assert!(
        trace.get("calls").is_none() && trace.get("error").is_none(),
        "{trace}"
    );

    // caller -> CALL logger (succeeds, logs), STATICCALL reverter (reverts with "nope").
    let input: Bytes = [word(&logger), word(&reverter)].concat().into();
    let raw = sign(
        &alice,
        Kind::Eip1559,
        3,
        TxKind::Call(serde_json::from_value(caller.clone()).unwrap()),
        U256::from(7),
        input.clone(),
        200_000,
    );
    let hash = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    let trace = call(
        &client,
        "debug_traceTransaction",
        vec![hash.clone(), tracer.clone()],
    )
    .await;
    assert_eq!(trace["type"], json!("CALL"), "{trace}");
    assert_eq!(lower(&trace["to"]), lower(&caller));
    assert_eq!(trace["value"], json!("0x7"));
    assert_eq!(
        trace["gas"],
        json!("0x30d40"),
        "the transaction's gas limit"
    );
    assert_eq!(
        trace["gasUsed"], receipt["gasUsed"],
        "the receipt's gas used"
    );
    assert_eq!(trace["input"], json!(input));
    assert!(
        trace.get("error").is_none() && trace.get("output").is_none(),
        "{trace}"
    );
    let calls = trace["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{trace}");
    assert_eq!(calls[0]["type"], json!("CALL"));
    assert_eq!(lower(&calls[0]["from"]), lower(&caller));
    assert_eq!(lower(&calls[0]["to"]), lower(&logger));
    assert_eq!(calls[0]["value"], json!("0x0"));
    assert_eq!(calls[0]["input"], json!("0x"));
    assert!(calls[0].get("error").is_none(), "{trace}");
    assert!(calls[0].get("logs").is_none(), "logs only with withLog");
    assert_eq!(calls[1]["type"], json!("STATICCALL"));
    assert!(calls[1].get("value").is_none(), "STATICCALL has no value");
    assert_eq!(lower(&calls[1]["to"]), lower(&reverter));
    assert_eq!(calls[1]["error"], json!("execution reverted"));
    assert_eq!(calls[1]["revertReason"], json!("nope"), "{trace}");
    assert_eq!(calls[1]["output"], json!(Bytes::from(error_nope())));
    // Inner frames use part of their gas (the reverting one: only what it executed).
    for c in calls {
        let (gas, used) = (hex_u64(&c["gas"]), hex_u64(&c["gasUsed"]));
        assert!(used > 0 && used < gas, "{c}");
    }
    // The logger's cold SSTORE (2,200) and LOG1 of 32 bytes (1,006) are paid in its frame.
    assert!(hex_u64(&calls[0]["gasUsed"]) > 3_200, "{trace}");

    // withLog: the logger's log in its frame, at position 0.
    let with_log = json!({"tracer": "callTracer", "tracerConfig": {"withLog": true}});
    let trace = call(
        &client,
        "debug_traceTransaction",
        vec![hash.clone(), with_log],
    )
    .await;
    let logs = trace["calls"][0]["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{trace}");
    assert_eq!(lower(&logs[0]["address"]), lower(&logger));
    assert_eq!(logs[0]["topics"], json!([format!("0x{}", "aa".repeat(32))]));
    assert_eq!(logs[0]["position"], json!("0x0"));
    assert!(trace["calls"][1].get("logs").is_none());

    // onlyTopCall: the same top frame without inner calls.
    let top = json!({"tracer": "callTracer", "tracerConfig": {"onlyTopCall": true}});
    let only_top = call(&client, "debug_traceTransaction", vec![hash, top.clone()]).await;
    assert!(only_top.get("calls").is_none(), "{only_top}");
    assert_eq!(only_top["gasUsed"], receipt["gasUsed"]);

    // A transaction that reverts: the top frame carries the error, data and reason.
    let raw = sign(
        &alice,
        Kind::Eip1559,
        4,
        TxKind::Call(serde_json::from_value(reverter.clone()).unwrap()),
        U256::ZERO,
        Bytes::new(),
        100_000,
    );
    let failed = call(&client, "eth_sendRawTransaction", vec![json!(raw)]).await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![failed.clone()]).await;
    assert_eq!(receipt["status"], json!("0x0"));
    let trace = call(
        &client,
        "debug_traceTransaction",
        vec![failed, tracer.clone()],
    )
    .await;
    assert_eq!(trace["error"], json!("execution reverted"), "{trace}");
    assert_eq!(trace["revertReason"], json!("nope"));
    assert_eq!(trace["output"], json!(Bytes::from(error_nope())));
    assert_eq!(trace["gasUsed"], receipt["gasUsed"]);

    // debug_traceCall: the same tree for a call that is not sent, with onlyTopCall too.
    let request = json!({"from": alice.address(), "to": caller, "data": input, "gas": "0x30d40"});
    let trace = call(
        &client,
        "debug_traceCall",
        vec![request.clone(), json!("latest"), tracer.clone()],
    )
    .await;
    let calls = trace["calls"].as_array().unwrap();
    assert_eq!(
        calls.iter().map(|c| c["type"].clone()).collect::<Vec<_>>(),
        vec![json!("CALL"), json!("STATICCALL")]
    );
    assert_eq!(calls[1]["revertReason"], json!("nope"));
    assert_eq!(trace["gas"], json!("0x30d40"));
    let trace = call(
        &client,
        "debug_traceCall",
        vec![request, json!("latest"), top],
    )
    .await;
    assert!(trace.get("calls").is_none(), "{trace}");

    // An out-of-gas inner frame: all its gas used, geth's error text.
    let request = json!({"from": alice.address(), "to": caller, "data": input, "gas": "0x6000"});
    let trace = call(
        &client,
        "debug_traceCall",
        vec![request, json!("latest"), tracer.clone()],
    )
    .await;
    let first = &trace["calls"][0];
    assert_eq!(first["error"], json!("out of gas"), "{trace}");
    assert_eq!(first["gasUsed"], first["gas"]);

    // A creation whose init code reverts: a CREATE frame without `to`.
    let trace = call(
        &client,
        "debug_traceCall",
        vec![
            json!({"from": alice.address(), "data": "0x60006000fd"}),
            json!("latest"),
            tracer.clone(),
        ],
    )
    .await;
    assert_eq!(trace["type"], json!("CREATE"), "{trace}");
    assert_eq!(trace["error"], json!("execution reverted"));
    assert!(
        trace.get("to").is_none() && trace.get("output").is_none(),
        "{trace}"
    );

    // A bad tracerConfig is refused.
    let e = call_err(
        &client,
        "debug_traceCall",
        vec![
            json!({"from": alice.address(), "to": caller}),
            json!("latest"),
            json!({"tracer": "callTracer", "tracerConfig": {"onlyTopCall": "yes"}}),
        ],
    )
    .await;
    assert_eq!(e.code(), -32602, "{e:?}");
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_traces_follow_geths_struct_logger() {
    use alloy_sol_types::{SolCall, SolConstructor};
    use kh_contracts::KhNft;

    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0);
    let bob = dev_signer(1).address();
    let ctor = KhNft::constructorCall {
        name_: "Trace".into(),
        symbol_: "T".into(),
        baseUri_: "t/".into(),
    };
    let mut code = KhNft::BYTECODE.to_vec();
    code.extend(ctor.abi_encode());
    let nft = alice.address().create(0);
    let send = |nonce: u64, to: TxKind, input: Vec<u8>| {
        sign(
            &alice,
            Kind::Eip1559,
            nonce,
            to,
            U256::ZERO,
            Bytes::from(input),
            3_000_000,
        )
    };
    call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(0, TxKind::Create, code))],
    )
    .await;
    let mint = KhNft::mintCall {
        to: alice.address(),
        tokenId: U256::from(7),
    };
    call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(1, TxKind::Call(nft), mint.abi_encode()))],
    )
    .await;
    let transfer = KhNft::transferFromCall {
        from: alice.address(),
        to: bob,
        tokenId: U256::from(7),
    };
    let hash = call(
        &client,
        "eth_sendRawTransaction",
        vec![json!(send(2, TxKind::Call(nft), transfer.abi_encode()))],
    )
    .await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], json!("0x1"));

    let trace = call(&client, "debug_traceTransaction", vec![hash.clone()]).await;
    assert_eq!(trace["failed"], json!(false), "{trace}");
    // geth writes gas as a JSON number.
    assert_eq!(trace["gas"].as_u64(), Some(hex_u64(&receipt["gasUsed"])));
    let logs = trace["structLogs"].as_array().unwrap();
    assert!(logs.len() > 50, "{} steps", logs.len());
    let last = logs.last().unwrap();
    assert!(
        last["op"] == json!("STOP") || last["op"] == json!("RETURN"),
        "{last}"
    );
    assert_eq!(logs[0]["pc"], json!(0));
    assert_eq!(logs[0]["depth"], json!(1));
    assert_eq!(logs[0]["stack"], json!([]));
    // Gas only goes down, by each step's cost.
    for pair in logs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a["depth"] == b["depth"] && a["op"] != json!("SSTORE") {
            assert_eq!(
                a["gas"].as_u64().unwrap() - a["gasCost"].as_u64().unwrap(),
                b["gas"].as_u64().unwrap(),
                "{a} -> {b}"
            );
        }
    }
    // The owner slot is written: an SSTORE step carries the new owner in its storage.
    let bob_word = format!("{:0>64}", alloy_primitives::hex::encode(bob));
    assert!(
        logs.iter().any(|l| l["op"] == json!("SSTORE")
            && l["storage"]
                .as_object()
                .is_some_and(|s| s.values().any(|v| v == &json!(bob_word)))),
        "no SSTORE of the new owner"
    );
    // Memory only when asked for.
    assert!(logs.iter().all(|l| l.get("memory").is_none()));
    let with_memory = call(
        &client,
        "debug_traceTransaction",
        vec![
            hash.clone(),
            json!({"enableMemory": true, "disableStack": true}),
        ],
    )
    .await;
    let logs = with_memory["structLogs"].as_array().unwrap();
    assert!(
        logs.iter()
            .any(|l| l["memory"].as_array().is_some_and(|m| !m.is_empty()))
    );
    assert!(logs.iter().all(|l| l.get("stack").is_none()));

    // The same transfer as a call after it was mined: the token is bob's, so it reverts.
    let trace = call(
        &client,
        "debug_traceCall",
        vec![
            json!({"from": alice.address(), "to": nft, "data": Bytes::from(transfer.abi_encode())}),
            json!("latest"),
        ],
    )
    .await;
    assert_eq!(trace["failed"], json!(true), "{trace}");
    let logs = trace["structLogs"].as_array().unwrap();
    assert_eq!(logs.last().unwrap()["op"], json!("REVERT"));
    assert!(!trace["returnValue"].as_str().unwrap().is_empty());

    // Only the default struct logger and callTracer (tests/rpc_trace.rs); an unknown
    // transaction is an error.
    let e = call_err(
        &client,
        "debug_traceCall",
        vec![
            json!({"from": alice.address(), "to": nft}),
            json!("latest"),
            json!({"tracer": "prestateTracer"}),
        ],
    )
    .await;
    assert_eq!(e.code(), -32602, "{e:?}");
    let e = call_err(
        &client,
        "debug_traceTransaction",
        vec![json!(B256::repeat_byte(0x42))],
    )
    .await;
    assert_eq!(e.code(), -32000, "{e:?}");
    devnet.shutdown().await.unwrap();
}
