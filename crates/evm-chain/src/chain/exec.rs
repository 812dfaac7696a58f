//! The revm environment shared by block building and calls.

use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::{Address, U256};
use kh_qbft::BFT_MIX_HASH;
use revm::context::result::HaltReason;
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::database::CacheDB;
use revm::primitives::hardfork::SpecId;
use revm::{Context, MainBuilder, MainContext};

use super::{Chain, MinedTx};
use crate::state::{StateDb, WorldState};

pub(super) const CANCUN_BLOB_UPDATE_FRACTION: u64 = 3_338_477;

/// Which transaction rules an execution enforces: all of them (blocks), or those a call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Checks {
    /// Block building: every rule.
    Enforced,
    /// A simulated call: the balance always covers value (and gas × price when a price is
    /// given); the nonce and the base fee only when the request names them.
    Call {
        /// Check the request's nonce against the account.
        nonce: bool,
        /// Check the offered fee against the block's base fee.
        base_fee: bool,
    },
}

pub(super) type DevEvm<'a> =
    revm::handler::MainnetEvm<revm::handler::MainnetContext<CacheDB<StateDb<'a>>>>;

impl Chain {
    /// A Cancun EVM over `state` and the chain's block hashes.
    pub(super) fn evm<'a>(
        &'a self,
        state: &'a WorldState,
        block: BlockEnv,
        checks: Checks,
    ) -> DevEvm<'a> {
        let db = CacheDB::new(StateDb {
            state,
            block_hashes: &self.hashes,
        });
        evm_with(
            db,
            block,
            checks,
            self.spec.chain_id,
            self.spec.contract_size_limit,
        )
    }
}

pub(super) type DevContext<'a> = revm::handler::MainnetContext<CacheDB<StateDb<'a>>>;

/// A Cancun EVM over a prepared database.
pub(super) fn evm_with<'a>(
    db: CacheDB<StateDb<'a>>,
    block: BlockEnv,
    checks: Checks,
    chain_id: u64,
    contract_size_limit: usize,
) -> DevEvm<'a> {
    context_with(db, block, checks, chain_id, contract_size_limit).build_mainnet()
}

/// The Cancun context an EVM (plain or inspected) is built from.
pub(super) fn context_with<'a>(
    db: CacheDB<StateDb<'a>>,
    block: BlockEnv,
    checks: Checks,
    chain_id: u64,
    contract_size_limit: usize,
) -> DevContext<'a> {
    Context::mainnet()
        .with_db(db)
        .with_block(block)
        .modify_cfg_chained(|cfg: &mut CfgEnv| {
            cfg.chain_id = chain_id;
            cfg.set_spec_and_mainnet_gas_params(SpecId::CANCUN);
            cfg.limit_contract_code_size = Some(contract_size_limit);
            if let Checks::Call { nonce, base_fee } = checks {
                cfg.disable_nonce_check = !nonce;
                cfg.disable_base_fee = !base_fee;
            }
        })
}

/// The block environment revm executes in (Cancun, no blobs, the BFT mix hash as prevrandao).
pub(super) fn block_env(
    number: u64,
    beneficiary: Address,
    timestamp: u64,
    gas_limit: u64,
    basefee: u64,
) -> BlockEnv {
    BlockEnv {
        number: U256::from(number),
        beneficiary,
        timestamp: U256::from(timestamp),
        gas_limit,
        basefee,
        difficulty: U256::ZERO,
        prevrandao: Some(BFT_MIX_HASH),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new(0, CANCUN_BLOB_UPDATE_FRACTION)),
        ..Default::default()
    }
}

pub(super) fn halt_reason(reason: &HaltReason) -> String {
    format!("{reason:?}")
}

pub(super) fn tx_env(tx: &MinedTx) -> TxEnv {
    let e = &tx.envelope;
    TxEnv {
        tx_type: e.tx_type() as u8,
        caller: tx.from,
        gas_limit: e.gas_limit(),
        gas_price: e.max_fee_per_gas(),
        kind: e.kind(),
        value: e.value(),
        data: e.input().clone(),
        nonce: e.nonce(),
        chain_id: e.chain_id(),
        access_list: e.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: e.max_priority_fee_per_gas(),
        ..Default::default()
    }
}

/// The price per gas a transaction pays at `base_fee`.
pub fn effective_price(tx: &TxEnvelope, base_fee: u64) -> u128 {
    tx.effective_gas_price(Some(base_fee))
}
