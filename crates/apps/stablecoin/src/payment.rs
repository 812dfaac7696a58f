//! Stablecoin payments from an account: coin selection under a soft lock, the move transaction
//! with change, the owner's signature, notarisation and recording. The in-process form used by
//! a node paying from its own accounts; the distributed flow (counterparty vaults, finality
//! messaging) builds on [`build_payment`].

use std::collections::BTreeSet;

use uuid::Uuid;

use kh_ledger::{
    Command, NotarisationRequest, Notary, NotaryError, Party, PartyName, PublicKey,
    SignedTransaction, StateAndRef, StoreError, TransactionState, Vault, VaultError,
    WireTransaction,
};

use crate::CoinVault;
use crate::contract::{StablecoinCommand, StablecoinState, stablecoin_id};

/// How long a payment may hold its selected coins.
pub const PAYMENT_LOCK_MS: u64 = 30_000;

/// Why a payment failed. Nothing is spent on failure; the soft lock is released.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Coin selection failed (not enough unlocked funds) or the account is unknown.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The selected coins mix issuers or currencies, or do not decode.
    #[error("selected coins cannot be spent together: {0}")]
    Coins(String),
    /// The notary refused.
    #[error(transparent)]
    Notary(#[from] NotaryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A selected coin's producing transaction is not in the vault.
    #[error("cannot reveal input {0} to the notary: its transaction is not recorded")]
    Unresolved(String),
}

/// Builds the move transaction: `amount` to `payee`, the change back to `payer`.
pub fn build_payment(
    inputs: &[StateAndRef],
    payer: PublicKey,
    payee: PublicKey,
    amount: u64,
    notary: &Party,
) -> Result<WireTransaction, PaymentError> {
    let coins = inputs
        .iter()
        .map(|s| {
            s.state
                .decode::<StablecoinState>()
                .map_err(|e| PaymentError::Coins(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = coins
        .first()
        .ok_or_else(|| PaymentError::Coins("no coins selected".into()))?;
    if coins
        .iter()
        .any(|c| c.issuer != first.issuer || c.currency != first.currency)
    {
        return Err(PaymentError::Coins("mixed issuers or currencies".into()));
    }
    let total = coins
        .iter()
        .try_fold(0u64, |a, c| a.checked_add(c.amount))
        .ok_or_else(|| PaymentError::Coins("overflow".into()))?;
    let change = total
        .checked_sub(amount)
        .ok_or_else(|| PaymentError::Coins("selection below the amount".into()))?;
    let out = |amount, owner| {
        let coin = StablecoinState {
            amount,
            currency: first.currency.clone(),
            issuer: first.issuer.clone(),
            issuer_key: first.issuer_key,
            owner,
        };
        TransactionState {
            contract: stablecoin_id(),
            notary: notary.clone(),
            participants: vec![owner],
            // BCS encodes the coin state (no floats, maps or unbounded types).
            data: bcs::to_bytes(&coin).expect("BCS encodes a coin"),
        }
    };
    let mut outputs = vec![out(amount, payee)];
    if change > 0 {
        outputs.push(out(change, payer));
    }
    Ok(WireTransaction {
        inputs: inputs.iter().map(|s| s.reference).collect(),
        references: vec![],
        outputs,
        commands: vec![Command {
            contract: stablecoin_id(),
            data: bcs::to_bytes(&StablecoinCommand::Move).expect("BCS encodes a command"),
            signers: vec![payer],
        }],
        notary: Some(notary.clone()),
        time_window: None,
        privacy_salt: rand::random(),
    })
}

/// Builds a split: all of `inputs` (one owner) re-issued as `parts` states of near-equal
/// amounts to the same owner, so that `parts` payments can later proceed in parallel (R7).
pub fn build_split(
    inputs: &[StateAndRef],
    owner: PublicKey,
    parts: u32,
    notary: &Party,
) -> Result<WireTransaction, PaymentError> {
    let total: u64 = inputs
        .iter()
        .map(|s| {
            s.state
                .decode::<StablecoinState>()
                .map(|c| c.amount)
                .map_err(|e| PaymentError::Coins(e.to_string()))
        })
        .sum::<Result<u64, _>>()?;
    let parts = u64::from(parts.max(1)).min(total.max(1));
    let mut tx = build_payment(inputs, owner, owner, total, notary)?;
    let template = tx.outputs[0].clone();
    let coin: StablecoinState = template
        .decode()
        .map_err(|e| PaymentError::Coins(e.to_string()))?;
    tx.outputs = (0..parts)
        .map(|i| {
            let amount = total / parts + u64::from(i < total % parts);
            let piece = StablecoinState {
                amount,
                ..coin.clone()
            };
            TransactionState {
                data: bcs::to_bytes(&piece).expect("BCS encodes a coin"),
                ..template.clone()
            }
        })
        .collect();
    Ok(tx)
}

/// Pays `amount` from account `from` to `payee` through `notary` (asked as `requester`),
/// recording the result in `vault` for the keys in `relevant`.
pub async fn pay_local(
    vault: &Vault,
    notary: &Notary,
    requester: &PartyName,
    from: Uuid,
    payee: PublicKey,
    amount: u64,
    relevant: &BTreeSet<PublicKey>,
) -> Result<SignedTransaction, PaymentError> {
    let key = vault.account_key(from).await?;
    let lock = Uuid::new_v4();
    let inputs = vault
        .select_coins(&key.public(), amount, lock, PAYMENT_LOCK_MS)
        .await?;
    let result = async {
        let tx = build_payment(&inputs, key.public(), payee, amount, notary.identity())?;
        let mut stx = SignedTransaction::signed_by(tx, &key);
        let mut producers = std::collections::HashMap::new();
        for c in &inputs {
            if let Some(p) = vault.transaction(&c.reference.tx_id).await? {
                producers.insert(c.reference.tx_id, p);
            }
        }
        let request = NotarisationRequest::non_validating(&stx, |id| producers.get(id).cloned())
            .map_err(|r| PaymentError::Unresolved(r.to_string()))?;
        let notary_sig = notary.notarise(requester, request).await?;
        stx.sigs.push(notary_sig);
        vault.record(&stx, relevant).await?;
        Ok(stx)
    }
    .await;
    if result.is_err() {
        vault.release(lock).await?;
    }
    result
}
