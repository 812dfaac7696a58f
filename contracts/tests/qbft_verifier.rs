//! The Solidity QBFT header seal verifier (`solidity/qbft/QBFTHeaderVerifier.sol`) in revm: the
//! real Besu block 7528 (3 of 4 seals) and the ibc-contracts fixture headers (Cancun, 20
//! fields), then headers of the same format re-sealed with kh-qbft by 4, 7 and 21 validators;
//! below-quorum, duplicate, foreign and tampered seals are rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod revm_chain;

use alloy_primitives::{Address, B256, Bytes};
use alloy_sol_types::SolError;
use k256::ecdsa::SigningKey;
use kh_contracts::QBFTHeaderVerifier as V;
use kh_qbft::{ExtraData, Header, address_of, sign_seal};
use revm_chain::{ALICE, Chain, OWNER};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vectors/qbft")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn deploy() -> (Chain, Address) {
    let mut chain = Chain::new();
    let v = chain.deploy(OWNER, &V::BYTECODE, vec![]);
    (chain, v)
}

fn verify(chain: &mut Chain, v: Address, header: &[u8]) -> Result<V::verifyHeaderReturn, Bytes> {
    chain
        .call(
            ALICE,
            v,
            V::verifyHeaderCall {
                header: header.to_vec().into(),
            },
        )
        .map(|(r, _)| r)
}

/// `base` re-sealed: validators of `keys`, round 0, no vote, seals by `signers` (indexes).
fn reseal(base: &[u8], keys: &[SigningKey], signers: &[usize]) -> Vec<u8> {
    let header = Header::decode(base).unwrap();
    let extra = ExtraData {
        vanity: [0; 32],
        validators: keys.iter().map(|k| address_of(k.verifying_key())).collect(),
        vote: None,
        round: 0,
        seals: vec![],
    };
    let unsealed = header.with_extra_data(&extra);
    let digest = unsealed.seal_digest();
    let sealed = unsealed.with_extra_data(&ExtraData {
        seals: signers
            .iter()
            .map(|i| sign_seal(digest, &keys[*i]))
            .collect(),
        ..extra
    });
    sealed.encode()
}

fn keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| SigningKey::from_slice(&[u8::try_from(i + 1).unwrap(); 32]).unwrap())
        .collect()
}

fn fixture_header() -> Vec<u8> {
    hex_of(&vector("ibc-contracts-qbft-fixture.json")["updateHeight11"]["headerRlp"])
}

#[test]
fn real_besu_block_7528() {
    let (mut chain, v) = deploy();
    let b = vector("besu-block-7528.json");
    let r = verify(&mut chain, v, &hex_of(&b["header_rlp_with_seals"])).unwrap();
    assert_eq!(r.number, alloy_primitives::U256::from(7528));
    assert_eq!(
        r.stateRoot,
        b["decoded"]["stateRoot"]
            .as_str()
            .unwrap()
            .parse::<B256>()
            .unwrap()
    );
    assert_eq!(r.signers, alloy_primitives::U256::from(3));
    // The sealing form (no seals) has no quorum.
    let err = verify(&mut chain, v, &hex_of(&b["header_rlp_sealing"])).unwrap_err();
    assert_eq!(err[..4], V::QBFTQuorum::SELECTOR);
}

#[test]
fn ibc_contracts_fixture_headers() {
    let (mut chain, v) = deploy();
    let f = vector("ibc-contracts-qbft-fixture.json");
    for name in [
        "updateHeight11",
        "updateHeight12",
        "conflictingHeight12",
        "lowOverlapHeight13",
    ] {
        let r = verify(&mut chain, v, &hex_of(&f[name]["headerRlp"]));
        assert!(r.is_ok(), "{name}: {:?}", r.err());
    }
    let err = verify(&mut chain, v, &hex_of(&f["lowQuorumHeight12"]["headerRlp"])).unwrap_err();
    assert_eq!(err[..4], V::QBFTQuorum::SELECTOR);
}

#[test]
fn resealed_headers_of_4_7_21_validators() {
    let (mut chain, v) = deploy();
    let base = fixture_header();
    for n in [4usize, 7, 21] {
        let k = keys(n);
        let all: Vec<usize> = (0..n).collect();
        let r = verify(&mut chain, v, &reseal(&base, &k, &all)).unwrap();
        assert_eq!(r.signers, alloy_primitives::U256::from(n));
        let quorum = n - n / 3;
        verify(&mut chain, v, &reseal(&base, &k, &all[..quorum])).unwrap();
        // One seal short of the quorum.
        let err = verify(&mut chain, v, &reseal(&base, &k, &all[..quorum - 1])).unwrap_err();
        assert_eq!(
            err[..],
            V::QBFTQuorum {
                signers: alloy_primitives::U256::from(quorum - 1),
                quorum: alloy_primitives::U256::from(quorum)
            }
            .abi_encode()[..]
        );
        // A validator sealing twice.
        let mut twice = all[..quorum - 1].to_vec();
        twice.push(0);
        let err = verify(&mut chain, v, &reseal(&base, &k, &twice)).unwrap_err();
        assert_eq!(err[..4], V::QBFTBadSeal::SELECTOR);
    }
    // A seal by a key outside the set.
    let k = keys(5);
    let sealed = reseal(&base, &k[..4], &[0, 1]);
    let header = Header::decode(&sealed).unwrap();
    let digest = header
        .with_extra_data(&ExtraData {
            seals: vec![],
            ..header.extra_data().clone()
        })
        .seal_digest();
    let mut extra = header.extra_data().clone();
    extra.seals.push(sign_seal(digest, &k[4]));
    let err = verify(&mut chain, v, &header.with_extra_data(&extra).encode()).unwrap_err();
    assert_eq!(err[..4], V::QBFTBadSeal::SELECTOR);
    // A changed header field (the seals no longer recover to validators).
    let mut tampered = reseal(&base, &k[..4], &[0, 1, 2]);
    let i = tampered.len() / 3;
    tampered[i] ^= 1;
    assert!(verify(&mut chain, v, &tampered).is_err());
}
