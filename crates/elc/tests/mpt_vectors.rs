//! The QBFT ELC's Merkle-Patricia proof checks on `vectors/mpt/` (README there): the
//! ethereum-ibc-rs account and IBC-commitment proofs and the execution-apis `eth_getProof`
//! transcripts, each with its documented result, and any changed byte rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_primitives::{Address, B256, Bytes, U256};
use kh_elc::qbft::{decode_proof_nodes, verify_account, verify_storage};
use kh_elc::*;
use serde_json::Value;

fn bytes(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

fn b256(v: &Value) -> B256 {
    B256::from_slice(&bytes(v))
}

fn nodes(v: &Value) -> Vec<Bytes> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| Bytes::from(bytes(n)))
        .collect()
}

fn case<'a>(cases: &'a Value, name: &str) -> &'a Value {
    cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// Every single-bit change of every node makes `check` fail.
fn every_byte_rejected(proof: &[Bytes], check: impl Fn(&[Bytes]) -> bool) {
    for (n, node) in proof.iter().enumerate() {
        for i in 0..node.len() {
            let mut changed = proof.to_vec();
            let mut b = node.to_vec();
            b[i] ^= 0x01;
            changed[n] = Bytes::from(b);
            assert!(!check(&changed), "node {n} byte {i} changed and accepted");
        }
    }
}

#[test]
fn ethereum_ibc_rs_vectors() {
    let v: Value = serde_json::from_str(include_str!(
        "../../../vectors/mpt/ethereum-ibc-rs-proofs.json"
    ))
    .unwrap();
    let cases = &v["cases"];

    // Accounts that exist: their storage roots.
    for name in [
        "account_storage_root_existence",
        "account_verification_light_client_rs",
    ] {
        let c = case(cases, name);
        let root = b256(&c["state_root"]);
        let address = Address::from_slice(&bytes(&c["address"]));
        let proof = nodes(&c["proof_nodes"]);
        let account = verify_account(root, address, &proof).unwrap().unwrap();
        assert_eq!(
            account.storage_root,
            b256(&c["expected_storage_root"]),
            "{name}"
        );
        assert_eq!(
            alloy_rlp::encode(U256::from(account.nonce)),
            alloy_rlp::encode(U256::from_be_slice(&bytes(&c["expected_account"]["nonce"])))
        );
        if c.get("proof_rlp").is_some() {
            assert_eq!(decode_proof_nodes(&bytes(&c["proof_rlp"])).unwrap(), proof);
        }
        // Another address, another root: refused.
        assert!(verify_account(root, Address::repeat_byte(9), &proof).is_err());
        assert!(verify_account(B256::repeat_byte(9), address, &proof).is_err());
        every_byte_rejected(
            &proof,
            |p| matches!(verify_account(root, address, p), Ok(Some(a)) if a == account),
        );
    }

    // An absent account: the exclusion proof verifies and shows no account (so no non-zero
    // storage root can be claimed for it).
    let c = case(cases, "account_non_existence");
    let root = b256(&c["state_root"]);
    let address = Address::from_slice(&bytes(&c["address"]));
    let proof = nodes(&c["proof_nodes"]);
    assert_eq!(verify_account(root, address, &proof).unwrap(), None);
    assert_eq!(decode_proof_nodes(&bytes(&c["proof_rlp"])).unwrap(), proof);
    assert!(verify_account(B256::repeat_byte(9), address, &proof).is_err());

    // The IBC commitment of clients/lcp-client-0/clientState (yui-ibc-solidity layout).
    let c = case(cases, "ibc_commitment_membership");
    let root = b256(&c["storage_root"]);
    let path = c["path"].as_str().unwrap().as_bytes();
    let layout = StorageLayout::YuiIbcStore;
    let slot = layout.slot(path);
    assert_eq!(slot, b256(&c["storage_key"]));
    let value = bytes(&c["value"]);
    let word = layout.stored_value(&value).unwrap();
    assert_eq!(word, b256(&c["expected_commitment"]));
    let proof = nodes(&c["proof_nodes"]);
    verify_storage(root, slot, Some(word), &proof).unwrap();
    assert!(verify_storage(root, slot, None, &proof).is_err());
    assert!(verify_storage(root, slot, Some(B256::repeat_byte(1)), &proof).is_err());
    every_byte_rejected(&proof, |p| {
        verify_storage(root, slot, Some(word), p).is_ok()
    });

    // clients/lcp-client-1/clientState is absent.
    let c = case(cases, "ibc_commitment_non_membership");
    let absent_slot = layout.slot(c["path"].as_str().unwrap().as_bytes());
    assert_eq!(absent_slot, b256(&c["storage_key"]));
    let proof = nodes(&c["proof_nodes"]);
    verify_storage(root, absent_slot, None, &proof).unwrap();
    assert!(verify_storage(root, absent_slot, Some(word), &proof).is_err());
    // The truncated proof does not prove the present slot absent.
    assert!(verify_storage(root, slot, None, &proof).is_err());
    every_byte_rejected(&proof, |p| {
        verify_storage(root, absent_slot, None, p).is_ok()
    });
}

/// The response of an execution-apis `.io` transcript (the `<<` line).
fn response(io: &str) -> Value {
    let line = io
        .lines()
        .find_map(|l| l.strip_prefix("<< "))
        .expect("a response line");
    serde_json::from_str::<Value>(line).unwrap()["result"].clone()
}

#[test]
fn execution_apis_get_proof_transcripts() {
    let block = response(include_str!(
        "../../../vectors/mpt/execution-apis/eth_getBlockByNumber-get-latest.io"
    ));
    let state_root = b256(&block["stateRoot"]);
    assert_eq!(
        state_root,
        "0x6da8f636cdc85dbe8c1b5299e5db22f462c041febaf3b78cac1040152ee30b3b"
            .parse::<B256>()
            .unwrap()
    );
    let mut slots_checked = 0;
    for io in [
        include_str!("../../../vectors/mpt/execution-apis/get-account-proof-blockhash.io"),
        include_str!("../../../vectors/mpt/execution-apis/get-account-proof-default-block.io"),
        include_str!("../../../vectors/mpt/execution-apis/get-account-proof-latest.io"),
        include_str!("../../../vectors/mpt/execution-apis/get-account-proof-with-storage.io"),
    ] {
        let r = response(io);
        let address = Address::from_slice(&bytes(&r["address"]));
        let proof = nodes(&r["accountProof"]);
        let account = verify_account(state_root, address, &proof)
            .unwrap()
            .unwrap();
        assert_eq!(account.storage_root, b256(&r["storageHash"]));
        assert_eq!(account.code_hash, b256(&r["codeHash"]));
        assert_eq!(account.balance, U256::from(0x76));
        assert_eq!(account.nonce, 0);
        for s in r["storageProof"].as_array().unwrap() {
            // Keys are quantities ("0x0"): left-padded to 32 bytes before hashing.
            let key: U256 = s["key"].as_str().unwrap().parse().unwrap();
            let slot = B256::from(key.to_be_bytes::<32>());
            let value: U256 = s["value"].as_str().unwrap().parse().unwrap();
            assert_eq!(value, U256::from(0x38));
            let sproof = nodes(&s["proof"]);
            verify_storage(
                account.storage_root,
                slot,
                Some(B256::from(value.to_be_bytes::<32>())),
                &sproof,
            )
            .unwrap();
            assert!(verify_storage(account.storage_root, slot, None, &sproof).is_err());
            slots_checked += 1;
        }
    }
    assert_eq!(
        slots_checked, 1,
        "the with-storage transcript proves one slot"
    );
}
