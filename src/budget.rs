//! Budgets: limits on upstream spend per organisation, department, workflow and job.
//!
//! Before a miss goes upstream, its cost is estimated and checked against every budget that
//! covers the request. Past a budget's target the request is downgraded to the next smaller
//! tier; if it could take spend past a ceiling it is refused. The estimate is reserved while
//! the call is in flight and replaced by the real cost when it returns, so concurrent requests
//! can overshoot a ceiling by at most one request's estimate. What was spent in the current
//! period is read from the meter's ledger the first time a budget is needed, so budgets count
//! every durable spend across restarts, and nothing twice. In fleet mode the same checks run
//! on the shared ledger in Redis (`fleet`), so every sidecar of the fleet shares each budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use std::sync::{Arc, RwLock};

use crate::alert::{Alerts, Kind};
use crate::fleet::{self, Fleet, FleetError};
use crate::store::Store;

use crate::config::{BudgetConfig, BudgetsConfig, Period};
use crate::meter::{civil_from_days, days_from_civil, dollars, utc_day, Charge, Meter};
use crate::store::{Labels, StoreError};

const DAY_MS: u64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error(transparent)]
    Exhausted(Box<Exhausted>),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "budget {budget} (owner: {owner}) has used {used} of its {limit} {what} this {period}; \
         it resets on {resets} (UTC); ask the owner to raise it"
    )]
    LimitReached {
        budget: String,
        owner: String,
        what: &'static str,
        used: u64,
        limit: u64,
        period: &'static str,
        resets: String,
    },
    #[error(transparent)]
    Ledger(#[from] StoreError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// A refusal at a ceiling, with what a person needs to act on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "budget {budget} (owner: {owner}) has spent ${spent:.6} of its ${limit:.6} {period} {limit_kind}; \
     this request could cost up to ${estimate:.6}. It resets on {resets} (UTC); ask the owner to raise it{hint}"
)]
pub struct Exhausted {
    budget: String,
    owner: String,
    spent: f64,
    limit: f64,
    limit_kind: &'static str,
    period: &'static str,
    estimate: f64,
    resets: String,
    hint: &'static str,
}

/// Where budgets set at run time are kept: `budget/<level>/<name>` → JSON (null: removed).
const OVERRIDE_PREFIX: &str = "budget/";

/// A level of budgets, as the admin API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Organisation,
    Department,
    Workflow,
    Jobs,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Organisation => "organisation",
            Level::Department => "departments",
            Level::Workflow => "workflows",
            Level::Jobs => "jobs",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = BudgetError;

    fn from_str(text: &str) -> Result<Self, BudgetError> {
        Ok(match text {
            "organisation" | "organization" => Level::Organisation,
            "department" | "departments" => Level::Department,
            "workflow" | "workflows" => Level::Workflow,
            "job" | "jobs" => Level::Jobs,
            other => {
                return Err(BudgetError::Invalid(format!(
                "`{other}` is not a budget level; use organisation, departments, workflows or jobs"
            )))
            }
        })
    }
}

/// Puts one budget into the configuration (`None` removes it).
fn apply(config: &mut BudgetsConfig, level: Level, name: &str, budget: Option<BudgetConfig>) {
    let map = match level {
        Level::Organisation => return config.organisation = budget,
        Level::Jobs => return config.jobs = budget,
        Level::Department => &mut config.departments,
        Level::Workflow => &mut config.workflows,
    };
    match budget {
        Some(budget) => map.insert(name.to_string(), budget),
        None => map.remove(name),
    };
}

/// Which budget: a level and, below the organisation, a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Organisation,
    Department(String),
    Workflow(String),
    Job(String),
}

impl Key {
    /// The level and, below the organisation, the name.
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Key::Organisation => ("organisation", None),
            Key::Department(name) => ("department", Some(name)),
            Key::Workflow(name) => ("workflow", Some(name)),
            Key::Job(id) => ("job", Some(id)),
        }
    }

    fn describe(&self) -> String {
        match self.parts() {
            (level, Some(name)) => format!("{level} `{name}`"),
            (level, None) => level.into(),
        }
    }

    /// The budget's name on the shared ledger.
    fn ledger_name(&self) -> String {
        match self.parts() {
            (level, Some(name)) => format!("{level}:{name}"),
            (level, None) => level.into(),
        }
    }
}

/// Spend in the current period of one budget.
#[derive(Debug, Default)]
struct Account {
    period_start_ms: u64,
    spent_micro: u64,
    reserved_micro: u64,
    calls: u64,
    reserved_calls: u64,
    tokens: u64,
    reserved_tokens: u64,
    target_alerted: bool,
    ceiling_alerted: bool,
    limit_alerted: bool,
}

impl Account {
    /// The same account with its alerts re-armed, for a new period.
    fn new_period(self) -> Self {
        Self {
            target_alerted: false,
            ceiling_alerted: false,
            limit_alerted: false,
            ..self
        }
    }
}

/// A job id and a chat of it.
type JobChat = (String, [u8; 32]);

/// A request asking to go upstream, as the budgets see it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub labels: &'a Labels,
    /// May use reserves.
    pub critical: bool,
    /// Identifies the chat (scope and exact key), to count a job's retries of it.
    pub chat: [u8; 32],
    pub estimate: Estimate,
    /// The estimate at the next smaller tier, if there is one (for a downgrade).
    pub downgraded_estimate: Option<Estimate>,
}

/// What a request is expected to cost before it is sent.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub micro_usd: u64,
    pub tokens: u64,
}

/// A request let through: the budgets holding its reservation.
#[derive(Debug)]
pub struct Admission {
    keys: Vec<Key>,
    estimate: Estimate,
    /// Set when a budget is past its target: which one.
    pub downgrade_for: Option<String>,
    /// The reservation on the shared ledger, in fleet mode.
    shared: Option<fleet::Reservation>,
}

/// One budget's spend in its current period, as known since start (for metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetUse {
    pub level: &'static str,
    pub name: String,
    pub spent_usd: f64,
    pub ceiling_usd: Option<f64>,
}

pub struct Budgets {
    /// Per job and chat: the period start and how often the chat went upstream in it.
    attempts: Mutex<HashMap<JobChat, (u64, u64)>>,
    /// The configured budgets, with those set at run time (kept in sled) laid over them.
    config: RwLock<BudgetsConfig>,
    store: Store,
    alerts: Arc<Alerts>,
    accounts: Mutex<HashMap<Key, Account>>,
    /// The shared ledger, in fleet mode.
    fleet: Option<Arc<Fleet>>,
}

fn period_name(period: Period) -> &'static str {
    match period {
        Period::Day => "daily",
        Period::Week => "weekly",
        Period::Month => "monthly",
    }
}

/// Start and end (Unix ms, UTC) of the period containing `now_ms`. Weeks start on Monday.
pub fn period_bounds(period: Period, now_ms: u64) -> (u64, u64) {
    let days = (now_ms / DAY_MS) as i64;
    let (start, end) = match period {
        Period::Day => (days, days + 1),
        Period::Week => {
            let monday = days - (days + 3).rem_euclid(7);
            (monday, monday + 7)
        }
        Period::Month => {
            let (year, month, _) = civil_from_days(days);
            let (next_year, next_month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            (
                days_from_civil(year, month, 1),
                days_from_civil(next_year, next_month, 1),
            )
        }
    };
    (start as u64 * DAY_MS, end as u64 * DAY_MS)
}

impl Budgets {
    /// The configured budgets, with the ones set at run time before a restart laid over them.
    pub fn load(
        config: BudgetsConfig,
        store: Store,
        alerts: Arc<Alerts>,
        fleet: Option<Arc<Fleet>>,
    ) -> Result<Self, StoreError> {
        let config = with_overrides(config, &store)?;
        Ok(Self {
            config: RwLock::new(config),
            store,
            alerts,
            accounts: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            fleet,
        })
    }

    /// Replaces the configured budgets (a re-read config file), keeping those set at run time
    /// on top. Spend already counted stays: only the limits change.
    pub fn reload(&self, config: BudgetsConfig) -> Result<(), StoreError> {
        let config = with_overrides(config, &self.store)?;
        *self.config.write().expect("budgets poisoned") = config;
        Ok(())
    }
}

/// `config` with the budgets set at run time (kept in sled) laid over it.
fn with_overrides(mut config: BudgetsConfig, store: &Store) -> Result<BudgetsConfig, StoreError> {
    for key in store.meta_keys(OVERRIDE_PREFIX)? {
        let Some((level, name)) = key[OVERRIDE_PREFIX.len()..].split_once('/') else {
            continue;
        };
        let Ok(level) = level.parse::<Level>() else {
            continue;
        };
        let budget = store
            .get_meta(&key)?
            .and_then(|bytes| serde_json::from_slice::<Option<BudgetConfig>>(&bytes).ok())
            .flatten();
        apply(&mut config, level, name, budget);
    }
    Ok(config)
}

impl Budgets {
    /// A job may send the same chat upstream again (after a failure, or with refresh) at most
    /// `max_retries` times a period: an agent hammering a failing call stops costing money.
    /// In fleet mode the attempts are counted in Redis, so an agent retrying through several
    /// sidecars is one job; while Redis is away, each sidecar counts its own.
    async fn check_retries(
        &self,
        config: &BudgetsConfig,
        ask: &Ask<'_>,
        now_ms: u64,
    ) -> Result<(), BudgetError> {
        let job = &ask.labels.job_id;
        let Some((budget, max_retries)) = config
            .jobs
            .as_ref()
            .and_then(|b| b.max_retries.map(|m| (b, m)))
            .filter(|_| !job.is_empty())
        else {
            return Ok(());
        };
        let (start, end) = period_bounds(budget.period, now_ms);
        let shared = match &self.fleet {
            Some(fleet) => match fleet.count_attempt(job, &ask.chat, start, end).await {
                Ok(before) => Some(before),
                Err(err) => {
                    tracing::warn!(%err, job, "fleet: counting this job's retries locally");
                    None
                }
            },
            None => None,
        };
        let before = match shared {
            Some(before) => before,
            None => {
                let mut attempts = self.attempts.lock().expect("attempts poisoned");
                attempts.retain(|_, (period, _)| *period == start);
                let count = attempts
                    .entry((job.clone(), ask.chat))
                    .or_insert((start, 0));
                count.1 += 1;
                count.1 - 1
            }
        };
        if before > max_retries {
            return Err(BudgetError::LimitReached {
                budget: Key::Job(job.clone()).describe(),
                owner: owner_of(budget),
                what: "retries of one chat",
                used: before - 1,
                limit: max_retries,
                period: period_noun(budget.period),
                resets: utc_day(end),
            });
        }
        Ok(())
    }

    /// Sets (or with `None` removes) one budget at run time, durably. Spend so far counts.
    pub async fn set(
        &self,
        level: Level,
        name: &str,
        budget: Option<BudgetConfig>,
    ) -> Result<(), BudgetError> {
        let key = match level {
            Level::Organisation | Level::Jobs => level.as_str().to_string(),
            Level::Department | Level::Workflow if !name.trim().is_empty() => {
                format!("{}.{name}", level.as_str())
            }
            _ => {
                return Err(BudgetError::Invalid(format!(
                    "a {} budget needs a name (or `default`)",
                    level.as_str()
                )))
            }
        };
        if let Some(b) = &budget {
            b.validate(&format!("budgets.{key}"))
                .map_err(|e| BudgetError::Invalid(e.to_string()))?;
        }
        let bytes = serde_json::to_vec(&budget).expect("budget serialises");
        self.store.set_meta(
            &format!("{OVERRIDE_PREFIX}{}/{name}", level.as_str()),
            &bytes,
        )?;
        self.store.commit().await?;
        apply(
            &mut self.config.write().expect("budgets poisoned"),
            level,
            name,
            budget,
        );
        tracing::info!(budget = %key, "budget changed at run time");
        Ok(())
    }

    /// The budgets covering a request, with their limits. Unlisted departments and workflows
    /// fall under `default`, when there is one.
    fn covering<'a>(config: &'a BudgetsConfig, labels: &Labels) -> Vec<(Key, &'a BudgetConfig)> {
        let mut found = Vec::new();
        if let Some(org) = &config.organisation {
            found.push((Key::Organisation, org));
        }
        if let Some((name, budget)) = bucket(&config.departments, &labels.department) {
            found.push((Key::Department(name), budget));
        }
        if let Some((name, budget)) = bucket(&config.workflows, &labels.workflow) {
            found.push((Key::Workflow(name), budget));
        }
        if let (Some(budget), false) = (&config.jobs, labels.job_id.is_empty()) {
            found.push((Key::Job(labels.job_id.clone()), budget));
        }
        found
    }

    /// Whether a ledger line counts against `key`.
    fn counts(config: &BudgetsConfig, key: &Key, charge: &Charge) -> bool {
        let in_bucket = |map: &BTreeMap<String, BudgetConfig>, name: &str, label: &str| {
            if name == "default" {
                label == "default" || !map.contains_key(label)
            } else {
                label == name
            }
        };
        match key {
            Key::Organisation => true,
            Key::Department(name) => {
                in_bucket(&config.departments, name, &charge.labels.department)
            }
            Key::Workflow(name) => in_bucket(&config.workflows, name, &charge.labels.workflow),
            Key::Job(id) => &charge.labels.job_id == id,
        }
    }

    /// Checks a request against every budget covering it and reserves its estimated cost.
    /// Past a target the request is to be downgraded, and is then held to the estimate at the
    /// smaller tier (`downgraded_estimate`, `None` when there is no smaller tier). `critical`
    /// requests may use the reserve. In fleet mode the check and the reservation are made on
    /// the shared ledger, atomically for the whole fleet.
    pub async fn admit(
        &self,
        meter: &Meter,
        ask: &Ask<'_>,
        now_ms: u64,
    ) -> Result<Admission, BudgetError> {
        let config = self.config.read().expect("budgets poisoned").clone();
        self.check_retries(&config, ask, now_ms).await?;
        let covering = Self::covering(&config, ask.labels);
        match &self.fleet {
            Some(fleet) => self.admit_shared(fleet, &covering, ask, now_ms).await,
            None => self.admit_local(meter, &config, &covering, ask, now_ms),
        }
    }

    fn admit_local(
        &self,
        meter: &Meter,
        config: &BudgetsConfig,
        covering: &[(Key, &BudgetConfig)],
        ask: &Ask,
        now_ms: u64,
    ) -> Result<Admission, BudgetError> {
        let Ask {
            critical,
            estimate,
            downgraded_estimate,
            ..
        } = *ask;
        let mut accounts = self.accounts.lock().expect("budget accounts poisoned");
        for (key, budget) in covering {
            let account = accounts.entry(key.clone()).or_default();
            let (start, _) = period_bounds(budget.period, now_ms);
            if account.period_start_ms != start {
                // First use, or a new period: what the ledger says was spent since its start.
                let charges = meter.charges(start, now_ms + 1)?;
                let spent: Vec<&Charge> = charges
                    .iter()
                    .filter(|c| Self::counts(config, key, c) && c.is_upstream())
                    .collect();
                *account = Account {
                    period_start_ms: start,
                    spent_micro: spent.iter().map(|c| c.cost_micro_usd).sum(),
                    calls: spent.len() as u64,
                    tokens: spent.iter().map(|c| u64::from(c.usage.total_tokens)).sum(),
                    ..std::mem::take(account)
                }
                .new_period();
            }
        }
        let committed = |accounts: &HashMap<Key, Account>, key: &Key| {
            accounts
                .get(key)
                .map_or(0, |a| a.spent_micro + a.reserved_micro)
        };
        let past_target = covering.iter().find(|(key, budget)| {
            budget
                .target_usd
                .is_some_and(|t| committed(&accounts, key) >= micro(t))
        });
        let downgrade_for =
            past_target.map(|(key, budget)| self.target_passed(&mut accounts, key, budget));
        let estimate = match (&downgrade_for, downgraded_estimate) {
            (Some(_), Some(smaller)) => smaller,
            _ => estimate,
        };
        for (key, budget) in covering {
            let account = &accounts[key];
            let limits = [
                (
                    "upstream calls",
                    budget.max_calls,
                    account.calls + account.reserved_calls,
                    1,
                ),
                (
                    "tokens",
                    budget.max_tokens,
                    account.tokens + account.reserved_tokens,
                    estimate.tokens,
                ),
            ];
            for (what, limit, used, more) in limits {
                if let Some(limit) = limit.filter(|limit| used + more > *limit) {
                    return Err(self.limit_reached(
                        &mut accounts,
                        key,
                        budget,
                        (what, used, limit),
                        now_ms,
                    ));
                }
            }
        }
        for (key, budget) in covering {
            let Some(ceiling) = budget.ceiling_usd else {
                continue;
            };
            let reserve = if critical { 0.0 } else { budget.reserve_usd };
            if committed(&accounts, key) + estimate.micro_usd <= micro(ceiling - reserve) {
                continue;
            }
            let spent = accounts[key].spent_micro;
            return Err(self.ceiling_reached(
                &mut accounts,
                key,
                budget,
                (spent, estimate.micro_usd, critical),
                now_ms,
            ));
        }
        for (key, _) in covering {
            if let Some(account) = accounts.get_mut(key) {
                account.reserved_micro += estimate.micro_usd;
                account.reserved_calls += 1;
                account.reserved_tokens += estimate.tokens;
            }
        }
        Ok(Admission {
            keys: covering.iter().map(|(key, _)| key.clone()).collect(),
            estimate,
            downgrade_for,
            shared: None,
        })
    }

    /// Spend of the organisation, department and workflow budgets used since start. Jobs are
    /// left out: one series per job id would swamp a metrics store.
    pub fn in_use(&self) -> Vec<BudgetUse> {
        let config = self.config.read().expect("budgets poisoned");
        let accounts = self.accounts.lock().expect("budget accounts poisoned");
        let mut used: Vec<BudgetUse> = accounts
            .iter()
            .filter_map(|(key, account)| {
                let (level, name, budget) = match key {
                    Key::Organisation => {
                        ("organisation", String::new(), config.organisation.as_ref())
                    }
                    Key::Department(name) => {
                        ("department", name.clone(), config.departments.get(name))
                    }
                    Key::Workflow(name) => ("workflow", name.clone(), config.workflows.get(name)),
                    Key::Job(_) => return None,
                };
                Some(BudgetUse {
                    level,
                    name,
                    spent_usd: crate::meter::dollars(account.spent_micro),
                    ceiling_usd: budget.and_then(|b| b.ceiling_usd),
                })
            })
            .collect();
        used.sort_by(|a, b| (a.level, &a.name).cmp(&(b.level, &b.name)));
        used
    }

    /// The same checks as [`Self::admit_local`], made by the shared ledger in one atomic step.
    async fn admit_shared(
        &self,
        fleet: &Fleet,
        covering: &[(Key, &BudgetConfig)],
        ask: &Ask<'_>,
        now_ms: u64,
    ) -> Result<Admission, BudgetError> {
        let accounts: Vec<fleet::Account> = covering
            .iter()
            .map(|(key, budget)| {
                let (start, end) = period_bounds(budget.period, now_ms);
                let reserve = if ask.critical {
                    0.0
                } else {
                    budget.reserve_usd
                };
                fleet::Account {
                    name: key.ledger_name(),
                    period_start_ms: start,
                    period_end_ms: end,
                    target_micro: budget.target_usd.map(micro),
                    limit_micro: budget.ceiling_usd.map(|c| micro(c - reserve)),
                    max_calls: budget.max_calls,
                    max_tokens: budget.max_tokens,
                }
            })
            .collect();
        let verdict = fleet
            .reserve(
                &accounts,
                (ask.estimate.micro_usd, ask.estimate.tokens),
                ask.downgraded_estimate.map(|e| (e.micro_usd, e.tokens)),
            )
            .await?;
        let mut alerted = self.accounts.lock().expect("budget accounts poisoned");
        for (key, budget) in covering {
            let (start, _) = period_bounds(budget.period, now_ms);
            let account = alerted.entry(key.clone()).or_default();
            if account.period_start_ms != start {
                *account = Account {
                    period_start_ms: start,
                    ..Account::default()
                };
            }
        }
        let (key, budget) = match &verdict {
            fleet::Verdict::Admitted(reservation) => {
                let downgrade_for = reservation
                    .downgraded_by
                    .and_then(|i| covering.get(i))
                    .map(|(key, budget)| self.target_passed(&mut alerted, key, budget));
                let estimate = match (&downgrade_for, ask.downgraded_estimate) {
                    (Some(_), Some(smaller)) => smaller,
                    _ => ask.estimate,
                };
                let fleet::Verdict::Admitted(reservation) = verdict else {
                    unreachable!("matched above")
                };
                return Ok(Admission {
                    keys: Vec::new(),
                    estimate,
                    downgrade_for,
                    shared: Some(reservation),
                });
            }
            fleet::Verdict::OverCalls { budget, .. }
            | fleet::Verdict::OverTokens { budget, .. }
            | fleet::Verdict::OverCeiling { budget, .. } => &covering[*budget],
        };
        Err(match verdict {
            fleet::Verdict::OverCalls { used, .. } => {
                let limit = budget.max_calls.unwrap_or_default();
                let what = ("upstream calls", used, limit);
                self.limit_reached(&mut alerted, key, budget, what, now_ms)
            }
            fleet::Verdict::OverTokens { used, .. } => {
                let limit = budget.max_tokens.unwrap_or_default();
                self.limit_reached(&mut alerted, key, budget, ("tokens", used, limit), now_ms)
            }
            fleet::Verdict::OverCeiling {
                spent,
                estimate_micro,
                ..
            } => {
                let asked = (spent, estimate_micro, ask.critical);
                self.ceiling_reached(&mut alerted, key, budget, asked, now_ms)
            }
            fleet::Verdict::Admitted(_) => unreachable!("returned above"),
        })
    }

    /// Raises an alert of `kind` about a budget, unless it was raised this period already.
    fn alert_once(
        &self,
        accounts: &mut HashMap<Key, Account>,
        key: &Key,
        budget: &BudgetConfig,
        kind: Kind,
        message: impl FnOnce() -> String,
    ) {
        let Some(account) = accounts.get_mut(key) else {
            return;
        };
        let raised = match kind {
            Kind::BudgetTarget => &mut account.target_alerted,
            Kind::BudgetLimit => &mut account.limit_alerted,
            _ => &mut account.ceiling_alerted,
        };
        if !std::mem::replace(raised, true) {
            self.alerts
                .raise(kind, key.describe(), &budget.owner, message());
        }
    }

    /// A budget past its target: alerts once per crossing, and names it for the downgrade.
    fn target_passed(
        &self,
        accounts: &mut HashMap<Key, Account>,
        key: &Key,
        budget: &BudgetConfig,
    ) -> String {
        self.alert_once(accounts, key, budget, Kind::BudgetTarget, || {
            format!(
                "budget {} passed its target of ${:.6}; requests now go to smaller tiers",
                key.describe(),
                budget.target_usd.unwrap_or_default()
            )
        });
        key.describe()
    }

    /// A refusal at a call or token limit (`what`, used, limit), alerted once per crossing.
    fn limit_reached(
        &self,
        accounts: &mut HashMap<Key, Account>,
        key: &Key,
        budget: &BudgetConfig,
        (what, used, limit): (&'static str, u64, u64),
        now_ms: u64,
    ) -> BudgetError {
        self.alert_once(accounts, key, budget, Kind::BudgetLimit, || {
            format!(
                "budget {} reached its limit of {limit} {what}; refusing its requests",
                key.describe()
            )
        });
        let (_, end) = period_bounds(budget.period, now_ms);
        BudgetError::LimitReached {
            budget: key.describe(),
            owner: owner_of(budget),
            what,
            used,
            limit,
            period: period_noun(budget.period),
            resets: utc_day(end),
        }
    }

    /// A refusal at a ceiling (spent, the estimate, whether the request may use the reserve),
    /// alerted once per crossing.
    fn ceiling_reached(
        &self,
        accounts: &mut HashMap<Key, Account>,
        key: &Key,
        budget: &BudgetConfig,
        (spent, estimate_micro, critical): (u64, u64, bool),
        now_ms: u64,
    ) -> BudgetError {
        let ceiling = budget.ceiling_usd.unwrap_or_default();
        let reserve = if critical { 0.0 } else { budget.reserve_usd };
        self.alert_once(accounts, key, budget, Kind::BudgetCeiling, || {
            format!(
                "budget {} reached its ceiling (${:.6} spent of ${ceiling:.6}); refusing its requests",
                key.describe(),
                dollars(spent)
            )
        });
        let (_, end) = period_bounds(budget.period, now_ms);
        BudgetError::Exhausted(Box::new(Exhausted {
            budget: key.describe(),
            owner: owner_of(budget),
            spent: dollars(spent),
            limit: dollars(micro(ceiling - reserve)),
            limit_kind: if reserve > 0.0 {
                "ceiling less its reserve"
            } else {
                "ceiling"
            },
            period: period_name(budget.period),
            estimate: dollars(estimate_micro),
            resets: utc_day(end),
            hint: if reserve > 0.0 {
                " (requests marked critical may still use the reserve)"
            } else {
                ""
            },
        }))
    }

    /// Replaces a reservation by what the call really cost (`None`: it failed). `charge` is
    /// the call's ledger line, which the shared ledger counts once.
    pub async fn settle(
        &self,
        admission: Admission,
        charge: Option<&Charge>,
    ) -> Result<(), BudgetError> {
        if let (Some(fleet), Some(reservation)) = (&self.fleet, admission.shared) {
            return Ok(fleet.settle(reservation, charge).await?);
        }
        let mut accounts = self.accounts.lock().expect("budget accounts poisoned");
        for key in &admission.keys {
            if let Some(account) = accounts.get_mut(key) {
                let e = admission.estimate;
                account.reserved_micro = account.reserved_micro.saturating_sub(e.micro_usd);
                account.reserved_calls = account.reserved_calls.saturating_sub(1);
                account.reserved_tokens = account.reserved_tokens.saturating_sub(e.tokens);
                if let Some(charge) = charge {
                    account.spent_micro += charge.cost_micro_usd;
                    account.calls += 1;
                    account.tokens += u64::from(charge.usage.total_tokens);
                }
            }
        }
        Ok(())
    }
}

/// The budget a label falls under: its own, else `default`.
fn bucket<'a>(
    map: &'a BTreeMap<String, BudgetConfig>,
    label: &str,
) -> Option<(String, &'a BudgetConfig)> {
    map.get_key_value(label)
        .filter(|(name, _)| name.as_str() != "default")
        .or_else(|| map.get_key_value("default"))
        .map(|(name, budget)| (name.clone(), budget))
}

fn owner_of(budget: &BudgetConfig) -> String {
    if budget.owner.is_empty() {
        "not set".into()
    } else {
        budget.owner.clone()
    }
}

fn period_noun(period: Period) -> &'static str {
    match period {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
    }
}

fn micro(usd: f64) -> u64 {
    (usd * 1_000_000.0).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_the_first_day_monday_and_midnight() {
        let now = 1_795_785_600_000; // 2026-11-27 12:00 UTC, a Friday
        let (start, end) = period_bounds(Period::Month, now);
        assert_eq!(
            (utc_day(start), utc_day(end)),
            ("2026-11-01".to_string(), "2026-12-01".to_string())
        );
        let (start, end) = period_bounds(Period::Week, now);
        assert_eq!(
            (utc_day(start), utc_day(end)),
            ("2026-11-23".to_string(), "2026-11-30".to_string())
        );
        let (start, end) = period_bounds(Period::Day, now);
        assert_eq!(
            (utc_day(start), utc_day(end)),
            ("2026-11-27".to_string(), "2026-11-28".to_string())
        );
        let (_, end) = period_bounds(Period::Month, 1_796_083_200_000); // 2026-12-01
        assert_eq!(utc_day(end), "2027-01-01");
    }
}
