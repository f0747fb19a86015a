//! The meter: a ledger of every upstream call (tokens and money spent) and every cache hit
//! (tokens and money saved), labelled with who asked, and the showback built from it.
//!
//! The upstream's reported `usage` is what is metered; prices come from the router's tiers. A
//! spend is written in the same commit as the answer it paid for, so a crash can neither lose
//! it nor count it twice. A saving is written without waiting for the disk (an exact hit must
//! stay sub-millisecond); a crash may forget the last moments of savings, never of spend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{now_millis, Labels, Store, StoreError, Usage};

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub at_ms: u64,
    pub tenant: String,
    pub labels: Labels,
    /// The tier that answered (for a hit: that answered originally).
    pub tier: String,
    pub model: String,
    /// Spent upstream (zero for a hit).
    pub usage: Usage,
    pub cost_micro_usd: u64,
    /// Saved by a hit (zero for an upstream call).
    pub tokens_saved: u64,
    pub saved_micro_usd: u64,
}

impl Charge {
    fn is_hit(&self) -> bool {
        self.tokens_saved > 0 || self.usage.total_tokens == 0
    }

    /// A line for a call that went upstream (not a cache hit).
    pub fn is_upstream(&self) -> bool {
        !self.is_hit()
    }
}

/// Sums over a set of ledger lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    pub requests: u64,
    pub upstream_calls: u64,
    pub cache_hits: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micro_usd: u64,
    pub tokens_saved: u64,
    pub saved_micro_usd: u64,
}

impl Totals {
    /// The totals of one ledger line.
    pub fn of(c: &Charge) -> Self {
        let hit = c.is_hit();
        Self {
            requests: 1,
            upstream_calls: u64::from(!hit),
            cache_hits: u64::from(hit),
            prompt_tokens: u64::from(c.usage.prompt_tokens),
            completion_tokens: u64::from(c.usage.completion_tokens),
            cost_micro_usd: c.cost_micro_usd,
            tokens_saved: c.tokens_saved,
            saved_micro_usd: c.saved_micro_usd,
        }
    }

    fn add(&mut self, t: &Totals) {
        self.requests += t.requests;
        self.upstream_calls += t.upstream_calls;
        self.cache_hits += t.cache_hits;
        self.prompt_tokens += t.prompt_tokens;
        self.completion_tokens += t.completion_tokens;
        self.cost_micro_usd += t.cost_micro_usd;
        self.tokens_saved += t.tokens_saved;
        self.saved_micro_usd += t.saved_micro_usd;
    }
}

/// What a report is built from: one spender's totals on one day (UTC). One ledger line makes
/// one row; a fleet's daily roll-ups make one row per spender and day.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub day: String,
    pub tenant: String,
    pub labels: Labels,
    pub model: String,
    pub totals: Totals,
}

impl From<&Charge> for Row {
    fn from(c: &Charge) -> Self {
        Self {
            day: utc_day(c.at_ms),
            tenant: c.tenant.clone(),
            labels: c.labels.clone(),
            model: c.model.clone(),
            totals: Totals::of(c),
        }
    }
}

/// Showback for a period.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub since_ms: u64,
    pub until_ms: u64,
    pub totals: Totals,
    /// Per dimension (`tenant`, `department`, `workflow`, `job`, `model`), per key.
    pub by: BTreeMap<&'static str, BTreeMap<String, Totals>>,
    /// The ten biggest spenders across departments, workflows and jobs, as `dimension:key`.
    pub top_consumers: Vec<(String, Totals)>,
    /// Per UTC day, `YYYY-MM-DD`.
    pub days: BTreeMap<String, Totals>,
    /// Days on which the organisation, or a department, workflow or job, spent well above its
    /// own average of the days before.
    pub anomalies: Vec<String>,
}

/// A day's spend this many times its trailing average is an anomaly...
const ANOMALY_FACTOR: f64 = 3.0;
/// ...given at least this many earlier days to average.
const ANOMALY_HISTORY_DAYS: usize = 3;

pub struct Meter {
    store: Store,
}

impl Meter {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Appends a line. Durable with the next commit of the store.
    pub fn record(&self, charge: &Charge) -> Result<(), StoreError> {
        self.store.append_ledger(
            charge.at_ms,
            &postcard::to_allocvec(charge).expect("serialise"),
        )
    }

    /// Every line from `since_ms` (inclusive) to `until_ms` (exclusive).
    pub fn charges(&self, since_ms: u64, until_ms: u64) -> Result<Vec<Charge>, StoreError> {
        self.store
            .ledger_range(since_ms, until_ms)?
            .iter()
            .map(|bytes| {
                postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// Showback over the last `days` days.
    pub fn report(&self, days: u32) -> Result<Report, StoreError> {
        let until_ms = now_millis() + 1;
        let since_ms = until_ms.saturating_sub(u64::from(days) * 86_400_000);
        Ok(build_report(
            &self.charges(since_ms, until_ms)?,
            since_ms,
            until_ms,
        ))
    }
}

/// Sums charges into a report.
pub fn build_report(charges: &[Charge], since_ms: u64, until_ms: u64) -> Report {
    let rows: Vec<Row> = charges.iter().map(Row::from).collect();
    build_report_from_rows(&rows, since_ms, until_ms)
}

/// The showback of `rows` (see [`Row`]).
pub fn build_report_from_rows(rows: &[Row], since_ms: u64, until_ms: u64) -> Report {
    let mut report = Report {
        since_ms,
        until_ms,
        ..Report::default()
    };
    for row in rows {
        let t = &row.totals;
        report.totals.add(t);
        let keys = [
            ("tenant", row.tenant.as_str()),
            ("department", row.labels.department.as_str()),
            ("workflow", row.labels.workflow.as_str()),
            ("job", row.labels.job_id.as_str()),
            ("model", row.model.as_str()),
        ];
        for (dimension, key) in keys {
            let key = if key.is_empty() { "(unlabelled)" } else { key };
            report
                .by
                .entry(dimension)
                .or_default()
                .entry(key.to_string())
                .or_default()
                .add(t);
        }
        report.days.entry(row.day.clone()).or_default().add(t);
    }
    let mut consumers: Vec<(String, Totals)> = ["department", "workflow", "job"]
        .iter()
        .flat_map(|d| {
            report
                .by
                .get(d)
                .into_iter()
                .flatten()
                .filter(|(key, _)| key.as_str() != "(unlabelled)")
                .map(move |(key, totals)| (format!("{d}:{key}"), *totals))
        })
        .collect();
    consumers.sort_by(|a, b| {
        b.1.cost_micro_usd
            .cmp(&a.1.cost_micro_usd)
            .then(a.0.cmp(&b.0))
    });
    consumers.truncate(10);
    report.top_consumers = consumers;
    // Each spender against its own recent days, and the whole organisation against its own.
    let mut series: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.totals.upstream_calls > 0) {
        let mut add = |who: String| {
            *series
                .entry(who)
                .or_default()
                .entry(row.day.clone())
                .or_default() += row.totals.cost_micro_usd
        };
        add("organisation".into());
        for (dimension, key) in [
            ("department", &row.labels.department),
            ("workflow", &row.labels.workflow),
            ("job", &row.labels.job_id),
        ] {
            if !key.is_empty() {
                add(format!("{dimension} `{key}`"));
            }
        }
    }
    for (who, days) in &series {
        report.anomalies.extend(spikes(who, days));
    }
    report
}

/// Days whose spend is over [`ANOMALY_FACTOR`] times the average of up to 7 days before it
/// (days without spend count as zero), given [`ANOMALY_HISTORY_DAYS`] days of history.
fn spikes(who: &str, days: &BTreeMap<String, u64>) -> Vec<String> {
    let Some(first) = days.keys().next().map(|d| day_number(d)) else {
        return Vec::new();
    };
    let spend_on = |n: i64| days.get(&day_name(n)).copied().unwrap_or(0) as f64;
    days.iter()
        .filter_map(|(day, &spent)| {
            let n = day_number(day);
            let history: Vec<f64> = (n.saturating_sub(7).max(first)..n).map(spend_on).collect();
            let average = history.iter().sum::<f64>() / history.len().max(1) as f64;
            (history.len() >= ANOMALY_HISTORY_DAYS
                && average > 0.0
                && spent as f64 > ANOMALY_FACTOR * average)
                .then(|| {
                    format!(
                        "{day}: {who} spent ${:.6}, {:.1}x its average of the {} days before",
                        dollars(spent),
                        spent as f64 / average,
                        history.len()
                    )
                })
        })
        .collect()
}

fn day_number(day: &str) -> i64 {
    let mut parts = day.split('-').map(|p| p.parse::<i64>().unwrap_or(1));
    let (y, m, d) = (
        parts.next().unwrap_or(1970),
        parts.next().unwrap_or(1),
        parts.next().unwrap_or(1),
    );
    days_from_civil(y, m, d)
}

fn day_name(n: i64) -> String {
    utc_day((n.max(0) as u64) * 86_400_000)
}

pub fn dollars(micro_usd: u64) -> f64 {
    micro_usd as f64 / 1_000_000.0
}

/// `YYYY-MM-DD` of a Unix time in milliseconds (UTC).
pub fn utc_day(at_ms: u64) -> String {
    let (year, month, day) = civil_from_days((at_ms / 86_400_000) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(day: u64, department: &str, cost: u64, saved: u64) -> Charge {
        Charge {
            at_ms: day * 86_400_000 + 1_000,
            tenant: "t".into(),
            labels: Labels {
                department: department.into(),
                workflow: "w".into(),
                job_id: String::new(),
            },
            tier: "small".into(),
            model: "m".into(),
            usage: if saved > 0 {
                Usage::default()
            } else {
                Usage {
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    total_tokens: 15,
                }
            },
            cost_micro_usd: cost,
            tokens_saved: saved,
            saved_micro_usd: saved * 2,
        }
    }

    #[test]
    fn days_are_civil_dates() {
        for days in [0, 59, 11_016, 20_784, 40_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(1_795_737_600_000), "2026-11-27");
        assert_eq!(utc_day(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn the_report_adds_up_and_flags_a_spike() {
        let mut charges = Vec::new();
        for day in 0..5 {
            charges.push(charge(20_000 + day, "support", 100, 0));
            charges.push(charge(20_000 + day, "support", 0, 15));
        }
        charges.push(charge(20_005, "research", 1_000, 0));
        let r = build_report(&charges, 0, u64::MAX);
        assert_eq!(r.totals.requests, 11);
        assert_eq!(r.totals.upstream_calls, 6);
        assert_eq!(r.totals.cache_hits, 5);
        assert_eq!(r.totals.cost_micro_usd, 1_500);
        assert_eq!(r.totals.tokens_saved, 75);
        assert_eq!(r.by["department"]["support"].cost_micro_usd, 500);
        // The one workflow carries all 1,500 µ$; research is the biggest department.
        assert_eq!(r.top_consumers[0].0, "workflow:w");
        assert_eq!(r.top_consumers[1].0, "department:research");
        assert_eq!(r.days.len(), 6);
        // Day 6 is a spike for the organisation and for the one workflow; support spends
        // steadily and research has no history of its own.
        assert_eq!(r.anomalies.len(), 2, "{:?}", r.anomalies);
        assert!(r
            .anomalies
            .iter()
            .all(|a| a.starts_with(&utc_day(20_005 * 86_400_000))));
        assert!(r.anomalies[0].contains("organisation"), "{:?}", r.anomalies);
        assert!(r.anomalies[1].contains("workflow `w`"), "{:?}", r.anomalies);
        assert_eq!(r.by["job"]["(unlabelled)"].requests, 11);
    }
}
