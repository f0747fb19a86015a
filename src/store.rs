//! The source of truth: cache entries, their vectors and exact keys, in sled.
//!
//! Everything the sidecar needs to serve survives here; the HNSW graphs are only checkpoints of
//! it and can always be rebuilt from these trees. One store is one sled transaction over all the
//! trees it touches, so a crash never leaves an exact key pointing at a missing entry.
//!
//! Trees (all keys big-endian so that ranges sort by id):
//! - `entries`:  entry id → [`StoredEntry`]
//! - `exact`:    scope ‖ exact key → entry id
//! - `members`:  scope ‖ entry id → ()          (which entries a scope holds)
//! - `scopes`:   scope → [`ScopeInfo`]
//! - `tenants`:  tenant ‖ 0 ‖ scope → ()        (which scopes a tenant owns)
//! - `meta`:     checkpoint records and other bookkeeping
//! - `ledger`:   time ‖ id → one metered charge (see `meter`)
//! - `expiry`:   expiry time ‖ entry id → ()   (what the sweeper removes, in time order)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use tokio::sync::oneshot;

use crate::config::{StorageConfig, SyncPolicy};
use crate::scope::{ScopeKey, TextHash};

pub type EntryId = u64;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the data volume is full ({0}); free space or grow the volume. Nothing was stored")]
    DiskFull(String),
    #[error("storage failure: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        match &err {
            sled::Error::Io(io) if is_disk_full(io) => Self::DiskFull(io.to_string()),
            sled::Error::Corruption { .. } => Self::Corrupt(err.to_string()),
            _ => Self::Io(err.to_string()),
        }
    }
}

fn is_disk_full(err: &std::io::Error) -> bool {
    const ENOSPC: i32 = 28;
    err.kind() == std::io::ErrorKind::StorageFull || err.raw_os_error() == Some(ENOSPC)
}

/// Token usage reported by the model for one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// Who paid for an answer; kept with the entry for showback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    pub department: String,
    pub workflow: String,
    pub job_id: String,
}

/// How the earlier turns of a stored chat are compared with a new chat's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub scope: ScopeKey,
    pub tenant: String,
    pub exact_key: TextHash,
    pub query: String,
    pub context: String,
    pub context_hash: TextHash,
    /// Embedding of the query; `None` when the query was too long to embed whole, which makes
    /// the entry servable by exact match only.
    pub query_vector: Option<Vec<f32>>,
    /// Embedding of the context, when there is one that fits the model's window.
    pub context_vector: Option<Vec<f32>>,
    pub answer: String,
    /// The model that produced the answer.
    pub answered_by: String,
    pub usage: Usage,
    pub labels: Labels,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds from which the entry is no longer served.
    pub expires_at: Option<u64>,
}

impl StoredEntry {
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|t| now >= t)
    }
}

/// What a scope is, for listing and for tenant-wide invalidation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeInfo {
    pub tenant: String,
    pub model: String,
}

/// Result of [`Store::insert`].
#[derive(Debug, Clone, Copy)]
pub struct Inserted {
    pub id: EntryId,
    /// The entry with the same exact key that this one replaced.
    pub replaced: Option<EntryId>,
}

pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    entries: sled::Tree,
    exact: sled::Tree,
    members: sled::Tree,
    scopes: sled::Tree,
    tenants: sled::Tree,
    meta: sled::Tree,
    ledger: sled::Tree,
    expiry: sled::Tree,
    sync: SyncPolicy,
    dir: PathBuf,
    min_free_bytes: u64,
    group_commit: Arc<GroupCommit>,
    /// Live entries. sled's `len()` reads every entry (gigabytes at a million entries), so the
    /// count is taken once at open from the small `members` keys and kept up to date here.
    live: Arc<AtomicUsize>,
}

/// Someone waiting for what they wrote to reach the disk.
type FlushWaiter = oneshot::Sender<Result<(), StoreError>>;

/// Group commit: one thread fsyncs sled for everyone who asked since its last flush, so
/// concurrent stores share one fsync instead of queueing for one each. (sled's own
/// `flush_async` can deadlock its I/O pool when many flushes run at once.)
struct GroupCommit {
    waiters: Mutex<Option<std::sync::mpsc::Sender<FlushWaiter>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl GroupCommit {
    fn start(db: sled::Db) -> Result<Self, StoreError> {
        let (sender, waiters) = std::sync::mpsc::channel::<FlushWaiter>();
        let thread = std::thread::Builder::new()
            .name("cachet-commit".into())
            .spawn(move || {
                while let Ok(first) = waiters.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiters.try_iter());
                    let result = db.flush().map(drop).map_err(StoreError::from);
                    for waiter in batch {
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the commit thread: {e}")))?;
        Ok(Self {
            waiters: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let gone = || StoreError::Io("the commit thread has stopped".into());
        let (done, flushed) = oneshot::channel();
        self.waiters
            .lock()
            .expect("commit lock poisoned")
            .as_ref()
            .ok_or_else(gone)?
            .send(done)
            .map_err(|_| gone())?;
        flushed.await.map_err(|_| gone())?
    }
}

impl Drop for GroupCommit {
    /// Stops the thread and waits for it, so that the database (which the thread shares) is
    /// closed when the last store handle is dropped.
    fn drop(&mut self) {
        self.waiters.lock().expect("commit lock poisoned").take();
        if let Some(thread) = self.thread.lock().expect("commit lock poisoned").take() {
            let _ = thread.join();
        }
    }
}

/// Opens sled, waiting a little for its lock. sled releases the lock of a database only after
/// its own background flusher has stopped, shortly after the last handle is dropped, so a
/// process restarting (or a test reopening) a folder can find it still held for a moment. A lock
/// held for longer means another process is using the folder.
fn open_db(path: &Path, flush_every_ms: u64) -> Result<sled::Db, StoreError> {
    const LOCK_WAIT: Duration = Duration::from_secs(3);
    let config = sled::Config::new()
        .path(path)
        .flush_every_ms(Some(flush_every_ms.max(1)));
    let started = Instant::now();
    loop {
        match config.open() {
            // sled 0.34 reports it as an `Other` error with this text around the OS's EWOULDBLOCK.
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(StoreError::Io(format!(
                        "{} is locked by another process (is another cachet using this data \
                         folder?): {io}",
                        path.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

fn key2(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

fn tenant_key(tenant: &str, scope: &ScopeKey) -> Vec<u8> {
    key2(&key2(tenant.as_bytes(), &[0]), &scope.0)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("in-memory serialisation cannot fail")
}

fn id_from(bytes: &[u8]) -> Result<EntryId, StoreError> {
    bytes
        .try_into()
        .map(EntryId::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("entry id of {} bytes", bytes.len())))
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

impl Store {
    pub fn open(dir: &Path, storage: &StorageConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            if is_disk_full(&e) {
                StoreError::DiskFull(e.to_string())
            } else {
                StoreError::Io(format!("cannot create {}: {e}", dir.display()))
            }
        })?;
        let db = open_db(&dir.join("db"), storage.flush_every_ms)?;
        let members = db.open_tree("members")?;
        let live = members
            .iter()
            .keys()
            .try_fold(0usize, |n, key| key.map(|_| n + 1))?;
        Ok(Self {
            entries: db.open_tree("entries")?,
            exact: db.open_tree("exact")?,
            members,
            scopes: db.open_tree("scopes")?,
            tenants: db.open_tree("tenants")?,
            meta: db.open_tree("meta")?,
            ledger: db.open_tree("ledger")?,
            expiry: db.open_tree("expiry")?,
            group_commit: Arc::new(GroupCommit::start(db.clone())?),
            db,
            sync: storage.sync,
            dir: dir.to_path_buf(),
            min_free_bytes: storage.min_free_bytes,
            live: Arc::new(AtomicUsize::new(live)),
        })
    }

    /// Makes what was written so far durable, as the sync policy asks. Called before a store
    /// is acknowledged.
    pub async fn commit(&self) -> Result<(), StoreError> {
        if self.sync == SyncPolicy::Always {
            self.group_commit.flush().await?;
        }
        Ok(())
    }

    /// Flushes everything regardless of policy (shutdown, checkpoints).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Stores `entry`, replacing any entry with the same exact key in the same scope.
    /// Not durable until [`Store::commit`].
    pub fn insert(&self, entry: &StoredEntry, model: &str) -> Result<Inserted, StoreError> {
        let entry_bytes = encode(entry);
        self.ensure_space(entry_bytes.len() as u64)?;
        let id = self.db.generate_id()?;
        let id_bytes = id.to_be_bytes();
        let exact_key = key2(&entry.scope.0, &entry.exact_key);
        let scope_info = encode(&ScopeInfo {
            tenant: entry.tenant.clone(),
            model: model.to_string(),
        });
        let result = (
            &self.entries,
            &self.exact,
            &self.members,
            &self.scopes,
            &self.tenants,
            &self.expiry,
        )
            .transaction(
                |(entries, exact, members, scopes, tenants, expiry)| -> TxResult<Inserted> {
                    let replaced = match exact.insert(exact_key.as_slice(), &id_bytes)? {
                        Some(old) => {
                            let old = id_from(&old).map_err(ConflictableTransactionError::Abort)?;
                            entries.remove(&old.to_be_bytes())?;
                            members.remove(key2(&entry.scope.0, &old.to_be_bytes()))?;
                            Some(old)
                        }
                        None => None,
                    };
                    entries.insert(&id_bytes, entry_bytes.as_slice())?;
                    members.insert(key2(&entry.scope.0, &id_bytes), &[])?;
                    scopes.insert(&entry.scope.0, scope_info.as_slice())?;
                    tenants.insert(tenant_key(&entry.tenant, &entry.scope), &[])?;
                    if let Some(at) = entry.expires_at {
                        expiry.insert(key2(&at.to_be_bytes(), &id_bytes), &[])?;
                    }
                    Ok(Inserted { id, replaced })
                },
            );
        let inserted = unwrap_tx(result)?;
        if inserted.replaced.is_none() {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        Ok(inserted)
    }

    /// Refuses a write that would leave less than `min_free_bytes` on the data volume.
    fn ensure_space(&self, bytes: u64) -> Result<(), StoreError> {
        let free = fs4::available_space(&self.dir).map_err(|e| StoreError::Io(e.to_string()))?;
        if free < self.min_free_bytes.saturating_add(bytes) {
            return Err(StoreError::DiskFull(format!(
                "{} free on {}, storage.min_free_bytes keeps {} in reserve",
                mebibytes(free),
                self.dir.display(),
                mebibytes(self.min_free_bytes)
            )));
        }
        Ok(())
    }

    pub fn get(&self, id: EntryId) -> Result<Option<StoredEntry>, StoreError> {
        self.entries
            .get(id.to_be_bytes())?
            .map(|bytes| decode(&bytes))
            .transpose()
    }

    /// The entry stored under this exact key, if any.
    pub fn get_exact(
        &self,
        scope: &ScopeKey,
        exact_key: &TextHash,
    ) -> Result<Option<(EntryId, StoredEntry)>, StoreError> {
        let Some(id) = self.exact.get(key2(&scope.0, exact_key))? else {
            return Ok(None);
        };
        let id = id_from(&id)?;
        Ok(self.get(id)?.map(|entry| (id, entry)))
    }

    /// Removes one entry and its exact key. Returns the entry if it existed.
    pub fn remove(&self, id: EntryId) -> Result<Option<StoredEntry>, StoreError> {
        let id_bytes = id.to_be_bytes();
        let result = (&self.entries, &self.exact, &self.members, &self.expiry).transaction(
            |(entries, exact, members, expiry)| -> TxResult<Option<StoredEntry>> {
                let Some(bytes) = entries.remove(&id_bytes)? else {
                    return Ok(None);
                };
                let entry: StoredEntry =
                    decode(&bytes).map_err(ConflictableTransactionError::Abort)?;
                let exact_key = key2(&entry.scope.0, &entry.exact_key);
                // Only drop the exact key if it still points here (a newer entry may own it).
                if exact.get(&exact_key)?.as_deref() == Some(&id_bytes[..]) {
                    exact.remove(exact_key)?;
                }
                members.remove(key2(&entry.scope.0, &id_bytes))?;
                if let Some(at) = entry.expires_at {
                    expiry.remove(key2(&at.to_be_bytes(), &id_bytes))?;
                }
                Ok(Some(entry))
            },
        );
        let removed = unwrap_tx(result)?;
        if removed.is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Ids of stored entries, oldest stored first (ids grow with time), leaving out those
    /// `skip` names; at most `limit`.
    pub fn oldest(
        &self,
        skip: impl Fn(EntryId) -> bool,
        limit: usize,
    ) -> Result<Vec<EntryId>, StoreError> {
        let mut ids = Vec::new();
        for key in self.entries.iter().keys() {
            let id = id_from(&key?)?;
            if !skip(id) {
                ids.push(id);
                if ids.len() >= limit {
                    break;
                }
            }
        }
        Ok(ids)
    }

    /// Ids of entries whose time was up by `now_ms`, oldest first, at most `limit`. Keys left
    /// by entries already gone (replaced or invalidated) are cleaned up on the way.
    pub fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<EntryId>, StoreError> {
        let mut ids = Vec::new();
        for key in self
            .expiry
            .range(..key2(&now_ms.to_be_bytes(), &[0xff; 8]))
            .keys()
        {
            let key = key?;
            let id = id_from(&key[8..])?;
            if self.entries.contains_key(id.to_be_bytes())? {
                ids.push(id);
                if ids.len() >= limit {
                    break;
                }
            } else {
                self.expiry.remove(&key)?;
            }
        }
        Ok(ids)
    }

    /// Ids of the entries a scope holds, in id order.
    pub fn scope_members(&self, scope: &ScopeKey) -> Result<Vec<EntryId>, StoreError> {
        self.members
            .scan_prefix(scope.0)
            .keys()
            .map(|k| id_from(&k?[16..]))
            .collect()
    }

    pub fn scopes(&self) -> Result<Vec<(ScopeKey, ScopeInfo)>, StoreError> {
        self.scopes
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let key: [u8; 16] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("scope key length".into()))?;
                Ok((ScopeKey(key), decode(&v)?))
            })
            .collect()
    }

    /// The scopes a tenant has stored entries in.
    pub fn tenant_scopes(&self, tenant: &str) -> Result<Vec<ScopeKey>, StoreError> {
        let prefix = key2(tenant.as_bytes(), &[0]);
        self.tenants
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                let k = k?;
                k[prefix.len()..]
                    .try_into()
                    .map(ScopeKey)
                    .map_err(|_| StoreError::Corrupt("tenant scope key length".into()))
            })
            .collect()
    }

    /// Live entries, without reading them.
    pub fn entry_count(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    /// Appends a ledger line at `at_ms`. Durable with the next [`Store::commit`]. Not held to
    /// the disk reserve: spend already happened and must be recorded, and a line is tiny.
    pub fn append_ledger(&self, at_ms: u64, line: &[u8]) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        self.ledger
            .insert(key2(&at_ms.to_be_bytes(), &id.to_be_bytes()), line)?;
        Ok(())
    }

    /// Ledger lines from `since_ms` (inclusive) to `until_ms` (exclusive), in time order.
    pub fn ledger_range(
        &self,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<sled::IVec>, StoreError> {
        self.ledger
            .range(since_ms.to_be_bytes()..until_ms.to_be_bytes())
            .values()
            .map(|v| v.map_err(StoreError::from))
            .collect()
    }

    /// The bookkeeping keys starting with `prefix`.
    pub fn meta_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.meta
            .scan_prefix(prefix)
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// A tree of its own for one module's bookkeeping (the fleet's outbox), written and
    /// committed with everything else.
    pub fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// A number this database never handed out before, larger than the last one.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    pub fn remove_meta(&self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key)?;
        Ok(())
    }

    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key, value)?;
        Ok(())
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn unwrap_tx<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|err| match err {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scope: u8, exact: u8, answer: &str) -> StoredEntry {
        StoredEntry {
            scope: ScopeKey([scope; 16]),
            tenant: format!("tenant{scope}"),
            exact_key: [exact; 16],
            query: "q".into(),
            context: String::new(),
            context_hash: [0; 16],
            query_vector: Some(vec![1.0, 0.0]),
            context_vector: None,
            answer: answer.into(),
            answered_by: "m".into(),
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7,
            },
            labels: Labels::default(),
            created_at: 1,
            expires_at: None,
        }
    }

    #[test]
    fn a_folder_in_use_is_refused_with_a_clear_error_and_free_once_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path(), &StorageConfig::default()).unwrap();
        let err = Store::open(dir.path(), &StorageConfig::default())
            .err()
            .expect("the folder is in use");
        assert!(err.to_string().contains("another process"), "{err}");
        drop(first);
        // Released: the next open waits out sled's flusher if it has to.
        Store::open(dir.path(), &StorageConfig::default()).unwrap();
    }

    #[test]
    fn insert_get_replace_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = {
            let store = Store::open(dir.path(), &StorageConfig::default()).unwrap();
            let first = store.insert(&entry(1, 1, "a"), "m").unwrap();
            assert!(first.replaced.is_none());
            let second = store.insert(&entry(1, 1, "b"), "m").unwrap();
            assert_eq!(second.replaced, Some(first.id));
            assert_eq!(store.entry_count(), 1, "a replacement is not a new entry");
            assert!(store.get(first.id).unwrap().is_none());
            let (id, found) = store
                .get_exact(&ScopeKey([1; 16]), &[1; 16])
                .unwrap()
                .unwrap();
            assert_eq!((id, found.answer.as_str()), (second.id, "b"));
            store.insert(&entry(2, 1, "c"), "m").unwrap();
            store.flush().unwrap();
            (first, second)
        };
        let store = Store::open(dir.path(), &StorageConfig::default()).unwrap();
        assert_eq!(
            store.scope_members(&ScopeKey([1; 16])).unwrap(),
            vec![second.id]
        );
        assert_eq!(
            store.tenant_scopes("tenant1").unwrap(),
            vec![ScopeKey([1; 16])]
        );
        assert_eq!(store.scopes().unwrap().len(), 2);
        assert_eq!(store.entry_count(), 2, "counted again at open");
        assert!(store.remove(first.id).unwrap().is_none());
        assert_eq!(store.remove(second.id).unwrap().unwrap().answer, "b");
        assert!(store
            .get_exact(&ScopeKey([1; 16]), &[1; 16])
            .unwrap()
            .is_none());
        assert!(store.scope_members(&ScopeKey([1; 16])).unwrap().is_empty());
        assert_eq!(store.entry_count(), 1);
    }
}
