//! Size-bounded eviction: least recently used first.
//!
//! Recency costs nothing on disk: entry ids grow with store time, so sled's key order is the
//! order entries were stored in, and hits since start are remembered in memory. The least
//! recently used entries are then: first those not hit since start, oldest stored first; then
//! those hit, least recently hit first. After a restart every entry's recency falls back to
//! its store time until it is hit again, which only makes eviction more conservative towards
//! old entries that were popular before the restart.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{now_millis, EntryId, Store, StoreError};

/// When each entry was last served, for entries served since start. Only kept when a bound is
/// configured.
pub struct Recency {
    bounded: bool,
    last_hit: Mutex<HashMap<EntryId, u64>>,
}

impl Recency {
    pub fn new(max_entries: u64) -> Self {
        Self {
            bounded: max_entries > 0,
            last_hit: Mutex::new(HashMap::new()),
        }
    }

    /// Notes that `id` was just served.
    pub fn touch(&self, id: EntryId) {
        if self.bounded {
            self.last_hit
                .lock()
                .expect("recency poisoned")
                .insert(id, now_millis());
        }
    }

    /// The `count` least recently used entries, in eviction order.
    pub fn victims(&self, store: &Store, count: usize) -> Result<Vec<EntryId>, StoreError> {
        let last_hit = self.last_hit.lock().expect("recency poisoned").clone();
        let mut victims = store.oldest(|id| last_hit.contains_key(&id), count)?;
        if victims.len() < count {
            let mut hit: Vec<(u64, EntryId)> = last_hit.iter().map(|(id, at)| (*at, *id)).collect();
            hit.sort_unstable();
            victims.extend(
                hit.into_iter()
                    .map(|(_, id)| id)
                    .take(count - victims.len()),
            );
        }
        Ok(victims)
    }

    /// Forgets entries that are gone.
    pub fn forget(&self, ids: &[EntryId]) {
        let mut last_hit = self.last_hit.lock().expect("recency poisoned");
        for id in ids {
            last_hit.remove(id);
        }
    }
}
