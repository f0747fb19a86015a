//! Local sentence embeddings: all-MiniLM-L6-v2 (int8, 384 dims) on ONNX Runtime via fastembed.
//!
//! Embedding is the one expensive step of a lookup (a few milliseconds a prompt on two cores), so
//! it runs on a dedicated OS thread that owns the model. Requests queue on a channel; each time the
//! worker is free it takes everything queued (up to `max_batch` texts) and runs it as one batch,
//! sorted by length so prompts of a like size share each model call. Under load that batches
//! concurrent requests, which is markedly cheaper per prompt; a lone request never waits for
//! company.
//!
//! The worker can run at a lower CPU priority (`embed.niceness`): a batch takes milliseconds of
//! both cores, and an exact hit, which needs microseconds, should not wait for it to finish.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

mod spelling;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use tokio::sync::oneshot;

use crate::config::EmbedConfig;
use crate::histogram::{Histogram, BATCH_SIZES};

/// Vector size of all-MiniLM-L6-v2.
pub const DIMENSIONS: usize = 384;

/// Word pieces the model reads. The model was trained on 256; text beyond that is cut off, so a
/// longer text's embedding does not describe all of it (see [`Embedding::truncated`]).
pub const MAX_TOKENS: usize = 256;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbedError {
    #[error("model assets are missing: {0}; run scripts/setup.sh (or point embed.assets_dir at its output)")]
    MissingAssets(String),
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Runtime { path: PathBuf, message: String },
    #[error("cannot load the embedding model: {0}")]
    Model(String),
    #[error("embedding failed: {0}")]
    Inference(String),
    #[error("the embedding worker has stopped")]
    WorkerGone,
}

/// One text's embedding.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// Unit-length vector of [`DIMENSIONS`] floats.
    pub vector: Vec<f32>,
    /// The text was longer than the model's window and only its beginning was embedded.
    pub truncated: bool,
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Embedding>, EmbedError>>,
}

/// Counters that show whether batching happens.
#[derive(Debug)]
pub struct EmbedStats {
    pub batches: AtomicU64,
    pub texts: AtomicU64,
    /// Texts per batch.
    pub batch_sizes: Histogram,
}

impl Default for EmbedStats {
    fn default() -> Self {
        Self {
            batches: AtomicU64::new(0),
            texts: AtomicU64::new(0),
            batch_sizes: Histogram::new(BATCH_SIZES),
        }
    }
}

/// Handle to the embedding worker. Cheap to clone; the worker stops when the last handle drops.
#[derive(Clone)]
pub struct Embedder {
    jobs: mpsc::Sender<Job>,
    stats: Arc<EmbedStats>,
    vocabulary: Arc<spelling::Vocabulary>,
}

/// Paths of the assets inside `assets_dir`, as laid out by `scripts/setup.sh`.
struct Assets {
    runtime: PathBuf,
    model_dir: PathBuf,
    /// English word frequencies for typo repair (see [`spelling`]).
    word_counts: PathBuf,
}

impl Assets {
    fn locate(assets_dir: &Path) -> Result<Self, EmbedError> {
        let assets = Self {
            runtime: assets_dir.join("libonnxruntime.so"),
            model_dir: assets_dir.join("model"),
            word_counts: assets_dir.join("spelling").join("en.json.gz"),
        };
        let required = [
            assets.runtime.clone(),
            assets.model_dir.join("model.onnx"),
            assets.model_dir.join("tokenizer.json"),
            assets.model_dir.join("config.json"),
            assets.model_dir.join("special_tokens_map.json"),
            assets.model_dir.join("tokenizer_config.json"),
            assets.word_counts.clone(),
        ];
        if let Some(missing) = required.iter().find(|p| !p.is_file()) {
            return Err(EmbedError::MissingAssets(missing.display().to_string()));
        }
        Ok(assets)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, EmbedError> {
        read(&self.model_dir.join(name))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| EmbedError::MissingAssets(format!("{}: {e}", path.display())))
}

/// ONNX Runtime allows one environment per process; every embedder in the process shares it.
fn runtime_environment(library: &Path) -> Result<ort::environment::Environment, EmbedError> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, EmbedError>> =
        OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let failed = |message: String| EmbedError::Runtime {
                path: library.to_path_buf(),
                message,
            };
            ort::init_from(library)
                .map_err(|e| failed(e.to_string()))?
                .with_name("cachet")
                .build()
                .map_err(|e| failed(e.to_string()))
        })
        .clone()
}

fn load_model(assets_dir: &Path, threads: usize) -> Result<TextEmbedding, EmbedError> {
    let assets = Assets::locate(assets_dir)?;
    let environment = runtime_environment(&assets.runtime)?;
    let model = UserDefinedEmbeddingModel::new(
        assets.read("model.onnx")?,
        TokenizerFiles {
            tokenizer_file: assets.read("tokenizer.json")?,
            config_file: assets.read("config.json")?,
            special_tokens_map_file: assets.read("special_tokens_map.json")?,
            tokenizer_config_file: assets.read("tokenizer_config.json")?,
        },
    )
    .with_pooling(Pooling::Mean);
    let options = InitOptionsUserDefined::new()
        .with_environment(environment)
        .with_max_length(MAX_TOKENS)
        .with_intra_threads(threads)
        // ONNX Runtime's workers otherwise spin after each parallel step waiting for the next,
        // burning the cores the gRPC threads (and, in a pod, the application) need. Measured
        // with `cachet bench` on 2 shared cores: 1.5-2x the lookups per second, semantic p50
        // halved, without spinning.
        .with_session_config("session.intra_op.allow_spinning", "0");
    TextEmbedding::try_new_from_user_defined(model, options)
        .map_err(|e| EmbedError::Model(e.to_string()))
}

impl Embedder {
    /// Loads the model on a new worker thread and returns once it is ready to embed.
    pub fn start(config: &EmbedConfig) -> Result<Self, EmbedError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stats = Arc::new(EmbedStats::default());
        let worker_stats = Arc::clone(&stats);
        let assets = Assets::locate(&config.assets_dir)?;
        let vocabulary = spelling::Vocabulary::load(
            &assets.read("tokenizer.json")?,
            &read(&assets.word_counts)?,
        )
        .map_err(EmbedError::Model)?;
        let config = config.clone();
        std::thread::Builder::new()
            .name("cachet-embed".into())
            .spawn(move || {
                // Before the model loads: ONNX Runtime's own threads inherit the priority.
                lower_priority(config.niceness);
                match load_model(&config.assets_dir, config.threads) {
                    Ok(model) => {
                        let _ = ready_tx.send(Ok(()));
                        run_worker(model, queue, config.max_batch, &worker_stats);
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
            })
            .map_err(|e| EmbedError::Model(format!("cannot start the embedding thread: {e}")))?;
        ready_rx.recv().map_err(|_| EmbedError::WorkerGone)??;
        Ok(Self {
            jobs,
            stats,
            vocabulary: Arc::new(vocabulary),
        })
    }

    /// Embeds `texts`, in order, after repairing typos (see [`spelling`]). Waits only for the
    /// batch this request joins.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Embedding>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let texts = texts.iter().map(|t| self.vocabulary.repair(t)).collect();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { texts, reply })
            .map_err(|_| EmbedError::WorkerGone)?;
        answer.await.map_err(|_| EmbedError::WorkerGone)?
    }

    pub fn stats(&self) -> &EmbedStats {
        &self.stats
    }
}

/// Raises the calling thread's nice value (Linux: per thread, inherited by threads it starts).
/// Lowering priority needs no privilege; a failure only costs latency, so it is logged, not fatal.
fn lower_priority(niceness: i32) {
    if niceness <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let outcome = unsafe {
            let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, thread, niceness)
        };
        if outcome != 0 {
            tracing::warn!(
                niceness,
                error = %std::io::Error::last_os_error(),
                "cannot lower the embedding threads' priority"
            );
        }
    }
}

fn run_worker(
    mut model: TextEmbedding,
    queue: mpsc::Receiver<Job>,
    max_batch: usize,
    stats: &EmbedStats,
) {
    // Blocks for the first job, then sweeps up whatever else is already waiting.
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        let mut queued: usize = jobs[0].texts.len();
        while queued < max_batch {
            match queue.try_recv() {
                Ok(job) => {
                    queued += job.texts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let texts: usize = jobs.iter().map(|j| j.texts.len()).sum();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.texts.fetch_add(texts as u64, Ordering::Relaxed);
        stats.batch_sizes.observe(texts as f64);
        embed_jobs(&mut model, jobs);
    }
}

/// Prompts per model call. A worker's batch (up to `embed.max_batch`) is sorted by length and run
/// in calls of this many: every call pads its prompts to its longest, and larger calls cost more
/// per prompt here. Measured on Quora questions with int8 MiniLM on 2 cores, CPU per prompt: 11-12
/// ms in calls of 32 as they came, 7.5 ms in sorted calls of 16, 6 ms of 8, 5.0-5.6 ms of 4,
/// 5.3-5.5 ms of 2 and 6.5 ms one at a time.
const MODEL_BATCH: usize = 4;

/// A job of the batch being embedded: its embeddings so far, and where to send them.
struct Pending {
    embeddings: Vec<Option<Embedding>>,
    left: usize,
    reply: Option<oneshot::Sender<Result<Vec<Embedding>, EmbedError>>>,
}

/// Embeds the texts of `jobs`, shortest first, [`MODEL_BATCH`] to a model call, and answers each
/// job as soon as its last text is done: short prompts need not wait for the batch's long ones.
fn embed_jobs(model: &mut TextEmbedding, jobs: Vec<Job>) {
    let mut texts: Vec<(usize, usize, String)> = Vec::new();
    let mut pending: Vec<Pending> = Vec::with_capacity(jobs.len());
    for (job_index, job) in jobs.into_iter().enumerate() {
        pending.push(Pending {
            embeddings: vec![None; job.texts.len()],
            left: job.texts.len(),
            reply: Some(job.reply),
        });
        texts.extend(
            (job.texts.into_iter().enumerate()).map(|(position, text)| (job_index, position, text)),
        );
    }
    texts.sort_by_key(|(_, _, text)| text.len());
    for call in texts.chunks(MODEL_BATCH) {
        let inputs: Vec<&str> = call.iter().map(|(_, _, text)| text.as_str()).collect();
        let embedded = match model_call(model, &inputs) {
            Ok(embedded) if embedded.len() == inputs.len() => embedded,
            outcome => {
                let err = outcome.err().unwrap_or_else(|| {
                    EmbedError::Inference("the model returned too few embeddings".into())
                });
                // One failed call fails every job still waiting, as a failed batch always has.
                for reply in pending.iter_mut().filter_map(|p| p.reply.take()) {
                    let _ = reply.send(Err(err.clone()));
                }
                return;
            }
        };
        for ((job_index, position, _), embedding) in call.iter().zip(embedded) {
            let job = &mut pending[*job_index];
            job.embeddings[*position] = Some(embedding);
            job.left -= 1;
            if job.left == 0 {
                if let Some(reply) = job.reply.take() {
                    let _ = reply.send(Ok(job.embeddings.drain(..).flatten().collect()));
                }
            }
        }
    }
}

fn model_call(model: &mut TextEmbedding, texts: &[&str]) -> Result<Vec<Embedding>, EmbedError> {
    // A panic inside the runtime must not take the worker (and every later request) down.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let vectors = model
            .embed(texts, Some(MODEL_BATCH))
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        texts
            .iter()
            .zip(vectors)
            .map(|(text, vector)| {
                let tokens = model
                    .tokenizer
                    .encode(*text, true)
                    .map_err(|e| EmbedError::Inference(e.to_string()))?;
                Ok(Embedding {
                    vector: unit_length(vector),
                    // The tokenizer truncates at the window: a full window means text may be cut.
                    truncated: tokens.len() >= MAX_TOKENS,
                })
            })
            .collect()
    }));
    outcome.unwrap_or_else(|_| Err(EmbedError::Inference("the model panicked".into())))
}

fn unit_length(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two unit-length vectors.
///
/// This is the HNSW distance, so it dominates search and insert time. It is summed in 16
/// independent lanes: a plain `iter().sum()` is one serial chain of float additions that the
/// compiler may not reorder, so it runs scalar; lanes let it use vector registers. Where the
/// CPU has AVX2 the same code is compiled for it (checked at run time, so the binary still
/// runs anywhere); the lanes add up in the same order either way, so results are identical.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dot_avx2(a, b) }.clamp(-1.0, 1.0);
    }
    dot(a, b).clamp(-1.0, 1.0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut lanes = [0.0f32; LANES];
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedder() -> Embedder {
        Embedder::start(&EmbedConfig::default()).expect("model assets (run scripts/setup.sh)")
    }

    #[tokio::test]
    async fn paraphrases_are_closer_than_unrelated_text() {
        let e = embedder();
        let out = e
            .embed(vec![
                "How do I reset my password?".into(),
                "How can I reset my password?".into(),
                "What is the capital of France?".into(),
            ])
            .await
            .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].vector.len(), DIMENSIONS);
        let para = similarity(&out[0].vector, &out[1].vector);
        let unrelated = similarity(&out[0].vector, &out[2].vector);
        assert!(para > 0.9, "paraphrase similarity {para}");
        assert!(unrelated < 0.5, "unrelated similarity {unrelated}");
        assert!(!out[0].truncated);
    }

    #[tokio::test]
    async fn a_typo_does_not_break_a_match() {
        let e = embedder();
        let out = e
            .embed(vec![
                "How do I cancel my subscription?".into(),
                "How do I cancle my subscripton?".into(),
            ])
            .await
            .unwrap();
        let typo = similarity(&out[0].vector, &out[1].vector);
        assert!(typo > 0.99, "typo similarity {typo}");
    }

    #[tokio::test]
    async fn long_text_is_flagged_as_truncated() {
        let e = embedder();
        let long = "word ".repeat(600);
        let out = e.embed(vec![long]).await.unwrap();
        assert!(out[0].truncated);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_batches() {
        let e = embedder();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(async move {
                    e.embed(vec![format!("question number {i} about caching")])
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().len(), 1);
        }
        let stats = e.stats();
        assert_eq!(stats.texts.load(Ordering::Relaxed), 64);
        assert!(
            stats.batches.load(Ordering::Relaxed) < 64,
            "64 concurrent requests ran as {} batches",
            stats.batches.load(Ordering::Relaxed)
        );
    }

    #[tokio::test]
    async fn a_batch_of_mixed_lengths_comes_back_in_the_order_sent() {
        let e = embedder();
        let texts: Vec<String> = [
            "What is the refund policy for orders shipped to Canada after the holiday season ends?",
            "Hi",
            "How do I reset my password?",
            "Which plants are toxic to cats and dogs, and what should I do if my pet eats one?",
            "Track order 48213",
            "Why won't my dishwasher drain?",
        ]
        .map(String::from)
        .to_vec();
        let together = e.embed(texts.clone()).await.unwrap();
        for (text, batched) in texts.into_iter().zip(together) {
            let alone = e.embed(vec![text.clone()]).await.unwrap();
            let agreement = similarity(&alone[0].vector, &batched.vector);
            assert!(agreement > 0.99, "{text:?}: {agreement} against itself");
        }
    }

    #[test]
    fn the_worker_runs_at_the_configured_niceness() {
        let config = EmbedConfig {
            niceness: 7,
            ..EmbedConfig::default()
        };
        let _e = Embedder::start(&config).expect("model assets (run scripts/setup.sh)");
        let worker_nice = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let path = task.ok()?.path();
                let name = std::fs::read_to_string(path.join("comm")).ok()?;
                (name.trim() == "cachet-embed").then(|| {
                    let stat = std::fs::read_to_string(path.join("stat")).unwrap();
                    let after_name = stat.rsplit_once(')').unwrap().1;
                    // Field 19 of stat; 17 fields follow the name before it.
                    after_name
                        .split_whitespace()
                        .nth(16)
                        .unwrap()
                        .parse::<i32>()
                        .unwrap()
                })
            })
            .collect::<Vec<_>>();
        // Other tests' embedders (at niceness 0) may run in this process too; nothing but this
        // one asks for 7.
        assert!(
            worker_nice.contains(&7),
            "cachet-embed threads at {worker_nice:?}"
        );
    }

    #[test]
    fn missing_assets_say_how_to_fix_it() {
        let config = EmbedConfig {
            assets_dir: "/nonexistent".into(),
            ..EmbedConfig::default()
        };
        let err = Embedder::start(&config).err().unwrap().to_string();
        assert!(err.contains("scripts/setup.sh"), "{err}");
    }
}
