//! Persistence: an append-only block log in the data directory.
//!
//! Each record is `len (u32 BE) ‖ payload ‖ keccak256(payload)[..4]`, payload =
//! `RLP([sealed header RLP, [raw EIP-2718 transactions]])`. A block is appended and synced to
//! disk (`fdatasync`) before the chain makes it visible, so no block a client has seen can be
//! lost or re-mined differently after a crash or power loss. A failed append poisons the log:
//! later appends are refused and block production stops with [`ChainError::Halted`].
//!
//! On start the log is streamed record by record (never held whole in memory) through block
//! production, and every recomputed block hash must equal the stored one, so the state is
//! rebuilt deterministically and a damaged log is detected. A torn last record (crash while
//! appending) is cut off. `chain.json` records the chain configuration the log belongs to.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use serde::{Deserialize, Serialize};
use tracing::{error, warn};

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
    file: File,
    /// Bytes of complete, synced records.
    len: u64,
    /// Records stored.
    count: u64,
    /// Set by a failed append: the file may end in a partial record, so nothing more is written.
    failed: Option<String>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ChainError + 'a {
    move |source| ChainError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Syncs a directory so that a file created or renamed in it survives a power loss.
fn sync_dir(dir: &Path) -> Result<(), ChainError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing directory", dir))
}

impl BlockLog {
    /// Opens (creating) the data directory, checks its metadata and streams the stored records,
    /// in order, to `replay` (record index, record). Returns the log, positioned for appending
    /// after the last complete record.
    pub(crate) fn open(
        dir: &Path,
        meta: &Meta,
        mut replay: impl FnMut(u64, Record) -> Result<(), ChainError>,
    ) -> Result<Self, ChainError> {
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
            let tmp = dir.join(format!("{META_FILE}.tmp"));
            let mut f = File::create(&tmp).map_err(io("writing", &tmp))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("writing", &tmp))?;
            std::fs::rename(&tmp, &meta_path).map_err(io("renaming", &meta_path))?;
        }
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        sync_dir(dir)?;
        let (count, len) = stream_records(&mut file, &path, &mut replay)?;
        let on_disk = file.metadata().map_err(io("reading", &path))?.len();
        if on_disk > len {
            warn!(
                path = %path.display(),
                bytes = on_disk - len,
                "cutting off a torn last record of the block log"
            );
            file.set_len(len)
                .and_then(|()| file.sync_all())
                .map_err(io("truncating torn record of", &path))?;
        }
        file.seek(SeekFrom::Start(len))
            .map_err(io("seeking", &path))?;
        Ok(Self {
            path,
            file,
            len,
            count,
            failed: None,
        })
    }

    /// `Err(Halted)` once an append has failed: production must stop.
    pub(crate) fn halted(&self) -> Result<(), ChainError> {
        match &self.failed {
            Some(reason) => Err(ChainError::Halted {
                number: self.count + 1,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Number of stored records.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Appends one block and syncs it to disk; when this returns `Ok` the block survives a
    /// crash or power loss. After a failure every later append is refused.
    pub(crate) fn append(&mut self, record: &Record) -> Result<(), ChainError> {
        let number = self.count + 1;
        self.halted()?;
        let mut buf = Vec::with_capacity(record.length() + 8);
        buf.extend_from_slice(&[0; 4]);
        record.encode(&mut buf);
        let payload_len = buf.len() - 4;
        let len = u32::try_from(payload_len)
            .ok()
            .filter(|l| *l as usize <= MAX_RECORD)
            .ok_or_else(|| ChainError::Halted {
                number,
                reason: format!("block record of {payload_len} bytes is too large"),
            })?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let check = keccak256(&buf[4..]);
        buf.extend_from_slice(&check[..4]);
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let reason = format!("{}: {e}", self.path.display());
            error!(block = number, error = %reason, "block log append failed; block production stops");
            // Best effort: drop the partial record so a restart finds a clean end (a torn
            // tail is cut off on open anyway).
            let _ = self.file.set_len(self.len);
            self.failed = Some(reason.clone());
            return Err(ChainError::Halted { number, reason });
        }
        self.len += buf.len() as u64;
        self.count += 1;
        Ok(())
    }

    /// Syncs to disk (every append already has; kept for shutdown).
    pub(crate) fn sync(&mut self) -> Result<(), ChainError> {
        let path = self.path.clone();
        self.file.sync_all().map_err(io("syncing", &path))
    }
}

/// Reads `buf.len()` bytes; `Ok(false)` at a clean or torn end of file.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Streams every complete record to `replay`; returns how many there were and the byte length
/// they span (anything after is a torn last record).
fn stream_records(
    file: &mut File,
    path: &Path,
    replay: &mut impl FnMut(u64, Record) -> Result<(), ChainError>,
) -> Result<(u64, u64), ChainError> {
    let total = file.metadata().map_err(io("reading", path))?.len();
    file.seek(SeekFrom::Start(0)).map_err(io("seeking", path))?;
    let mut reader = BufReader::with_capacity(1 << 20, &mut *file);
    let mut index = 0u64;
    let mut pos = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; 4];
        if !read_full(&mut reader, &mut head).map_err(io("reading", path))? {
            break; // end, or a torn length prefix
        }
        let len = u32::from_be_bytes(head) as usize;
        let end = pos + 4 + len as u64 + 4;
        if len > MAX_RECORD {
            if end > total {
                break; // a torn length prefix can look like anything
            }
            return Err(ChainError::CorruptLog {
                index,
                reason: format!("record length {len} is implausible"),
            });
        }
        payload.resize(len, 0);
        let mut check = [0u8; 4];
        if !read_full(&mut reader, &mut payload).map_err(io("reading", path))?
            || !read_full(&mut reader, &mut check).map_err(io("reading", path))?
        {
            break; // torn last record
        }
        if keccak256(&payload)[..4] != check {
            if end == total {
                break; // torn write of the final record
            }
            return Err(ChainError::CorruptLog {
                index,
                reason: "checksum mismatch".into(),
            });
        }
        let record = Record::decode(&mut &payload[..]).map_err(|e| ChainError::CorruptLog {
            index,
            reason: e.to_string(),
        })?;
        replay(index, record)?;
        index += 1;
        pos = end;
    }
    Ok((index, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_collect(dir: &Path, meta: &Meta) -> Result<(BlockLog, Vec<Record>), ChainError> {
        let mut records = Vec::new();
        let log = BlockLog::open(dir, meta, |i, r| {
            assert_eq!(i, records.len() as u64);
            records.push(r);
            Ok(())
        })?;
        Ok((log, records))
    }

    /// A replay error stops the opening and is returned as is.
    #[test]
    fn replay_errors_propagate() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            chain_id: 7,
            genesis_hash: B256::repeat_byte(1),
        };
        let mut log = BlockLog::open(dir.path(), &meta, |_, _| Ok(())).unwrap();
        let r = Record {
            header: Bytes::from_static(b"h"),
            txs: vec![],
        };
        log.append(&r).unwrap();
        drop(log);
        let err = BlockLog::open(dir.path(), &meta, |i, _| {
            Err(ChainError::CorruptLog {
                index: i,
                reason: "replay".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(err, ChainError::CorruptLog { index: 0, .. }));
    }

    /// After a failed append (here: the file was made read-only underneath the log) the log
    /// refuses every later append with `Halted`, naming the block.
    #[test]
    fn failed_append_halts() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            chain_id: 7,
            genesis_hash: B256::repeat_byte(1),
        };
        let mut log = BlockLog::open(dir.path(), &meta, |_, _| Ok(())).unwrap();
        let r = Record {
            header: Bytes::from_static(b"h"),
            txs: vec![],
        };
        log.append(&r).unwrap();
        // Swap the writable handle for a read-only one: writes now fail as on a full or
        // failing disk.
        log.file = File::open(dir.path().join(LOG_FILE)).unwrap();
        let err = log.append(&r).unwrap_err();
        assert!(matches!(err, ChainError::Halted { number: 2, .. }), "{err}");
        assert!(err.to_string().contains("block production stopped"));
        let again = log.append(&r).unwrap_err();
        assert!(matches!(again, ChainError::Halted { number: 2, .. }));
        drop(log);
        let (_, records) = open_collect(dir.path(), &meta).unwrap();
        assert_eq!(records, vec![r]);
    }

    #[test]
    fn append_reopen_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta {
            chain_id: 7,
            genesis_hash: B256::repeat_byte(1),
        };
        let mut log = BlockLog::open(dir.path(), &meta, |_, _| panic!("empty log")).unwrap();
        assert_eq!(log.count(), 0);
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
        let (log, records) = open_collect(dir.path(), &meta).unwrap();
        assert_eq!(records, vec![r1.clone(), r2.clone()]);
        assert_eq!(log.count(), 2);
        drop(log);
        // The torn bytes were cut off: a new record lands right after the second.
        let (mut log, _) = open_collect(dir.path(), &meta).unwrap();
        log.append(&r1).unwrap();
        drop(log);
        let (_, records) = open_collect(dir.path(), &meta).unwrap();
        assert_eq!(records, vec![r1.clone(), r2.clone(), r1.clone()]);
        // Another chain id is refused.
        let other = Meta {
            chain_id: 8,
            ..meta.clone()
        };
        assert!(matches!(
            open_collect(dir.path(), &other),
            Err(ChainError::ConfigMismatch { .. })
        ));
        // A flipped byte inside an earlier record is corruption, not a torn tail.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            open_collect(dir.path(), &meta),
            Err(ChainError::CorruptLog { index: 0, .. })
        ));
    }
}
