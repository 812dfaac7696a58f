//! Validator-set votes: this node's proposals, the vote put in each header, and the tally.

use alloy_primitives::Address;
use kh_qbft::{Vote, VoteKind};
use tracing::info;

use super::Chain;

impl Chain {
    /// Queues a validator vote (`qbft_proposeValidatorVote`): add (`true`) or remove.
    pub fn propose_vote(&mut self, candidate: Address, add: bool) {
        self.proposals.insert(candidate, add);
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
