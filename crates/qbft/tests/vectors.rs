#![allow(clippy::unwrap_used)] // test helpers: a malformed vector file should fail the test loudly
//! Every QBFT case of `vectors/qbft/` (copied from the shared compatibility vectors) with the
//! expected result documented in `vectors/qbft/README.md`.

use kh_qbft::{
    Address, B256, ExtraData, Header, QbftError, RawHeader, Seal, VoteKind, quorum, skip_check,
    verify_commit_seals, verify_skip,
};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/../../vectors/qbft/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn b256(v: &Value) -> B256 {
    v.as_str().unwrap().parse().unwrap()
}

fn addresses(v: &Value) -> Vec<Address> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect()
}

// ---- Besu block 7528 (besu-qbft-elc) ----

#[test]
fn block_7528_parses_with_expected_fields() {
    let v = load("besu-block-7528.json");
    let raw = bytes(&v["header_rlp_with_seals"]);
    let header = Header::decode(&raw).unwrap();
    assert_eq!(
        header.encode(),
        raw,
        "re-encoding must reproduce the header byte for byte"
    );
    assert_eq!(header.field_count(), 15);
    assert_eq!(header.number(), 7528);
    assert_eq!(
        header.timestamp(),
        v["decoded"]["timestamp"].as_u64().unwrap()
    );
    assert_eq!(header.state_root(), b256(&v["decoded"]["stateRoot"]));
    let extra = header.extra_data();
    assert_eq!(extra.round, 1);
    assert_eq!(extra.validators, addresses(&v["validators"]));
    assert_eq!(extra.seals.len(), 3);
    assert_eq!(extra.vote, None);
    header.check_bft_constants().unwrap();

    let sealing = Header::decode(&bytes(&v["header_rlp_sealing"])).unwrap();
    assert!(sealing.extra_data().seals.is_empty());
    assert_eq!(sealing.number(), 7528);
}

#[test]
fn block_7528_seal_digest_and_signers() {
    let v = load("besu-block-7528.json");
    let header = Header::decode(&bytes(&v["header_rlp_with_seals"])).unwrap();
    let expected = b256(&v["expected_seal_digest"]);
    assert_eq!(header.seal_digest(), expected);
    // The committed-seal preimage is exactly the sealing header of the vector.
    let sealing = bytes(&v["header_rlp_sealing"]);
    assert_eq!(alloy_primitives::keccak256(&sealing), expected);
    let without_seals = header.with_extra_data(&ExtraData {
        seals: vec![],
        ..header.extra_data().clone()
    });
    assert_eq!(without_seals.encode(), sealing);

    let validators = addresses(&v["validators"]);
    let signers = verify_commit_seals(&header, &validators).unwrap();
    assert_eq!(signers, addresses(&v["expected_signers"]));
    assert_eq!(
        quorum(validators.len()),
        v["quorum"]["besu_quorum_required"].as_u64().unwrap() as usize
    );
    let non_signer: Address = v["non_signing_validator"]
        .as_str()
        .unwrap_or_else(|| v["non_signing_validator"]["address"].as_str().unwrap())
        .parse()
        .unwrap();
    assert!(!signers.contains(&non_signer));
}

#[test]
fn block_7528_wrong_digest_recovers_non_validators() {
    let v = load("besu-block-7528.json");
    let header = Header::decode(&bytes(&v["header_rlp_with_seals"])).unwrap();
    let wrong = b256(&v["negative_derived"]["wrong_digest"]);
    assert_eq!(header.raw_hash(), wrong);
    let validators = addresses(&v["validators"]);
    let recovered: Vec<Address> = header
        .extra_data()
        .seals
        .iter()
        .map(|s| s.recover(wrong).unwrap())
        .collect();
    assert_eq!(
        recovered,
        addresses(&v["negative_derived"]["recovered_with_wrong_digest"])
    );
    assert!(recovered.iter().all(|a| !validators.contains(a)));
}

#[test]
fn block_7528_onchain_block_hash() {
    let v = load("besu-block-7528.json");
    let header = Header::decode(&bytes(&v["header_rlp_with_seals"])).unwrap();
    assert_eq!(
        header.block_hash(),
        b256(&v["block_hash_onchain_derived"]["value"])
    );
    // Round 1 makes the block hash differ from the seal digest.
    assert_ne!(header.block_hash(), header.seal_digest());
}

#[test]
fn block_7528_tampered_seal_or_header_fails() {
    let v = load("besu-block-7528.json");
    let raw = bytes(&v["header_rlp_with_seals"]);
    let header = Header::decode(&raw).unwrap();
    let validators = addresses(&v["validators"]);
    // Drop one seal: 2 of 4 is below quorum 3.
    let mut extra = header.extra_data().clone();
    extra.seals.pop();
    let err = verify_commit_seals(&header.with_extra_data(&extra), &validators).unwrap_err();
    assert_eq!(
        err,
        QbftError::InsufficientSeals {
            height: 7528,
            got: 2,
            need: 3
        }
    );
    // Duplicate a seal.
    let mut extra = header.extra_data().clone();
    extra.seals[2] = extra.seals[0];
    assert!(matches!(
        verify_commit_seals(&header.with_extra_data(&extra), &validators),
        Err(QbftError::DuplicateSigner { .. })
    ));
    // Change the vanity: the digest changes, the seals recover to strangers.
    let mut extra = header.extra_data().clone();
    extra.vanity[0] ^= 1;
    assert!(matches!(
        verify_commit_seals(&header.with_extra_data(&extra), &validators),
        Err(QbftError::UnknownSigner { .. }) | Err(QbftError::InvalidSignature { .. })
    ));
}

#[test]
fn block_7528_extra_data_vectors() {
    let v = load("besu-block-7528.json");
    for case in v["extra_data_vectors"].as_array().unwrap() {
        let raw = bytes(&case["extra_rlp"]);
        let extra = ExtraData::decode(&raw).unwrap();
        assert_eq!(extra.encode(), raw, "{}", case["name"]);
        if let Some(exp) = case.get("expected") {
            if let Some(r) = exp.get("round") {
                assert_eq!(u64::from(extra.round), r.as_u64().unwrap());
            }
            if let Some(vals) = exp.get("validators") {
                assert_eq!(extra.validators, addresses(vals));
            }
            if let Some(n) = exp.get("committed_seal_count") {
                assert_eq!(extra.seals.len() as u64, n.as_u64().unwrap());
            }
        }
    }
    let genesis = &v["genesis_extra_data"];
    let raw = bytes(&genesis["extra_rlp"]);
    let extra = ExtraData::decode(&raw).unwrap();
    assert_eq!(extra.encode(), raw);
    assert_eq!(
        extra.validators,
        addresses(&genesis["decoded"]["validators"])
    );
    assert_eq!(extra.round, 0);
    assert!(extra.seals.is_empty() && extra.vote.is_none());
}

// ---- Besu QbftExtraDataCodecTest ----

#[test]
fn besu_extra_data_codec_cases() {
    let v = load("besu-extradata-codec.json");
    let cases = v["cases"].as_array().unwrap();
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let raw = bytes(&case["extra_rlp"]);
        let result = ExtraData::decode(&raw);
        match name {
            "known_raw_hex_string" => {
                let extra = result.unwrap();
                assert_eq!(extra.encode(), raw);
                let exp = &case["expected_decoded"];
                assert_eq!(extra.vanity.to_vec(), bytes(&exp["vanity"]));
                assert_eq!(extra.validators, addresses(&exp["validators"]));
                let vote = extra.vote.unwrap();
                assert_eq!(vote.kind, VoteKind::Add);
                assert_eq!(
                    vote.recipient,
                    exp["vote"]["recipient"]
                        .as_str()
                        .unwrap()
                        .parse::<Address>()
                        .unwrap()
                );
                assert_eq!(u64::from(extra.round), exp["round"].as_u64().unwrap());
                let seals: Vec<Seal> = exp["committed_seals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| Seal::from_slice(&bytes(&s["hex"])).unwrap())
                    .collect();
                assert_eq!(extra.seals, seals);
                // The two digest forms of the same data.
                let find =
                    |n: &str| bytes(&cases.iter().find(|c| c["name"] == n).unwrap()["extra_rlp"]);
                assert_eq!(
                    extra.encode_for_seal(),
                    find("known_data_encoded_without_commit_seals")
                );
                assert_eq!(
                    extra.encode_for_hash(),
                    find("known_data_encoded_without_commit_seals_and_round")
                );
            }
            "known_data_encoded_without_commit_seals" => {
                let extra = result.unwrap();
                assert!(extra.seals.is_empty());
                assert_eq!(extra.round, 0xFEDCBA);
                assert_eq!(extra.encode(), raw);
            }
            "known_data_encoded_without_commit_seals_and_round" => {
                let extra = result.unwrap();
                assert!(extra.seals.is_empty());
                assert_eq!(extra.round, 0);
                assert_eq!(extra.encode(), raw);
            }
            "correctly_coded_short_round" => {
                let extra = result.unwrap();
                assert_eq!(extra.round, 0xDCBA);
                assert_eq!(extra.vote.unwrap().kind, VoteKind::Add);
                assert!(extra.validators.is_empty() && extra.seals.is_empty());
                assert_eq!(extra.encode(), raw);
            }
            "null_vote_and_empty_lists" => {
                let extra = result.unwrap();
                assert_eq!(extra.vote, None);
                assert_eq!(extra.round, 0xFEDCBA);
                assert_eq!(extra.encode(), raw);
            }
            "drop_vote_empty_lists" => {
                let extra = result.unwrap();
                assert_eq!(extra.vote.unwrap().kind, VoteKind::Drop);
                assert_eq!(extra.encode(), raw);
            }
            "zero_padded_round_only_derived" => {
                assert_eq!(result.unwrap_err(), QbftError::ZeroPaddedRound);
            }
            "zero_padded_round_besu_test"
            | "six_items_and_4byte_round"
            | "invalid_vote_type"
            | "empty_extra_data" => {
                assert!(result.is_err(), "{name} must be rejected");
            }
            other => panic!("unexpected case {other}: add its expectation"),
        }
        checked += 1;
    }
    assert_eq!(checked, cases.len());
    assert!(checked >= 10);
}

// ---- cosmos/ibc-contracts live Besu QBFT fixture (20-field Cancun headers) ----

#[test]
fn ibc_contracts_fixture_cases() {
    let fixture = load("ibc-contracts-qbft-fixture.json");
    let derived = load("ibc-contracts-qbft-fixture.derived.json");
    let trusted = addresses(&fixture["initialTrustedValidators"]);
    let cases = derived["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 5);
    for (name, d) in cases {
        let raw = bytes(&fixture[name]["headerRlp"]);
        let header = Header::decode(&raw).unwrap();
        assert_eq!(header.encode(), raw, "{name}: re-encode");
        assert_eq!(
            header.field_count() as u64,
            d["header_item_count"].as_u64().unwrap()
        );
        assert_eq!(header.number(), d["height"].as_u64().unwrap());
        assert_eq!(header.timestamp(), d["timestamp"].as_u64().unwrap());
        assert_eq!(header.parent_hash(), b256(&d["parent_hash"]));
        assert_eq!(header.state_root(), b256(&d["state_root"]));
        assert_eq!(
            header.extra_data().validators,
            addresses(&d["header_validators"])
        );
        header.check_bft_constants().unwrap();
        assert_eq!(
            header.seal_digest(),
            b256(&d["seal_digest_derived"]),
            "{name}: digest"
        );
        assert_eq!(
            header.block_hash(),
            b256(&d["block_hash_onchain_rule_derived"]),
            "{name}: hash"
        );
        let signers: Vec<Address> = header
            .extra_data()
            .seals
            .iter()
            .map(|s| s.recover(header.seal_digest()).unwrap())
            .collect();
        assert_eq!(
            signers,
            addresses(&d["recovered_signers_derived"]),
            "{name}: signers"
        );

        let overlap = d["trusted_overlap"]["count"].as_u64().unwrap() as usize;
        let need_overlap = d["trusted_overlap"]["required"].as_u64().unwrap() as usize;
        let count = d["new_set_quorum"]["count"].as_u64().unwrap() as usize;
        let need = d["new_set_quorum"]["required"].as_u64().unwrap() as usize;
        let result = skip_check(&header, &trusted);
        assert_eq!(
            verify_skip(&header, &trusted),
            result.clone().map(|ok| ok.signers)
        );
        match name.as_str() {
            "updateHeight11" | "updateHeight12" | "conflictingHeight12" => {
                let ok = result.unwrap();
                assert_eq!(ok.trusted_overlap, overlap);
                assert_eq!(ok.signers.len(), count);
                verify_commit_seals(&header, &header.extra_data().validators).unwrap();
            }
            "lowQuorumHeight12" => assert_eq!(
                result.unwrap_err(),
                QbftError::InsufficientSeals {
                    height: 35,
                    got: count,
                    need
                }
            ),
            "lowOverlapHeight13" => assert_eq!(
                result.unwrap_err(),
                QbftError::InsufficientTrustedOverlap {
                    height: 36,
                    got: overlap,
                    need: need_overlap
                }
            ),
            other => panic!("unexpected case {other}"),
        }
    }
}

#[test]
fn ibc_contracts_fixture_hash_chain() {
    // Header 35's parentHash is the on-chain hash of header 34: confirms the block-hash rule.
    let fixture = load("ibc-contracts-qbft-fixture.json");
    let h34 = Header::decode(&bytes(&fixture["updateHeight11"]["headerRlp"])).unwrap();
    let h35 = Header::decode(&bytes(&fixture["updateHeight12"]["headerRlp"])).unwrap();
    assert_eq!(h35.parent_hash(), h34.block_hash());
}

#[test]
fn ibc_contracts_fixture_vanity_of_31_bytes_is_rejected() {
    let fixture = load("ibc-contracts-qbft-fixture.json");
    let header = Header::decode(&bytes(&fixture["updateHeight11"]["headerRlp"])).unwrap();
    let extra = header.extra_data().encode();
    // Rebuild the extra with a 31-byte vanity: 0xa0 prefix (32 bytes) becomes 0x9f (31 bytes).
    let inner_start = if extra[0] >= 0xf8 {
        1 + usize::from(extra[0] - 0xf7)
    } else {
        1
    };
    let mut items = extra[inner_start..].to_vec();
    assert_eq!(items[0], 0xa0);
    items.remove(1);
    items[0] = 0x9f;
    let mut shortened = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: items.len(),
    }
    .encode(&mut shortened);
    shortened.extend_from_slice(&items);
    assert_eq!(
        ExtraData::decode(&shortened).unwrap_err(),
        QbftError::VanityLength { got: 31 }
    );
}

// ---- IBFT 2.0 block (not QBFT) ----

/// The raw encodings of the items of an RLP list (test helper for the IBFT 2.0 layout, which
/// the QBFT codec deliberately does not decode).
fn list_items(bytes: &[u8]) -> Vec<&[u8]> {
    let mut buf = bytes;
    let top = alloy_rlp::Header::decode(&mut buf).unwrap();
    assert!(top.list);
    assert_eq!(buf.len(), top.payload_length);
    let mut items = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let h = alloy_rlp::Header::decode(&mut buf).unwrap();
        let header_len = start.len() - buf.len();
        let len = if header_len == 0 {
            1
        } else {
            header_len + h.payload_length
        };
        items.push(&start[..len]);
        buf = &start[len..];
    }
    items
}

fn rlp_list(items: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: items.iter().map(|i| i.len()).sum(),
    }
    .encode(&mut out);
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

#[test]
fn ibft2_block_round_trips_as_raw_header() {
    let v = load("ibft2-mainnet-block-5618555.json");
    let raw = bytes(&v["header_rlp"]);
    let header = RawHeader::decode(&raw).unwrap();
    assert_eq!(header.encode(), raw, "byte-exact round trip");
    assert_eq!(header.field_count(), 15);
    // The block is [header, [], []]: its first item is this header.
    let block = bytes(&v["block_rlp"]);
    let block_items = list_items(&block);
    assert_eq!(block_items, [raw.as_slice(), &[0xc0], &[0xc0]]);
    assert_eq!(
        header.extra_data_bytes().unwrap(),
        bytes(&v["decoded"]["extra_data"])
    );
}

#[test]
fn ibft2_block_is_rejected_by_the_qbft_decoder() {
    let v = load("ibft2-mainnet-block-5618555.json");
    let raw = bytes(&v["header_rlp"]);
    // IBFT2 extraData carries "no vote" as a plain string (0x80) and a 4-byte zero-padded
    // round: the strict QBFT decoder rejects it.
    let err = Header::decode(&raw).unwrap_err();
    assert_eq!(
        err,
        QbftError::ItemKind {
            what: "vote",
            expected: "list"
        }
    );
    let header = RawHeader::decode(&raw).unwrap();
    assert_eq!(Header::from_raw(header.clone()).unwrap_err(), err);
    assert!(ExtraData::decode(header.extra_data_bytes().unwrap()).is_err());
}

#[test]
fn ibft2_block_fails_under_the_qbft_seal_rule() {
    let v = load("ibft2-mainnet-block-5618555.json");
    let header = RawHeader::decode(&bytes(&v["header_rlp"])).unwrap();
    let extra = header.extra_data_bytes().unwrap().to_vec();
    let items = list_items(&extra);
    assert_eq!(items.len(), 5);
    let validators = addresses(&v["validators"]);
    let seals: Vec<Seal> = list_items(items[4])
        .iter()
        .map(|s| Seal::from_slice(&s[2..]).unwrap()) // 0xb841 ‖ 65 bytes
        .collect();
    assert_eq!(seals.len(), 3);

    // QBFT rule (keep the round, seals -> 0xc0): a different digest, strangers recover.
    let qbft_form = rlp_list(&[items[0], items[1], items[2], items[3], &[0xc0]]);
    let qbft_digest = header.with_extra_data_bytes(&qbft_form).hash();
    assert_eq!(
        qbft_digest,
        b256(&v["negative_qbft_rule_derived"]["digest"])
    );
    let strangers: Vec<Address> = seals
        .iter()
        .map(|s| s.recover(qbft_digest).unwrap())
        .collect();
    assert_eq!(
        strangers,
        addresses(&v["negative_qbft_rule_derived"]["recovered"])
    );
    assert!(strangers.iter().all(|a| !validators.contains(a)));

    // IBFT2 rule (seals item dropped): the seals recover to 3 distinct validators.
    let ibft2_form = rlp_list(&items[..4]);
    let sealing = header.with_extra_data_bytes(&ibft2_form);
    assert_eq!(
        sealing.encode(),
        bytes(&v["ibft2_seal_digest_derived"]["header_rlp_sealing"])
    );
    let digest = sealing.hash();
    assert_eq!(digest, b256(&v["ibft2_seal_digest_derived"]["digest"]));
    let signers: Vec<Address> = seals.iter().map(|s| s.recover(digest).unwrap()).collect();
    assert_eq!(
        signers,
        addresses(&v["ibft2_seal_digest_derived"]["recovered_signers"])
    );
    assert!(signers.iter().all(|a| validators.contains(a)));
    // IBFT2 block hash: round and seals excluded.
    let hash_form = rlp_list(&items[..3]);
    assert_eq!(
        header.with_extra_data_bytes(&hash_form).hash(),
        b256(&v["ibft2_block_hash_derived"]["value"])
    );
}

// ---- A real Prague (21-field) header: vectors/qbft/prague-block-8324337.json ----

/// The header fields in RLP order, with whether each is a quantity (minimal scalar) or bytes.
const PRAGUE_FIELDS: [(&str, bool); 21] = [
    ("parentHash", false),
    ("sha3Uncles", false),
    ("miner", false),
    ("stateRoot", false),
    ("transactionsRoot", false),
    ("receiptsRoot", false),
    ("logsBloom", false),
    ("difficulty", true),
    ("number", true),
    ("gasLimit", true),
    ("gasUsed", true),
    ("timestamp", true),
    ("extraData", false),
    ("mixHash", false),
    ("nonce", false),
    ("baseFeePerGas", true),
    ("withdrawalsRoot", false),
    ("blobGasUsed", true),
    ("excessBlobGas", true),
    ("parentBeaconBlockRoot", false),
    ("requestsHash", false),
];

/// The payload of one raw RLP string field.
fn field_payload(raw: &RawHeader, index: usize) -> Vec<u8> {
    let mut item = raw.field(index).unwrap();
    let header = alloy_rlp::Header::decode(&mut item).unwrap();
    assert!(!header.list);
    assert_eq!(item.len(), header.payload_length);
    item.to_vec()
}

/// A JSON-RPC quantity (`0x1a`) as its minimal big-endian bytes.
fn quantity(v: &Value) -> Vec<u8> {
    let digits = v.as_str().unwrap().trim_start_matches("0x");
    let value = u128::from_str_radix(digits, 16).unwrap();
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

#[test]
fn prague_header_decodes_and_hashes_to_the_real_block_hash() {
    let v = load("prague-block-8324337.json");
    let rlp = bytes(&v["header_rlp_derived"]);
    let raw = RawHeader::decode(&rlp).unwrap();
    assert_eq!(raw.field_count(), 21);
    assert_eq!(raw.field_count(), kh_qbft::MAX_HEADER_FIELDS);
    // Every field is the value the node reported, in RLP order.
    for (index, (name, is_quantity)) in PRAGUE_FIELDS.iter().enumerate() {
        let json = &v["header"][name];
        let expected = if *is_quantity {
            quantity(json)
        } else {
            bytes(json)
        };
        assert_eq!(
            field_payload(&raw, index),
            expected,
            "field {index} ({name})"
        );
    }
    // Field 21 is Prague's requestsHash: sha256 of no requests.
    assert_eq!(
        field_payload(&raw, 20),
        hex::decode("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap()
    );
    // Byte-for-byte re-encoding, and keccak256 of it is the real block hash.
    assert_eq!(raw.encode(), rlp);
    assert_eq!(raw.hash(), b256(&v["hash"]));
    assert_eq!(alloy_primitives::keccak256(raw.encode()), b256(&v["hash"]));
    // Dropping requestsHash (a Cancun header) changes the hash: the field is hashed, not skipped.
    let cancun_rlp = rlp_list(&(0..20).map(|i| raw.field(i).unwrap()).collect::<Vec<_>>());
    let cancun_raw = RawHeader::decode(&cancun_rlp).unwrap();
    assert_eq!(cancun_raw.field_count(), 20);
    assert_ne!(cancun_raw.hash(), b256(&v["hash"]));
    // Its extraData is a client string, not QBFT extraData.
    assert!(Header::decode(&rlp).is_err());
}

#[test]
fn prague_qbft_header_seals_cover_requests_hash() {
    use k256::ecdsa::SigningKey;
    let v = load("prague-block-8324337.json");
    let raw = RawHeader::decode(&bytes(&v["header_rlp_derived"])).unwrap();
    // The real Prague header carrying QBFT extraData, sealed by 3 of 4 validators.
    let keys: Vec<SigningKey> = (1u8..=4)
        .map(|i| SigningKey::from_slice(&[i; 32]).unwrap())
        .collect();
    let validators: Vec<Address> = keys
        .iter()
        .map(|k| kh_qbft::address_of(k.verifying_key()))
        .collect();
    let extra = ExtraData {
        vanity: [0; 32],
        validators: validators.clone(),
        vote: None,
        round: 3,
        seals: vec![],
    };
    let unsealed = Header::from_raw(raw.with_extra_data_bytes(&extra.encode())).unwrap();
    assert_eq!(unsealed.field_count(), 21);
    let digest = unsealed.seal_digest();
    let sealed = unsealed.with_extra_data(&ExtraData {
        seals: keys[..3]
            .iter()
            .map(|k| kh_qbft::sign_seal(digest, k))
            .collect(),
        ..extra.clone()
    });
    let bytes_sealed = sealed.encode();
    let decoded = Header::decode(&bytes_sealed).unwrap();
    assert_eq!(decoded.encode(), bytes_sealed);
    assert_eq!(decoded.raw().field(20), raw.field(20));
    assert_eq!(decoded.number(), 8_324_337);
    assert_eq!(
        verify_commit_seals(&decoded, &validators).unwrap(),
        validators[..3]
    );
    // Block hash: round 0, no seals, all 21 fields.
    let for_hash = decoded.with_extra_data(&ExtraData {
        round: 0,
        ..extra.clone()
    });
    assert_eq!(
        alloy_primitives::keccak256(for_hash.encode()),
        decoded.block_hash()
    );
    // Another requestsHash under the same seals: they no longer verify.
    let mut items: Vec<Vec<u8>> = (0..21)
        .map(|i| decoded.raw().field(i).unwrap().to_vec())
        .collect();
    items[20][1] ^= 0x01;
    let forged = Header::decode(&rlp_list(
        &items.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    ))
    .unwrap();
    assert_ne!(forged.seal_digest(), decoded.seal_digest());
    assert!(matches!(
        verify_commit_seals(&forged, &validators),
        Err(QbftError::UnknownSigner { index: 0, .. })
    ));
}
