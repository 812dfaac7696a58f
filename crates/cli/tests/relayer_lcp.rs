//! EVM↔EVM through LCP, end to end: two QBFT devnets, each with the IBC stack and the LCP
//! client contract (`LCPClient` + `LCPAttestation`, configured with the LCP node's simulation
//! attestation root); one LCP node (enclave in simulation, gRPC with mutual TLS) whose QBFT
//! ELCs verify each devnet's real headers and `eth_getProof` answers. The relayer creates the
//! ELCs and the LCP clients, registers the enclave key on both chains from its attestation
//! report, runs the connection and channel handshakes with LCP-signed proofs, and relays pings
//! both ways with their acknowledgements, each once by the chains' own events. A proof whose
//! enclave signature or message has one byte changed is refused by the LCP client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/evm_ibc.rs"]
mod evm_ibc;
#[path = "support/lcp_node.rs"]
mod lcp_node;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy_primitives::Bytes;
use ibc_proto::ibc::core::channel::v1 as chan;
use kh_contracts::IBCChannelPacket as P;
use kh_relayer::evm::follow::handler_events;
use kh_relayer::evm::handshake::{ChannelSpec, connect, open_channel};
use kh_relayer::evm::ibc::{EvmEnd, IbcError, IbcHeight, Prover};
use kh_relayer::lcp::{LcpClientParams, LcpEvmProver, create_lcp_client};
use kh_relayer::relay::{RelayEnd, RelayPolicy, RelayStats, relay};
use lcp_node::{Lcp, lcp_chain};

/// Changes one byte of every proof: of its enclave signature (`true`) or of its signed
/// message (`false`).
struct Tampered<'a>(&'a LcpEvmProver, bool);

impl Prover for Tampered<'_> {
    async fn update(&self, trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        self.0.update(trusted).await
    }

    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        let proof = self.0.prove(path, value, height).await?;
        let mut p = kh_lcp::CommitmentProofs::decode(&proof).unwrap();
        if self.1 {
            p.signatures[0][10] ^= 1;
        } else {
            let i = p.message.len() - 1;
            p.message[i] ^= 1;
        }
        Ok(p.encode().into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evm_to_evm_through_lcp() {
    // The LCP node: enclave in simulation (in process, behind the same call boundary), one
    // attested key, gRPC with mutual TLS on loopback.
    let home = tempfile::tempdir().unwrap();
    let (node, root_der) = Lcp::start(home.path(), [0x5a; 32]).await;
    let connect_lcp = || node.connect();
    let mut lcp = connect_lcp().await;

    let (mut a, mut b) = (
        lcp_chain(1601, &root_der).await,
        lcp_chain(1602, &root_der).await,
    );
    let mut end_a = EvmEnd {
        submitter: a.owner.clone(),
        handler: a.handler,
        client_id: String::new(),
    };
    let mut end_b = EvmEnd {
        submitter: b.owner.clone(),
        handler: b.handler,
        client_id: String::new(),
    };
    let params = LcpClientParams::default();
    // A's client of B (ELC of B in LCP), and B's client of A.
    let elc_b = create_lcp_client(&mut lcp, &b.rpc, b.handler, &mut end_a, &params)
        .await
        .unwrap();
    let elc_a = create_lcp_client(&mut lcp, &a.rpc, a.handler, &mut end_b, &params)
        .await
        .unwrap();
    assert_eq!(end_a.client_id, "lcp-client-0");
    let prover_a = LcpEvmProver::new(connect_lcp().await, elc_a, a.rpc.clone(), a.handler);
    let prover_b = LcpEvmProver::new(connect_lcp().await, elc_b, b.rpc.clone(), b.handler);

    let (conn_a, conn_b) = connect(&end_a, &prover_a, &end_b, &prover_b).await.unwrap();
    let spec = ChannelSpec {
        connection_a: conn_a,
        connection_b: conn_b,
        port_a: "ping".into(),
        port_b: "ping".into(),
        ordering: chan::Order::Unordered,
        version: "ping-1".into(),
    };
    let (chan_a, chan_b) = open_channel(&end_a, &prover_a, &end_b, &prover_b, &spec)
        .await
        .unwrap();

    // A packet whose LCP proof was changed in one byte is refused: signature, then message.
    a.ping(&chan_a, b"tampered", 1_000_000).await;
    let packet = a.last_sent().await;
    for signature in [true, false] {
        let err = end_b
            .recv_packet(&Tampered(&prover_a, signature), &packet)
            .await
            .unwrap_err();
        assert!(matches!(err, IbcError::Submit(_)), "{err}");
    }
    end_b.recv_packet(&prover_a, &packet).await.unwrap();

    // The relayer from here on, event-driven.
    a.start_block = a.rpc.block_number().await.unwrap();
    b.start_block = b.rpc.block_number().await.unwrap();
    let stats = Arc::new(RelayStats::default());
    let relayer = tokio::spawn(relay(
        RelayEnd {
            name: "evm-a".into(),
            chain: end_a.clone(),
            prover: prover_a,
            events: handler_events(a.follower(a.start_block)),
        },
        RelayEnd {
            name: "evm-b".into(),
            chain: end_b.clone(),
            prover: prover_b,
            events: handler_events(b.follower(b.start_block)),
        },
        stats.clone(),
        None,
        RelayPolicy::default(),
    ));
    let n = 5u64;
    for i in 0..n {
        a.ping(&chan_a, format!("a{i}").as_bytes(), 1_000_000).await;
        b.ping(&chan_b, format!("b{i}").as_bytes(), 1_000_000).await;
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    // 2n packets, and the hand-delivered packet's acknowledgement.
    while stats.acknowledged.load(Ordering::Relaxed) < 2 * n + 1 {
        assert!(Instant::now() < deadline, "not relayed in time: {stats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relayer.abort();
    // Sequence 1 on A was delivered by hand above (its acknowledgement, in the block the
    // relayer starts from, is relayed); 2..=n+1 by the relayer; B's 1..=n. Each exactly once.
    let recv_b = b.sequences::<P::RecvPacket>(0, |e| e.sequence).await;
    let ack_a = a.sequences::<P::AcknowledgePacket>(0, |e| e.sequence).await;
    assert_eq!(recv_b, (1..=n + 1).collect::<Vec<_>>());
    assert_eq!(ack_a, (1..=n + 1).collect::<Vec<_>>());
    let recv_a = a.sequences::<P::RecvPacket>(0, |e| e.sequence).await;
    let ack_b = b.sequences::<P::AcknowledgePacket>(0, |e| e.sequence).await;
    assert_eq!(recv_a, (1..=n).collect::<Vec<_>>());
    assert_eq!(ack_b, (1..=n).collect::<Vec<_>>());
    node.stop().await;
    a.devnet.shutdown().await.unwrap();
    b.devnet.shutdown().await.unwrap();
}
