//! The dev accounts: `eth_sign`, `personal_sign`, `eth_signTypedData_v4` and
//! `eth_sendTransaction`.
#![allow(clippy::unwrap_used)]

mod common;

use alloy_primitives::{Address, B256, Bytes};
use common::*;
use kh_evm_chain::BlockProduction;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_accounts_sign_messages_and_send_transactions() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0).address();
    let message = b"kakehashi";
    let sig = call(
        &client,
        "eth_sign",
        vec![json!(alice), json!(Bytes::from(message.to_vec()))],
    )
    .await;
    let bytes = hex_bytes(&sig);
    assert_eq!(bytes.len(), 65);
    let parsed = alloy_primitives::Signature::try_from(bytes.as_slice()).unwrap();
    assert_eq!(parsed.recover_address_from_msg(message).unwrap(), alice);
    let personal = call(
        &client,
        "personal_sign",
        vec![json!(Bytes::from(message.to_vec())), json!(alice)],
    )
    .await;
    assert_eq!(personal, sig);
    let e = call_err(
        &client,
        "eth_sign",
        vec![json!(Address::repeat_byte(9)), json!("0x00")],
    )
    .await;
    assert_eq!(e.code(), -32000);
    assert!(e.message().contains("unknown account"));

    // eth_sendTransaction fills nonce, gas and fees, signs with the dev key and submits.
    let to = Address::repeat_byte(0x42);
    let hash = call(
        &client,
        "eth_sendTransaction",
        vec![json!({"from": alice, "to": to, "value": "0x5"})],
    )
    .await;
    let receipt = call(&client, "eth_getTransactionReceipt", vec![hash.clone()]).await;
    assert_eq!(receipt["status"], json!("0x1"));
    assert_eq!(receipt["from"], json!(alice));
    assert_eq!(receipt["type"], json!("0x2"));
    assert_eq!(receipt["gasUsed"], json!("0x5208"));
    let legacy = call(
        &client,
        "eth_sendTransaction",
        vec![json!({"from": alice, "to": to, "value": "0x5", "gasPrice": "0xb2d05e00"})],
    )
    .await;
    let tx = call(&client, "eth_getTransactionByHash", vec![legacy]).await;
    assert_eq!(tx["type"], json!("0x0"));
    assert_eq!(tx["nonce"], json!("0x1"));
    assert_eq!(
        call(&client, "eth_getBalance", vec![json!(to), json!("latest")]).await,
        json!("0xa")
    );
    let e = call_err(
        &client,
        "eth_sendTransaction",
        vec![json!({"from": Address::repeat_byte(9), "to": to})],
    )
    .await;
    assert!(e.message().contains("unknown account"));
    devnet.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_accounts_sign_eip712_typed_data() {
    let (devnet, client) = start(BlockProduction::Instant, None).await;
    let alice = dev_signer(0).address();
    // The EIP-712 specification's example ("Mail"); its signing hash is given there.
    let typed = json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"}
            ],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [
                {"name": "from", "type": "Person"},
                {"name": "to", "type": "Person"},
                {"name": "contents", "type": "string"}
            ]
        },
        "primaryType": "Mail",
        "domain": {
            "name": "Ether Mail",
            "version": "1",
            "chainId": 1,
            "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"
        },
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    });
    let digest: B256 = "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
        .parse()
        .unwrap();
    for data in [typed.clone(), json!(typed.to_string())] {
        let sig = call(&client, "eth_signTypedData_v4", vec![json!(alice), data]).await;
        let parsed = alloy_primitives::Signature::try_from(hex_bytes(&sig).as_slice()).unwrap();
        assert_eq!(parsed.recover_address_from_prehash(&digest).unwrap(), alice);
    }
    let e = call_err(
        &client,
        "eth_signTypedData_v4",
        vec![json!(alice), json!({"types": 1})],
    )
    .await;
    assert_eq!(e.code(), -32602);
    devnet.shutdown().await.unwrap();
}
