//! The node state shared by the block producer and the JSON-RPC handlers: the chain, the block
//! log, block announcements, and submission/production under the chain lock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{B256, Bytes};
use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast;
use tracing::warn;

use crate::chain::Chain;
use crate::devnet::{BlockProduction, DevAccount};
use crate::error::{ChainError, TxError};
use crate::filters::Filters;
use crate::store::{BlockLog, Record};

/// State shared by the producer and the RPC handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) chain: RwLock<Chain>,
    pub(crate) log: Mutex<Option<BlockLog>>,
    pub(crate) blocks: broadcast::Sender<u64>,
    pub(crate) production: BlockProduction,
    pub(crate) dev_accounts: Vec<DevAccount>,
    /// Whole seconds a block's timestamp must be past its parent's: 1 for periods of a second
    /// or more, 0 for sub-second periods and instant mode (blocks may then share a second).
    pub(crate) min_gap: u64,
    /// Whether the `qbft_*` vote methods are served.
    pub(crate) admin: bool,
    /// Installed polling filters (`eth_newFilter` and friends).
    pub(crate) filters: Mutex<Filters>,
    /// Permits for expensive requests (see `rpc::heavy`).
    pub(crate) heavy: tokio::sync::Semaphore,
}

/// Milliseconds since the Unix epoch by the wall clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Shared {
    /// Produces the next block and persists it. Blocking: call from a blocking thread.
    ///
    /// The block's timestamp is the wall clock's second, never ahead of it: when blocks must
    /// be a second apart and the parent's next second has not come yet, this waits for it
    /// rather than stamping a time still to come.
    pub(crate) fn produce(&self) -> Result<u64, ChainError> {
        let mut chain = loop {
            let chain = self.chain.write();
            let earliest_ms = chain
                .head()
                .header
                .timestamp
                .saturating_add(self.min_gap)
                .saturating_mul(1000);
            let now = now_ms();
            if now >= earliest_ms {
                break chain;
            }
            drop(chain);
            let wait = earliest_ms - now;
            if wait > self.min_gap.saturating_mul(1000) + 1000 {
                warn!(
                    wait_ms = wait,
                    "the wall clock is behind the head block's timestamp; waiting for it"
                );
            }
            std::thread::sleep(Duration::from_millis(wait.min(1000)));
        };
        let now = now_ms() / 1000;
        let mut log = self.log.lock();
        let number = match log.as_mut() {
            // The block is synced to disk before it joins the chain and the lock is released.
            Some(log) => {
                log.halted()?;
                chain
                    .produce_block_with(now, |block, raws| {
                        log.append(&Record {
                            header: Bytes::from(alloy_rlp::encode(&block.header)),
                            txs: raws.to_vec(),
                        })
                    })?
                    .header
                    .number
            }
            None => chain.produce_block(now)?.header.number,
        };
        drop(log);
        // Announced under the chain lock, so announcements go out in block order. Nobody
        // listening is fine.
        let _ = self.blocks.send(number);
        drop(chain);
        Ok(number)
    }

    /// Whether an idle producer should skip this tick: the pool is empty and the head is
    /// younger than `empty_period` (Besu's `emptyblockperiodseconds`).
    pub(crate) fn skip_empty(&self, empty_period: Duration) -> bool {
        let chain = self.chain.read();
        if chain.pool_len() > 0 {
            return false;
        }
        let head_ms = chain.head().header.timestamp.saturating_mul(1000);
        let due =
            head_ms.saturating_add(u64::try_from(empty_period.as_millis()).unwrap_or(u64::MAX));
        now_ms() < due
    }

    /// Submits a transaction; in instant mode mines it before returning.
    pub(crate) fn submit(&self, raw: &[u8]) -> Result<B256, SubmitError> {
        let decoded = Chain::decode_tx(raw)?;
        let hash = self.chain.write().submit_decoded(decoded)?;
        // A concurrent submission may already have mined this transaction: only mine when
        // something is still waiting, so instant mode never seals empty blocks.
        if self.production == BlockProduction::Instant && self.chain.read().pool_len() > 0 {
            self.produce()?;
        }
        Ok(hash)
    }
}

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}
