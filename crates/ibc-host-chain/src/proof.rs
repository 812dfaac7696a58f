//! Ledger proofs for light clients (DESIGN §6): that `path = value` (or that `path` has no
//! value) at host height h. A proof is the host transaction of height h filtered to its inputs,
//! host command, notary, time window and host output (Merkle proofs to its id), the signatures over
//! the id, and an ICS-23 proof from the host state's store root. Verifying needs only public
//! functions and the keys the client trusts: the notary's and the host operators'.

use kh_ledger::{
    ComponentGroup, FilteredTransaction, Party, ProofError as TxProofError, PublicKey,
    SignedTransaction, StateRef, TimeWindow, TransactionProof, TransactionSignature,
    TransactionState, verify_filtered_transaction,
};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::host::{HostCommand, HostState, host_contract_id};

/// The keys a light client of the ledger trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTrust {
    /// The notary's key.
    pub notary: PublicKey,
    /// The host operators' keys.
    pub operators: Vec<PublicKey>,
}

/// Why a ledger proof is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The filtered transaction or its signatures do not verify.
    #[error(transparent)]
    Transaction(#[from] TxProofError),
    /// The transaction is not a host transaction as the client requires.
    #[error("not a host transaction: {0}")]
    NotHost(String),
    /// The host state is not at the height asked for.
    #[error("the proof is for height {got}, not {want}")]
    Height {
        /// The proof's height.
        got: u64,
        /// The height asked for.
        want: u64,
    },
    /// The ICS-23 proof does not decode or does not prove the claim against the root.
    #[error("the store proof does not prove the claim: {0}")]
    Store(String),
    /// The proof's bytes do not decode.
    #[error("the proof does not decode: {0}")]
    Decode(String),
}

/// A host state at a height, proven by its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStateProof {
    /// The host transaction, filtered, with its signatures.
    pub tx: TransactionProof,
    /// The index of the host output.
    pub output: u32,
}

fn not_host(what: impl Into<String>) -> ProofError {
    ProofError::NotHost(what.into())
}

impl HostStateProof {
    /// The proof of the host state `stx` produces.
    pub fn of(stx: &SignedTransaction) -> Result<Self, ProofError> {
        let id = host_contract_id();
        let output = stx
            .tx
            .outputs
            .iter()
            .position(|o| o.contract == id)
            .ok_or_else(|| not_host("no host output"))?;
        let output = u32::try_from(output).map_err(|_| not_host("output index"))?;
        // Only the host command is revealed: other commands of a host transaction (the IBC
        // messages it applies) stay private to its participants.
        let commands = &stx.tx.commands;
        let filtered = stx.tx.filter(|g, i| match g {
            ComponentGroup::Outputs => i == output,
            ComponentGroup::Commands => commands.get(i as usize).is_some_and(|c| c.contract == id),
            ComponentGroup::Inputs | ComponentGroup::Notary | ComponentGroup::TimeWindow => true,
            ComponentGroup::References => false,
        });
        Ok(Self {
            tx: TransactionProof {
                filtered,
                signatures: stx.sigs.clone(),
            },
            output,
        })
    }

    /// The host output the proof reveals, decoded but NOT verified.
    fn revealed_output(&self) -> Result<TransactionState, ProofError> {
        let output = self
            .tx
            .filtered
            .groups
            .iter()
            .find(|g| g.group == ComponentGroup::Outputs)
            .and_then(|g| g.components.iter().find(|c| c.index == self.output))
            .ok_or_else(|| not_host("the host output is not revealed"))?;
        bcs::from_bytes(&output.bytes).map_err(|e| not_host(e.to_string()))
    }

    /// The host state the proof claims, decoded but NOT verified (for display, or to pick
    /// trust); use [`HostStateProof::verify`] before relying on it.
    pub fn claimed_state(&self) -> Result<HostState, ProofError> {
        self.revealed_output()?
            .decode()
            .map_err(|e| not_host(e.to_string()))
    }

    /// The transaction's id.
    pub fn tx_id(&self) -> kh_ledger::TxId {
        self.tx.filtered.id
    }

    /// Checks the proof against `trust` and returns the host state: the Merkle proofs lead to
    /// the id; the notary and every operator signed it (and every revealed command's signers);
    /// exactly one notary component, the trusted notary; exactly one, bounded, time window
    /// containing the host timestamp; exactly one host command; the revealed output is a host
    /// state whose operators and participants are the trusted operators.
    pub fn verify(&self, trust: &HostTrust) -> Result<HostState, ProofError> {
        let ftx: &FilteredTransaction = &self.tx.filtered;
        let mut required = trust.operators.clone();
        required.push(trust.notary);
        verify_filtered_transaction(ftx, &self.tx.signatures, &required)?;
        let notary: Vec<Party> = ftx
            .whole_group(ComponentGroup::Notary)
            .map_err(|e| not_host(e.to_string()))?;
        let [notary] = notary.as_slice() else {
            return Err(not_host(format!("{} notary components", notary.len())));
        };
        if notary.owning_key != trust.notary {
            return Err(not_host("the notary is not the trusted one"));
        }
        let windows: Vec<TimeWindow> = ftx
            .whole_group(ComponentGroup::TimeWindow)
            .map_err(|e| not_host(e.to_string()))?;
        let [window] = windows.as_slice() else {
            return Err(not_host(format!("{} time windows", windows.len())));
        };
        // The revealed commands (the host contract, which every operator ran before signing,
        // allows exactly one host command in the whole transaction).
        let commands: Vec<kh_ledger::Command> = ftx
            .groups
            .iter()
            .filter(|g| g.group == ComponentGroup::Commands)
            .flat_map(|g| g.components.iter())
            .map(|c| bcs::from_bytes(&c.bytes).map_err(|e| not_host(e.to_string())))
            .collect::<Result<_, _>>()?;
        let id = host_contract_id();
        let host_commands: Vec<HostCommand> = commands
            .iter()
            .filter(|c| c.contract == id)
            .map(|c| bcs::from_bytes(&c.data).map_err(|e| not_host(e.to_string())))
            .collect::<Result<_, _>>()?;
        if host_commands.len() != 1 {
            return Err(not_host(format!("{} host commands", host_commands.len())));
        }
        let state = self.revealed_output()?;
        if state.contract != id {
            return Err(not_host("the revealed output is not a host state"));
        }
        let host: HostState = state.decode().map_err(|e| not_host(e.to_string()))?;
        let same = |a: &[PublicKey], b: &[PublicKey]| {
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort();
            b.sort();
            a == b
        };
        if !same(&host.operators, &trust.operators) || !same(&state.participants, &trust.operators)
        {
            return Err(not_host("the host operators are not the trusted ones"));
        }
        if !window.contains(host.timestamp_ms)
            || window.from_ms.is_none()
            || window.until_ms.is_none()
        {
            return Err(not_host(
                "the host timestamp is not inside a bounded time window",
            ));
        }
        Ok(host)
    }

    /// Whether the transaction consumed `state` (continuity: the host state a client trusts
    /// is the one the next height consumed).
    pub fn consumes(&self, state: &StateRef) -> Result<bool, ProofError> {
        let inputs: Vec<StateRef> = self
            .tx
            .filtered
            .whole_group(ComponentGroup::Inputs)
            .map_err(|e| not_host(e.to_string()))?;
        Ok(inputs.contains(state))
    }

    /// The signatures the proof carries.
    pub fn signatures(&self) -> &[TransactionSignature] {
        &self.tx.signatures
    }
}

/// `path = value` (or `path` absent) at a host height.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerProof {
    /// The host state at that height.
    pub host: HostStateProof,
    /// The ICS-23 `CommitmentProof` (protobuf) from the host state's store root.
    pub commitment: Vec<u8>,
}

impl LedgerProof {
    /// Packs a proof from the host transaction of the height and the store's ICS-23 proof.
    pub fn new(
        host_tx: &SignedTransaction,
        commitment: &ics23::CommitmentProof,
    ) -> Result<Self, ProofError> {
        Ok(Self {
            host: HostStateProof::of(host_tx)?,
            commitment: commitment.encode_to_vec(),
        })
    }

    /// The proof's bytes (BCS), as it travels (e.g. in an IBC message's proof field).
    pub fn to_bytes(&self) -> Vec<u8> {
        bcs::to_bytes(self).unwrap_or_default()
    }

    /// A proof from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        bcs::from_bytes(bytes).map_err(|e| ProofError::Decode(e.to_string()))
    }

    fn host_at(&self, trust: &HostTrust, height: u64) -> Result<HostState, ProofError> {
        let host = self.host.verify(trust)?;
        if host.height != height {
            return Err(ProofError::Height {
                got: host.height,
                want: height,
            });
        }
        Ok(host)
    }

    fn commitment_proof(&self) -> Result<ics23::CommitmentProof, ProofError> {
        ics23::CommitmentProof::decode(self.commitment.as_slice())
            .map_err(|e| ProofError::Store(e.to_string()))
    }

    /// Checks the ICS-23 part only: `key = value` under `root`, a store root the caller already
    /// trusts (e.g. a light client's consensus state at the proof height).
    pub fn verify_membership_at_root(
        &self,
        root: &[u8; 32],
        key: &[u8],
        value: &[u8],
    ) -> Result<(), ProofError> {
        let proof = self.commitment_proof()?;
        let ok = ics23::verify_membership::<ics23::HostFunctionsManager>(
            &proof,
            &jmt::ics23_spec(),
            &root.to_vec(),
            key,
            value,
        );
        ok.then_some(())
            .ok_or_else(|| ProofError::Store("membership does not verify against the root".into()))
    }

    /// Checks the ICS-23 part only: `key` absent under the trusted `root`.
    pub fn verify_non_membership_at_root(
        &self,
        root: &[u8; 32],
        key: &[u8],
    ) -> Result<(), ProofError> {
        let proof = self.commitment_proof()?;
        let ok = ics23::verify_non_membership::<ics23::HostFunctionsManager>(
            &proof,
            &jmt::ics23_spec(),
            &root.to_vec(),
            key,
        );
        ok.then_some(()).ok_or_else(|| {
            ProofError::Store("non-membership does not verify against the root".into())
        })
    }

    /// Checks that `key = value` at `height`: the host state proof with `trust`, then the
    /// ICS-23 proof against its root.
    pub fn verify_membership(
        &self,
        trust: &HostTrust,
        height: u64,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), ProofError> {
        let host = self.host_at(trust, height)?;
        self.verify_membership_at_root(&host.store_root, key, value)
    }

    /// Checks that `key` has no value at `height`.
    pub fn verify_non_membership(
        &self,
        trust: &HostTrust,
        height: u64,
        key: &[u8],
    ) -> Result<(), ProofError> {
        let host = self.host_at(trust, height)?;
        self.verify_non_membership_at_root(&host.store_root, key)
    }
}
