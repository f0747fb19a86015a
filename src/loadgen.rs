//! Load generator: drives a RUNNING sidecar over real gRPC and reports client-observed latency,
//! throughput and hit rates (`cachet bench`).
//!
//! Each concurrency level is one run. Before it, the cache is warmed through `Store` with the
//! "a" side of question pairs whose answer is the same; then `Lookup` requests (never
//! `Complete`, so no upstream is needed) are sent from C tokio tasks sharing one channel:
//!
//! - exact: an "a" text that was just stored (expected: `hit_exact`);
//! - paraphrase: the "b" text of such a pair (expected: `hit_semantic`, if the model and the
//!   threshold agree that it asks the same thing);
//! - new: a text never stored (expected: `miss`; a hit here is a false hit or a near-duplicate).
//!
//! Latency is what the client sees, from sending a request to holding the decoded response.
//! Beside it, the sidecar's own time per call, which it reports in each response's
//! `server-timing` metadata: the difference is the network, HTTP/2 and this client. On one
//! machine, client and sidecar share the cores.
//!
//! `--fill N` instead stores N distinct entries and stops: in a scope of their own, for a data
//! folder with many entries to measure start-up on, or (`--fill-scope runs`) in the scope the
//! runs look up in, leaving out the texts they send, to measure lookups against a large cache.
//!
//! Stores (warm-up and fill) are sent `store_concurrency` at a time, so the sidecar can batch
//! their embeddings and group their commits. Every call has a client-side deadline, so a stuck
//! sidecar is reported rather than waited on forever.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tonic::transport::Channel;

use crate::embed::Embedder;
use crate::proto::cache_client::CacheClient;
use crate::proto::{CacheStatus, LookupRequest, LookupResponse, Message, StoreRequest, TokenUsage};
use crate::scope::normalise_for_exact;

/// System prompt of the measured requests (part of their scope).
const SYSTEM: &str = "You are a helpful assistant. Answer briefly.";
/// System prompt of `--fill` entries in a scope of their own, so filling never turns a later
/// run's "new" questions into exact hits.
const FILL_SYSTEM: &str = "You are a helpful assistant. Answer briefly. (cachet bench fill)";

/// Where `--fill` stores its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FillScope {
    /// A scope of their own: a large data folder that later runs do not search.
    Own,
    /// The scope the runs look up in, without any text a run sends as a paraphrase or a new
    /// question: later runs search a large cache and still get semantic hits and misses.
    Runs,
}
const ANSWER: &str = "This is a stored answer written by `cachet bench`. It stands for a model's \
answer of a few sentences: long enough to be realistic on the wire, short enough not to matter.";
const USAGE: TokenUsage = TokenUsage {
    prompt_tokens: 40,
    completion_tokens: 120,
    total_tokens: 160,
};

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("`{0}` is not a valid endpoint URI (e.g. http://127.0.0.1:50051)")]
    Endpoint(String),
    #[error("cannot reach the sidecar at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("the sidecar at {0} did not become ready (health SERVING) within {1:?}")]
    NotReady(String, Duration),
    #[error("--mix `{text}`: {message}")]
    Mix { text: String, message: String },
    #[error("the embedding baseline: {0}")]
    Embed(#[from] crate::embed::EmbedError),
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Pairs(#[from] crate::pairs::PairsError),
    #[error("pairs file {path} has no usable {what}")]
    PairsEmpty { path: PathBuf, what: &'static str },
    #[error("{what} failed: {status}")]
    Call { what: String, status: tonic::Status },
    #[error(
        "{what}: no answer within {after:?}; the sidecar may be stuck (check its log and health)"
    )]
    Timeout { what: String, after: Duration },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Shares of the three request kinds. Parsed from `exact=0.4,paraphrase=0.4,new=0.2`; missing
/// kinds are 0; the shares are scaled to add up to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    pub exact: f64,
    pub paraphrase: f64,
    pub new: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Self {
            exact: 0.4,
            paraphrase: 0.4,
            new: 0.2,
        }
    }
}

impl FromStr for Mix {
    type Err = LoadgenError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |message: String| LoadgenError::Mix {
            text: text.to_string(),
            message,
        };
        let mut mix = Self {
            exact: 0.0,
            paraphrase: 0.0,
            new: 0.0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| fail(format!("`{part}` is not kind=share")))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| fail(format!("`{}` is not a number", value.trim())))?;
            if !value.is_finite() || value < 0.0 {
                return Err(fail(format!("the share of `{key}` must be 0 or more")));
            }
            match key.trim() {
                "exact" => mix.exact = value,
                "paraphrase" => mix.paraphrase = value,
                "new" => mix.new = value,
                other => {
                    return Err(fail(format!(
                        "unknown kind `{other}`; the kinds are exact, paraphrase and new"
                    )))
                }
            }
        }
        let total = mix.exact + mix.paraphrase + mix.new;
        if total <= 0.0 {
            return Err(fail("the shares add up to 0".into()));
        }
        Ok(Self {
            exact: mix.exact / total,
            paraphrase: mix.paraphrase / total,
            new: mix.new / total,
        })
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exact={:.2},paraphrase={:.2},new={:.2}",
            self.exact, self.paraphrase, self.new
        )
    }
}

/// What `cachet bench` was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub endpoint: String,
    pub tenant: String,
    pub model: String,
    /// One measured run per level.
    pub concurrency: Vec<usize>,
    /// Lookups per run.
    pub requests: usize,
    /// Gzipped JSONL of labelled pairs; `None` for the built-in generated questions.
    pub pairs: Option<PathBuf>,
    pub mix: Mix,
    /// `Store` calls in flight at once while warming up and filling.
    pub store_concurrency: usize,
    /// Client-side deadline of every call.
    pub timeout: Duration,
    /// Time the bare embedding in this process (same model, default settings) on the same
    /// texts, so the runs can be read as ratios of it: batches before the runs, and at
    /// concurrency 1 each paraphrase once more right next to its lookup.
    pub embed_baseline: bool,
    /// The sidecar's process id, to read its CPU time around each run (Linux, same machine).
    pub sidecar_pid: Option<u32>,
}

impl Settings {
    fn check(&self) -> Result<(), LoadgenError> {
        if self.concurrency.is_empty() || self.concurrency.contains(&0) {
            return Err(LoadgenError::Settings(
                "--concurrency needs one or more levels of at least 1 (e.g. 1,8,64)".into(),
            ));
        }
        if self.store_concurrency == 0 {
            return Err(LoadgenError::Settings(
                "--store-concurrency must be at least 1".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(LoadgenError::Settings(
                "--timeout-secs must be at least 1".into(),
            ));
        }
        if self.requests == 0 {
            return Err(LoadgenError::Settings(
                "--requests must be at least 1".into(),
            ));
        }
        if self.tenant.trim().is_empty() || self.model.trim().is_empty() {
            return Err(LoadgenError::Settings(
                "--tenant and --model must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// What a request is meant to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Exact,
    Paraphrase,
    New,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Exact, Kind::Paraphrase, Kind::New];

    fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Paraphrase => "paraphrase",
            Self::New => "new",
        }
    }
}

/// Question texts to draw requests from.
struct Workload {
    /// (stored text, a text with the same answer), shuffled.
    pairs: Vec<(String, String)>,
    /// Texts that no run ever stores, shuffled.
    fresh: Vec<String>,
    /// Every other distinct text, for `--fill`.
    extra: Vec<String>,
    source: String,
}

/// Deterministic xorshift64* generator: every run of the tool sends the same workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

impl Workload {
    fn load(pairs: Option<&Path>) -> Result<Self, LoadgenError> {
        let mut workload = match pairs {
            Some(path) => Self::from_file(path)?,
            None => Self::generated(),
        };
        let mut rng = Rng(0x00C0_FFEE_D00D_F00D);
        rng.shuffle(&mut workload.pairs);
        rng.shuffle(&mut workload.fresh);
        Ok(workload)
    }

    /// Reads labelled pairs (see [`crate::pairs`]); chats count by their last message.
    fn from_file(path: &Path) -> Result<Self, LoadgenError> {
        let (mut same, mut other) = (Vec::new(), Vec::new());
        for pair in crate::pairs::read(path)? {
            let (a, b) = (
                pair.a.last_text().to_string(),
                pair.b.last_text().to_string(),
            );
            if a.trim().is_empty() || b.trim().is_empty() {
                continue;
            }
            if pair.same_answer {
                same.push((a, b));
            } else {
                other.push((a, b));
            }
        }
        let workload = Self::from_pairs(same, other, format!("pairs file {}", path.display()));
        if workload.pairs.is_empty() {
            return Err(LoadgenError::PairsEmpty {
                path: path.to_path_buf(),
                what: "pairs with same_answer = true and two different texts",
            });
        }
        if workload.fresh.is_empty() {
            return Err(LoadgenError::PairsEmpty {
                path: path.to_path_buf(),
                what: "never-stored texts (the \"b\" side of pairs with same_answer = false)",
            });
        }
        Ok(workload)
    }

    /// Keeps pairs whose texts differ after exact-match normalisation (else a "paraphrase"
    /// would be an exact hit), one pair per stored text; new texts are "b" sides of not-same
    /// pairs that are never stored.
    fn from_pairs(
        same: Vec<(String, String)>,
        other: Vec<(String, String)>,
        source: String,
    ) -> Self {
        let mut stored = HashSet::new();
        let mut pairs = Vec::new();
        let mut leftover = Vec::new();
        for (a, b) in same {
            let key = normalise_for_exact(&a);
            if key != normalise_for_exact(&b) && stored.insert(key) {
                pairs.push((a, b));
            } else {
                leftover.push(b);
            }
        }
        let mut seen = HashSet::new();
        let mut fresh = Vec::new();
        for (a, b) in other {
            let key = normalise_for_exact(&b);
            if !stored.contains(&key) && seen.insert(key) {
                fresh.push(b);
            }
            leftover.push(a);
        }
        let paraphrases: HashSet<String> =
            pairs.iter().map(|(_, b)| normalise_for_exact(b)).collect();
        let extra = leftover
            .into_iter()
            .filter(|t| {
                let key = normalise_for_exact(t);
                !stored.contains(&key) && !paraphrases.contains(&key) && seen.insert(key)
            })
            .collect();
        Self {
            pairs,
            fresh,
            extra,
            source,
        }
    }

    /// Built-in questions: customer-support "how do I" questions with paraphrases, and
    /// unrelated hobby questions as new ones. Synthetic, so hit rates here show the mechanics;
    /// real traffic (`--pairs`) is what shows the model's judgement.
    fn generated() -> Self {
        const ACTIONS: &[&str] = &[
            "change",
            "reset",
            "update",
            "cancel",
            "delete",
            "recover",
            "verify",
            "view",
            "download",
            "transfer",
            "edit",
            "remove",
            "renew",
            "pause",
            "restore",
            "export",
            "link",
            "unlink",
            "activate",
            "deactivate",
        ];
        const OBJECTS: &[&str] = &[
            "password",
            "email address",
            "shipping address",
            "billing address",
            "subscription",
            "account",
            "profile picture",
            "phone number",
            "payment method",
            "credit card",
            "gift card",
            "wishlist",
            "newsletter preferences",
            "two-factor authentication",
            "username",
            "notification settings",
            "loyalty points",
            "order history",
            "invoices",
            "saved searches",
            "privacy settings",
            "language settings",
            "delivery preferences",
            "return request",
            "support ticket",
            "membership",
            "store credit",
            "security questions",
            "login sessions",
            "connected devices",
            "display name",
            "time zone",
            "marketing emails",
            "shopping cart",
            "coupon code",
            "tax information",
            "business profile",
            "team members",
            "API key",
            "data export",
            "backup codes",
            "recovery email",
            "default currency",
            "saved cards",
            "pickup location",
            "order notes",
            "product reviews",
            "price alerts",
            "rewards card",
            "home address",
            "contact preferences",
            "auto-renewal",
            "trial plan",
            "family plan",
            "referral link",
            "storage plan",
            "text message alerts",
            "account nickname",
            "purchase receipts",
            "stock alerts",
        ];
        const PLACES: &[&str] = &[
            "in the mobile app",
            "on the website",
            "for my business account",
            "from my tablet",
        ];
        const PARAPHRASES: &[(&str, &str)] = &[
            ("How can I", "?"),
            ("What are the steps to", "?"),
            ("Is there a way to", "?"),
            ("I want to", ". How do I do that?"),
            ("Can you tell me how to", "?"),
        ];
        const STEMS: &[(&str, &str)] = &[
            ("What is the best way to learn", "?"),
            ("Which books would you recommend about", "?"),
            ("Why is", " so hard for beginners?"),
            ("What are common mistakes people make with", "?"),
            ("How long does it take to get good at", "?"),
            ("Is it worth taking up", " as an adult?"),
            ("What do experts wish they had known earlier about", "?"),
            ("Where can I find a community interested in", "?"),
            ("What equipment do I need to start", "?"),
            ("How do I stay motivated while practising", "?"),
            ("What is the history of", "?"),
            ("Can someone learn", " without a teacher?"),
        ];
        const TOPICS: &[&str] = &[
            "playing the piano",
            "oil painting",
            "rock climbing",
            "Spanish grammar",
            "machine learning",
            "organic chemistry",
            "chess openings",
            "woodworking",
            "sourdough baking",
            "public speaking",
            "photography",
            "calligraphy",
            "astronomy",
            "salsa dancing",
            "knitting",
            "sailing",
            "jazz guitar",
            "Japanese cooking",
            "beekeeping",
            "pottery",
            "bird watching",
            "marathon running",
            "watercolour painting",
            "Latin",
            "statistics",
            "creative writing",
            "gardening",
            "yoga",
            "swimming",
            "skiing",
            "drawing portraits",
            "film editing",
            "music theory",
            "philosophy",
            "origami",
            "fencing",
            "archery",
            "the cello",
            "economics",
            "Mandarin pronunciation",
            "surfing",
            "interior design",
            "meditation",
            "stand-up comedy",
            "carpentry",
            "embroidery",
            "home brewing",
            "kayaking",
            "linear algebra",
            "poetry",
            "tennis",
            "acting",
            "scuba diving",
            "ice skating",
            "architecture history",
            "graphic design",
            "wine tasting",
            "mountain biking",
            "juggling",
            "magic tricks",
        ];
        let mut pairs = Vec::new();
        let mut extra = Vec::new();
        for (i, action) in ACTIONS.iter().enumerate() {
            for (j, object) in OBJECTS.iter().enumerate() {
                for (k, place) in PLACES.iter().enumerate() {
                    let a = format!("How do I {action} my {object} {place}?");
                    let n = i + j + k;
                    let (lead, tail) = PARAPHRASES[n % PARAPHRASES.len()];
                    let b = format!("{lead} {action} my {object} {place}{tail}");
                    // Another paraphrase, never sent: only `--fill` stores it.
                    let (lead, tail) = PARAPHRASES[(n + 1) % PARAPHRASES.len()];
                    extra.push(format!("{lead} {action} my {object} {place}{tail}"));
                    pairs.push((a, b));
                }
            }
        }
        let fresh = STEMS
            .iter()
            .flat_map(|(lead, tail)| TOPICS.iter().map(move |t| format!("{lead} {t}{tail}")))
            .collect();
        Self {
            pairs,
            fresh,
            extra,
            source: "built-in generated questions (synthetic support questions with \
                     template paraphrases; unrelated hobby questions as new ones)"
                .into(),
        }
    }

    /// Distinct texts for `--fill`: every text the workload has.
    fn fill_texts(&self, n: usize, scope: FillScope) -> Vec<String> {
        let pool: Vec<&String> = match scope {
            FillScope::Own => self
                .pairs
                .iter()
                .flat_map(|(a, b)| [a, b])
                .chain(&self.fresh)
                .chain(&self.extra)
                .collect(),
            FillScope::Runs => self
                .pairs
                .iter()
                .map(|(a, _)| a)
                .chain(&self.extra)
                .collect(),
        };
        let mut seen = HashSet::new();
        let pool: Vec<&String> = pool
            .into_iter()
            .filter(|t| seen.insert(normalise_for_exact(t)))
            .collect();
        (0..n)
            .map(|i| {
                let text = pool[i % pool.len()];
                match i / pool.len() {
                    0 => text.clone(),
                    round => format!("{text} (variant {round})"),
                }
            })
            .collect()
    }
}

pub(crate) fn chat(system: &str, text: &str) -> Vec<Message> {
    vec![
        Message {
            role: "system".into(),
            content: system.into(),
        },
        Message {
            role: "user".into(),
            content: text.into(),
        },
    ]
}

fn store_request(settings: &Settings, system: &str, text: &str) -> StoreRequest {
    StoreRequest {
        tenant: settings.tenant.clone(),
        model: settings.model.clone(),
        messages: chat(system, text),
        answer: ANSWER.into(),
        usage: Some(USAGE),
        ..Default::default()
    }
}

fn lookup_request(settings: &Settings, text: &str) -> LookupRequest {
    LookupRequest {
        tenant: settings.tenant.clone(),
        model: settings.model.clone(),
        messages: chat(SYSTEM, text),
        ..Default::default()
    }
}

/// Percentiles of one set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        // Nearest rank: the smallest sample with at least p of all samples at or below it.
        let rank = |p: f64| {
            let index = (p * samples.len() as f64).ceil() as usize;
            ms(samples[index.clamp(1, samples.len()) - 1])
        };
        Self {
            count: samples.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: ms(*samples.last().expect("not empty")),
            mean_ms: samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64,
        }
    }
}

/// What the requests of one intended kind got back.
#[derive(Debug, Clone, Serialize)]
pub struct Outcomes {
    pub kind: Kind,
    pub sent: usize,
    pub hit_exact: usize,
    pub hit_semantic: usize,
    pub miss: usize,
    pub other: usize,
    pub errors: usize,
    /// (hit_exact + hit_semantic) / sent.
    pub hit_rate: f64,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub concurrency: usize,
    pub requests: usize,
    /// Entries stored through `Store` before the run, and how long that took.
    pub warmed_entries: usize,
    pub warm_secs: f64,
    /// Load averages just before the measured part (other processes on the machine show here).
    pub load_average_before: Option<String>,
    pub wall_secs: f64,
    pub throughput_rps: f64,
    /// By the status the sidecar returned.
    pub exact: Latency,
    pub semantic: Latency,
    pub miss: Latency,
    pub all: Latency,
    /// The sidecar's own time for the same calls, as it reported it, by the same statuses.
    pub sidecar: SidecarTimes,
    pub errors: usize,
    pub first_error: Option<String>,
    /// By what each request was meant to test.
    pub intended: Vec<Outcomes>,
    /// CPU time per request, which unlike latency does not depend on what else the machine
    /// runs: the sidecar's (with `--sidecar-pid`) and this client's own.
    pub sidecar_cpu_ms_per_request: Option<f64>,
    pub client_cpu_ms_per_request: Option<f64>,
    /// Semantic hits against the bare embedding of the same prompts, each timed right next to
    /// its lookup (`--embed-baseline`, concurrency 1).
    pub semantic_vs_bare: Option<PairedBaseline>,
}

/// The time the sidecar reports for its handler (response metadata `server-timing`), by the
/// status it returned.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SidecarTimes {
    pub exact: Latency,
    pub semantic: Latency,
    pub miss: Latency,
    pub all: Latency,
}

/// Semantic hits and the bare embeddings of the same prompts, timed in pairs.
///
/// A baseline timed once before the runs compares two moments of a noisy machine: a busy
/// second during either moves the ratio by a tenth or more. Timing each prompt's bare embedding
/// next to its own lookup, in alternating order, exposes both to the same moments.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PairedBaseline {
    /// The semantic hits that have a paired bare embedding.
    pub lookup: Latency,
    /// The bare embeddings of those same prompts.
    pub bare: Latency,
    /// `lookup.p50_ms / bare.p50_ms`: the issue's target is at most 1.3.
    pub p50_ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
    /// 1, 5 and 15 minute load averages when the tool started (Linux), to show other load.
    pub load_average: Option<String>,
}

impl Machine {
    pub(crate) fn this() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            load_average: load_average(),
        }
    }
}

/// The 1, 5 and 15 minute load averages, where the system reports them.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Everything `cachet bench` measured, as written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub settings: Settings,
    pub workload: String,
    pub latency_note: &'static str,
    /// Client-side prost encode + decode of one Lookup request and response, in microseconds.
    pub client_codec_us: f64,
    pub embed_baseline: Option<EmbedBaseline>,
    pub runs: Vec<RunReport>,
}

/// The bare embedding of the workload's paraphrases, in this process with the model's default
/// settings, measured before the runs while the sidecar is idle.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EmbedBaseline {
    /// One prompt at a time.
    pub one_prompt: Latency,
    /// Batches of `embed.max_batch` prompts, back to back.
    pub batched_prompts_per_sec: f64,
    /// CPU time per prompt in those batches: the sidecar can do no better per lookup that
    /// needs an embedding.
    pub batched_cpu_ms_per_prompt: Option<f64>,
}

/// Prompts timed one at a time, and in batches, for the baseline.
const BASELINE_SINGLES: usize = 64;
const BASELINE_BATCHED: usize = 256;

/// Times the bare embedding of the workload's paraphrase texts (see [`EmbedBaseline`]), and
/// returns the embedder for the runs' paired timings.
async fn embed_baseline(workload: &Workload) -> Result<(EmbedBaseline, Embedder), LoadgenError> {
    let config = crate::config::EmbedConfig::default();
    let embedder = Embedder::start(&config)?;
    let texts: Vec<String> = workload
        .pairs
        .iter()
        .map(|(_, b)| b.clone())
        .cycle()
        .take(BASELINE_BATCHED)
        .collect();
    // Warm the runtime up first, as the sidecar's warm-up does.
    embedder
        .embed(texts[..config.max_batch.min(texts.len())].to_vec())
        .await?;
    let mut singles = Vec::with_capacity(BASELINE_SINGLES);
    for text in texts.iter().take(BASELINE_SINGLES) {
        let started = Instant::now();
        embedder.embed(vec![text.clone()]).await?;
        singles.push(started.elapsed());
    }
    let (started, cpu_before) = (Instant::now(), process_cpu(std::process::id()));
    for batch in texts.chunks(config.max_batch) {
        embedder.embed(batch.to_vec()).await?;
    }
    let baseline = EmbedBaseline {
        one_prompt: Latency::of(singles),
        batched_prompts_per_sec: texts.len() as f64 / started.elapsed().as_secs_f64(),
        batched_cpu_ms_per_prompt: cpu_ms_per(
            cpu_before,
            process_cpu(std::process::id()),
            texts.len(),
        ),
    };
    Ok((baseline, embedder))
}

/// What `--fill` did.
#[derive(Debug, Clone, Serialize)]
pub struct FillReport {
    pub machine: Machine,
    pub endpoint: String,
    pub tenant: String,
    pub model: String,
    pub entries: usize,
    pub replaced: usize,
    pub concurrency: usize,
    pub secs: f64,
    pub stores_per_sec: f64,
}

const LATENCY_NOTE: &str = "client-observed end-to-end latency (request sent to response \
decoded) over one gRPC channel on loopback; `sidecar` columns: the time the sidecar reports \
for its handler (server-timing), the rest being network, HTTP/2 and this client";

pub(crate) async fn connect(endpoint: &str) -> Result<Channel, LoadgenError> {
    let channel = Channel::from_shared(endpoint.to_string())
        .map_err(|_| LoadgenError::Endpoint(endpoint.to_string()))?
        .connect()
        .await
        .map_err(|source| LoadgenError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
    crate::demo::wait_until_serving(channel.clone(), crate::demo::READY_TIMEOUT)
        .await
        .map_err(|waited| LoadgenError::NotReady(endpoint.to_string(), waited))?;
    Ok(channel)
}

/// Sends `requests` through `Store` from `concurrency` tasks; stops at the first failure.
/// Returns how many replaced an existing entry.
async fn store_all(
    client: &CacheClient<Channel>,
    requests: Vec<StoreRequest>,
    concurrency: usize,
    timeout: Duration,
    what: &str,
) -> Result<usize, LoadgenError> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (mut client, requests, next) =
                (client.clone(), Arc::clone(&requests), Arc::clone(&next));
            tokio::spawn(async move {
                let mut replaced = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        return Ok(replaced);
                    };
                    let response = tokio::time::timeout(timeout, client.store(request.clone()))
                        .await
                        .map_err(|_| None)?
                        .map_err(Some)?;
                    replaced += usize::from(response.into_inner().replaced);
                }
            })
        })
        .collect();
    let mut replaced = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(n)) => replaced += n,
            Ok(Err(Some(status))) => {
                return Err(LoadgenError::Call {
                    what: what.to_string(),
                    status,
                })
            }
            Ok(Err(None)) => {
                return Err(LoadgenError::Timeout {
                    what: what.to_string(),
                    after: timeout,
                })
            }
            Err(join) => {
                return Err(LoadgenError::Call {
                    what: what.to_string(),
                    status: tonic::Status::internal(join.to_string()),
                })
            }
        }
    }
    Ok(replaced)
}

/// One lookup as sent and as answered.
struct Sample {
    kind: Kind,
    latency: Duration,
    /// The sidecar's own time for the call, as it reported it.
    sidecar: Option<Duration>,
    result: Result<CacheStatus, tonic::Status>,
    /// The bare embedding of the same prompt in this process, timed next to the lookup.
    bare: Option<BareTiming>,
}

/// One bare embedding in this process: its latency, and the CPU it cost this process (kept
/// out of the run's throughput and the client's CPU per lookup).
#[derive(Debug, Clone, Copy)]
struct BareTiming {
    wall: Duration,
    cpu: Duration,
}

/// Sends `planned` from `concurrency` tasks. With `bare`, each paraphrase is also embedded in
/// this process right before or after its lookup (alternately), for [`PairedBaseline`].
async fn lookup_all(
    client: &CacheClient<Channel>,
    planned: Vec<(Kind, LookupRequest)>,
    concurrency: usize,
    timeout: Duration,
    bare: Option<&Embedder>,
) -> Result<(Vec<Sample>, Duration), LoadgenError> {
    let planned = Arc::new(planned);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (mut client, planned, next) =
                (client.clone(), Arc::clone(&planned), Arc::clone(&next));
            let bare = bare.cloned();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((kind, request)) = planned.get(i) else {
                        return Ok::<_, LoadgenError>(samples);
                    };
                    let pairs_with = bare.as_ref().filter(|_| *kind == Kind::Paraphrase);
                    let bare_first = i % 2 == 1;
                    let mut bare_time = None;
                    if let Some(embedder) = pairs_with.filter(|_| bare_first) {
                        bare_time = Some(time_bare(embedder, request).await?);
                    }
                    let sent = Instant::now();
                    let result = tokio::time::timeout(timeout, client.lookup(request.clone()))
                        .await
                        .unwrap_or_else(|_| {
                            Err(tonic::Status::deadline_exceeded(format!(
                                "no answer within {timeout:?} (client-side deadline)"
                            )))
                        });
                    let latency = sent.elapsed();
                    if let Some(embedder) = pairs_with.filter(|_| !bare_first) {
                        bare_time = Some(time_bare(embedder, request).await?);
                    }
                    samples.push(Sample {
                        kind: *kind,
                        latency,
                        sidecar: result
                            .as_ref()
                            .ok()
                            .and_then(|r| sidecar_time(r.metadata())),
                        result: result.map(|r| r.into_inner().status()),
                        bare: bare_time,
                    });
                }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(planned.len());
    for task in tasks {
        samples.extend(task.await.expect("lookup task panicked")?);
    }
    Ok((samples, started.elapsed()))
}

/// The handler time a sidecar put in a response's `server-timing` metadata (`cachet;dur=MS`).
fn sidecar_time(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get(crate::server::SERVER_TIMING)?.to_str().ok()?;
    let ms: f64 = value.split(";dur=").nth(1)?.parse().ok()?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// How long this process takes to embed the prompt of `request` by itself.
async fn time_bare(
    embedder: &Embedder,
    request: &LookupRequest,
) -> Result<BareTiming, LoadgenError> {
    let prompt = request.messages.last().map_or("", |m| m.content.as_str());
    let (started, cpu_before) = (Instant::now(), own_cpu());
    embedder.embed(vec![prompt.to_string()]).await?;
    Ok(BareTiming {
        wall: started.elapsed(),
        cpu: own_cpu().saturating_sub(cpu_before),
    })
}

/// CPU time of this whole process so far, to the nanosecond (unlike `/proc`'s clock ticks, fine
/// enough to time one embedding).
fn own_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// How many requests of each kind a run of `total` sends.
fn split(total: usize, mix: Mix) -> [usize; 3] {
    let exact = ((total as f64 * mix.exact).round() as usize).min(total);
    let paraphrase = ((total as f64 * mix.paraphrase).round() as usize).min(total - exact);
    let new = if mix.new > 0.0 {
        total - exact - paraphrase
    } else {
        0
    };
    // Without new requests, rounding leftovers go to the larger of the other two.
    let leftover = total - exact - paraphrase - new;
    if mix.exact >= mix.paraphrase {
        [exact + leftover, paraphrase, new]
    } else {
        [exact, paraphrase + leftover, new]
    }
}

/// What one run sends: the texts stored to warm the cache, then the lookups in order.
struct LevelPlan<'a> {
    warm: Vec<&'a (String, String)>,
    lookups: Vec<(Kind, &'a str)>,
}

/// The run of `round`: each run stores its own window of pairs (wrapping around a small set)
/// and sends the kinds in a seeded shuffled order, so every tool replaying it sends the same.
fn plan_level<'a>(settings: &Settings, workload: &'a Workload, round: usize) -> LevelPlan<'a> {
    let [n_exact, n_paraphrase, n_new] = split(settings.requests, settings.mix);
    let width = n_exact.max(n_paraphrase).min(workload.pairs.len());
    let warm: Vec<&(String, String)> = (0..width)
        .map(|i| &workload.pairs[(round * width + i) % workload.pairs.len()])
        .collect();
    let mut kinds: Vec<Kind> = std::iter::repeat_n(Kind::Exact, n_exact)
        .chain(std::iter::repeat_n(Kind::Paraphrase, n_paraphrase))
        .chain(std::iter::repeat_n(Kind::New, n_new))
        .collect();
    Rng(0x5EED ^ round as u64).shuffle(&mut kinds);
    let mut used = [0usize; 3];
    let lookups = kinds
        .into_iter()
        .map(|kind| {
            let slot = &mut used[kind as usize];
            let text = match kind {
                Kind::Exact => &warm[*slot % warm.len()].0,
                Kind::Paraphrase => &warm[*slot % warm.len()].1,
                Kind::New => &workload.fresh[(round * n_new + *slot) % workload.fresh.len()],
            };
            *slot += 1;
            (kind, text.as_str())
        })
        .collect();
    LevelPlan { warm, lookups }
}

/// Warms the cache and measures one run at `concurrency`.
async fn run_level(
    client: &CacheClient<Channel>,
    settings: &Settings,
    workload: &Workload,
    round: usize,
    concurrency: usize,
    bare: Option<&Embedder>,
) -> Result<RunReport, LoadgenError> {
    let LevelPlan { warm, lookups } = plan_level(settings, workload, round);
    let warm_started = Instant::now();
    if !warm.is_empty() {
        let stores = warm
            .iter()
            .map(|(a, _)| store_request(settings, SYSTEM, a))
            .collect();
        store_all(
            client,
            stores,
            settings.store_concurrency,
            settings.timeout,
            "warming up (Store)",
        )
        .await?;
    }
    let warm_secs = warm_started.elapsed().as_secs_f64();
    let planned: Vec<(Kind, LookupRequest)> = lookups
        .into_iter()
        .map(|(kind, text)| (kind, lookup_request(settings, text)))
        .collect();

    let load_average_before = load_average();
    let sidecar_before = settings.sidecar_pid.and_then(process_cpu);
    let client_before = process_cpu(std::process::id());
    // Paired timings only where they measure what they claim: one request at a time.
    let bare = bare.filter(|_| concurrency == 1);
    let (samples, wall) = lookup_all(client, planned, concurrency, settings.timeout, bare).await?;
    let sidecar_after = settings.sidecar_pid.and_then(process_cpu);
    let client_after = process_cpu(std::process::id());
    // The paired embeddings ran between lookups, one at a time: they are not the sidecar's work.
    let (bare_wall, bare_cpu) = samples
        .iter()
        .filter_map(|s| s.bare)
        .fold((Duration::ZERO, Duration::ZERO), |(wall, cpu), b| {
            (wall + b.wall, cpu + b.cpu)
        });
    let wall = wall.saturating_sub(bare_wall);
    let client_after = client_after.map(|after| after.saturating_sub(bare_cpu));
    let mut report = summarise(samples, wall, concurrency, warm.len(), warm_secs);
    report.load_average_before = load_average_before;
    report.sidecar_cpu_ms_per_request = cpu_ms_per(sidecar_before, sidecar_after, report.requests);
    report.client_cpu_ms_per_request = cpu_ms_per(client_before, client_after, report.requests);
    Ok(report)
}

/// User + system CPU time of a process so far, all its threads (Linux: `/proc/PID/stat`, in
/// clock ticks).
pub(crate) fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

fn cpu_ms_per(before: Option<Duration>, after: Option<Duration>, count: usize) -> Option<f64> {
    let spent = after?.checked_sub(before?)?;
    (count > 0).then(|| spent.as_secs_f64() * 1000.0 / count as f64)
}

fn summarise(
    samples: Vec<Sample>,
    wall: Duration,
    concurrency: usize,
    warmed_entries: usize,
    warm_secs: f64,
) -> RunReport {
    let of_status = |wanted: CacheStatus| {
        samples
            .iter()
            .filter(move |s| s.result.as_ref().is_ok_and(|status| *status == wanted))
    };
    let by_status =
        |wanted: CacheStatus| Latency::of(of_status(wanted).map(|s| s.latency).collect());
    let sidecar_by_status =
        |wanted: CacheStatus| Latency::of(of_status(wanted).filter_map(|s| s.sidecar).collect());
    let errors: Vec<&tonic::Status> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().err())
        .collect();
    let paired: Vec<(Duration, Duration)> = of_status(CacheStatus::HitSemantic)
        .filter_map(|s| Some((s.latency, s.bare?.wall)))
        .collect();
    let semantic_vs_bare = (!paired.is_empty()).then(|| {
        let lookup = Latency::of(paired.iter().map(|p| p.0).collect());
        let bare = Latency::of(paired.iter().map(|p| p.1).collect());
        PairedBaseline {
            lookup,
            bare,
            p50_ratio: lookup.p50_ms / bare.p50_ms,
        }
    });
    let intended = Kind::ALL
        .iter()
        .map(|&kind| {
            let mine: Vec<&Sample> = samples.iter().filter(|s| s.kind == kind).collect();
            let count = |wanted: CacheStatus| {
                mine.iter()
                    .filter(|s| s.result.as_ref().is_ok_and(|status| *status == wanted))
                    .count()
            };
            let (hit_exact, hit_semantic, miss) = (
                count(CacheStatus::HitExact),
                count(CacheStatus::HitSemantic),
                count(CacheStatus::Miss),
            );
            let errors = mine.iter().filter(|s| s.result.is_err()).count();
            Outcomes {
                kind,
                sent: mine.len(),
                hit_exact,
                hit_semantic,
                miss,
                other: mine.len() - hit_exact - hit_semantic - miss - errors,
                errors,
                hit_rate: (hit_exact + hit_semantic) as f64 / mine.len().max(1) as f64,
            }
        })
        .collect();
    RunReport {
        concurrency,
        requests: samples.len(),
        warmed_entries,
        warm_secs,
        load_average_before: None,
        wall_secs: wall.as_secs_f64(),
        throughput_rps: samples.len() as f64 / wall.as_secs_f64().max(1e-9),
        exact: by_status(CacheStatus::HitExact),
        semantic: by_status(CacheStatus::HitSemantic),
        miss: by_status(CacheStatus::Miss),
        all: Latency::of(samples.iter().map(|s| s.latency).collect()),
        sidecar: SidecarTimes {
            exact: sidecar_by_status(CacheStatus::HitExact),
            semantic: sidecar_by_status(CacheStatus::HitSemantic),
            miss: sidecar_by_status(CacheStatus::Miss),
            all: Latency::of(samples.iter().filter_map(|s| s.sidecar).collect()),
        },
        errors: errors.len(),
        first_error: errors
            .first()
            .map(|e| format!("{:?}: {}", e.code(), e.message())),
        intended,
        sidecar_cpu_ms_per_request: None,
        client_cpu_ms_per_request: None,
        semantic_vs_bare,
    }
}

/// Mean time of a prost encode + decode of one typical Lookup request and response: the
/// client's own share of each latency, apart from the network and the sidecar.
fn client_codec_micros(settings: &Settings) -> f64 {
    use prost::Message as _;
    const ROUNDS: u32 = 20_000;
    let request = lookup_request(
        settings,
        "How do I change the shipping address on an order that has not shipped yet?",
    );
    let response = LookupResponse {
        hit: true,
        similarity: 0.93,
        answer: ANSWER.into(),
        entry_id: "00000000000004d2".into(),
        status: CacheStatus::HitSemantic.into(),
        usage: Some(USAGE),
        tokens_saved: USAGE.total_tokens,
        model: settings.model.clone(),
        ..Default::default()
    };
    let mut buf = Vec::with_capacity(1024);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        buf.clear();
        request.encode(&mut buf).expect("vec grows");
        let r = LookupRequest::decode(buf.as_slice()).expect("round trip");
        std::hint::black_box(r);
        buf.clear();
        response.encode(&mut buf).expect("vec grows");
        let r = LookupResponse::decode(buf.as_slice()).expect("round trip");
        std::hint::black_box(r);
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

fn header(settings: &Settings, machine: &Machine, workload: &Workload) -> String {
    let mut out = String::new();
    let levels: Vec<String> = settings.concurrency.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(out, "\ncachet bench: Lookup load over gRPC");
    let _ = writeln!(
        out,
        "machine:  {} cores (available_parallelism), {}/{}; client and sidecar share them; load average {}",
        machine.cores,
        machine.os,
        machine.arch,
        machine.load_average.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "sidecar:  {}  tenant `{}`  model `{}`",
        settings.endpoint, settings.tenant, settings.model
    );
    let _ = writeln!(
        out,
        "runs:     {} lookups per level at concurrency {}; mix {}; warm-up Stores {} at a time; deadline {:?} a call",
        settings.requests,
        levels.join(", "),
        settings.mix,
        settings.store_concurrency,
        settings.timeout
    );
    let _ = writeln!(
        out,
        "workload: {} ({} same-answer pairs, {} never-stored questions)",
        workload.source,
        workload.pairs.len(),
        workload.fresh.len()
    );
    let _ = writeln!(out, "latency:  {LATENCY_NOTE}");
    out
}

fn table(run: &RunReport, baseline: Option<&EmbedBaseline>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nconcurrency {}: {} lookups in {:.2} s = {:.1} req/s  (warm-up: {} stores in {:.2} s; errors: {}; load average before: {})",
        run.concurrency,
        run.requests,
        run.wall_secs,
        run.throughput_rps,
        run.warmed_entries,
        run.warm_secs,
        run.errors,
        run.load_average_before.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "  {:<22} {:>6} {:>9} {:>9} {:>9} {:>9} {:>13} {:>13}",
        "returned status",
        "count",
        "p50 ms",
        "p99 ms",
        "max ms",
        "mean ms",
        "sidecar p50",
        "sidecar p99"
    );
    let sidecar = &run.sidecar;
    for (name, l, own) in [
        ("hit_exact", &run.exact, &sidecar.exact),
        ("hit_semantic", &run.semantic, &sidecar.semantic),
        ("miss", &run.miss, &sidecar.miss),
        ("all", &run.all, &sidecar.all),
    ] {
        let _ = writeln!(
            out,
            "  {:<22} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>13.3} {:>13.3}",
            name, l.count, l.p50_ms, l.p99_ms, l.max_ms, l.mean_ms, own.p50_ms, own.p99_ms
        );
    }
    let _ = writeln!(
        out,
        "  {:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "intended kind", "sent", "exact", "semantic", "miss", "hit rate"
    );
    for o in &run.intended {
        let _ = writeln!(
            out,
            "  {:<22} {:>6} {:>9} {:>9} {:>9} {:>8.1}%",
            o.kind.as_str(),
            o.sent,
            o.hit_exact,
            o.hit_semantic,
            o.miss,
            100.0 * o.hit_rate
        );
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3} ms"));
    let _ = writeln!(
        out,
        "  CPU per lookup: sidecar {}, client {}",
        ms(run.sidecar_cpu_ms_per_request),
        ms(run.client_cpu_ms_per_request)
    );
    if let Some(paired) = &run.semantic_vs_bare {
        let _ = writeln!(
            out,
            "  vs bare embedding of the same prompts, timed in pairs ({}): hit_semantic p50 {:.2} ms / bare {:.2} ms = {:.2} x",
            paired.lookup.count, paired.lookup.p50_ms, paired.bare.p50_ms, paired.p50_ratio
        );
    }
    if let Some(b) = baseline {
        let _ = writeln!(
            out,
            "  vs bare embedding before the runs: hit_semantic p50 = {:.2} x one prompt; throughput = {:.0}% of batched",
            run.semantic.p50_ms / b.one_prompt.p50_ms,
            100.0 * run.throughput_rps / b.batched_prompts_per_sec
        );
        if let (Some(sidecar), Some(embed)) =
            (run.sidecar_cpu_ms_per_request, b.batched_cpu_ms_per_prompt)
        {
            // On cores of its own, throughput is cores / CPU per lookup, whatever the load here.
            let _ = writeln!(
                out,
                "  by CPU time: the sidecar spends {:.0}% of a batched embedding's CPU per lookup (throughput {:.0}% of embedding-bound)",
                100.0 * sidecar / embed,
                100.0 * embed / sidecar
            );
        }
    }
    if let Some(err) = &run.first_error {
        let _ = writeln!(out, "  first error: {err}");
    }
    out
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), LoadgenError> {
    let text = serde_json::to_string_pretty(value).expect("reports serialise");
    std::fs::write(path, text + "\n").map_err(|source| LoadgenError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs one measured run per concurrency level, printing each table as it completes.
pub async fn run(settings: &Settings, json: Option<&Path>) -> Result<Report, LoadgenError> {
    settings.check()?;
    let workload = Workload::load(settings.pairs.as_deref())?;
    let machine = Machine::this();
    let client_codec_us = client_codec_micros(settings);
    let channel = connect(&settings.endpoint).await?;
    let client = CacheClient::new(channel);
    print!("{}", header(settings, &machine, &workload));
    println!(
        "client:   prost encode+decode of one Lookup request and response takes {client_codec_us:.2} µs (included in the latencies)"
    );
    let (baseline, bare) = if settings.embed_baseline {
        let (baseline, embedder) = embed_baseline(&workload).await?;
        println!(
            "baseline: bare embedding in this process: one prompt p50 {:.2} ms, p99 {:.2} ms; batches of 32: {:.1} prompts/s, {} CPU a prompt",
            baseline.one_prompt.p50_ms,
            baseline.one_prompt.p99_ms,
            baseline.batched_prompts_per_sec,
            baseline
                .batched_cpu_ms_per_prompt
                .map_or("-".to_string(), |v| format!("{v:.2} ms"))
        );
        (Some(baseline), Some(embedder))
    } else {
        (None, None)
    };
    let mut runs = Vec::new();
    for (round, &concurrency) in settings.concurrency.iter().enumerate() {
        let report = run_level(
            &client,
            settings,
            &workload,
            round,
            concurrency,
            bare.as_ref(),
        )
        .await?;
        print!("{}", table(&report, baseline.as_ref()));
        runs.push(report);
    }
    let report = Report {
        machine,
        settings: settings.clone(),
        workload: workload.source,
        latency_note: LATENCY_NOTE,
        client_codec_us,
        embed_baseline: baseline,
        runs,
    };
    if let Some(path) = json {
        write_json(path, &report)?;
        println!("\nwrote {}", path.display());
    }
    Ok(report)
}

/// One run of the plan, as `--plan-out` writes it.
#[derive(Debug, Serialize)]
struct PlannedRun<'a> {
    concurrency: usize,
    /// Texts stored before the run (the answer is `answer`).
    store: Vec<&'a str>,
    lookups: Vec<PlannedLookup<'a>>,
}

#[derive(Debug, Serialize)]
struct PlannedLookup<'a> {
    kind: Kind,
    text: &'a str,
}

/// The whole plan: what `run` would store and look up, level by level.
#[derive(Debug, Serialize)]
struct Plan<'a> {
    workload: &'a str,
    system: &'static str,
    answer: &'static str,
    runs: Vec<PlannedRun<'a>>,
}

/// Writes what `run` would send, without sending it, so another cache (the GPTCache peer run
/// in benches/gptcache) can be driven with exactly the same requests in the same order.
pub fn write_plan(settings: &Settings, path: &Path) -> Result<(), LoadgenError> {
    settings.check()?;
    let workload = Workload::load(settings.pairs.as_deref())?;
    let runs = settings
        .concurrency
        .iter()
        .enumerate()
        .map(|(round, &concurrency)| {
            let level = plan_level(settings, &workload, round);
            PlannedRun {
                concurrency,
                store: level.warm.iter().map(|(a, _)| a.as_str()).collect(),
                lookups: level
                    .lookups
                    .into_iter()
                    .map(|(kind, text)| PlannedLookup { kind, text })
                    .collect(),
            }
        })
        .collect();
    let plan = Plan {
        workload: &workload.source,
        system: SYSTEM,
        answer: ANSWER,
        runs,
    };
    write_json(path, &plan)
}

/// Stores `entries` distinct entries through `Store` (in a scope of their own) and reports
/// how long that took.
pub async fn fill(
    settings: &Settings,
    entries: usize,
    scope: FillScope,
    json: Option<&Path>,
) -> Result<FillReport, LoadgenError> {
    settings.check()?;
    let workload = Workload::load(settings.pairs.as_deref())?;
    let machine = Machine::this();
    let concurrency = settings.store_concurrency;
    let channel = connect(&settings.endpoint).await?;
    let client = CacheClient::new(channel);
    println!(
        "\ncachet bench --fill: {entries} distinct entries through Store to {} (tenant `{}`, model `{}`), {concurrency} at a time; machine: {} cores, load average {}",
        settings.endpoint,
        settings.tenant,
        settings.model,
        machine.cores,
        machine.load_average.as_deref().unwrap_or("unknown")
    );
    println!("texts: {}", workload.source);
    let system = match scope {
        FillScope::Own => FILL_SYSTEM,
        FillScope::Runs => SYSTEM,
    };
    let requests = workload
        .fill_texts(entries, scope)
        .iter()
        .map(|text| store_request(settings, system, text))
        .collect();
    let started = Instant::now();
    let replaced = store_all(
        &client,
        requests,
        concurrency,
        settings.timeout,
        "filling (Store)",
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let report = FillReport {
        machine,
        endpoint: settings.endpoint.clone(),
        tenant: settings.tenant.clone(),
        model: settings.model.clone(),
        entries,
        replaced,
        concurrency,
        secs,
        stores_per_sec: entries as f64 / secs.max(1e-9),
    };
    println!(
        "stored {entries} entries in {secs:.2} s = {:.1} stores/s ({replaced} replaced an existing entry)",
        report.stores_per_sec
    );
    if let Some(path) = json {
        write_json(path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_scales_and_refuses_nonsense() {
        let mix: Mix = "exact=0.4,paraphrase=0.4,new=0.2".parse().unwrap();
        assert_eq!(mix, Mix::default());
        let mix: Mix = "exact=2, new=2".parse().unwrap();
        assert_eq!((mix.exact, mix.paraphrase, mix.new), (0.5, 0.0, 0.5));
        for bad in [
            "",
            "exact=-1",
            "exact=x",
            "exact",
            "typo=1",
            "exact=0,new=0",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn split_counts_add_up() {
        for total in [1, 2, 3, 7, 500, 2000] {
            for mix in [
                "exact=1",
                "paraphrase=1",
                "new=1",
                "exact=1,paraphrase=1",
                "exact=0.4,paraphrase=0.4,new=0.2",
            ] {
                let parts = split(total, mix.parse().unwrap());
                assert_eq!(parts.iter().sum::<usize>(), total, "{total} {mix}");
            }
        }
        assert_eq!(split(500, Mix::default()), [200, 200, 100]);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let l = Latency::of(samples);
        assert_eq!(
            (l.count, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }

    #[test]
    fn new_questions_are_never_stored_texts() {
        let w = Workload::from_pairs(
            vec![
                ("How do I X?".into(), "How can I X?".into()),
                ("Same text".into(), " same  TEXT".into()),
                ("how do i x?".into(), "Duplicate stored text".into()),
            ],
            vec![
                ("q".into(), "How do I X?".into()),
                ("r".into(), "Fresh one".into()),
            ],
            "test".into(),
        );
        assert_eq!(
            w.pairs,
            vec![("How do I X?".to_string(), "How can I X?".to_string())]
        );
        assert_eq!(w.fresh, vec!["Fresh one".to_string()]);
        let generated = Workload::generated();
        let stored: HashSet<String> = generated
            .pairs
            .iter()
            .map(|(a, _)| normalise_for_exact(a))
            .collect();
        assert_eq!(stored.len(), generated.pairs.len());
        assert!(generated
            .fresh
            .iter()
            .all(|t| !stored.contains(&normalise_for_exact(t))));
        let fill = generated.fill_texts(12_000, FillScope::Own);
        let distinct: HashSet<String> = fill.iter().map(|t| normalise_for_exact(t)).collect();
        assert_eq!(distinct.len(), 12_000);
        // Filling the runs' scope must not store what the runs send: their paraphrases would
        // become exact hits and their new questions hits.
        let sent: HashSet<String> = (generated.pairs.iter().map(|(_, b)| b))
            .chain(&generated.fresh)
            .map(|t| normalise_for_exact(t))
            .collect();
        let fill = generated.fill_texts(12_000, FillScope::Runs);
        let distinct: HashSet<String> = fill.iter().map(|t| normalise_for_exact(t)).collect();
        assert_eq!(distinct.len(), 12_000);
        assert!(distinct.is_disjoint(&sent));
    }
}
