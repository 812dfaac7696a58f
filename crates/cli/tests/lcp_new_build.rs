//! R9, a new LCP enclave build, following docs/operations/lcp-new-build.md on two devnets:
//! the old build (MRENCLAVE 0x5a…) carries a channel; a new build (0xa5…) starts on the same
//! attestation service with its own key; the old LCP clients refuse that key (the MRENCLAVE
//! pin); new LCP clients pinned to the new MRENCLAVE accept it; a new connection and channel
//! over them carry a packet and its acknowledgement; the old channel is closed on both ends
//! with the old build's proofs, and refuses packets afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/evm_ibc.rs"]
mod evm_ibc;
#[path = "support/lcp_node.rs"]
mod lcp_node;

use alloy_sol_types::SolCall;
use evm_ibc::Chain;
use ibc_proto::ibc::core::channel::v1 as chan;
use kh_contracts::PingApp;
use kh_relayer::evm::handshake::{ChannelSpec, channel_end, connect, open_channel};
use kh_relayer::evm::ibc::{EvmEnd, IbcError};
use kh_relayer::lcp::{LcpClientParams, LcpEvmProver, create_lcp_client, register_keys};
use lcp_node::{Lcp, lcp_chain};

fn end(c: &Chain) -> EvmEnd {
    EvmEnd {
        submitter: c.owner.clone(),
        handler: c.handler,
        client_id: String::new(),
    }
}

/// Creates LCP clients on A (of B) and on B (of A) through `lcp`, and the provers of A and B.
async fn clients(lcp: &Lcp, a: &Chain, b: &Chain) -> (EvmEnd, EvmEnd, LcpEvmProver, LcpEvmProver) {
    let (mut end_a, mut end_b) = (end(a), end(b));
    let mut grpc = lcp.connect().await;
    let params = LcpClientParams::default();
    let elc_b = create_lcp_client(&mut grpc, &b.rpc, b.handler, &mut end_a, &params)
        .await
        .unwrap();
    let elc_a = create_lcp_client(&mut grpc, &a.rpc, a.handler, &mut end_b, &params)
        .await
        .unwrap();
    let prover_a = LcpEvmProver::new(lcp.connect().await, elc_a, a.rpc.clone(), a.handler);
    let prover_b = LcpEvmProver::new(lcp.connect().await, elc_b, b.rpc.clone(), b.handler);
    (end_a, end_b, prover_a, prover_b)
}

/// Opens a connection and a ping channel; the channel ids on A and B and the connection on B.
async fn channel(
    end_a: &EvmEnd,
    prover_a: &LcpEvmProver,
    end_b: &EvmEnd,
    prover_b: &LcpEvmProver,
) -> (String, String, String) {
    let (conn_a, conn_b) = connect(end_a, prover_a, end_b, prover_b).await.unwrap();
    let spec = ChannelSpec {
        connection_a: conn_a,
        connection_b: conn_b.clone(),
        port_a: "ping".into(),
        port_b: "ping".into(),
        ordering: chan::Order::Unordered,
        version: "ping-1".into(),
    };
    let (chan_a, chan_b) = open_channel(end_a, prover_a, end_b, prover_b, &spec)
        .await
        .unwrap();
    (chan_a, chan_b, conn_b)
}

/// A ping from A on `chan_a`, received on B and acknowledged on A.
async fn ping(
    a: &Chain,
    chan_a: &str,
    end_a: &EvmEnd,
    prover_a: &LcpEvmProver,
    end_b: &EvmEnd,
    prover_b: &LcpEvmProver,
    data: &[u8],
) {
    a.ping(chan_a, data, 1_000_000).await;
    let packet = a.last_sent().await;
    let ack = end_b.recv_packet(prover_a, &packet).await.unwrap().unwrap();
    end_a.acknowledge(prover_b, &packet, &ack).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_enclave_build_gets_new_clients_and_a_new_channel() {
    // The old build and a channel over it.
    let old_home = tempfile::tempdir().unwrap();
    let (old, root) = Lcp::start(old_home.path(), [0x5a; 32]).await;
    let (a, b) = (lcp_chain(1801, &root).await, lcp_chain(1802, &root).await);
    let (old_a, old_b, old_prover_a, old_prover_b) = clients(&old, &a, &b).await;
    assert_eq!(old_a.client_id, "lcp-client-0");
    let (old_chan_a, old_chan_b, old_conn_b) =
        channel(&old_a, &old_prover_a, &old_b, &old_prover_b).await;
    ping(
        &a,
        &old_chan_a,
        &old_a,
        &old_prover_a,
        &old_b,
        &old_prover_b,
        b"old",
    )
    .await;

    // Step 1: the new build starts on the same attestation service with its own key.
    let new_home = tempfile::tempdir().unwrap();
    let ca_dir = new_home.path().join("simulation-ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    for f in ["root.der", "signing.der", "signing-key.der"] {
        std::fs::copy(
            old_home.path().join("simulation-ca").join(f),
            ca_dir.join(f),
        )
        .unwrap();
    }
    let (new, new_root) = Lcp::start(new_home.path(), [0xa5; 32]).await;
    assert_eq!(new_root, root);

    // Step 2: the old clients refuse the new build's key (MRENCLAVE pin).
    let err = register_keys(&mut new.connect().await, &old_a)
        .await
        .unwrap_err();
    assert!(matches!(err, IbcError::Submit(_)), "{err}");

    // Step 3: new clients pinned to the new build accept its key (create_lcp_client
    // registers it) and are updated by it.
    let (new_a, new_b, new_prover_a, new_prover_b) = clients(&new, &a, &b).await;
    assert_eq!(new_a.client_id, "lcp-client-1");
    assert_eq!(new_b.client_id, "lcp-client-1");

    // Step 4: a new connection and channel over the new clients carry a packet.
    let (new_chan_a, _new_chan_b, _) = channel(&new_a, &new_prover_a, &new_b, &new_prover_b).await;
    assert_ne!(new_chan_a, old_chan_a);
    ping(
        &a,
        &new_chan_a,
        &new_a,
        &new_prover_a,
        &new_b,
        &new_prover_b,
        b"new",
    )
    .await;

    // Step 5: the old channel is closed (B's app closes its end; A confirms with the old
    // build's proof), then the old build can be stopped.
    b.owner
        .submit(
            b.app,
            PingApp::closeChannelCall {
                channelId: old_chan_b.clone(),
            }
            .abi_encode()
            .into(),
        )
        .await
        .unwrap();
    let closed_b = channel_end(
        chan::State::Closed,
        chan::Order::Unordered,
        "ping",
        &old_chan_a,
        &old_conn_b,
        "ping-1",
    );
    old_a
        .close_confirm(
            &old_prover_b,
            "ping",
            &old_chan_a,
            "ping",
            &old_chan_b,
            &closed_b,
        )
        .await
        .unwrap();
    old.service.stop().await;
    // No packet leaves on the old channel; the new one still works.
    let closed = a
        .owner
        .submit(
            a.app,
            PingApp::pingCall {
                channelId: old_chan_a.clone(),
                data: alloy_primitives::Bytes::from_static(b"late"),
                timeoutHeight: PingApp::Height {
                    revisionNumber: 0,
                    revisionHeight: 1_000_000,
                },
                timeoutTimestamp: 0,
            }
            .abi_encode()
            .into(),
        )
        .await;
    assert!(closed.is_err(), "a ping left on the closed channel");
    ping(
        &a,
        &new_chan_a,
        &new_a,
        &new_prover_a,
        &new_b,
        &new_prover_b,
        b"after",
    )
    .await;

    new.service.stop().await;
    a.devnet.shutdown().await.unwrap();
    b.devnet.shutdown().await.unwrap();
}
