//! The QBFT `extraData` field: `RLP([vanity(32), [validators], vote, round, [seals]])`.

use alloy_primitives::Address;

use crate::rlp::{self, RawItem};
use crate::{QbftError, Seal};

/// Whether a vote adds or removes its recipient from the validator set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VoteKind {
    /// Add the recipient (vote byte `0xff`, encoded `0x81ff`).
    Add,
    /// Remove the recipient (vote byte `0x00`, encoded as the empty string `0x80`).
    Drop,
}

/// A validator-set vote carried by the block proposer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The address voted on.
    pub recipient: Address,
    /// Add or drop.
    pub kind: VoteKind,
}

/// Decoded QBFT extraData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraData {
    /// 32 bytes of proposer vanity.
    pub vanity: [u8; 32],
    /// The validator set of this block.
    pub validators: Vec<Address>,
    /// The proposer's vote, if any (encoded as an empty list when absent).
    pub vote: Option<Vote>,
    /// The consensus round in which the block was committed.
    pub round: u32,
    /// Committed seals, each `r ‖ s ‖ v` over the header's seal digest.
    pub seals: Vec<Seal>,
}

/// Which variant of the encoding to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Full,
    /// Seals replaced by the empty list: the committed-seal preimage.
    ForSeal,
    /// Round 0 and seals empty: the on-chain block-hash preimage.
    ForHash,
}

impl ExtraData {
    /// Decodes extraData strictly: exactly 5 items, a 32-byte vanity, 20-byte validators, a
    /// vote that is an empty list or `[address, 0xff | 0x80]`, a minimal round scalar (zero
    /// padding is rejected) and 65-byte seals with a recovery id of 0 or 1.
    pub fn decode(bytes: &[u8]) -> Result<Self, QbftError> {
        let top = rlp::item(bytes, "extraData")?;
        let items = rlp::list_items(top, "extraData")?;
        let [vanity, validators, vote, round, seals] = items[..] else {
            return Err(QbftError::ExtraDataItems { got: items.len() });
        };
        let vanity_bytes = rlp::string(vanity, "vanity")?;
        let vanity: [u8; 32] = vanity_bytes
            .try_into()
            .map_err(|_| QbftError::VanityLength {
                got: vanity_bytes.len(),
            })?;
        let validators = rlp::list_items(validators, "validators")?
            .into_iter()
            .map(|it| rlp::fixed::<20>(it, "validator").map(Address::from))
            .collect::<Result<Vec<_>, _>>()?;
        let vote = decode_vote(vote)?;
        let round = decode_round(round)?;
        let seals = rlp::list_items(seals, "seals")?
            .into_iter()
            .enumerate()
            .map(|(index, it)| {
                let bytes = rlp::string(it, "seal")?;
                Seal::from_slice(bytes).map_err(|reason| QbftError::MalformedSeal { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            vanity,
            validators,
            vote,
            round,
            seals,
        })
    }

    /// Encodes all five items.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_form(Form::Full)
    }

    /// Encodes with the seals replaced by an empty list: the preimage form signed by committed
    /// seals (Besu `encodeWithoutCommitSeals`).
    pub fn encode_for_seal(&self) -> Vec<u8> {
        self.encode_form(Form::ForSeal)
    }

    /// Encodes with round 0 and an empty seal list: the form hashed into the on-chain block
    /// hash (Besu `encodeWithoutCommitSealsAndRoundNumber`).
    pub fn encode_for_hash(&self) -> Vec<u8> {
        self.encode_form(Form::ForHash)
    }

    fn encode_form(&self, form: Form) -> Vec<u8> {
        let vanity = rlp::encode_bytes(&self.vanity);
        let validators: Vec<Vec<u8>> = self
            .validators
            .iter()
            .map(|a| rlp::encode_bytes(a.as_slice()))
            .collect();
        let validators = rlp::encode_list(validators.iter().map(Vec::as_slice));
        let vote = match &self.vote {
            None => rlp::encode_list(std::iter::empty()),
            Some(v) => {
                let recipient = rlp::encode_bytes(v.recipient.as_slice());
                let kind: &[u8] = match v.kind {
                    VoteKind::Add => &[0x81, 0xff],
                    VoteKind::Drop => &[0x80],
                };
                rlp::encode_list([recipient.as_slice(), kind])
            }
        };
        let round = if form == Form::ForHash { 0 } else { self.round };
        let mut round_enc = Vec::with_capacity(5);
        alloy_rlp::Encodable::encode(&round, &mut round_enc);
        let seals: Vec<Vec<u8>> = if form == Form::Full {
            self.seals.iter().map(|s| rlp::encode_bytes(&s.0)).collect()
        } else {
            Vec::new()
        };
        let seals = rlp::encode_list(seals.iter().map(Vec::as_slice));
        rlp::encode_list([
            vanity.as_slice(),
            validators.as_slice(),
            vote.as_slice(),
            round_enc.as_slice(),
            seals.as_slice(),
        ])
    }
}

fn decode_vote(it: RawItem<'_>) -> Result<Option<Vote>, QbftError> {
    let items = rlp::list_items(it, "vote")?;
    match items[..] {
        [] => Ok(None),
        [recipient, kind] => {
            let recipient = Address::from(rlp::fixed::<20>(recipient, "vote recipient")?);
            if kind.list {
                return Err(QbftError::InvalidVote("vote type is a list"));
            }
            let kind = match kind.raw {
                [0x81, 0xff] => VoteKind::Add,
                [0x80] => VoteKind::Drop,
                _ => return Err(QbftError::InvalidVote("vote type is neither 0xff nor 0x00")),
            };
            Ok(Some(Vote { recipient, kind }))
        }
        _ => Err(QbftError::InvalidVote(
            "vote is not an empty list or a pair",
        )),
    }
}

fn decode_round(it: RawItem<'_>) -> Result<u32, QbftError> {
    let bytes = rlp::string(it, "round")?;
    if bytes.first() == Some(&0) {
        return Err(QbftError::ZeroPaddedRound);
    }
    if bytes.len() > 4 {
        return Err(QbftError::BadScalar {
            what: "round",
            max_bytes: 4,
        });
    }
    Ok(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_extra() -> impl Strategy<Value = ExtraData> {
        (
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 20]>(), 0..8),
            proptest::option::of((any::<[u8; 20]>(), any::<bool>())),
            any::<u32>(),
            proptest::collection::vec((any::<[u8; 64]>(), 0u8..2), 0..6),
        )
            .prop_map(|(vanity, validators, vote, round, seals)| ExtraData {
                vanity,
                validators: validators.into_iter().map(Address::from).collect(),
                vote: vote.map(|(a, add)| Vote {
                    recipient: Address::from(a),
                    kind: if add { VoteKind::Add } else { VoteKind::Drop },
                }),
                round,
                seals: seals
                    .into_iter()
                    .map(|(rs, v)| {
                        let mut b = [0u8; 65];
                        b[..64].copy_from_slice(&rs);
                        b[64] = v;
                        Seal(b)
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn round_trip(extra in arb_extra()) {
            let bytes = extra.encode();
            prop_assert_eq!(ExtraData::decode(&bytes).unwrap(), extra.clone());
            let for_hash = ExtraData::decode(&extra.encode_for_hash()).unwrap();
            prop_assert_eq!(for_hash.round, 0);
            prop_assert!(for_hash.seals.is_empty());
            let for_seal = ExtraData::decode(&extra.encode_for_seal()).unwrap();
            prop_assert_eq!(for_seal.round, extra.round);
            prop_assert!(for_seal.seals.is_empty());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ExtraData::decode(&bytes);
        }
    }

    #[test]
    fn rejects_trailing_bytes() {
        let extra = ExtraData {
            vanity: [1; 32],
            validators: vec![],
            vote: None,
            round: 3,
            seals: vec![],
        };
        let mut bytes = extra.encode();
        bytes.push(0x80);
        assert!(matches!(
            ExtraData::decode(&bytes),
            Err(QbftError::TrailingBytes { .. })
        ));
    }

    fn sample() -> ExtraData {
        ExtraData {
            vanity: [5; 32],
            validators: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
            vote: None,
            round: 7,
            seals: vec![],
        }
    }

    /// Replaces item `index` of the encoded 5-item list by `item`.
    fn with_item(index: usize, item: &[u8]) -> Vec<u8> {
        let bytes = sample().encode();
        let top = rlp::item(&bytes, "t").unwrap();
        let items: Vec<&[u8]> = rlp::list_items(top, "t")
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, it)| if i == index { item } else { it.raw })
            .collect();
        rlp::encode_list(items)
    }

    #[test]
    fn rejects_malformed_items() {
        let addr = rlp::encode_bytes(&[3; 20]);
        let vote = |kind: &[u8]| rlp::encode_list([addr.as_slice(), kind]);
        // Vote type 0x00 as the single byte 0x00 (Besu writes it as the empty string 0x80),
        // 0xaa, a list, or a vote with three items.
        for bad in [
            vote(&[0x00]),
            vote(&[0x7f]),
            vote(&[0x81, 0xaa]),
            vote(&[0xc0]),
            rlp::encode_list([addr.as_slice(), &[0x80], &[0x80]]),
            rlp::encode_list([addr.as_slice()]),
        ] {
            assert!(
                matches!(
                    ExtraData::decode(&with_item(2, &bad)),
                    Err(QbftError::InvalidVote(_))
                ),
                "{bad:02x?}"
            );
        }
        // A vote recipient of 19 bytes; the vote as a plain string (IBFT 2.0 style).
        let short = rlp::encode_list([rlp::encode_bytes(&[3; 19]).as_slice(), &[0x80]]);
        assert!(ExtraData::decode(&with_item(2, &short)).is_err());
        assert!(matches!(
            ExtraData::decode(&with_item(2, &[0x80])),
            Err(QbftError::ItemKind { what: "vote", .. })
        ));
        // Rounds: zero padded (also the single byte 0x00: 0 is the empty string), a
        // non-canonical single byte, 5 bytes, a list.
        assert_eq!(
            ExtraData::decode(&with_item(3, &[0x82, 0x00, 0x07])),
            Err(QbftError::ZeroPaddedRound)
        );
        assert_eq!(
            ExtraData::decode(&with_item(3, &[0x00])),
            Err(QbftError::ZeroPaddedRound)
        );
        assert!(matches!(
            ExtraData::decode(&with_item(3, &[0x81, 0x07])),
            Err(QbftError::Rlp(_))
        ));
        assert!(matches!(
            ExtraData::decode(&with_item(3, &[0x85, 1, 0, 0, 0, 0])),
            Err(QbftError::BadScalar { what: "round", .. })
        ));
        assert!(ExtraData::decode(&with_item(3, &[0xc0])).is_err());
        // Validators: 21 bytes, or not a list.
        let long = rlp::encode_list([rlp::encode_bytes(&[1; 21]).as_slice()]);
        assert!(matches!(
            ExtraData::decode(&with_item(1, &long)),
            Err(QbftError::FieldLength { got: 21, .. })
        ));
        assert!(ExtraData::decode(&with_item(1, &[0x80])).is_err());
        // Seals: 64 bytes, v = 27, not a list.
        let seal64 = rlp::encode_list([rlp::encode_bytes(&[1; 64]).as_slice()]);
        assert!(matches!(
            ExtraData::decode(&with_item(4, &seal64)),
            Err(QbftError::MalformedSeal { index: 0, .. })
        ));
        let mut v27 = [1u8; 65];
        v27[64] = 27;
        let seal_v27 = rlp::encode_list([rlp::encode_bytes(&v27).as_slice()]);
        assert!(matches!(
            ExtraData::decode(&with_item(4, &seal_v27)),
            Err(QbftError::MalformedSeal { index: 0, .. })
        ));
        assert!(ExtraData::decode(&with_item(4, &[0x80])).is_err());
        // Vanity: 31 or 33 bytes.
        for n in [31usize, 33] {
            assert_eq!(
                ExtraData::decode(&with_item(0, &rlp::encode_bytes(&vec![5; n]))),
                Err(QbftError::VanityLength { got: n })
            );
        }
    }

    #[test]
    fn rejects_wrong_item_counts() {
        let bytes = sample().encode();
        let top = rlp::item(&bytes, "t").unwrap();
        let items: Vec<&[u8]> = rlp::list_items(top, "t")
            .unwrap()
            .iter()
            .map(|it| it.raw)
            .collect();
        assert_eq!(
            ExtraData::decode(&rlp::encode_list(items[..4].iter().copied())),
            Err(QbftError::ExtraDataItems { got: 4 })
        );
        let mut six = items.clone();
        six.push(&[0xc0]);
        assert_eq!(
            ExtraData::decode(&rlp::encode_list(six)),
            Err(QbftError::ExtraDataItems { got: 6 })
        );
        // extraData as a byte string instead of a list.
        assert!(matches!(
            ExtraData::decode(&rlp::encode_bytes(&[1; 40])),
            Err(QbftError::ItemKind { .. })
        ));
    }
}
