//! The outbox: messages committed with a flow step are delivered by a task of the node until
//! their receiver acknowledges them; a node reopened on the same database (a cold standby)
//! delivers what its predecessor left.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::Row;
use tracing::{Instrument, warn};
use uuid::Uuid;

use crate::identity::PartyName;
use crate::store::{StoreError, WriteTx, db};
use crate::transport::{Envelope, TransportError};
use crate::util::{bcs_bytes, from_hex_bcs, to_hex_bcs};

use super::messages::Message;
use super::{Failpoint, Inner};

impl Inner {
    /// A request of one of this node's flows was refused by its receiver (it will never be
    /// accepted): the flow fails with the receiver's reason instead of waiting for an answer.
    async fn fail_refused(
        &self,
        env: &Envelope,
        error: &TransportError,
    ) -> Result<(), super::NodeError> {
        let flow = match bcs::from_bytes::<Message>(&env.payload) {
            Ok(
                Message::AppRequest { flow, .. }
                | Message::SignRequest { flow, .. }
                | Message::NotariseRequest { flow, .. },
            ) => flow,
            _ => return Ok(()),
        };
        let Some(cp) = self.load_flow(flow).await? else {
            return Ok(());
        };
        if !cp.state.status().is_running() {
            return Ok(());
        }
        let reason = match error {
            TransportError::Refused { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let reason = format!("{} refused the message: {reason}", env.to.organisation());
        self.fail_flow(
            flow,
            &cp.name,
            super::runtime::At::Version(cp.version),
            reason,
        )
        .await
    }

    pub(super) async fn enqueue(
        &self,
        t: &mut WriteTx,
        out: Vec<(PartyName, Message)>,
        now: i64,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut queued = Vec::with_capacity(out.len());
        for (i, (to, msg)) in out.into_iter().enumerate() {
            let env = Envelope {
                id: Uuid::new_v4(),
                from: self.hub.name.clone(),
                to: to.clone(),
                payload: bcs_bytes(&msg),
            };
            sqlx::query(
                "INSERT INTO outbox (id, to_node, body, created_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(env.id.to_string())
            .bind(to.to_string())
            .bind(to_hex_bcs(&env))
            .bind(now * 1000 + i as i64)
            .execute(&mut **t)
            .await
            .map_err(db("queueing a message"))?;
            queued.push(env);
        }
        Ok(queued)
    }

    /// Hands committed messages to the outbox task (which would otherwise find them on its
    /// next scan of the table).
    pub(super) fn hand_to_outbox(&self, queued: Vec<Envelope>) {
        if !queued.is_empty()
            && let Ok(mut fresh) = self.fresh.lock()
        {
            fresh.extend(queued);
        }
        self.outbox_wake.notify_one();
    }
}

/// Messages one rescan of the outbox table reads.
const OUTBOX_PAGE: i64 = 1024;

/// A finished delivery: the message, and what the receiver said.
type Delivery = (Envelope, Result<(), TransportError>);

/// Longest wait before retrying a message whose receiver could not be reached.
const MAX_RETRY_DELAY: Duration = Duration::from_millis(500);

/// How often the outbox task re-reads the outbox table (it is handed new messages directly;
/// the table is read at start, for a standby's inherited messages, and as a safety net).
const RESCAN_EVERY: Duration = Duration::from_secs(1);

/// Delivers the outbox. Every message is sent on a task of its own, so a slow receiver holds
/// up nobody else (steps of different flows do not depend on each other's order, and a flow
/// has at most one message in flight per receiver). Acknowledged messages are cleared
/// together; a refused one is dropped with a warning (the receiver will never accept it); an
/// undeliverable one is retried with a growing delay.
pub(super) async fn outbox_loop(inner: Weak<Inner>) {
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
    let mut in_flight: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    let mut retry: std::collections::HashMap<Uuid, (tokio::time::Instant, u32, Envelope)> =
        std::collections::HashMap::new();
    let mut finished: Vec<Delivery> = vec![];
    let mut rescan_at = tokio::time::Instant::now();
    // Where the next rescan of the table starts: a backlog larger than one page (messages to a
    // node that is down) cannot hide the messages queued behind it.
    let mut rescan_after = i64::MIN;
    loop {
        let Some(node) = inner.upgrade() else { return };
        if node.is_crashed() {
            return;
        }
        while let Ok(d) = finished_rx.try_recv() {
            finished.push(d);
        }
        let mut done = vec![];
        for (env, result) in finished.drain(..) {
            in_flight.remove(&env.id);
            match result {
                Ok(()) => {
                    retry.remove(&env.id);
                    done.push(env.id);
                }
                Err(e @ TransportError::Refused { .. }) => {
                    warn!(error = %e, to = %env.to, "message refused by its receiver; dropped");
                    retry.remove(&env.id);
                    done.push(env.id);
                    if let Err(err) = node.fail_refused(&env, &e).await {
                        warn!(error = %err, "failing the flow of a refused message failed");
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, to = %env.to, "delivery failed; will retry");
                    let tries = retry.get(&env.id).map_or(0, |(_, n, _)| *n);
                    let delay = (Duration::from_millis(10) * 2u32.saturating_pow(tries))
                        .min(MAX_RETRY_DELAY);
                    let at = tokio::time::Instant::now() + delay;
                    retry.insert(env.id, (at, tries + 1, env));
                }
            }
        }
        if !done.is_empty()
            && let Err(e) = clear_outbox(&node, &done).await
        {
            // Left in the table: delivered again after a restart; the receiver's inbox drops it.
            warn!(error = %e, "clearing the outbox failed");
        }
        let now = tokio::time::Instant::now();
        let mut ready: Vec<Envelope> = node
            .fresh
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        let due: Vec<Uuid> = retry
            .iter()
            .filter(|(id, (at, _, _))| *at <= now && !in_flight.contains(*id))
            .map(|(id, _)| *id)
            .collect();
        ready.extend(
            due.iter()
                .filter_map(|id| retry.get(id).map(|(_, _, e)| e.clone())),
        );
        if now >= rescan_at {
            rescan_at = now + RESCAN_EVERY;
            match read_outbox(&node, rescan_after).await {
                Ok((rows, last)) => {
                    rescan_after = last.unwrap_or(i64::MIN);
                    ready.extend(rows.into_iter().filter(|e| !retry.contains_key(&e.id)));
                }
                Err(e) => warn!(error = %e, "outbox read failed"),
            }
        }
        for env in ready {
            if !in_flight.insert(env.id) {
                continue;
            }
            if start_delivery(&node, env, &finished_tx) {
                break;
            }
        }
        if node.is_crashed() {
            return;
        }
        tokio::select! {
            () = node.outbox_wake.notified() => {}
            Some(d) = finished_rx.recv() => finished.push(d),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

async fn clear_outbox(node: &Inner, ids: &[Uuid]) -> Result<(), StoreError> {
    let mut t = node.hub.store.begin_write().await?;
    for id in ids {
        sqlx::query("DELETE FROM outbox WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *t)
            .await
            .map_err(db("clearing the outbox"))?;
    }
    t.commit().await.map_err(db("clearing the outbox"))
}

/// The queued messages, oldest first.
async fn read_outbox(node: &Inner, after: i64) -> Result<(Vec<Envelope>, Option<i64>), StoreError> {
    let rows = sqlx::query(
        "SELECT body, created_ms FROM outbox WHERE created_ms > $1 ORDER BY created_ms LIMIT $2",
    )
    .bind(after)
    .bind(OUTBOX_PAGE)
    .fetch_all(node.hub.store.pool())
    .await
    .map_err(db("reading the outbox"))?;
    // A full page: the next rescan goes on after it; otherwise it starts again at the oldest.
    let last = if rows.len() as i64 == OUTBOX_PAGE {
        rows.last()
            .map(|r| r.try_get::<i64, _>(1))
            .transpose()
            .map_err(db("reading the outbox"))?
    } else {
        None
    };
    let envelopes = rows
        .iter()
        .map(|row| {
            let body: String = row.try_get(0).map_err(db("reading the outbox"))?;
            from_hex_bcs("outbox", &body)
        })
        .collect::<Result<_, _>>()?;
    Ok((envelopes, last))
}

/// Sends `env` on a task of its own. Returns true when a failpoint stopped the node at this
/// message: nothing queued after it may be sent, as after a kill.
fn start_delivery(
    node: &Arc<Inner>,
    env: Envelope,
    finished: &tokio::sync::mpsc::UnboundedSender<Delivery>,
) -> bool {
    let crash_after = match bcs::from_bytes::<Message>(&env.payload) {
        Ok(Message::NotariseRequest { .. }) => Some(Failpoint::CrashAfterNotariseRequest),
        Ok(Message::AppReply { .. }) => Some(Failpoint::CrashAfterKeyResponse),
        _ => None,
    };
    // A failpoint stops the node as soon as its message is on the wire: nothing that arrives
    // afterwards is processed.
    let crash = if crash_after.is_some() && node.failpoint == crash_after {
        node.crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // A crashed process holds no fence: let a standby in at once.
        node.release_fence();
        true
    } else {
        node.crash_at(super::CrashPoint::Sent)
    };
    let (node2, finished) = (node.clone(), finished.clone());
    tokio::spawn(
        async move {
            let result = node2.transport.send(env.clone()).await;
            if crash {
                // Logged once the message is on the wire: a test may kill the process now.
                warn!(failpoint = ?node2.failpoint, "failpoint reached");
            }
            let _ = finished.send((env, result));
        }
        .in_current_span(),
    );
    crash
}
