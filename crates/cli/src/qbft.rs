//! `kakehashi qbft ...`: QBFT header tools.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kh_qbft::{Address, B256, Header, quorum};
use serde::Serialize;

use crate::output::{UsageError, print_json};

/// QBFT header tools.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode a QBFT header, recover its committed-seal signers and check the quorum.
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
    signers: Vec<Address>,
    quorum: bool,
}

/// Runs a `qbft` subcommand.
pub(crate) fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Inspect(args) => print_json(&inspect(&read_input(&args)?)?),
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

fn inspect(rlp: &[u8]) -> anyhow::Result<Inspection> {
    let header = Header::decode(rlp).context("not a QBFT header")?;
    let extra = header.extra_data();
    let digest = header.seal_digest();
    let mut signers = Vec::with_capacity(extra.seals.len());
    for (i, seal) in extra.seals.iter().enumerate() {
        let signer = seal
            .recover(digest)
            .with_context(|| format!("seal {i} does not recover a signer"))?;
        signers.push(signer);
    }
    let mut distinct_members: Vec<&Address> = signers
        .iter()
        .filter(|s| extra.validators.contains(s))
        .collect();
    distinct_members.sort();
    distinct_members.dedup();
    Ok(Inspection {
        number: header.number(),
        hash: header.block_hash(),
        seal_digest: digest,
        round: extra.round,
        quorum: !extra.validators.is_empty()
            && distinct_members.len() >= quorum(extra.validators.len()),
        validators: extra.validators.clone(),
        signers,
    })
}
