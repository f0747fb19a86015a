//! Micro-benchmarks of the steps a lookup goes through, each on its own, plus a whole
//! in-process lookup (no gRPC): `cargo bench --bench hot_paths`.
//!
//! Needs the model assets (`bash scripts/setup.sh`; found through `CACHET_ASSETS_DIR` or the
//! default folder). Sized to finish in well under three minutes on two cores.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cachet::cache::{Cache, Request, Status};
use cachet::config::{Config, StorageConfig};
use cachet::embed::{Embedder, DIMENSIONS};
use cachet::index::IndexSet;
use cachet::scope::{ChatMessage, Role, ScopeKey};
use cachet::store::{Labels, Store, StoredEntry, Usage};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio::runtime::Runtime;

/// 17 words: a typical support question.
const PROMPT: &str =
    "How do I change the shipping address on an order that I placed yesterday but has not shipped?";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn embedder() -> Embedder {
    Embedder::start(&cachet::config::default_assets_dir(), 2, 32)
        .expect("model assets (run scripts/setup.sh and export CACHET_ASSETS_DIR)")
}

/// Deterministic xorshift64* generator, so every run benches the same data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1].
    fn unit_f64(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit_f64(), self.unit_f64());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    /// A random direction: Gaussian components, normalised, so uniform on the unit sphere.
    fn unit_vector(&mut self, dims: usize) -> Vec<f32> {
        normalised((0..dims).map(|_| self.normal()).collect())
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn bench_embed(c: &mut Criterion) {
    let rt = runtime();
    let embedder = embedder();
    let mut group = c.benchmark_group("embed");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    group.bench_function("one_prompt", |b| {
        b.iter(|| {
            rt.block_on(embedder.embed(vec![PROMPT.to_string()]))
                .expect("embed")
        })
    });
    let batch: Vec<String> = (0..32)
        .map(|i| format!("Question {i}: how do I change the shipping address on an order I placed this week?"))
        .collect();
    group
        .throughput(Throughput::Elements(batch.len() as u64))
        .measurement_time(Duration::from_secs(8))
        .sample_size(10);
    group.bench_function("batch_32", |b| {
        b.iter_batched(
            || batch.clone(),
            |texts| rt.block_on(embedder.embed(texts)).expect("embed"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn bench_index(c: &mut Criterion) {
    const POINTS: usize = 10_000;
    const QUERIES: usize = 200;
    const K: usize = 4;
    const EF: usize = 64;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db"), &StorageConfig::default()).expect("store");
    let (index, _) = IndexSet::load(&dir.path().join("index"), &store).expect("index");
    let scope = ScopeKey([1; 16]);

    // SYNTHETIC data: random unit vectors of 384 dims (uniform on the sphere), not sentence
    // embeddings. Real embeddings cluster, which makes HNSW's job easier, not harder.
    let mut rng = Rng(0x5eed_cafe_f00d_beef);
    let points: Vec<Vec<f32>> = (0..POINTS).map(|_| rng.unit_vector(DIMENSIONS)).collect();
    // The index needs the store's entries only when it reloads; searching in memory does not.
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for (part, chunk) in points.chunks(POINTS.div_ceil(2)).enumerate() {
            let index = &index;
            s.spawn(move || {
                let first = part * POINTS.div_ceil(2);
                for (i, v) in chunk.iter().enumerate() {
                    index.insert(&scope, (first + i) as u64, v);
                }
            });
        }
    });
    eprintln!(
        "index/search_10k: inserted {POINTS} synthetic random unit vectors ({DIMENSIONS} dims) in {:.1} s (2 threads)",
        started.elapsed().as_secs_f64()
    );

    // Queries: stored vectors plus noise of norm 0.3, renormalised (cosine to their source ~0.96).
    let queries: Vec<Vec<f32>> = (0..QUERIES)
        .map(|q| {
            let source = &points[(q * 7919) % POINTS];
            let noise = rng.unit_vector(DIMENSIONS);
            normalised(
                source
                    .iter()
                    .zip(&noise)
                    .map(|(s, n)| s + 0.3 * n)
                    .collect(),
            )
        })
        .collect();
    // Ground truth by brute force (cosine = dot product of unit vectors), timed for scale.
    let started = std::time::Instant::now();
    let truths: Vec<u64> = queries
        .iter()
        .map(|query| {
            points
                .iter()
                .map(|p| dot(p, query))
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(id, _)| id as u64)
                .expect("points")
        })
        .collect();
    let brute_force_ms = started.elapsed().as_secs_f64() * 1000.0 / QUERIES as f64;
    let found = queries
        .iter()
        .zip(&truths)
        .filter(|(query, &truth)| {
            index
                .search(&scope, query, K, EF)
                .first()
                .is_some_and(|c| c.id == truth)
        })
        .count();
    eprintln!(
        "index/search_10k: recall@1 = {:.3} ({found}/{QUERIES} perturbed queries, k={K}, ef={EF}, against brute force, which takes {brute_force_ms:.2} ms a query)",
        found as f64 / QUERIES as f64
    );

    let mut group = c.benchmark_group("index");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut next = 0;
    group.bench_function("search_10k", |b| {
        b.iter(|| {
            next = (next + 1) % QUERIES;
            index.search(&scope, black_box(&queries[next]), K, EF)
        })
    });
    group.finish();
}

fn bench_guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("guard");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("conflict", |b| {
        b.iter(|| {
            cachet::cache::guard::conflict(
                black_box("Where is my order 48213 that I placed on 12 May?"),
                black_box("Where's my order 48213, placed on 12 May?"),
            )
        })
    });
    group.finish();
}

fn stored_entry(n: u64, vector: Vec<f32>) -> StoredEntry {
    StoredEntry {
        scope: ScopeKey([2; 16]),
        tenant: "default".into(),
        exact_key: exact_key(n),
        query: format!("stored question number {n} about an order"),
        context: String::new(),
        context_hash: [0; 16],
        query_vector: Some(vector),
        context_vector: None,
        answer: format!("The answer to question {n}, a few sentences long as answers usually are."),
        answered_by: "bench-model".into(),
        usage: Usage {
            prompt_tokens: 20,
            completion_tokens: 80,
            total_tokens: 100,
        },
        labels: Labels::default(),
        created_at: 1,
        expires_at: None,
    }
}

fn exact_key(n: u64) -> [u8; 16] {
    blake3::hash(&n.to_le_bytes()).as_bytes()[..16]
        .try_into()
        .expect("16 bytes")
}

fn bench_store(c: &mut Criterion) {
    const ENTRIES: u64 = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &StorageConfig::default()).expect("store");
    let mut rng = Rng(42);
    let scope = ScopeKey([2; 16]);
    for n in 0..ENTRIES {
        store
            .insert(&stored_entry(n, rng.unit_vector(DIMENSIONS)), "bench-model")
            .expect("insert");
    }
    store.flush().expect("flush");
    let keys: Vec<[u8; 16]> = (0..ENTRIES).map(exact_key).collect();

    let mut group = c.benchmark_group("store");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut next = 0;
    group.bench_function("get_exact", |b| {
        b.iter(|| {
            next = (next + 7919) % keys.len();
            let found = store.get_exact(&scope, &keys[next]).expect("get_exact");
            assert!(found.is_some());
            found
        })
    });
    group.finish();
}

fn chat(question: &str) -> Request {
    Request {
        tenant: "default".into(),
        model: "bench-model".into(),
        messages: vec![
            ChatMessage {
                role: Role::System,
                content: "You are the support assistant of an online shop. Answer briefly.".into(),
            },
            ChatMessage {
                role: Role::User,
                content: question.into(),
            },
        ],
        ..Default::default()
    }
}

fn open_cache(dir: &Path) -> Cache {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_path_buf();
    assert!(config.tenants.contains_key("default"));
    Cache::open(Arc::new(config)).expect("cache opens").0
}

fn bench_cache(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = rt.block_on(async { open_cache(dir.path()) });
    let stored = chat("How do I reset my password?");
    let exact = chat("How do I reset my password?");
    let paraphrase = chat("How can I reset my password?");
    let usage = Usage {
        prompt_tokens: 20,
        completion_tokens: 80,
        total_tokens: 100,
    };
    rt.block_on(cache.store(&stored, "Use the 'Forgot password' link.", usage, ""))
        .expect("store");
    let status = |request: &Request| rt.block_on(cache.lookup(request)).expect("lookup").status;
    assert_eq!(status(&exact), Status::HitExact);
    assert_eq!(
        status(&paraphrase),
        Status::HitSemantic,
        "the paraphrase must be a semantic hit"
    );

    let mut group = c.benchmark_group("cache");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("lookup_exact", |b| {
        b.iter(|| {
            rt.block_on(cache.lookup(black_box(&exact)))
                .expect("lookup")
        })
    });
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("lookup_semantic", |b| {
        b.iter(|| {
            rt.block_on(cache.lookup(black_box(&paraphrase)))
                .expect("lookup")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_embed,
    bench_index,
    bench_guard,
    bench_store,
    bench_cache
);
criterion_main!(benches);
