//! Inbound messages: each envelope is handled once (the inbox keeps the ids handled, written
//! with the step it caused), and answers are accepted only from the party that was asked.

use tracing::{info, warn};

use crate::app::Reply;
use crate::identity::{PartyName, PublicKey};
use crate::store::db;
use crate::transport::{Envelope, Receiver, SendFuture, TransportError};
use crate::tx::SignedTransaction;
use crate::util::now_ms;

use super::checkpoint::{FlowState, INBOX};
use super::messages::Message;
use super::runtime::At;
use super::{Inner, NodeError, NodeRole};

impl Inner {
    async fn handle(&self, from: &PartyName, msg: Message) -> Result<(), NodeError> {
        match msg {
            Message::AppRequest {
                flow,
                app,
                topic,
                payload,
            } => {
                let result = self.respond(Some(&app), from, &topic, &payload).await?;
                if let Err(reason) = &result {
                    warn!(from = %from, app = %app, topic = %topic, reason = %reason, "refusing an app request");
                }
                self.send_only(vec![(from.clone(), Message::AppReply { flow, result })])
                    .await?;
            }
            Message::AppReply { flow, result } => {
                let Some(cp) = self.load_flow(flow).await? else {
                    return Ok(());
                };
                let FlowState::Asking {
                    app_state, party, ..
                } = cp.state
                else {
                    return Ok(());
                };
                if &party != from {
                    warn!(flow = %flow, from = %from, "ignoring an answer from a party that was not asked");
                    return Ok(());
                }
                let at = At::Version(cp.version);
                let Some((_, logic)) = self.apps.flow(&cp.name).cloned() else {
                    let reason = format!("the app of flow {} is not installed", cp.name);
                    return self.fail_flow(flow, &cp.name, at, reason).await;
                };
                match result {
                    Ok(payload) => {
                        let ctx = self.context(flow);
                        let reply = Reply {
                            from: from.clone(),
                            payload,
                        };
                        let next = logic.resume(&ctx, app_state, reply).await;
                        self.run(flow, &cp.name, logic.as_ref(), at, &ctx, next)
                            .await?;
                    }
                    Err(reason) => {
                        let reason = format!("{} refused: {reason}", from.organisation());
                        self.fail_flow(flow, &cp.name, at, reason).await?;
                    }
                }
            }
            Message::NotariseRequest { flow, request } => {
                if self.notary.is_none() {
                    return Ok(());
                }
                let result = self.notarise_for(from, request).await?;
                if let Err(reason) = &result {
                    warn!(from = %from, reason = %reason, "refusing a notarisation request");
                } else if self.crash_at(super::CrashPoint::NotaryCommit) {
                    return Err(crate::store::StoreError::Stopped.into());
                }
                self.send_only(vec![(
                    from.clone(),
                    Message::NotariseResponse { flow, result },
                )])
                .await?;
            }
            Message::NotariseResponse { flow, result } => {
                let Some(cp) = self.load_flow(flow).await? else {
                    return Ok(());
                };
                let FlowState::Notarising { mut stx, notify } = cp.state else {
                    return Ok(());
                };
                let notary = &self.hub.network.notary;
                if from != &notary.name {
                    warn!(flow = %flow, from = %from, "ignoring a notarisation answer from a node that is not the notary");
                    return Ok(());
                }
                let at = At::Version(cp.version);
                match result {
                    Ok(sig) if sig.by == notary.owning_key && sig.verify(&stx.id()).is_ok() => {
                        stx.sigs.push(sig);
                        self.finalise(flow, &cp.name, at, None, stx, notify).await?;
                    }
                    Ok(_) => {
                        let reason = "the notary's signature does not verify".to_string();
                        self.fail_flow(flow, &cp.name, at, reason).await?;
                    }
                    Err(reason) => {
                        let reason = format!("notary refused: {reason}");
                        self.fail_flow(flow, &cp.name, at, reason).await?;
                    }
                }
            }
            Message::SignRequest {
                flow,
                tx,
                backchain,
            } => {
                let result = self.cosign(from, &tx, backchain).await?;
                match &result {
                    Err(reason) => warn!(from = %from, reason = %reason, "refusing to co-sign"),
                    Ok(_) if self.hub.role == NodeRole::Validator => {
                        self.record_validation(&tx.id(), from).await?;
                        info!(tx = %tx.id(), from = %from, "validated and co-signed");
                    }
                    Ok(_) => {}
                }
                if self.crash_at(super::CrashPoint::Cosigned) {
                    return Err(crate::store::StoreError::Stopped.into());
                }
                self.send_only(vec![(from.clone(), Message::SignResponse { flow, result })])
                    .await?;
            }
            Message::SignResponse { flow, result } => {
                let Some(cp) = self.load_flow(flow).await? else {
                    return Ok(());
                };
                let FlowState::Collecting {
                    mut stx,
                    mut remaining,
                    notify,
                } = cp.state
                else {
                    return Ok(());
                };
                if remaining.first() != Some(from) {
                    warn!(flow = %flow, from = %from, "ignoring a signature from a party that was not asked");
                    return Ok(());
                }
                let at = At::Version(cp.version);
                let key: Option<PublicKey> = self.hub.network.node(from).map(|p| p.owning_key);
                let who = from.organisation().to_string();
                match result {
                    Ok(sig) if Some(sig.by) == key && sig.verify(&stx.id()).is_ok() => {
                        // It verified the whole backchain: it holds every ancestor now.
                        self.remember_now(&[], Some(from), super::backchain::dependencies(&stx))
                            .await?;
                        stx.sigs.push(sig);
                        remaining.remove(0);
                        self.collect(flow, &cp.name, at, None, stx, remaining, notify)
                            .await?;
                    }
                    Ok(_) => {
                        let reason = format!("{who}'s signature does not verify");
                        self.fail_flow(flow, &cp.name, at, reason).await?;
                    }
                    Err(r) => {
                        let reason = format!("{who} refused to co-sign: {r}");
                        self.fail_flow(flow, &cp.name, at, reason).await?;
                    }
                }
            }
            Message::Finalised {
                flow,
                tx,
                backchain,
            } => {
                let tx_id = tx.id();
                let result = self.record_finalised(from, tx, backchain).await?;
                if let Err(reason) = &result {
                    warn!(tx = %tx_id, from = %from, reason = %reason, "refusing a finalised transaction");
                } else if self.crash_at(super::CrashPoint::Recorded) {
                    return Err(crate::store::StoreError::Stopped.into());
                }
                self.send_only(vec![(
                    from.clone(),
                    Message::FinalityAck {
                        flow,
                        tx_id,
                        result,
                    },
                )])
                .await?;
            }
            Message::FinalityAck {
                flow,
                tx_id,
                result,
            } => self.finality_ack(from, flow, tx_id, result).await?,
        }
        Ok(())
    }

    /// A recipient's confirmation (or refusal) of a finalised transaction. Recipients answer
    /// concurrently, so a step that lost the race to another confirmation is read again and
    /// retried rather than dropped.
    async fn finality_ack(
        &self,
        from: &PartyName,
        flow: uuid::Uuid,
        tx_id: crate::TxId,
        result: Result<(), String>,
    ) -> Result<(), NodeError> {
        loop {
            let Some(cp) = self.load_flow(flow).await? else {
                return Ok(());
            };
            let FlowState::Finalising {
                tx_id: expected,
                mut awaiting,
            } = cp.state
            else {
                return Ok(());
            };
            if expected != tx_id || !awaiting.contains(from) {
                warn!(flow = %flow, from = %from, "ignoring a finality confirmation from a party that was not sent the transaction");
                return Ok(());
            }
            let at = At::Version(cp.version);
            let (state, completed) = match &result {
                Ok(()) => {
                    awaiting.retain(|p| p != from);
                    if awaiting.is_empty() {
                        (FlowState::Completed { tx_id }, true)
                    } else {
                        (FlowState::Finalising { tx_id, awaiting }, false)
                    }
                }
                Err(reason) => {
                    let reason = format!(
                        "transaction {tx_id} is notarised and recorded here, but {} refused to record it: {reason}",
                        from.organisation()
                    );
                    (FlowState::Failed { reason }, false)
                }
            };
            if self.step(flow, &cp.name, at, state, vec![], None).await? {
                if result.is_ok() {
                    self.remember_now(&[], Some(from), [tx_id]).await?;
                }
                if completed {
                    info!(flow = %flow, tx = %tx_id, "flow completed");
                }
                return Ok(());
            }
        }
    }

    /// Verifies a finalised transaction (complete signatures, the whole backchain, contracts
    /// and rules) and records it with the apps' hooks; `Ok(Err(reason))` refuses it.
    async fn record_finalised(
        &self,
        from: &PartyName,
        tx: SignedTransaction,
        backchain: Vec<SignedTransaction>,
    ) -> Result<Result<(), String>, NodeError> {
        if let Err(e) = tx.verify(self.hub.network.max_transaction_size, &[]) {
            return Ok(Err(e.to_string()));
        }
        let resolved = match self.resolve(from, &tx, backchain).await? {
            Ok(r) => r,
            Err(reason) => return Ok(Err(reason)),
        };
        let keys = self.relevant_keys().await?;
        let mut t = self.hub.store.begin_write().await?;
        let mut held: Vec<_> = resolved.fresh.iter().map(SignedTransaction::id).collect();
        held.push(tx.id());
        self.remember(&mut t, &resolved.fresh, Some(from), held)
            .await?;
        // A redelivery (the confirmation was lost to a crash) records nothing twice.
        if self
            .hub
            .vault
            .record_in(&mut t, &tx, &keys, None)
            .await?
            .is_some()
        {
            for app in self.apps.involved(&tx) {
                app.on_record(&self.hub, &mut t, &tx).await?;
            }
        }
        t.commit()
            .await
            .map_err(db("recording a finalised transaction"))?;
        Ok(Ok(()))
    }
}

impl Receiver for Inner {
    fn receive(&self, env: Envelope) -> SendFuture<'_> {
        Box::pin(async move {
            if self.is_crashed() {
                return Err(TransportError::Unreachable(self.hub.name.clone()));
            }
            let refuse = |reason: String| TransportError::Refused {
                to: self.hub.name.clone(),
                id: env.id,
                reason,
            };
            if env.to != self.hub.name || self.hub.network.node(&env.from).is_none() {
                return Err(refuse(
                    "not addressed to this node, or from a stranger".into(),
                ));
            }
            // Storage failures are the receiver's problem, not the message's: the sender retries.
            let failed = |reason: String| TransportError::Failed {
                to: self.hub.name.clone(),
                reason,
            };
            let seen = sqlx::query("SELECT 1 FROM inbox WHERE id = $1")
                .bind(env.id.to_string())
                .fetch_optional(self.hub.store.pool())
                .await
                .map_err(|e| failed(e.to_string()))?;
            if seen.is_some() {
                return Ok(());
            }
            let msg: Message = bcs::from_bytes(&env.payload)
                .map_err(|e| refuse(format!("undecodable message: {e}")))?;
            // Handlers are idempotent: a crash before the inbox row means a redelivery, handled
            // again. A handler's last write (a checkpoint or queued reply) records the inbox row
            // in its own database transaction; otherwise it is recorded here.
            let pending = INBOX
                .scope(std::cell::Cell::new(Some(env.id)), async {
                    self.handle(&env.from, msg).await?;
                    Ok::<_, NodeError>(INBOX.with(|c| c.get()))
                })
                .await
                .map_err(|e| failed(e.to_string()))?;
            if let Some(id) = pending {
                let _turn = self.hub.store.write_turn().await;
                sqlx::query(
                    "INSERT INTO inbox (id, received_ms) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id.to_string())
                .bind(now_ms())
                .execute(self.hub.store.pool())
                .await
                .map_err(|e| failed(e.to_string()))?;
            }
            Ok(())
        })
    }
}
