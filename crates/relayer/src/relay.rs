//! Packet relay between two EVM chains' IBC handlers on one channel: packets, acknowledgements
//! and timeouts, event-driven from each chain's log follower, idempotent.
//!
//! For every `SendPacket` on one end the relayer either delivers the packet to the other end
//! (when it has not timed out there) or, once it has, times it out at its source; for every
//! `WriteAcknowledgement` it acknowledges the packet at its source. Before each datagram it
//! reads the destination's store: a packet already received, or a commitment already gone, was
//! handled (by this relayer before a restart, or by another relayer) and is skipped, so
//! replaying the whole history from an old block is harmless. A datagram that fails is retried
//! with backoff; one that the handler refused because someone else delivered it first is then
//! skipped by the store read before the retry.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::evm::follow::ChainLog;
use crate::evm::ibc::{
    EvmEnd, HandlerEvent, IbcError, Packet, Prover, decode_event, packet_commitment, packet_path,
};
use crate::evm::rpc::quantity;
use crate::metrics::Metrics;

/// One end of the path: the chain, its prover (towards the other end's client) and its logs.
#[allow(missing_debug_implementations)]
pub struct RelayEnd<Q: Prover> {
    /// A name for logs and metrics (`evm-a`).
    pub name: String,
    /// The handler and this chain's client of the other end.
    pub end: EvmEnd,
    /// Proves this chain's store to the other end's client.
    pub prover: Q,
    /// This chain's handler logs, from its follower.
    pub logs: mpsc::Receiver<ChainLog>,
}

/// What the relay did.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Packets delivered (MsgRecvPacket submitted and accepted).
    pub received: AtomicU64,
    /// Acknowledgements delivered.
    pub acknowledged: AtomicU64,
    /// Timeouts delivered.
    pub timed_out: AtomicU64,
    /// Datagrams skipped because already handled.
    pub skipped: AtomicU64,
    /// Failed attempts (retried).
    pub failures: AtomicU64,
}

enum Job {
    /// Deliver or time out a packet sent on end `from`.
    Packet { from: usize, packet: Packet },
    /// Acknowledge at its source a packet received on end `at`.
    Ack {
        at: usize,
        packet: Packet,
        ack: Vec<u8>,
    },
}

/// Relays between `a` and `b` until both log streams end. `metrics` is optional.
pub async fn relay<Q: Prover>(
    a: RelayEnd<Q>,
    b: RelayEnd<Q>,
    stats: Arc<RelayStats>,
    metrics: Option<Metrics>,
) {
    let RelayEnd {
        name: name_a,
        end: end_a,
        prover: prover_a,
        logs: mut logs_a,
    } = a;
    let RelayEnd {
        name: name_b,
        end: end_b,
        prover: prover_b,
        logs: mut logs_b,
    } = b;
    let names = [name_a, name_b];
    let ends = [&end_a, &end_b];
    let provers = [&prover_a, &prover_b];
    let mut queue: VecDeque<(Job, Instant, u32)> = VecDeque::new();
    let (mut open_a, mut open_b) = (true, true);
    loop {
        // Take every log available now; wait for one only when there is nothing to do.
        let mut took = false;
        while let Ok(log) = logs_a.try_recv() {
            enqueue(&mut queue, 0, &log);
            took = true;
        }
        while let Ok(log) = logs_b.try_recv() {
            enqueue(&mut queue, 1, &log);
            took = true;
        }
        if !took && queue.is_empty() {
            if !open_a && !open_b {
                return;
            }
            tokio::select! {
                l = logs_a.recv(), if open_a => match l {
                    Some(log) => enqueue(&mut queue, 0, &log),
                    None => open_a = false,
                },
                l = logs_b.recv(), if open_b => match l {
                    Some(log) => enqueue(&mut queue, 1, &log),
                    None => open_b = false,
                },
            }
            continue;
        }
        let Some((job, not_before, attempts)) = queue.pop_front() else {
            continue;
        };
        if Instant::now() < not_before {
            queue.push_back((job, not_before, attempts));
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        // The direction of the hop: where the event happened, and where the datagram goes.
        let (from, to) = match &job {
            Job::Packet { from, .. } => (*from, 1 - *from),
            Job::Ack { at, .. } => (*at, 1 - *at),
        };
        let started = Instant::now();
        let outcome = match &job {
            Job::Packet { packet, .. } => {
                handle_packet(
                    ends[from],
                    ends[to],
                    provers[from],
                    provers[to],
                    packet,
                    &stats,
                )
                .await
            }
            Job::Ack { packet, ack, .. } => {
                handle_ack(ends[to], provers[from], packet, ack, &stats).await
            }
        };
        match outcome {
            Ok(done) => {
                if done && let Some(m) = &metrics {
                    m.hop_latency
                        .get_or_create(&Metrics::direction(&names[from], &names[to]))
                        .observe(started.elapsed().as_secs_f64());
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &metrics {
                    m.submission_errors
                        .get_or_create(&Metrics::chain(&names[to]))
                        .inc();
                }
                let wait = Duration::from_millis(100 * 2u64.pow(attempts.min(5)));
                warn!(error = %e, attempts, retry_in = ?wait, "relay step failed");
                queue.push_back((job, Instant::now() + wait, attempts + 1));
            }
        }
    }
}

fn enqueue(queue: &mut VecDeque<(Job, Instant, u32)>, end: usize, log: &ChainLog) {
    let job = match decode_event(log) {
        Some(HandlerEvent::SendPacket(packet)) => Job::Packet { from: end, packet },
        Some(HandlerEvent::WriteAcknowledgement(packet, ack)) => Job::Ack {
            at: end,
            packet,
            ack: ack.to_vec(),
        },
        _ => return,
    };
    queue.push_back((job, Instant::now(), 0));
}

/// Head number and timestamp (ns) of a chain.
async fn head(end: &EvmEnd) -> Result<(u64, u64), IbcError> {
    let block: Value = end
        .submitter
        .rpc()
        .request("eth_getBlockByNumber", vec![json!("latest"), json!(false)])
        .await?;
    let n = block.get("number").and_then(quantity).unwrap_or(0);
    let t = block.get("timestamp").and_then(quantity).unwrap_or(0);
    Ok((n, t.saturating_mul(1_000_000_000)))
}

/// Delivers `packet` from `src` to `dst`, or times it out at `src`; Ok(true) when a datagram
/// was submitted, Ok(false) when nothing was left to do.
async fn handle_packet<Q: Prover>(
    src: &EvmEnd,
    dst: &EvmEnd,
    src_prover: &Q,
    dst_prover: &Q,
    packet: &Packet,
    stats: &RelayStats,
) -> Result<bool, IbcError> {
    let commitment_path = packet_path(
        "commitments",
        &packet.sourcePort,
        &packet.sourceChannel,
        packet.sequence,
    );
    if !src
        .holds(&commitment_path, &packet_commitment(packet))
        .await?
    {
        // Acknowledged or timed out already.
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    let receipt_path = packet_path(
        "receipts",
        &packet.destinationPort,
        &packet.destinationChannel,
        packet.sequence,
    );
    if dst.stored(&receipt_path).await? != B256::ZERO {
        // Received already; its acknowledgement comes from the destination's events.
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    let (height, time) = head(dst).await?;
    let th = packet.timeoutHeight.revisionHeight;
    let tt = packet.timeoutTimestamp;
    let timed_out = (th != 0 && height >= th) || (tt != 0 && time >= tt);
    if timed_out {
        debug!(seq = packet.sequence, "timing the packet out at its source");
        src.timeout(dst_prover, packet).await?;
        stats.timed_out.fetch_add(1, Ordering::Relaxed);
    } else {
        dst.recv_packet(src_prover, packet).await?;
        stats.received.fetch_add(1, Ordering::Relaxed);
    }
    Ok(true)
}

/// Acknowledges `packet` at its source `src` with `dst`'s proof.
async fn handle_ack<Q: Prover>(
    src: &EvmEnd,
    dst_prover: &Q,
    packet: &Packet,
    ack: &[u8],
    stats: &RelayStats,
) -> Result<bool, IbcError> {
    let commitment_path = packet_path(
        "commitments",
        &packet.sourcePort,
        &packet.sourceChannel,
        packet.sequence,
    );
    if !src
        .holds(&commitment_path, &packet_commitment(packet))
        .await?
    {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return Ok(false);
    }
    src.acknowledge(dst_prover, packet, ack).await?;
    stats.acknowledged.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}
