//! The node state shared by the block producer and the JSON-RPC handlers: the chain, the block
//! log, block announcements, and submission/production under the chain lock.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{B256, Bytes};
use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast;

use crate::chain::Chain;
use crate::devnet::{BlockProduction, DevAccount};
use crate::error::{ChainError, TxError};
use crate::store::{BlockLog, Record};

/// State shared by the producer and the RPC handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) chain: RwLock<Chain>,
    pub(crate) log: Mutex<Option<BlockLog>>,
    pub(crate) blocks: broadcast::Sender<u64>,
    pub(crate) production: BlockProduction,
    pub(crate) dev_accounts: Vec<DevAccount>,
}

impl Shared {
    /// Produces the next block and persists it. Blocking: call from a blocking thread.
    pub(crate) fn produce(&self) -> Result<u64, ChainError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut chain = self.chain.write();
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
        drop(chain);
        // Nobody listening is fine.
        let _ = self.blocks.send(number);
        Ok(number)
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
