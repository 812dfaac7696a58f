//! Simulated calls (`eth_call`, `eth_estimateGas`) against recent states.

use alloy_primitives::{Address, Bytes, TxKind, U256};
use revm::ExecuteEvm;
use revm::context::TxEnv;
use revm::context::result::ExecutionResult;

use alloy_rpc_types_eth::state::StateOverride;
use revm::bytecode::Bytecode;
use revm::database::{AccountState, CacheDB};

use std::sync::Arc;

use alloy_primitives::B256;

use super::Chain;
use super::exec::{Checks, block_env, evm_with, halt_reason};
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
    /// Executes a call without committing.
    pub fn call(&self, req: &CallRequest) -> CallOutcome {
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
        let mut evm = evm_with(
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
            ..Default::default()
        };
        match evm.transact(tx) {
            Ok(r) => match r.result {
                ExecutionResult::Success { output, gas, .. } => CallOutcome::Success {
                    output: output.into_data(),
                    gas_used: gas.tx_gas_used(),
                },
                ExecutionResult::Revert { output, gas, .. } => CallOutcome::Revert {
                    output,
                    gas_used: gas.tx_gas_used(),
                },
                ExecutionResult::Halt { reason, .. } => CallOutcome::Halt {
                    reason: halt_reason(&reason),
                },
            },
            Err(err) => CallOutcome::Halt {
                reason: err.to_string(),
            },
        }
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
