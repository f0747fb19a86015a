//! The router: which upstream model answers a miss, and what it costs.
//!
//! Models are grouped in tiers (say `small` and `large`), each an OpenAI-compatible endpoint, a
//! model name and a price per million input and output tokens. A request names a tier or one of
//! the tiers' models; anything else is refused rather than guessed, so that spending is always
//! attributable to a known price. With no tiers configured, the `[upstream]` section is the one
//! tier, named `default`, and the request's model is asked for.

use crate::config::{Config, TierConfig};
use crate::scope::{ChatMessage, SamplingParams};
use std::sync::{Arc, Mutex, RwLock};

use crate::alert::{Alerts, Kind};
use crate::store::{now_millis, Store, StoreError, Usage};
use crate::upstream::{Completion, Upstream, UpstreamError};

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(
        "model `{requested}` is neither a configured tier nor a tier's model; use one of: {known}"
    )]
    UnknownModel { requested: String, known: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "tier `{tier}` failed {failures} times in a row and no smaller tier is available; \
         it is retried after {cooldown_secs} s (router.breaker_cooldown_secs)"
    )]
    CircuitOpen {
        tier: String,
        failures: u32,
        cooldown_secs: u64,
    },
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Prices {
    /// What `usage` costs, in millionths of a dollar (whole numbers add up exactly).
    pub fn cost_micro_usd(&self, usage: Usage) -> u64 {
        // $ per Mtok equals µ$ per token.
        let micro = f64::from(usage.prompt_tokens) * self.input_per_mtok
            + f64::from(usage.completion_tokens) * self.output_per_mtok;
        micro.round() as u64
    }
}

/// One upstream model with its price. Tiers are configured smallest first.
pub struct Tier {
    pub name: String,
    /// The model asked upstream; empty: the request's model (only for the implicit tier).
    pub model: String,
    pub prices: Prices,
    upstream: Upstream,
    circuit: Mutex<Circuit>,
}

/// A tier's recent failures: after too many in a row its circuit opens for a cool-down.
#[derive(Debug, Default)]
struct Circuit {
    consecutive_failures: u32,
    open_until_ms: u64,
}

/// An answer from a tier, with what it cost.
#[derive(Debug, Clone)]
pub struct Routed {
    /// The tier that answered: the one asked for, or a smaller one while its circuit is open.
    pub tier: String,
    pub completion: Completion,
    pub cost_micro_usd: u64,
}

pub struct Router {
    table: RwLock<Table>,
    /// How tiers added at run time reach their upstream when they do not say.
    defaults: UpstreamDefaults,
    store: Store,
    alerts: Arc<Alerts>,
    breaker_failures: u32,
    breaker_cooldown_ms: u64,
}

/// The tiers in force, smallest first.
struct Table {
    tiers: Vec<Arc<Tier>>,
    /// No tiers were configured: `[upstream]` is the one tier and takes any model name.
    implicit: bool,
}

struct UpstreamDefaults {
    base_url: String,
    api_key_env: String,
    timeout: std::time::Duration,
}

/// Where tiers set at run time are kept: `tier/<name>` → JSON (null: removed).
const OVERRIDE_PREFIX: &str = "tier/";

fn api_key(env_name: &str) -> Option<String> {
    Some(env_name)
        .filter(|name| !name.is_empty())
        .and_then(|name| std::env::var(name).ok())
        .filter(|key| !key.is_empty())
}

impl UpstreamDefaults {
    fn tier(&self, t: &TierConfig) -> Arc<Tier> {
        Arc::new(Tier {
            name: t.name.clone(),
            model: t.model.clone(),
            prices: Prices {
                input_per_mtok: t.input_usd_per_mtok,
                output_per_mtok: t.output_usd_per_mtok,
            },
            upstream: Upstream::new(
                t.base_url.as_deref().unwrap_or(&self.base_url),
                api_key(t.api_key_env.as_deref().unwrap_or(&self.api_key_env)),
                self.timeout,
            ),
            circuit: Mutex::new(Circuit::default()),
        })
    }
}

impl Table {
    /// Puts a tier in (replacing one of the same name in place, else as the largest) or, with
    /// `None`, takes the named one out.
    fn apply(&mut self, name: &str, tier: Option<Arc<Tier>>) {
        if self.implicit {
            // The first tier set explicitly replaces the implicit one.
            self.tiers.clear();
            self.implicit = false;
        }
        let at = self.tiers.iter().position(|t| t.name == name);
        match (tier, at) {
            (Some(tier), Some(at)) => self.tiers[at] = tier,
            (Some(tier), None) => self.tiers.push(tier),
            (None, Some(at)) => {
                self.tiers.remove(at);
            }
            (None, None) => {}
        }
    }
}

impl Router {
    /// The configured tiers, with the ones set at run time before a restart laid over them.
    pub fn load(config: &Config, store: Store, alerts: Arc<Alerts>) -> Result<Self, StoreError> {
        let upstream = &config.upstream;
        let defaults = UpstreamDefaults {
            base_url: upstream.base_url.clone(),
            api_key_env: upstream.api_key_env.clone(),
            timeout: config.upstream_timeout(),
        };
        let mut tiers: Vec<Arc<Tier>> = config
            .router
            .tiers
            .iter()
            .map(|t| defaults.tier(t))
            .collect();
        let implicit = tiers.is_empty();
        if implicit {
            tiers.push(defaults.tier(&TierConfig {
                name: "default".into(),
                model: upstream.model.clone(),
                base_url: None,
                api_key_env: None,
                input_usd_per_mtok: upstream.input_usd_per_mtok,
                output_usd_per_mtok: upstream.output_usd_per_mtok,
            }));
        }
        let mut table = Table { tiers, implicit };
        for key in store.meta_keys(OVERRIDE_PREFIX)? {
            let name = &key[OVERRIDE_PREFIX.len()..];
            let tier = store
                .get_meta(&key)?
                .and_then(|bytes| serde_json::from_slice::<Option<TierConfig>>(&bytes).ok())
                .flatten();
            table.apply(name, tier.map(|t| defaults.tier(&t)));
        }
        Ok(Self {
            table: RwLock::new(table),
            defaults,
            store,
            alerts,
            breaker_failures: config.router.breaker_failures,
            breaker_cooldown_ms: config.router.breaker_cooldown_secs * 1000,
        })
    }

    /// Sets (or with `remove`, takes out) one tier at run time, durably.
    pub async fn set_tier(&self, name: &str, tier: Option<TierConfig>) -> Result<(), RouterError> {
        if let Some(t) = &tier {
            crate::config::check_tier(&format!("tier `{name}`"), t)
                .map_err(|e| RouterError::Invalid(e.to_string()))?;
            if t.name != name {
                return Err(RouterError::Invalid(
                    "the tier's name and the name set differ".into(),
                ));
            }
        }
        {
            let table = self.table.read().expect("router poisoned");
            let last = !table.implicit && table.tiers.len() == 1 && table.tiers[0].name == name;
            if tier.is_none() && last {
                return Err(RouterError::Invalid(format!(
                    "`{name}` is the last tier; add another before removing it"
                )));
            }
        }
        let bytes = serde_json::to_vec(&tier).expect("tier serialises");
        self.store
            .set_meta(&format!("{OVERRIDE_PREFIX}{name}"), &bytes)?;
        self.store.commit().await?;
        let built = tier.as_ref().map(|t| self.defaults.tier(t));
        self.table
            .write()
            .expect("router poisoned")
            .apply(name, built);
        tracing::info!(
            tier = name,
            removed = tier.is_none(),
            "tier changed at run time"
        );
        Ok(())
    }

    /// The tier a request's model names: by tier name, then by model name.
    pub fn route(&self, requested: &str) -> Result<Arc<Tier>, RouterError> {
        let table = self.table.read().expect("router poisoned");
        if table.implicit {
            return Ok(Arc::clone(&table.tiers[0]));
        }
        table
            .tiers
            .iter()
            .find(|t| t.name == requested)
            .or_else(|| table.tiers.iter().find(|t| t.model == requested))
            .map(Arc::clone)
            .ok_or_else(|| RouterError::UnknownModel {
                requested: requested.to_string(),
                known: table
                    .tiers
                    .iter()
                    .map(|t| format!("{} ({})", t.name, t.model))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The price of the model that produced a stored answer (for what a hit saved).
    pub fn prices_of(&self, model: &str) -> Prices {
        let table = self.table.read().expect("router poisoned");
        table
            .tiers
            .iter()
            .find(|t| t.model == model || t.name == model)
            .or_else(|| table.implicit.then(|| &table.tiers[0]))
            .map_or(Prices::default(), |t| t.prices)
    }

    /// The next smaller tier (tiers are listed smallest first), for a downgrade.
    pub fn smaller_than(&self, tier: &Tier) -> Option<Arc<Tier>> {
        let table = self.table.read().expect("router poisoned");
        let at = table.tiers.iter().position(|t| t.name == tier.name)?;
        at.checked_sub(1).map(|i| Arc::clone(&table.tiers[i]))
    }

    fn is_open(&self, tier: &Tier, now_ms: u64) -> bool {
        tier.circuit.lock().expect("circuit poisoned").open_until_ms > now_ms
    }

    /// Counts a call's outcome: failures that say the upstream is unwell open the circuit.
    fn record(&self, tier: &Tier, outcome: &Result<Completion, UpstreamError>, now_ms: u64) {
        let mut circuit = tier.circuit.lock().expect("circuit poisoned");
        match outcome {
            Ok(_) | Err(UpstreamError::Rejected { .. }) => circuit.consecutive_failures = 0,
            Err(_) => {
                circuit.consecutive_failures += 1;
                if self.breaker_failures > 0
                    && circuit.consecutive_failures >= self.breaker_failures
                {
                    circuit.open_until_ms = now_ms + self.breaker_cooldown_ms;
                    self.alerts.raise(
                        Kind::CircuitOpen,
                        format!("tier `{}`", tier.name),
                        "",
                        format!(
                            "tier `{}` failed {} times in a row; its requests go to smaller tiers for {} s",
                            tier.name,
                            circuit.consecutive_failures,
                            self.breaker_cooldown_ms / 1000
                        ),
                    );
                }
            }
        }
    }

    /// The tier to ask for `tier`: itself, or while its circuit is open the nearest smaller
    /// tier whose circuit is closed.
    fn available(&self, tier: &Arc<Tier>, now_ms: u64) -> Result<Arc<Tier>, RouterError> {
        let mut candidate = Some(Arc::clone(tier));
        while let Some(t) = candidate {
            if !self.is_open(&t, now_ms) {
                return Ok(t);
            }
            candidate = self.smaller_than(&t);
        }
        Err(RouterError::CircuitOpen {
            tier: tier.name.clone(),
            failures: self.breaker_failures,
            cooldown_secs: self.breaker_cooldown_ms / 1000,
        })
    }

    /// Asks `tier` (or, while its circuit is open, a smaller one: see [`Routed::tier`]);
    /// `requested` is the model name the request gave (asked for as is only by the implicit
    /// tier).
    pub async fn complete(
        &self,
        tier: &Arc<Tier>,
        requested: &str,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Routed, RouterError> {
        let tier = self.available(tier, now_millis())?;
        let model = if tier.model.is_empty() {
            requested
        } else {
            &tier.model
        };
        tracing::info!(tier = %tier.name, model, "routed upstream");
        let outcome = tier.upstream.complete(model, messages, params).await;
        self.record(&tier, &outcome, now_millis());
        let completion = outcome?;
        Ok(Routed {
            tier: tier.name.clone(),
            cost_micro_usd: tier.prices.cost_micro_usd(completion.usage),
            completion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_in_micro_dollars() {
        let prices = Prices {
            input_per_mtok: 0.15,
            output_per_mtok: 0.60,
        };
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 500,
            total_tokens: 1_500,
        };
        assert_eq!(prices.cost_micro_usd(usage), 450); // 150 µ$ + 300 µ$
    }

    #[test]
    fn requests_route_by_tier_or_model_and_unknown_ones_are_refused() {
        let config: Config = Config::load_with_env(None, [
            ("CACHET_ROUTER__TIERS".to_string(), r#"[{name = "small", model = "gpt-4o-mini", input_usd_per_mtok = 0.15, output_usd_per_mtok = 0.6}, {name = "large", model = "gpt-4o", input_usd_per_mtok = 2.5, output_usd_per_mtok = 10.0}]"#.to_string()),
        ])
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::config::StorageConfig::default()).unwrap();
        let alerts = Arc::new(Alerts::new(""));
        let router = Router::load(&config, store.clone(), Arc::clone(&alerts)).unwrap();
        assert_eq!(router.route("small").unwrap().model, "gpt-4o-mini");
        assert_eq!(router.route("gpt-4o").unwrap().name, "large");
        let err = router.route("gpt-5").err().unwrap().to_string();
        assert!(err.contains("small (gpt-4o-mini)"), "{err}");
        assert_eq!(router.prices_of("gpt-4o").output_per_mtok, 10.0);

        let single = Router::load(&Config::default(), store, alerts).unwrap();
        assert_eq!(single.route("anything").unwrap().name, "default");
    }
}
