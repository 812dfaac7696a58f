//! The IBC host through the ledger CLI (part of `ledger_cli`'s devnet run).

use std::path::Path;
use std::time::Duration;

use super::{json, kakehashi};

/// The IBC host through the CLI: PartyA creates it (PartyA and PartyB operators), submits a
/// host transaction (no IBC message: the host still records the host state it consumed), and
/// both serve a ledger proof of that record that verifies; an absent path is proven absent;
/// the Bank, without the app, says so.
pub(crate) fn ibc_host(dir: &Path) {
    json(&kakehashi(
        dir,
        "PartyA",
        &[
            "flow",
            "start",
            "ibc.host.genesis",
            "--args",
            r#"{"operators":["PartyA","PartyB"]}"#,
            "--json",
        ],
    ));
    let path = "kakehashi/hostStates/0";
    json(&kakehashi(
        dir,
        "PartyA",
        &[
            "flow",
            "start",
            "ibc.host.submit",
            "--args",
            r#"{"messages":[]}"#,
            "--json",
        ],
    ));
    for node in ["PartyA", "PartyB"] {
        let proof = json(&kakehashi(
            dir,
            node,
            &["ibc", "proof", "--path", path, "--height", "1", "--json"],
        ));
        assert_eq!(proof["exists"], true, "{node}: {proof}");
        assert!(!proof["value"].as_str().unwrap().is_empty(), "{node}");
        assert_eq!(proof["verified"], true, "{node}");
        assert_eq!(proof["operators"].as_array().unwrap().len(), 2);
    }
    ibc_query(dir);
    let absent = json(&kakehashi(
        dir,
        "PartyB",
        &[
            "ibc",
            "proof",
            "--path",
            "connections/connection-9",
            "--height",
            "1",
            "--json",
        ],
    ));
    assert_eq!(absent["exists"], false, "{absent}");
    let out = kakehashi(
        dir,
        "Bank",
        &["ibc", "proof", "--path", path, "--height", "1"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not run the ibc-host app"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ibc query` against the ledger: a `kh-ledger` client of this very ledger (from the host
/// state proof an `ibc proof` answer carries) and a connection are created through
/// `ibc.host.submit`, then read back proven and decoded from both operators; an absent channel
/// is an error.
fn ibc_query(dir: &Path) {
    use ibc_proto::ibc::core::client::v1::MsgCreateClient;
    use ibc_proto::ibc::core::commitment::v1::MerklePrefix;
    use ibc_proto::ibc::core::connection::v1::{Counterparty, MsgConnectionOpenInit};
    use prost::{Message, Name};

    fn submit<M: Message + Name>(dir: &Path, m: &M) {
        let args = serde_json::json!({"messages": [{
            "type_url": M::type_url(),
            "value": hex::encode(m.encode_to_vec()),
        }]});
        json(&kakehashi(
            dir,
            "PartyA",
            &[
                "flow",
                "start",
                "ibc.host.submit",
                "--args",
                &args.to_string(),
                "--json",
            ],
        ));
    }

    let proof = json(&kakehashi(
        dir,
        "PartyA",
        &[
            "ibc",
            "proof",
            "--path",
            "kakehashi/hostStates/0",
            "--height",
            "1",
            "--json",
        ],
    ));
    let bytes = hex::decode(proof["proof"].as_str().unwrap()).unwrap();
    let proof = kh_ibc_ledger::LedgerProof::from_bytes(&bytes).unwrap();
    let host = proof.host.claimed_state().unwrap();
    let notary: Vec<kh_ledger::Party> = proof
        .host
        .tx
        .filtered
        .whole_group(kh_ledger::ComponentGroup::Notary)
        .unwrap();
    let trust = kh_ibc_ledger::HostTrust {
        notary: notary[0].owning_key,
        operators: host.operators.clone(),
    };
    let (client, consensus) = kh_ibc_ledger::LedgerClientState::from_host_proof(
        "kakehashi-ledger",
        trust,
        &proof.host,
        Duration::from_secs(60),
    )
    .unwrap();
    submit(
        dir,
        &MsgCreateClient {
            client_state: Some(client.into()),
            consensus_state: Some(consensus.into()),
            signer: "cli-test".into(),
        },
    );
    submit(
        dir,
        &MsgConnectionOpenInit {
            client_id: "kh-ledger-0".into(),
            counterparty: Some(Counterparty {
                client_id: "kh-ledger-0".into(),
                connection_id: String::new(),
                prefix: Some(MerklePrefix {
                    key_prefix: b"ibc".to_vec(),
                }),
            }),
            version: None,
            delay_period: 0,
            signer: "cli-test".into(),
        },
    );
    for node in ["PartyA", "PartyB"] {
        let c = json(&kakehashi(
            dir,
            node,
            &["ibc", "query", "client", "kh-ledger-0", "--json"],
        ));
        assert_eq!(c["verified"], true, "{node}: {c}");
        assert_eq!(c["chain_id"], "kakehashi-ledger", "{c}");
        assert_eq!(c["latest_height"], 1, "{c}");
        assert_eq!(c["operators"].as_array().unwrap().len(), 2, "{c}");
        let conn = json(&kakehashi(
            dir,
            node,
            &["ibc", "query", "connection", "connection-0", "--json"],
        ));
        assert_eq!(conn["state"], "STATE_INIT", "{node}: {conn}");
        assert_eq!(conn["client_id"], "kh-ledger-0", "{conn}");
    }
    // The same query through the top-level `kakehashi ibc query`, which reads either chain.
    let top = std::process::Command::new(env!("CARGO_BIN_EXE_kakehashi"))
        .args(["ibc", "query", "--ledger"])
        .arg(dir)
        .args(["--node", "PartyA", "connection", "connection-0", "--json"])
        .output()
        .unwrap();
    let top = json(&top);
    assert_eq!(top["state"], "STATE_INIT", "{top}");
    assert_eq!(top["verified"], true, "{top}");
    let out = kakehashi(
        dir,
        "PartyB",
        &["ibc", "query", "channel", "ping", "channel-0"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("nothing at channelEnds/ports/ping/channels/channel-0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
