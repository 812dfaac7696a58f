//! `kakehashi bench gas --json` runs the IBC handler's lifecycle between two in-process devnets
//! (clients, both handshakes, packets and acks, a timeout; every transaction must succeed and
//! every proof is made from the value committed at its DESIGN §5 slot) and prints one JSON
//! object: operation -> gas used. Gas is
//! deterministic, so the figures are checked against the targets of issue 10 (yui-ibc-solidity's
//! published figures for sendPacket, recvPacket and acknowledgePacket).
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
    ] {
        assert!(gas(op) > 21_000, "{op}: {}", gas(op));
    }
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
