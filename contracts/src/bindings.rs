//! `sol!` bindings generated from the committed solc artifacts (ABI + creation and runtime
//! bytecode as `BYTECODE` / `DEPLOYED_BYTECODE`).
#![allow(missing_docs)] // generated items are documented by the Solidity sources (NatSpec)

use alloy_sol_types::sol;

sol!(
    #[derive(Debug, PartialEq, Eq)]
    KhNft,
    "artifacts/KhNft.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    TestReceiver,
    "artifacts/TestReceiver.json"
);
