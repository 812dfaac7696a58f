//! `kakehashi qbft inspect` on the Besu block 7528 vector, on malformed input, and on a real
//! Prague header re-signed so that the library rejects it for each reason it names.
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
    assert!(json.get("failure").is_none());
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
    assert_eq!(json["failure"]["reason"], "insufficient_seals");
    assert_eq!(json["quorum_needed"], 3);
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

// ---- Headers the library rejects, re-signed with keys of this test ----

mod resigned {
    use super::kakehashi;
    use k256::ecdsa::SigningKey;
    use kh_qbft::{Address, ExtraData, Header, RawHeader, address_of, sign_seal};

    /// Four validator keys and one stranger's.
    fn key(i: u8) -> SigningKey {
        SigningKey::from_slice(&[i; 32]).unwrap()
    }

    fn addr(k: &SigningKey) -> Address {
        address_of(k.verifying_key())
    }

    fn validators() -> Vec<SigningKey> {
        (1..=4).map(key).collect()
    }

    /// The real Prague header of `vectors/qbft/prague-block-8324337.json` (21 fields) with QBFT
    /// extraData naming the four validators, sealed by `signers` in that order.
    fn sealed(signers: &[SigningKey]) -> String {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../vectors/qbft/prague-block-8324337.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let rlp = v["header_rlp_derived"].as_str().unwrap();
        let raw = RawHeader::decode(&hex::decode(rlp.trim_start_matches("0x")).unwrap()).unwrap();
        let extra = ExtraData {
            vanity: [7; 32],
            validators: validators().iter().map(addr).collect(),
            vote: None,
            round: 1,
            seals: vec![],
        };
        let header = Header::from_raw(raw.with_extra_data_bytes(&extra.encode())).unwrap();
        let digest = header.seal_digest();
        let seals = signers.iter().map(|k| sign_seal(digest, k)).collect();
        let header = header.with_extra_data(&ExtraData { seals, ..extra });
        format!("0x{}", hex::encode(header.encode()))
    }

    fn inspect(signers: &[SigningKey], extra_args: &[&str]) -> serde_json::Value {
        let rlp = sealed(signers);
        let mut args = vec!["qbft", "inspect", "--rlp", rlp.as_str()];
        args.extend_from_slice(extra_args);
        let out = kakehashi(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn addr_json(k: &SigningKey) -> serde_json::Value {
        serde_json::to_value(addr(k)).unwrap()
    }

    #[test]
    fn a_prague_header_with_a_quorum_is_accepted() {
        let k = validators();
        let json = inspect(&k[..3], &[]);
        assert_eq!(json["number"], 8_324_337);
        assert_eq!(json["round"], 1);
        assert_eq!(json["quorum_needed"], 3);
        assert_eq!(json["quorum"], true, "{json}");
        assert!(json.get("failure").is_none(), "{json}");
        let signers: Vec<_> = k[..3].iter().map(addr_json).collect();
        assert_eq!(json["signers"], serde_json::Value::Array(signers));
    }

    #[test]
    fn a_strangers_seal_is_named() {
        // Three validators sealed (a quorum of 4) plus a key outside the set: the library
        // rejects the header, even though the members alone reach the quorum.
        let k = validators();
        let stranger = key(9);
        let mut signers = k[..3].to_vec();
        signers.push(stranger.clone());
        let json = inspect(&signers, &[]);
        assert_eq!(json["quorum"], false, "{json}");
        assert_eq!(json["failure"]["reason"], "stranger_seal", "{json}");
        assert_eq!(json["failure"]["seal"], 3);
        assert_eq!(json["failure"]["signer"], addr_json(&stranger));
        assert_eq!(json["signers"][3], addr_json(&stranger));
        assert!(
            json["failure"]["message"]
                .as_str()
                .unwrap()
                .contains("not a validator")
        );
    }

    #[test]
    fn a_duplicate_signer_is_named() {
        // Three distinct validators (a quorum) and one of them again.
        let k = validators();
        let signers = [k[0].clone(), k[1].clone(), k[2].clone(), k[1].clone()];
        let json = inspect(&signers, &[]);
        assert_eq!(json["quorum"], false, "{json}");
        assert_eq!(json["failure"]["reason"], "duplicate_signer", "{json}");
        assert_eq!(json["failure"]["signer"], addr_json(&k[1]));
        assert_eq!(json["signers"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn too_few_seals_are_reported_with_the_counts() {
        let k = validators();
        let json = inspect(&k[..2], &[]);
        assert_eq!(json["quorum"], false, "{json}");
        assert_eq!(json["failure"]["reason"], "insufficient_seals", "{json}");
        assert_eq!(
            json["failure"]["message"],
            "2 seals below quorum 3 at height 8324337"
        );
        // No seal at all.
        let json = inspect(&[], &[]);
        assert_eq!(json["failure"]["reason"], "insufficient_seals", "{json}");
    }

    #[test]
    fn trusted_set_overlap_is_checked_when_given() {
        let k = validators();
        // Trusted: validators 1 and 2 plus four outsiders; overlap needed 6/3 + 1 = 3.
        let mut trusted: Vec<String> = k[..2].iter().map(|k| addr(k).to_string()).collect();
        trusted.extend((10..14).map(|i| addr(&key(i)).to_string()));
        let trusted = trusted.join(",");
        let json = inspect(&k, &["--trusted", &trusted]);
        assert_eq!(json["quorum"], false, "{json}");
        assert_eq!(
            json["failure"]["reason"], "insufficient_trusted_overlap",
            "{json}"
        );
        // The header's own four validators as the trusted set: overlap 3 of 4.
        let own: Vec<String> = k.iter().map(|k| addr(k).to_string()).collect();
        let json = inspect(&k[..3], &["--trusted", &own.join(",")]);
        assert_eq!(json["quorum"], true, "{json}");
        assert_eq!(json["trusted_overlap"], 3);
        // A malformed trusted list is a usage error.
        let rlp = sealed(&k[..3]);
        let out = kakehashi(&["qbft", "inspect", "--rlp", &rlp, "--trusted", "0x12"]);
        assert_eq!(out.status.code(), Some(2));
    }
}
