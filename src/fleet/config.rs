//! The `[fleet]` section: where the shared state lives and how long to wait for it.

use serde::Deserialize;

use crate::config::ConfigError;

/// Fleet mode: many sidecars sharing one budget ledger and one memory of answers on Redis.
/// Off (single-pod, sled only) while `redis_url` is empty.
#[derive(Clone, Deserialize)]
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
    /// Ledger lines kept in Redis as the fleet's audit trail (trimmed approximately).
    pub ledger_maxlen: u64,
    /// Days of the fleet's daily showback totals kept in Redis (what `Admin/Report` reads).
    pub report_days: u64,
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
            stream_maxlen: 100_000,
            ledger_maxlen: 1_000_000,
            report_days: 92,
        }
    }
}

/// As derived, but a password written into `redis_url` is shown as `***` (`cachet
/// check-config` prints the settings).
impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("redis_url", &redact(&self.redis_url))
            .field("password_env", &self.password_env)
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("lease_usd", &self.lease_usd)
            .field("stream_maxlen", &self.stream_maxlen)
            .field("ledger_maxlen", &self.ledger_maxlen)
            .field("report_days", &self.report_days)
            .finish()
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
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
            ("fleet.report_days", self.report_days),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_not_printed() {
        let config = FleetConfig {
            redis_url: "rediss://app:s3cret@redis.internal:6380/0".into(),
            ..FleetConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("rediss://app:***@redis.internal:6380/0"),
            "{printed}"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn fleet_mode_is_off_by_default_and_checked_when_on() {
        assert!(!FleetConfig::default().enabled());
        assert!(FleetConfig::default().validate().is_ok());
        let wrong = FleetConfig {
            redis_url: "http://redis:6379".into(),
            ..FleetConfig::default()
        };
        assert!(wrong
            .validate()
            .unwrap_err()
            .to_string()
            .contains("fleet.redis_url"));
        let no_prefix = FleetConfig {
            redis_url: "redis://redis:6379".into(),
            key_prefix: " ".into(),
            ..FleetConfig::default()
        };
        assert!(no_prefix.validate().is_err());
    }
}
