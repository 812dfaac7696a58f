//! The stablecoin app: a fungible token issued by a bank and held by accounts' keys.
//!
//! Owns: the stablecoin contract (issue, move, redeem), coin selection on the vault's soft
//! locks, the payment and split builders, the flows `stablecoin.issue`, `stablecoin.pay`,
//! `stablecoin.split` and `stablecoin.redeem` with the payee's `account-key` responder, the
//! issuer check (coins are issued by a network member under its own key) and the co-signing
//! rule (a bank co-signs redemptions of the coins it issued). Written only against
//! `kh-ledger`'s app seam ([`kh_ledger::App`]). Also the payments' crash campaign
//! ([`campaign`]).

pub mod campaign;
mod contract;
mod flows;
mod payment;

use std::sync::Arc;

use kh_ledger::{
    App, Contract, FlowLogic, LedgerTransaction, NetworkParameters, PublicKey, ServiceHub,
    StateAndRef, StateIndex, StoreError, TransactionState, Vault, VaultError,
};
use uuid::Uuid;

pub use contract::{
    STABLECOIN, StablecoinCommand, StablecoinContract, StablecoinState, stablecoin_id,
};
pub use flows::{ACCOUNT_KEY_TOPIC, StablecoinFlow};
pub use payment::{PAYMENT_LOCK_MS, PaymentError, build_payment, build_split, pay_local};

/// The app's name in node configurations.
pub const APP_NAME: &str = "stablecoin";

/// The stablecoin app, as registered with a node.
#[derive(Debug, Clone, Copy, Default)]
pub struct StablecoinApp;

impl StablecoinApp {
    /// The app, ready for [`kh_ledger::NodeConfig::apps`].
    pub fn arc() -> Arc<dyn App> {
        Arc::new(Self)
    }
}

/// The coins among `states` (states of other contracts are skipped).
fn coins<'a>(
    states: impl Iterator<Item = &'a TransactionState>,
) -> Result<Vec<StablecoinState>, String> {
    states
        .filter(|s| s.contract == stablecoin_id())
        .map(|s| s.decode().map_err(|e| format!("bad coin: {e}")))
        .collect()
}

impl App for StablecoinApp {
    fn name(&self) -> &str {
        APP_NAME
    }

    fn contracts(&self) -> Vec<Arc<dyn Contract>> {
        vec![Arc::new(StablecoinContract)]
    }

    fn flows(&self) -> Vec<Arc<dyn FlowLogic>> {
        flows::all()
    }

    fn index(&self, state: &TransactionState) -> Option<StateIndex> {
        let coin: StablecoinState = state.decode().ok()?;
        Some(StateIndex {
            owner: Some(coin.owner),
            quantity: coin.amount,
        })
    }

    /// Every coin a transaction touches was issued by a member of the network under that
    /// member's own key.
    fn check(&self, network: &NetworkParameters, tx: &LedgerTransaction) -> Result<(), String> {
        let states = tx
            .inputs
            .iter()
            .chain(&tx.references)
            .map(|s| &s.state)
            .chain(&tx.outputs);
        for coin in coins(states)? {
            if network.node(&coin.issuer).map(|p| p.owning_key) != Some(coin.issuer_key) {
                return Err(format!(
                    "coins issued by {} with key {}, which is not that node of the network",
                    coin.issuer, coin.issuer_key
                ));
            }
        }
        Ok(())
    }

    /// A bank co-signs only redemptions of coins it issued.
    fn cosign(&self, hub: &ServiceHub, tx: &LedgerTransaction) -> Result<(), String> {
        let id = stablecoin_id();
        let redeem_only = tx.commands_of(&id).all(|c| {
            matches!(
                bcs::from_bytes::<StablecoinCommand>(&c.data),
                Ok(StablecoinCommand::Redeem { .. })
            )
        });
        if !redeem_only {
            return Err("this node only co-signs redemptions".into());
        }
        let me = hub.identity_key().public();
        for input in tx.inputs.iter().filter(|s| s.state.contract == id) {
            let coin: StablecoinState = input.state.decode().map_err(|e| e.to_string())?;
            if coin.issuer_key != me {
                return Err(format!(
                    "input {} was not issued by this node",
                    input.reference
                ));
            }
        }
        Ok(())
    }

    fn respond<'a>(
        &'a self,
        hub: &'a ServiceHub,
        _from: &'a kh_ledger::PartyName,
        topic: &'a str,
        payload: &'a [u8],
    ) -> kh_ledger::BoxFuture<'a, Result<Vec<u8>, kh_ledger::FlowError>> {
        Box::pin(flows::respond(hub, topic, payload))
    }
}

/// Coin queries and selection on a vault.
pub trait CoinVault {
    /// The unconsumed stablecoin balance of `owner`.
    fn balance(
        &self,
        owner: &PublicKey,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send;
    /// Coin selection under the soft lock `lock` for `ttl_ms`: unlocked coins of `owner`,
    /// largest first, until they cover `amount`.
    fn select_coins(
        &self,
        owner: &PublicKey,
        amount: u64,
        lock: Uuid,
        ttl_ms: u64,
    ) -> impl std::future::Future<Output = Result<Vec<StateAndRef>, VaultError>> + Send;
}

impl CoinVault for Vault {
    async fn balance(&self, owner: &PublicKey) -> Result<u64, StoreError> {
        self.quantity(&stablecoin_id(), owner).await
    }

    async fn select_coins(
        &self,
        owner: &PublicKey,
        amount: u64,
        lock: Uuid,
        ttl_ms: u64,
    ) -> Result<Vec<StateAndRef>, VaultError> {
        self.select_and_lock(&stablecoin_id(), owner, amount, lock, ttl_ms)
            .await
    }
}
