//! The flow runtime: runs an app's flow steps and the framework's sub-flows (ask a party,
//! collect co-signatures, notarise, finalise), checkpointing after each, and ends flows that
//! cannot go on — failed, killed or timed out — in one place that also releases their locks.

use std::collections::BTreeSet;

use tracing::{info, warn};
use uuid::Uuid;

use crate::app::{FlowContext, FlowError, FlowLogic, Next, Reply};
use crate::identity::PartyName;
use crate::notary::NotarisationRequest;
use crate::tx::SignedTransaction;

use super::checkpoint::{FlowState, Step};
use super::messages::Message;
use super::{Inner, NodeError};

/// Where a step's checkpoint goes: a new flow (with its deadline) or the version read.
#[derive(Debug, Clone, Copy)]
pub(super) enum At {
    New { deadline_ms: i64 },
    Version(i64),
}

impl At {
    fn expect(self) -> (Option<i64>, i64) {
        match self {
            Self::New { deadline_ms } => (None, deadline_ms),
            Self::Version(v) => (Some(v), 0),
        }
    }
}

impl Inner {
    fn lock_ttl_ms(&self) -> u64 {
        u64::try_from(self.flow_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(5_000)
    }

    pub(super) fn context(&self, flow: Uuid) -> FlowContext<'_> {
        FlowContext::new(&self.hub, flow, self.lock_ttl_ms())
    }

    /// Commits `state` for `flow`, with `out` and the staged writes.
    pub(super) async fn step(
        &self,
        flow: Uuid,
        name: &str,
        at: At,
        state: FlowState,
        out: Vec<(PartyName, Message)>,
        ctx: Option<&FlowContext<'_>>,
    ) -> Result<bool, NodeError> {
        let (expect, deadline_ms) = at.expect();
        Ok(self
            .commit_step(Step {
                flow,
                name,
                state,
                expect,
                deadline_ms,
                out,
                record: None,
                writes: ctx.map(FlowContext::take_writes).unwrap_or_default(),
            })
            .await?)
    }

    /// Ends `flow` as Failed with `reason` and releases its soft locks (one database
    /// transaction). Nothing happens if the flow moved on since `at` was read.
    pub(super) async fn fail_flow(
        &self,
        flow: Uuid,
        name: &str,
        at: At,
        reason: String,
    ) -> Result<(), NodeError> {
        info!(flow = %flow, name, reason = %reason, "flow failed");
        self.step(flow, name, at, FlowState::Failed { reason }, vec![], None)
            .await?;
        Ok(())
    }

    /// Runs the app's steps from `next` until the flow waits for another node or ends.
    pub(super) async fn run(
        &self,
        flow: Uuid,
        name: &str,
        logic: &dyn FlowLogic,
        at: At,
        ctx: &FlowContext<'_>,
        mut next: Result<Next, FlowError>,
    ) -> Result<(), NodeError> {
        loop {
            match next {
                Err(FlowError::Store(e)) => return Err(e.into()),
                Err(FlowError::Failed(reason)) | Ok(Next::Fail(reason)) => {
                    return self.fail_flow(flow, name, at, reason).await;
                }
                Ok(Next::Ask {
                    state,
                    party,
                    topic,
                    payload,
                }) if party == self.hub.name => {
                    // Asking this node: answer in place, no message.
                    let app = self.apps.flow(name).map(|(app, _)| app.clone());
                    let answer = self
                        .respond(app.as_deref(), &party, &topic, &payload)
                        .await?;
                    next = match answer {
                        Ok(payload) => {
                            let reply = Reply {
                                from: party,
                                payload,
                            };
                            logic.resume(ctx, state, reply).await
                        }
                        Err(reason) => Ok(Next::Fail(reason)),
                    };
                }
                Ok(Next::Ask {
                    state,
                    party,
                    topic,
                    payload,
                }) => {
                    if self.hub.network.node(&party).is_none() {
                        next = Ok(Next::Fail(format!(
                            "{party} is not a member of the network"
                        )));
                        continue;
                    }
                    let app = self
                        .apps
                        .flow(name)
                        .map(|(app, _)| app.clone())
                        .unwrap_or_default();
                    let msg = Message::AppRequest {
                        flow,
                        app,
                        topic: topic.clone(),
                        payload,
                    };
                    let checkpoint = FlowState::Asking {
                        app_state: state,
                        party: party.clone(),
                        topic,
                    };
                    self.step(flow, name, at, checkpoint, vec![(party, msg)], Some(ctx))
                        .await?;
                    return Ok(());
                }
                Ok(Next::Finalise {
                    stx,
                    cosigners,
                    notify,
                }) => {
                    return self
                        .collect(flow, name, at, Some(ctx), stx, cosigners, notify)
                        .await;
                }
            }
        }
    }

    /// Answers an app request: `Err` is the refusal sent back.
    pub(super) async fn respond(
        &self,
        app: Option<&str>,
        from: &PartyName,
        topic: &str,
        payload: &[u8],
    ) -> Result<Result<Vec<u8>, String>, NodeError> {
        let app_name = app.unwrap_or("?");
        let Some(app) = self.apps.by_name.get(app_name) else {
            return Ok(Err(format!(
                "{} does not run the {app_name} app",
                self.hub.name.organisation()
            )));
        };
        match app.respond(&self.hub, from, topic, payload).await {
            Ok(answer) => Ok(Ok(answer)),
            Err(FlowError::Failed(reason)) => Ok(Err(reason)),
            Err(FlowError::Store(e)) => Err(e.into()),
        }
    }

    /// Collect sub-flow: asks the next co-signer, or goes on to notarisation once every
    /// signature is there.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn collect(
        &self,
        flow: Uuid,
        name: &str,
        at: At,
        ctx: Option<&FlowContext<'_>>,
        stx: SignedTransaction,
        mut remaining: Vec<PartyName>,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        remaining.retain(|p| p != &self.hub.name);
        let size = stx.to_bytes().len();
        let max = self.hub.network.max_transaction_size;
        if size > max {
            let reason =
                format!("the transaction is {size} bytes, over the network's limit of {max} bytes");
            return self.fail_flow(flow, name, at, reason).await;
        }
        let Some(cosigner) = remaining.first().cloned() else {
            return self.notarise(flow, name, at, ctx, stx, notify).await;
        };
        if self.hub.network.node(&cosigner).is_none() {
            let reason = format!("{cosigner} is not a member of the network");
            return self.fail_flow(flow, name, at, reason).await;
        }
        let backchain = match self.backchain_for(&cosigner, &stx).await? {
            Ok(b) => b,
            Err(reason) => return self.fail_flow(flow, name, at, reason).await,
        };
        let msg = Message::SignRequest {
            flow,
            tx: stx.clone(),
            backchain,
        };
        let state = FlowState::Collecting {
            stx,
            remaining,
            notify,
        };
        self.step(flow, name, at, state, vec![(cosigner, msg)], ctx)
            .await?;
        Ok(())
    }

    /// Notarise sub-flow: transactions that consume or reference states, or carry a time
    /// window, go to the notary (whole with resolved inputs when it validates); others are
    /// finalised at once.
    async fn notarise(
        &self,
        flow: Uuid,
        name: &str,
        at: At,
        ctx: Option<&FlowContext<'_>>,
        stx: SignedTransaction,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        let needs_notary = !stx.tx.inputs.is_empty()
            || !stx.tx.references.is_empty()
            || stx.tx.time_window.is_some();
        if !needs_notary {
            return self.finalise(flow, name, at, ctx, stx, notify).await;
        }
        let notary = self.hub.network.notary.name.clone();
        let request = if self.hub.network.notary_validating {
            match self.backchain_for(&notary, &stx).await? {
                Ok(backchain) => NotarisationRequest::Validating {
                    tx: Box::new(stx.clone()),
                    backchain,
                },
                Err(reason) => return self.fail_flow(flow, name, at, reason).await,
            }
        } else {
            match self.non_validating_request(&stx).await? {
                Ok(request) => request,
                Err(reason) => return self.fail_flow(flow, name, at, reason).await,
            }
        };
        let out = vec![(notary, Message::NotariseRequest { flow, request })];
        let state = FlowState::Notarising { stx, notify };
        self.step(flow, name, at, state, out, ctx).await?;
        Ok(())
    }

    /// Finalise sub-flow: records the complete transaction, sends it with its backchain to the
    /// nodes in `notify` (participants only), and completes the flow.
    pub(super) async fn finalise(
        &self,
        flow: Uuid,
        name: &str,
        at: At,
        ctx: Option<&FlowContext<'_>>,
        stx: SignedTransaction,
        notify: Vec<PartyName>,
    ) -> Result<(), NodeError> {
        let notify: BTreeSet<PartyName> =
            notify.into_iter().filter(|n| n != &self.hub.name).collect();
        let mut out = Vec::with_capacity(notify.len());
        for n in notify {
            // The inputs were resolved from this store when the flow began, so this cannot
            // miss; if it did, the recipient would refuse the transaction and say why.
            let backchain = self
                .backchain_for(&n, &stx)
                .await?
                .unwrap_or_else(|reason| {
                    warn!(tx = %stx.id(), reason = %reason, "finalising without a backchain");
                    vec![]
                });
            let msg = Message::Finalised {
                flow,
                tx: stx.clone(),
                backchain,
            };
            out.push((n, msg));
        }
        let awaiting: Vec<PartyName> = out.iter().map(|(n, _)| n.clone()).collect();
        let state = if awaiting.is_empty() {
            FlowState::Completed { tx_id: stx.id() }
        } else {
            FlowState::Finalising {
                tx_id: stx.id(),
                awaiting,
            }
        };
        let (expect, deadline_ms) = at.expect();
        let applied = self
            .commit_step(Step {
                flow,
                name,
                state,
                expect,
                deadline_ms,
                out,
                record: Some(&stx),
                writes: ctx.map(FlowContext::take_writes).unwrap_or_default(),
            })
            .await?;
        if applied {
            info!(flow = %flow, tx = %stx.id(), "transaction finalised");
        }
        Ok(())
    }

    /// Ends running flows whose deadline passed.
    pub(super) async fn expire_flows(&self) -> Result<usize, NodeError> {
        let now = crate::util::now_ms();
        let overdue = self.overdue_flows(now).await?;
        for flow in &overdue {
            // A flow finalising its transaction (status "finalising", not swept here) waits
            // for the recipients' confirmations however long the outbox needs: the
            // transaction is already notarised and recorded.
            if let Some(cp) = self.load_flow(*flow).await?
                && cp.state.status().is_running()
            {
                let reason = format!(
                    "timed out after {} ms ({})",
                    self.flow_timeout.as_millis(),
                    match cp.state.status() {
                        super::FlowStatus::Running { step } => step,
                        _ => String::new(),
                    }
                );
                warn!(flow = %flow, "flow timed out");
                self.fail_flow(*flow, &cp.name, At::Version(cp.version), reason)
                    .await?;
            }
        }
        Ok(overdue.len())
    }
}
