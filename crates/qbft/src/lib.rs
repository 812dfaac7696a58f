//! QBFT (Hyperledger Besu / GoQuorum, header-validator mode) header codec and commit rules.
//!
//! Owns: the QBFT `extraData` codec ([`ExtraData`]), the header as its raw RLP items
//! ([`RawHeader`] for any 15-to-21-field header up to Prague, [`Header`] with QBFT extraData; every field
//! re-encoded unchanged), the committed-seal digest and the
//! on-chain block hash rule, seal signing and signer recovery ([`Seal`]), and the quorum rules
//! (commit quorum and the light-client skipping rule, [`verify_commit_seals`], [`verify_skip`]).
//!
//! Does not own: block production or vote tallying (`kh-evm-chain`), light-client state and
//! trusting periods (`kh-elc`). Pure library: no I/O, no async.
//!
//! ```
//! use kh_qbft::{ExtraData, quorum};
//! let extra = ExtraData { vanity: [0; 32], validators: vec![], vote: None, round: 0, seals: vec![] };
//! assert_eq!(ExtraData::decode(&extra.encode()).unwrap(), extra);
//! assert_eq!(quorum(4), 3);
//! ```
//!
//! ## Feature Flags
//! None.

mod error;
mod extra_data;
mod header;
mod rlp;
mod seal;
mod verify;

pub use error::QbftError;
pub use extra_data::{ExtraData, Vote, VoteKind};
pub use header::{
    BFT_MIX_HASH, EMPTY_OMMERS_HASH, Header, MAX_HEADER_FIELDS, MIN_HEADER_FIELDS, RawHeader,
};
pub use seal::{Seal, address_of, sign_seal};
pub use verify::{SkipCheck, quorum, skip_check, verify_commit_seals, verify_skip};

pub use alloy_primitives::{Address, B256};
