//! Packet relay between two chains on one channel: packets, acknowledgements and timeouts,
//! event-driven from each chain's event stream, batched, idempotent.
//!
//! For every `SendPacket` on one end the relayer either delivers the packet to the other end
//! (when it has not timed out there) or, once it has, times it out at its source; for every
//! `WriteAcknowledgement` it acknowledges the packet at its source. Before each datagram it
//! reads the chains' stores: a packet already received, or a commitment already gone, was
//! handled (by this relayer before a restart, or by another relayer) and is skipped, so
//! replaying the whole history from an old height is harmless.
//!
//! Ready work is taken in batches: the datagrams bound for one chain share one client update
//! and go in one submission (one ledger transaction; on the EVM, one transaction per datagram).
//! A batch that fails is split and each of its steps retried alone with backoff; a step that the
//! chain refused because someone else delivered it first is then skipped by the store read.
//!
//! Each event comes with its position in its stream; whenever nothing is queued or in flight the
//! relay notes the last position taken from each stream ([`RelayStats::checkpoint`]), from which
//! a relay started again misses nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::chain::{
    Chain, Datagram, HandlerEvent, IbcError, IbcHeight, Packet, Positioned, Prover, ack_commitment,
    packet_commitment, packet_path,
};
use crate::handshake::HandshakeStep;
use crate::metrics::Metrics;

/// One end of the path: the chain, its prover (towards the other end's client) and its events.
#[allow(missing_debug_implementations)]
pub struct RelayEnd<C: Chain, Q: Prover> {
    /// A name for logs and metrics (`evm`, `ledger`).
    pub name: String,
    /// The chain (its handler and its client of the other end).
    pub chain: C,
    /// Proves this chain's store to the other end's client.
    pub prover: Q,
    /// This chain's IBC events, in order, with their positions.
    pub events: mpsc::Receiver<Positioned>,
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
    /// Steps skipped because already handled.
    pub skipped: AtomicU64,
    /// Failed attempts (retried).
    pub failures: AtomicU64,
    /// Submissions made (each with one client update at most).
    pub submissions: AtomicU64,
    /// Per delivered step (the most recent [`MAX_SAMPLES`]): its direction and timings.
    pub samples: std::sync::Mutex<Vec<HopSample>>,
    /// Per end, the position from which a new relay misses nothing: see [`RelayStats::checkpoint`].
    checkpoint: std::sync::Mutex<[Option<u64>; 2]>,
}

impl RelayStats {
    /// Per end (in the order given to [`relay`]), the position of its event stream from which a
    /// relay started again would miss nothing: every step of every event before it has been
    /// delivered or found done. Taken when the relay was idle (nothing queued, nothing in
    /// flight), at the position of the last event taken from each stream, so a resumed stream
    /// repeats that position's events (harmless: steps are read against the stores first).
    /// `None` for an end none of whose events was seen yet.
    pub fn checkpoint(&self) -> [Option<u64>; 2] {
        *self
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_checkpoint(&self, seen: [Option<u64>; 2]) {
        let mut c = self
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (c, s) in c.iter_mut().zip(seen) {
            if s.is_some() {
                *c = s;
            }
        }
    }
}

/// At most this many [`HopSample`]s are kept.
pub const MAX_SAMPLES: usize = 100_000;

/// The timings of one delivered step (a packet, an acknowledgement or a timeout).
#[derive(Debug, Clone)]
pub struct HopSample {
    /// `recv`, `ack` or `timeout`.
    pub kind: &'static str,
    /// The chain whose event it was.
    pub from: String,
    /// The chain the datagram went to.
    pub to: String,
    /// From the relayer receiving the event to its datagram being submitted: the relayer's and
    /// LCP's share of the hop (store reads, client update, proofs).
    pub overhead: Duration,
    /// From the relayer receiving the event to the destination confirming the datagram.
    pub total: Duration,
}

/// How the relay works through its queue.
#[derive(Debug, Clone)]
pub struct RelayPolicy {
    /// At most this many steps share one submission.
    pub max_batch: usize,
    /// First retry delay; doubled per attempt up to 32 times it.
    pub retry_base: Duration,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        RelayPolicy {
            max_batch: 50,
            retry_base: Duration::from_millis(100),
        }
    }
}

/// One of two chains (or provers) of different types, as one type.
enum Either<A, B> {
    A(A),
    B(B),
}

impl<A: Chain, B: Chain> Chain for Either<&A, &B> {
    async fn head(&self) -> Result<(u64, u64), IbcError> {
        match self {
            Either::A(c) => c.head().await,
            Either::B(c) => c.head().await,
        }
    }
    async fn holds(&self, path: &str, commitment: &[u8]) -> Result<bool, IbcError> {
        match self {
            Either::A(c) => c.holds(path, commitment).await,
            Either::B(c) => c.holds(path, commitment).await,
        }
    }
    async fn has(&self, path: &str) -> Result<bool, IbcError> {
        match self {
            Either::A(c) => c.has(path).await,
            Either::B(c) => c.has(path).await,
        }
    }
    async fn advance_past(&self, height: u64, timestamp_ns: u64) -> Result<(), IbcError> {
        match self {
            Either::A(c) => c.advance_past(height, timestamp_ns).await,
            Either::B(c) => c.advance_past(height, timestamp_ns).await,
        }
    }
    fn client_id(&self) -> &str {
        match self {
            Either::A(c) => c.client_id(),
            Either::B(c) => c.client_id(),
        }
    }
    async fn handshake(
        &self,
        update: Option<Bytes>,
        step: HandshakeStep,
    ) -> Result<Option<String>, IbcError> {
        match self {
            Either::A(c) => c.handshake(update, step).await,
            Either::B(c) => c.handshake(update, step).await,
        }
    }
    async fn client_latest(&self) -> Result<IbcHeight, IbcError> {
        match self {
            Either::A(c) => c.client_latest().await,
            Either::B(c) => c.client_latest().await,
        }
    }
    async fn submit(&self, datagrams: Vec<Datagram>) -> Result<(), IbcError> {
        match self {
            Either::A(c) => c.submit(datagrams).await,
            Either::B(c) => c.submit(datagrams).await,
        }
    }
}

impl<A: Prover, B: Prover> Prover for Either<&A, &B> {
    async fn update(&self, trusted: IbcHeight) -> Result<(Option<Bytes>, IbcHeight), IbcError> {
        match self {
            Either::A(p) => p.update(trusted).await,
            Either::B(p) => p.update(trusted).await,
        }
    }
    async fn prove(
        &self,
        path: &str,
        value: Option<&[u8]>,
        height: IbcHeight,
    ) -> Result<Bytes, IbcError> {
        match self {
            Either::A(p) => p.prove(path, value, height).await,
            Either::B(p) => p.prove(path, value, height).await,
        }
    }
}

#[derive(Debug, Clone)]
enum Job {
    /// Deliver or time out a packet sent on end `from`.
    Packet { from: usize, packet: Packet },
    /// Acknowledge at its source a packet received on end `at`.
    Ack {
        at: usize,
        packet: Packet,
        ack: Bytes,
    },
}

#[derive(Debug, Clone)]
struct Queued {
    job: Job,
    seen: Instant,
    not_before: Instant,
    attempts: u32,
}

/// What one job needs: a datagram on chain `target`, proven by the other chain's prover.
enum Step {
    Recv(Packet),
    Timeout(Packet),
    Ack(Packet, Bytes),
}

impl Step {
    /// The path and value (None: absence) the proof covers.
    fn proven(&self) -> (String, Option<Vec<u8>>) {
        match self {
            Step::Recv(p) => (
                packet_path("commitments", &p.sourcePort, &p.sourceChannel, p.sequence),
                Some(packet_commitment(p).to_vec()),
            ),
            Step::Timeout(p) => (
                packet_path(
                    "receipts",
                    &p.destinationPort,
                    &p.destinationChannel,
                    p.sequence,
                ),
                None,
            ),
            Step::Ack(p, ack) => (
                packet_path(
                    "acks",
                    &p.destinationPort,
                    &p.destinationChannel,
                    p.sequence,
                ),
                Some(ack_commitment(ack).to_vec()),
            ),
        }
    }
}

/// Relays between `a` and `b` until both event streams end.
pub async fn relay<CA: Chain, QA: Prover, CB: Chain, QB: Prover>(
    a: RelayEnd<CA, QA>,
    b: RelayEnd<CB, QB>,
    stats: Arc<RelayStats>,
    metrics: Option<Metrics>,
    policy: RelayPolicy,
) {
    let RelayEnd {
        name: name_a,
        chain: chain_a,
        prover: prover_a,
        events: events_a,
    } = a;
    let RelayEnd {
        name: name_b,
        chain: chain_b,
        prover: prover_b,
        events: events_b,
    } = b;
    let names = [name_a, name_b];
    let chains = [Either::A(&chain_a), Either::B(&chain_b)];
    let provers = [Either::A(&prover_a), Either::B(&prover_b)];
    // Both ends' events in one stream, each stamped when it arrived (a step's latency counts
    // from there, also while the loop is busy delivering).
    let (arrivals, mut events) = mpsc::unbounded_channel::<(usize, Instant, Positioned)>();
    for (end, mut rx) in [(0usize, events_a), (1, events_b)] {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if arrivals.send((end, Instant::now(), e)).is_err() {
                    return;
                }
            }
        });
    }
    drop(arrivals);
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut open = true;
    // At most one submission in flight per chain; the other chain's goes on meanwhile, and new
    // events are planned while one confirms.
    let mut flights = FuturesUnordered::new();
    let mut busy = [false, false];
    // Jobs planned for a chain while it was busy: back in the queue when it is idle again.
    let mut parked: [Vec<Queued>; 2] = [Vec::new(), Vec::new()];
    // The position of the last event taken from each stream.
    let mut seen: [Option<u64>; 2] = [None, None];
    loop {
        while let Ok((end, at, (position, e))) = events.try_recv() {
            seen[end] = Some(position);
            enqueue(&mut queue, end, at, e);
        }
        if let Some(m) = &metrics {
            report_backlog(m, &names, &queue);
        }
        if queue.is_empty() && flights.is_empty() && parked.iter().all(Vec::is_empty) {
            stats.set_checkpoint(seen);
        }
        if !open && queue.is_empty() && flights.is_empty() && parked.iter().all(Vec::is_empty) {
            return;
        }
        // The ready jobs, in order, planned against the chains' stores; each idle chain gets a
        // batch, a busy chain's steps wait for the next round.
        let now = Instant::now();
        if busy.contains(&false) && queue.iter().any(|q| q.not_before <= now) {
            let mut ready = Vec::new();
            let mut waiting = VecDeque::with_capacity(queue.len());
            for q in queue.drain(..) {
                if q.not_before <= now && ready.len() < policy.max_batch * 2 {
                    ready.push(q);
                } else {
                    waiting.push_back(q);
                }
            }
            queue = waiting;
            let mut batches: [Vec<(Queued, Step)>; 2] = [Vec::new(), Vec::new()];
            let mut heads = [None, None];
            for q in ready {
                match plan([&chains[0], &chains[1]], &mut heads, &q.job).await {
                    Ok(None) => {
                        stats.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some((target, step))) => {
                        if busy[target] {
                            parked[target].push(q);
                        } else if batches[target].len() < policy.max_batch {
                            batches[target].push((q, step));
                        } else {
                            queue.push_back(q);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "reading the chains failed");
                        retry(&mut queue, q, &policy, &stats);
                    }
                }
            }
            for (target, batch) in batches.into_iter().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                busy[target] = true;
                let (chain, prover) = (&chains[target], &provers[1 - target]);
                flights.push(async move {
                    let started = Instant::now();
                    let steps: Vec<&Step> = batch.iter().map(|(_, s)| s).collect();
                    let result = deliver(chain, prover, &steps).await;
                    (target, batch, started, result)
                });
            }
        }
        // Wait for an event, a submission's end, or the next retry.
        let next_retry = queue
            .iter()
            .filter(|q| q.not_before > Instant::now())
            .map(|q| q.not_before)
            .min();
        let has_ready = queue.iter().any(|q| q.not_before <= Instant::now());
        let idle_for_ready = has_ready && busy.contains(&false);
        if idle_for_ready {
            continue;
        }
        let sleep_until = next_retry.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            e = events.recv(), if open => match e {
                Some((end, at, (position, e))) => {
                    seen[end] = Some(position);
                    enqueue(&mut queue, end, at, e);
                }
                None => open = false,
            },
            Some((target, batch, started, result)) = flights.next(), if !flights.is_empty() => {
                busy[target] = false;
                queue.extend(parked[target].drain(..));
                settle(
                    target,
                    batch,
                    started,
                    result,
                    &names,
                    &stats,
                    metrics.as_ref(),
                    &policy,
                    &mut queue,
                );
            }
            _ = tokio::time::sleep_until(sleep_until.into()) => {}
        }
    }
}

/// Accounts for a finished submission: counts, samples and metrics when it went through;
/// when it failed, its steps go back to the queue (split and retried at once, or alone with
/// backoff).
#[allow(clippy::too_many_arguments)]
fn settle(
    target: usize,
    batch: Vec<(Queued, Step)>,
    started: Instant,
    result: Result<Instant, IbcError>,
    names: &[String; 2],
    stats: &RelayStats,
    metrics: Option<&Metrics>,
    policy: &RelayPolicy,
    queue: &mut VecDeque<Queued>,
) {
    match result {
        Ok(submitted_at) => {
            stats.submissions.fetch_add(1, Ordering::Relaxed);
            let done_at = Instant::now();
            for (q, step) in &batch {
                let counter = match step {
                    Step::Recv(_) => &stats.received,
                    Step::Timeout(_) => &stats.timed_out,
                    Step::Ack(..) => &stats.acknowledged,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                // The hop's direction: where the event happened, and where the datagram went.
                let (from, to) = match &q.job {
                    Job::Packet { from, .. } => (*from, 1 - *from),
                    Job::Ack { at, .. } => (*at, 1 - *at),
                };
                if let Ok(mut samples) = stats.samples.lock() {
                    if samples.len() >= MAX_SAMPLES {
                        samples.remove(0);
                    }
                    samples.push(HopSample {
                        kind: match step {
                            Step::Recv(_) => "recv",
                            Step::Timeout(_) => "timeout",
                            Step::Ack(..) => "ack",
                        },
                        from: names[from].clone(),
                        to: names[to].clone(),
                        overhead: submitted_at.saturating_duration_since(q.seen),
                        total: done_at.saturating_duration_since(q.seen),
                    });
                }
                if let Some(m) = metrics {
                    m.hop_latency
                        .get_or_create(&Metrics::direction(&names[from], &names[to]))
                        .observe(done_at.saturating_duration_since(q.seen).as_secs_f64());
                }
            }
            debug!(
                target = %names[target],
                steps = batch.len(),
                took = ?started.elapsed(),
                "submitted"
            );
        }
        Err(e) => {
            if let Some(m) = metrics {
                m.submission_errors
                    .get_or_create(&Metrics::chain(&names[target]))
                    .inc();
            }
            warn!(target = %names[target], steps = batch.len(), error = %e, "submission failed");
            let split = batch.len() > 1;
            for (mut q, _) in batch {
                if split {
                    // Retried alone at once: the store read skips what was handled.
                    q.not_before = Instant::now();
                    queue.push_back(q);
                } else {
                    retry(queue, q, policy, stats);
                }
            }
            if split {
                stats.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn retry(queue: &mut VecDeque<Queued>, mut q: Queued, policy: &RelayPolicy, stats: &RelayStats) {
    stats.failures.fetch_add(1, Ordering::Relaxed);
    let wait = policy.retry_base * 2u32.pow(q.attempts.min(5));
    q.attempts += 1;
    q.not_before = Instant::now() + wait;
    queue.push_back(q);
}

fn enqueue(queue: &mut VecDeque<Queued>, end: usize, seen: Instant, event: HandlerEvent) {
    let job = match event {
        HandlerEvent::SendPacket(packet) => Job::Packet { from: end, packet },
        HandlerEvent::WriteAcknowledgement(packet, ack) => Job::Ack {
            at: end,
            packet,
            ack,
        },
        _ => return,
    };
    queue.push_back(Queued {
        job,
        seen,
        not_before: seen,
        attempts: 0,
    });
}

fn report_backlog(m: &Metrics, names: &[String; 2], queue: &VecDeque<Queued>) {
    for (from, to) in [(0, 1), (1, 0)] {
        let mine = queue.iter().filter(|q| match &q.job {
            Job::Packet { from: f, .. } => *f == from,
            Job::Ack { at, .. } => *at == from,
        });
        let (count, oldest) = mine.fold((0i64, None::<Instant>), |(n, o), q| {
            (n + 1, Some(o.map_or(q.seen, |o| o.min(q.seen))))
        });
        let label = Metrics::direction(&names[from], &names[to]);
        m.backlog.get_or_create(&label).set(count);
        m.oldest_unrelayed_ms
            .get_or_create(&label)
            .set(oldest.map_or(0, |o| {
                i64::try_from(o.elapsed().as_millis()).unwrap_or(i64::MAX)
            }));
    }
}

/// What `job` still needs, read from the stores: `None` when it was handled already, else the
/// chain the datagram goes to and the step. `heads` caches each chain's head for one round.
async fn plan<C: Chain>(
    chains: [&C; 2],
    heads: &mut [Option<(u64, u64)>; 2],
    job: &Job,
) -> Result<Option<(usize, Step)>, IbcError> {
    match job {
        Job::Packet { from, packet } => {
            let (src, dst) = (chains[*from], chains[1 - *from]);
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
                return Ok(None);
            }
            let receipt_path = packet_path(
                "receipts",
                &packet.destinationPort,
                &packet.destinationChannel,
                packet.sequence,
            );
            if dst.has(&receipt_path).await? {
                // Received already; its acknowledgement comes from the destination's events.
                return Ok(None);
            }
            let (height, time) = match heads[1 - *from] {
                Some(head) => head,
                None => {
                    let head = dst.head().await?;
                    heads[1 - *from] = Some(head);
                    head
                }
            };
            let th = packet.timeoutHeight.revisionHeight;
            let tt = packet.timeoutTimestamp;
            if (th != 0 && height >= th) || (tt != 0 && time >= tt) {
                debug!(seq = packet.sequence, "timing the packet out at its source");
                // The destination's proven state must show the timeout passed.
                dst.advance_past(th, tt).await?;
                Ok(Some((*from, Step::Timeout(packet.clone()))))
            } else {
                Ok(Some((1 - *from, Step::Recv(packet.clone()))))
            }
        }
        Job::Ack { at, packet, ack } => {
            let src = chains[1 - *at];
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
                return Ok(None);
            }
            Ok(Some((1 - *at, Step::Ack(packet.clone(), ack.clone()))))
        }
    }
}

/// Brings `target`'s client of the other chain up to date and submits `steps` with `prover`'s
/// proofs, in one submission; when the datagrams were ready and handed to the chain.
async fn deliver<C: Chain, Q: Prover>(
    target: &C,
    prover: &Q,
    steps: &[&Step],
) -> Result<Instant, IbcError> {
    let t0 = Instant::now();
    let trusted = target.client_latest().await?;
    let t1 = Instant::now();
    let (update, height) = prover.update(trusted).await?;
    let t2 = Instant::now();
    let mut datagrams = Vec::with_capacity(steps.len() + 1);
    if let Some(message) = update {
        datagrams.push(Datagram::UpdateClient(message));
    }
    for step in steps {
        let (path, value) = step.proven();
        let proof = prover.prove(&path, value.as_deref(), height).await?;
        datagrams.push(match step {
            Step::Recv(p) => Datagram::RecvPacket {
                packet: p.clone(),
                proof,
                proof_height: height,
            },
            Step::Timeout(p) => Datagram::Timeout {
                packet: p.clone(),
                proof,
                proof_height: height,
            },
            Step::Ack(p, ack) => Datagram::Acknowledge {
                packet: p.clone(),
                ack: ack.clone(),
                proof,
                proof_height: height,
            },
        });
    }
    let submitted_at = Instant::now();
    debug!(
        steps = steps.len(),
        client_read = ?(t1 - t0),
        update = ?(t2 - t1),
        proofs = ?(submitted_at - t2),
        "datagrams ready"
    );
    target.submit(datagrams).await?;
    Ok(submitted_at)
}
