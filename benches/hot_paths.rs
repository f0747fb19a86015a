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
    Embedder::start(&cachet::config::EmbedConfig::default())
        .expect("model assets (run scripts/setup.sh and export CACHET_ASSETS_DIR)")
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

/// One HNSW search after another over `queries`, as criterion bench `index/search_{name}`.
fn bench_search(
    c: &mut Criterion,
    name: &str,
    index: &IndexSet,
    scope: ScopeKey,
    queries: &[Vec<f32>],
) {
    let mut group = c.benchmark_group("index");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut next = 0;
    group.bench_function(format!("search_{name}"), |b| {
        b.iter(|| {
            next = (next + 1) % queries.len();
            index.search(&scope, black_box(&queries[next]), K, EF)
        })
    });
    group.finish();
}

/// Prints recall@1 of `queries` at each breadth in `efs`, against brute force over the
/// `points` points `point(n)` gives; `id_of` gives the entry id of point `n`. A point found as
/// similar as the true nearest one counts as found (real questions can embed identically).
fn report_recall<P: AsRef<[f32]>>(
    name: &str,
    (index, scope): (&IndexSet, ScopeKey),
    queries: &[Vec<f32>],
    efs: &[usize],
    (point, points): (impl Fn(u64) -> P + Sync, u64),
    id_of: impl Fn(u64) -> Option<u64>,
) {
    let truths = cachet::synthetic::brute_force_nearest(point, points, queries, 2);
    let wanted: Vec<Option<u64>> = truths.iter().map(|&(n, _)| id_of(n)).collect();
    let threshold = cachet::config::MatchingConfig::default().threshold;
    let best: Vec<f32> = truths.iter().map(|&(_, similarity)| similarity).collect();
    let above = best.iter().filter(|&&b| b >= threshold).count();
    for &ef in efs {
        let mut times = Vec::with_capacity(queries.len());
        let found: Vec<bool> = queries
            .iter()
            .zip(&wanted)
            .zip(&best)
            .map(|((query, &wanted), &best)| {
                let started = std::time::Instant::now();
                let found = index.search(&scope, query, K, ef);
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                found
                    .first()
                    .is_some_and(|c| Some(c.id) == wanted || c.similarity >= best - 1e-6)
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let quantile = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        let hits = found.iter().filter(|&&f| f).count();
        let hits_above = (found.iter().zip(&best))
            .filter(|&(&f, &b)| f && b >= threshold)
            .count();
        eprintln!(
            "index/search_{name}: recall@1 = {:.3} ({hits}/{} queries, k={K}, ef={ef}, against brute force); of the {above} whose nearest is above the threshold ({threshold}): {:.3}; each search timed once: p50 {:.3} ms, p99 {:.3} ms",
            hits as f64 / queries.len() as f64,
            queries.len(),
            hits_above as f64 / above.max(1) as f64,
            quantile(0.5),
            quantile(0.99),
        );
    }
}

/// Candidates and search breadth of the default config (`matching.candidates`, `ef_search`).
const K: usize = 4;
const EF: usize = 64;
const QUERIES: u64 = 200;

/// A graph of `points` vectors, point `n` as entry `n`, inserted on two threads the way the
/// sidecar inserts them. It lives in memory only: the store's entries are needed to reload it,
/// not to search it.
fn build_graph<P: AsRef<[f32]>>(
    dir: &Path,
    name: &str,
    points: u64,
    point: impl Fn(u64) -> P + Sync,
) -> IndexSet {
    let store = Store::open(&dir.join("db"), &StorageConfig::default()).expect("store");
    let (index, _) = IndexSet::load(&dir.join("index"), &store).expect("index");
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for part in 0..2 {
            let (index, point) = (&index, &point);
            s.spawn(move || {
                for n in (part..points).step_by(2) {
                    index.insert(&GRAPH_SCOPE, n, point(n).as_ref());
                }
            });
        }
    });
    eprintln!(
        "index/search_{name}: inserted {points} vectors ({DIMENSIONS} dims) in {:.1} s (2 threads)",
        started.elapsed().as_secs_f64()
    );
    index
}

const GRAPH_SCOPE: ScopeKey = ScopeKey([1; 16]);

/// Calibrated SYNTHETIC vectors (see `cachet::synthetic`) in a graph built here, searched with
/// `queries` paraphrase-like queries, each near the stored point it was made from.
fn bench_calibrated(c: &mut Criterion, name: &str, points: u64, queries: u64, efs: &[usize]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let shape = cachet::synthetic::Shape::Calibrated;
    let data = cachet::scale::Generator {
        shape,
        topics: shape.default_topics(points),
    }
    .data();
    let index = build_graph(dir.path(), name, points, |n| data.point(n));
    let queries: Vec<Vec<f32>> = (0..queries)
        .map(|q| data.paraphrase_of((q * 7919) % points, q))
        .collect();
    report_recall(
        name,
        (&index, GRAPH_SCOPE),
        &queries,
        efs,
        (|n| data.point(n), points),
        Some,
    );
    bench_search(c, name, &index, GRAPH_SCOPE, &queries);
}

/// HNSW search with recall@1 against brute force, at the default breadth:
/// - `index/search_10k`, `index/search_100k`: calibrated SYNTHETIC vectors in graphs built here
///   (100k takes about a minute on 2 cores), queries near stored points the way a paraphrase is
///   near its stored prompt;
/// - `CACHET_BENCH_SCALE_DIRS=/data/100k,/data/1m`: graphs written by `cachet bench scale`,
///   loaded through the product's loader, as `index/search_{entries}`;
/// - `CACHET_BENCH_REAL_VECTORS=DIR` (see `eval/real_vectors.py`): real embeddings of every
///   distinct Quora question, searched with real paraphrases of stored ones, as
///   `index/search_{folder}_{n}k`, beside `index/search_calibrated_{n}k` on as many calibrated
///   vectors.
fn bench_index(c: &mut Criterion) {
    bench_calibrated(c, "10k", 10_000, QUERIES, &[EF]);
    bench_calibrated(c, "100k", 100_000, QUERIES, &[EF]);

    let dirs = std::env::var("CACHET_BENCH_SCALE_DIRS").unwrap_or_default();
    for data_dir in dirs.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let data_dir = Path::new(data_dir);
        let store = Store::open(data_dir, &StorageConfig::default()).expect("scale data folder");
        let started = std::time::Instant::now();
        let (index, _) = IndexSet::load(&data_dir.join("index"), &store).expect("scale index");
        let scope = cachet::scale::scope();
        let points = index.points(&scope) as u64;
        assert!(
            points > 0,
            "{} holds no `cachet bench scale` entries",
            data_dir.display()
        );
        eprintln!(
            "index: loaded {points} points from {} in {:.1} s",
            data_dir.display(),
            started.elapsed().as_secs_f64()
        );
        let data = cachet::scale::folder_generator(data_dir)
            .expect("generator record")
            .expect("a folder filled by `cachet bench scale` records its generator")
            .data();
        let queries: Vec<Vec<f32>> = (0..QUERIES)
            .map(|q| data.paraphrase_of((q * 7919 + 13) % points, q))
            .collect();
        let name = match points {
            p if p % 1_000_000 == 0 => format!("{}m", p / 1_000_000),
            p if p % 1_000 == 0 => format!("{}k", p / 1_000),
            p => p.to_string(),
        };
        report_recall(
            &name,
            (&index, scope),
            &queries,
            &[EF],
            (|n| data.point(n), points),
            |n| cachet::scale::entry_id(&store, n).expect("sled read"),
        );
        bench_search(c, &name, &index, scope, &queries);
    }

    if let Ok(dir) = std::env::var("CACHET_BENCH_REAL_VECTORS") {
        bench_real_vectors(c, Path::new(&dir));
    }
}

/// The vectors `cachet embed-pairs` wrote to `path`, in file order: two per pair, `a` then `b`.
fn read_pair_vectors(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4 * DIMENSIONS)
        .map(|row| {
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect()
        })
        .collect()
}

/// Real stored vectors and real paraphrases as queries (`eval/real_vectors.py`), or a folder
/// `eval/densify_real.py` made from them; named after the folder (`index/search_real_135k`).
/// Up to 200k points, beside as many calibrated SYNTHETIC vectors: larger calibrated graphs
/// take long to build here, and `cachet bench scale` folders provide them.
fn bench_real_vectors(c: &mut Criterion, dir: &Path) {
    // An empty text's vector is all zeros.
    let is_text = |v: &Vec<f32>| v.iter().map(|x| x * x).sum::<f32>() > 0.5;
    let stored: Vec<Vec<f32>> = read_pair_vectors(&dir.join("stored.f32"))
        .into_iter()
        .filter(is_text)
        .collect();
    // Each query pair is (stored question, its paraphrase): the paraphrases are the queries.
    let queries: Vec<Vec<f32>> = read_pair_vectors(&dir.join("queries.f32"))
        .into_iter()
        .skip(1)
        .step_by(2)
        .filter(is_text)
        .collect();
    let points = stored.len() as u64;
    let folder = dir.file_name().unwrap_or_default().to_string_lossy();
    let name = format!("{folder}_{}k", points / 1000);
    let graph_dir = tempfile::tempdir().expect("tempdir");
    let index = build_graph(graph_dir.path(), &name, points, |n| &stored[n as usize]);
    report_recall(
        &name,
        (&index, GRAPH_SCOPE),
        &queries,
        REAL_EFS,
        (|n| stored[n as usize].as_slice(), points),
        Some,
    );
    bench_search(c, &name, &index, GRAPH_SCOPE, &queries);
    drop(index);
    if points > 200_000 {
        return;
    }
    bench_calibrated(
        c,
        &format!("calibrated_{}k", points / 1000),
        points,
        queries.len() as u64,
        REAL_EFS,
    );
}

/// Breadths at which real and calibrated vectors are compared.
const REAL_EFS: &[usize] = &[8, 16, 32, EF];

fn bench_guard(c: &mut Criterion) {
    cachet::cache::guard::install_wordnet(&cachet::config::EmbedConfig::default().assets_dir)
        .expect("WordNet (run scripts/setup.sh and export CACHET_ASSETS_DIR)");
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
    // One noun swapped in an otherwise identical question: every family, the last one
    // (`things`) looking both nouns up in WordNet.
    group.bench_function("conflict_one_noun_swapped", |b| {
        b.iter(|| {
            cachet::cache::guard::conflict(
                black_box("How do I get rid of ants in the kitchen?"),
                black_box("How do I get rid of ants in the garden?"),
            )
        })
    });
    // A reworded chat: every family on the last messages and on the earlier turns, both
    // cut into words, as a lookup does for each candidate that differs in its earlier turns.
    group.bench_function("chat_conflict", |b| {
        use cachet::cache::guard::{chat_conflict, EarlierTurns, Text};
        b.iter(|| {
            let (last_a, last_b) = (
                Text::new(black_box(
                    "Yes, that's the one. Can I get a replacement part?",
                )),
                Text::new(black_box("Correct. Can I get a replacement part?")),
            );
            let earlier_a = EarlierTurns::new(black_box(
                "user: I bought the Aeron chair from you last week and the armrest is wobbly.\n\
                 assistant: Sorry to hear that. Is the order number 55120?",
            ));
            let earlier_b = EarlierTurns::new(black_box(
                "user: The armrest on the Aeron chair I ordered from you last week wobbles.\n\
                 assistant: I'm sorry about that. Can you confirm it's order 55120?",
            ));
            chat_conflict((&last_a, &last_b), Some((&earlier_a, &earlier_b)))
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
    let mut rng = cachet::synthetic::Rng::new(42, 0);
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
