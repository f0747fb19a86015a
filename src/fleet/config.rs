//! The `[fleet]` section: where the shared state lives and how long to wait for it.

use serde::Deserialize;

use crate::config::ConfigError;

/// Fleet mode: many sidecars sharing one budget ledger and one memory of answers on Redis.
/// Off (single-pod, sled only) while `redis_url` is empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `redis://host:port/db` or, for TLS, `rediss://host:port/db`; empty: fleet mode off.
    pub redis_url: String,
    /// Name of the environment variable holding the Redis password (never the password
    /// itself, so it stays out of files and logs); empty: no password, or the one in the URL.
    pub password_env: String,
    /// Prefix of every key this deployment uses, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Most time to open a connection to Redis.
    pub connect_timeout_ms: u64,
    /// Most time one Redis command may take before Redis counts as unreachable for it.
    pub command_timeout_ms: u64,
    /// Spend this sidecar may admit on its own while Redis is unreachable, per outage, in US
    /// dollars; past it, upstream calls are refused until Redis answers again.
    pub lease_usd: f64,
    /// Events kept in the shared stream of answers (trimmed approximately); a sidecar that
    /// joins, or comes back after missing more than this, cannot catch up on older entries.
    pub stream_maxlen: u64,
    /// Ledger lines kept in Redis for the fleet's showback (trimmed approximately).
    pub ledger_maxlen: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            password_env: String::new(),
            key_prefix: "cachet".into(),
            connect_timeout_ms: 1_000,
            command_timeout_ms: 500,
            lease_usd: 1.0,
            stream_maxlen: 1_000_000,
            ledger_maxlen: 10_000_000,
        }
    }
}

impl FleetConfig {
    pub fn enabled(&self) -> bool {
        !self.redis_url.trim().is_empty()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let url = self.redis_url.trim();
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(ConfigError::invalid(
                "fleet.redis_url",
                "use redis://host:port or rediss://host:port (TLS)",
            ));
        }
        if self.key_prefix.trim().is_empty() || self.key_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "fleet.key_prefix",
                "needs a name without spaces (one per deployment sharing a Redis)",
            ));
        }
        for (key, value) in [
            ("fleet.connect_timeout_ms", self.connect_timeout_ms),
            ("fleet.command_timeout_ms", self.command_timeout_ms),
            ("fleet.stream_maxlen", self.stream_maxlen),
            ("fleet.ledger_maxlen", self.ledger_maxlen),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be above 0"));
            }
        }
        if !(self.lease_usd >= 0.0 && self.lease_usd.is_finite()) {
            return Err(ConfigError::invalid(
                "fleet.lease_usd",
                "must be a sum of US dollars, 0 or more",
            ));
        }
        Ok(())
    }
}
