//! A QBFT block header kept as its raw RLP items, so that every field (15 for pre-London up to
//! 20 for Cancun) is re-encoded exactly as received.

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

/// A decoded QBFT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The raw encoding of every field.
    items: Vec<Vec<u8>>,
    parent_hash: B256,
    coinbase: Address,
    state_root: B256,
    number: u64,
    timestamp: u64,
    extra: ExtraData,
}

impl Header {
    /// Decodes a header: an RLP list of 15 to 20 items whose extraData is valid QBFT
    /// extraData. Numeric fields must be minimal scalars; hashes 32 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, QbftError> {
        let top = rlp::item(bytes, "header")?;
        let fields = rlp::list_items(top, "header")?;
        if !(15..=20).contains(&fields.len()) {
            return Err(QbftError::HeaderItems { got: fields.len() });
        }
        let parent_hash = B256::from(rlp::fixed::<32>(fields[0], "parentHash")?);
        let coinbase = Address::from(rlp::fixed::<20>(fields[2], "coinbase")?);
        let state_root = B256::from(rlp::fixed::<32>(fields[3], "stateRoot")?);
        let number = rlp::scalar_u64(fields[8], "number")?;
        let timestamp = rlp::scalar_u64(fields[11], "timestamp")?;
        let extra = ExtraData::decode(rlp::string(fields[EXTRA_DATA_INDEX], "extraData")?)?;
        Ok(Self {
            items: fields.iter().map(|f| f.raw.to_vec()).collect(),
            parent_hash,
            coinbase,
            state_root,
            number,
            timestamp,
            extra,
        })
    }

    /// Re-encodes the header; `Header::decode(b)?.encode() == b` for every valid `b`.
    pub fn encode(&self) -> Vec<u8> {
        rlp::encode_list(self.items.iter().map(Vec::as_slice))
    }

    /// Number of RLP fields (15 to 20).
    pub fn field_count(&self) -> usize {
        self.items.len()
    }

    /// The decoded extraData.
    pub fn extra_data(&self) -> &ExtraData {
        &self.extra
    }

    /// The same header with another extraData.
    pub fn with_extra_data(&self, extra: &ExtraData) -> Self {
        let mut out = self.clone();
        out.items[EXTRA_DATA_INDEX] = rlp::encode_bytes(&extra.encode());
        out.extra = extra.clone();
        out
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
        keccak256(self.encode())
    }

    /// Checks the fields every BFT header fixes: ommersHash, difficulty 1, mixHash and nonce 0.
    pub fn check_bft_constants(&self) -> Result<(), QbftError> {
        let field = |i: usize| self.items[i].as_slice();
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
        let items = self.items.iter().enumerate().map(|(i, f)| {
            if i == EXTRA_DATA_INDEX {
                extra_item.as_slice()
            } else {
                f.as_slice()
            }
        });
        keccak256(rlp::encode_list(items))
    }
}
