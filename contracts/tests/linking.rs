//! Library linking by build.mjs, proven in revm: the external library `Tally` is deployed with
//! CREATE2 through the deterministic deployment proxy at the address build.mjs computed, and
//! `LinkedCounter`, linked against that address, runs its code with DELEGATECALL on its own
//! storage (at the slots solc's storageLayout gives).
#![allow(clippy::unwrap_used)]

mod revm_chain;

use alloy_primitives::{Address, B256, TxKind, U256, keccak256};
use alloy_sol_types::sol;
use revm_chain::{ALICE, BOB, Chain, OWNER, Outcome};
use serde_json::Value;

sol!(
    #[derive(Debug)]
    LinkedCounter,
    "artifacts/LinkedCounter.json"
);

const TALLY: &str = "solidity/lib/Tally.sol:Tally";

/// The deterministic deployment proxy's address and runtime code (calldata: salt ‖ initcode;
/// CREATE2; returns the 20-byte address).
const DEPLOYER: Address = alloy_primitives::address!("4e59b44847b379578588920ca78fbf26c0b4956c");
const DEPLOYER_CODE: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";

fn artifact(name: &str) -> Value {
    let path = format!("{}/artifacts/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hex_bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

fn address(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

fn chain_with_deployer() -> Chain {
    let mut chain = Chain::new();
    chain.install_code(DEPLOYER, hex::decode(DEPLOYER_CODE).unwrap().into());
    chain
}

/// Deploys Tally through the proxy; returns the address the proxy reports.
fn deploy_tally(chain: &mut Chain) -> Address {
    let tally = artifact("Tally");
    let salt: B256 = tally["create2"]["salt"].as_str().unwrap().parse().unwrap();
    let mut data = salt.to_vec();
    data.extend(hex_bytes(&tally["bytecode"]));
    match chain.exec(OWNER, TxKind::Call(DEPLOYER), data) {
        Outcome::Ok(out, _) => Address::from_slice(&out),
        Outcome::Revert(r) => panic!("proxy reverted: {r}"),
    }
}

#[test]
fn artifacts_record_a_consistent_link() {
    let tally = artifact("Tally");
    let counter = artifact("LinkedCounter");
    assert_eq!(tally["kind"], "library");
    assert_eq!(address(&tally["create2"]["deployer"]), DEPLOYER);
    // The library's address is CREATE2(proxy, salt, keccak256(creation code)).
    let salt: B256 = tally["create2"]["salt"].as_str().unwrap().parse().unwrap();
    let expected = DEPLOYER.create2(salt, keccak256(hex_bytes(&tally["bytecode"])));
    assert_eq!(address(&tally["create2"]["address"]), expected);
    assert_eq!(address(&counter["libraries"][TALLY]), expected);
    // Every link reference of LinkedCounter's creation and runtime code holds that address.
    for (code, refs) in [
        ("bytecode", "linkReferences"),
        ("deployedBytecode", "deployedLinkReferences"),
    ] {
        let bytes = hex_bytes(&counter[code]);
        let places = counter[refs]["solidity/lib/Tally.sol"]["Tally"]
            .as_array()
            .unwrap();
        assert!(!places.is_empty(), "{refs}");
        for place in places {
            let start = usize::try_from(place["start"].as_u64().unwrap()).unwrap();
            assert_eq!(place["length"], 20);
            assert_eq!(
                &bytes[start..start + 20],
                expected.as_slice(),
                "{code}@{start}"
            );
        }
    }
    // The committed bytecode is the one sol! embeds.
    assert_eq!(
        LinkedCounter::DEPLOYED_BYTECODE.to_vec(),
        hex_bytes(&counter["deployedBytecode"])
    );
}

#[test]
fn linked_counter_runs_the_library_on_its_own_storage() {
    let mut chain = chain_with_deployer();
    let tally_address = deploy_tally(&mut chain);
    assert_eq!(
        tally_address,
        address(&artifact("LinkedCounter")["libraries"][TALLY])
    );
    assert!(!chain.code(tally_address).is_empty());

    let counter = chain.deploy(OWNER, &LinkedCounter::BYTECODE, vec![]);
    let (count, logs) = chain
        .call(
            ALICE,
            counter,
            LinkedCounter::countCall { by: U256::from(5) },
        )
        .unwrap();
    assert_eq!(count, U256::from(5));
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].address, counter);
    let (count, _) = chain
        .call(
            ALICE,
            counter,
            LinkedCounter::countCall { by: U256::from(7) },
        )
        .unwrap();
    assert_eq!(count, U256::from(12));
    chain
        .call(BOB, counter, LinkedCounter::countCall { by: U256::from(3) })
        .unwrap();
    let (share, _) = chain
        .call(
            OWNER,
            counter,
            LinkedCounter::shareBpsCall { account: ALICE },
        )
        .unwrap();
    assert_eq!(share, U256::from(8000)); // 12 of 15
    let (of_bob, _) = chain
        .call(OWNER, counter, LinkedCounter::countOfCall { account: BOB })
        .unwrap();
    assert_eq!(of_bob, U256::from(3));

    // The library's custom error bubbles up through the DELEGATECALL.
    let err = chain
        .call(
            ALICE,
            counter,
            LinkedCounter::countCall {
                by: U256::from(989),
            },
        )
        .unwrap_err();
    let selector = &keccak256("OverLimit(address,uint256,uint256)")[..4];
    assert_eq!(&err[..4], selector);
    assert_eq!(&err[16..36], ALICE.as_slice());
    assert_eq!(U256::from_be_slice(&err[36..68]), U256::from(1001));

    // The writes landed in LinkedCounter's storage at solc's slots: book.counts (a mapping)
    // at book's slot + 0, book.total at book's slot + 1; the library's account has none.
    let layout = &artifact("LinkedCounter")["storageLayout"];
    let book = layout["storage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["label"] == "book")
        .unwrap();
    let book_slot: u64 = book["slot"].as_str().unwrap().parse().unwrap();
    let members = layout["types"][book["type"].as_str().unwrap()]["members"]
        .as_array()
        .unwrap();
    let member_slot = |label: &str| -> u64 {
        let m = members.iter().find(|m| m["label"] == label).unwrap();
        book_slot + m["slot"].as_str().unwrap().parse::<u64>().unwrap()
    };
    let counts_slot = member_slot("counts");
    let mut preimage = [0u8; 64];
    preimage[12..32].copy_from_slice(ALICE.as_slice());
    preimage[32..].copy_from_slice(&U256::from(counts_slot).to_be_bytes::<32>());
    let alice_slot = U256::from_be_bytes(keccak256(preimage).0);
    assert_eq!(chain.storage(counter, alice_slot), U256::from(12));
    assert_eq!(
        chain.storage(counter, U256::from(member_slot("total"))),
        U256::from(15)
    );
    assert_eq!(chain.storage(tally_address, alice_slot), U256::ZERO);
}

#[test]
fn without_the_library_at_its_address_the_call_fails() {
    // The same contract on a chain where the library was never deployed: its DELEGATECALL
    // reaches an empty account and the call reverts instead of counting.
    let mut chain = chain_with_deployer();
    let counter = chain.deploy(OWNER, &LinkedCounter::BYTECODE, vec![]);
    assert!(
        chain
            .call(
                ALICE,
                counter,
                LinkedCounter::countCall { by: U256::from(1) }
            )
            .is_err()
    );
}
