//! Installed polling filters (`eth_newFilter`, `eth_newBlockFilter`): what each watches, the
//! next block it has not reported yet, and when it was last polled. Filters nobody polls
//! expire, and their number is capped, so clients cannot make the node hold state forever.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy_rpc_types_eth::Filter;

/// A filter unpolled for this long is removed (geth's timeout).
pub(crate) const FILTER_TIMEOUT: Duration = Duration::from_secs(300);
/// Most filters installed at once.
pub(crate) const MAX_FILTERS: usize = 10_000;

/// What a filter reports.
#[derive(Debug, Clone)]
pub(crate) enum FilterKind {
    /// Logs matching the filter.
    Logs(Box<Filter>),
    /// Hashes of new blocks.
    Blocks,
}

/// One installed filter.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    pub(crate) kind: FilterKind,
    /// The first block not reported yet.
    pub(crate) next_block: u64,
    last_poll: Instant,
}

/// The installed filters by id.
#[derive(Debug, Default)]
pub(crate) struct Filters {
    map: HashMap<String, Installed>,
}

/// Too many filters are installed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too many filters installed (at most {MAX_FILTERS}); uninstall some or let them expire")]
pub(crate) struct TooManyFilters;

impl Filters {
    fn sweep(&mut self) {
        self.map
            .retain(|_, f| f.last_poll.elapsed() <= FILTER_TIMEOUT);
    }

    /// Installs a filter reporting from `next_block` on; returns its id (`0x` + 32 hex digits).
    pub(crate) fn install(
        &mut self,
        kind: FilterKind,
        next_block: u64,
    ) -> Result<String, TooManyFilters> {
        self.sweep();
        if self.map.len() >= MAX_FILTERS {
            return Err(TooManyFilters);
        }
        let id = loop {
            let bytes: [u8; 16] = rand::random();
            let id = format!("0x{}", alloy_primitives::hex::encode(bytes));
            if !self.map.contains_key(&id) {
                break id;
            }
        };
        self.map.insert(
            id.clone(),
            Installed {
                kind,
                next_block,
                last_poll: Instant::now(),
            },
        );
        Ok(id)
    }

    /// The filter `id`, marked as polled now; `None` if unknown or expired.
    pub(crate) fn poll(&mut self, id: &str) -> Option<&mut Installed> {
        let expired = self
            .map
            .get(id)
            .is_some_and(|f| f.last_poll.elapsed() > FILTER_TIMEOUT);
        if expired {
            self.map.remove(id);
            return None;
        }
        let f = self.map.get_mut(id)?;
        f.last_poll = Instant::now();
        Some(f)
    }

    /// Moves the filter `id` back to `next_block` if it is still at `expected` (a poll that
    /// claimed the blocks up to `expected` failed, and no other poll went further since).
    pub(crate) fn rewind(&mut self, id: &str, expected: u64, next_block: u64) {
        if let Some(f) = self.map.get_mut(id)
            && f.next_block == expected
        {
            f.next_block = next_block;
        }
    }

    /// Removes the filter `id`; returns whether it existed.
    pub(crate) fn uninstall(&mut self, id: &str) -> bool {
        self.map.remove(id).is_some()
    }
}
