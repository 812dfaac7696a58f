//! `kakehashi qbft inspect` on the Besu block 7528 vector and on malformed input.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn vector() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/qbft/besu-block-7528.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn kakehashi(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn inspects_block_7528() {
    let v = vector();
    let out = kakehashi(&[
        "qbft",
        "inspect",
        "--rlp",
        v["header_rlp_with_seals"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["number"], 7528);
    assert_eq!(json["round"], 1);
    assert_eq!(json["seal_digest"], v["expected_seal_digest"]);
    assert_eq!(json["hash"], v["block_hash_onchain_derived"]["value"]);
    assert_eq!(json["validators"].as_array().unwrap().len(), 4);
    let signers: Vec<String> = json["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_lowercase())
        .collect();
    let expected: Vec<String> = v["expected_signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(signers, expected);
    assert_eq!(json["quorum"], true);
}

#[test]
fn inspects_from_file_and_reports_missing_quorum() {
    let v = vector();
    // The sealing form of the header has no seals: it decodes, but has no quorum.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("header.hex");
    std::fs::write(&path, v["header_rlp_sealing"].as_str().unwrap()).unwrap();
    let out = kakehashi(&["qbft", "inspect", "--file", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["quorum"], false);
    assert_eq!(json["signers"].as_array().unwrap().len(), 0);
}

#[test]
fn inspects_raw_bytes_and_a_cancun_header() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../vectors/qbft/ibc-contracts-qbft-fixture.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let hex_text = fixture["updateHeight11"]["headerRlp"].as_str().unwrap();
    let raw = hex::decode(hex_text.trim_start_matches("0x")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("header.rlp");
    std::fs::write(&file, &raw).unwrap();
    let out = kakehashi(&[
        "qbft",
        "inspect",
        "--json",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["number"], 34);
    assert_eq!(json["round"], 0);
    assert_eq!(json["quorum"], true);
    assert_eq!(json["signers"].as_array().unwrap().len(), 3);
    // Round 0: the seal digest is the block hash.
    assert_eq!(json["hash"], json["seal_digest"]);
    // Header 35 names this hash as its parent.
    let parent = &fixture["updateHeight12"]["headerRlp"];
    let h35 = kakehashi(&["qbft", "inspect", "--rlp", parent.as_str().unwrap()]);
    assert!(h35.status.success());
    let rlp35 = hex::decode(parent.as_str().unwrap().trim_start_matches("0x")).unwrap();
    // parentHash is the first field: 0xf9 LL LL 0xa0 ‖ 32 bytes.
    assert_eq!(
        json["hash"].as_str().unwrap(),
        format!("0x{}", hex::encode(&rlp35[4..36]))
    );
}

#[test]
fn rejects_malformed_input_with_one_line() {
    // Bad hex, a truncated header, an empty list, and the IBFT 2.0 block (valid RLP, not QBFT).
    let ibft2 = {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../vectors/qbft/ibft2-mainnet-block-5618555.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["header_rlp"].as_str().unwrap().to_owned()
    };
    for bad in ["zz", "0xf90385a0", "0xc0", ibft2.as_str()] {
        let out = kakehashi(&["qbft", "inspect", "--rlp", bad]);
        assert_eq!(out.status.code(), Some(1), "{bad}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    let out = kakehashi(&["qbft", "inspect"]);
    assert_eq!(out.status.code(), Some(2));
    let out = kakehashi(&["qbft", "inspect", "--file", "/nonexistent/kakehashi-header"]);
    assert_eq!(out.status.code(), Some(1));
}
