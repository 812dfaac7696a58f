//! EVM↔ledger through LCP, end to end: a QBFT devnet with the IBC stack and the LCP client
//! contract; the devnet ledger network, every node its own process, with the IBC host operated
//! by PartyA and PartyB; one LCP node (enclave in simulation, gRPC with mutual TLS) whose QBFT
//! ELC verifies the devnet's real headers and `eth_getProof` answers and whose Ledger ELC
//! verifies the ledger's real host-state transactions (notary's and operators' signatures,
//! filtered-transaction proofs, ICS-23 proofs). The relayer (an RPC user of PartyA with flow
//! permission) creates both ELCs and both LCP clients, registers the enclave key on both chains
//! from its attestation report, runs the connection and channel handshakes (the connection
//! initiated on the EVM side, the channel on the ledger side), and relays pings both ways with
//! their acknowledgements, plus a ping that times out on the ledger — each exactly once by the
//! chains' own events. A client update that never landed is given again by the prover (LCP
//! refuses to apply its header twice).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/evm_ibc.rs"]
mod evm_ibc;
#[path = "support/lcp_node.rs"]
mod lcp_node;
#[path = "support/ledger_net.rs"]
mod ledger_net;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy_sol_types::SolCall;
use ibc_proto::ibc::core::channel::v1 as chan;
use kh_contracts::{IBCChannelPacket as P, IBCHandler, LCPClient};
use kh_relayer::evm::follow::handler_events;
use kh_relayer::evm::ibc::EvmEnd;
use kh_relayer::handshake::{ChannelSpec, connect, open_channel};
use kh_relayer::lcp::{
    LcpClientParams, LcpEvmProver, LcpLedgerProver, create_lcp_client_on, create_ledger_elc,
    create_qbft_elc, register_keys, rotate_key,
};
use kh_relayer::ledger_ibc::{LedgerEnd, ledger_events};
use kh_relayer::relay::{RelayEnd, RelayPolicy, RelayStats, relay};
use lcp_node::{Lcp, lcp_chain};
use ledger_net::{LedgerNet, ledger_counts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_and_ledger_through_lcp() {
    // The LCP node: enclave in simulation, one attested key, gRPC with mutual TLS.
    let home = tempfile::tempdir().unwrap();
    let (node, root_der) = Lcp::start(home.path(), [0x5b; 32]).await;
    let root_file = home.path().join("attestation-root.der");
    std::fs::write(&root_file, &root_der).unwrap();

    // The ledger network, every node its own process, its IBC host's LCP clients trusting the
    // LCP node's attestation root; the relayer is PartyA's RPC user.
    let data = tempfile::tempdir().unwrap();
    let net = LedgerNet::start(
        data.path(),
        "relayer",
        "flows",
        &["--lcp-attestation-root", root_file.to_str().unwrap()],
    );
    net.flow(
        "PartyA",
        "ibc.host.genesis",
        &serde_json::json!({"operators": ["PartyA", "PartyB"]}),
    );
    let connect_lcp = || node.connect();
    let mut lcp = connect_lcp().await;

    let mut evm = lcp_chain(1701, &root_der).await;
    let mut end_evm = EvmEnd {
        submitter: evm.owner.clone(),
        handler: evm.handler,
        client_id: String::new(),
    };
    let mut end_ledger = LedgerEnd::new(net.endpoint("relayer"), "");
    let params = LcpClientParams::default();
    // The EVM's client of the ledger (Ledger ELC in LCP), and the ledger's client of the EVM
    // (QBFT ELC in LCP).
    let (elc_ledger, init) = create_ledger_elc(&mut lcp, &end_ledger, &params)
        .await
        .unwrap();
    create_lcp_client_on(&mut lcp, &init, &mut end_evm, &params)
        .await
        .unwrap();
    let (elc_evm, init) = create_qbft_elc(&mut lcp, &evm.rpc, evm.handler, &params)
        .await
        .unwrap();
    create_lcp_client_on(&mut lcp, &init, &mut end_ledger, &params)
        .await
        .unwrap();
    assert_eq!(end_evm.client_id, "lcp-client-0");
    assert!(
        end_ledger.client_id.starts_with("lcp-client-"),
        "{}",
        end_ledger.client_id
    );
    let prover_evm = LcpEvmProver::new(connect_lcp().await, elc_evm, evm.rpc.clone(), evm.handler);
    let prover_ledger = LcpLedgerProver::new(connect_lcp().await, elc_ledger, end_ledger.clone());

    // The connection from the EVM side, the channel from the ledger side.
    let (conn_evm, conn_ledger) = connect(&end_evm, &prover_evm, &end_ledger, &prover_ledger)
        .await
        .unwrap();
    let spec = ChannelSpec {
        connection_a: conn_ledger,
        connection_b: conn_evm,
        port_a: "ping".into(),
        port_b: "ping".into(),
        ordering: chan::Order::Unordered,
        version: "ping-1".into(),
    };
    let (chan_ledger, chan_evm) =
        open_channel(&end_ledger, &prover_ledger, &end_evm, &prover_evm, &spec)
            .await
            .unwrap();

    // Key rotation: while the key has more than a quarter of its validity (here 3600 s) left,
    // nothing happens; with less, LCP generates and attests a new key, which the relayer
    // registers on both chains (and the relay below runs with it there).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(!rotate_key(&mut lcp, 3600, now).await.unwrap());
    assert!(rotate_key(&mut lcp, 3600, now + 3000).await.unwrap());
    let keys = lcp
        .available_enclave_keys(kh_lcp_service::proto::AvailableEnclaveKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 2);
    register_keys(&mut lcp, &end_evm).await.unwrap();
    register_keys(&mut lcp, &end_ledger).await.unwrap();
    let client_contract = {
        let out = end_evm
            .submitter
            .call(
                evm.handler,
                &IBCHandler::getClientCall {
                    clientId: end_evm.client_id.clone(),
                }
                .abi_encode(),
            )
            .await
            .unwrap();
        IBCHandler::getClientCall::abi_decode_returns(&out)
            .unwrap()
            .lightClient
    };
    for k in &keys {
        let key = alloy_primitives::Address::from_slice(&k.address);
        let out = end_evm
            .submitter
            .call(
                client_contract,
                &LCPClient::getEnclaveKeyInfoCall {
                    clientId: end_evm.client_id.clone(),
                    key,
                }
                .abi_encode(),
            )
            .await
            .unwrap();
        let info = LCPClient::getEnclaveKeyInfoCall::abi_decode_returns(&out).unwrap();
        assert!(info._0 > now, "key {key} is registered on the EVM client");
    }

    // An update of the EVM's client of the ledger that never landed (an EVM multicall refused
    // as a whole): LCP applied its header, and asked again it gives the same signed update.
    {
        use kh_relayer::evm::ibc::Prover;
        let trusted = end_evm.client_latest().await.unwrap();
        end_ledger
            .advance_past(trusted.revision_height + 1, 0)
            .await
            .unwrap();
        let first = prover_ledger.update(trusted).await.unwrap();
        let again = prover_ledger.update(trusted).await.unwrap();
        assert!(first.0.is_some());
        assert_eq!(first, again);
    }

    // A ping from the EVM that times out on the ledger: sent while no relayer runs, with the
    // ledger's next height as its timeout height.
    let ledger_next = end_ledger.latest().await.unwrap().height + 1;
    evm.ping(&chan_evm, b"too late", ledger_next).await;

    // The relayer, event-driven from the EVM's logs and the ledger's recorded transactions.
    evm.start_block = 0;
    let stats = Arc::new(RelayStats::default());
    let relayer = tokio::spawn(relay(
        RelayEnd {
            name: "evm".into(),
            chain: end_evm.clone(),
            prover: prover_evm,
            events: handler_events(evm.follower(0)),
        },
        RelayEnd {
            name: "ledger".into(),
            chain: end_ledger.clone(),
            prover: prover_ledger,
            events: ledger_events(end_ledger.clone(), 0, Duration::from_secs(1)),
        },
        stats.clone(),
        None,
        RelayPolicy::default(),
    ));
    let n = 5u64;
    for i in 0..n {
        evm.ping(&chan_evm, format!("e{i}").as_bytes(), 1_000_000)
            .await;
        net.flow(
            "PartyA",
            "ibc.ping.send",
            &serde_json::json!({"channel": chan_ledger, "data": format!("l{i}"), "timeout_height": 1_000_000}),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let acked_evm = evm
            .sequences::<P::AcknowledgePacket>(0, |e| e.sequence)
            .await;
        let timed_out_evm = evm.sequences::<P::TimeoutPacket>(0, |e| e.sequence).await;
        let received_evm = evm.sequences::<P::RecvPacket>(0, |e| e.sequence).await;
        if acked_evm.len() as u64 == n && timed_out_evm.len() == 1 && received_evm.len() as u64 == n
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not relayed in time: {stats:?}; EVM acked {acked_evm:?}, timed out {timed_out_evm:?}, received {received_evm:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The ledger side: its pings acknowledged once each; the EVM's pings received once each.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let acked = ledger_counts(
            &end_ledger,
            "acknowledge_packet",
            "packet_src_channel",
            &chan_ledger,
        )
        .await;
        if acked.len() as u64 == n {
            assert!(acked.values().all(|c| *c == 1), "{acked:?}");
            break;
        }
        assert!(Instant::now() < deadline, "ledger acks: {acked:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let received = ledger_counts(
        &end_ledger,
        "recv_packet",
        "packet_dst_channel",
        &chan_ledger,
    )
    .await;
    // Sequence 1 timed out; 2..=n+1 were received, once each.
    assert_eq!(
        received.keys().copied().collect::<Vec<_>>(),
        (2..=n + 1).collect::<Vec<_>>()
    );
    assert!(received.values().all(|c| *c == 1), "{received:?}");
    // Each EVM-side event once.
    assert_eq!(
        evm.sequences::<P::AcknowledgePacket>(0, |e| e.sequence)
            .await,
        (2..=n + 1).collect::<Vec<_>>()
    );
    assert_eq!(
        evm.sequences::<P::TimeoutPacket>(0, |e| e.sequence).await,
        vec![1]
    );
    assert_eq!(
        evm.sequences::<P::RecvPacket>(0, |e| e.sequence).await,
        (1..=n).collect::<Vec<_>>()
    );
    assert_eq!(stats.timed_out.load(Ordering::Relaxed), 1);
    relayer.abort();
    evm.devnet.shutdown().await.unwrap();
}
