//! Persistence: an append-only block log in the data directory.
//!
//! Each record is `len (u32 BE) ‖ payload ‖ keccak256(payload)[..4]`, payload =
//! `RLP([sealed header RLP, [raw EIP-2718 transactions]])`. On start the log is replayed through
//! block production and every recomputed block hash must equal the stored one, so the state is
//! rebuilt deterministically and a damaged log is detected. A torn last record (crash while
//! appending) is cut off. `chain.json` records the chain configuration the log belongs to.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use serde::{Deserialize, Serialize};

use crate::error::ChainError;

const LOG_FILE: &str = "blocks.log";
const META_FILE: &str = "chain.json";
/// Refuse records larger than this (a corrupt length prefix).
const MAX_RECORD: usize = 256 * 1024 * 1024;

/// One stored block.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub(crate) struct Record {
    /// The sealed header RLP.
    pub(crate) header: Bytes,
    /// Raw transactions.
    pub(crate) txs: Vec<Bytes>,
}

/// What the data directory was created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Meta {
    pub(crate) chain_id: u64,
    pub(crate) genesis_hash: B256,
}

/// The open block log.
#[derive(Debug)]
pub(crate) struct BlockLog {
    path: PathBuf,
    out: BufWriter<File>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ChainError + 'a {
    move |source| ChainError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl BlockLog {
    /// Opens (creating) the data directory, checks its metadata and returns the log with the
    /// records already stored.
    pub(crate) fn open(dir: &Path, meta: &Meta) -> Result<(Self, Vec<Record>), ChainError> {
        std::fs::create_dir_all(dir).map_err(io("creating data directory", dir))?;
        let meta_path = dir.join(META_FILE);
        if meta_path.exists() {
            let text = std::fs::read_to_string(&meta_path).map_err(io("reading", &meta_path))?;
            let stored: Meta = serde_json::from_str(&text)
                .map_err(|e| ChainError::Config(format!("{}: {e}", meta_path.display())))?;
            if stored.chain_id != meta.chain_id {
                return Err(ChainError::ConfigMismatch {
                    key: "chain id",
                    stored: stored.chain_id.to_string(),
                    given: meta.chain_id.to_string(),
                });
            }
            if stored.genesis_hash != meta.genesis_hash {
                return Err(ChainError::ConfigMismatch {
                    key: "genesis (validators, accounts)",
                    stored: stored.genesis_hash.to_string(),
                    given: meta.genesis_hash.to_string(),
                });
            }
        } else {
            let text = serde_json::to_string_pretty(meta)
                .map_err(|e| ChainError::Config(e.to_string()))?;
            std::fs::write(&meta_path, text).map_err(io("writing", &meta_path))?;
        }
        let path = dir.join(LOG_FILE);
        let (records, valid_len) = if path.exists() {
            read_records(&path)?
        } else {
            (vec![], 0)
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        file.set_len(valid_len)
            .map_err(io("truncating torn record of", &path))?;
        let mut out = BufWriter::new(file);
        std::io::Seek::seek(&mut out, std::io::SeekFrom::End(0)).map_err(io("seeking", &path))?;
        Ok((Self { path, out }, records))
    }

    /// Appends one block and flushes it to the OS.
    pub(crate) fn append(&mut self, record: &Record) -> Result<(), ChainError> {
        let mut payload = Vec::with_capacity(record.length());
        record.encode(&mut payload);
        let len = u32::try_from(payload.len())
            .map_err(|_| ChainError::Config("block record over 4 GiB".into()))?;
        let check = keccak256(&payload);
        let path = self.path.clone();
        self.out
            .write_all(&len.to_be_bytes())
            .map_err(io("appending to", &path))?;
        self.out
            .write_all(&payload)
            .map_err(io("appending to", &path))?;
        self.out
            .write_all(&check[..4])
            .map_err(io("appending to", &path))?;
        self.out.flush().map_err(io("flushing", &path))?;
        Ok(())
    }

    /// Flushes and syncs to disk.
    pub(crate) fn sync(&mut self) -> Result<(), ChainError> {
        let path = self.path.clone();
        self.out.flush().map_err(io("flushing", &path))?;
        self.out.get_ref().sync_all().map_err(io("syncing", &path))
    }
}

/// Reads every complete record; returns them and the byte length they span.
fn read_records(path: &Path) -> Result<(Vec<Record>, u64), ChainError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(io("reading", path))?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = &bytes[pos..];
        if rest.len() < 4 {
            break; // end, or a torn length prefix
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_RECORD {
            return Err(ChainError::CorruptLog {
                index: records.len() as u64,
                reason: format!("record length {len} is implausible"),
            });
        }
        if rest.len() < 4 + len + 4 {
            break; // torn last record
        }
        let payload = &rest[4..4 + len];
        if keccak256(payload)[..4] != rest[4 + len..4 + len + 4] {
            let last = rest.len() == 4 + len + 4;
            if last {
                break; // torn write of the final record
            }
            return Err(ChainError::CorruptLog {
                index: records.len() as u64,
                reason: "checksum mismatch".into(),
            });
        }
        let record = Record::decode(&mut &payload[..]).map_err(|e| ChainError::CorruptLog {
            index: records.len() as u64,
            reason: e.to_string(),
        })?;
        records.push(record);
        pos += 4 + len + 4;
    }
    Ok((records, pos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            chain_id: 7,
            genesis_hash: B256::repeat_byte(1),
        };
        let (mut log, records) = BlockLog::open(dir.path(), &meta).unwrap();
        assert!(records.is_empty());
        let r1 = Record {
            header: Bytes::from_static(b"h1"),
            txs: vec![Bytes::from_static(b"t")],
        };
        let r2 = Record {
            header: Bytes::from_static(b"h2"),
            txs: vec![],
        };
        log.append(&r1).unwrap();
        log.append(&r2).unwrap();
        log.sync().unwrap();
        drop(log);
        // A torn third record is cut off.
        let path = dir.path().join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(f);
        let (_, records) = BlockLog::open(dir.path(), &meta).unwrap();
        assert_eq!(records, vec![r1.clone(), r2.clone()]);
        // Another chain id is refused.
        let other = Meta {
            chain_id: 8,
            ..meta.clone()
        };
        assert!(matches!(
            BlockLog::open(dir.path(), &other),
            Err(ChainError::ConfigMismatch { .. })
        ));
        // A flipped byte inside an earlier record is corruption, not a torn tail.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            BlockLog::open(dir.path(), &meta),
            Err(ChainError::CorruptLog { index: 0, .. })
        ));
    }
}
