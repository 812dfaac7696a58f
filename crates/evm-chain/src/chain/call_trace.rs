//! geth's `callTracer` as a revm inspector: the tree of calls and creations a transaction
//! makes, with gas, input, output, errors and decoded revert reasons (`debug_traceTransaction`
//! and `debug_traceCall` with `{"tracer": "callTracer"}`).

use alloy_primitives::{Address, B256, Bytes, Log, U64, U256};
use revm::Inspector;
use revm::context::CreateScheme;
use revm::context_interface::{ContextTr, JournalTr};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::{
    CallInputs, CallOutcome as FrameCallOutcome, CallScheme, CreateInputs, CreateOutcome,
    InstructionResult, InterpreterResult,
};
use serde::{Deserialize, Serialize};

use super::trace::{MAX_TRACE_BYTES, TraceError};

/// Most frames (calls, creations, self-destructs) one call trace may hold.
pub(crate) const MAX_CALL_FRAMES: usize = 100_000;

/// `tracerConfig` of geth's call tracer.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CallTracerOptions {
    /// Only the transaction's own frame, without its inner calls.
    #[serde(default)]
    pub only_top_call: bool,
    /// Include the logs each frame emitted (those of failed frames are dropped, as geth).
    #[serde(default)]
    pub with_log: bool,
}

/// A log in a call frame (`withLog`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallLog {
    /// Emitting contract.
    pub address: Address,
    /// Topics.
    pub topics: Vec<B256>,
    /// Data.
    pub data: Bytes,
    /// Number of inner calls of the frame made before the log.
    pub position: U64,
}

/// One frame of geth's call trace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallFrame {
    /// `CALL`, `STATICCALL`, `DELEGATECALL`, `CALLCODE`, `CREATE`, `CREATE2` or `SELFDESTRUCT`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Caller.
    pub from: Address,
    /// Callee, or the created contract's address (none when the creation failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Address>,
    /// Value passed (none for `STATICCALL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<U256>,
    /// Gas given to the frame (for the transaction's frame: its gas limit).
    pub gas: U64,
    /// Gas the frame used (for the transaction's frame: the transaction's gas used).
    pub gas_used: U64,
    /// Call data or init code.
    pub input: Bytes,
    /// Return or revert data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Bytes>,
    /// Why the frame failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The reason of a revert with `Error(string)` or `Panic(uint256)` data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_reason: Option<String>,
    /// Inner frames, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallFrame>,
    /// Logs emitted by this frame itself (`withLog`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<CallLog>,
}

impl CallFrame {
    fn new(kind: &'static str, from: Address, to: Option<Address>, value: Option<U256>) -> Self {
        Self {
            kind,
            from,
            to,
            value,
            gas: U64::ZERO,
            gas_used: U64::ZERO,
            input: Bytes::new(),
            output: None,
            error: None,
            revert_reason: None,
            calls: Vec::new(),
            logs: Vec::new(),
        }
    }

    fn clear_logs(&mut self) {
        self.logs.clear();
        for c in &mut self.calls {
            c.clear_logs();
        }
    }
}

/// geth's message for a frame that ended with `result` (not a success).
fn error_message(result: InstructionResult) -> String {
    use InstructionResult as R;
    match result {
        R::Revert => "execution reverted".into(),
        R::OutOfGas
        | R::MemoryOOG
        | R::MemoryLimitOOG
        | R::PrecompileOOG
        | R::InvalidOperandOOG
        | R::ReentrancySentryOOG => "out of gas".into(),
        R::OpcodeNotFound | R::InvalidFEOpcode | R::NotActivated => "invalid opcode".into(),
        R::InvalidJump => "invalid jump destination".into(),
        R::StackUnderflow => "stack underflow".into(),
        R::StackOverflow => "stack limit reached 1024 (1023)".into(),
        R::StateChangeDuringStaticCall | R::CallNotAllowedInsideStatic => "write protection".into(),
        R::CallTooDeep => "max call depth exceeded".into(),
        R::OutOfFunds => "insufficient balance for transfer".into(),
        R::CreateCollision => "contract address collision".into(),
        R::CreateContractSizeLimit => "max code size exceeded".into(),
        R::CreateInitCodeSizeLimit => "max initcode size exceeded".into(),
        R::CreateContractStartingWithEF => "invalid code: must not begin with 0xef".into(),
        R::NonceOverflow => "nonce uint64 overflow".into(),
        R::PrecompileError => "precompiled contract failed".into(),
        other => format!("{other:?}"),
    }
}

/// The reason encoded in revert data: `Error(string)` gives its text, `Panic(uint256)` its
/// code (as geth: "assert(false)", "arithmetic underflow or overflow", ...).
pub(crate) fn revert_reason(output: &[u8]) -> Option<String> {
    if let Some(data) = output.strip_prefix(&[0x08, 0xc3, 0x79, 0xa0][..]) {
        let offset = usize::try_from(U256::from_be_slice(data.get(..32)?)).ok()?;
        let len_word = data.get(offset..offset.checked_add(32)?)?;
        let len = usize::try_from(U256::from_be_slice(len_word)).ok()?;
        let start = offset.checked_add(32)?;
        let text = data.get(start..start.checked_add(len)?)?;
        return String::from_utf8(text.to_vec()).ok();
    }
    if let Some(data) = output.strip_prefix(&[0x4e, 0x48, 0x7b, 0x71][..]) {
        let code = U256::from_be_slice(data.get(..32)?);
        let known = match u64::try_from(code) {
            Ok(0x00) => "generic panic",
            Ok(0x01) => "assert(false)",
            Ok(0x11) => "arithmetic underflow or overflow",
            Ok(0x12) => "division or modulo by zero",
            Ok(0x21) => "enum overflow",
            Ok(0x22) => "invalid encoded storage byte array accessed",
            Ok(0x31) => "out-of-bounds array access; popping on an empty array",
            Ok(0x32) => "out-of-bounds access of an array or bytesN",
            Ok(0x41) => "out of memory",
            Ok(0x51) => "uninitialized function",
            _ => return Some(format!("unknown panic code: {code:#x}")),
        };
        return Some(known.to_string());
    }
    None
}

/// geth's call tracer as a revm inspector, bounded in frames and recorded bytes.
#[derive(Debug, Default)]
pub(crate) struct CallTracer {
    options: CallTracerOptions,
    /// Frames entered and not yet left; the first is the transaction's.
    stack: Vec<CallFrame>,
    root: Option<CallFrame>,
    frames: usize,
    bytes: usize,
    overflow: Option<TraceError>,
}

impl CallTracer {
    /// A tracer with the given options.
    pub(crate) fn new(options: CallTracerOptions) -> Self {
        Self {
            options,
            ..Default::default()
        }
    }

    fn count(&mut self, bytes: usize) -> bool {
        self.frames += 1;
        self.bytes = self.bytes.saturating_add(bytes + 256);
        if self.frames > MAX_CALL_FRAMES {
            self.overflow.get_or_insert(TraceError::TooManyFrames);
        } else if self.bytes > MAX_TRACE_BYTES {
            self.overflow.get_or_insert(TraceError::TooLarge);
        }
        self.overflow.is_none()
    }

    fn enter(&mut self, frame: CallFrame) {
        // Past a limit the frame is still pushed (so enters and exits stay paired) but
        // without its data; the trace is refused at the end anyway.
        let keep = self.count(frame.input.len());
        let mut frame = frame;
        if !keep {
            frame.input = Bytes::new();
        }
        self.stack.push(frame);
    }

    fn exit(&mut self, result: &InterpreterResult, created: Option<Address>) {
        let Some(mut frame) = self.stack.pop() else {
            return;
        };
        frame.gas_used = U64::from(result.gas.total_gas_spent());
        if created.is_some() {
            frame.to = created;
        }
        if result.result.is_ok() {
            if !result.output.is_empty() && self.count(result.output.len()) {
                frame.output = Some(result.output.clone());
            }
        } else {
            frame.error = Some(error_message(result.result));
            // A failed creation made no contract: geth leaves `to` out.
            if frame.kind.starts_with("CREATE") {
                frame.to = None;
            }
            if result.result.is_revert() {
                if !result.output.is_empty() && self.count(result.output.len()) {
                    frame.output = Some(result.output.clone());
                }
                frame.revert_reason = revert_reason(&result.output);
            } else {
                // A halt consumes all the frame's gas.
                frame.gas_used = frame.gas;
            }
            frame.clear_logs();
        }
        match self.stack.last_mut() {
            Some(parent) => parent.calls.push(frame),
            None => self.root = Some(frame),
        }
    }

    /// The trace of the transaction's frame, its gas set to the transaction's `gas_limit` and
    /// `gas_used` (geth reports the transaction's figures, intrinsic gas included, at the top).
    pub(crate) fn finish(self, gas_limit: u64, gas_used: u64) -> Result<CallFrame, TraceError> {
        if let Some(e) = self.overflow {
            return Err(e);
        }
        let mut root = self.root.ok_or(TraceError::NoFrame)?;
        root.gas = U64::from(gas_limit);
        root.gas_used = U64::from(gas_used);
        if self.options.only_top_call {
            root.calls.clear();
        }
        Ok(root)
    }
}

impl<CTX: ContextTr> Inspector<CTX, EthInterpreter> for CallTracer {
    fn call(&mut self, context: &mut CTX, inputs: &mut CallInputs) -> Option<FrameCallOutcome> {
        let (kind, value) = match inputs.scheme {
            CallScheme::Call => ("CALL", Some(inputs.value.get())),
            CallScheme::CallCode => ("CALLCODE", Some(inputs.value.get())),
            CallScheme::DelegateCall => ("DELEGATECALL", Some(inputs.value.get())),
            CallScheme::StaticCall => ("STATICCALL", None),
        };
        let mut frame = CallFrame::new(kind, inputs.caller, Some(inputs.target_address), value);
        frame.gas = U64::from(inputs.gas_limit);
        frame.input = inputs.input.bytes(context);
        self.enter(frame);
        None
    }

    fn call_end(&mut self, _: &mut CTX, _: &CallInputs, outcome: &mut FrameCallOutcome) {
        self.exit(&outcome.result, None);
    }

    fn create(&mut self, context: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        let kind = match inputs.scheme() {
            CreateScheme::Create2 { .. } => "CREATE2",
            _ => "CREATE",
        };
        // The creator's nonce is not bumped yet: the address the creation will use.
        let to = context
            .journal_mut()
            .load_account(inputs.caller())
            .ok()
            .map(|a| a.data.info.nonce)
            .map(|nonce| inputs.created_address(nonce));
        let mut frame = CallFrame::new(kind, inputs.caller(), to, Some(inputs.value()));
        frame.gas = U64::from(inputs.gas_limit());
        frame.input = inputs.init_code().clone();
        self.enter(frame);
        None
    }

    fn create_end(&mut self, _: &mut CTX, _: &CreateInputs, outcome: &mut CreateOutcome) {
        self.exit(&outcome.result, outcome.address);
    }

    fn selfdestruct(&mut self, contract: Address, target: Address, value: U256) {
        if !self.count(0) {
            return;
        }
        let frame = CallFrame::new("SELFDESTRUCT", contract, Some(target), Some(value));
        if let Some(parent) = self.stack.last_mut() {
            parent.calls.push(frame);
        }
    }

    fn log(&mut self, _: &mut CTX, log: Log) {
        if !self.options.with_log || !self.count(log.data.data.len()) {
            return;
        }
        if let Some(frame) = self.stack.last_mut() {
            frame.logs.push(CallLog {
                address: log.address,
                topics: log.data.topics().to_vec(),
                data: log.data.data.clone(),
                position: U64::from(frame.calls.len()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revert_reasons_are_decoded_like_geth() {
        // Error("nope")
        let mut data = vec![0x08, 0xc3, 0x79, 0xa0];
        data.extend_from_slice(&U256::from(32).to_be_bytes::<32>());
        data.extend_from_slice(&U256::from(4).to_be_bytes::<32>());
        let mut text = [0u8; 32];
        text[..4].copy_from_slice(b"nope");
        data.extend_from_slice(&text);
        assert_eq!(revert_reason(&data).as_deref(), Some("nope"));
        // Panic(0x11)
        let mut panic = vec![0x4e, 0x48, 0x7b, 0x71];
        panic.extend_from_slice(&U256::from(0x11).to_be_bytes::<32>());
        assert_eq!(
            revert_reason(&panic).as_deref(),
            Some("arithmetic underflow or overflow")
        );
        // Truncated or foreign data: no reason.
        assert_eq!(revert_reason(&data[..40]), None);
        assert_eq!(revert_reason(&[0xde, 0xad, 0xbe, 0xef]), None);
        // A length past the data is refused, not read out of bounds.
        let mut long = data.clone();
        long[4 + 32..4 + 64].copy_from_slice(&U256::MAX.to_be_bytes::<32>());
        assert_eq!(revert_reason(&long), None);
    }
}
