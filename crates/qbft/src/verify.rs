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
/// first (as the Besu light clients do). Returns the signers in seal order; [`skip_check`]
/// also reports the overlap.
pub fn verify_skip(header: &Header, trusted: &[Address]) -> Result<Vec<Address>, QbftError> {
    skip_check(header, trusted).map(|check| check.signers)
}

/// [`verify_skip`] with the trusted overlap in the result.
pub fn skip_check(header: &Header, trusted: &[Address]) -> Result<SkipCheck, QbftError> {
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

    use crate::{ExtraData, address_of, sign_seal};
    use alloy_primitives::keccak256;
    use k256::ecdsa::SigningKey;

    fn keys(n: usize, offset: u8) -> Vec<SigningKey> {
        (0..n)
            .map(|i| {
                let mut secret = [0u8; 32];
                secret[0] = 1;
                secret[30] = offset;
                secret[31] = u8::try_from(i + 1).unwrap();
                SigningKey::from_slice(&secret).unwrap()
            })
            .collect()
    }

    fn addresses(keys: &[SigningKey]) -> Vec<Address> {
        keys.iter().map(|k| address_of(k.verifying_key())).collect()
    }

    /// A 15-field header at height 5 whose extraData lists `validators`, sealed by `signers`.
    fn sealed(validators: &[Address], signers: &[SigningKey]) -> Header {
        let extra = ExtraData {
            vanity: [0; 32],
            validators: validators.to_vec(),
            vote: None,
            round: 0,
            seals: vec![],
        };
        let mut items: Vec<Vec<u8>> = (0..15)
            .map(|i| {
                let mut out = Vec::new();
                alloy_rlp::Encodable::encode(&[u8::try_from(i).unwrap(); 32][..], &mut out);
                out
            })
            .collect();
        items[2] = crate::rlp::encode_bytes(&[2; 20]);
        items[8] = vec![0x05];
        items[11] = vec![0x06];
        items[12] = crate::rlp::encode_bytes(&extra.encode());
        let header =
            Header::decode(&crate::rlp::encode_list(items.iter().map(Vec::as_slice))).unwrap();
        let digest = header.seal_digest();
        header.with_extra_data(&ExtraData {
            seals: signers.iter().map(|k| sign_seal(digest, k)).collect(),
            ..extra
        })
    }

    #[test]
    fn commit_quorum_boundaries() {
        let k = keys(7, 0);
        let vals = addresses(&k);
        assert_eq!(quorum(7), 5);
        let ok = verify_commit_seals(&sealed(&vals, &k[..5]), &vals).unwrap();
        assert_eq!(ok, vals[..5]);
        assert_eq!(
            verify_commit_seals(&sealed(&vals, &k[..4]), &vals),
            Err(QbftError::InsufficientSeals {
                height: 5,
                got: 4,
                need: 5
            })
        );
        // A stranger's seal is rejected even when the quorum is otherwise met.
        let stranger = keys(1, 9);
        let mut signers = k[..5].to_vec();
        signers.push(stranger[0].clone());
        assert_eq!(
            verify_commit_seals(&sealed(&vals, &signers), &vals),
            Err(QbftError::UnknownSigner {
                index: 5,
                signer: addresses(&stranger)[0]
            })
        );
        // The same validator twice.
        let mut signers = k[..4].to_vec();
        signers.push(k[0].clone());
        assert_eq!(
            verify_commit_seals(&sealed(&vals, &signers), &vals),
            Err(QbftError::DuplicateSigner { signer: vals[0] })
        );
    }

    #[test]
    fn validator_set_must_be_sane() {
        let k = keys(4, 0);
        let vals = addresses(&k);
        let header = sealed(&vals, &k);
        for bad in [
            vec![],
            vec![vals[0], vals[1], vals[0]],
            vec![vals[0], Address::ZERO],
        ] {
            assert!(matches!(
                verify_commit_seals(&header, &bad),
                Err(QbftError::InvalidValidatorSet(_))
            ));
            assert!(matches!(
                verify_skip(&header, &bad),
                Err(QbftError::InvalidValidatorSet(_))
            ));
        }
    }

    #[test]
    fn unrecoverable_seal_is_an_error() {
        let k = keys(4, 0);
        let vals = addresses(&k);
        let header = sealed(&vals, &k[..3]);
        let mut extra = header.extra_data().clone();
        // r = 0 is not a valid signature scalar.
        extra.seals[1].0[..32].fill(0);
        assert_eq!(
            verify_commit_seals(&header.with_extra_data(&extra), &vals),
            Err(QbftError::InvalidSignature { index: 1 })
        );
        assert!(extra.seals[1].recover(keccak256(b"x")).is_err());
    }

    #[test]
    fn skipping_rule_boundaries() {
        // Trusted set of 6: overlap must exceed 6/3, i.e. at least 3.
        let old = keys(6, 0);
        let trusted = addresses(&old);
        let new = keys(4, 1);
        // New set: 2 trusted validators stay, 4 new ones join (6 in total, quorum 4).
        let mut set_keys = old[..2].to_vec();
        set_keys.extend(new.iter().cloned());
        let set = addresses(&set_keys);
        let header = sealed(&set, &set_keys);
        assert_eq!(
            verify_skip(&header, &trusted),
            Err(QbftError::InsufficientTrustedOverlap {
                height: 5,
                got: 2,
                need: 3
            })
        );
        // 3 trusted validators stay: the overlap holds, and 4 of 6 signed.
        let mut set_keys = old[..3].to_vec();
        set_keys.extend(new[..3].iter().cloned());
        let set = addresses(&set_keys);
        let ok = skip_check(&sealed(&set, &set_keys[..4]), &trusted).unwrap();
        assert_eq!(ok.trusted_overlap, 3);
        assert_eq!(
            verify_skip(&sealed(&set, &set_keys[..4]), &trusted),
            Ok(set[..4].to_vec())
        );
        assert_eq!(ok.signers, set[..4]);
        // Overlap met but below the new set's quorum (3 of 6).
        assert_eq!(
            verify_skip(&sealed(&set, &set_keys[..3]), &trusted),
            Err(QbftError::InsufficientSeals {
                height: 5,
                got: 3,
                need: 4
            })
        );
    }
}
