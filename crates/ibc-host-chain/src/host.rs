//! The host-state chain (DESIGN §6): every IBC transaction consumes the current host state and
//! produces the next — height + 1, the store root after the transaction's store updates, a
//! timestamp the notary vouches for — so, with the notary's uniqueness, heights are linear. The
//! host state's participants are the host operators: every host transaction needs their
//! signatures and the notary's.

use kh_ledger::{Contract, ContractId, LedgerTransaction, PublicKey, TransactionState};
use serde::{Deserialize, Serialize};

use crate::store::{Update, empty_root, verify_transition};

/// The host contract's id.
pub const HOST_CONTRACT: &str = "kakehashi.ibc.host.v1";

/// Longest time window of a host transaction: its timestamp is the notary's word within it.
pub const MAX_HOST_WINDOW_MS: u64 = 60_000;

/// The host contract's id as a [`ContractId`].
pub fn host_contract_id() -> ContractId {
    ContractId(HOST_CONTRACT.into())
}

/// One host state: the IBC store's commitment at a height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The height (0 at genesis, then + 1 per host transaction).
    pub height: u64,
    /// The store root at this height.
    pub store_root: [u8; 32],
    /// Unix milliseconds, inside the transaction's time window (checked by the notary).
    pub timestamp_ms: u64,
    /// The host operators (the state's participants), whose signatures every host transaction
    /// carries.
    pub operators: Vec<PublicKey>,
}

/// What a host transaction does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostCommand {
    /// Creates the host: height 0, the empty store.
    Genesis,
    /// Applies store updates (ordered by key hash) to the consumed host state's store, with
    /// the proof that they lead to the new root.
    Apply {
        /// The updates.
        updates: Vec<Update>,
        /// The JMT update proof (borsh, as `jmt` encodes it).
        proof: Vec<u8>,
    },
}

/// The host contract.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostContract;

fn decode_state(s: &TransactionState) -> Result<HostState, String> {
    s.decode()
        .map_err(|e| format!("a host state does not decode: {e}"))
}

impl Contract for HostContract {
    fn id(&self) -> ContractId {
        host_contract_id()
    }

    /// Exactly one host command, one host output and (after genesis) one host input; the
    /// height one more; the same operators, all signing, as the output's participants; a
    /// timestamp inside a bounded time window, not before the previous one; and the new root
    /// proven from the old one by the command's updates.
    fn verify(&self, tx: &LedgerTransaction) -> Result<(), String> {
        let id = host_contract_id();
        let commands: Vec<HostCommand> = tx
            .commands_of(&id)
            .map(|c| {
                bcs::from_bytes(&c.data).map_err(|e| format!("a host command does not decode: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let [command] = commands.as_slice() else {
            return Err(format!(
                "a host transaction has exactly one host command ({} here)",
                commands.len()
            ));
        };
        let inputs: Vec<HostState> = tx
            .inputs
            .iter()
            .filter(|s| s.state.contract == id)
            .map(|s| decode_state(&s.state))
            .collect::<Result<_, _>>()?;
        let outputs: Vec<&TransactionState> =
            tx.outputs.iter().filter(|s| s.contract == id).collect();
        let [output] = outputs.as_slice() else {
            return Err(format!(
                "a host transaction produces exactly one host state ({} here)",
                outputs.len()
            ));
        };
        let next = decode_state(output)?;
        if next.operators.is_empty() {
            return Err("the host has no operators".into());
        }
        let mut sorted = next.operators.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != next.operators.len() {
            return Err("an operator is listed twice".into());
        }
        if output.participants != next.operators {
            return Err("the host state's participants are its operators".into());
        }
        if let Some(k) = next.operators.iter().find(|k| !tx.signers.contains(k)) {
            return Err(format!("host operator {k} does not sign"));
        }
        let Some(window) = tx.time_window else {
            return Err("a host transaction has a time window".into());
        };
        let (Some(from), Some(until)) = (window.from_ms, window.until_ms) else {
            return Err("a host transaction's time window is bounded on both sides".into());
        };
        if until.saturating_sub(from) > MAX_HOST_WINDOW_MS {
            return Err(format!(
                "a host transaction's time window is at most {MAX_HOST_WINDOW_MS} ms"
            ));
        }
        if !window.contains(next.timestamp_ms) {
            return Err("the host timestamp is outside the transaction's time window".into());
        }
        match command {
            HostCommand::Genesis => {
                if !inputs.is_empty() {
                    return Err("a genesis consumes no host state".into());
                }
                if next.height != 0 || next.store_root != empty_root() {
                    return Err("a genesis host state is height 0 with the empty store".into());
                }
            }
            HostCommand::Apply { updates, proof } => {
                let [prev] = inputs.as_slice() else {
                    return Err(format!(
                        "a host transaction consumes exactly one host state ({} here)",
                        inputs.len()
                    ));
                };
                if next.height != prev.height.saturating_add(1) || prev.height == u64::MAX {
                    return Err(format!(
                        "height {} does not follow {}",
                        next.height, prev.height
                    ));
                }
                if next.operators != prev.operators {
                    return Err("the host operators cannot change in an IBC transaction".into());
                }
                if next.timestamp_ms < prev.timestamp_ms {
                    return Err("the host timestamp goes back".into());
                }
                verify_transition(prev.store_root, next.store_root, updates, proof)?;
            }
        }
        Ok(())
    }
}
