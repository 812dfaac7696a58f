//! A QBFT block header kept as its raw RLP items, so that every field (15 for pre-London up to
//! 21 for Prague) is re-encoded exactly as received.

use alloy_primitives::{Address, B256, b256, keccak256};

use crate::rlp;
use crate::{ExtraData, QbftError};

/// keccak256(RLP([])): the ommers hash of every BFT block.
pub const EMPTY_OMMERS_HASH: B256 =
    b256!("1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347");
/// The mixHash of every BFT block: "Byzantine fault tolerance" in ASCII (Besu).
pub const BFT_MIX_HASH: B256 =
    b256!("63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365");

const EXTRA_DATA_INDEX: usize = 12;

/// Fewest fields of a header: the 15 of Frontier to Berlin.
pub const MIN_HEADER_FIELDS: usize = 15;
/// Most fields of a header: Prague's 21 (London adds `baseFeePerGas`, Shanghai
/// `withdrawalsRoot`, Cancun `blobGasUsed`, `excessBlobGas` and `parentBeaconBlockRoot`, Prague
/// `requestsHash`).
pub const MAX_HEADER_FIELDS: usize = 21;

/// A block header as its raw RLP fields (15 for pre-London up to 21 for Prague), without any
/// interpretation of extraData: it decodes any canonical Ethereum-style header (QBFT, IBFT 2.0,
/// clique, ...) and re-encodes it byte for byte. [`Header`] adds the QBFT meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawHeader {
    /// The raw encoding of every field.
    items: Vec<Vec<u8>>,
}

impl RawHeader {
    /// Decodes a canonical RLP list of 15 to 21 byte strings, with no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, QbftError> {
        let top = rlp::item(bytes, "header")?;
        let fields = rlp::list_items(top, "header")?;
        if !(MIN_HEADER_FIELDS..=MAX_HEADER_FIELDS).contains(&fields.len()) {
            return Err(QbftError::HeaderItems { got: fields.len() });
        }
        if fields.iter().any(|f| f.list) {
            return Err(QbftError::ItemKind {
                what: "header field",
                expected: "string",
            });
        }
        Ok(Self {
            items: fields.iter().map(|f| f.raw.to_vec()).collect(),
        })
    }

    /// Re-encodes the header; `RawHeader::decode(b)?.encode() == b` for every valid `b`.
    pub fn encode(&self) -> Vec<u8> {
        rlp::encode_list(self.items.iter().map(Vec::as_slice))
    }

    /// Number of RLP fields (15 to 21).
    pub fn field_count(&self) -> usize {
        self.items.len()
    }

    /// The raw RLP encoding of field `index` (0 = parentHash, 12 = extraData), if present.
    pub fn field(&self, index: usize) -> Option<&[u8]> {
        self.items.get(index).map(Vec::as_slice)
    }

    /// The payload of the extraData field (its bytes without the RLP string header).
    pub fn extra_data_bytes(&self) -> Result<&[u8], QbftError> {
        let it = rlp::item(&self.items[EXTRA_DATA_INDEX], "extraData")?;
        rlp::string(it, "extraData")
    }

    /// The same header with the extraData field replaced by `extra` (raw extraData bytes).
    pub fn with_extra_data_bytes(&self, extra: &[u8]) -> Self {
        let mut out = self.clone();
        out.items[EXTRA_DATA_INDEX] = rlp::encode_bytes(extra);
        out
    }

    /// keccak256 of the header exactly as encoded.
    pub fn hash(&self) -> B256 {
        keccak256(self.encode())
    }

    fn item(&self, index: usize, what: &'static str) -> Result<rlp::RawItem<'_>, QbftError> {
        rlp::item(&self.items[index], what)
    }
}

/// A decoded QBFT header: the raw fields plus the parsed QBFT extraData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    raw: RawHeader,
    parent_hash: B256,
    coinbase: Address,
    state_root: B256,
    number: u64,
    timestamp: u64,
    extra: ExtraData,
}

impl Header {
    /// Decodes a header: an RLP list of 15 to 21 items whose extraData is valid QBFT
    /// extraData. Numeric fields must be minimal scalars; hashes 32 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, QbftError> {
        Self::from_raw(RawHeader::decode(bytes)?)
    }

    /// Interprets a raw header as a QBFT header (strict extraData decoding).
    pub fn from_raw(raw: RawHeader) -> Result<Self, QbftError> {
        let parent_hash = B256::from(rlp::fixed::<32>(raw.item(0, "parentHash")?, "parentHash")?);
        let coinbase = Address::from(rlp::fixed::<20>(raw.item(2, "coinbase")?, "coinbase")?);
        let state_root = B256::from(rlp::fixed::<32>(raw.item(3, "stateRoot")?, "stateRoot")?);
        let number = rlp::scalar_u64(raw.item(8, "number")?, "number")?;
        let timestamp = rlp::scalar_u64(raw.item(11, "timestamp")?, "timestamp")?;
        let extra = ExtraData::decode(raw.extra_data_bytes()?)?;
        Ok(Self {
            raw,
            parent_hash,
            coinbase,
            state_root,
            number,
            timestamp,
            extra,
        })
    }

    /// The raw fields.
    pub fn raw(&self) -> &RawHeader {
        &self.raw
    }

    /// Re-encodes the header; `Header::decode(b)?.encode() == b` for every valid `b`.
    pub fn encode(&self) -> Vec<u8> {
        self.raw.encode()
    }

    /// Number of RLP fields (15 to 21).
    pub fn field_count(&self) -> usize {
        self.raw.field_count()
    }

    /// The decoded extraData.
    pub fn extra_data(&self) -> &ExtraData {
        &self.extra
    }

    /// The same header with another extraData.
    pub fn with_extra_data(&self, extra: &ExtraData) -> Self {
        Self {
            raw: self.raw.with_extra_data_bytes(&extra.encode()),
            extra: extra.clone(),
            ..self.clone()
        }
    }

    /// Block number.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Block timestamp (seconds).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Parent block hash.
    pub fn parent_hash(&self) -> B256 {
        self.parent_hash
    }

    /// The proposer (coinbase / beneficiary).
    pub fn coinbase(&self) -> Address {
        self.coinbase
    }

    /// World-state root.
    pub fn state_root(&self) -> B256 {
        self.state_root
    }

    /// keccak256 of the header with extraData in its committed-seal form (seals removed,
    /// round kept): the message every committed seal signs.
    pub fn seal_digest(&self) -> B256 {
        self.hash_with_extra(&self.extra.encode_for_seal())
    }

    /// The on-chain block hash (Besu QBFT rule): keccak256 of the header with extraData
    /// re-encoded with round 0 and no seals.
    pub fn block_hash(&self) -> B256 {
        self.hash_with_extra(&self.extra.encode_for_hash())
    }

    /// keccak256 of the header exactly as encoded (seals included). Not the block hash.
    pub fn raw_hash(&self) -> B256 {
        self.raw.hash()
    }

    /// Checks the fields every BFT header fixes: ommersHash, difficulty 1, mixHash and nonce 0.
    pub fn check_bft_constants(&self) -> Result<(), QbftError> {
        let field = |i: usize| self.raw.items[i].as_slice();
        let ommers = rlp::encode_bytes(EMPTY_OMMERS_HASH.as_slice());
        if field(1) != ommers.as_slice() {
            return Err(QbftError::NotBftHeader("ommersHash"));
        }
        if field(7) != [0x01] {
            return Err(QbftError::NotBftHeader("difficulty"));
        }
        if field(13) != rlp::encode_bytes(BFT_MIX_HASH.as_slice()).as_slice() {
            return Err(QbftError::NotBftHeader("mixHash"));
        }
        if field(14) != rlp::encode_bytes(&[0u8; 8]).as_slice() {
            return Err(QbftError::NotBftHeader("nonce"));
        }
        Ok(())
    }

    fn hash_with_extra(&self, extra: &[u8]) -> B256 {
        let extra_item = rlp::encode_bytes(extra);
        let items = self.raw.items.iter().enumerate().map(|(i, f)| {
            if i == EXTRA_DATA_INDEX {
                extra_item.as_slice()
            } else {
                f.as_slice()
            }
        });
        keccak256(rlp::encode_list(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Seal, Vote, VoteKind};
    use proptest::prelude::*;

    fn scalar(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        alloy_rlp::Encodable::encode(&v, &mut out);
        out
    }

    /// A BFT header with `fields` items (15..=21) around `extra`.
    fn header_bytes(fields: usize, number: u64, timestamp: u64, extra: &ExtraData) -> Vec<u8> {
        let mut items: Vec<Vec<u8>> = vec![
            rlp::encode_bytes(&[0x11; 32]),                  // parentHash
            rlp::encode_bytes(EMPTY_OMMERS_HASH.as_slice()), // ommersHash
            rlp::encode_bytes(&[0x22; 20]),                  // coinbase
            rlp::encode_bytes(&[0x33; 32]),                  // stateRoot
            rlp::encode_bytes(&[0x44; 32]),                  // transactionsRoot
            rlp::encode_bytes(&[0x55; 32]),                  // receiptsRoot
            rlp::encode_bytes(&[0u8; 256]),                  // logsBloom
            scalar(1),                                       // difficulty
            scalar(number),
            scalar(30_000_000), // gasLimit
            scalar(21_000),     // gasUsed
            scalar(timestamp),
            rlp::encode_bytes(&extra.encode()),
            rlp::encode_bytes(BFT_MIX_HASH.as_slice()),
            rlp::encode_bytes(&[0u8; 8]),
        ];
        let tail = [
            scalar(7),                      // baseFeePerGas
            rlp::encode_bytes(&[0x66; 32]), // withdrawalsRoot
            scalar(0),                      // blobGasUsed
            scalar(0),                      // excessBlobGas
            rlp::encode_bytes(&[0x77; 32]), // parentBeaconBlockRoot
            rlp::encode_bytes(&[0x88; 32]), // requestsHash
        ];
        items.extend(tail.into_iter().take(fields - 15));
        rlp::encode_list(items.iter().map(Vec::as_slice))
    }

    fn sample_extra() -> ExtraData {
        ExtraData {
            vanity: [9; 32],
            validators: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
            vote: Some(Vote {
                recipient: Address::repeat_byte(3),
                kind: VoteKind::Drop,
            }),
            round: 2,
            seals: vec![Seal([1; 65].map(|b| b & 1))],
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            fields in 15usize..=21,
            number in any::<u64>(),
            timestamp in any::<u64>(),
            validators in proptest::collection::vec(any::<[u8; 20]>(), 0..6),
            round in any::<u32>(),
        ) {
            let extra = ExtraData {
                validators: validators.into_iter().map(Address::from).collect(),
                round,
                ..sample_extra()
            };
            let bytes = header_bytes(fields, number, timestamp, &extra);
            let header = Header::decode(&bytes).unwrap();
            prop_assert_eq!(header.encode(), bytes.clone());
            prop_assert_eq!(RawHeader::decode(&bytes).unwrap().encode(), bytes);
            prop_assert_eq!(header.field_count(), fields);
            prop_assert_eq!(header.number(), number);
            prop_assert_eq!(header.timestamp(), timestamp);
            prop_assert_eq!(header.extra_data(), &extra);
            prop_assert!(header.check_bft_constants().is_ok());
            // The digest forms only touch extraData.
            let unsealed = header.with_extra_data(&ExtraData { seals: vec![], ..extra.clone() });
            prop_assert_eq!(unsealed.seal_digest(), header.seal_digest());
            prop_assert_eq!(keccak256(unsealed.encode()), header.seal_digest());
            let zero_round = header.with_extra_data(&ExtraData { seals: vec![], round: 0, ..extra });
            prop_assert_eq!(keccak256(zero_round.encode()), header.block_hash());
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
            if let Ok(header) = Header::decode(&bytes) {
                prop_assert_eq!(header.encode(), bytes.clone());
            }
            if let Ok(raw) = RawHeader::decode(&bytes) {
                prop_assert_eq!(raw.encode(), bytes);
            }
        }

        #[test]
        fn mutated_header_never_panics(
            fields in 15usize..=21,
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = header_bytes(fields, 9, 10, &sample_extra());
            let i = index.index(bytes.len());
            bytes[i] = byte;
            if let Ok(header) = Header::decode(&bytes) {
                prop_assert_eq!(header.encode(), bytes);
            }
        }
    }

    #[test]
    fn rejects_wrong_field_counts() {
        let extra = sample_extra();
        let good = header_bytes(15, 1, 1, &extra);
        let raw = RawHeader::decode(&good).unwrap();
        let items: Vec<&[u8]> = (0..15).filter_map(|i| raw.field(i)).collect();
        let fourteen = rlp::encode_list(items[..14].iter().copied());
        assert_eq!(
            Header::decode(&fourteen).unwrap_err(),
            QbftError::HeaderItems { got: 14 }
        );
        let full = header_bytes(21, 1, 1, &extra);
        let raw = RawHeader::decode(&full).unwrap();
        let mut items: Vec<&[u8]> = (0..21).filter_map(|i| raw.field(i)).collect();
        assert_eq!(items.len(), 21);
        items.push(&[0x80]);
        let twenty_two = rlp::encode_list(items.iter().copied());
        assert_eq!(
            Header::decode(&twenty_two).unwrap_err(),
            QbftError::HeaderItems { got: 22 }
        );
        assert_eq!(
            RawHeader::decode(&twenty_two).unwrap_err(),
            QbftError::HeaderItems { got: 22 }
        );
    }

    #[test]
    fn rejects_list_fields_and_bad_scalars() {
        let extra = sample_extra();
        let raw = RawHeader::decode(&header_bytes(15, 1, 1, &extra)).unwrap();
        let with = |index: usize, item: &[u8]| {
            let items: Vec<&[u8]> = (0..15)
                .map(|i| {
                    if i == index {
                        item
                    } else {
                        raw.field(i).unwrap()
                    }
                })
                .collect();
            rlp::encode_list(items.iter().copied())
        };
        // A list where a byte string belongs.
        assert!(matches!(
            RawHeader::decode(&with(7, &[0xc0])),
            Err(QbftError::ItemKind { .. })
        ));
        // number of 9 bytes (>= 2^64) and a zero-padded timestamp.
        let nine = rlp::encode_bytes(&[1, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Header::decode(&with(8, &nine)).unwrap_err(),
            QbftError::BadScalar {
                what: "number",
                max_bytes: 8
            }
        );
        assert!(matches!(
            Header::decode(&with(11, &[0x82, 0x00, 0x01])),
            Err(QbftError::BadScalar {
                what: "timestamp",
                ..
            })
        ));
        // A 19-byte coinbase.
        assert!(matches!(
            Header::decode(&with(2, &rlp::encode_bytes(&[1; 19]))),
            Err(QbftError::FieldLength {
                what: "coinbase",
                got: 19,
                expected: 20
            })
        ));
        // BFT constants.
        let header = Header::decode(&with(7, &scalar(2))).unwrap();
        assert_eq!(
            header.check_bft_constants(),
            Err(QbftError::NotBftHeader("difficulty"))
        );
    }

    #[test]
    fn rejects_non_canonical_rlp() {
        let extra = sample_extra();
        let good = header_bytes(15, 1, 1, &extra);
        let raw = RawHeader::decode(&good).unwrap();
        let with = |index: usize, item: &[u8]| {
            let items: Vec<&[u8]> = (0..15)
                .map(|i| {
                    if i == index {
                        item
                    } else {
                        raw.field(i).unwrap()
                    }
                })
                .collect();
            rlp::encode_list(items.iter().copied())
        };
        // Difficulty 1 as a one-byte string (0x81 0x01) instead of the byte itself.
        assert!(matches!(
            RawHeader::decode(&with(7, &[0x81, 0x01])),
            Err(QbftError::Rlp(_))
        ));
        // A 20-byte coinbase in long form (0xb8 0x14 ...).
        let mut long = vec![0xb8, 20];
        long.extend_from_slice(&[0x22; 20]);
        assert!(matches!(
            RawHeader::decode(&with(2, &long)),
            Err(QbftError::Rlp(_))
        ));
        // The outer list length with a leading zero byte.
        let payload = &good[3..];
        let mut padded = vec![0xfa, 0x00, good[1], good[2]];
        padded.extend_from_slice(payload);
        assert_eq!(good[0], 0xf9);
        assert!(matches!(RawHeader::decode(&padded), Err(QbftError::Rlp(_))));
        // Trailing bytes and truncation.
        let mut trailing = good.clone();
        trailing.push(0x80);
        assert!(matches!(
            RawHeader::decode(&trailing),
            Err(QbftError::TrailingBytes { .. })
        ));
        assert!(RawHeader::decode(&good[..good.len() - 1]).is_err());
    }
}
