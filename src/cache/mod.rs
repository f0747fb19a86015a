//! The cache: decides, for one chat, whether a stored answer may be served, and stores new ones.
//!
//! A lookup tries the cheap path first: the hash of the normalised chat, which needs no
//! embedding. Only then does it embed the last message (and the earlier turns, if any), search
//! the scope's HNSW graph and check each close candidate: not expired, earlier turns alike, no
//! guard objecting. A miss hands back its embeddings, so storing the answer afterwards does not
//! embed the same text twice.
//!
//! Data flows one way: the server calls the cache; the cache calls the embedder, the index, the
//! store and, for `complete`, the upstream.

mod evict;
mod fleet;
pub mod guard;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use self::evict::Recency;
use crate::alert::Alerts;
use crate::breaker::{BreakerError, LoopBreaker};
use crate::budget::{Ask, BudgetError, Budgets, Estimate, Level};
use crate::config::{check_threshold, BudgetConfig, Config};
use crate::embed::{similarity, EmbedError, Embedder};
use crate::fleet::{Event, Fleet, FleetError, Invalidation};
use crate::histogram::{Histogram, LATENCY_SECONDS};
use crate::index::{IndexError, IndexSet, LoadReport};
use crate::meter::{Charge, Meter};
use crate::router::{Router, RouterError};
use crate::scope::{scope_key, ChatMessage, Role, SamplingParams, ScopeKey, ScopedChat, TextHash};
use crate::store::{now_millis, EntryId, Labels, Store, StoreError, StoredEntry, Usage};
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "tenant `{0}` is not configured on this sidecar; add a [tenants.{0}] section to its config"
    )]
    UnknownTenant(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    WordNet(#[from] guard::WordNetError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    Budget(#[from] BudgetError),
    #[error(transparent)]
    Breaker(#[from] BreakerError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// Per-request cache control (see `CacheControl` in the proto).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Control {
    pub bypass: bool,
    pub refresh: bool,
    pub no_store: bool,
    pub ttl_seconds: u32,
    pub min_similarity: Option<f32>,
}

/// One request as the cache sees it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub tenant: String,
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub params: SamplingParams,
    pub control: Control,
    pub labels: Labels,
    /// Marked critical: may use budget reserves.
    pub critical: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    HitExact,
    HitSemantic,
    Miss,
    Bypass,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HitExact => "hit_exact",
            Self::HitSemantic => "hit_semantic",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// A stored answer found for a request.
#[derive(Debug, Clone)]
pub struct Hit {
    pub id: EntryId,
    pub entry: StoredEntry,
    pub similarity: f32,
}

/// What a lookup found.
#[derive(Debug)]
pub struct Lookup {
    pub status: Status,
    pub hit: Option<Hit>,
    /// On a semantic miss: the closest candidate's similarity, if there was one.
    pub best_similarity: Option<f32>,
    /// Why the semantic path served or refused what it found; `None` when it did not run.
    pub explanation: Option<Explanation>,
    probe: Probe,
}

/// Why a lookup served a candidate, or why not. Reported with every semantic lookup, so
/// operators (and `cachet tune`) can see what the matching decided and on what grounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    /// The threshold this request was held to.
    pub threshold: f32,
    /// The examined candidate's similarity (the served one on a hit, else the closest).
    pub similarity: f32,
    /// Similarity of the earlier turns: 1 when identical or when neither chat has any.
    pub context_similarity: f32,
    /// What the earlier turns need (`matching.context_threshold`).
    pub context_threshold: f32,
    pub candidate: Option<EntryId>,
    /// The guard families that ran, in order.
    pub guards_checked: Vec<&'static str>,
    /// What refused the candidate: a guard family, `earlier_turns` or `below_threshold`.
    pub refused_by: Option<&'static str>,
}

/// An answer to serve from `complete`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Status,
    pub text: String,
    pub similarity: f32,
    /// Empty when the answer was not stored.
    pub entry_id: Option<EntryId>,
    pub usage: Usage,
    pub tokens_saved: u32,
    pub model: String,
    /// How the semantic path decided, when it ran.
    pub explanation: Option<Explanation>,
    /// The tier asked for, when a budget past its target sent the request to a smaller one.
    pub downgraded_from: Option<String>,
}

/// One scope's HNSW graph, for metrics.
#[derive(Debug, Clone)]
pub struct IndexSize {
    pub scope: String,
    pub tenant: String,
    pub model: String,
    pub points: usize,
    pub tombstones: usize,
}

/// Where a change to the cache was made: here, or on another sidecar of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Here,
    Fleet,
}

/// Result of [`Cache::store`].
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    /// `None` when the request asked not to store.
    pub id: Option<EntryId>,
    pub replaced: bool,
}

/// What to remove with [`Cache::invalidate`].
#[derive(Debug, Clone)]
pub enum Target {
    Entry(String),
    Scope {
        model: String,
        messages: Vec<ChatMessage>,
        params: SamplingParams,
    },
    WholeTenant,
}

/// A request cut up and, once needed, embedded.
#[derive(Debug)]
struct Probe {
    chat: ScopedChat,
    embedded: Option<Embedded>,
}

impl Probe {
    fn new(request: &Request) -> Self {
        Self {
            chat: ScopedChat::new(
                &request.tenant,
                &request.model,
                &request.messages,
                &request.params,
            ),
            embedded: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Embedded {
    /// `None` when the query is too long for the model: exact matching only.
    query: Option<Vec<f32>>,
    context: Option<Vec<f32>>,
}

fn threshold_key(tenant: &str) -> String {
    format!("threshold/{tenant}")
}

/// The thresholds set at run time for tenants that are still configured.
fn load_thresholds(store: &Store, config: &Config) -> Result<HashMap<String, f32>, CacheError> {
    let mut thresholds = HashMap::new();
    for tenant in config.tenants.keys() {
        if let Some(bytes) = store.get_meta(&threshold_key(tenant))? {
            if let Ok(raw) = <[u8; 4]>::try_from(bytes.as_slice()) {
                thresholds.insert(tenant.clone(), f32::from_le_bytes(raw));
            }
        }
    }
    Ok(thresholds)
}

/// Share of tombstones in a graph at which the sweeper rebuilds it without them.
const AUTO_COMPACT_DEAD_SHARE: f64 = 0.25;

/// Output tokens assumed when a request sets no `max_tokens`, for the budget estimate.
const ASSUMED_OUTPUT_TOKENS: u32 = 512;

/// Tokens the chat format adds around each message (role, separators), as OpenAI counts them.
const TOKENS_PER_MESSAGE: u32 = 4;

/// An upper estimate of what a request costs at `prices`, before it is sent: the prompt counted
/// with a real BPE tokenizer (o200k, GPT-4o's; other vocabularies differ by a few percent, and
/// the upstream's reported usage is what is finally metered), and `max_tokens` of output.
fn estimate_cost(request: &Request, prices: crate::router::Prices) -> Estimate {
    let bpe = tiktoken_rs::o200k_base_singleton();
    let prompt: u32 = request
        .messages
        .iter()
        .map(|m| bpe.encode_ordinary(&m.content).len() as u32 + TOKENS_PER_MESSAGE)
        .sum();
    let output = request.params.max_tokens.unwrap_or(ASSUMED_OUTPUT_TOKENS);
    let usage = Usage {
        prompt_tokens: prompt,
        completion_tokens: output,
        total_tokens: prompt + output,
    };
    Estimate {
        micro_usd: prices.cost_micro_usd(usage),
        tokens: u64::from(usage.total_tokens),
    }
}

/// Entry ids are shown to clients as 16 hex digits.
pub fn format_entry_id(id: EntryId) -> String {
    format!("{id:016x}")
}

fn parse_entry_id(text: &str) -> Option<EntryId> {
    (text.len() == 16)
        .then(|| EntryId::from_str_radix(text, 16).ok())
        .flatten()
}

/// Identifies one chat in one scope.
type ChatKey = (ScopeKey, TextHash);
/// Held while a chat is being answered upstream.
type AnswerGate = Arc<tokio::sync::Mutex<()>>;

/// Counters of what the cache decided, for the admin `GetStats` call.
pub struct Stats {
    by_status: HashMap<&'static str, AtomicU64>,
    /// Latency of `lookup` and `complete` calls, by call and cache status.
    latency: BTreeMap<(&'static str, &'static str), Histogram>,
    refusals: HashMap<&'static str, AtomicU64>,
    tokens_saved: AtomicU64,
    saved_micro_usd: AtomicU64,
    /// Entries removed by size-bounded eviction.
    evictions: AtomicU64,
    /// Lookups whose narrow search found nothing to serve, by what the full search found:
    /// many hits here say `matching.ef_narrow` is too narrow for this data.
    widened_hits: AtomicU64,
    widened_misses: AtomicU64,
    /// Upstream spend per tier.
    spend: Mutex<BTreeMap<String, Spend>>,
}

/// What one tier was asked for and cost, since start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spend {
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micro_usd: u64,
}

/// Every reason a candidate above the threshold can be refused: the guard families and the
/// earlier turns.
fn refusal_reasons() -> impl Iterator<Item = &'static str> {
    guard::FAMILIES
        .iter()
        .map(|(family, _)| family.as_str())
        .chain(["earlier_turns"])
}

impl Default for Stats {
    fn default() -> Self {
        let statuses = [
            Status::HitExact,
            Status::HitSemantic,
            Status::Miss,
            Status::Bypass,
        ];
        Self {
            by_status: statuses
                .iter()
                .map(|s| (s.as_str(), AtomicU64::new(0)))
                .collect(),
            latency: ["lookup", "complete"]
                .into_iter()
                .flat_map(|call| statuses.iter().map(move |s| (call, s.as_str())))
                .map(|key| (key, Histogram::new(LATENCY_SECONDS)))
                .collect(),
            refusals: refusal_reasons().map(|r| (r, AtomicU64::new(0))).collect(),
            tokens_saved: AtomicU64::new(0),
            saved_micro_usd: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            widened_hits: AtomicU64::new(0),
            widened_misses: AtomicU64::new(0),
            spend: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Stats {
    /// Counts one answered call (`lookup` or `complete`) that started at `started`.
    fn count(&self, call: &'static str, status: Status, tokens_saved: u32, started: Instant) {
        if let Some(counter) = self.by_status.get(status.as_str()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(latency) = self.latency.get(&(call, status.as_str())) {
            latency.observe(started.elapsed().as_secs_f64());
        }
        self.tokens_saved
            .fetch_add(u64::from(tokens_saved), Ordering::Relaxed);
    }

    fn count_refusal(&self, reason: &str) {
        if let Some(counter) = self.refusals.get(reason) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn read(map: &HashMap<&'static str, AtomicU64>) -> BTreeMap<String, u64> {
        map.iter()
            .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
            .collect()
    }

    /// Requests answered, by cache status.
    pub fn by_status(&self) -> BTreeMap<String, u64> {
        Self::read(&self.by_status)
    }

    /// Candidates at or above the threshold refused, by guard family or `earlier_turns`.
    pub fn refusals(&self) -> BTreeMap<String, u64> {
        Self::read(&self.refusals)
    }

    pub fn tokens_saved(&self) -> u64 {
        self.tokens_saved.load(Ordering::Relaxed)
    }

    /// Entries evicted to keep the cache within `storage.max_entries`.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Lookups that searched again at full breadth, as (found a hit, found none).
    pub fn widened(&self) -> (u64, u64) {
        (
            self.widened_hits.load(Ordering::Relaxed),
            self.widened_misses.load(Ordering::Relaxed),
        )
    }

    /// Money saved by hits, in millionths of a dollar.
    pub fn saved_micro_usd(&self) -> u64 {
        self.saved_micro_usd.load(Ordering::Relaxed)
    }

    /// Latency histograms by call (`lookup`, `complete`) and cache status.
    pub fn latency(&self) -> impl Iterator<Item = (&'static str, &'static str, &Histogram)> {
        self.latency
            .iter()
            .map(|((call, status), histogram)| (*call, *status, histogram))
    }

    /// Upstream spend per tier since start.
    pub fn spend(&self) -> BTreeMap<String, Spend> {
        self.spend.lock().expect("spend poisoned").clone()
    }

    fn count_spend(&self, tier: &str, usage: Usage, cost_micro_usd: u64) {
        let mut spend = self.spend.lock().expect("spend poisoned");
        let s = spend.entry(tier.to_string()).or_default();
        s.calls += 1;
        s.prompt_tokens += u64::from(usage.prompt_tokens);
        s.completion_tokens += u64::from(usage.completion_tokens);
        s.cost_micro_usd += cost_micro_usd;
    }
}

pub struct Cache {
    config: Arc<Config>,
    stats: Stats,
    /// Per-tenant thresholds set at run time through the admin API; they outrank the config
    /// and are kept in sled, so they survive restarts.
    thresholds: RwLock<HashMap<String, f32>>,
    /// The thresholds from the config file: replaced by [`Cache::reload`] (SIGHUP).
    configured: RwLock<Arc<Config>>,
    store: Store,
    index: Arc<IndexSet>,
    embedder: Embedder,
    router: Router,
    meter: Meter,
    budgets: Budgets,
    breaker: LoopBreaker,
    /// Fleet mode's shared state; `None` on a single pod.
    fleet: Option<Arc<Fleet>>,
    /// One lock per chat being answered upstream, so identical concurrent misses make one call.
    in_flight: Mutex<HashMap<ChatKey, AnswerGate>>,
    /// What was served when, for size-bounded eviction.
    recency: Recency,
}

impl Cache {
    /// Opens the store, loads the indexes and the model.
    pub fn open(config: Arc<Config>) -> Result<(Self, LoadReport), CacheError> {
        let data = &config.storage.data_dir;
        // The model loads on one core while sled and the graphs load on the other: at a
        // million entries the graphs take most of a restart, and the model need not wait.
        // WordNet, for the guards, loads after the model on the model's core.
        let (embedder, loaded) = std::thread::scope(|s| {
            let embedder = s.spawn(|| {
                let embedder = Embedder::start(&config.embed)?;
                guard::install_wordnet(&config.embed.assets_dir)?;
                Ok::<_, CacheError>(embedder)
            });
            let loaded = Store::open(data, &config.storage)
                .map_err(CacheError::from)
                .and_then(|store| {
                    let (index, report) = IndexSet::load(&data.join("index"), &store)?;
                    Ok((store, index, report))
                });
            (embedder.join().expect("model loader panicked"), loaded)
        });
        let (store, index, report) = loaded?;
        let embedder = embedder?;
        let thresholds = RwLock::new(load_thresholds(&store, &config)?);
        let alerts = Arc::new(Alerts::new(&config.alerts.webhook_url));
        let router = Router::load(&config, store.clone(), Arc::clone(&alerts))?;
        let meter = Meter::new(store.clone());
        // A reservation of a sidecar that dies mid-call stops counting well after any call ends.
        let hold = config.upstream_timeout() * 2 + Duration::from_secs(60);
        let fleet = Fleet::open(&config.fleet, &store, hold)?;
        let budgets = Budgets::load(
            config.budgets.clone(),
            store.clone(),
            Arc::clone(&alerts),
            fleet.clone(),
        )?;
        let breaker = LoopBreaker::load(
            config.loop_breaker.clone(),
            store.clone(),
            alerts,
            fleet.clone(),
        )?;
        let recency = Recency::new(config.storage.max_entries);
        let configured = RwLock::new(Arc::clone(&config));
        Ok((
            Self {
                config,
                stats: Stats::default(),
                thresholds,
                configured,
                store,
                index: Arc::new(index),
                embedder,
                router,
                meter,
                budgets,
                breaker,
                fleet,
                in_flight: Mutex::new(HashMap::new()),
                recency,
            },
            report,
        ))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Entries currently stored (live or not yet swept).
    pub fn entry_count(&self) -> usize {
        self.store.entry_count()
    }

    /// Each scope's graph size (points, tombstones), with the tenant and model that own it.
    pub fn index_sizes(&self) -> Result<Vec<IndexSize>, CacheError> {
        let owners: HashMap<ScopeKey, crate::store::ScopeInfo> =
            self.store.scopes()?.into_iter().collect();
        Ok(self
            .index
            .sizes()
            .into_iter()
            .map(|(scope, points, tombstones)| {
                let owner = owners.get(&scope);
                IndexSize {
                    scope: hex::encode(scope.0),
                    tenant: owner.map(|o| o.tenant.clone()).unwrap_or_default(),
                    model: owner.map(|o| o.model.clone()).unwrap_or_default(),
                    points,
                    tombstones,
                }
            })
            .collect())
    }

    /// Spend of the budgets in use, for metrics.
    pub fn budgets_in_use(&self) -> Vec<crate::budget::BudgetUse> {
        self.budgets.in_use()
    }

    /// Checks a request against the limits and the tenant list.
    fn validate(&self, request: &Request) -> Result<(), CacheError> {
        self.check_tenant(&request.tenant)?;
        if request.model.trim().is_empty() {
            return Err(CacheError::Invalid(
                "model is required: name the model the chat is for".into(),
            ));
        }
        let limits = &self.config.limits;
        if request.messages.is_empty() {
            return Err(CacheError::Invalid(
                "messages is empty: send at least one user message".into(),
            ));
        }
        if request.messages.len() > limits.max_messages {
            return Err(CacheError::Invalid(format!(
                "the chat has {} messages; the limit is {} (limits.max_messages)",
                request.messages.len(),
                limits.max_messages
            )));
        }
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| !matches!(m.role, Role::System | Role::Developer))
            .ok_or_else(|| {
                CacheError::Invalid(
                    "the chat has only system messages: add the user's message".into(),
                )
            })?;
        if last.content.trim().is_empty() {
            return Err(CacheError::Invalid(format!(
                "the last {} message is empty: there is nothing to answer",
                last.role.as_str()
            )));
        }
        let chars: usize = request
            .messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum();
        if chars > limits.max_prompt_chars {
            return Err(CacheError::Invalid(format!(
                "the chat is {chars} characters long; the limit is {} (limits.max_prompt_chars)",
                limits.max_prompt_chars
            )));
        }
        if let Some(min) = request.control.min_similarity {
            check_threshold("cache_control.min_similarity", min)
                .map_err(|e| CacheError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    fn check_tenant(&self, tenant: &str) -> Result<(), CacheError> {
        if tenant.trim().is_empty() {
            return Err(CacheError::Invalid("tenant is required".into()));
        }
        if !self.config.tenants.contains_key(tenant) {
            return Err(CacheError::UnknownTenant(tenant.to_string()));
        }
        Ok(())
    }

    /// The threshold for this request: the tenant's, tightened (never loosened) by the request.
    fn threshold(&self, request: &Request) -> f32 {
        let configured = self.tenant_threshold(&request.tenant);
        request
            .control
            .min_similarity
            .map_or(configured, |m| m.max(configured))
    }

    /// The tenant's threshold: set at run time if it was, else configured.
    pub fn tenant_threshold(&self, tenant: &str) -> f32 {
        self.thresholds
            .read()
            .expect("thresholds poisoned")
            .get(tenant)
            .copied()
            .unwrap_or_else(|| {
                self.configured
                    .read()
                    .expect("configured thresholds poisoned")
                    .threshold_for(tenant)
            })
    }

    /// Applies the thresholds and budgets of a re-read config file, without a restart (the
    /// sidecar does this on SIGHUP). Run-time changes made through the admin API stay on top.
    /// Every other setting takes effect at the next start.
    pub fn reload(&self, config: Config) -> Result<(), CacheError> {
        self.budgets.reload(config.budgets.clone())?;
        *self
            .configured
            .write()
            .expect("configured thresholds poisoned") = Arc::new(config);
        info!("thresholds and budgets reloaded from the config file");
        Ok(())
    }

    /// Sets a tenant's threshold at run time (`None`: back to the configured one). Durable
    /// before it returns. Returns the threshold that applied before.
    pub async fn set_threshold(
        &self,
        tenant: &str,
        threshold: Option<f32>,
    ) -> Result<f32, CacheError> {
        self.check_tenant(tenant)?;
        if let Some(t) = threshold {
            check_threshold("threshold", t).map_err(|e| CacheError::Invalid(e.to_string()))?;
        }
        let previous = self.tenant_threshold(tenant);
        let key = threshold_key(tenant);
        match threshold {
            Some(t) => self.store.set_meta(&key, &t.to_le_bytes())?,
            None => self.store.remove_meta(&key)?,
        }
        self.store.commit().await?;
        let mut overrides = self.thresholds.write().expect("thresholds poisoned");
        match threshold {
            Some(t) => overrides.insert(tenant.to_string(), t),
            None => overrides.remove(tenant),
        };
        info!(tenant, ?threshold, previous, "threshold changed");
        Ok(previous)
    }

    /// Every configured tenant with the threshold that applies to it now.
    pub fn thresholds(&self) -> BTreeMap<String, f32> {
        self.config
            .tenants
            .keys()
            .map(|t| (t.clone(), self.tenant_threshold(t)))
            .collect()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.tenant, model = %request.model))]
    pub async fn lookup(&self, request: &Request) -> Result<Lookup, CacheError> {
        let started = Instant::now();
        let lookup = self.find(request).await?;
        let saved = lookup
            .hit
            .as_ref()
            .map_or(0, |h| h.entry.usage.total_tokens);
        if let Some(hit) = &lookup.hit {
            self.recency.touch(hit.id);
        }
        self.stats.count("lookup", lookup.status, saved, started);
        Ok(lookup)
    }

    /// The lookup itself, uncounted (`complete` counts its own outcome).
    async fn find(&self, request: &Request) -> Result<Lookup, CacheError> {
        self.validate(request)?;
        let mut probe = Probe::new(request);
        if request.control.bypass || request.control.refresh {
            let status = if request.control.bypass {
                Status::Bypass
            } else {
                Status::Miss
            };
            return Ok(Lookup {
                status,
                hit: None,
                best_similarity: None,
                explanation: None,
                probe,
            });
        }
        let now = now_millis();
        if let Some((id, entry)) = self
            .store
            .get_exact(&probe.chat.scope, &probe.chat.exact_key)?
        {
            if !self.expire_if_due(id, &entry, now)? {
                debug!(entry = id, "exact hit");
                let hit = Hit {
                    id,
                    entry,
                    similarity: 1.0,
                };
                return Ok(Lookup {
                    status: Status::HitExact,
                    hit: Some(hit),
                    best_similarity: Some(1.0),
                    explanation: None,
                    probe,
                });
            }
        }
        let embedded = self.embed(&probe.chat).await?;
        let threshold = self.threshold(request);
        let (hit, explanation) = match &embedded.query {
            Some(query) => self.search(&probe.chat, &embedded, query, threshold, now)?,
            None => (None, None),
        };
        // Count only refusals that stopped a hit: a candidate at or above the threshold.
        if let Some(e) = explanation.as_ref().filter(|e| e.similarity >= e.threshold) {
            if let Some(refused) = e.refused_by {
                self.stats.count_refusal(refused);
            }
        }
        probe.embedded = Some(embedded);
        let status = if hit.is_some() {
            Status::HitSemantic
        } else {
            Status::Miss
        };
        Ok(Lookup {
            status,
            hit,
            best_similarity: explanation.as_ref().map(|e| e.similarity),
            explanation,
            probe,
        })
    }

    /// Finds a candidate to serve: first with a narrow search (`matching.ef_narrow`), and only
    /// when that finds nothing to serve, with the full breadth (`matching.ef_search`). The
    /// search runs right after the model call, which has flushed the graph out of the caches,
    /// so at a hundred thousand entries its breadth costs more than a millisecond of a semantic
    /// hit's latency; and a hit's entry is almost always among a narrow search's nearest. A
    /// miss pays for both searches, before a model call that takes far longer.
    fn search(
        &self,
        chat: &ScopedChat,
        embedded: &Embedded,
        query: &[f32],
        threshold: f32,
        now: u64,
    ) -> Result<(Option<Hit>, Option<Explanation>), CacheError> {
        let words = ChatWords::new(chat);
        let matching = &self.config.matching;
        let narrow_first = (1..matching.ef_search).contains(&matching.ef_narrow);
        if narrow_first {
            let narrow =
                self.serve_nearest(&words, embedded, query, threshold, now, matching.ef_narrow)?;
            if narrow.0.is_some() {
                return Ok(narrow);
            }
        }
        let wide =
            self.serve_nearest(&words, embedded, query, threshold, now, matching.ef_search)?;
        if narrow_first {
            let counter = match wide.0 {
                Some(_) => &self.stats.widened_hits,
                None => &self.stats.widened_misses,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(wide)
    }

    /// Searches the scope's graph at breadth `ef` and judges the candidates, closest first,
    /// until one may be served. The first candidate examined is explained even when it is below
    /// the threshold.
    fn serve_nearest(
        &self,
        words: &ChatWords,
        embedded: &Embedded,
        query: &[f32],
        threshold: f32,
        now: u64,
        ef: usize,
    ) -> Result<(Option<Hit>, Option<Explanation>), CacheError> {
        let candidates = self.index.search(
            &words.chat.scope,
            query,
            self.config.matching.candidates,
            ef,
        );
        let mut explanation = None;
        for candidate in candidates {
            let Some(entry) = self.store.get(candidate.id)? else {
                continue;
            };
            if self.expire_if_due(candidate.id, &entry, now)? {
                continue;
            }
            let verdict = judge(words, embedded, &entry);
            let context_threshold = self.config.matching.context_threshold;
            let refused_by = verdict.refusal(candidate.similarity, threshold, context_threshold);
            let this = Explanation {
                threshold,
                similarity: candidate.similarity,
                context_similarity: verdict.context_similarity,
                context_threshold,
                candidate: Some(candidate.id),
                guards_checked: verdict.guards_checked,
                refused_by,
            };
            if refused_by.is_none() {
                let hit = Hit {
                    id: candidate.id,
                    entry,
                    similarity: candidate.similarity,
                };
                return Ok((Some(hit), Some(this)));
            }
            debug!(
                entry = candidate.id,
                similarity = candidate.similarity,
                ?refused_by,
                "candidate refused"
            );
            explanation.get_or_insert(this);
            if candidate.similarity < threshold {
                break; // the rest are further away still
            }
        }
        Ok((None, explanation))
    }

    /// Removes an entry whose time is up. Returns whether it was expired.
    fn expire_if_due(
        &self,
        id: EntryId,
        entry: &StoredEntry,
        now: u64,
    ) -> Result<bool, CacheError> {
        if !entry.is_expired(now) {
            return Ok(false);
        }
        self.store.remove(id)?;
        self.index.remove(&entry.scope, id);
        Ok(true)
    }

    async fn embed(&self, chat: &ScopedChat) -> Result<Embedded, CacheError> {
        let mut texts = vec![chat.query.clone()];
        if !chat.context.is_empty() {
            texts.push(chat.context.clone());
        }
        let mut out = self.embedder.embed(texts).await?.into_iter();
        let query = out.next().filter(|e| !e.truncated).map(|e| e.vector);
        let context = out.next().filter(|e| !e.truncated).map(|e| e.vector);
        Ok(Embedded { query, context })
    }

    /// Stores an answer the client obtained itself.
    #[tracing::instrument(skip_all, fields(tenant = %request.tenant, model = %request.model))]
    pub async fn store(
        &self,
        request: &Request,
        answer: &str,
        usage: Usage,
        answered_by: &str,
    ) -> Result<Stored, CacheError> {
        self.validate(request)?;
        self.check_answer(answer)?;
        if request.control.bypass || request.control.no_store {
            return Ok(Stored {
                id: None,
                replaced: false,
            });
        }
        let mut probe = Probe::new(request);
        let model = if answered_by.is_empty() {
            &request.model
        } else {
            answered_by
        };
        self.insert(request, &mut probe, answer, usage, model).await
    }

    fn check_answer(&self, answer: &str) -> Result<(), CacheError> {
        if answer.trim().is_empty() {
            return Err(CacheError::Invalid(
                "answer is empty: there is nothing to store".into(),
            ));
        }
        let limit = self.config.limits.max_answer_chars;
        let chars = answer.chars().count();
        if chars > limit {
            return Err(CacheError::Invalid(format!(
                "the answer is {chars} characters long; the limit is {limit} (limits.max_answer_chars)"
            )));
        }
        Ok(())
    }

    async fn insert(
        &self,
        request: &Request,
        probe: &mut Probe,
        answer: &str,
        usage: Usage,
        answered_by: &str,
    ) -> Result<Stored, CacheError> {
        let embedded = match probe.embedded.take() {
            Some(e) => e,
            None => self.embed(&probe.chat).await?,
        };
        let now = now_millis();
        let ttl = match request.control.ttl_seconds {
            0 => self
                .config
                .tenants
                .get(&request.tenant)
                .map_or(0, |t| t.default_ttl_secs),
            ttl => u64::from(ttl),
        };
        let chat = &probe.chat;
        let entry = StoredEntry {
            scope: chat.scope,
            tenant: request.tenant.clone(),
            exact_key: chat.exact_key,
            query: chat.query.clone(),
            context: chat.context.clone(),
            context_hash: chat.context_hash,
            query_vector: embedded.query,
            context_vector: embedded.context,
            answer: answer.to_string(),
            answered_by: answered_by.to_string(),
            usage,
            labels: request.labels.clone(),
            created_at: now,
            expires_at: (ttl > 0).then(|| now + ttl * 1000),
        };
        let inserted = self.put(&entry, &request.model, Origin::Here).await?;
        debug!(entry = inserted.id, replaced = ?inserted.replaced, "stored");
        Ok(Stored {
            id: Some(inserted.id),
            replaced: inserted.replaced.is_some(),
        })
    }

    /// Writes an entry to sled and its graph. One stored here is published to the fleet and
    /// durable before this returns; one from another sidecar is neither (a crash before sled's
    /// next flush only means reading it from the stream again).
    async fn put(
        &self,
        entry: &StoredEntry,
        model: &str,
        origin: Origin,
    ) -> Result<crate::store::Inserted, CacheError> {
        let inserted = self.store.insert(entry, model)?;
        if origin == Origin::Here {
            if let Some(fleet) = &self.fleet {
                fleet.publish(&Event::Stored {
                    entry: Box::new(entry.clone()),
                    model: model.to_string(),
                })?;
            }
            // Durable before acknowledged; the graph follows (rebuilt from sled after a crash).
            self.store.commit().await?;
        }
        if let Some(old) = inserted.replaced {
            self.index.remove(&entry.scope, old);
        }
        if let Some(vector) = entry.query_vector.clone() {
            let index = Arc::clone(&self.index);
            let scope = entry.scope;
            tokio::task::spawn_blocking(move || index.insert(&scope, inserted.id, &vector))
                .await
                .map_err(|e| CacheError::Invalid(format!("index insert panicked: {e}")))?;
        }
        Ok(inserted)
    }

    /// Answers from the cache, or asks the upstream and stores its answer.
    #[tracing::instrument(skip_all, fields(tenant = %request.tenant, model = %request.model, status))]
    pub async fn complete(&self, request: &Request) -> Result<Answer, CacheError> {
        let started = Instant::now();
        let answer = self.answer(request).await?;
        self.stats
            .count("complete", answer.status, answer.tokens_saved, started);
        tracing::Span::current().record("status", answer.status.as_str());
        Ok(answer)
    }

    async fn answer(&self, request: &Request) -> Result<Answer, CacheError> {
        let lookup = self.find(request).await?;
        if let Some(hit) = lookup.hit {
            return self.serve(request, lookup.status, hit, lookup.explanation);
        }
        let mut probe = lookup.probe;
        let reads_cache = !(request.control.bypass || request.control.refresh);
        let key = (probe.chat.scope, probe.chat.exact_key);
        let gate = self.in_flight_gate(key);
        let _answering = gate.lock().await;
        // Someone may have answered the same chat while we waited for the gate.
        if reads_cache {
            if let Some((id, entry)) = self
                .store
                .get_exact(&probe.chat.scope, &probe.chat.exact_key)?
            {
                if !entry.is_expired(now_millis()) {
                    self.release_gate(key, &gate);
                    let hit = Hit {
                        id,
                        entry,
                        similarity: 1.0,
                    };
                    return self.serve(request, Status::HitExact, hit, None);
                }
            }
        }
        let result = self
            .answer_upstream(request, &mut probe, lookup.status, lookup.explanation)
            .await;
        self.release_gate(key, &gate);
        result
    }

    async fn answer_upstream(
        &self,
        request: &Request,
        probe: &mut Probe,
        status: Status,
        explanation: Option<Explanation>,
    ) -> Result<Answer, CacheError> {
        let requested = self.router.route(&request.model)?;
        if !request.labels.job_id.is_empty() {
            if probe.embedded.is_none() {
                probe.embedded = Some(self.embed(&probe.chat).await?);
            }
            let query = probe.embedded.as_ref().and_then(|e| e.query.as_deref());
            self.breaker
                .check(&request.labels.job_id, query, now_millis())?;
        }
        let smaller = self.router.smaller_than(&requested);
        let mut chat = [0u8; 32];
        chat[..16].copy_from_slice(&probe.chat.scope.0);
        chat[16..].copy_from_slice(&probe.chat.exact_key);
        let ask = Ask {
            labels: &request.labels,
            critical: request.critical,
            chat,
            estimate: estimate_cost(request, requested.prices),
            downgraded_estimate: smaller
                .as_ref()
                .map(|tier| estimate_cost(request, tier.prices)),
        };
        let admission = self.budgets.admit(&self.meter, &ask, now_millis()).await?;
        let tier = match (admission.downgrade_for.as_ref(), smaller) {
            (Some(budget), Some(smaller)) => {
                info!(from = %requested.name, to = %smaller.name, budget = %budget, "downgraded: budget past its target");
                smaller
            }
            _ => Arc::clone(&requested),
        };
        let routed = match self
            .router
            .complete(&tier, &request.model, &request.messages, &request.params)
            .await
        {
            Ok(routed) => routed,
            Err(err) => {
                self.budgets.settle(admission, None).await?;
                return Err(err.into());
            }
        };
        // Smaller than asked: a budget past its target, or the asked tier's circuit open.
        let downgraded_from = (routed.tier != requested.name).then(|| requested.name.clone());
        let completion = routed.completion;
        let charge = Charge {
            at_ms: now_millis(),
            tenant: request.tenant.clone(),
            labels: request.labels.clone(),
            tier: routed.tier.clone(),
            model: completion.model.clone(),
            usage: completion.usage,
            cost_micro_usd: routed.cost_micro_usd,
            tokens_saved: 0,
            saved_micro_usd: 0,
        };
        // Metered first: the money is spent whether or not the answer can be stored. The line
        // becomes durable with the commit below, together with the entry.
        self.meter.record(&charge)?;
        self.budgets.settle(admission, Some(&charge)).await?;
        self.stats
            .count_spend(&routed.tier, completion.usage, routed.cost_micro_usd);
        if completion.content.trim().is_empty() {
            self.store.commit().await?;
            return Err(UpstreamError::Malformed {
                url: format!("tier `{}`", routed.tier),
                message: "the answer is empty".into(),
            }
            .into());
        }
        let stores = !(request.control.bypass || request.control.no_store);
        let entry_id = if stores {
            self.insert(
                request,
                probe,
                &completion.content,
                completion.usage,
                &completion.model,
            )
            .await?
            .id
        } else {
            self.store.commit().await?;
            None
        };
        info!(
            status = status.as_str(),
            tier = %routed.tier,
            prompt_tokens = completion.usage.prompt_tokens,
            completion_tokens = completion.usage.completion_tokens,
            cost_micro_usd = routed.cost_micro_usd,
            "answered upstream"
        );
        Ok(Answer {
            status,
            text: completion.content,
            similarity: explanation.as_ref().map_or(0.0, |e| e.similarity),
            explanation,
            entry_id,
            usage: completion.usage,
            tokens_saved: 0,
            model: completion.model,
            downgraded_from,
        })
    }

    /// Meters what a hit saved: the original call's tokens, at the price of the model that
    /// made it. Not waited to disk (see `meter`).
    fn record_saving(&self, request: &Request, entry: &StoredEntry) -> Result<(), CacheError> {
        let prices = self.router.prices_of(&entry.answered_by);
        let saved_micro_usd = prices.cost_micro_usd(entry.usage);
        self.stats
            .saved_micro_usd
            .fetch_add(saved_micro_usd, Ordering::Relaxed);
        let charge = Charge {
            at_ms: now_millis(),
            tenant: request.tenant.clone(),
            labels: request.labels.clone(),
            tier: String::new(),
            model: entry.answered_by.clone(),
            usage: Usage::default(),
            cost_micro_usd: 0,
            tokens_saved: u64::from(entry.usage.total_tokens),
            saved_micro_usd,
        };
        self.meter.record(&charge)?;
        if let Some(fleet) = &self.fleet {
            fleet.record_saving(&charge)?;
        }
        Ok(())
    }

    /// A stored answer served from `complete`, its saving metered.
    fn serve(
        &self,
        request: &Request,
        status: Status,
        hit: Hit,
        explanation: Option<Explanation>,
    ) -> Result<Answer, CacheError> {
        self.record_saving(request, &hit.entry)?;
        self.recency.touch(hit.id);
        Ok(Answer {
            status,
            explanation,
            similarity: hit.similarity,
            entry_id: Some(hit.id),
            usage: hit.entry.usage,
            tokens_saved: hit.entry.usage.total_tokens,
            model: hit.entry.answered_by,
            text: hit.entry.answer,
            downgraded_from: None,
        })
    }

    /// Sets (or removes) one budget at run time; kept across restarts.
    pub async fn set_budget(
        &self,
        level: Level,
        name: &str,
        budget: Option<BudgetConfig>,
    ) -> Result<(), CacheError> {
        Ok(self.budgets.set(level, name, budget).await?)
    }

    /// Sets (or removes) one upstream tier at run time; kept across restarts.
    pub async fn set_tier(
        &self,
        name: &str,
        tier: Option<crate::config::TierConfig>,
    ) -> Result<(), CacheError> {
        Ok(self.router.set_tier(name, tier).await?)
    }

    /// Releases a job stopped by the loop breaker. Returns whether it was stopped.
    pub fn reset_job(&self, job: &str) -> Result<bool, CacheError> {
        Ok(self.breaker.reset(job)?)
    }

    /// The meter: spend and savings, for showback.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    fn in_flight_gate(&self, key: ChatKey) -> AnswerGate {
        let mut map = self.in_flight.lock().expect("in-flight map poisoned");
        Arc::clone(map.entry(key).or_default())
    }

    fn release_gate(&self, key: ChatKey, gate: &AnswerGate) {
        let mut map = self.in_flight.lock().expect("in-flight map poisoned");
        // Held by the map and by us only: nobody else is waiting.
        if Arc::strong_count(gate) <= 2 {
            map.remove(&key);
        }
    }

    /// Removes entries of `tenant`. Returns how many were removed.
    #[tracing::instrument(skip(self))]
    pub async fn invalidate(&self, tenant: &str, target: &Target) -> Result<u64, CacheError> {
        self.check_tenant(tenant)?;
        let what = match target {
            Target::Entry(text) => {
                let not_found =
                    || CacheError::NotFound(format!("tenant `{tenant}` has no entry `{text}`"));
                let id = parse_entry_id(text).ok_or_else(|| {
                    CacheError::Invalid(format!("`{text}` is not an entry id (16 hex digits, as returned by Store or Complete)"))
                })?;
                // Another tenant's entry is reported as absent, so ids reveal nothing across tenants.
                match self.store.get(id)? {
                    Some(entry) if entry.tenant == tenant => Invalidation::Chat {
                        scope: entry.scope,
                        exact_key: entry.exact_key,
                        stored_before_ms: entry.created_at,
                    },
                    _ => return Err(not_found()),
                }
            }
            Target::Scope {
                model,
                messages,
                params,
            } => Invalidation::Scope(scope_key(tenant, model, messages, params)),
            Target::WholeTenant => Invalidation::WholeTenant,
        };
        let removed = self.remove_matching(tenant, &what)?;
        if let Some(fleet) = &self.fleet {
            fleet.publish(&Event::Invalidated {
                tenant: tenant.to_string(),
                what,
            })?;
        }
        self.store.commit().await?;
        info!(removed, "invalidated");
        Ok(removed)
    }

    /// Removes the entries of `tenant` an invalidation names. Returns how many.
    fn remove_matching(&self, tenant: &str, what: &Invalidation) -> Result<u64, CacheError> {
        let ids: Vec<EntryId> = match what {
            Invalidation::Chat {
                scope,
                exact_key,
                stored_before_ms,
            } => self
                .store
                .get_exact(scope, exact_key)?
                .filter(|(_, e)| e.tenant == tenant && e.created_at <= *stored_before_ms)
                .map(|(id, _)| id)
                .into_iter()
                .collect(),
            Invalidation::Scope(scope) => self
                .store
                .scope_members(scope)?
                .into_iter()
                .filter(|id| {
                    // A scope's key is made from its tenant; checked anyway.
                    matches!(self.store.get(*id), Ok(Some(e)) if e.tenant == tenant)
                })
                .collect(),
            Invalidation::WholeTenant => {
                let mut ids = Vec::new();
                for scope in self.store.tenant_scopes(tenant)? {
                    ids.extend(self.store.scope_members(&scope)?);
                }
                ids
            }
        };
        let mut removed = 0;
        for id in ids {
            if let Some(entry) = self.store.remove(id)? {
                self.index.remove(&entry.scope, id);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Checkpoints changed indexes. Blocking: call from a blocking context.
    pub fn checkpoint(&self) -> Result<usize, CacheError> {
        Ok(self.index.checkpoint(&self.store)?)
    }

    /// Removes entries whose time is up, in batches. Returns how many.
    pub fn sweep_expired(&self) -> Result<usize, CacheError> {
        const BATCH: usize = 1_000;
        let mut removed = 0;
        loop {
            let ids = self.store.expired(now_millis(), BATCH)?;
            for &id in &ids {
                if let Some(entry) = self.store.remove(id)? {
                    self.index.remove(&entry.scope, id);
                    removed += 1;
                }
            }
            if ids.len() < BATCH {
                return Ok(removed);
            }
        }
    }

    /// Past `storage.max_entries`, removes the least recently used entries down to 90% of it
    /// (so a full cache does not evict on every sweep). Returns how many.
    pub fn evict_over_bound(&self) -> Result<usize, CacheError> {
        let max = self.config.storage.max_entries as usize;
        let count = self.store.entry_count();
        if max == 0 || count <= max {
            return Ok(0);
        }
        let victims = self.recency.victims(&self.store, count - max * 9 / 10)?;
        let mut evicted = 0;
        for &id in &victims {
            if let Some(entry) = self.store.remove(id)? {
                self.index.remove(&entry.scope, id);
                evicted += 1;
            }
        }
        self.recency.forget(&victims);
        self.stats
            .evictions
            .fetch_add(evicted as u64, Ordering::Relaxed);
        info!(
            evicted,
            max_entries = max,
            "evicted the least recently used entries"
        );
        Ok(evicted)
    }

    /// Sweeps expired entries, evicts past `storage.max_entries` and compacts graphs that are
    /// a quarter dead, every `storage.sweep_every_secs`, until the cache is dropped: entries
    /// leaving steadily would otherwise grow the graphs (and memory) without end.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.config.storage.sweep_every_secs);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                let sweep = move || -> Result<usize, CacheError> {
                    let expired = cache.sweep_expired()?;
                    cache.evict_over_bound()?;
                    let dropped = cache.index.compact(&cache.store, AUTO_COMPACT_DEAD_SHARE)?;
                    if dropped > 0 {
                        info!(
                            tombstones_dropped = dropped,
                            "compacted graphs a quarter dead"
                        );
                    }
                    Ok(expired)
                };
                match tokio::task::spawn_blocking(sweep).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => debug!(entries = n, "swept expired entries"),
                    Ok(Err(err)) => warn!(%err, "sweeping expired entries failed"),
                    Err(err) => warn!(%err, "sweep task failed"),
                }
            }
        });
    }

    /// Rebuilds the graphs that hold tombstones, while serving. Returns tombstones dropped.
    /// Blocking: call from a blocking context.
    pub fn compact(&self) -> Result<usize, CacheError> {
        Ok(self.index.compact(&self.store, 0.0)?)
    }

    /// Periodic checkpoints until the cache is dropped.
    pub fn spawn_checkpointer(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = Duration::from_secs(self.config.storage.checkpoint_every_secs);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(cache) = weak.upgrade() else { break };
                match tokio::task::spawn_blocking(move || cache.checkpoint()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => debug!(scopes = n, "checkpointed"),
                    Ok(Err(err)) => warn!(%err, "checkpoint failed; sled still holds every entry"),
                    Err(err) => warn!(%err, "checkpoint task failed"),
                }
            }
        });
    }

    /// Final checkpoint and flush, for a clean shutdown.
    pub fn close(&self) -> Result<(), CacheError> {
        self.checkpoint()?;
        self.store.flush()?;
        Ok(())
    }
}

/// A chat's texts cut into words once, for the guards to compare with each candidate.
struct ChatWords<'a> {
    chat: &'a ScopedChat,
    query: guard::Text,
    context: guard::EarlierTurns,
}

impl<'a> ChatWords<'a> {
    fn new(chat: &'a ScopedChat) -> Self {
        Self {
            chat,
            query: guard::Text::new(&chat.query),
            context: guard::EarlierTurns::new(&chat.context),
        }
    }
}

/// What the checks found about one candidate, independent of the threshold.
struct Verdict {
    context_similarity: f32,
    guards_checked: Vec<&'static str>,
    guard: Option<guard::Family>,
}

impl Verdict {
    /// What stops the candidate from being served at these thresholds, if anything. A guard
    /// objects at any threshold, so it is named first.
    fn refusal(
        &self,
        similarity: f32,
        threshold: f32,
        context_threshold: f32,
    ) -> Option<&'static str> {
        if let Some(family) = self.guard {
            Some(family.as_str())
        } else if self.context_similarity < context_threshold {
            Some("earlier_turns")
        } else if similarity < threshold {
            Some("below_threshold")
        } else {
            None
        }
    }
}

/// Compares a chat with a stored entry: its earlier turns by meaning (or identity), and both
/// the last message and the earlier turns through every guard family.
fn judge(words: &ChatWords, embedded: &Embedded, entry: &StoredEntry) -> Verdict {
    let chat = words.chat;
    let same_context = chat.context_hash == entry.context_hash;
    let context_similarity = if same_context {
        1.0
    } else {
        match (&embedded.context, &entry.context_vector) {
            (Some(a), Some(b)) => similarity(a, b),
            _ => 0.0,
        }
    };
    let entry_query = guard::Text::new(&entry.query);
    let entry_context = (!same_context).then(|| guard::EarlierTurns::new(&entry.context));
    let judgement = guard::chat_conflict(
        (&words.query, &entry_query),
        entry_context
            .as_ref()
            .map(|theirs| (&words.context, theirs)),
    );
    Verdict {
        context_similarity,
        guards_checked: judgement.checked.iter().map(|f| f.as_str()).collect(),
        guard: judgement.conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Prices;

    #[test]
    fn the_estimate_counts_bpe_tokens_and_max_tokens() {
        let request = Request {
            messages: vec![ChatMessage {
                role: Role::User,
                content: "Hello world".into(),
            }],
            params: SamplingParams {
                max_tokens: Some(10),
                ..Default::default()
            },
            ..Default::default()
        };
        let prices = Prices {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
        };
        let estimate = estimate_cost(&request, prices);
        assert_eq!(estimate.tokens, 2 + TOKENS_PER_MESSAGE as u64 + 10);
        assert_eq!(estimate.micro_usd, 6 + 20);
    }
}
