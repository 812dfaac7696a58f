//! Quorum rules: the commit quorum of a block and the light-client skipping rule.

use std::collections::HashSet;

use alloy_primitives::Address;

use crate::{Header, QbftError};

/// The commit quorum for `n` validators: ceil(2n/3), i.e. `n - floor(n/3)`.
pub fn quorum(n: usize) -> usize {
    n - n / 3
}

/// Recovers every seal over the seal digest and checks that the signers are distinct members
/// of `validators`; returns them in seal order.
fn recover_signers(header: &Header, validators: &[Address]) -> Result<Vec<Address>, QbftError> {
    check_validator_set(validators)?;
    let digest = header.seal_digest();
    let mut seen = HashSet::with_capacity(header.extra_data().seals.len());
    header
        .extra_data()
        .seals
        .iter()
        .enumerate()
        .map(|(index, seal)| {
            let signer = seal.recover_at(digest, index)?;
            if !validators.contains(&signer) {
                return Err(QbftError::UnknownSigner { index, signer });
            }
            if !seen.insert(signer) {
                return Err(QbftError::DuplicateSigner { signer });
            }
            Ok(signer)
        })
        .collect()
}

fn check_validator_set(validators: &[Address]) -> Result<(), QbftError> {
    if validators.is_empty() {
        return Err(QbftError::InvalidValidatorSet("empty"));
    }
    if validators.contains(&Address::ZERO) {
        return Err(QbftError::InvalidValidatorSet("contains the zero address"));
    }
    let unique: HashSet<_> = validators.iter().collect();
    if unique.len() != validators.len() {
        return Err(QbftError::InvalidValidatorSet("contains duplicates"));
    }
    Ok(())
}

/// Verifies that at least `quorum(validators.len())` distinct members of `validators` sealed
/// `header`. Every seal must recover to a distinct member. Returns the signers in seal order.
pub fn verify_commit_seals(
    header: &Header,
    validators: &[Address],
) -> Result<Vec<Address>, QbftError> {
    let signers = recover_signers(header, validators)?;
    let need = quorum(validators.len());
    if signers.len() < need {
        return Err(QbftError::InsufficientSeals {
            height: header.number(),
            got: signers.len(),
            need,
        });
    }
    Ok(signers)
}

/// The outcome of a successful skipping check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipCheck {
    /// Signers recovered from the seals (members of the header's validator set).
    pub signers: Vec<Address>,
    /// How many of them belong to the trusted set.
    pub trusted_overlap: usize,
}

/// The light-client skipping rule: more than 1/3 of the `trusted` validator set and at least
/// 2/3 of the header's own validator set must have sealed it. The trusted-overlap check runs
/// first (as the Besu light clients do).
pub fn verify_skip(header: &Header, trusted: &[Address]) -> Result<SkipCheck, QbftError> {
    check_validator_set(trusted)?;
    let validators = &header.extra_data().validators;
    let signers = recover_signers(header, validators)?;
    let trusted_overlap = signers.iter().filter(|s| trusted.contains(s)).count();
    let need_overlap = trusted.len() / 3 + 1;
    if trusted_overlap < need_overlap {
        return Err(QbftError::InsufficientTrustedOverlap {
            height: header.number(),
            got: trusted_overlap,
            need: need_overlap,
        });
    }
    let need = quorum(validators.len());
    if signers.len() < need {
        return Err(QbftError::InsufficientSeals {
            height: header.number(),
            got: signers.len(),
            need,
        });
    }
    Ok(SkipCheck {
        signers,
        trusted_overlap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_ceil_two_thirds() {
        for n in 1..100usize {
            assert_eq!(quorum(n), (2 * n).div_ceil(3), "n = {n}");
        }
    }
}
