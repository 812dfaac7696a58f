//! The storage-slot constants of `kh_contracts` (src/layout.rs) checked against the
//! `storageLayout` solc emits into the committed artifacts, and every `*_SLOT` constant of
//! layout.rs covered here.
#![allow(clippy::unwrap_used)]

use alloy_primitives::{U256, keccak256};
use serde_json::Value;

fn artifact(name: &str) -> Value {
    let path = format!("{}/artifacts/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// solc's storage entry of the state variable `label` of `contract`: (slot, offset, type).
fn variable(contract: &str, label: &str) -> (u64, u64, String) {
    let a = artifact(contract);
    let storage = a["storageLayout"]["storage"].as_array().unwrap();
    let matches: Vec<&Value> = storage.iter().filter(|v| v["label"] == label).collect();
    assert_eq!(matches.len(), 1, "{contract}.{label} in storageLayout");
    let v = matches[0];
    (
        v["slot"].as_str().unwrap().parse().unwrap(),
        v["offset"].as_u64().unwrap(),
        v["type"].as_str().unwrap().to_owned(),
    )
}

/// solc's description of a storage type of `contract`.
fn storage_type(contract: &str, ty: &str) -> Value {
    artifact(contract)["storageLayout"]["types"][ty].clone()
}

/// Each `(constant name, value, contract, state variable, solc type)` of layout.rs.
fn checked() -> Vec<(&'static str, u64, &'static str, &'static str, &'static str)> {
    vec![(
        "KH_NFT_OWNERS_SLOT",
        kh_contracts::KH_NFT_OWNERS_SLOT,
        "KhNft",
        "_owners",
        "t_mapping(t_uint256,t_address)",
    )]
}

#[test]
fn slot_constants_match_solc_storage_layout() {
    for (name, value, contract, label, ty) in checked() {
        let (slot, offset, solc_type) = variable(contract, label);
        assert_eq!(value, slot, "{name} vs solc's slot of {contract}.{label}");
        assert_eq!(offset, 0, "{contract}.{label} starts its slot");
        assert_eq!(solc_type, ty, "{contract}.{label} type");
    }
}

#[test]
fn every_slot_constant_of_layout_rs_is_checked() {
    let source = include_str!("../src/layout.rs");
    let declared: Vec<&str> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split(':').next())
        .filter(|name| name.ends_with("_SLOT"))
        .collect();
    assert!(!declared.is_empty());
    let covered: Vec<&str> = checked().iter().map(|c| c.0).collect();
    for name in declared {
        assert!(
            covered.contains(&name),
            "{name} is not checked against solc's layout"
        );
    }
}

#[test]
fn owner_slot_formula_matches_the_mapping_type() {
    // kh_nft_owner_slot hashes key ‖ slot: the layout of a mapping with a value-type key.
    let (slot, _, ty) = variable("KhNft", "_owners");
    let t = storage_type("KhNft", &ty);
    assert_eq!(t["encoding"], "mapping");
    assert_eq!(t["key"], "t_uint256");
    assert_eq!(t["value"], "t_address");
    assert_eq!(storage_type("KhNft", "t_uint256")["encoding"], "inplace");
    for token in [0u64, 1, 42, u64::MAX] {
        let mut preimage = [0u8; 64];
        preimage[..32].copy_from_slice(&U256::from(token).to_be_bytes::<32>());
        preimage[32..].copy_from_slice(&U256::from(slot).to_be_bytes::<32>());
        assert_eq!(
            kh_contracts::kh_nft_owner_slot(U256::from(token)),
            keccak256(preimage)
        );
    }
}

#[test]
fn every_artifact_has_a_storage_layout() {
    let dir = format!("{}/artifacts", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let a: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            a["storageLayout"]["storage"].is_array(),
            "{} lacks storageLayout",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 4, "artifacts: {seen}");
}
