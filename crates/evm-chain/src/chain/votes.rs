//! Validator-set votes: this node's proposals, the vote put in each header, and the tally.

use alloy_primitives::Address;
use kh_qbft::{Vote, VoteKind, quorum};
use tracing::info;

use super::Chain;
use crate::error::VoteError;

impl Chain {
    /// Queues a validator vote (`qbft_proposeValidatorVote`): add (`true`) or remove.
    ///
    /// Refused when the set it leads to (with this node's other pending votes passed too, or
    /// with this one alone) would need more seals than the devnet holds keys for: the chain
    /// would halt, and replaying the log would halt again.
    pub fn propose_vote(&mut self, candidate: Address, add: bool) -> Result<(), VoteError> {
        let mut alone: Vec<Address> = self.validators.clone();
        apply_to(&mut alone, candidate, add);
        let mut all: Vec<Address> = self.validators.clone();
        let mut pending: Vec<(Address, bool)> =
            self.proposals.iter().map(|(a, b)| (*a, *b)).collect();
        pending.sort();
        pending.retain(|(a, _)| *a != candidate);
        pending.push((candidate, add));
        for (a, b) in pending {
            apply_to(&mut all, a, b);
        }
        for set in [&alone, &all] {
            if set.is_empty() {
                return Err(VoteError::NoValidators);
            }
            let held = set.iter().filter(|v| self.keys.contains_key(*v)).count();
            let need = quorum(set.len());
            if held < need {
                return Err(VoteError::NoQuorum {
                    validators: set.len(),
                    held,
                    need,
                });
            }
        }
        self.proposals.insert(candidate, add);
        Ok(())
    }

    /// Withdraws this node's pending vote on `candidate` (`qbft_discardValidatorVote`);
    /// returns whether there was one.
    pub fn discard_vote(&mut self, candidate: &Address) -> bool {
        self.proposals.remove(candidate).is_some()
    }

    /// This node's pending votes: candidate -> add (`true`) or remove.
    pub fn pending_votes(&self) -> Vec<(Address, bool)> {
        let mut votes: Vec<(Address, bool)> =
            self.proposals.iter().map(|(a, b)| (*a, *b)).collect();
        votes.sort();
        votes
    }

    pub(super) fn pick_vote(&self, proposer: Address, validators: &[Address]) -> Option<Vote> {
        let mut candidates: Vec<(&Address, &bool)> = self.proposals.iter().collect();
        candidates.sort();
        candidates.into_iter().find_map(|(candidate, add)| {
            let member = validators.contains(candidate);
            let useful = if *add { !member } else { member };
            let already = self
                .tally
                .get(candidate)
                .is_some_and(|t| t.contains_key(&proposer));
            (useful && !already).then_some(Vote {
                recipient: *candidate,
                kind: if *add { VoteKind::Add } else { VoteKind::Drop },
            })
        })
    }

    /// Records the proposer's vote; more than half of the validators voting the same way
    /// changes the set from the next block on.
    pub(super) fn apply_vote(
        &mut self,
        proposer: Address,
        vote: Option<Vote>,
        validators: &[Address],
    ) {
        let Some(vote) = vote else { return };
        let votes = self.tally.entry(vote.recipient).or_default();
        votes.insert(proposer, vote.kind);
        let agreeing = votes
            .iter()
            .filter(|(voter, kind)| **kind == vote.kind && validators.contains(voter))
            .count();
        if agreeing * 2 > validators.len() {
            match vote.kind {
                VoteKind::Add => {
                    if !self.validators.contains(&vote.recipient) {
                        self.validators.push(vote.recipient);
                    }
                }
                VoteKind::Drop => {
                    if self.validators.len() > 1 {
                        self.validators.retain(|v| *v != vote.recipient);
                    }
                }
            }
            info!(candidate = %vote.recipient, kind = ?vote.kind, validators = self.validators.len(), "validator set changed by vote");
            self.tally.remove(&vote.recipient);
            self.proposals.remove(&vote.recipient);
        }
    }
}

fn apply_to(set: &mut Vec<Address>, candidate: Address, add: bool) {
    if add {
        if !set.contains(&candidate) {
            set.push(candidate);
        }
    } else {
        set.retain(|v| *v != candidate);
    }
}
