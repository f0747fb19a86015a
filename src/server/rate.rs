//! Per-tenant request rate limits: one token bucket per configured tenant, shared by the gRPC
//! cache API and the HTTP front door, so a runaway client of one tenant cannot starve the
//! others of the embedding worker.
//!
//! Only configured tenants get a bucket: a request naming any other tenant is refused by the
//! cache anyway, and must not be able to grow this map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;

/// A refused request: the tenant is over its rate.
#[derive(Debug, thiserror::Error)]
#[error("tenant `{tenant}` is over its rate limit of {rate} requests a second (burst {burst}); retry in {} ms", retry_after.as_millis())]
pub struct RateLimited {
    pub tenant: String,
    pub rate: f64,
    pub burst: u32,
    pub retry_after: Duration,
}

struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// Takes one token if there is one; otherwise how long until there will be.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

pub struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
    burst: u32,
}

impl RateLimits {
    pub fn new(config: &Config) -> Self {
        let now = Instant::now();
        let burst = config.limits.burst.max(1);
        let buckets = config
            .tenants
            .iter()
            .filter_map(|(name, tenant)| {
                let rate = tenant
                    .requests_per_second
                    .unwrap_or(config.limits.requests_per_second);
                (rate > 0.0).then(|| {
                    let bucket = Bucket {
                        rate,
                        burst: f64::from(burst),
                        tokens: f64::from(burst),
                        refilled: now,
                    };
                    (name.clone(), bucket)
                })
            })
            .collect();
        Self {
            buckets: Mutex::new(buckets),
            burst,
        }
    }

    /// Counts one request of `tenant` against its limit.
    pub fn admit(&self, tenant: &str) -> Result<(), RateLimited> {
        let mut buckets = self.buckets.lock().expect("rate limits poisoned");
        let Some(bucket) = buckets.get_mut(tenant) else {
            return Ok(());
        };
        bucket
            .take(Instant::now())
            .map_err(|retry_after| RateLimited {
                tenant: tenant.to_string(),
                rate: bucket.rate,
                burst: self.burst,
                retry_after,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(toml: &str) -> RateLimits {
        let config: Config = toml::from_str(toml).unwrap();
        RateLimits::new(&config)
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limits = limits("[limits]\nrequests_per_second = 2.0\nburst = 3\n[tenants.a]\n");
        for _ in 0..3 {
            limits.admit("a").unwrap();
        }
        let refused = limits.admit("a").unwrap_err();
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= Duration::from_millis(500));
        assert!(refused.to_string().contains("tenant `a`"));
    }

    #[test]
    fn tokens_come_back_with_time() {
        let mut bucket = Bucket {
            rate: 10.0,
            burst: 1.0,
            tokens: 0.0,
            refilled: Instant::now(),
        };
        let later = bucket.refilled + Duration::from_millis(150);
        assert!(bucket.take(later).is_ok());
        assert!(bucket.take(later).is_err());
    }

    #[test]
    fn tenants_have_their_own_buckets_and_overrides() {
        let limits = limits(
            "[limits]\nrequests_per_second = 1.0\nburst = 1\n[tenants.a]\n[tenants.b]\nrequests_per_second = 0.0\n",
        );
        limits.admit("a").unwrap();
        assert!(limits.admit("a").is_err());
        // b has no limit; a tenant that is not configured gets no bucket.
        for _ in 0..100 {
            limits.admit("b").unwrap();
            limits.admit("nobody").unwrap();
        }
    }
}
