//! Acceptance: ethers.js (a client kakehashi did not write) against a running
//! `kakehashi devnet evm` process: deploy the ERC-721 from the committed artifact, mint,
//! transfer, read the events, and verify eth_getProof with an independent MPT library
//! (`@ethereumjs/trie`). The JavaScript side is `contracts/e2e/devnet.test.mjs`.
//! Needs `npm ci --prefix contracts` (scripts/test and .ci/run do it); without it the test fails.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn ethers_deploys_mints_transfers_and_verifies_proofs_against_the_devnet() {
    let contracts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts");
    assert!(
        contracts.join("node_modules/ethers").is_dir()
            && contracts.join("node_modules/@ethereumjs/trie").is_dir(),
        "contracts/node_modules is missing: run `npm ci --prefix contracts` first"
    );
    let devnet = common::Devnet::start();
    let out = Command::new("node")
        .args(["--test", "e2e/"])
        .current_dir(&contracts)
        .env("KH_RPC_URL", &devnet.url)
        .output()
        .expect("node must be installed to run the ethers end-to-end test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}\n--- devnet log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        devnet.log()
    );
    assert!(
        stdout.contains("# pass 1") && stdout.contains("# fail 0"),
        "{stdout}"
    );
}
