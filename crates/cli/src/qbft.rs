//! `kakehashi qbft ...`: QBFT header tools.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kh_qbft::{Address, B256, Header, QbftError, quorum, skip_check, verify_commit_seals};
use serde::Serialize;

use crate::output::{UsageError, print_json};

/// QBFT header tools.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode a QBFT header (15 to 21 fields), recover its seal signers and verify them with
    /// kh-qbft, naming why the library rejects them (stranger seal, duplicate, low quorum).
    Inspect(InspectArgs),
}

/// Arguments of `qbft inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The header RLP as hex (with or without 0x).
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    rlp: Option<String>,
    /// A file holding the header RLP, as hex text or raw bytes.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Check the seals with the light-client skipping rule against this trusted validator set
    /// (comma-separated addresses) instead of the header's own commit quorum.
    #[arg(long, value_delimiter = ',')]
    trusted: Option<Vec<Address>>,
    /// Print one JSON object (the only output format; accepted for uniformity).
    #[arg(long)]
    #[allow(dead_code, reason = "JSON is the only output of qbft inspect")]
    json: bool,
}

/// What `qbft inspect` prints.
#[derive(Debug, Serialize)]
struct Inspection {
    number: u64,
    hash: B256,
    seal_digest: B256,
    round: u32,
    validators: Vec<Address>,
    /// The signer of each seal in seal order; `null` for a seal that recovers no key.
    signers: Vec<Option<Address>>,
    /// Distinct validators needed: ceil(2N/3) of the header's validator set.
    quorum_needed: usize,
    /// `kh_qbft`'s verdict: true iff the library accepts the seals (commit quorum, or the
    /// skipping rule when `--trusted` is given).
    quorum: bool,
    /// Trusted validators among the signers (only with `--trusted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_overlap: Option<usize>,
    /// Why the library rejects the seals; absent when `quorum` is true.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<Failure>,
}

/// Why a header's seals were rejected.
#[derive(Debug, Serialize)]
struct Failure {
    /// `stranger_seal`, `duplicate_signer`, `insufficient_seals`,
    /// `insufficient_trusted_overlap`, `invalid_signature` or `invalid_validator_set`.
    reason: &'static str,
    /// The library's message.
    message: String,
    /// The seal at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<usize>,
    /// The signer at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<Address>,
}

impl Failure {
    fn from_error(err: &QbftError) -> Self {
        let (reason, seal, signer) = match err {
            QbftError::UnknownSigner { index, signer } => {
                ("stranger_seal", Some(*index), Some(*signer))
            }
            QbftError::DuplicateSigner { signer } => ("duplicate_signer", None, Some(*signer)),
            QbftError::InsufficientSeals { .. } => ("insufficient_seals", None, None),
            QbftError::InsufficientTrustedOverlap { .. } => {
                ("insufficient_trusted_overlap", None, None)
            }
            QbftError::InvalidSignature { index } | QbftError::MalformedSeal { index, .. } => {
                ("invalid_signature", Some(*index), None)
            }
            QbftError::InvalidValidatorSet(_) => ("invalid_validator_set", None, None),
            QbftError::Rlp(_)
            | QbftError::ItemKind { .. }
            | QbftError::TrailingBytes { .. }
            | QbftError::HeaderItems { .. }
            | QbftError::FieldLength { .. }
            | QbftError::BadScalar { .. }
            | QbftError::ZeroPaddedRound
            | QbftError::ExtraDataItems { .. }
            | QbftError::VanityLength { .. }
            | QbftError::InvalidVote(_)
            | QbftError::NotBftHeader(_) => ("invalid_header", None, None),
        };
        Self {
            reason,
            message: err.to_string(),
            seal,
            signer,
        }
    }
}

/// Runs a `qbft` subcommand.
pub(crate) fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect(args) => {
            print_json(&inspect(&read_input(&args)?, args.trusted.as_deref())?)
        }
    }
}

fn read_input(args: &InspectArgs) -> anyhow::Result<Vec<u8>> {
    match (&args.rlp, &args.file) {
        (Some(hex_text), _) => decode_hex(hex_text),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            match std::str::from_utf8(&bytes) {
                Ok(text) if is_hex_text(text) => decode_hex(text),
                _ => Ok(bytes),
            }
        }
        (None, None) => Err(UsageError("give --rlp HEX or --file F".into()).into()),
    }
}

fn is_hex_text(text: &str) -> bool {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())
}

fn decode_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let t = text.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    hex::decode(t).context("header is not valid hex")
}

/// Decodes the header and runs the library's verification on it; a header that decodes is
/// always reported, with the reason the library rejects its seals if it does.
fn inspect(rlp: &[u8], trusted: Option<&[Address]>) -> anyhow::Result<Inspection> {
    let header = Header::decode(rlp).context("not a QBFT header")?;
    let extra = header.extra_data();
    let digest = header.seal_digest();
    let signers = extra
        .seals
        .iter()
        .map(|seal| seal.recover(digest).ok())
        .collect();
    let (verdict, trusted_overlap) = match trusted {
        Some(trusted) => match skip_check(&header, trusted) {
            Ok(check) => (Ok(()), Some(check.trusted_overlap)),
            Err(err) => (Err(err), None),
        },
        None => (
            verify_commit_seals(&header, &extra.validators).map(|_| ()),
            None,
        ),
    };
    Ok(Inspection {
        number: header.number(),
        hash: header.block_hash(),
        seal_digest: digest,
        round: extra.round,
        validators: extra.validators.clone(),
        signers,
        quorum_needed: quorum(extra.validators.len()),
        quorum: verdict.is_ok(),
        trusted_overlap,
        failure: verdict.err().as_ref().map(Failure::from_error),
    })
}
