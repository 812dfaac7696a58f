//! Contracts: deterministic verification of a transaction with its inputs resolved, and the
//! registry that maps contract ids to their code.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::TxId;
use crate::identity::PublicKey;
use crate::tx::{Command, ContractId, SignedTransaction, StateRef, TimeWindow, TransactionState};

/// A state with the reference it is stored under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateAndRef {
    /// The state.
    pub state: TransactionState,
    /// Where it was produced.
    pub reference: StateRef,
}

/// A transaction with its input and reference states resolved: what contracts verify.
#[derive(Debug, Clone)]
pub struct LedgerTransaction {
    /// Transaction id.
    pub id: TxId,
    /// Consumed states.
    pub inputs: Vec<StateAndRef>,
    /// Reference states.
    pub references: Vec<StateAndRef>,
    /// Produced states.
    pub outputs: Vec<TransactionState>,
    /// Commands.
    pub commands: Vec<Command>,
    /// Time window.
    pub time_window: Option<TimeWindow>,
    /// Keys that signed (or will sign) the transaction.
    pub signers: BTreeSet<PublicKey>,
}

impl LedgerTransaction {
    /// Resolves `stx` with `resolve` (None when a state is unknown).
    pub fn resolve(
        stx: &SignedTransaction,
        mut resolve: impl FnMut(&StateRef) -> Option<TransactionState>,
    ) -> Result<Self, ContractError> {
        let mut get = |r: &StateRef| {
            resolve(r)
                .map(|state| StateAndRef {
                    state,
                    reference: *r,
                })
                .ok_or(ContractError::UnknownState(*r))
        };
        Ok(Self {
            id: stx.id(),
            inputs: stx
                .tx
                .inputs
                .iter()
                .map(&mut get)
                .collect::<Result<_, _>>()?,
            references: stx
                .tx
                .references
                .iter()
                .map(&mut get)
                .collect::<Result<_, _>>()?,
            outputs: stx.tx.outputs.clone(),
            commands: stx.tx.commands.clone(),
            time_window: stx.tx.time_window,
            signers: stx.tx.required_signers(),
        })
    }

    /// The commands for `contract`.
    pub fn commands_of<'a>(
        &'a self,
        contract: &'a ContractId,
    ) -> impl Iterator<Item = &'a Command> + 'a {
        self.commands
            .iter()
            .filter(move |c| &c.contract == contract)
    }
}

/// Why a transaction is rejected by contract verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// An input or reference state is unknown to the verifier.
    #[error("unknown state {0}")]
    UnknownState(StateRef),
    /// No contract with this id is installed.
    #[error("no contract {0} is installed")]
    UnknownContract(ContractId),
    /// The contract's rules reject the transaction.
    #[error("contract {contract} rejects transaction {tx}: {reason}")]
    Rejected {
        /// The contract.
        contract: ContractId,
        /// The transaction.
        tx: TxId,
        /// The rule that failed.
        reason: String,
    },
}

/// A contract's verification code. Must be deterministic: same transaction, same answer.
pub trait Contract: Send + Sync + std::fmt::Debug {
    /// The id states and commands refer to.
    fn id(&self) -> ContractId;
    /// Accepts or rejects the transaction; `Err(reason)` names the broken rule.
    fn verify(&self, tx: &LedgerTransaction) -> Result<(), String>;
}

/// The installed contracts.
#[derive(Debug, Clone, Default)]
pub struct ContractRegistry {
    contracts: HashMap<ContractId, Arc<dyn Contract>>,
}

impl ContractRegistry {
    /// Installs a contract.
    pub fn install(&mut self, contract: Arc<dyn Contract>) {
        self.contracts.insert(contract.id(), contract);
    }

    /// Runs every contract that governs an input, output or command of `tx`.
    pub fn verify(&self, tx: &LedgerTransaction) -> Result<(), ContractError> {
        let ids: BTreeSet<&ContractId> = tx
            .inputs
            .iter()
            .map(|s| &s.state.contract)
            .chain(tx.outputs.iter().map(|s| &s.contract))
            .chain(tx.commands.iter().map(|c| &c.contract))
            .collect();
        for id in ids {
            let contract = self
                .contracts
                .get(id)
                .ok_or_else(|| ContractError::UnknownContract(id.clone()))?;
            contract
                .verify(tx)
                .map_err(|reason| ContractError::Rejected {
                    contract: id.clone(),
                    tx: tx.id,
                    reason,
                })?;
        }
        Ok(())
    }
}
