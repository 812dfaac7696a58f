//! The stablecoin: a fungible token issued by a bank and held by keys (accounts' keys), with
//! issue, move and redeem.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use kh_ledger::{Contract, ContractId, LedgerTransaction, PartyName, PublicKey};

/// The stablecoin contract id.
pub const STABLECOIN: &str = "kakehashi.stablecoin.v1";

/// The contract id as a value.
pub fn stablecoin_id() -> ContractId {
    ContractId(STABLECOIN.to_string())
}

/// An amount of stablecoin held by `owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StablecoinState {
    /// Smallest units.
    pub amount: u64,
    /// Currency code, e.g. `JPY`.
    pub currency: String,
    /// The issuing bank.
    pub issuer: PartyName,
    /// The issuer's key (signs issues and redemptions).
    pub issuer_key: PublicKey,
    /// The holder's key.
    pub owner: PublicKey,
}

/// Stablecoin commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StablecoinCommand {
    /// Create new tokens (issuer signs).
    Issue,
    /// Move tokens between holders; amounts are conserved per issuer and currency (owners sign).
    Move,
    /// Destroy `amount` tokens (issuer and owners sign).
    Redeem {
        /// Amount destroyed.
        amount: u64,
    },
}

/// The stablecoin's rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct StablecoinContract;

type Key = (PartyName, String);

fn totals<'a>(
    states: impl Iterator<Item = &'a StablecoinState>,
) -> Result<BTreeMap<Key, u64>, String> {
    let mut out = BTreeMap::new();
    for s in states {
        if s.amount == 0 {
            return Err("zero-amount state".into());
        }
        let t: &mut u64 = out
            .entry((s.issuer.clone(), s.currency.clone()))
            .or_default();
        *t = t.checked_add(s.amount).ok_or("amount overflow")?;
    }
    Ok(out)
}

impl Contract for StablecoinContract {
    fn id(&self) -> ContractId {
        stablecoin_id()
    }

    fn verify(&self, tx: &LedgerTransaction) -> Result<(), String> {
        let id = stablecoin_id();
        let decode =
            |d: &[u8]| bcs::from_bytes::<StablecoinState>(d).map_err(|e| format!("bad state: {e}"));
        let inputs = tx
            .inputs
            .iter()
            .filter(|s| s.state.contract == id)
            .map(|s| decode(&s.state.data))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = tx
            .outputs
            .iter()
            .filter(|s| s.contract == id)
            .map(|s| decode(&s.data))
            .collect::<Result<Vec<_>, _>>()?;
        let commands = tx
            .commands_of(&id)
            .map(|c| {
                bcs::from_bytes::<StablecoinCommand>(&c.data)
                    .map(|cmd| (cmd, c))
                    .map_err(|e| format!("bad command: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let [(command, raw)] = &commands[..] else {
            return Err(format!(
                "exactly one stablecoin command required, found {}",
                commands.len()
            ));
        };
        let signed = |k: &PublicKey| raw.signers.contains(k) && tx.signers.contains(k);
        let ins = totals(inputs.iter())?;
        let outs = totals(outputs.iter())?;
        match command {
            StablecoinCommand::Issue => {
                if !inputs.is_empty() {
                    return Err("an issue consumes no stablecoin".into());
                }
                if outputs.is_empty() {
                    return Err("an issue creates at least one state".into());
                }
                for o in &outputs {
                    if !signed(&o.issuer_key) {
                        return Err(format!("the issuer {} must sign an issue", o.issuer));
                    }
                }
            }
            StablecoinCommand::Move => {
                if inputs.is_empty() {
                    return Err("a move consumes stablecoin".into());
                }
                if ins != outs {
                    return Err("a move must conserve amounts per issuer and currency".into());
                }
                for i in &inputs {
                    if !signed(&i.owner) {
                        return Err(format!("owner {} of an input must sign", i.owner));
                    }
                }
            }
            StablecoinCommand::Redeem { amount } => {
                if inputs.is_empty() || *amount == 0 {
                    return Err("a redemption consumes a positive amount".into());
                }
                if ins.len() != 1 {
                    return Err("a redemption is for one issuer and currency".into());
                }
                let (key, total_in) = ins.iter().next().ok_or("no inputs")?;
                let total_out = outs.get(key).copied().unwrap_or(0);
                if outs.len() > 1 || total_in.checked_sub(*amount) != Some(total_out) {
                    return Err("inputs minus the redeemed amount must equal the change".into());
                }
                for i in &inputs {
                    if !signed(&i.owner) || !signed(&i.issuer_key) {
                        return Err("owners and the issuer must sign a redemption".into());
                    }
                }
            }
        }
        Ok(())
    }
}
