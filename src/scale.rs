//! `cachet bench scale`: the cache at a million entries.
//!
//! Fills a REAL data folder through the product's own code (`Store::insert` into sled, then
//! `IndexSet::insert` into the scope's HNSW graph, then `IndexSet::checkpoint`), so the sled
//! layout and the checkpoint are exactly what `cachet serve` reads. Only the embedding is
//! skipped: the vectors are SYNTHETIC (see [`crate::synthetic`]), because embedding a million
//! prompts would take an hour and measure the model, not the index.
//!
//! Then it measures, with the graph reloaded from its checkpoint as a restart would:
//! - search latency (p50 / p99, one thread) and recall@1 against brute force, for queries
//!   close to a stored point (what a paraphrase of a stored prompt looks like) and for fresh
//!   draws from the same topics (a new question: below any threshold, recall matters less);
//! - the checkpoint's and sled's size on disk;
//! - restart to serving: the real `cachet serve` binary started on the folder, timed until
//!   `grpc.health` says SERVING; its resident memory against a sidecar started on an empty
//!   folder gives the memory per entry; and exact and semantic `Lookup`s over gRPC against it.
//!
//! Stored entries are ordinary entries of a scope of their own (tenant `default`, model
//! `bench-model`, a system prompt naming this tool), question "synthetic entry N", so a
//! `Lookup` of that text is an exact hit in the restarted sidecar.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;
use crate::embed::DIMENSIONS;
use crate::index::{IndexError, IndexSet};
use crate::loadgen::{Latency, Machine};
use crate::proto::cache_client::CacheClient;
use crate::proto::{CacheStatus, LookupRequest};
use crate::scope::{ChatMessage, Role, SamplingParams, ScopeKey, ScopedChat};
use crate::store::{EntryId, Labels, Store, StoreError, StoredEntry, Usage};
use crate::synthetic::{brute_force_nearest, Clustered, Shape};

const TENANT: &str = "default";
const MODEL: &str = "bench-model";
const SYSTEM: &str = "You are a helpful assistant. Answer briefly. (cachet bench scale)";
/// Fixed so that a later run (or the criterion bench) regenerates the same points.
pub const SEED: u64 = 0x5ca1_ab1e;
/// Kept in a data folder: the generator its entries came from.
const GENERATOR_FILE: &str = "synthetic.json";
const ANSWER: &str = "A stored answer written by `cachet bench scale`.";

#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{0}")]
    Settings(String),
    #[error("cannot start `cachet serve` ({exe}): {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("the restarted sidecar: {0} (its log: {1})")]
    Sidecar(String, PathBuf),
    #[error(transparent)]
    Loadgen(#[from] crate::loadgen::LoadgenError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Entries the folder should hold; missing ones (by number) are added, so a run can be
    /// resumed or reused.
    pub entries: u64,
    pub data_dir: PathBuf,
    /// Shape and topics of the synthetic vectors; unset, the folder's own (see
    /// [`folder_generator`]) or else calibrated vectors in [`Shape::default_topics`].
    pub shape: Option<Shape>,
    pub topics: Option<usize>,
    /// Queries timed per kind; recall is checked on the first `recall_queries` of them.
    pub queries: usize,
    pub recall_queries: usize,
    /// Search breadths to measure (the configured `matching.ef_search` first).
    pub ef: Vec<usize>,
    /// Candidate breadth a new graph is built with (a resumed folder keeps its graph's).
    pub ef_construction: usize,
    /// Start `cachet serve` on the folder and time it to SERVING.
    pub restart: bool,
    /// Lookups sent to the restarted sidecar, per kind.
    pub lookups: usize,
}

/// The scope the synthetic entries live in, and the chat of entry `n`.
pub fn scope() -> ScopeKey {
    chat(0).scope
}

fn messages(text: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage {
            role: Role::System,
            content: SYSTEM.into(),
        },
        ChatMessage {
            role: Role::User,
            content: text.into(),
        },
    ]
}

fn question(n: u64) -> String {
    format!("synthetic entry {n}")
}

fn chat(n: u64) -> ScopedChat {
    ScopedChat::new(
        TENANT,
        MODEL,
        &messages(&question(n)),
        &SamplingParams::default(),
    )
}

/// The id under which a folder stores synthetic entry `n` (ids follow insertion order, which
/// the fill's threads interleave).
pub fn entry_id(store: &Store, n: u64) -> Result<Option<EntryId>, StoreError> {
    Ok(store
        .get_exact(&scope(), &chat(n).exact_key)?
        .map(|(id, _)| id))
}

/// Which synthetic vectors a folder holds: every run with the same generator makes the same
/// points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Generator {
    pub shape: Shape,
    pub topics: usize,
}

impl Generator {
    pub fn data(self) -> Clustered {
        Clustered::new(SEED, DIMENSIONS, self.topics, self.shape)
    }
}

/// The generator a filled folder's entries came from (`None` for a folder never filled, or
/// filled before folders recorded it).
pub fn folder_generator(data_dir: &Path) -> Result<Option<Generator>, ScaleError> {
    let path = data_dir.join(GENERATOR_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            ScaleError::Settings(format!(
                "{} is not a generator record: {err}",
                path.display()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ScaleError::Write { path, source }),
    }
}

/// The generator for this run: the folder's, which the settings may not contradict (the
/// points already stored must be regenerated for brute force), or else the one asked for,
/// then recorded in the folder.
fn generator(settings: &Settings) -> Result<Generator, ScaleError> {
    if let Some(kept) = folder_generator(&settings.data_dir)? {
        if settings.shape.is_some_and(|shape| shape != kept.shape)
            || settings.topics.is_some_and(|topics| topics != kept.topics)
        {
            return Err(ScaleError::Settings(format!(
                "{} holds {:?} vectors in {} topics; leave --shape and --topics out (or give those), or use a new folder",
                settings.data_dir.display(),
                kept.shape,
                kept.topics
            )));
        }
        return Ok(kept);
    }
    let shape = settings.shape.unwrap_or(Shape::Calibrated);
    let generator = Generator {
        shape,
        topics: settings
            .topics
            .unwrap_or_else(|| shape.default_topics(settings.entries)),
    };
    let path = settings.data_dir.join(GENERATOR_FILE);
    std::fs::create_dir_all(&settings.data_dir)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec(&generator).expect("serialisable")))
        .map_err(|source| ScaleError::Write { path, source })?;
    Ok(generator)
}

#[derive(Debug, Clone, Serialize)]
pub struct FillFigures {
    pub added: u64,
    pub secs: f64,
    /// CPU time (user + system, all threads) of the fill, before the checkpoint.
    pub cpu_secs: f64,
    pub per_sec: f64,
    pub checkpoint_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchFigures {
    /// `paraphrase` (near a stored point) or `fresh` (a new draw from the same topics).
    pub queries: &'static str,
    pub k: usize,
    pub ef: usize,
    pub latency: Latency,
    /// CPU time of one search (this thread's, averaged): what a search costs on an idle core,
    /// whatever else the machine is running.
    pub cpu_ms: f64,
    pub recall_at_1: f64,
    pub recall_checked: usize,
    /// Recall@1 over the checked queries whose true nearest entry is at or above
    /// `matching.threshold`: the ones a miss would turn from a cache hit into an upstream call.
    /// (Below it, the nearest entry would not be served anyway.)
    pub recall_above_threshold: f64,
    pub above_threshold: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestartFigures {
    /// From starting the process to health SERVING (polled every 100 ms).
    pub secs_to_serving: f64,
    /// CPU time (user + system, all threads) the sidecar had used by then: the restart's cost
    /// on an idle machine, whatever else this one is running.
    pub cpu_secs_to_serving: Option<f64>,
    pub rss_bytes: u64,
    pub empty_rss_bytes: u64,
    pub bytes_per_entry: f64,
    pub exact_lookup: Latency,
    pub exact_hits: usize,
    pub semantic_lookup: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    pub machine: Machine,
    pub note: &'static str,
    pub settings: Settings,
    pub generator: Generator,
    pub entries: u64,
    pub dims: usize,
    /// The candidate breadth the measured graph was built with.
    pub ef_construction: Option<usize>,
    pub fill: FillFigures,
    pub load_in_process_secs: f64,
    /// CPU time (user + system, all threads of this process) of that reload.
    pub load_in_process_cpu_secs: f64,
    pub checkpoint_bytes: u64,
    pub sled_bytes: u64,
    pub search: Vec<SearchFigures>,
    pub restart: Option<RestartFigures>,
}

const NOTE: &str =
    "SYNTHETIC vectors (clustered unit vectors, 384 dims; see `generator`), stored through the \
product's own store and index code; no embedding. Search figures are in-process, one thread.";

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, ETA {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

fn entry(n: u64, vector: Vec<f32>) -> StoredEntry {
    let chat = chat(n);
    StoredEntry {
        scope: chat.scope,
        tenant: TENANT.into(),
        exact_key: chat.exact_key,
        query: chat.query,
        context: String::new(),
        context_hash: chat.context_hash,
        query_vector: Some(vector),
        context_vector: None,
        answer: ANSWER.into(),
        answered_by: MODEL.into(),
        usage: Usage {
            prompt_tokens: 20,
            completion_tokens: 60,
            total_tokens: 80,
        },
        labels: Labels::default(),
        created_at: crate::store::now_millis(),
        expires_at: None,
    }
}

/// Adds entries `from..to` on `threads` threads, then checkpoints the graph.
fn fill(
    store: &Store,
    index: &IndexSet,
    data: &Clustered,
    from: u64,
    to: u64,
    threads: usize,
) -> Result<FillFigures, ScaleError> {
    let started = Instant::now();
    let cpu_started = process_cpu_time();
    let bar = progress(to.saturating_sub(from), "filling");
    let next = AtomicU64::new(from);
    let scope = scope();
    std::thread::scope(|s| -> Result<(), ScaleError> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(), ScaleError> {
                    const CHUNK: u64 = 64;
                    loop {
                        let first = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if first >= to {
                            return Ok(());
                        }
                        for n in first..(first + CHUNK).min(to) {
                            let vector = data.point(n);
                            let id = store.insert(&entry(n, vector.clone()), MODEL)?.id;
                            index.insert(&scope, id, &vector);
                        }
                        bar.inc(CHUNK.min(to - first));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("fill worker"))
    })?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = process_cpu_time().saturating_sub(cpu_started).as_secs_f64();
    store.flush()?;
    let checkpoint_started = Instant::now();
    index.checkpoint(store)?;
    Ok(FillFigures {
        added: to.saturating_sub(from),
        secs,
        cpu_secs,
        per_sec: to.saturating_sub(from) as f64 / secs.max(1e-9),
        checkpoint_secs: checkpoint_started.elapsed().as_secs_f64(),
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Times `k`-nearest searches one after the other, and checks the first `truth.len()` of them
/// against brute force: `truth` holds each one's true nearest entry and whether it is at or
/// above the similarity threshold.
fn measure_search(
    store: &Store,
    index: &IndexSet,
    kind: &'static str,
    queries: &[Vec<f32>],
    k: usize,
    ef: usize,
    truth: &[(u64, bool)],
) -> Result<SearchFigures, ScaleError> {
    let scope = scope();
    let mut samples = Vec::with_capacity(queries.len());
    let mut found = Vec::with_capacity(truth.len());
    let cpu_started = thread_cpu_time();
    for (i, q) in queries.iter().enumerate() {
        let started = Instant::now();
        let candidates = index.search(&scope, q, k, ef);
        samples.push(started.elapsed());
        if i < truth.len() {
            found.push(candidates.first().map(|c| c.id));
        }
    }
    let cpu = thread_cpu_time().saturating_sub(cpu_started);
    let (mut hits, mut hits_above) = (0, 0);
    for (&(n, above), got) in truth.iter().zip(&found) {
        let want = entry_id(store, n)?;
        if want.is_some() && want == *got {
            hits += 1;
            hits_above += usize::from(above);
        }
    }
    let above_threshold = truth.iter().filter(|(_, above)| *above).count();
    Ok(SearchFigures {
        queries: kind,
        k,
        ef,
        latency: Latency::of(samples),
        cpu_ms: cpu.as_secs_f64() * 1000.0 / queries.len().max(1) as f64,
        recall_at_1: hits as f64 / truth.len().max(1) as f64,
        recall_checked: truth.len(),
        recall_above_threshold: hits_above as f64 / above_threshold.max(1) as f64,
        above_threshold,
    })
}

/// CPU time this thread has used.
fn thread_cpu_time() -> std::time::Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill; the clock id is a constant.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
    if !ok {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time (user + system) all threads of this process have used.
fn process_cpu_time() -> std::time::Duration {
    // SAFETY: `usage` is a valid rusage for the call to fill; RUSAGE_SELF is a constant.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return std::time::Duration::ZERO;
        }
        usage
    };
    let time =
        |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Resident memory of a process, from /proc (Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A `cachet serve` child on a data folder, on a free loopback port, with no admin, HTTP or
/// metrics port (fixed ports would clash with anything else on the machine).
struct Sidecar {
    child: Child,
    endpoint: String,
    log: PathBuf,
    /// Kept open: the sidecar prints more lines after the first, and a closed pipe would
    /// make it fail on them.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Sidecar {
    /// Starts it and returns once its port is open (health may still say NOT_SERVING).
    fn start(data_dir: &Path, log: PathBuf) -> Result<Self, ScaleError> {
        let exe = std::env::current_exe().map_err(|source| ScaleError::Spawn {
            exe: PathBuf::from("cachet"),
            source,
        })?;
        let log_file = std::fs::File::create(&log).map_err(|source| ScaleError::Write {
            path: log.clone(),
            source,
        })?;
        let mut child = Command::new(&exe)
            .arg("serve")
            .env("CACHET_STORAGE__DATA_DIR", data_dir)
            .env("CACHET_SERVER__LISTEN", "127.0.0.1:0")
            .env("CACHET_SERVER__ADMIN_LISTEN", "")
            .env("CACHET_SERVER__HTTP_LISTEN", "")
            .env("CACHET_SERVER__METRICS_LISTEN", "")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|source| ScaleError::Spawn { exe, source })?;
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let mut sidecar = Self {
            child,
            endpoint: String::new(),
            log,
            _stdout: stdout,
        };
        match (read, line.trim().strip_prefix("cachet: listening on ")) {
            (Ok(_), Some(addr)) => {
                sidecar.endpoint = format!("http://{addr}");
                Ok(sidecar)
            }
            _ => Err(sidecar.fail("it stopped before listening")),
        }
    }

    fn fail(&mut self, what: &str) -> ScaleError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        ScaleError::Sidecar(what.to_string(), self.log.clone())
    }

    /// SIGTERM (a clean stop), then waits for it.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Resident memory of a sidecar on an empty folder: the model, ONNX Runtime and the server.
async fn empty_rss(scratch: &Path) -> Result<u64, ScaleError> {
    let sidecar = Sidecar::start(&scratch.join("empty"), scratch.join("empty.log"))?;
    crate::loadgen::connect(&sidecar.endpoint).await?;
    let rss = rss_bytes(sidecar.child.id()).unwrap_or(0);
    sidecar.stop();
    Ok(rss)
}

fn lookup(text: String) -> LookupRequest {
    LookupRequest {
        tenant: TENANT.into(),
        model: MODEL.into(),
        messages: crate::loadgen::chat(SYSTEM, &text),
        ..Default::default()
    }
}

async fn restart(settings: &Settings, entries: u64) -> Result<RestartFigures, ScaleError> {
    let scratch = tempfile_dir(&settings.data_dir)?;
    let empty_rss_bytes = empty_rss(&scratch).await?;
    let started = Instant::now();
    let mut sidecar = Sidecar::start(&settings.data_dir, scratch.join("serve.log"))?;
    let channel = match crate::loadgen::connect(&sidecar.endpoint).await {
        Ok(channel) => channel,
        Err(err) => return Err(sidecar.fail(&err.to_string())),
    };
    let secs_to_serving = started.elapsed().as_secs_f64();
    let cpu_secs_to_serving =
        crate::loadgen::process_cpu(sidecar.child.id()).map(|cpu| cpu.as_secs_f64());
    let rss_bytes = rss_bytes(sidecar.child.id()).unwrap_or(0);
    println!(
        "serving after {secs_to_serving:.2} s ({} CPU), resident memory {}",
        cpu_secs_to_serving.map_or("unknown".into(), |c| format!("{c:.2} s")),
        mib(rss_bytes)
    );

    let mut client = CacheClient::new(channel);
    let mut exact = Vec::new();
    let mut semantic = Vec::new();
    let mut exact_hits = 0;
    let step = (entries / settings.lookups.max(1) as u64).max(1);
    for i in 0..settings.lookups as u64 {
        let n = (i * step + 7) % entries.max(1);
        let t = Instant::now();
        let reply = client.lookup(lookup(question(n))).await;
        exact.push(t.elapsed());
        match reply {
            Ok(r) if r.get_ref().status() == CacheStatus::HitExact => exact_hits += 1,
            Ok(_) => {}
            Err(status) => return Err(sidecar.fail(&format!("Lookup failed: {status}"))),
        }
        // Not an exact repeat: embedded by the real model, searched in the million-point graph.
        let t = Instant::now();
        let reply = client
            .lookup(lookup(format!("what is synthetic entry number {n}?")))
            .await;
        semantic.push(t.elapsed());
        if let Err(status) = reply {
            return Err(sidecar.fail(&format!("Lookup failed: {status}")));
        }
    }
    sidecar.stop();
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(RestartFigures {
        secs_to_serving,
        cpu_secs_to_serving,
        rss_bytes,
        empty_rss_bytes,
        bytes_per_entry: rss_bytes.saturating_sub(empty_rss_bytes) as f64 / entries.max(1) as f64,
        exact_lookup: Latency::of(exact),
        exact_hits,
        semantic_lookup: Latency::of(semantic),
    })
}

/// A scratch folder beside the data folder (same volume), for the logs and the empty sidecar.
fn tempfile_dir(data_dir: &Path) -> Result<PathBuf, ScaleError> {
    let name = format!(
        "{}.bench-scratch",
        data_dir
            .file_name()
            .map_or("data".into(), |n| n.to_string_lossy())
    );
    let dir = data_dir.with_file_name(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|source| ScaleError::Write {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Fills (or completes) the folder, then measures. Blocking work runs on blocking threads.
pub async fn run(settings: &Settings, json: Option<&Path>) -> Result<ScaleReport, ScaleError> {
    if settings.entries == 0 || settings.queries == 0 || settings.ef.is_empty() {
        return Err(ScaleError::Settings(
            "--entries, --queries and --ef must be positive".into(),
        ));
    }
    let machine = Machine::this();
    let generator = generator(settings)?;
    println!(
        "cachet bench scale: {} entries in {} (SYNTHETIC vectors, {:?} shape, {} topics, {DIMENSIONS} dims); machine: {} cores, load average {}",
        settings.entries,
        settings.data_dir.display(),
        generator.shape,
        generator.topics,
        machine.cores,
        machine.load_average.as_deref().unwrap_or("unknown"),
    );
    let measured = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || measure_in_process(&settings, generator))
            .await
            .expect("scale measurement panicked")?
    };
    let InProcess {
        fill,
        load_secs: load_in_process_secs,
        load_cpu_secs: load_in_process_cpu_secs,
        ef_construction,
        search,
    } = measured;
    let index_dir = settings.data_dir.join("index");
    let checkpoint_bytes = dir_bytes(&index_dir);
    let sled_bytes = dir_bytes(&settings.data_dir.join("db"));
    println!(
        "on disk: checkpoint {}, sled {}",
        mib(checkpoint_bytes),
        mib(sled_bytes)
    );
    let restart = if settings.restart {
        Some(restart(settings, settings.entries).await?)
    } else {
        None
    };
    let report = ScaleReport {
        machine,
        note: NOTE,
        settings: settings.clone(),
        generator,
        entries: settings.entries,
        dims: DIMENSIONS,
        ef_construction,
        fill,
        load_in_process_secs,
        load_in_process_cpu_secs,
        checkpoint_bytes,
        sled_bytes,
        search,
        restart,
    };
    print!("{}", table(&report));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).expect("serialisable");
        std::fs::write(path, text).map_err(|source| ScaleError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        println!("wrote {}", path.display());
    }
    Ok(report)
}

/// What was measured in this process: the fill, the reload, the searches.
struct InProcess {
    fill: FillFigures,
    load_secs: f64,
    load_cpu_secs: f64,
    ef_construction: Option<usize>,
    search: Vec<SearchFigures>,
}

fn measure_in_process(settings: &Settings, generator: Generator) -> Result<InProcess, ScaleError> {
    let config = Config::default();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = generator.data();
    let index_dir = settings.data_dir.join("index");
    let fill_figures = {
        let store = Store::open(&settings.data_dir, &config.storage)?;
        let index = IndexSet::load(&index_dir, &store)?
            .0
            .with_ef_construction(settings.ef_construction);
        // Entries are numbered; the folder holds 0..have already (a resumed or reused run).
        let have = index.points(&scope()) as u64;
        if have < settings.entries {
            println!("{have} entries there; adding {}", settings.entries - have);
        }
        fill(&store, &index, &data, have, settings.entries, threads)?
    };
    // Reload exactly as a restart does: the checkpoint, then a replay of anything newer.
    let started = Instant::now();
    let cpu_started = process_cpu_time();
    let store = Store::open(&settings.data_dir, &config.storage)?;
    let (index, report) = IndexSet::load(&index_dir, &store)?;
    let load_secs = started.elapsed().as_secs_f64();
    let load_cpu_secs = process_cpu_time().saturating_sub(cpu_started).as_secs_f64();
    println!(
        "reloaded in {load_secs:.2} s, {load_cpu_secs:.2} s CPU ({} from checkpoint, {} rebuilt, {} replayed)",
        report.from_checkpoint, report.rebuilt, report.replayed_entries
    );
    let entries = settings.entries;
    let paraphrases: Vec<Vec<f32>> = (0..settings.queries as u64)
        .map(|q| data.paraphrase_of((q * 7919 + 13) % entries, q))
        .collect();
    let fresh: Vec<Vec<f32>> = (0..settings.queries as u64)
        .map(|q| data.point(entries + q))
        .collect();
    let check = settings.recall_queries.min(settings.queries);
    let bar = progress(2, "brute force");
    let mut checked: Vec<Vec<f32>> = paraphrases[..check].to_vec();
    checked.extend_from_slice(&fresh[..check]);
    let truth = brute_force_nearest(|i| data.point(i), entries, &checked, threads);
    bar.finish();
    let threshold = config.matching.threshold;
    let truth: Vec<(u64, bool)> = truth
        .into_iter()
        .map(|(n, similarity)| (n, similarity >= threshold))
        .collect();
    let k = config.matching.candidates;
    let mut search = Vec::new();
    for &ef in &settings.ef {
        for (kind, queries, truth) in [
            ("paraphrase", &paraphrases, &truth[..check]),
            ("fresh", &fresh, &truth[check..]),
        ] {
            let figures = measure_search(&store, &index, kind, queries, k, ef, truth)?;
            println!(
                "search {kind:>10} ef={ef:<4} p50 {:.3} ms  p99 {:.3} ms  CPU {:.3} ms  recall@1 {:.3}, above threshold {:.3} of {}",
                figures.latency.p50_ms, figures.latency.p99_ms, figures.cpu_ms, figures.recall_at_1,
                figures.recall_above_threshold, figures.above_threshold
            );
            search.push(figures);
        }
    }
    Ok(InProcess {
        fill: fill_figures,
        load_secs,
        load_cpu_secs,
        ef_construction: index.ef_construction_of(&scope()),
        search,
    })
}

fn table(report: &ScaleReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "\n{}", report.note);
    let _ = writeln!(
        out,
        "entries {}: filled {} in {:.1} s ({:.0}/s, {:.0} s CPU), checkpoint written in {:.1} s; reload in-process {:.2} s ({:.2} s CPU)",
        report.entries,
        report.fill.added,
        report.fill.secs,
        report.fill.per_sec,
        report.fill.cpu_secs,
        report.fill.checkpoint_secs,
        report.load_in_process_secs,
        report.load_in_process_cpu_secs
    );
    let _ = writeln!(
        out,
        "graph: M=16, ef_construction {}",
        report
            .ef_construction
            .map_or("unknown".into(), |e| e.to_string())
    );
    let _ = writeln!(
        out,
        "checkpoint {} on disk, sled {}",
        mib(report.checkpoint_bytes),
        mib(report.sled_bytes)
    );
    let _ = writeln!(
        out,
        "queries      k   ef    p50 ms   p99 ms   CPU ms  recall@1  recall@1 above threshold"
    );
    for s in &report.search {
        let _ = writeln!(
            out,
            "{:<10} {:>3} {:>4} {:>9.3} {:>8.3} {:>8.3} {:>9.3} ({} checked)  {:.3} ({} of them)",
            s.queries,
            s.k,
            s.ef,
            s.latency.p50_ms,
            s.latency.p99_ms,
            s.cpu_ms,
            s.recall_at_1,
            s.recall_checked,
            s.recall_above_threshold,
            s.above_threshold
        );
    }
    if let Some(r) = &report.restart {
        let _ = writeln!(
            out,
            "restart to SERVING: {:.2} s ({} CPU); resident {} (empty sidecar {}): {:.0} bytes per entry",
            r.secs_to_serving,
            r.cpu_secs_to_serving
                .map_or("unknown".into(), |c| format!("{c:.2} s")),
            mib(r.rss_bytes),
            mib(r.empty_rss_bytes),
            r.bytes_per_entry
        );
        let _ = writeln!(
            out,
            "over gRPC against it: exact Lookup p50 {:.2} ms p99 {:.2} ms ({} of {} hits); non-exact Lookup (embedding + search) p50 {:.2} ms p99 {:.2} ms",
            r.exact_lookup.p50_ms,
            r.exact_lookup.p99_ms,
            r.exact_hits,
            r.exact_lookup.count,
            r.semantic_lookup.p50_ms,
            r.semantic_lookup.p99_ms
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(data_dir: &Path, shape: Option<Shape>, topics: Option<usize>) -> Settings {
        Settings {
            entries: 1_000,
            data_dir: data_dir.to_path_buf(),
            shape,
            topics,
            queries: 10,
            recall_queries: 10,
            ef: vec![64],
            ef_construction: 200,
            restart: false,
            lookups: 0,
        }
    }

    #[test]
    fn a_folder_keeps_the_generator_it_was_filled_with() {
        let dir = tempfile::tempdir().unwrap();
        let first = generator(&settings(dir.path(), None, None)).unwrap();
        assert_eq!(
            first,
            Generator {
                shape: Shape::Calibrated,
                topics: 250
            }
        );
        assert_eq!(folder_generator(dir.path()).unwrap(), Some(first));
        // A resumed run to more entries keeps the topics its points were drawn with.
        let resumed = Settings {
            entries: 2_000,
            ..settings(dir.path(), None, None)
        };
        assert_eq!(generator(&resumed).unwrap(), first);
        assert_eq!(
            generator(&settings(dir.path(), Some(Shape::Calibrated), Some(250))).unwrap(),
            first
        );
        let err = generator(&settings(dir.path(), Some(Shape::Isotropic), None)).unwrap_err();
        assert!(
            err.to_string().contains("Calibrated vectors in 250 topics"),
            "{err}"
        );
        assert!(generator(&settings(dir.path(), None, Some(10))).is_err());
    }
}
