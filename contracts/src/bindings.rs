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

// The IBC handler: IBCHandler is the entry contract (module addresses, owner, queries); the
// state-changing IBC functions are the modules' ABIs, called at the handler's address.
sol!(
    #[derive(Debug, PartialEq, Eq)]
    IBCHandler,
    "artifacts/IBCHandler.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    IBCProxy,
    "artifacts/IBCProxy.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    IBCClient,
    "artifacts/IBCClient.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    IBCConnection,
    "artifacts/IBCConnection.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    IBCChannelHandshake,
    "artifacts/IBCChannelHandshake.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    IBCChannelPacket,
    "artifacts/IBCChannelPacket.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    PingApp,
    "artifacts/PingApp.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    TestOnlyClient,
    "artifacts/TestOnlyClient.json"
);

// The LCP client (`solidity/lcp/`): LCPClient (ILightClient, client type "lcp") calls
// LCPAttestation (certificates, RSA, AVR parsing) as a separate contract.
sol!(
    #[derive(Debug, PartialEq, Eq)]
    LCPClient,
    "artifacts/LCPClient.json"
);

sol!(
    #[derive(Debug, PartialEq, Eq)]
    LCPAttestation,
    "artifacts/LCPAttestation.json"
);

// Runs a sequence of calls in one transaction and returns the gas of each (measurements only).
sol!(
    #[derive(Debug, PartialEq, Eq)]
    LCPGasProbe,
    "artifacts/LCPGasProbe.json"
);

// A QBFT header seal verifier (`solidity/qbft/`), for the on-chain cost comparison.
sol!(
    #[derive(Debug, PartialEq, Eq)]
    QBFTHeaderVerifier,
    "artifacts/QBFTHeaderVerifier.json"
);
