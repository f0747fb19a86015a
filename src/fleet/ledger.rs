//! The shared ledger: every budget's spend and reservations as counters in Redis.
//!
//! One hash per budget and period (`<prefix>:acct:<period start>:<budget>`) holds `spent`,
//! `calls`, `tokens`, the sums of the reservations in flight (`rm`, `rc`, `rt`) and one field
//! per reservation (`r:<id>` = estimate and tokens); a sorted set beside it (`…:due`) orders
//! the reservations by deadline, after which one of a sidecar that died mid-call stops
//! counting. Every step is O(1) in the reservations in flight (plus the ones that lapsed).
//! [`RESERVE`] checks a request's estimate against every budget covering it and reserves it on
//! all of them in one atomic step, so sidecars never admit concurrently past a ceiling.
//! [`SETTLE`] replaces the reservation by what the call cost, once per charge id, adds the
//! charge to its spender's totals of the day (`<prefix>:rollup:<day>`, kept `report_days`: what
//! the fleet's showback reads, however busy the fleet) and appends it to the ledger stream, the
//! audit trail of the last `ledger_maxlen` lines.
//!
//! While Redis is unreachable a sidecar admits on its own up to `fleet.lease_usd` (estimates in
//! flight plus spend Redis has not counted yet); the spend waits in the outbox and is counted
//! when Redis is back. With N sidecars a ceiling can thus be passed by at most N leases during
//! an outage (and never by estimates in flight: those are reserved before the call).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::outbox::Outgoing;
use super::{Fleet, FleetConfig, FleetError};
use crate::meter::{build_report_from_rows, utc_day, Charge, Report, Row, Totals};
use crate::store::{now_millis, Labels};

/// Lua shared by both scripts: drops one reservation from a budget's sums, if it is still there.
macro_rules! release_lua {
    () => {
        r"
local function release(key, id)
  local held = redis.call('HGET', key, 'r:' .. id)
  if held then
    local m, x = string.match(held, '^(%d+) (%d+)$')
    redis.call('HINCRBY', key, 'rm', -tonumber(m))
    redis.call('HINCRBY', key, 'rc', -1)
    redis.call('HINCRBY', key, 'rt', -tonumber(x))
    redis.call('HDEL', key, 'r:' .. id)
  end
  redis.call('ZREM', key .. ':due', id)
end
"
    };
}

/// Checks and reserves. KEYS: the budgets' hashes. ARGV: reservation id, hold (ms), estimate
/// (µ$, tokens), estimate at the smaller tier (µ$, tokens; -1: none), then per budget: target,
/// limit (ceiling less reserve), max calls, max tokens (-1: none), expiry (Unix ms).
/// Returns {0, 0, 0, downgraded-by, µ$ reserved} or {1 calls | 2 tokens | 3 ceiling, budget,
/// used, downgraded-by, µ$ asked}; budgets are numbered from 1, 0 is none.
const RESERVE: &str = concat!(
    release_lua!(),
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS
local committed, calls, tokens, spent = {}, {}, {}, {}
for i = 1, n do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i] .. ':due', '-inf', now)) do
    release(KEYS[i], id)
  end
  local h = redis.call('HMGET', KEYS[i], 'spent', 'calls', 'tokens', 'rm', 'rc', 'rt')
  local v = {}
  for j = 1, 6 do v[j] = tonumber(h[j] or 0) end
  spent[i] = v[1]; committed[i] = v[1] + v[4]; calls[i] = v[2] + v[5]; tokens[i] = v[3] + v[6]
end
local function arg(i, k) return tonumber(ARGV[7 + (i - 1) * 5 + k]) end
local down = 0
for i = 1, n do
  local target = arg(i, 0)
  if target >= 0 and committed[i] >= target then down = i; break end
end
local em, et = tonumber(ARGV[3]), tonumber(ARGV[4])
if down > 0 and tonumber(ARGV[5]) >= 0 then em, et = tonumber(ARGV[5]), tonumber(ARGV[6]) end
for i = 1, n do
  local mc, mt = arg(i, 2), arg(i, 3)
  if mc >= 0 and calls[i] + 1 > mc then return {1, i, calls[i], down, em} end
  if mt >= 0 and tokens[i] + et > mt then return {2, i, tokens[i], down, em} end
end
for i = 1, n do
  local limit = arg(i, 1)
  if limit >= 0 and committed[i] + em > limit then return {3, i, spent[i], down, em} end
end
local held = string.format('%d %d', em, et)
for i = 1, n do
  redis.call('HSET', KEYS[i], 'r:' .. ARGV[1], held)
  redis.call('HINCRBY', KEYS[i], 'rm', em)
  redis.call('HINCRBY', KEYS[i], 'rc', 1)
  redis.call('HINCRBY', KEYS[i], 'rt', et)
  redis.call('ZADD', KEYS[i] .. ':due', now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIREAT', KEYS[i], arg(i, 4))
  redis.call('PEXPIREAT', KEYS[i] .. ':due', arg(i, 4))
end
return {0, 0, 0, down, em}
"
);

/// Releases a reservation and counts a charge once. KEYS: the budgets' hashes, then the ledger
/// stream, then the day's showback totals. ARGV: reservation id, the charge's dedupe key, µ$,
/// tokens, the charge as JSON (empty: the call failed, release only), dedupe lifetime (ms),
/// ledger length, then per budget its expiry (Unix ms), then the spender's field prefix in the
/// day's totals, the charge's seven totals (see [`ROLLUP_FIELDS`]) and the totals' expiry.
/// Returns 1 when counted, 0 when released only or counted before.
const SETTLE: &str = concat!(
    release_lua!(),
    r"
local n = #KEYS - 2
for i = 1, n do release(KEYS[i], ARGV[1]) end
if ARGV[5] == '' then return 0 end
if not redis.call('SET', ARGV[2], '1', 'NX', 'PX', ARGV[6]) then return 0 end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'spent', ARGV[3])
  redis.call('HINCRBY', KEYS[i], 'calls', 1)
  redis.call('HINCRBY', KEYS[i], 'tokens', ARGV[4])
  redis.call('PEXPIREAT', KEYS[i], ARGV[7 + i])
end
redis.call('XADD', KEYS[n + 1], 'MAXLEN', '~', ARGV[7], '*', 'c', ARGV[5])
local r = 8 + n
local fields = {'u', 'h', 'p', 'c', 'm', 's', 'v'}
for j = 1, 7 do
  local v = tonumber(ARGV[r + j])
  if v ~= 0 then redis.call('HINCRBY', KEYS[n + 2], ARGV[r] .. '|' .. fields[j], v) end
end
redis.call('PEXPIREAT', KEYS[n + 2], ARGV[r + 8])
return 1
"
);

/// The seven totals kept per spender and day, in the order SETTLE takes them: upstream calls,
/// hits, prompt and completion tokens, µ$ spent, tokens saved, µ$ saved.
const ROLLUP_FIELDS: [&str; 7] = ["u", "h", "p", "c", "m", "s", "v"];

fn rollup_values(t: &Totals) -> [u64; 7] {
    [
        t.upstream_calls,
        t.cache_hits,
        t.prompt_tokens,
        t.completion_tokens,
        t.cost_micro_usd,
        t.tokens_saved,
        t.saved_micro_usd,
    ]
}

/// A spender's field prefix in a day's totals: tenant, department, workflow, job, model.
fn rollup_prefix(row: &Row) -> String {
    let l = &row.labels;
    serde_json::to_string(&[
        &row.tenant,
        &l.department,
        &l.workflow,
        &l.job_id,
        &row.model,
    ])
    .expect("strings serialise")
}

/// The rows of one day's totals, as HGETALL returns them.
fn rollup_rows(day: &str, fields: Vec<(String, u64)>) -> Vec<Row> {
    let mut spenders: std::collections::BTreeMap<String, Totals> = Default::default();
    for (field, value) in fields {
        let Some((prefix, name)) = field.rsplit_once('|') else {
            continue;
        };
        let Some(at) = ROLLUP_FIELDS.iter().position(|f| *f == name) else {
            continue;
        };
        let t = spenders.entry(prefix.to_string()).or_default();
        let slot = match at {
            0 => &mut t.upstream_calls,
            1 => &mut t.cache_hits,
            2 => &mut t.prompt_tokens,
            3 => &mut t.completion_tokens,
            4 => &mut t.cost_micro_usd,
            5 => &mut t.tokens_saved,
            _ => &mut t.saved_micro_usd,
        };
        *slot += value;
    }
    spenders
        .into_iter()
        .filter_map(|(prefix, mut totals)| {
            let [tenant, department, workflow, job_id, model]: [String; 5] =
                serde_json::from_str(&prefix).ok()?;
            totals.requests = totals.upstream_calls + totals.cache_hits;
            Some(Row {
                day: day.to_string(),
                tenant,
                labels: Labels {
                    department,
                    workflow,
                    job_id,
                },
                model,
                totals,
            })
        })
        .collect()
}

/// How long Redis remembers a charge id (a replay after longer would count again).
const DEDUPE_MS: u64 = 62 * 86_400_000;
/// Budget counters outlive their period by this much, for inspection.
const KEEP_AFTER_PERIOD_MS: u64 = 35 * 86_400_000;

/// One budget covering a request, as the shared ledger checks it.
#[derive(Debug, Clone)]
pub struct Account {
    /// `organisation`, `department:NAME`, `workflow:NAME` or `job:ID`.
    pub name: String,
    pub period_start_ms: u64,
    pub period_end_ms: u64,
    pub target_micro: Option<u64>,
    /// The ceiling less any reserve this request may not use.
    pub limit_micro: Option<u64>,
    pub max_calls: Option<u64>,
    pub max_tokens: Option<u64>,
}

/// What the shared ledger decided. Budgets are indexes into the accounts asked about.
#[derive(Debug)]
pub enum Verdict {
    Admitted(Reservation),
    OverCalls {
        budget: usize,
        used: u64,
    },
    OverTokens {
        budget: usize,
        used: u64,
    },
    OverCeiling {
        budget: usize,
        spent: u64,
        estimate_micro: u64,
    },
}

/// An estimate held on the shared ledger (or on the local lease) while a call is in flight.
#[derive(Debug)]
pub struct Reservation {
    id: String,
    keys: Vec<(String, u64)>,
    estimate_micro: u64,
    /// Admitted on the local lease while Redis was unreachable.
    leased: bool,
    /// The budget past its target that sent the request to the smaller tier.
    pub downgraded_by: Option<usize>,
}

/// Spend for Redis to count, as queued in the outbox.
#[derive(Debug, Serialize, Deserialize)]
pub struct SpendRecord {
    keys: Vec<(String, u64)>,
    reservation: String,
    charge_id: String,
    pub cost_micro: u64,
    tokens: u64,
    /// The ledger line, as JSON.
    charge: String,
}

pub struct Ledger {
    lease_micro: u64,
    /// Estimates admitted on the lease and in flight, plus spend Redis has not counted yet.
    lease_used: AtomicU64,
    hold_ms: u64,
    reserve: redis::Script,
    settle: redis::Script,
}

impl Ledger {
    pub fn new(config: &FleetConfig, unsynced_micro: u64, hold: Duration) -> Self {
        Self {
            lease_micro: (config.lease_usd * 1e6).round() as u64,
            lease_used: AtomicU64::new(unsynced_micro),
            hold_ms: hold.as_millis() as u64,
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
        }
    }

    pub fn lease_used_micro(&self) -> u64 {
        self.lease_used.load(Ordering::Relaxed)
    }

    /// Spend Redis has now counted no longer weighs on the lease.
    pub fn reconciled(&self, micro: u64) {
        let _ = self
            .lease_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(micro))
            });
    }

    /// Takes `micro` from the lease if it fits.
    fn lease(&self, micro: u64) -> bool {
        self.lease_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + micro <= self.lease_micro).then_some(used + micro)
            })
            .is_ok()
    }
}

fn limit(value: Option<u64>) -> i64 {
    value.map_or(-1, |v| v as i64)
}

impl Fleet {
    /// Counts one more upstream attempt of a job's chat in the period starting at
    /// `period_start_ms`, fleet-wide, and returns how many there were before it.
    pub async fn count_attempt(
        &self,
        job: &str,
        chat: &[u8; 32],
        period_start_ms: u64,
        expires_ms: u64,
    ) -> Result<u64, FleetError> {
        let key = self.key(&format!(
            "attempts:{period_start_ms}:{}:{job}",
            hex::encode(chat)
        ));
        let count: u64 = self
            .link
            .run("counting a job's attempts", |mut c| {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .incr(&key, 1)
                    .pexpire_at(&key, expires_ms as i64)
                    .ignore();
                async move {
                    let (count,): (u64,) = pipe.query_async(&mut c).await?;
                    Ok(count)
                }
            })
            .await?;
        Ok(count.saturating_sub(1))
    }

    fn account_key(&self, account: &Account) -> (String, u64) {
        (
            self.key(&format!(
                "acct:{}:{}",
                account.period_start_ms, account.name
            )),
            account.period_end_ms + KEEP_AFTER_PERIOD_MS,
        )
    }

    /// Checks an estimate against every budget covering a request and reserves it on all of
    /// them at once; `smaller` is the estimate at the next smaller tier, for a downgrade.
    /// Without Redis, admits on the local lease (no downgrade) or refuses.
    pub async fn reserve(
        &self,
        accounts: &[Account],
        estimate: (u64, u64),
        smaller: Option<(u64, u64)>,
    ) -> Result<Verdict, FleetError> {
        let id = format!("{}:{}", self.node, self.store.next_id()?);
        let keys: Vec<(String, u64)> = accounts.iter().map(|a| self.account_key(a)).collect();
        let script = &self.ledger.reserve;
        let (smaller_micro, smaller_tokens) =
            smaller.map_or((-1, -1), |(m, t)| (m as i64, t as i64));
        let result = self
            .link
            .run("checking budgets", |mut c| {
                let mut call = script.prepare_invoke();
                for (key, _) in &keys {
                    call.key(key);
                }
                call.arg(&id)
                    .arg(self.ledger.hold_ms)
                    .arg(estimate.0)
                    .arg(estimate.1)
                    .arg(smaller_micro)
                    .arg(smaller_tokens);
                for (account, (_, expires)) in accounts.iter().zip(&keys) {
                    call.arg(limit(account.target_micro))
                        .arg(limit(account.limit_micro))
                        .arg(limit(account.max_calls))
                        .arg(limit(account.max_tokens))
                        .arg(*expires);
                }
                async move { call.invoke_async::<Vec<i64>>(&mut c).await }
            })
            .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(err) => {
                if self.ledger.lease(estimate.0) {
                    tracing::warn!(%err, lease_used_micro = self.ledger.lease_used_micro(), "fleet: admitted on the local lease");
                    return Ok(Verdict::Admitted(Reservation {
                        id: String::new(),
                        keys,
                        estimate_micro: estimate.0,
                        leased: true,
                        downgraded_by: None,
                    }));
                }
                tracing::warn!(%err, "fleet: Redis unreachable and the local lease is used up");
                return Err(FleetError::LeaseExhausted {
                    lease: self.config.lease_usd,
                });
            }
        };
        let field = |i: usize| reply.get(i).copied().unwrap_or(0).max(0) as u64;
        let index = |i: usize| (field(i) as usize).checked_sub(1);
        let budget = index(1).unwrap_or(0);
        Ok(match field(0) {
            0 => Verdict::Admitted(Reservation {
                id,
                keys,
                estimate_micro: field(4),
                leased: false,
                downgraded_by: index(3),
            }),
            1 => Verdict::OverCalls {
                budget,
                used: field(2),
            },
            2 => Verdict::OverTokens {
                budget,
                used: field(2),
            },
            _ => Verdict::OverCeiling {
                budget,
                spent: field(2),
                estimate_micro: field(4),
            },
        })
    }

    /// Replaces a reservation by what the call cost (`None`: it failed). Spend Redis cannot
    /// take now goes to the outbox (durable with the caller's next commit) and onto the lease.
    pub async fn settle(
        &self,
        reservation: Reservation,
        charge: Option<&Charge>,
    ) -> Result<(), FleetError> {
        if reservation.leased {
            self.ledger.reconciled(reservation.estimate_micro);
        }
        let Some(charge) = charge else {
            if !reservation.leased {
                // Unreleased, the reservation lapses at its deadline anyway.
                let _ = self
                    .send_spend(&self.spend_record(&reservation, None)?)
                    .await;
            }
            return Ok(());
        };
        let record = self.spend_record(&reservation, Some(charge))?;
        if let Err(err) = self.send_spend(&record).await {
            tracing::warn!(%err, "fleet: spend kept in the outbox until Redis answers");
            self.ledger
                .lease_used
                .fetch_add(record.cost_micro, Ordering::Relaxed);
            self.outbox.push(&Outgoing::Spend(record))?;
        }
        Ok(())
    }

    /// Puts a hit's saving on the fleet's ledger, through the outbox (off the hit's path).
    pub fn record_saving(&self, charge: &Charge) -> Result<(), FleetError> {
        let reservation = Reservation {
            id: String::new(),
            keys: Vec::new(),
            estimate_micro: 0,
            leased: false,
            downgraded_by: None,
        };
        let record = self.spend_record(&reservation, Some(charge))?;
        Ok(self.outbox.push(&Outgoing::Spend(record))?)
    }

    fn spend_record(
        &self,
        reservation: &Reservation,
        charge: Option<&Charge>,
    ) -> Result<SpendRecord, FleetError> {
        Ok(SpendRecord {
            keys: reservation.keys.clone(),
            reservation: reservation.id.clone(),
            charge_id: format!("{}:{}", self.node, self.store.next_id()?),
            cost_micro: charge.map_or(0, |c| c.cost_micro_usd),
            tokens: charge.map_or(0, |c| u64::from(c.usage.total_tokens)),
            charge: charge.map_or_else(String::new, |c| {
                serde_json::to_string(c).expect("a charge serialises")
            }),
        })
    }

    pub(super) async fn send_spend(&self, record: &SpendRecord) -> Result<(), FleetError> {
        let script = &self.ledger.settle;
        let dedupe = self.key(&format!("charge:{}", record.charge_id));
        let ledger = self.key("ledger");
        let maxlen = self.config.ledger_maxlen;
        // The day's showback totals of this charge's spender (none for a failed call).
        let row = serde_json::from_str::<Charge>(&record.charge)
            .ok()
            .map(|charge| Row::from(&charge));
        let rollup = self.key(&format!(
            "rollup:{}",
            row.as_ref().map_or("-", |r| r.day.as_str())
        ));
        let prefix = row.as_ref().map(rollup_prefix).unwrap_or_default();
        let values = row
            .as_ref()
            .map(|r| rollup_values(&r.totals))
            .unwrap_or_default();
        let rollup_expires = now_millis() + (self.config.report_days + 1) * 86_400_000;
        self.link
            .run("settling spend", |mut c| {
                let mut call = script.prepare_invoke();
                for (key, _) in &record.keys {
                    call.key(key);
                }
                call.key(&ledger)
                    .key(&rollup)
                    .arg(&record.reservation)
                    .arg(&dedupe)
                    .arg(record.cost_micro)
                    .arg(record.tokens)
                    .arg(&record.charge)
                    .arg(DEDUPE_MS)
                    .arg(maxlen);
                for (_, expires) in &record.keys {
                    call.arg(*expires);
                }
                call.arg(&prefix).arg(&values[..]).arg(rollup_expires);
                async move { call.invoke_async::<i64>(&mut c).await }
            })
            .await
            .map(drop)
    }

    /// Showback of the whole fleet over the last `days` days (whole UTC days, today
    /// included), from the daily totals every sidecar adds to as it settles.
    pub async fn report(&self, days: u32) -> Result<Report, FleetError> {
        const DAY_MS: u64 = 86_400_000;
        let until_ms = now_millis() + 1;
        let first_day = until_ms / DAY_MS - u64::from(days.max(1)) + 1;
        let mut rows = Vec::new();
        for day_number in first_day..=until_ms / DAY_MS {
            let day = utc_day(day_number * DAY_MS);
            let key = self.key(&format!("rollup:{day}"));
            let fields: Vec<(String, u64)> = self
                .link
                .run("reading the fleet's daily totals", |mut c| {
                    let mut command = redis::cmd("HGETALL");
                    command.arg(&key);
                    async move { command.query_async(&mut c).await }
                })
                .await?;
            rows.extend(rollup_rows(&day, fields));
        }
        Ok(build_report_from_rows(&rows, first_day * DAY_MS, until_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Usage;

    #[test]
    fn daily_totals_come_back_as_the_rows_they_were_made_of() {
        let charge = Charge {
            at_ms: 1_795_000_000_000,
            tenant: "acme".into(),
            labels: Labels {
                department: "support|desk".into(),
                workflow: String::new(),
                job_id: "job-1".into(),
            },
            tier: "small".into(),
            model: "gpt-4o-mini".into(),
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 20,
                total_tokens: 30,
            },
            cost_micro_usd: 42,
            tokens_saved: 0,
            saved_micro_usd: 0,
        };
        let row = Row::from(&charge);
        let prefix = rollup_prefix(&row);
        // Twice, as two calls of the same spender on the same day add up in Redis.
        let fields: Vec<(String, u64)> = ROLLUP_FIELDS
            .iter()
            .zip(rollup_values(&row.totals))
            .filter(|(_, v)| *v != 0)
            .map(|(name, v)| (format!("{prefix}|{name}"), 2 * v))
            .collect();
        let rows = rollup_rows(&row.day, fields);
        assert_eq!(rows.len(), 1);
        let mut twice = row.totals;
        twice.requests = 2;
        twice.upstream_calls = 2;
        twice.prompt_tokens = 20;
        twice.completion_tokens = 40;
        twice.cost_micro_usd = 84;
        assert_eq!(
            rows[0],
            Row {
                totals: twice,
                ..row
            }
        );
    }
}
