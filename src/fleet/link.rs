//! The connections to Redis, each command bounded by `fleet.command_timeout_ms`.
//!
//! Two connections: one for short commands (budget scripts, publishing) and one for the
//! follower's blocking stream reads, which would otherwise hold up every command queued behind
//! them on a multiplexed connection. Both reconnect by themselves; a sidecar starts, serves hits
//! and spends within its lease while Redis is down.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;

use super::{FleetConfig, FleetError};
use crate::store::now_millis;

/// Round trips to Redis, for the `cachet_fleet_ledger_rtt` metrics.
#[derive(Default)]
pub struct RoundTrips {
    pub count: AtomicU64,
    pub total_us: AtomicU64,
    pub last_us: AtomicU64,
    pub failures: AtomicU64,
}

pub struct Link {
    /// When the last command failed (Unix ms; 0: it did not).
    failed_at_ms: AtomicU64,
    ops: ConnectionManager,
    follow: ConnectionManager,
    timeout: Duration,
    pub round_trips: RoundTrips,
}

/// After a command fails, others fail at once for this long instead of each waiting for its
/// timeout: while Redis is away, one request a second pays the wait, not every one.
const FAIL_FAST_MS: u64 = 1_000;

/// How long a blocking stream read waits for new events before it asks again.
pub const BLOCK_MS: u64 = 1_000;

impl Link {
    /// Connects lazily: nothing is sent until the first command, so a sidecar starts with
    /// Redis down. The password is read from the variable `fleet.password_env` names.
    pub fn new(config: &FleetConfig) -> Result<Self, FleetError> {
        let mut info = config
            .redis_url
            .trim()
            .into_connection_info()
            .map_err(|e| FleetError::Config(format!("fleet.redis_url: {e}")))?;
        if !config.password_env.is_empty() {
            let password = std::env::var(&config.password_env).map_err(|_| {
                FleetError::Config(format!(
                    "fleet.password_env names `{}`, which is not set",
                    config.password_env
                ))
            })?;
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| FleetError::Config(e.to_string()))?;
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let manager = |response: Duration| {
            let settings = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
                .set_response_timeout(Some(response))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            ConnectionManager::new_lazy_with_config(client.clone(), settings)
                .map_err(|e| FleetError::Config(e.to_string()))
        };
        Ok(Self {
            failed_at_ms: AtomicU64::new(0),
            ops: manager(timeout)?,
            follow: manager(timeout + Duration::from_millis(BLOCK_MS))?,
            timeout,
            round_trips: RoundTrips::default(),
        })
    }

    /// Runs one command on the short-command connection, measured and bounded.
    pub async fn run<T, F, Fut>(&self, what: &'static str, command: F) -> Result<T, FleetError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let failed_at = self.failed_at_ms.load(Ordering::Relaxed);
        if failed_at > 0 && now_millis().saturating_sub(failed_at) < FAIL_FAST_MS {
            return Err(FleetError::Redis(format!(
                "{what}: Redis failed less than {FAIL_FAST_MS} ms ago"
            )));
        }
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, command(self.ops.clone())).await;
        let rt = &self.round_trips;
        if !matches!(result, Ok(Ok(_))) {
            self.failed_at_ms
                .store(now_millis().max(1), Ordering::Relaxed);
        }
        match result {
            Ok(Ok(value)) => {
                self.failed_at_ms.store(0, Ordering::Relaxed);
                let us = started.elapsed().as_micros() as u64;
                rt.count.fetch_add(1, Ordering::Relaxed);
                rt.total_us.fetch_add(us, Ordering::Relaxed);
                rt.last_us.store(us, Ordering::Relaxed);
                Ok(value)
            }
            Ok(Err(err)) => {
                rt.failures.fetch_add(1, Ordering::Relaxed);
                Err(FleetError::Redis(format!("{what}: {err}")))
            }
            Err(_) => {
                rt.failures.fetch_add(1, Ordering::Relaxed);
                Err(FleetError::Redis(format!(
                    "{what}: no answer within {} ms",
                    self.timeout.as_millis()
                )))
            }
        }
    }

    /// The connection for blocking reads (its own timeout covers the block).
    pub fn follower(&self) -> ConnectionManager {
        self.follow.clone()
    }
}
