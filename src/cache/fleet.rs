//! The cache's side of fleet mode: applying what other sidecars stored, removed or stopped,
//! and the fleet-wide showback.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{Cache, CacheError, Origin};
use crate::fleet::{Event, Replica};
use crate::meter::Report;

/// Longest a starting sidecar spends catching up with the stream before it reports SERVING
/// (it goes on catching up while serving).
const CATCH_UP: Duration = Duration::from_secs(30);

impl Replica for Cache {
    async fn apply(&self, event: Event) -> Result<(), String> {
        match event {
            Event::Stored { entry, model } => {
                // Only tenants served here; and a newer answer to the same chat stays.
                if !self.config.tenants.contains_key(&entry.tenant) {
                    return Ok(());
                }
                let current = self
                    .store
                    .get_exact(&entry.scope, &entry.exact_key)
                    .map_err(|e| e.to_string())?;
                if current.is_some_and(|(_, c)| c.created_at >= entry.created_at) {
                    return Ok(());
                }
                self.put(&entry, &model, Origin::Fleet)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Event::Invalidated { tenant, what } => self
                .remove_matching(&tenant, &what)
                .map(drop)
                .map_err(|e| e.to_string()),
            Event::JobPrompt { job, at_ms, vector } => {
                self.breaker.remember(&job, at_ms, &vector);
                Ok(())
            }
            Event::JobTripped { job } => {
                info!(
                    job,
                    "fleet: job stopped by the loop breaker of another sidecar"
                );
                self.breaker.stop(&job, false).map_err(|e| e.to_string())
            }
            Event::JobReset { job } => {
                info!(job, "fleet: job released on another sidecar");
                self.breaker
                    .release(&job)
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

impl Cache {
    /// In fleet mode: catches up with what other sidecars stored, then follows them and
    /// publishes this sidecar's changes in the background. Nothing on a single pod.
    pub async fn start_fleet(self: &Arc<Self>) {
        if let Some(fleet) = &self.fleet {
            fleet.start(Arc::downgrade(self), CATCH_UP).await;
        }
    }

    /// Showback over the last `days` days: of the whole fleet in fleet mode, else this sidecar's.
    pub async fn report(&self, days: u32) -> Result<Report, CacheError> {
        match &self.fleet {
            Some(fleet) => Ok(fleet.report(days).await?),
            None => Ok(self.meter.report(days)?),
        }
    }

    /// Prometheus lines of fleet mode (none on a single pod).
    pub fn render_fleet_metrics(&self, out: &mut String) {
        if let Some(fleet) = &self.fleet {
            fleet.render_metrics(out);
        }
    }
}
