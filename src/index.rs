//! Approximate nearest-neighbour search over stored query embeddings: one HNSW graph per scope.
//!
//! One graph per scope makes isolation structural: a lookup can only ever reach entries of its
//! own scope. The graphs are derived data. sled holds every vector; a graph is checkpointed to
//! disk from time to time and at shutdown, reloaded at start, and brought up to date from sled:
//! entries stored after the checkpoint are inserted, entries removed since are tombstoned. A
//! checkpoint that is missing, unreadable or disagrees with its record is rebuilt from sled.
//!
//! hnsw_rs cannot delete a point, so removed entries stay in the graph as tombstones that the
//! search filters out. A scope whose graph is mostly tombstones is rebuilt at the next start.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::scope::ScopeKey;
use crate::store::{EntryId, Store, StoreError};

/// Graph shape: neighbours per node and candidate breadth while building. 16 / 200 are the
/// common defaults that reach recall@1 above 0.98 on sentence embeddings. A breadth of 100
/// builds twice as fast but, on `cachet bench scale`'s vectors at 200k entries, lowers recall@1
/// of near-duplicate queries at `ef_search` 64 from 1.000 to 0.965 (see BENCHMARKS.md), so the
/// product keeps 200.
const MAX_CONNECTIONS: usize = 16;
pub const EF_CONSTRUCTION: usize = 200;
const MAX_LAYERS: usize = 16;
const GRAPH_BASENAME: &str = "graph";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("index checkpoint I/O at {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
}

/// Cosine distance for unit-length vectors: `1 - a·b`, clamped at 0 so rounding can never
/// produce a negative distance.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - crate::embed::similarity(a, b)).max(0.0)
    }
}

type Graph = Hnsw<'static, f32, UnitCosine>;

/// A neighbour found by a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub id: EntryId,
    pub similarity: f32,
}

/// The graph of one scope.
struct ScopeIndex {
    graph: Graph,
    /// Points whose entries were removed or replaced.
    tombstones: RwLock<HashSet<usize>>,
    /// Inserts take it shared; a checkpoint takes it exclusively so it dumps a still graph.
    /// Searches do not take it: reading during a dump is safe.
    write_gate: RwLock<()>,
    /// Changes since the last checkpoint.
    changes: AtomicUsize,
}

impl ScopeIndex {
    /// The gate guards no data, only the graph's stillness, so a panic that once held it leaves
    /// nothing inconsistent behind: it must not stop every later insert.
    fn shared_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.write_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn exclusive_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.write_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn empty(expected: usize, ef_construction: usize) -> Self {
        Self::from_graph(Hnsw::new(
            MAX_CONNECTIONS,
            expected.max(1024),
            MAX_LAYERS,
            ef_construction,
            UnitCosine,
        ))
    }

    fn from_graph(graph: Graph) -> Self {
        Self {
            graph,
            tombstones: RwLock::new(HashSet::new()),
            write_gate: RwLock::new(()),
            changes: AtomicUsize::new(0),
        }
    }

    fn insert(&self, id: EntryId, vector: &[f32]) {
        let _shared = self.shared_gate();
        self.graph.insert_slice((vector, id as usize));
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Entry ids of every point in the graph, ascending: compared with sled's member list
    /// (already in id order) by one merge walk at start-up, instead of hashing a million ids
    /// into sets twice.
    fn sorted_point_ids(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = self
            .graph
            .get_point_indexation()
            .into_iter()
            .map(|p| p.get_origin_id())
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Record of a scope's last checkpoint, kept in sled so a torn dump is never trusted.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointRecord {
    generation: u64,
    basename: String,
    points: usize,
}

/// All scope graphs of one sidecar.
pub struct IndexSet {
    dir: PathBuf,
    /// Candidate breadth of graphs built from now on (a loaded graph keeps the one it was
    /// built with).
    ef_construction: usize,
    scopes: RwLock<HashMap<ScopeKey, Arc<ScopeIndex>>>,
    /// One checkpoint at a time: two would pick the same generation folder for a scope, and
    /// one would delete it under the other's dump (the periodic checkpointer and a compaction's
    /// checkpoint can otherwise meet).
    checkpointing: Mutex<()>,
}

/// What loading found, for the start-up log and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadReport {
    pub scopes: usize,
    pub from_checkpoint: usize,
    pub rebuilt: usize,
    pub replayed_entries: usize,
    pub tombstones: usize,
}

/// The scopes one loader thread loaded, or why it stopped.
type LoadedScopes = Result<Vec<(ScopeKey, ScopeIndex, LoadReport)>, IndexError>;

impl LoadReport {
    fn add(&mut self, other: LoadReport) {
        self.scopes += other.scopes;
        self.from_checkpoint += other.from_checkpoint;
        self.rebuilt += other.rebuilt;
        self.replayed_entries += other.replayed_entries;
        self.tombstones += other.tombstones;
    }
}

impl IndexSet {
    /// Loads every scope's graph from its checkpoint (or rebuilds it) and replays sled.
    /// Scopes load side by side, one per core: a restart waits for the slowest, not the sum.
    pub fn load(dir: &Path, store: &Store) -> Result<(Self, LoadReport), IndexError> {
        std::fs::create_dir_all(dir).map_err(|e| checkpoint_error(dir, e))?;
        let keys: Vec<ScopeKey> = store.scopes()?.into_iter().map(|(k, _)| k).collect();
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(keys.len())
            .max(1);
        let loaded: Vec<LoadedScopes> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some(&scope) = keys.get(next.fetch_add(1, Ordering::Relaxed)) {
                            let (index, found) = load_scope(dir, store, &scope)?;
                            mine.push((scope, index, found));
                        }
                        Ok(mine)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("index loader panicked"))
                .collect()
        });
        let mut report = LoadReport::default();
        let mut scopes = HashMap::new();
        for (scope, index, found) in loaded
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
        {
            report.add(found);
            scopes.insert(scope, Arc::new(index));
        }
        Ok((
            Self {
                dir: dir.to_path_buf(),
                ef_construction: EF_CONSTRUCTION,
                scopes: RwLock::new(scopes),
                checkpointing: Mutex::new(()),
            },
            report,
        ))
    }

    /// Builds new graphs (new scopes, compactions) with this candidate breadth instead of
    /// [`EF_CONSTRUCTION`]: `cachet bench scale --ef-construction` trades recall for a faster
    /// fill with it.
    pub fn with_ef_construction(mut self, ef_construction: usize) -> Self {
        self.ef_construction = ef_construction.max(1);
        self
    }

    fn scope(&self, scope: &ScopeKey) -> Option<Arc<ScopeIndex>> {
        self.scopes
            .read()
            .expect("index map poisoned")
            .get(scope)
            .cloned()
    }

    /// The `k` nearest live entries to `vector` within `scope`, most similar first.
    pub fn search(&self, scope: &ScopeKey, vector: &[f32], k: usize, ef: usize) -> Vec<Candidate> {
        let Some(index) = self.scope(scope) else {
            return Vec::new();
        };
        let tombstones = index.tombstones.read().expect("tombstones poisoned");
        let live = |id: &usize| !tombstones.contains(id);
        // hnsw_rs gives up its early exit whenever a filter is passed (about 3x the distance
        // computations), so the filter is only passed when there is something to filter.
        let found = if tombstones.is_empty() {
            index.graph.search(vector, k, ef.max(k))
        } else {
            index.graph.search_filter(vector, k, ef.max(k), Some(&live))
        };
        found
            .into_iter()
            .map(|n| Candidate {
                id: n.get_origin_id() as EntryId,
                similarity: 1.0 - n.get_distance(),
            })
            .collect()
    }

    pub fn insert(&self, scope: &ScopeKey, id: EntryId, vector: &[f32]) {
        let index = match self.scope(scope) {
            Some(index) => index,
            None => {
                let mut scopes = self.scopes.write().expect("index map poisoned");
                Arc::clone(
                    scopes
                        .entry(*scope)
                        .or_insert_with(|| Arc::new(ScopeIndex::empty(0, self.ef_construction))),
                )
            }
        };
        index.insert(id, vector);
    }

    /// Stops serving `id` from `scope`.
    pub fn remove(&self, scope: &ScopeKey, id: EntryId) {
        if let Some(index) = self.scope(scope) {
            index
                .tombstones
                .write()
                .expect("tombstones poisoned")
                .insert(id as usize);
            index.changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Rebuilds every graph whose tombstones are at least `min_dead_share` of its points (any
    /// tombstone at 0) from the live entries in sled, while lookups go on against the old
    /// graph; inserts into that scope wait for the swap. Returns how many tombstones were
    /// dropped. Blocking: call from a blocking context.
    pub fn compact(&self, store: &Store, min_dead_share: f64) -> Result<usize, IndexError> {
        let worth_it = |index: &ScopeIndex| {
            let dead = index.tombstones.read().expect("tombstones poisoned").len();
            dead > 0 && dead as f64 >= min_dead_share * index.graph.get_nb_point() as f64
        };
        let scopes: Vec<(ScopeKey, Arc<ScopeIndex>)> = self
            .scopes
            .read()
            .expect("index map poisoned")
            .iter()
            .filter(|(_, i)| worth_it(i))
            .map(|(k, i)| (*k, Arc::clone(i)))
            .collect();
        let mut dropped = 0;
        for (scope, old) in scopes {
            let _no_inserts = old.exclusive_gate();
            let members = store.scope_members(&scope)?;
            let fresh = ScopeIndex::empty(members.len(), self.ef_construction);
            insert_from_store(&fresh, store, &members)?;
            fresh.changes.store(members.len().max(1), Ordering::Relaxed);
            dropped += old.tombstones.read().expect("tombstones poisoned").len();
            self.scopes
                .write()
                .expect("index map poisoned")
                .insert(scope, Arc::new(fresh));
        }
        self.checkpoint(store)?;
        Ok(dropped)
    }

    /// Every scope's points (tombstones included) and tombstones.
    pub fn sizes(&self) -> Vec<(ScopeKey, usize, usize)> {
        self.scopes
            .read()
            .expect("index map poisoned")
            .iter()
            .map(|(scope, index)| {
                let tombstones = index.tombstones.read().expect("tombstones poisoned").len();
                (*scope, index.graph.get_nb_point(), tombstones)
            })
            .collect()
    }

    /// The candidate breadth a scope's graph was built with.
    pub fn ef_construction_of(&self, scope: &ScopeKey) -> Option<usize> {
        self.scope(scope).map(|i| i.graph.get_ef_construction())
    }

    /// Points in a scope's graph, tombstones included.
    pub fn points(&self, scope: &ScopeKey) -> usize {
        self.scope(scope).map_or(0, |i| i.graph.get_nb_point())
    }

    /// Writes a checkpoint of every scope that changed since its last one. Returns how many
    /// were written.
    pub fn checkpoint(&self, store: &Store) -> Result<usize, IndexError> {
        let _one_at_a_time = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changed: Vec<(ScopeKey, Arc<ScopeIndex>)> = self
            .scopes
            .read()
            .expect("index map poisoned")
            .iter()
            .filter(|(_, i)| i.changes.load(Ordering::Relaxed) > 0)
            .map(|(k, i)| (*k, Arc::clone(i)))
            .collect();
        for (scope, index) in &changed {
            checkpoint_scope(&self.dir, store, scope, index)?;
        }
        if !changed.is_empty() {
            store.flush()?;
        }
        Ok(changed.len())
    }
}

fn checkpoint_error(path: &Path, err: impl std::fmt::Display) -> IndexError {
    IndexError::Checkpoint {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

fn record_key(scope: &ScopeKey) -> String {
    format!("checkpoint/{scope}")
}

fn generation_dir(dir: &Path, scope: &ScopeKey, generation: u64) -> PathBuf {
    dir.join(scope.to_string())
        .join(format!("gen-{generation:020}"))
}

/// Dumps one graph into a fresh generation folder, makes it durable, then records it in sled.
/// Only after the record is written are older generations deleted, so a crash at any point
/// leaves either the old or the new checkpoint intact.
fn checkpoint_scope(
    dir: &Path,
    store: &Store,
    scope: &ScopeKey,
    index: &ScopeIndex,
) -> Result<(), IndexError> {
    let previous = read_record(store, scope)?;
    let generation = previous.as_ref().map_or(1, |r| r.generation + 1);
    let target = generation_dir(dir, scope, generation);
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| checkpoint_error(&target, e))?;
    }
    std::fs::create_dir_all(&target).map_err(|e| checkpoint_error(&target, e))?;
    let (basename, points) = dump_graph(index, &target)?;
    sync_dir_contents(&target)?;
    let record = CheckpointRecord {
        generation,
        basename,
        points,
    };
    store.set_meta(
        &record_key(scope),
        &postcard::to_allocvec(&record).expect("serialise"),
    )?;
    store.flush()?;
    remove_other_generations(dir, scope, generation);
    Ok(())
}

/// Writes the graph's files into `target` while inserts wait. Returns their basename and the
/// points dumped.
fn dump_graph(index: &ScopeIndex, target: &Path) -> Result<(String, usize), IndexError> {
    let _exclusive = index.exclusive_gate();
    let changes = index.changes.swap(0, Ordering::Relaxed);
    // hnsw_rs panics when it cannot create its files; that is an I/O error like any other.
    let dumped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        index
            .graph
            .file_dump(target, GRAPH_BASENAME)
            .map_err(|e| e.to_string())
    }))
    .unwrap_or_else(|_| Err("the graph dump panicked: its files could not be created".into()));
    match dumped {
        Ok(name) => Ok((name, index.graph.get_nb_point())),
        Err(e) => {
            // Still to be written at the next round.
            index.changes.fetch_add(changes, Ordering::Relaxed);
            Err(checkpoint_error(target, e))
        }
    }
}

fn sync_dir_contents(dir: &Path) -> Result<(), IndexError> {
    let entries = std::fs::read_dir(dir).map_err(|e| checkpoint_error(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| checkpoint_error(dir, e))?.path();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| checkpoint_error(&path, e))?;
    }
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| checkpoint_error(dir, e))
}

fn remove_other_generations(dir: &Path, scope: &ScopeKey, keep: u64) {
    let keep_dir = generation_dir(dir, scope, keep);
    let Ok(entries) = std::fs::read_dir(dir.join(scope.to_string())) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path != keep_dir {
            if let Err(err) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), %err, "could not remove an old checkpoint");
            }
        }
    }
}

fn read_record(store: &Store, scope: &ScopeKey) -> Result<Option<CheckpointRecord>, IndexError> {
    Ok(store
        .get_meta(&record_key(scope))?
        .and_then(|bytes| postcard::from_bytes(&bytes).ok()))
}

/// Reads a checkpoint; any failure (missing files, a torn or foreign dump, a point count that
/// disagrees with the record) yields `None`, and the caller rebuilds from sled.
fn read_checkpoint(dir: &Path, scope: &ScopeKey, record: &CheckpointRecord) -> Option<Graph> {
    let folder = generation_dir(dir, scope, record.generation);
    if !folder
        .join(format!("{}.hnsw.graph", record.basename))
        .is_file()
    {
        return None;
    }
    let basename = record.basename.clone();
    // hnsw_rs asserts on malformed files; a corrupt checkpoint must mean "rebuild", not a crash.
    let loaded = std::panic::catch_unwind(move || {
        // The loaded graph borrows its loader for its whole life, so the loader (a few hundred
        // bytes, once per scope at start) is kept for the life of the process.
        let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&folder, &basename)));
        loader.load_hnsw::<f32, UnitCosine>().ok()
    })
    .ok()
    .flatten()?;
    (loaded.get_nb_point() == record.points).then_some(loaded)
}

/// Loads one scope's graph; returns it with what was found.
fn load_scope(
    dir: &Path,
    store: &Store,
    scope: &ScopeKey,
) -> Result<(ScopeIndex, LoadReport), IndexError> {
    let mut report = LoadReport {
        scopes: 1,
        ..LoadReport::default()
    };
    let record = read_record(store, scope)?;
    // sled's member list is read beside the graph file (a million keys take a second or two).
    let (members, checkpoint) = std::thread::scope(|s| {
        let members = s.spawn(|| store.scope_members(scope));
        let checkpoint = record.and_then(|record| read_checkpoint(dir, scope, &record));
        (members.join().expect("member scan panicked"), checkpoint)
    });
    let members = members?;
    let index = match checkpoint {
        Some(graph) => {
            let index = ScopeIndex::from_graph(graph);
            let in_graph = index.sorted_point_ids();
            let (dead, missing) = differences(&in_graph, &members);
            // Mostly tombstones: a fresh graph is smaller and faster to search.
            if dead.len() > in_graph.len() / 2 && !dead.is_empty() {
                None
            } else {
                report.from_checkpoint += 1;
                report.tombstones += dead.len();
                *index.tombstones.write().expect("fresh lock") = dead.into_iter().collect();
                report.replayed_entries += insert_from_store(&index, store, &missing)?;
                Some(index)
            }
        }
        None => None,
    };
    let index = match index {
        Some(index) => index,
        None => {
            report.rebuilt += 1;
            let index = ScopeIndex::empty(members.len(), EF_CONSTRUCTION);
            insert_from_store(&index, store, &members)?;
            // A rebuilt graph differs from any checkpoint on disk: write one at the next round.
            index.changes.store(members.len().max(1), Ordering::Relaxed);
            index
        }
    };
    Ok((index, report))
}

/// Walks the graph's point ids and sled's member ids (both ascending) side by side: returns
/// the points whose entries are gone (to tombstone) and the members the graph lacks (to
/// replay).
fn differences(in_graph: &[usize], members: &[EntryId]) -> (Vec<usize>, Vec<EntryId>) {
    let (mut dead, mut missing) = (Vec::new(), Vec::new());
    let (mut g, mut m) = (in_graph.iter().peekable(), members.iter().peekable());
    loop {
        match (g.peek(), m.peek()) {
            (Some(&&p), Some(&&id)) if p == id as usize => {
                g.next();
                m.next();
            }
            (Some(&&p), Some(&&id)) if p < id as usize => {
                dead.push(p);
                g.next();
            }
            (_, Some(&&id)) => {
                missing.push(id);
                m.next();
            }
            (Some(&&p), None) => {
                dead.push(p);
                g.next();
            }
            (None, None) => return (dead, missing),
        }
    }
}

/// Inserts the vectors of `ids` (those that have one) into `index`. Returns how many.
fn insert_from_store(
    index: &ScopeIndex,
    store: &Store,
    ids: &[EntryId],
) -> Result<usize, IndexError> {
    let mut vectors = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(vector) = store.get(id)?.and_then(|e| e.query_vector) {
            vectors.push((vector, id as usize));
        }
    }
    let batch: Vec<(&[f32], usize)> = vectors.iter().map(|(v, id)| (v.as_slice(), *id)).collect();
    index.graph.parallel_insert_slice(&batch);
    Ok(batch.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StorageConfig;
    use crate::store::{Labels, StoredEntry, Usage};
    use std::collections::BTreeMap;

    fn unit(seed: u64) -> Vec<f32> {
        // Deterministic pseudo-random unit vectors (xorshift).
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..32)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.into_iter().map(|a| a / n).collect()
    }

    fn store_entry(store: &Store, scope: ScopeKey, n: u64) -> EntryId {
        let entry = StoredEntry {
            scope,
            tenant: "t".into(),
            exact_key: blake3::hash(&n.to_le_bytes()).as_bytes()[..16]
                .try_into()
                .unwrap(),
            query: format!("q{n}"),
            context: String::new(),
            context_hash: [0; 16],
            query_vector: Some(unit(n)),
            context_vector: None,
            answer: format!("a{n}"),
            answered_by: "m".into(),
            usage: Usage::default(),
            labels: Labels::default(),
            created_at: 0,
            expires_at: None,
        };
        store.insert(&entry, "m").unwrap().id
    }

    #[test]
    fn a_wide_search_returns_the_exact_nearest_live_entries_in_order() {
        // The search loop is patched in vendor/hnsw_rs (visited set, prefetching); with a
        // breadth far above k it must still find exactly what brute force finds, with tombstones
        // (hnsw_rs's filtered search) and without.
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([3; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let (index, _) = IndexSet::load(&dir.path().join("index"), &store).unwrap();
        let mut live: Vec<(EntryId, Vec<f32>)> = (0..1500)
            .map(|n| {
                let id = store_entry(&store, scope, n);
                index.insert(&scope, id, &unit(n));
                (id, unit(n))
            })
            .collect();
        let check = |index: &IndexSet, live: &[(EntryId, Vec<f32>)]| {
            for q in 0..25 {
                let query = unit(100_000 + q);
                let mut exact: Vec<(f32, EntryId)> = live
                    .iter()
                    .map(|(id, v)| (crate::embed::similarity(&query, v), *id))
                    .collect();
                exact.sort_by(|a, b| b.0.total_cmp(&a.0));
                let found: Vec<EntryId> = index
                    .search(&scope, &query, 10, 400)
                    .iter()
                    .map(|c| c.id)
                    .collect();
                let expected: Vec<EntryId> = exact[..10].iter().map(|(_, id)| *id).collect();
                assert_eq!(found, expected, "query {q}");
            }
        };
        check(&index, &live);
        for (id, _) in live.iter().step_by(7) {
            index.remove(&scope, *id);
        }
        let removed = |n: &usize| n.is_multiple_of(7);
        live = (live.into_iter().enumerate())
            .filter(|(n, _)| !removed(n))
            .map(|(_, entry)| entry)
            .collect();
        check(&index, &live);
    }

    #[test]
    fn checkpoint_reload_replays_new_entries_and_tombstones_removed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([7; 16]);
        let other = ScopeKey([8; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let index_dir = dir.path().join("index");
        let (index, report) = IndexSet::load(&index_dir, &store).unwrap();
        assert_eq!(report, LoadReport::default());

        let mut ids = Vec::new();
        for n in 0..200 {
            let id = store_entry(&store, scope, n);
            index.insert(&scope, id, &unit(n));
            ids.push(id);
        }
        assert_eq!(index.checkpoint(&store).unwrap(), 1);
        assert_eq!(
            index.checkpoint(&store).unwrap(),
            0,
            "nothing changed since"
        );
        // After the checkpoint: 10 more entries, 5 removals.
        for n in 200..210 {
            let id = store_entry(&store, scope, n);
            index.insert(&scope, id, &unit(n));
            ids.push(id);
        }
        for &id in &ids[..5] {
            store.remove(id).unwrap();
            index.remove(&scope, id);
        }
        store.flush().unwrap();
        drop(index);

        let (index, report) = IndexSet::load(&index_dir, &store).unwrap();
        assert_eq!(report.from_checkpoint, 1);
        assert_eq!(report.rebuilt, 0);
        assert_eq!(report.replayed_entries, 10);
        assert_eq!(report.tombstones, 5);
        for (n, &id) in ids.iter().enumerate() {
            let found = index.search(&scope, &unit(n as u64), 1, 64);
            if n < 5 {
                assert!(
                    found.iter().all(|c| c.id != id),
                    "removed entry {n} came back"
                );
            } else {
                assert_eq!(found[0].id, id, "entry {n}");
                assert!(found[0].similarity > 0.999);
            }
        }
        assert!(
            index.search(&other, &unit(1), 1, 64).is_empty(),
            "scopes are separate"
        );
    }

    /// Every point's neighbours, layer by layer, as (entry id, distance bits), by entry id.
    fn links(index: &IndexSet, scope: &ScopeKey) -> BTreeMap<usize, Vec<Vec<(usize, u32)>>> {
        let scopes = index.scopes.read().unwrap();
        scopes[scope]
            .graph
            .get_point_indexation()
            .into_iter()
            .map(|point| {
                let layers = point
                    .get_neighborhood_id()
                    .into_iter()
                    .map(|layer| {
                        layer
                            .iter()
                            .map(|n| (n.d_id, n.distance.to_bits()))
                            .collect()
                    })
                    .collect();
                (point.get_origin_id(), layers)
            })
            .collect()
    }

    #[test]
    fn a_reloaded_graph_links_every_point_to_the_neighbours_it_was_dumped_with() {
        // The checkpoint loader is our patch to hnsw_rs (vendor/hnsw_rs/PATCHES.md): it links
        // points on several threads, so check it rebuilds the very graph that was dumped.
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([5; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let index_dir = dir.path().join("index");
        let (index, _) = IndexSet::load(&index_dir, &store).unwrap();
        for n in 0..3_000 {
            let id = store_entry(&store, scope, n);
            index.insert(&scope, id, &unit(n));
        }
        index.checkpoint(&store).unwrap();
        let dumped = links(&index, &scope);
        drop(index);

        let (index, report) = IndexSet::load(&index_dir, &store).unwrap();
        assert_eq!(report.from_checkpoint, 1);
        let reloaded = links(&index, &scope);
        assert_eq!(reloaded.len(), 3_000);
        assert!(
            reloaded
                .values()
                .any(|layers| layers.iter().skip(1).any(|l| !l.is_empty())),
            "the graph has upper layers"
        );
        assert_eq!(reloaded, dumped);
    }

    #[test]
    fn checkpoints_from_two_threads_never_fail_and_leave_a_loadable_graph() {
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([6; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let index_dir = dir.path().join("index");
        let (index, _) = IndexSet::load(&index_dir, &store).unwrap();
        std::thread::scope(|s| {
            for thread in 0..2u64 {
                let (index, store) = (&index, &store);
                s.spawn(move || {
                    for n in 0..40 {
                        let n = thread * 1_000 + n;
                        let id = store_entry(store, scope, n);
                        index.insert(&scope, id, &unit(n));
                        index.checkpoint(store).expect("checkpoint");
                    }
                });
            }
        });
        store.flush().unwrap();
        drop(index);
        let (index, report) = IndexSet::load(&index_dir, &store).unwrap();
        assert_eq!((report.from_checkpoint, report.rebuilt), (1, 0));
        assert_eq!(index.points(&scope), 80);
    }

    #[test]
    fn a_failed_dump_is_an_error_and_inserts_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([4; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let (index, _) = IndexSet::load(&dir.path().join("index"), &store).unwrap();
        let id = store_entry(&store, scope, 1);
        index.insert(&scope, id, &unit(1));
        let scope_index = index.scope(&scope).unwrap();
        // A folder where the graph file should go: hnsw_rs panics when it cannot create it.
        let target = dir.path().join("blocked");
        std::fs::create_dir_all(target.join(format!("{GRAPH_BASENAME}.hnsw.graph"))).unwrap();
        let dumped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            dump_graph(&scope_index, &target)
        }));
        assert!(
            matches!(dumped, Ok(Err(IndexError::Checkpoint { .. }))),
            "{dumped:?}"
        );
        assert_eq!(scope_index.changes.load(Ordering::Relaxed), 1, "still owed");
        let id = store_entry(&store, scope, 2);
        index.insert(&scope, id, &unit(2));
        assert_eq!(index.search(&scope, &unit(2), 1, 64)[0].id, id);
        assert_eq!(index.checkpoint(&store).unwrap(), 1);
    }

    #[test]
    fn several_scopes_reload_side_by_side_each_with_its_own_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let index_dir = dir.path().join("index");
        let (index, _) = IndexSet::load(&index_dir, &store).unwrap();
        let scopes: Vec<ScopeKey> = (1..=5).map(|b| ScopeKey([b; 16])).collect();
        let mut ids = Vec::new();
        for (i, &scope) in scopes.iter().enumerate() {
            for n in 0..40 {
                let n = (i * 100 + n) as u64;
                let id = store_entry(&store, scope, n);
                index.insert(&scope, id, &unit(n));
                ids.push((scope, n, id));
            }
        }
        index.checkpoint(&store).unwrap();
        drop(index);
        let (index, report) = IndexSet::load(&index_dir, &store).unwrap();
        assert_eq!(report.scopes, 5);
        assert_eq!(report.from_checkpoint, 5);
        for (scope, n, id) in ids {
            assert_eq!(index.search(&scope, &unit(n), 1, 64)[0].id, id);
            for other in scopes.iter().filter(|&&s| s != scope) {
                assert!(index
                    .search(other, &unit(n), 4, 64)
                    .iter()
                    .all(|c| c.id != id));
            }
        }
    }

    #[test]
    fn differences_finds_dead_points_and_missing_members() {
        assert_eq!(
            differences(&[1, 2, 4, 7, 9], &[2, 3, 4, 8, 9, 10]),
            (vec![1, 7], vec![3, 8, 10])
        );
        assert_eq!(differences(&[], &[5]), (vec![], vec![5]));
        assert_eq!(differences(&[5], &[]), (vec![5], vec![]));
        assert_eq!(differences(&[1, 2], &[1, 2]), (vec![], vec![]));
    }

    #[test]
    fn compaction_drops_tombstones_and_keeps_every_live_entry() {
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([5; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let (index, _) = IndexSet::load(&dir.path().join("index"), &store).unwrap();
        let ids: Vec<EntryId> = (0..60)
            .map(|n| {
                let id = store_entry(&store, scope, n);
                index.insert(&scope, id, &unit(n));
                id
            })
            .collect();
        for &id in &ids[..20] {
            store.remove(id).unwrap();
            index.remove(&scope, id);
        }
        assert_eq!(index.points(&scope), 60);
        // A third dead: not yet worth it at a half, worth it at a quarter.
        assert_eq!(index.compact(&store, 0.5).unwrap(), 0);
        assert_eq!(index.points(&scope), 60);
        assert_eq!(index.compact(&store, 0.25).unwrap(), 20);
        assert_eq!(
            index.points(&scope),
            40,
            "the graph holds live entries only"
        );
        for (n, &id) in ids.iter().enumerate().skip(20) {
            assert_eq!(index.search(&scope, &unit(n as u64), 1, 64)[0].id, id);
        }
        assert_eq!(
            index.compact(&store, 0.0).unwrap(),
            0,
            "nothing left to drop"
        );
    }

    #[test]
    fn corrupt_checkpoint_is_rebuilt_from_sled() {
        let dir = tempfile::tempdir().unwrap();
        let scope = ScopeKey([9; 16]);
        let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).unwrap();
        let index_dir = dir.path().join("index");
        let (index, _) = IndexSet::load(&index_dir, &store).unwrap();
        let ids: Vec<EntryId> = (0..50)
            .map(|n| {
                let id = store_entry(&store, scope, n);
                index.insert(&scope, id, &unit(n));
                id
            })
            .collect();
        index.checkpoint(&store).unwrap();
        drop(index);
        // Truncate every file of the checkpoint.
        for gen in std::fs::read_dir(index_dir.join(scope.to_string())).unwrap() {
            for file in std::fs::read_dir(gen.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let len = std::fs::metadata(&path).unwrap().len();
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(len / 3)
                    .unwrap();
            }
        }
        let (index, report) = IndexSet::load(&index_dir, &store).unwrap();
        assert_eq!(report.rebuilt, 1);
        assert_eq!(index.search(&scope, &unit(17), 1, 64)[0].id, ids[17]);
    }
}
