//! Simulated calls (`eth_call`, `eth_estimateGas`) against recent states.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use revm::context::TxEnv;
use revm::context::result::ExecutionResult;
use revm::{ExecuteCommitEvm, ExecuteEvm};

use alloy_rpc_types_eth::state::StateOverride;
use revm::bytecode::Bytecode;
use revm::database::{AccountState, CacheDB};

use std::sync::Arc;

use alloy_primitives::B256;

use alloy_eips::eip2930::AccessList;
use revm::interpreter::interpreter::EthInterpreter;
use revm::{InspectEvm, Inspector, MainBuilder};

use super::Chain;
use super::call_trace::{CallFrame, CallTracer, CallTracerOptions};
use super::exec::{Checks, DevContext, block_env, context_with, halt_reason, tx_env};
use super::trace::{
    AccessListCollector, StructLog, StructLogOptions, StructLogger, StructTrace, TraceError,
};
use crate::state::StateDb;
use crate::state::WorldState;

/// Outcome of a simulated call.
#[derive(Debug, Clone)]
pub enum CallOutcome {
    /// Returned normally.
    Success {
        /// Return data.
        output: Bytes,
        /// Gas used.
        gas_used: u64,
    },
    /// Reverted with data.
    Revert {
        /// Revert data.
        output: Bytes,
        /// Gas used.
        gas_used: u64,
    },
    /// Halted (out of gas, invalid opcode, ...).
    Halt {
        /// Why.
        reason: String,
    },
}

/// A call request (eth_call / eth_estimateGas).
#[derive(Debug, Clone, Default)]
pub struct CallRequest {
    /// Sender (zero address when absent).
    pub from: Option<Address>,
    /// Target (None = contract creation).
    pub to: Option<Address>,
    /// Gas limit (block gas limit when absent).
    pub gas: Option<u64>,
    /// Value.
    pub value: Option<U256>,
    /// Input.
    pub data: Bytes,
    /// Legacy gas price.
    pub gas_price: Option<u128>,
    /// EIP-1559 fee cap.
    pub max_fee_per_gas: Option<u128>,
    /// EIP-1559 tip cap.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Nonce (the caller's nonce for this call when given; not validated).
    pub nonce: Option<u64>,
    /// EIP-2930 access list.
    pub access_list: Option<AccessList>,
    /// State overrides (geth's third `eth_call` parameter): balance, nonce, code, and the
    /// whole storage (`state`) or some slots (`stateDiff`) of accounts, for this call only.
    pub overrides: Option<StateOverride>,
}

/// Why state overrides cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// Both `state` and `stateDiff` for one account.
    #[error("account {0}: state and stateDiff are mutually exclusive")]
    StateAndDiff(Address),
    /// Precompile moves are not supported.
    #[error("account {0}: movePrecompileToAddress is not supported")]
    MovePrecompile(Address),
}

/// Checks overrides before they are applied.
pub fn check_overrides(overrides: &StateOverride) -> Result<(), OverrideError> {
    for (address, o) in overrides {
        if o.state.is_some() && o.state_diff.is_some() {
            return Err(OverrideError::StateAndDiff(*address));
        }
        if o.move_precompile_to.is_some() {
            return Err(OverrideError::MovePrecompile(*address));
        }
    }
    Ok(())
}

fn apply_overrides(db: &mut CacheDB<StateDb<'_>>, overrides: &StateOverride) {
    for (address, o) in overrides {
        // StateDb never fails (its error type is Infallible).
        let Ok(account) = db.load_account(*address);
        // An overridden account exists for this call, even if the state has none.
        if account.account_state == AccountState::NotExisting {
            account.account_state = AccountState::Touched;
        }
        if let Some(balance) = o.balance {
            account.info.balance = balance;
        }
        if let Some(nonce) = o.nonce {
            account.info.nonce = nonce;
        }
        if let Some(code) = &o.code {
            account.info.set_code(Bytecode::new_raw(code.clone()));
        }
        if let Some(state) = &o.state {
            account.account_state = AccountState::StorageCleared;
            account.storage = state
                .iter()
                .map(|(k, v)| (U256::from_be_bytes(k.0), U256::from_be_bytes(v.0)))
                .collect();
        }
        if let Some(diff) = &o.state_diff {
            for (k, v) in diff {
                account
                    .storage
                    .insert(U256::from_be_bytes(k.0), U256::from_be_bytes(v.0));
            }
        }
    }
}

/// What a call at one block needs, detached from the chain: the state snapshot (a cheap
/// persistent-map clone) and the block hashes (shared). Calls run on it without the chain lock,
/// so a long call never holds up block production.
#[derive(Debug, Clone)]
pub struct CallView {
    state: WorldState,
    hashes: Arc<Vec<B256>>,
    number: u64,
    beneficiary: Address,
    timestamp: u64,
    base_fee: u64,
    gas_limit: u64,
    chain_id: u64,
    contract_size_limit: usize,
}

impl Chain {
    /// A detached view for calls at block `number`, if its state is kept.
    pub fn call_view(&self, number: u64) -> Option<CallView> {
        let state = self.state_at(number)?.clone();
        let block = self.block(number)?;
        Some(CallView {
            state,
            hashes: self.hashes.clone(),
            number,
            beneficiary: block.header.beneficiary,
            timestamp: block.header.timestamp,
            base_fee: block.header.base_fee_per_gas.unwrap_or_default(),
            gas_limit: self.spec.gas_limit,
            chain_id: self.spec.chain_id,
            contract_size_limit: self.spec.contract_size_limit,
        })
    }

    /// Executes a call against the state after block `number` without committing.
    pub fn call(&self, req: &CallRequest, number: u64) -> Option<CallOutcome> {
        Some(self.call_view(number)?.call(req))
    }

    /// Smallest gas limit with which the call succeeds (binary search), or the failure.
    pub fn estimate_gas(&self, req: &CallRequest, number: u64) -> Option<Result<u64, CallOutcome>> {
        Some(self.call_view(number)?.estimate_gas(req))
    }
}

impl CallView {
    /// The context and transaction a call runs with.
    fn prepare(&self, req: &CallRequest) -> (DevContext<'_>, TxEnv) {
        let number = self.number;
        // With fee fields the call pays like a transaction of that block (and must meet its
        // base fee); without them it is free, as on geth and Besu. The balance must always
        // cover the value.
        let priced = req.gas_price.is_some() || req.max_fee_per_gas.is_some();
        let base_fee = if priced { self.base_fee } else { 0 };
        let block_env = block_env(
            number,
            self.beneficiary,
            self.timestamp,
            self.gas_limit,
            base_fee,
        );
        let checks = Checks::Call {
            nonce: false,
            base_fee: priced,
        };
        let mut db = CacheDB::new(StateDb {
            state: &self.state,
            block_hashes: &self.hashes,
        });
        if let Some(overrides) = &req.overrides {
            apply_overrides(&mut db, overrides);
        }
        // A given nonce is used, not validated (as geth and Besu): the caller's nonce is set to
        // it for this call, so a creation derives its address from it.
        if let Some(nonce) = req.nonce {
            let Ok(account) = db.load_account(req.from.unwrap_or_default());
            if account.account_state == AccountState::NotExisting {
                account.account_state = AccountState::Touched;
            }
            account.info.nonce = nonce;
        }
        let ctx = context_with(
            db,
            block_env,
            checks,
            self.chain_id,
            self.contract_size_limit,
        );
        let (tx_type, gas_price, gas_priority_fee) = match (req.gas_price, req.max_fee_per_gas) {
            (Some(price), _) => (0, price, None),
            (None, Some(cap)) => (2, cap, Some(req.max_priority_fee_per_gas.unwrap_or(0))),
            (None, None) => (0, 0, None),
        };
        let access_list = req.access_list.clone().unwrap_or_default();
        // An access list needs a typed transaction (EIP-2930 when not EIP-1559).
        let tx_type = if tx_type == 0 && !access_list.is_empty() {
            1
        } else {
            tx_type
        };
        let tx = TxEnv {
            tx_type,
            caller: req.from.unwrap_or_default(),
            gas_limit: req.gas.unwrap_or(self.gas_limit).min(self.gas_limit),
            gas_price,
            gas_priority_fee,
            kind: req.to.map_or(TxKind::Create, TxKind::Call),
            value: req.value.unwrap_or_default(),
            data: req.data.clone(),
            nonce: req.nonce.unwrap_or(0),
            chain_id: Some(self.chain_id),
            access_list,
            ..Default::default()
        };
        (ctx, tx)
    }

    /// Executes a call without committing.
    pub fn call(&self, req: &CallRequest) -> CallOutcome {
        let (ctx, tx) = self.prepare(req);
        outcome(ctx.build_mainnet().transact(tx).map(|r| r.result))
    }

    /// Executes a call with `inspector` watching every step, without committing.
    pub(crate) fn inspect<I>(&self, req: &CallRequest, inspector: &mut I) -> CallOutcome
    where
        I: for<'a> Inspector<DevContext<'a>, EthInterpreter>,
    {
        let (ctx, tx) = self.prepare(req);
        let mut evm = ctx.build_mainnet_with_inspector(inspector);
        outcome(evm.inspect_tx(tx).map(|r| r.result))
    }

    /// geth's `eth_createAccessList`: runs the call, collecting what it touches, until the
    /// list is stable (at most [`MAX_ACCESS_LIST_ROUNDS`] runs); returns the list, the gas the
    /// call uses with it, and the failure if the call fails with it.
    pub(crate) fn create_access_list(&self, req: &CallRequest) -> AccessListResult {
        let sender = req.from.unwrap_or_default();
        let recipient = req
            .to
            .unwrap_or_else(|| sender.create(req.nonce.unwrap_or_else(|| self.nonce_of(&sender))));
        let mut list = req.access_list.clone().unwrap_or_default();
        let mut probe = req.clone();
        let mut rounds = 0;
        loop {
            rounds += 1;
            probe.access_list = Some(list.clone());
            let mut collector = AccessListCollector::new(&list, [sender, recipient]);
            let outcome = self.inspect(&probe, &mut collector);
            let found = collector.access_list();
            if found == list || rounds >= MAX_ACCESS_LIST_ROUNDS {
                let (gas_used, error) = match outcome {
                    CallOutcome::Success { gas_used, .. } => (gas_used, None),
                    CallOutcome::Revert { gas_used, output } => {
                        (gas_used, Some(revert_message(&output)))
                    }
                    CallOutcome::Halt { reason } => (0, Some(reason)),
                };
                return AccessListResult {
                    access_list: found,
                    gas_used,
                    error,
                };
            }
            list = found;
        }
    }

    /// geth's struct-logger trace of a call.
    pub(crate) fn trace(
        &self,
        req: &CallRequest,
        options: StructLogOptions,
    ) -> Result<StructTrace, TraceError> {
        let mut logger = StructLogger::new(options);
        let outcome = self.inspect(req, &mut logger);
        let logs = logger.finish()?;
        Ok(trace_of(outcome, logs))
    }

    /// geth's call-tracer trace of a call.
    pub(crate) fn call_trace(
        &self,
        req: &CallRequest,
        options: CallTracerOptions,
    ) -> Result<CallFrame, TraceError> {
        let mut tracer = CallTracer::new(options);
        let gas_limit = req.gas.unwrap_or(self.gas_limit).min(self.gas_limit);
        let outcome = self.inspect(req, &mut tracer);
        tracer.finish(gas_limit, gas_used_of(&outcome, gas_limit))
    }

    fn nonce_of(&self, address: &Address) -> u64 {
        self.state.account(address).map(|a| a.nonce).unwrap_or(0)
    }

    /// Smallest gas limit with which the call succeeds (binary search), or the failure.
    pub fn estimate_gas(&self, req: &CallRequest) -> Result<u64, CallOutcome> {
        let mut probe = req.clone();
        probe.gas = Some(req.gas.unwrap_or(self.gas_limit));
        let first = self.call(&probe);
        let used = match first {
            CallOutcome::Success { gas_used, .. } => gas_used,
            other => return Err(other),
        };
        let (mut lo, mut hi) = (used.saturating_sub(1), probe.gas.unwrap_or(self.gas_limit));
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            probe.gas = Some(mid);
            match self.call(&probe) {
                CallOutcome::Success { .. } => hi = mid,
                _ => lo = mid,
            }
        }
        Ok(hi)
    }
}

/// Most runs `eth_createAccessList` makes before answering with the last list.
pub(crate) const MAX_ACCESS_LIST_ROUNDS: usize = 8;

/// The answer of `eth_createAccessList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessListResult {
    /// Accounts and slots the call touches.
    pub access_list: AccessList,
    /// Gas the call uses with that list.
    pub gas_used: u64,
    /// Why the call fails, if it does.
    pub error: Option<String>,
}

fn revert_message(output: &Bytes) -> String {
    // `Error(string)`: the reason after the selector, offset and length words.
    let reason = output
        .strip_prefix(&[0x08, 0xc3, 0x79, 0xa0][..])
        .and_then(|data| {
            let len = usize::try_from(U256::from_be_slice(data.get(32..64)?)).ok()?;
            String::from_utf8(data.get(64..64usize.checked_add(len)?)?.to_vec()).ok()
        });
    match reason {
        Some(r) => format!("execution reverted: {r}"),
        None => "execution reverted".to_string(),
    }
}

fn outcome<E: std::fmt::Display>(result: Result<ExecutionResult, E>) -> CallOutcome {
    match result {
        Ok(ExecutionResult::Success { output, gas, .. }) => CallOutcome::Success {
            output: output.into_data(),
            gas_used: gas.tx_gas_used(),
        },
        Ok(ExecutionResult::Revert { output, gas, .. }) => CallOutcome::Revert {
            output,
            gas_used: gas.tx_gas_used(),
        },
        Ok(ExecutionResult::Halt { reason, .. }) => CallOutcome::Halt {
            reason: halt_reason(&reason),
        },
        Err(err) => CallOutcome::Halt {
            reason: err.to_string(),
        },
    }
}

/// Gas a call with `gas_limit` used: all of it when it halted.
fn gas_used_of(outcome: &CallOutcome, gas_limit: u64) -> u64 {
    match outcome {
        CallOutcome::Success { gas_used, .. } | CallOutcome::Revert { gas_used, .. } => *gas_used,
        CallOutcome::Halt { .. } => gas_limit,
    }
}

pub(crate) fn trace_of(outcome: CallOutcome, logs: Vec<StructLog>) -> StructTrace {
    match outcome {
        CallOutcome::Success { output, gas_used } => {
            StructTrace::new(gas_used, false, &output, logs)
        }
        CallOutcome::Revert { output, gas_used } => StructTrace::new(gas_used, true, &output, logs),
        CallOutcome::Halt { .. } => StructTrace::new(0, true, &Bytes::new(), logs),
    }
}

/// What tracing one mined transaction needs, detached from the chain: the parent state, the
/// block's environment and its transactions up to the traced one.
#[derive(Debug, Clone)]
pub(crate) struct ReplayView {
    state: WorldState,
    hashes: Arc<Vec<B256>>,
    number: u64,
    beneficiary: Address,
    timestamp: u64,
    base_fee: u64,
    gas_limit: u64,
    chain_id: u64,
    contract_size_limit: usize,
    txs: Vec<super::MinedTx>,
}

impl Chain {
    /// A replay view for the mined transaction `hash`: `None` when the transaction is unknown,
    /// `Some(None)` when its parent state is no longer kept.
    pub(crate) fn replay_view(&self, hash: &B256) -> Option<Option<ReplayView>> {
        let (number, index) = self.tx_location(hash)?;
        let block = self.block(number)?;
        let Some(state) = number
            .checked_sub(1)
            .and_then(|parent| self.state_at(parent))
        else {
            return Some(None);
        };
        Some(Some(ReplayView {
            state: state.clone(),
            hashes: self.hashes.clone(),
            number,
            beneficiary: block.header.beneficiary,
            timestamp: block.header.timestamp,
            base_fee: block.header.base_fee_per_gas.unwrap_or_default(),
            gas_limit: block.header.gas_limit,
            chain_id: self.spec.chain_id,
            contract_size_limit: self.spec.contract_size_limit,
            txs: block.txs.get(..=index)?.to_vec(),
        }))
    }
}

impl ReplayView {
    /// Re-executes the block's earlier transactions on the parent state, then the traced
    /// transaction with `inspector` watching; returns its outcome and gas limit (`None` when
    /// the view holds no transaction).
    fn replay<I>(&self, inspector: &mut I) -> Option<(CallOutcome, u64)>
    where
        I: for<'a> Inspector<DevContext<'a>, EthInterpreter>,
    {
        let db = CacheDB::new(StateDb {
            state: &self.state,
            block_hashes: &self.hashes,
        });
        let env = block_env(
            self.number,
            self.beneficiary,
            self.timestamp,
            self.gas_limit,
            self.base_fee,
        );
        let ctx = context_with(
            db,
            env,
            Checks::Enforced,
            self.chain_id,
            self.contract_size_limit,
        );
        let mut evm = ctx.build_mainnet_with_inspector(inspector);
        let (target, earlier) = self.txs.split_last()?;
        for tx in earlier {
            // Not inspected: only the traced transaction is watched.
            if let Ok(r) = evm.transact(tx_env(tx)) {
                evm.commit(r.state);
            }
        }
        let env = tx_env(target);
        let gas_limit = env.gas_limit;
        Some((outcome(evm.inspect_tx(env).map(|r| r.result)), gas_limit))
    }

    /// Traces the transaction with geth's struct logger.
    pub(crate) fn trace(&self, options: StructLogOptions) -> Result<StructTrace, TraceError> {
        let mut logger = StructLogger::new(options);
        let Some((outcome, _)) = self.replay(&mut logger) else {
            return Ok(trace_of(
                CallOutcome::Halt {
                    reason: "no transaction".into(),
                },
                Vec::new(),
            ));
        };
        let logs = logger.finish()?;
        Ok(trace_of(outcome, logs))
    }

    /// Traces the transaction with geth's call tracer.
    pub(crate) fn call_trace(&self, options: CallTracerOptions) -> Result<CallFrame, TraceError> {
        let mut tracer = CallTracer::new(options);
        let (outcome, gas_limit) = self.replay(&mut tracer).ok_or(TraceError::NoFrame)?;
        tracer.finish(gas_limit, gas_used_of(&outcome, gas_limit))
    }
}
