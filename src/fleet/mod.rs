//! Fleet mode: many sidecars, one budget and one memory of answers, on Redis.
//!
//! Off unless `fleet.redis_url` is set; a single sidecar keeps everything in sled. With it on:
//!
//! - **Answers** (`stream`): each store, invalidation and loop-breaker trip is written to a
//!   sled outbox in the same commit as the change itself, then published to a Redis Stream.
//!   Every sidecar follows that stream and applies what others published to its own sled and
//!   HNSW graphs, remembering in sled how far it got, so a restart resumes and a new sidecar
//!   catches up from the start of the stream.
//! - **Budgets** (`ledger`): reservations and spend per budget and period are counters in
//!   Redis, checked and changed atomically by Lua scripts, so the fleet shares every ceiling.
//!   Each spend carries a unique id; Redis counts an id once, so replays never double count.
//! - **Faults**: while Redis is unreachable, hits are served from the local index, stores and
//!   spend wait in the outbox, and upstream spend continues only within `fleet.lease_usd`.
//!
//! Budget and cache code see only [`Fleet`]; Redis details stay in this module.

mod config;
mod ledger;
mod link;
mod outbox;
mod stream;

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use config::FleetConfig;
pub use ledger::{Account, Reservation, Verdict};
pub use stream::{Event, Invalidation, Replica};

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    #[error("fleet configuration: {0}")]
    Config(String),
    #[error("the fleet's Redis is unreachable or failed ({0})")]
    Redis(String),
    #[error(
        "the fleet's Redis is unreachable and this sidecar has used its local lease of ${lease:.6} \
         (fleet.lease_usd) for spending on its own; upstream calls resume when Redis answers \
         again (cache hits are still served)"
    )]
    LeaseExhausted { lease: f64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("fleet data is corrupt: {0}")]
    Corrupt(String),
}

impl FleetError {
    /// The gRPC code a client gets: Redis trouble is transient, so UNAVAILABLE.
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::Redis(_) | Self::LeaseExhausted { .. } => tonic::Code::Unavailable,
            Self::Config(_) | Self::Store(_) | Self::Corrupt(_) => tonic::Code::Internal,
        }
    }
}

/// This sidecar's share of the fleet's state.
pub struct Fleet {
    config: FleetConfig,
    link: link::Link,
    outbox: outbox::Outbox,
    ledger: ledger::Ledger,
    follower: stream::FollowerStats,
    /// Who this sidecar is in the stream (kept in sled, so it stays the same across restarts).
    node: String,
    store: Store,
}

const NODE_KEY: &str = "fleet/node";

impl Fleet {
    /// Fleet mode as configured: `None` when it is off.
    /// `hold` is how long a reservation counts when its sidecar never settles it (it died
    /// mid-call): longer than any upstream call.
    pub fn open(
        config: &FleetConfig,
        store: &Store,
        hold: std::time::Duration,
    ) -> Result<Option<Arc<Self>>, FleetError> {
        if !config.enabled() {
            return Ok(None);
        }
        let node = match store.get_meta(NODE_KEY)? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                let seed = format!(
                    "{}-{}-{:?}",
                    std::process::id(),
                    crate::store::now_millis(),
                    store.next_id()?
                );
                let node = blake3::hash(seed.as_bytes()).to_hex()[..12].to_string();
                store.set_meta(NODE_KEY, node.as_bytes())?;
                store.flush()?;
                node
            }
        };
        let outbox = outbox::Outbox::open(store)?;
        let ledger = ledger::Ledger::new(config, outbox.unsynced_spend()?, hold);
        let fleet = Self {
            link: link::Link::new(config)?,
            config: config.clone(),
            outbox,
            ledger,
            follower: stream::FollowerStats::default(),
            node,
            store: store.clone(),
        };
        tracing::info!(node = %fleet.node, prefix = %config.key_prefix, "fleet mode on");
        Ok(Some(Arc::new(fleet)))
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.config.key_prefix)
    }

    /// Catches up with the stream (for at most `catch_up`), then follows it and publishes the
    /// outbox in the background for as long as `replica` lives.
    pub async fn start<R: Replica>(
        self: &Arc<Self>,
        replica: std::sync::Weak<R>,
        catch_up: std::time::Duration,
    ) {
        stream::catch_up(self, &replica, catch_up).await;
        outbox::spawn_publisher(Arc::clone(self));
        stream::spawn_follower(Arc::clone(self), replica);
    }

    /// Prometheus lines for the fleet: stream lag, ledger round trips, lease use, outbox.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let rt = &self.link.round_trips;
        let lines = [
            (
                "cachet_fleet_stream_lag_ms",
                "gauge",
                "Age of the last event applied from the shared stream when it was applied, in ms.",
                self.follower.lag_ms.load(Ordering::Relaxed) as f64,
            ),
            (
                "cachet_fleet_stream_applied_total",
                "counter",
                "Events of other sidecars applied from the shared stream.",
                self.follower.applied.load(Ordering::Relaxed) as f64,
            ),
            (
                "cachet_fleet_outbox_pending",
                "gauge",
                "Changes and spend waiting to be published to Redis.",
                self.outbox.pending() as f64,
            ),
            (
                "cachet_fleet_ledger_rtt_last_seconds",
                "gauge",
                "The last Redis round trip.",
                rt.last_us.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "cachet_fleet_redis_failures_total",
                "counter",
                "Redis commands that failed or timed out.",
                rt.failures.load(Ordering::Relaxed) as f64,
            ),
            (
                "cachet_fleet_lease_used_usd",
                "gauge",
                "Spend admitted while Redis was unreachable and not yet reconciled, in US dollars.",
                crate::meter::dollars(self.ledger.lease_used_micro()),
            ),
            (
                "cachet_fleet_lease_usd",
                "gauge",
                "The local lease (fleet.lease_usd).",
                self.config.lease_usd,
            ),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let name = "cachet_fleet_ledger_rtt_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Redis round trips (budget scripts, publishing).\n# TYPE {name} summary\n\
             {name}_sum {}\n{name}_count {}",
            rt.total_us.load(Ordering::Relaxed) as f64 / 1e6,
            rt.count.load(Ordering::Relaxed)
        );
    }
}
