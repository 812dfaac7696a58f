//! Execution inspectors: the access-list collector behind `eth_createAccessList` and geth's
//! default struct logger behind `debug_traceTransaction` / `debug_traceCall`.

use std::collections::{BTreeMap, BTreeSet};

use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{Address, B256, Bytes, U256};
use revm::Inspector;
use revm::bytecode::opcode::{self, OpCode};
use revm::context_interface::{ContextTr, JournalTr};
use revm::interpreter::Interpreter;
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_types::{InputsTr, Jumps, LoopControl};
use serde::Serialize;

/// Highest precompile address on Cancun (0x01..=0x0a).
const LAST_PRECOMPILE: u64 = 0x0a;

fn is_precompile(address: &Address) -> bool {
    let word = U256::from_be_slice(address.as_slice());
    word >= U256::from(1) && word <= U256::from(LAST_PRECOMPILE)
}

fn word_address(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

/// Collects the accounts and storage slots a call touches (geth's access-list tracer rules):
/// slots read or written by `SLOAD`/`SSTORE` of every contract, and accounts named by
/// `BALANCE`, `EXTCODE*`, `SELFDESTRUCT` and the `CALL` family, except the excluded ones
/// (sender, recipient, precompiles).
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessListCollector {
    excluded: BTreeSet<Address>,
    list: BTreeMap<Address, BTreeSet<B256>>,
}

impl AccessListCollector {
    /// A collector starting from `initial`, never listing `excluded` accounts on their own.
    pub(crate) fn new(initial: &AccessList, excluded: impl IntoIterator<Item = Address>) -> Self {
        let excluded: BTreeSet<Address> = excluded.into_iter().collect();
        let mut list: BTreeMap<Address, BTreeSet<B256>> = BTreeMap::new();
        for item in initial.iter() {
            if excluded.contains(&item.address) && item.storage_keys.is_empty() {
                continue;
            }
            list.entry(item.address)
                .or_default()
                .extend(item.storage_keys.iter().copied());
        }
        Self { excluded, list }
    }

    fn add_address(&mut self, address: Address) {
        if !self.excluded.contains(&address) && !is_precompile(&address) {
            self.list.entry(address).or_default();
        }
    }

    /// The collected list, ordered by address and slot.
    pub(crate) fn access_list(&self) -> AccessList {
        AccessList(
            self.list
                .iter()
                .map(|(address, keys)| AccessListItem {
                    address: *address,
                    storage_keys: keys.iter().copied().collect(),
                })
                .collect(),
        )
    }
}

impl<CTX> Inspector<CTX, EthInterpreter> for AccessListCollector {
    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, _context: &mut CTX) {
        let op = interp.bytecode.opcode();
        let top = |n: usize| interp.stack.peek(n).ok();
        match op {
            opcode::SLOAD | opcode::SSTORE => {
                if let Some(slot) = top(0) {
                    let contract = interp.input.target_address();
                    self.list
                        .entry(contract)
                        .or_default()
                        .insert(B256::from(slot));
                }
            }
            opcode::BALANCE
            | opcode::EXTCODESIZE
            | opcode::EXTCODECOPY
            | opcode::EXTCODEHASH
            | opcode::SELFDESTRUCT => {
                if let Some(word) = top(0) {
                    self.add_address(word_address(word));
                }
            }
            opcode::CALL | opcode::CALLCODE | opcode::DELEGATECALL | opcode::STATICCALL => {
                if let Some(word) = top(1) {
                    self.add_address(word_address(word));
                }
            }
            _ => {}
        }
    }
}

/// Options of geth's struct logger (`debug_trace*` second parameter).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StructLogOptions {
    /// Include the memory of each step.
    pub enable_memory: bool,
    /// Leave out the stack.
    pub disable_stack: bool,
    /// Leave out the storage of `SLOAD`/`SSTORE` steps.
    pub disable_storage: bool,
}

/// One step of geth's struct log.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StructLog {
    /// Program counter.
    pub pc: u64,
    /// Opcode name.
    pub op: String,
    /// Gas left before the step.
    pub gas: u64,
    /// Gas the step cost.
    pub gas_cost: u64,
    /// Call depth (1 for the transaction's own frame).
    pub depth: u64,
    /// Stack before the step, bottom first, as hex quantities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<Vec<U256>>,
    /// Memory before the step, in 32-byte hex words (without `0x`, as geth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Vec<String>>,
    /// Storage of the contract known so far (`SLOAD`/`SSTORE` steps only), hex words without
    /// `0x`, as geth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<BTreeMap<String, String>>,
    /// Why the step failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a struct log could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TraceError {
    /// More steps than [`MAX_STRUCT_LOGS`].
    #[error("trace exceeds {MAX_STRUCT_LOGS} steps")]
    TooManySteps,
    /// More recorded stack/memory (or call data) than [`MAX_TRACE_BYTES`].
    #[error("trace exceeds {MAX_TRACE_BYTES} bytes of recorded data")]
    TooLarge,
    /// More call frames than [`super::call_trace::MAX_CALL_FRAMES`].
    #[error("trace exceeds {} call frames", super::call_trace::MAX_CALL_FRAMES)]
    TooManyFrames,
    /// The execution entered no frame (it failed before running).
    #[error("the transaction did not execute")]
    NoFrame,
}

/// Most struct-log entries one trace may hold.
pub(crate) const MAX_STRUCT_LOGS: usize = 100_000;
/// Most bytes of stack and memory one trace may record.
pub(crate) const MAX_TRACE_BYTES: usize = 256 << 20;

/// geth's default struct logger as a revm inspector, bounded in steps and recorded bytes.
#[derive(Debug, Default)]
pub(crate) struct StructLogger {
    options: StructLogOptions,
    logs: Vec<StructLog>,
    /// Gas left before the step being executed, and whether that step is recorded.
    pending: Option<u64>,
    storage: BTreeMap<Address, BTreeMap<U256, U256>>,
    bytes: usize,
    overflow: Option<TraceError>,
}

fn word_hex(word: U256) -> String {
    format!("{:064x}", word)
}

impl StructLogger {
    /// A logger with the given options.
    pub(crate) fn new(options: StructLogOptions) -> Self {
        Self {
            options,
            ..Default::default()
        }
    }

    /// The recorded steps, or why the trace was cut.
    pub(crate) fn finish(self) -> Result<Vec<StructLog>, TraceError> {
        match self.overflow {
            Some(e) => Err(e),
            None => Ok(self.logs),
        }
    }
}

impl<CTX: ContextTr> Inspector<CTX, EthInterpreter> for StructLogger {
    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, context: &mut CTX) {
        self.pending = None;
        if self.overflow.is_some() {
            return;
        }
        if self.logs.len() >= MAX_STRUCT_LOGS {
            self.overflow = Some(TraceError::TooManySteps);
            return;
        }
        let op = interp.bytecode.opcode();
        let gas = interp.gas.remaining();
        let stack = (!self.options.disable_stack).then(|| interp.stack.data().clone());
        let memory = self.options.enable_memory.then(|| {
            interp
                .memory
                .context_memory()
                .chunks(32)
                .map(|c| {
                    let mut word = [0u8; 32];
                    word[..c.len()].copy_from_slice(c);
                    alloy_primitives::hex::encode(word)
                })
                .collect::<Vec<_>>()
        });
        self.bytes += stack.as_ref().map_or(0, |s| s.len() * 32)
            + memory.as_ref().map_or(0, |m| m.len() * 64)
            + 64;
        if self.bytes > MAX_TRACE_BYTES {
            self.overflow = Some(TraceError::TooLarge);
            return;
        }
        let mut storage = None;
        if !self.options.disable_storage && (op == opcode::SLOAD || op == opcode::SSTORE) {
            let contract = interp.input.target_address();
            let known = self.storage.entry(contract).or_default();
            if op == opcode::SSTORE {
                if let (Ok(key), Ok(value)) = (interp.stack.peek(0), interp.stack.peek(1)) {
                    known.insert(key, value);
                }
            } else if let Ok(key) = interp.stack.peek(0) {
                // The loaded value is filled in at step_end, as geth reports it.
                known.entry(key).or_default();
            }
            storage = Some(BTreeMap::new());
        }
        self.logs.push(StructLog {
            pc: interp.bytecode.pc() as u64,
            op: OpCode::new(op).map_or_else(
                || format!("opcode 0x{op:02x} not defined"),
                |o| o.as_str().to_string(),
            ),
            gas,
            gas_cost: 0,
            depth: context.journal_mut().depth() as u64,
            stack,
            memory,
            storage,
            error: None,
        });
        self.pending = Some(gas);
    }

    fn step_end(&mut self, interp: &mut Interpreter<EthInterpreter>, _context: &mut CTX) {
        let Some(gas_before) = self.pending.take() else {
            return;
        };
        let Some(log) = self.logs.last_mut() else {
            return;
        };
        log.gas_cost = gas_before.saturating_sub(interp.gas.remaining());
        if log.op == "SLOAD" {
            let contract = interp.input.target_address();
            let known = self.storage.entry(contract).or_default();
            if let (Some(key), Ok(value)) = (
                log.stack.as_ref().and_then(|s| s.last().copied()),
                interp.stack.peek(0),
            ) {
                known.insert(key, value);
            }
        }
        if log.storage.is_some() {
            let contract = interp.input.target_address();
            if let Some(known) = self.storage.get(&contract) {
                log.storage = Some(
                    known
                        .iter()
                        .map(|(k, v)| (word_hex(*k), word_hex(*v)))
                        .collect(),
                );
            }
        }
        if let Some(result) = interp
            .bytecode
            .instruction_result()
            .filter(|r| r.is_halt() || r.is_revert())
        {
            log.error = Some(format!("{result:?}"));
        }
    }
}

/// geth's struct-logger result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StructTrace {
    /// Gas used by the transaction.
    pub gas: u64,
    /// Whether it reverted or halted.
    pub failed: bool,
    /// Return (or revert) data, hex without `0x` as geth.
    pub return_value: String,
    /// The steps.
    pub(crate) struct_logs: Vec<StructLog>,
}

impl StructTrace {
    /// Builds the result from an execution's outcome and the logger's steps.
    pub(crate) fn new(gas: u64, failed: bool, output: &Bytes, struct_logs: Vec<StructLog>) -> Self {
        Self {
            gas,
            failed,
            return_value: alloy_primitives::hex::encode(output),
            struct_logs,
        }
    }
}
