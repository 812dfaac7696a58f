//! Transactions for integrators and light clients: a filtered transaction (chosen component
//! groups with their Merkle proofs) together with the signatures over its id, and the check a
//! light client runs on it with nothing but public keys it already trusts (the network
//! parameters' notary, say).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::TxId;
use crate::identity::PublicKey;
use crate::tx::{
    Command, ComponentGroup, FilterError, FilteredTransaction, GROUPS, SignedTransaction,
    TransactionSignature,
};

impl ComponentGroup {
    /// The group's name as written by people and the CLI: `inputs`, `outputs`, `commands`,
    /// `notary`, `time-window`, `references`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inputs => "inputs",
            Self::Outputs => "outputs",
            Self::Commands => "commands",
            Self::Notary => "notary",
            Self::TimeWindow => "time-window",
            Self::References => "references",
        }
    }
}

impl fmt::Display for ComponentGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a component group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown component group {0:?} (inputs, outputs, commands, notary, time-window, references)"
)]
pub struct ParseGroupError(pub String);

impl FromStr for ComponentGroup {
    type Err = ParseGroupError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GROUPS
            .into_iter()
            .find(|g| g.name() == s || (*g == Self::TimeWindow && s == "time_window"))
            .ok_or_else(|| ParseGroupError(s.to_string()))
    }
}

/// Parses a comma-separated list of group names (`outputs,commands,notary`).
pub fn parse_groups(text: &str) -> Result<BTreeSet<ComponentGroup>, ParseGroupError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// A filtered transaction with the signatures over its id: what a node hands a light client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionProof {
    /// The revealed groups with their proofs.
    pub filtered: FilteredTransaction,
    /// Every signature the transaction carries.
    pub signatures: Vec<TransactionSignature>,
}

impl TransactionProof {
    /// The proof for `stx` revealing `groups` whole (the others only by their roots).
    pub fn of(stx: &SignedTransaction, groups: &BTreeSet<ComponentGroup>) -> Self {
        Self {
            filtered: stx.tx.filter(|g, _| groups.contains(&g)),
            signatures: stx.sigs.clone(),
        }
    }

    /// [`verify_filtered_transaction`] on this proof.
    pub fn verify(&self, required_keys: &[PublicKey]) -> Result<(), ProofError> {
        verify_filtered_transaction(&self.filtered, &self.signatures, required_keys)
    }
}

/// Why a filtered transaction with its signatures does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The Merkle proofs do not lead to the id.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// Groups or components are repeated or out of order (a proof has one canonical form).
    #[error("transaction {tx}: {what}")]
    NotCanonical {
        /// Transaction id.
        tx: TxId,
        /// What is wrong.
        what: &'static str,
    },
    /// A revealed command does not decode.
    #[error("transaction {tx}: revealed command {index} does not decode")]
    BadCommand {
        /// Transaction id.
        tx: TxId,
        /// Its index.
        index: u32,
    },
    /// A signature does not verify over the id.
    #[error("signature by {key} does not verify over transaction {tx}")]
    BadSignature {
        /// Transaction id.
        tx: TxId,
        /// The key.
        key: PublicKey,
    },
    /// The same key signed twice.
    #[error("transaction {tx} carries two signatures by {key}")]
    DuplicateSignature {
        /// Transaction id.
        tx: TxId,
        /// The key.
        key: PublicKey,
    },
    /// A key that must have signed did not.
    #[error("transaction {tx} is not signed by {missing:?}")]
    MissingSignatures {
        /// Transaction id.
        tx: TxId,
        /// The keys that did not sign.
        missing: Vec<PublicKey>,
    },
}

/// Checks a filtered transaction and its signatures without trusting whoever sent them:
///
/// - every revealed component proves into the transaction id (Merkle paths, group roots,
///   group sizes), and groups and components appear once each, in order;
/// - every signature verifies over the id, and no key signed twice;
/// - every key in `required_keys` signed (a light client passes keys it trusts by itself, e.g.
///   the notary's from the network parameters), and so did every signer named by a revealed
///   command.
///
/// Nothing here reads a node's state: the caller needs only this function and public keys.
pub fn verify_filtered_transaction(
    ftx: &FilteredTransaction,
    signatures: &[TransactionSignature],
    required_keys: &[PublicKey],
) -> Result<(), ProofError> {
    ftx.verify()?;
    let tx = ftx.id;
    let not_canonical = |what| ProofError::NotCanonical { tx, what };
    if !ftx.groups.windows(2).all(|w| w[0].group < w[1].group) {
        return Err(not_canonical("groups repeated or out of order"));
    }
    let mut required: BTreeSet<PublicKey> = required_keys.iter().copied().collect();
    for g in &ftx.groups {
        if g.components.is_empty() {
            return Err(not_canonical("a revealed group has no component"));
        }
        if !g.components.windows(2).all(|w| w[0].index < w[1].index) {
            return Err(not_canonical("components repeated or out of order"));
        }
        if g.group == ComponentGroup::Commands {
            for c in &g.components {
                let command: Command = bcs::from_bytes(&c.bytes)
                    .map_err(|_| ProofError::BadCommand { tx, index: c.index })?;
                required.extend(command.signers);
            }
        }
    }
    let mut signed = BTreeSet::new();
    for s in signatures {
        s.verify(&tx)
            .map_err(|_| ProofError::BadSignature { tx, key: s.by })?;
        if !signed.insert(s.by) {
            return Err(ProofError::DuplicateSignature { tx, key: s.by });
        }
    }
    let missing: Vec<PublicKey> = required.difference(&signed).copied().collect();
    if !missing.is_empty() {
        return Err(ProofError::MissingSignatures { tx, missing });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{KeyPair, Party};
    use crate::tx::{StateRef, TransactionState, WireTransaction};

    fn signed(notary: &KeyPair, signer: &KeyPair) -> SignedTransaction {
        let notary_party = Party {
            name: "O=Notary, L=Tokyo, C=JP".parse().unwrap(),
            owning_key: notary.public(),
        };
        let tx = WireTransaction {
            inputs: vec![StateRef {
                tx_id: crate::hash::SecureHash::of(&[b"earlier"]),
                index: 1,
            }],
            references: vec![],
            outputs: (0..3)
                .map(|i| TransactionState {
                    contract: crate::tx::ContractId("kh.test".into()),
                    notary: notary_party.clone(),
                    participants: vec![signer.public()],
                    data: vec![i; 5],
                })
                .collect(),
            commands: vec![Command {
                contract: crate::tx::ContractId("kh.test".into()),
                data: vec![7],
                signers: vec![signer.public()],
            }],
            notary: Some(notary_party),
            time_window: None,
            privacy_salt: [9; 32],
        };
        let mut stx = SignedTransaction::signed_by(tx, signer);
        stx.sigs.push(TransactionSignature::sign(notary, &stx.id()));
        stx
    }

    #[test]
    fn group_names_parse() {
        assert_eq!(
            parse_groups("outputs, commands,notary").unwrap(),
            [
                ComponentGroup::Outputs,
                ComponentGroup::Commands,
                ComponentGroup::Notary
            ]
            .into()
        );
        for g in GROUPS {
            assert_eq!(g.name().parse::<ComponentGroup>().unwrap(), g);
        }
        assert!(parse_groups("outputs,signatures").is_err());
    }

    #[test]
    fn a_proof_verifies_and_any_changed_byte_is_rejected() {
        let (notary, signer) = (KeyPair::generate(), KeyPair::generate());
        let stx = signed(&notary, &signer);
        let groups = parse_groups("outputs,commands,notary").unwrap();
        let proof = TransactionProof::of(&stx, &groups);
        proof.verify(&[notary.public()]).unwrap();
        assert_eq!(proof.filtered.id, stx.id());
        assert_eq!(
            proof
                .filtered
                .whole_group::<TransactionState>(ComponentGroup::Outputs)
                .unwrap(),
            stx.tx.outputs
        );

        // A key that did not sign is reported missing.
        let stranger = KeyPair::generate().public();
        assert!(matches!(
            proof.verify(&[stranger]),
            Err(ProofError::MissingSignatures { missing, .. }) if missing == vec![stranger]
        ));
        // Without the signer's signature the revealed command's signer is missing.
        let mut unsigned = proof.clone();
        unsigned.signatures.retain(|s| s.by != signer.public());
        assert!(matches!(
            unsigned.verify(&[]),
            Err(ProofError::MissingSignatures { .. })
        ));
        // A component shown twice is not the canonical form.
        let mut doubled = proof.clone();
        let first = doubled.filtered.groups[0].components[0].clone();
        doubled.filtered.groups[0].components.insert(0, first);
        assert!(matches!(
            doubled.verify(&[]),
            Err(ProofError::NotCanonical { .. })
        ));

        let bytes = bcs::to_bytes(&proof).unwrap();
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80] {
                let mut changed = bytes.clone();
                changed[i] ^= flip;
                if let Ok(p) = bcs::from_bytes::<TransactionProof>(&changed) {
                    assert!(
                        p.verify(&[notary.public()]).is_err(),
                        "byte {i} ^ {flip:#x} accepted"
                    );
                }
            }
        }
    }
}
