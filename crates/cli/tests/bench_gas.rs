//! `kakehashi bench gas --json` runs the IBC handler's lifecycle between two in-process devnets
//! (clients, both handshakes, packets and acks, a timeout; every transaction must succeed and
//! every proof is made from the value committed at its DESIGN §5 slot) and prints one JSON
//! object: operation -> gas used. Gas is
//! deterministic, so the figures are checked against the targets of issue 10 (yui-ibc-solidity's
//! published figures for sendPacket, recvPacket and acknowledgePacket). The LCP client and QBFT
//! header verifier figures (issue 11) must be present, with their execution parts and (LCP) their
//! same-transaction figures.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn reports_gas_of_every_operation() {
    let out = Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args(["bench", "gas", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gas = |op: &str| {
        json[op]
            .as_u64()
            .unwrap_or_else(|| panic!("{op} missing in {json}"))
    };
    for op in [
        "createClient",
        "updateClient",
        "connectionOpenInit",
        "connectionOpenTry",
        "connectionOpenAck",
        "connectionOpenConfirm",
        "channelOpenInit",
        "channelOpenTry",
        "channelOpenAck",
        "channelOpenConfirm",
        "sendPacket",
        "recvPacket",
        "acknowledgePacket",
        "timeoutPacket",
        "lcpRegisterEnclaveKey",
        "lcpRegisterEnclaveKeyKnownCert",
        "lcpUpdateClient",
        "lcpVerifyMembership",
        "lcpVerifyNonMembership",
        "qbftHeaderVerify_4",
        "qbftHeaderVerify_7",
        "qbftHeaderVerify_21",
    ] {
        assert!(gas(op) > 21_000, "{op}: {}", gas(op));
        if op.starts_with("lcp") || op.starts_with("qbft") {
            let execution = gas(&format!("{op}_execution"));
            assert!(execution > 0 && execution < gas(op), "{op}: {execution}");
        }
    }
    // The same LCP calls in one transaction (lcp-solidity's Forge way of measuring).
    for op in [
        "lcpRegisterEnclaveKey",
        "lcpRegisterEnclaveKeyKnownCert",
        "lcpUpdateClient",
        "lcpVerifyMembership",
        "lcpVerifyNonMembership",
    ] {
        let same_tx = gas(&format!("{op}_sameTx"));
        assert!(same_tx > 0 && same_tx < gas(op), "{op}_sameTx: {same_tx}");
    }
    // A cached signing certificate saves its RSA check; more validators cost more seals.
    assert!(gas("lcpRegisterEnclaveKeyKnownCert") < gas("lcpRegisterEnclaveKey"));
    assert!(gas("qbftHeaderVerify_4") < gas("qbftHeaderVerify_7"));
    assert!(gas("qbftHeaderVerify_7") < gas("qbftHeaderVerify_21"));
    // lcp-solidity's figures (first registration about 500k, verifyMembership about 15k of
    // execution) bound ours.
    assert!(
        gas("lcpRegisterEnclaveKey") <= 500_000,
        "lcpRegisterEnclaveKey {}",
        gas("lcpRegisterEnclaveKey")
    );
    assert!(
        gas("sendPacket") <= 94_843,
        "sendPacket {}",
        gas("sendPacket")
    );
    assert!(
        gas("recvPacket") <= 154_889,
        "recvPacket {}",
        gas("recvPacket")
    );
    assert!(
        gas("acknowledgePacket") <= 98_040,
        "acknowledgePacket {}",
        gas("acknowledgePacket")
    );
}
