//! A single-node revm chain for the contract tests: funded accounts, transactions committed one
//! by one, deploys, typed calls and storage reads.
#![allow(dead_code, reason = "each test binary uses a part of the helper")]

use alloy_primitives::{Address, Bytes, Log, TxKind, U256};
use alloy_sol_types::SolCall;
use revm::context::TxEnv;
use revm::context::result::ExecutionResult;
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{Context, DatabaseRef, ExecuteCommitEvm, MainBuilder, MainContext};

pub(crate) const OWNER: Address = Address::repeat_byte(0x0a);
pub(crate) const ALICE: Address = Address::repeat_byte(0xa1);
pub(crate) const BOB: Address = Address::repeat_byte(0xb0);

pub(crate) type Evm = revm::handler::MainnetEvm<revm::handler::MainnetContext<CacheDB<EmptyDB>>>;

pub(crate) struct Chain {
    pub(crate) evm: Evm,
    pub(crate) nonces: std::collections::HashMap<Address, u64>,
    /// Gas used by the last transaction (intrinsic gas included).
    pub(crate) last_gas: u64,
}

pub(crate) enum Outcome {
    Ok(Bytes, Vec<Log>),
    Revert(Bytes),
}

impl Chain {
    pub(crate) fn new() -> Self {
        let mut db = CacheDB::<EmptyDB>::default();
        for a in [OWNER, ALICE, BOB] {
            db.insert_account_info(
                a,
                AccountInfo {
                    balance: U256::from(10u64).pow(U256::from(20u64)),
                    ..Default::default()
                },
            );
        }
        let evm = Context::mainnet()
            .with_db(db)
            .modify_cfg_chained(|c| c.set_spec_and_mainnet_gas_params(SpecId::CANCUN))
            .build_mainnet();
        Self {
            evm,
            nonces: Default::default(),
            last_gas: 0,
        }
    }

    pub(crate) fn exec(&mut self, from: Address, kind: TxKind, data: Vec<u8>) -> Outcome {
        let nonce = self.nonces.entry(from).or_default();
        let tx = TxEnv {
            caller: from,
            kind,
            data: data.into(),
            gas_limit: 5_000_000,
            nonce: *nonce,
            ..Default::default()
        };
        *nonce += 1;
        let result = self.evm.transact_commit(tx).unwrap();
        self.last_gas = result.tx_gas_used();
        match result {
            ExecutionResult::Success { output, logs, .. } => Outcome::Ok(output.into_data(), logs),
            ExecutionResult::Revert { output, .. } => Outcome::Revert(output),
            ExecutionResult::Halt { reason, .. } => panic!("halt: {reason:?}"),
        }
    }

    pub(crate) fn deploy(&mut self, from: Address, code: &[u8], args: Vec<u8>) -> Address {
        let nonce = *self.nonces.get(&from).unwrap_or(&0);
        let mut data = code.to_vec();
        data.extend(args);
        match self.exec(from, TxKind::Create, data) {
            Outcome::Ok(..) => from.create(nonce),
            Outcome::Revert(r) => panic!("deploy reverted: {r}"),
        }
    }

    pub(crate) fn call<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: C,
    ) -> Result<(C::Return, Vec<Log>), Bytes> {
        match self.exec(from, TxKind::Call(to), call.abi_encode()) {
            Outcome::Ok(out, logs) => Ok((C::abi_decode_returns(&out).unwrap(), logs)),
            Outcome::Revert(r) => Err(r),
        }
    }

    /// The current block number and timestamp (seconds).
    pub(crate) fn block(&self) -> (u64, u64) {
        let b = &self.evm.ctx.block;
        (b.number.to::<u64>(), b.timestamp.to::<u64>())
    }

    /// Moves to block `number` at `timestamp` (seconds): the next transactions run in it.
    pub(crate) fn set_block(&mut self, number: u64, timestamp: u64) {
        self.evm.ctx.block.number = U256::from(number);
        self.evm.ctx.block.timestamp = U256::from(timestamp);
    }

    pub(crate) fn code(&self, address: Address) -> Bytes {
        let db = &self.evm.ctx.journaled_state.database;
        let info = db.basic_ref(address).unwrap().unwrap();
        db.code_by_hash_ref(info.code_hash)
            .unwrap()
            .original_bytes()
    }

    /// Puts `code` at `address` as genesis state (no deploying transaction).
    pub(crate) fn install_code(&mut self, address: Address, code: Bytes) {
        self.evm.ctx.journaled_state.database.insert_account_info(
            address,
            AccountInfo {
                code: Some(revm::bytecode::Bytecode::new_raw(code)),
                ..Default::default()
            },
        );
    }

    pub(crate) fn storage(&self, address: Address, slot: U256) -> U256 {
        self.evm
            .ctx
            .journaled_state
            .database
            .storage_ref(address, slot)
            .unwrap()
    }
}
