//! The stablecoin's flows. Each is a small state machine on the platform's flow API: ask the
//! payee's node for its account's key (`account-key`), select and lock coins, build and sign the
//! transaction, and hand it to the framework to collect co-signatures, notarise and finalise.

use std::sync::Arc;

use kh_ledger::{
    BoxFuture, Command, FlowContext, FlowError, FlowLogic, FlowStart, KeyPair, Next, PartyName,
    PublicKey, Reply, ServiceHub, SignedTransaction, StateAndRef, TransactionSignature,
    TransactionState, WireTransaction,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contract::{StablecoinCommand, StablecoinState, stablecoin_id};
use crate::payment::{build_payment, build_split};

/// The responder topic that answers an account's public key (`None` if there is no such
/// account on the node).
pub const ACCOUNT_KEY_TOPIC: &str = "account-key";

/// The stablecoin's flows with their arguments, for Rust callers (the JSON form of each
/// variant's fields is what `kakehashi ledger flow start NAME --args JSON` takes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StablecoinFlow {
    /// `stablecoin.issue`: issue from this node (the bank) to an account.
    Issue {
        /// Amount.
        amount: u64,
        /// Currency code.
        currency: String,
        /// Receiving node (full legal name or organisation).
        to_node: PartyName,
        /// Receiving account.
        to_account: Uuid,
    },
    /// `stablecoin.pay`: pay from one of this node's accounts to an account.
    Pay {
        /// Amount.
        amount: u64,
        /// Paying account (on this node).
        from: Uuid,
        /// Receiving node.
        to_node: PartyName,
        /// Receiving account.
        to_account: Uuid,
        /// A Validator of the network that must co-sign the payment (a third party: neither
        /// the payer's nor the payee's node).
        validator: Option<PartyName>,
    },
    /// `stablecoin.redeem`: redeem (destroy) coins held by an account; its issuer co-signs.
    Redeem {
        /// The account (on this node).
        account: Uuid,
        /// Amount destroyed.
        amount: u64,
    },
    /// `stablecoin.split`: re-issue an account's whole balance as `parts` states
    /// (pre-splitting, R7).
    Split {
        /// The account (on this node).
        account: Uuid,
        /// Number of states.
        parts: u32,
    },
}

impl From<StablecoinFlow> for FlowStart {
    fn from(f: StablecoinFlow) -> Self {
        let (name, args) = match &f {
            StablecoinFlow::Issue {
                amount,
                currency,
                to_node,
                to_account,
            } => (
                ISSUE,
                serde_json::json!({"amount": amount, "currency": currency, "to_node": to_node.to_string(), "to_account": to_account}),
            ),
            StablecoinFlow::Pay {
                amount,
                from,
                to_node,
                to_account,
                validator,
            } => (
                PAY,
                serde_json::json!({"amount": amount, "from": from, "to_node": to_node.to_string(), "to_account": to_account, "validator": validator.as_ref().map(ToString::to_string)}),
            ),
            StablecoinFlow::Redeem { account, amount } => (
                REDEEM,
                serde_json::json!({"account": account, "amount": amount}),
            ),
            StablecoinFlow::Split { account, parts } => (
                SPLIT,
                serde_json::json!({"account": account, "parts": parts}),
            ),
        };
        FlowStart::new(name, args)
    }
}

const ISSUE: &str = "stablecoin.issue";
const PAY: &str = "stablecoin.pay";
const REDEEM: &str = "stablecoin.redeem";
const SPLIT: &str = "stablecoin.split";

pub(crate) fn all() -> Vec<Arc<dyn FlowLogic>> {
    vec![
        Arc::new(IssueFlow),
        Arc::new(PayFlow),
        Arc::new(RedeemFlow),
        Arc::new(SplitFlow),
    ]
}

fn args<T: serde::de::DeserializeOwned>(name: &str, v: serde_json::Value) -> Result<T, FlowError> {
    serde_json::from_value(v)
        .map_err(|e| FlowError::Failed(format!("bad arguments for {name}: {e}")))
}

fn bcs_of<T: Serialize>(v: &T) -> Vec<u8> {
    // The app's flow states and messages are plain BCS-encodable structs.
    bcs::to_bytes(v).expect("BCS encodes the stablecoin's flow values")
}

fn from_bcs<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, FlowError> {
    bcs::from_bytes(bytes).map_err(|e| FlowError::Failed(format!("undecodable {what}: {e}")))
}

fn fail(reason: impl Into<String>) -> FlowError {
    FlowError::Failed(reason.into())
}

fn positive(amount: u64) -> Result<(), FlowError> {
    if amount == 0 {
        return Err(fail("amount must be positive"));
    }
    Ok(())
}

fn node(hub: &ServiceHub, name: &str) -> Result<PartyName, FlowError> {
    hub.network()
        .resolve(name)
        .ok_or_else(|| fail(format!("unknown node {name:?}")))
}

/// Selects and soft-locks `amount` of `owner`'s coins for the flow.
async fn lock_coins(
    ctx: &FlowContext<'_>,
    owner: &PublicKey,
    amount: u64,
) -> Result<Vec<StateAndRef>, FlowError> {
    match ctx
        .hub()
        .vault()
        .select_and_lock(
            &stablecoin_id(),
            owner,
            amount,
            ctx.flow_id(),
            ctx.lock_ttl_ms(),
        )
        .await
    {
        Ok(coins) => Ok(coins),
        Err(kh_ledger::VaultError::InsufficientFunds {
            available, wanted, ..
        }) => Err(fail(format!(
            "insufficient funds: {available} available, {wanted} wanted"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn account_key(hub: &ServiceHub, account: Uuid) -> Result<KeyPair, FlowError> {
    Ok(hub.vault().account_key(account).await?)
}

/// Answers the stablecoin's responder topics.
pub(crate) async fn respond(
    hub: &ServiceHub,
    topic: &str,
    payload: &[u8],
) -> Result<Vec<u8>, FlowError> {
    match topic {
        ACCOUNT_KEY_TOPIC => {
            let account: Uuid = from_bcs("account id", payload)?;
            let key = hub
                .vault()
                .accounts()
                .await?
                .into_iter()
                .find(|a| a.id == account)
                .map(|a| a.public_key);
            Ok(bcs_of(&key))
        }
        other => Err(fail(format!(
            "the stablecoin app has no responder {other:?}"
        ))),
    }
}

fn payee_key(reply: &Reply) -> Result<PublicKey, FlowError> {
    let key: Option<PublicKey> = from_bcs("account key", &reply.payload)?;
    key.ok_or_else(|| fail("the payee account does not exist"))
}

fn ask_key<S: Serialize>(state: &S, to_node: PartyName, account: Uuid) -> Next {
    Next::Ask {
        state: bcs_of(state),
        party: to_node,
        topic: ACCOUNT_KEY_TOPIC.into(),
        payload: bcs_of(&account),
    }
}

#[derive(Debug)]
struct IssueFlow;

#[derive(Debug, Deserialize)]
struct IssueArgs {
    amount: u64,
    #[serde(default = "jpy")]
    currency: String,
    to_node: String,
    to_account: Uuid,
}

fn jpy() -> String {
    "JPY".into()
}

#[derive(Debug, Serialize, Deserialize)]
struct IssueState {
    amount: u64,
    currency: String,
    to_node: PartyName,
}

impl FlowLogic for IssueFlow {
    fn name(&self) -> &str {
        ISSUE
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        v: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let a: IssueArgs = args(ISSUE, v)?;
            positive(a.amount)?;
            if a.currency.is_empty() || a.currency.len() > 16 {
                return Err(fail("currency must be 1 to 16 characters"));
            }
            let to_node = node(ctx.hub(), &a.to_node)?;
            let state = IssueState {
                amount: a.amount,
                currency: a.currency,
                to_node: to_node.clone(),
            };
            Ok(ask_key(&state, to_node, a.to_account))
        })
    }

    fn resume<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        state: Vec<u8>,
        reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let s: IssueState = from_bcs("issue state", &state)?;
            let owner = payee_key(&reply)?;
            let hub = ctx.hub();
            let coin = StablecoinState {
                amount: s.amount,
                currency: s.currency,
                issuer: hub.name().clone(),
                issuer_key: hub.identity_key().public(),
                owner,
            };
            let tx = WireTransaction {
                inputs: vec![],
                references: vec![],
                outputs: vec![TransactionState {
                    contract: stablecoin_id(),
                    notary: hub.notary().clone(),
                    participants: vec![owner],
                    data: bcs_of(&coin),
                }],
                commands: vec![Command {
                    contract: stablecoin_id(),
                    data: bcs_of(&StablecoinCommand::Issue),
                    signers: vec![hub.identity_key().public()],
                }],
                notary: Some(hub.notary().clone()),
                time_window: None,
                privacy_salt: rand::random(),
            };
            Ok(Next::Finalise {
                stx: hub.sign_as_node(tx),
                cosigners: vec![],
                notify: vec![s.to_node],
            })
        })
    }
}

#[derive(Debug)]
struct PayFlow;

#[derive(Debug, Deserialize)]
struct PayArgs {
    amount: u64,
    from: Uuid,
    to_node: String,
    to_account: Uuid,
    #[serde(default)]
    validator: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PayState {
    amount: u64,
    from: Uuid,
    to_node: PartyName,
    validator: Option<(PartyName, PublicKey)>,
}

impl FlowLogic for PayFlow {
    fn name(&self) -> &str {
        PAY
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        v: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let a: PayArgs = args(PAY, v)?;
            positive(a.amount)?;
            let hub = ctx.hub();
            let to_node = node(hub, &a.to_node)?;
            let validator = match a.validator.filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => {
                    let v = node(hub, &v)?;
                    if &v == hub.name() || v == to_node {
                        return Err(fail(format!(
                            "{v} takes part in the payment; a Validator must be a third party"
                        )));
                    }
                    let key = hub.network().validator_key(&v).map_err(fail)?;
                    Some((v, key))
                }
            };
            // Unknown paying account: fail now, before asking anyone.
            account_key(hub, a.from).await?;
            let state = PayState {
                amount: a.amount,
                from: a.from,
                to_node: to_node.clone(),
                validator,
            };
            Ok(ask_key(&state, to_node, a.to_account))
        })
    }

    fn resume<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        state: Vec<u8>,
        reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let s: PayState = from_bcs("payment state", &state)?;
            let payee = payee_key(&reply)?;
            let hub = ctx.hub();
            let key = account_key(hub, s.from).await?;
            let inputs = lock_coins(ctx, &key.public(), s.amount).await?;
            let mut tx = build_payment(&inputs, key.public(), payee, s.amount, hub.notary())
                .map_err(|e| fail(e.to_string()))?;
            let mut cosigners = vec![];
            let mut notify = vec![s.to_node];
            if let Some((validator, validator_key)) = s.validator {
                for c in &mut tx.commands {
                    c.signers.push(validator_key);
                }
                cosigners.push(validator.clone());
                notify.push(validator);
            }
            Ok(Next::Finalise {
                stx: SignedTransaction::signed_by(tx, &key),
                cosigners,
                notify,
            })
        })
    }
}

#[derive(Debug)]
struct SplitFlow;

#[derive(Debug, Deserialize)]
struct SplitArgs {
    account: Uuid,
    parts: u32,
}

impl FlowLogic for SplitFlow {
    fn name(&self) -> &str {
        SPLIT
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        v: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let a: SplitArgs = args(SPLIT, v)?;
            let hub = ctx.hub();
            let key = account_key(hub, a.account).await?;
            let balance = hub
                .vault()
                .quantity(&stablecoin_id(), &key.public())
                .await?;
            if a.parts == 0 {
                return Err(fail("a split makes at least one part"));
            }
            let inputs = lock_coins(ctx, &key.public(), balance.max(1)).await?;
            // Refused before anything is built: the transaction would exceed the network's
            // size limit (each part is one output of about the size of an input state).
            let per_part = inputs
                .first()
                .map_or(0, |s| bcs_of(&s.state).len().saturating_add(16));
            let max = hub.network().max_transaction_size;
            let estimate = per_part.saturating_mul(a.parts as usize);
            if estimate > max {
                return Err(fail(format!(
                    "a split into {} parts would make a transaction of about {estimate} bytes, over the network's limit of {max} bytes",
                    a.parts
                )));
            }
            let tx = build_split(&inputs, key.public(), a.parts, hub.notary())
                .map_err(|e| fail(e.to_string()))?;
            Ok(Next::Finalise {
                stx: SignedTransaction::signed_by(tx, &key),
                cosigners: vec![],
                notify: vec![],
            })
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(fail("a split asks nobody")) })
    }
}

#[derive(Debug)]
struct RedeemFlow;

#[derive(Debug, Deserialize)]
struct RedeemArgs {
    account: Uuid,
    amount: u64,
}

impl FlowLogic for RedeemFlow {
    fn name(&self) -> &str {
        REDEEM
    }

    fn start<'a>(
        &'a self,
        ctx: &'a FlowContext<'a>,
        v: serde_json::Value,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async move {
            let a: RedeemArgs = args(REDEEM, v)?;
            positive(a.amount)?;
            let hub = ctx.hub();
            let key = account_key(hub, a.account).await?;
            let inputs = lock_coins(ctx, &key.public(), a.amount).await?;
            let coins: Vec<StablecoinState> = inputs
                .iter()
                .filter_map(|s| s.state.decode().ok())
                .collect();
            let Some(first) = coins.first().cloned() else {
                return Err(fail("no coins selected"));
            };
            if coins.len() != inputs.len()
                || coins
                    .iter()
                    .any(|c| c.issuer != first.issuer || c.currency != first.currency)
            {
                return Err(fail("coins of several issuers or currencies"));
            }
            let total: u64 = coins.iter().map(|c| c.amount).sum();
            let change = total - a.amount.min(total);
            let mut outputs = vec![];
            if change > 0 {
                let coin = StablecoinState {
                    amount: change,
                    ..first.clone()
                };
                outputs.push(TransactionState {
                    contract: stablecoin_id(),
                    notary: hub.notary().clone(),
                    participants: vec![key.public()],
                    data: bcs_of(&coin),
                });
            }
            let tx = WireTransaction {
                inputs: inputs.iter().map(|s| s.reference).collect(),
                references: vec![],
                outputs,
                commands: vec![Command {
                    contract: stablecoin_id(),
                    data: bcs_of(&StablecoinCommand::Redeem { amount: a.amount }),
                    signers: vec![key.public(), first.issuer_key],
                }],
                notary: Some(hub.notary().clone()),
                time_window: None,
                privacy_salt: rand::random(),
            };
            let mut stx = SignedTransaction::signed_by(tx, &key);
            if &first.issuer == hub.name() {
                // The bank redeeming coins it issued signs as the issuer itself.
                stx.sigs
                    .push(TransactionSignature::sign(hub.identity_key(), &stx.id()));
                return Ok(Next::Finalise {
                    stx,
                    cosigners: vec![],
                    notify: vec![],
                });
            }
            Ok(Next::Finalise {
                stx,
                cosigners: vec![first.issuer.clone()],
                notify: vec![first.issuer],
            })
        })
    }

    fn resume<'a>(
        &'a self,
        _ctx: &'a FlowContext<'a>,
        _state: Vec<u8>,
        _reply: Reply,
    ) -> BoxFuture<'a, Result<Next, FlowError>> {
        Box::pin(async { Err(fail("a redemption asks nobody")) })
    }
}
