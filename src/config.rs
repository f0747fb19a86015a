//! Configuration: embedded defaults, then a TOML file, then `CACHET_*` environment overrides.
//!
//! Every key is checked at start: an unknown key, a value of the wrong type or out of range
//! stops the sidecar with an error that names the key and where it came from, rather than
//! running with a setting the operator did not mean.
//!
//! Environment overrides use a double underscore between the levels of a key:
//! `CACHET_MATCHING__THRESHOLD=0.9` sets `matching.threshold`,
//! `CACHET_TENANTS__ACME__THRESHOLD=0.95` sets `tenants.acme.threshold`. Only variables with a
//! `__` take part, so plain variables such as `CACHET_ADMIN_TOKEN` or `CACHET_ASSETS_DIR` keep
//! their own meaning.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration of one sidecar.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub embed: EmbedConfig,
    pub matching: MatchingConfig,
    pub limits: LimitsConfig,
    pub upstream: UpstreamConfig,
    pub router: RouterConfig,
    pub budgets: BudgetsConfig,
    pub loop_breaker: LoopBreakerConfig,
    pub alerts: AlertsConfig,
    pub admin: AdminConfig,
    /// Fleet mode (shared ledger and answers on Redis); off by default.
    pub fleet: crate::fleet::FleetConfig,
    /// The tenants this sidecar serves. A request naming any other tenant is refused.
    pub tenants: BTreeMap<String, TenantConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where the gRPC cache API (`cachet.v1.Cache`) listens. A sidecar listens on loopback.
    pub listen: SocketAddr,
    /// Where the gRPC admin API (`cachet.v1.Admin`) listens: a port of its own, so it can be
    /// bound to another interface than the client API (or to none).
    pub admin_listen: Listen,
    /// Where the OpenAI-compatible HTTP front door (`POST /v1/chat/completions`) listens.
    pub http_listen: Listen,
    /// Where Prometheus metrics are served (`GET /metrics`).
    pub metrics_listen: Listen,
    /// Largest request accepted (gRPC message or HTTP body), in bytes.
    pub max_request_bytes: usize,
    /// TLS on the client gRPC port; plain TCP without it.
    pub tls: Option<TlsConfig>,
    /// On SIGTERM, how long in-flight calls may take to finish before they are cut off and
    /// the sidecar checkpoints and exits; keep it under the pod's grace period.
    pub drain_secs: u64,
}

/// An optional listening address, written as `"127.0.0.1:9464"`; `""` turns the port off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Ok(Self(None));
        }
        text.trim()
            .parse()
            .map(|addr| Self(Some(addr)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is not an address such as 127.0.0.1:9464 (\"\" turns the port off)"
                ))
            })
    }
}

/// Certificate and key (PEM) for TLS on the client port; with `client_ca_file`, clients must
/// present a certificate signed by that CA (mutual TLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Folder holding the sled database and the index checkpoints.
    pub data_dir: PathBuf,
    /// `always`: a store is acknowledged only after it is fsynced (survives power loss).
    /// `periodic`: sled flushes every `flush_every_ms`; faster, a crash of the machine may lose
    /// the last interval (a crash of the process alone loses nothing already flushed).
    pub sync: SyncPolicy,
    pub flush_every_ms: u64,
    /// How often changed indexes are checkpointed to disk, in seconds.
    pub checkpoint_every_secs: u64,
    /// How often expired entries are swept away, in seconds (they are never served either way).
    pub sweep_every_secs: u64,
    /// Stores are refused while less than this many bytes are free on the data volume, so
    /// that sled never meets a full disk (after which it would refuse reads too).
    pub min_free_bytes: u64,
    /// Most entries kept; past it, every sweep evicts the least recently used down to 90% of
    /// it. 0 = no bound (entries leave only by TTL or invalidation).
    pub max_entries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    Always,
    Periodic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// Folder made by `scripts/setup.sh`: `libonnxruntime.so` and `model/`.
    pub assets_dir: PathBuf,
    /// ONNX Runtime intra-op threads for the embedding worker.
    pub threads: usize,
    /// Most prompts embedded in one batch; concurrent requests are gathered up to this.
    pub max_batch: usize,
    /// Nice value (0-19) of the embedding threads: above 0 they yield a core to request handling,
    /// so an exact hit is not kept waiting behind a batch. It ranks threads within the sidecar's
    /// own CPU share (its container's cgroup), not against other containers.
    pub niceness: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchingConfig {
    /// Cosine similarity at or above which a near-duplicate chat is served (0 < t <= 1).
    pub threshold: f32,
    /// Similarity the earlier turns of two chats need (when they are not identical).
    pub context_threshold: f32,
    /// Nearest neighbours examined per lookup before guards pick one.
    pub candidates: usize,
    /// HNSW search breadth; higher finds true nearest neighbours more often, slower.
    pub ef_search: usize,
    /// Breadth of a first, narrow search; only when it finds nothing to serve does the lookup
    /// search again at `ef_search`. 0 (or `ef_search` itself): one search only.
    pub ef_narrow: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest chat accepted, in characters over all messages.
    pub max_prompt_chars: usize,
    /// Most messages in one chat.
    pub max_messages: usize,
    /// Longest answer accepted by `Store`, in characters.
    pub max_answer_chars: usize,
    /// Requests a second each tenant may make (cache and HTTP APIs together), sustained;
    /// 0 = no limit. A tenant's own `requests_per_second` overrides it.
    pub requests_per_second: f64,
    /// Requests a tenant may make at once above the sustained rate.
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Base URL of an OpenAI-compatible API, up to and including `/v1`.
    pub base_url: String,
    /// Name of the environment variable that holds the API key; empty for none.
    pub api_key_env: String,
    /// The model to ask upstream; empty: the model the request names. Either way the request's
    /// model is what scopes the cache.
    pub model: String,
    /// Whole-call timeout for one upstream request, in seconds.
    pub timeout_secs: u64,
    /// Prices of this upstream when no tiers are configured, in US dollars per million tokens.
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

/// Upstream models in tiers. Empty: `[upstream]` is the one tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    pub tiers: Vec<TierConfig>,
    /// Consecutive failures after which a tier's circuit opens and its requests fall back to
    /// a smaller tier; 0 turns the breaker off.
    pub breaker_failures: u32,
    /// How long an open circuit stays open before the tier is tried again.
    pub breaker_cooldown_secs: u64,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            tiers: Vec::new(),
            breaker_failures: 5,
            breaker_cooldown_secs: 30,
        }
    }
}

/// Where alerts go besides the log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// POST each alert here as JSON; empty: log only.
    pub webhook_url: String,
}

/// The loop breaker: stops a job that keeps sending near-identical prompts upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopBreakerConfig {
    /// Trip after this many alike prompts from one job within the window; 0 turns it off.
    pub repeats: usize,
    pub window_secs: u64,
    /// Cosine similarity at which two prompts count as alike.
    pub similarity: f32,
}

impl Default for LoopBreakerConfig {
    fn default() -> Self {
        Self {
            repeats: 10,
            window_secs: 300,
            similarity: 0.98,
        }
    }
}

/// Spending limits. Each applies to the upstream spend of the requests it covers, over its
/// period. A request is checked against every budget that covers it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// The whole organisation.
    pub organisation: Option<BudgetConfig>,
    /// Per department label; `default` covers every department not listed (and none).
    pub departments: BTreeMap<String, BudgetConfig>,
    /// Per workflow label; `default` covers every workflow not listed (and none).
    pub workflows: BTreeMap<String, BudgetConfig>,
    /// Every job id gets a budget of its own with these limits.
    pub jobs: Option<BudgetConfig>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    #[serde(default)]
    pub period: Period,
    /// Soft limit: past it, requests are downgraded to the next smaller tier.
    #[serde(default)]
    pub target_usd: Option<f64>,
    /// Hard limit: a request that could take spend past it is refused.
    #[serde(default)]
    pub ceiling_usd: Option<f64>,
    /// Part of the ceiling kept for requests marked critical.
    #[serde(default)]
    pub reserve_usd: f64,
    /// Most upstream calls in a period (a kill-switch for runaway agents, under `[budgets.jobs]`).
    #[serde(default)]
    pub max_calls: Option<u64>,
    /// Most upstream tokens (prompt and completion) in a period.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Most times one job may send the same chat upstream again in a period (`[budgets.jobs]`).
    #[serde(default)]
    pub max_retries: Option<u64>,
    /// Who to ask for more; named in refusals and alerts.
    #[serde(default)]
    pub owner: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    #[default]
    Month,
}

/// One upstream model. Requests name it by `name` or by `model`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: String,
    pub model: String,
    /// Defaults to `upstream.base_url`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Defaults to `upstream.api_key_env`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Name of the environment variable that holds the admin bearer token. Admin calls are
    /// refused while it is unset or empty.
    pub token_env: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// This tenant's similarity threshold, instead of `matching.threshold`.
    pub threshold: Option<f32>,
    /// Lifetime of this tenant's entries when a request sets none, in seconds; 0 = no expiry.
    pub default_ttl_secs: u64,
    /// This tenant's request rate limit, instead of `limits.requests_per_second`.
    pub requests_per_second: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            embed: EmbedConfig::default(),
            matching: MatchingConfig::default(),
            limits: LimitsConfig::default(),
            upstream: UpstreamConfig::default(),
            router: RouterConfig::default(),
            budgets: BudgetsConfig::default(),
            loop_breaker: LoopBreakerConfig::default(),
            alerts: AlertsConfig::default(),
            admin: AdminConfig::default(),
            fleet: crate::fleet::FleetConfig::default(),
            tenants: BTreeMap::from([("default".to_string(), TenantConfig::default())]),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: Listen(Some(SocketAddr::from(([127, 0, 0, 1], 50052)))),
            http_listen: Listen(Some(SocketAddr::from(([127, 0, 0, 1], 50080)))),
            metrics_listen: Listen(Some(SocketAddr::from(([127, 0, 0, 1], 9464)))),
            max_request_bytes: 4 * 1024 * 1024,
            tls: None,
            drain_secs: 25,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            sync: SyncPolicy::Always,
            flush_every_ms: 500,
            checkpoint_every_secs: 60,
            sweep_every_secs: 60,
            min_free_bytes: 64 * 1024 * 1024,
            max_entries: 0,
        }
    }
}

impl Default for EmbedConfig {
    fn default() -> Self {
        Self {
            assets_dir: default_assets_dir(),
            threads: 2,
            max_batch: 32,
            niceness: 0,
        }
    }
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            threshold: 0.88,
            context_threshold: 0.80,
            candidates: 4,
            ef_search: 64,
            ef_narrow: 16,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_prompt_chars: 32 * 1024,
            max_messages: 256,
            max_answer_chars: 256 * 1024,
            requests_per_second: 0.0,
            burst: 50,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            // The simulated provider started by `scripts/run.sh` (`cachet simulate-upstream`).
            base_url: "http://127.0.0.1:8089/v1".to_string(),
            api_key_env: "OPENAI_API_KEY".to_string(),
            model: String::new(),
            timeout_secs: 30,
            input_usd_per_mtok: 0.0,
            output_usd_per_mtok: 0.0,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token_env: "CACHET_ADMIN_TOKEN".to_string(),
        }
    }
}

/// Where `scripts/setup.sh` puts the model and ONNX Runtime unless told otherwise.
pub fn default_assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CACHET_ASSETS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("cachet").join("assets")
}

impl Config {
    /// Loads the configuration: defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some(path) => read_toml(path)?,
            None => toml::Table::new(),
        };
        apply_env_overrides(&mut tree, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(tree)).map_err(|err| {
                let key = err.path().to_string();
                ConfigError::invalid(key, err.into_inner().to_string())
            })?;
        config.validate()?;
        Ok(config)
    }

    /// The similarity threshold that applies to `tenant`.
    pub fn threshold_for(&self, tenant: &str) -> f32 {
        self.tenants
            .get(tenant)
            .and_then(|t| t.threshold)
            .unwrap_or(self.matching.threshold)
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream.timeout_secs)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.fleet.validate()?;
        check_threshold("matching.threshold", self.matching.threshold)?;
        check_threshold(
            "matching.context_threshold",
            self.matching.context_threshold,
        )?;
        for (name, tenant) in &self.tenants {
            if name.trim().is_empty() {
                return Err(ConfigError::invalid("tenants", "a tenant name is empty"));
            }
            if let Some(t) = tenant.threshold {
                check_threshold(&format!("tenants.{name}.threshold"), t)?;
            }
            if let Some(rate) = tenant.requests_per_second {
                check_rate(&format!("tenants.{name}.requests_per_second"), rate)?;
            }
        }
        if self.tenants.is_empty() {
            return Err(ConfigError::invalid(
                "tenants",
                "no tenant is configured; add at least one [tenants.NAME] section",
            ));
        }
        if self.matching.ef_narrow > self.matching.ef_search {
            return Err(ConfigError::invalid(
                "matching.ef_narrow",
                format!(
                    "{} is wider than matching.ef_search ({}); the narrow search comes first, so it must be at most that (0 turns it off)",
                    self.matching.ef_narrow, self.matching.ef_search
                ),
            ));
        }
        let positive = [
            ("matching.candidates", self.matching.candidates),
            ("matching.ef_search", self.matching.ef_search),
            ("limits.max_prompt_chars", self.limits.max_prompt_chars),
            ("limits.max_messages", self.limits.max_messages),
            ("limits.max_answer_chars", self.limits.max_answer_chars),
            ("embed.threads", self.embed.threads),
            ("embed.max_batch", self.embed.max_batch),
            ("server.max_request_bytes", self.server.max_request_bytes),
            ("limits.burst", self.limits.burst as usize),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.upstream.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "upstream.timeout_secs",
                "must be greater than 0",
            ));
        }
        if self.storage.sweep_every_secs == 0 {
            return Err(ConfigError::invalid(
                "storage.sweep_every_secs",
                "must be greater than 0",
            ));
        }
        if self.storage.checkpoint_every_secs == 0 {
            return Err(ConfigError::invalid(
                "storage.checkpoint_every_secs",
                "must be greater than 0",
            ));
        }
        if !(0..=19).contains(&self.embed.niceness) {
            return Err(ConfigError::invalid(
                "embed.niceness",
                "must be between 0 (normal priority) and 19 (lowest)",
            ));
        }
        check_url("upstream.base_url", &self.upstream.base_url)?;
        check_rate(
            "limits.requests_per_second",
            self.limits.requests_per_second,
        )?;
        let ports = [
            ("server.listen", Some(self.server.listen)),
            ("server.admin_listen", self.server.admin_listen.0),
            ("server.http_listen", self.server.http_listen.0),
            ("server.metrics_listen", self.server.metrics_listen.0),
        ];
        for (i, (key, addr)) in ports.iter().enumerate() {
            let Some(addr) = addr.filter(|a| a.port() != 0) else {
                continue;
            };
            if let Some((other, _)) = ports[..i].iter().find(|(_, a)| *a == Some(addr)) {
                return Err(ConfigError::invalid(
                    *key,
                    format!("{addr} is already taken by {other}; give each port its own address"),
                ));
            }
        }
        if let Some(tls) = &self.server.tls {
            let files = [
                ("server.tls.cert_file", Some(&tls.cert_file)),
                ("server.tls.key_file", Some(&tls.key_file)),
                ("server.tls.client_ca_file", tls.client_ca_file.as_ref()),
            ];
            for (key, file) in files {
                if let Some(file) = file.filter(|f| !f.is_file()) {
                    return Err(ConfigError::invalid(
                        key,
                        format!("`{}` is not a readable file", file.display()),
                    ));
                }
            }
        }
        check_price(
            "upstream.input_usd_per_mtok",
            self.upstream.input_usd_per_mtok,
        )?;
        check_price(
            "upstream.output_usd_per_mtok",
            self.upstream.output_usd_per_mtok,
        )?;
        let mut names = std::collections::HashSet::new();
        for (i, tier) in self.router.tiers.iter().enumerate() {
            let key = format!("router.tiers[{i}]");
            check_tier(&key, tier)?;
            if !names.insert(tier.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!("tier `{}` is listed twice", tier.name),
                ));
            }
        }
        check_threshold("loop_breaker.similarity", self.loop_breaker.similarity)?;
        if !self.alerts.webhook_url.is_empty() {
            check_url("alerts.webhook_url", &self.alerts.webhook_url)?;
        }
        let b = &self.budgets;
        let named = b
            .organisation
            .iter()
            .map(|c| ("budgets.organisation".to_string(), c))
            .chain(
                b.departments
                    .iter()
                    .map(|(n, c)| (format!("budgets.departments.{n}"), c)),
            )
            .chain(
                b.workflows
                    .iter()
                    .map(|(n, c)| (format!("budgets.workflows.{n}"), c)),
            )
            .chain(b.jobs.iter().map(|c| ("budgets.jobs".to_string(), c)));
        for (key, budget) in named {
            budget.validate(&key)?;
        }
        Ok(())
    }
}

impl BudgetConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (field, value) in [
            ("target_usd", self.target_usd),
            ("ceiling_usd", self.ceiling_usd),
            ("reserve_usd", Some(self.reserve_usd)),
        ] {
            if let Some(v) = value {
                check_price(&format!("{key}.{field}"), v)?;
            }
        }
        if let (Some(target), Some(ceiling)) = (self.target_usd, self.ceiling_usd) {
            if target > ceiling {
                return Err(ConfigError::invalid(
                    format!("{key}.target_usd"),
                    format!("the target ({target}) is above the ceiling ({ceiling})"),
                ));
            }
        }
        if self.reserve_usd > 0.0 && self.ceiling_usd.is_none_or(|c| self.reserve_usd >= c) {
            return Err(ConfigError::invalid(
                format!("{key}.reserve_usd"),
                "a reserve needs a ceiling above it",
            ));
        }
        Ok(())
    }
}

/// A similarity threshold is a cosine similarity: above 0 (0 would serve anything) and at most 1.
pub fn check_threshold(key: &str, value: f32) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{value} is not a similarity threshold; use a number in (0, 1], such as 0.9"),
        ))
    }
}

/// A tier needs a name, a model, a valid URL if it has its own, and prices.
pub fn check_tier(key: &str, tier: &TierConfig) -> Result<(), ConfigError> {
    if tier.name.trim().is_empty() || tier.model.trim().is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.name"),
            "a tier needs a name and a model",
        ));
    }
    if let Some(url) = &tier.base_url {
        check_url(&format!("{key}.base_url"), url)?;
    }
    check_price(
        &format!("{key}.input_usd_per_mtok"),
        tier.input_usd_per_mtok,
    )?;
    check_price(
        &format!("{key}.output_usd_per_mtok"),
        tier.output_usd_per_mtok,
    )
}

fn check_rate(key: &str, rate: f64) -> Result<(), ConfigError> {
    if rate.is_finite() && rate >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{rate} is not a rate: use requests per second, 0 for no limit"),
        ))
    }
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("`{url}` is not an http:// or https:// URL"),
        ))
    }
}

fn check_price(key: &str, price: f64) -> Result<(), ConfigError> {
    if price.is_finite() && price >= 0.0 {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{price} is not a price; use US dollars per million tokens, 0 or more"),
        ))
    }
}

fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|err| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: err.to_string(),
        })
}

/// Writes `CACHET_A__B=value` into `tree` as `a.b = value`. The value is read as a TOML value
/// (number, boolean, array, quoted string) and otherwise taken as a plain string.
fn apply_env_overrides(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("CACHET_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::invalid(
                name.clone(),
                "environment override has an empty key part",
            ));
        }
        let value = parse_env_value(&raw);
        let mut table = &mut *tree;
        for part in &path[..path.len() - 1] {
            let slot = table
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = slot.as_table_mut().ok_or_else(|| {
                ConfigError::invalid(
                    path.join("."),
                    format!("{name} sets a key inside `{part}`, which is not a table"),
                )
            })?;
        }
        table.insert(path[path.len() - 1].clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cachet.toml");
        std::fs::write(&path, toml_text).unwrap();
        Config::load_with_env(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_are_valid_and_serve_the_default_tenant() {
        let config = Config::load_with_env(None, Vec::new()).unwrap();
        assert!(config.tenants.contains_key("default"));
        assert_eq!(config.threshold_for("default"), config.matching.threshold);
    }

    #[test]
    fn the_example_config_is_valid_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cachet.example.toml");
        let example = Config::load_with_env(Some(&path), Vec::new()).unwrap();
        let defaults = Config::default();
        assert_eq!(example.matching.threshold, defaults.matching.threshold);
        assert_eq!(
            example.storage.min_free_bytes,
            defaults.storage.min_free_bytes
        );
        assert_eq!(example.server.listen, defaults.server.listen);
        assert_eq!(example.server.admin_listen, defaults.server.admin_listen);
        assert_eq!(example.server.http_listen, defaults.server.http_listen);
        assert_eq!(
            example.server.metrics_listen,
            defaults.server.metrics_listen
        );
        assert_eq!(example.upstream.base_url, defaults.upstream.base_url);
        assert_eq!(example.threshold_for("support-bot"), 0.93);
    }

    #[test]
    fn file_and_env_override_in_order() {
        let config = load(
            "[matching]\nthreshold = 0.8\n[tenants.acme]\nthreshold = 0.95\n",
            &[
                ("CACHET_MATCHING__THRESHOLD", "0.85"),
                ("CACHET_ADMIN_TOKEN", "x"),
            ],
        )
        .unwrap();
        assert_eq!(config.matching.threshold, 0.85);
        assert_eq!(config.threshold_for("acme"), 0.95);
        assert_eq!(config.threshold_for("other"), 0.85);
    }

    #[test]
    fn ports_are_checked_and_can_be_turned_off() {
        let config = load("[server]\nadmin_listen = \"\"\nhttp_listen = \"\"\n", &[]).unwrap();
        assert_eq!(config.server.admin_listen, Listen(None));
        let err = load("[server]\nhttp_listen = \"localhost\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.http_listen") && err.contains("not an address"),
            "{err}"
        );
        let err = load("[server]\nadmin_listen = \"127.0.0.1:50051\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.admin_listen") && err.contains("server.listen"),
            "{err}"
        );
        let err = load(
            "[server.tls]\ncert_file = \"/nonexistent.crt\"\nkey_file = \"/nonexistent.key\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.tls.cert_file"), "{err}");
        let err = load("[limits]\nrequests_per_second = -1.0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.requests_per_second"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load("[matching]\nthreshhold = 0.8\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("matching"), "{err}");
        assert!(err.contains("threshhold"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let err = load("", &[("CACHET_MATCHING__THRESHOLD", "high")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("matching.threshold"), "{err}");
    }

    #[test]
    fn out_of_range_threshold_is_refused() {
        for bad in ["0", "1.5", "-0.2", "nan"] {
            let err = load(&format!("[tenants.a]\nthreshold = {bad}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains("tenants.a.threshold"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_narrow_search_wider_than_the_full_one_is_refused() {
        let err = load("[matching]\nef_search = 32\nef_narrow = 48\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("matching.ef_narrow"), "{err}");
        assert!(err.contains("at most"), "{err}");
        for fine in ["0", "16", "32"] {
            let config = load(
                &format!("[matching]\nef_search = 32\nef_narrow = {fine}\n"),
                &[],
            );
            assert!(config.is_ok(), "ef_narrow {fine}: {:?}", config.err());
        }
    }

    #[test]
    fn malformed_toml_is_reported_with_the_file() {
        let err = load("[matching\nthreshold = 0.8", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cachet.toml"), "{err}");
    }
}
