//! The loop breaker: a kill-switch for agents stuck in a loop.
//!
//! A runaway agent resends nearly the same prompt again and again: a retry counter, a
//! timestamp or a growing tool log differs each time, so the cache misses and every round
//! costs an upstream call. The breaker remembers, per job, the embeddings of its recent
//! upstream-bound prompts; when a job sends `repeats` prompts this similar to each other within
//! the window, it trips and refuses that job until an operator resets it. The trip is kept in
//! sled, so a restart does not release a runaway job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use std::sync::Arc;

use crate::alert::{Alerts, Kind};
use crate::config::LoopBreakerConfig;
use crate::embed::similarity;
use crate::fleet::{Event, Fleet, FleetError};
use crate::store::{now_millis, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    #[error(
        "job `{job}` is stopped by the loop breaker: it sent {repeats} near-identical prompts upstream \
         within {window_secs} s. Fix the agent, then have an operator reset the job (cachet.v1.Admin/ResetJob)"
    )]
    Tripped {
        job: String,
        repeats: usize,
        window_secs: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

type Recent = VecDeque<(u64, Vec<f32>)>;

fn trip_key(job: &str) -> String {
    format!("tripped-job/{job}")
}

pub struct LoopBreaker {
    config: LoopBreakerConfig,
    alerts: Arc<Alerts>,
    store: Store,
    /// Per job: when it sent each recent upstream-bound prompt, and its embedding.
    recent: Mutex<HashMap<String, Recent>>,
    tripped: Mutex<HashSet<String>>,
    /// In fleet mode a job stopped on one sidecar is stopped on all (and released on all).
    fleet: Option<Arc<Fleet>>,
}

impl LoopBreaker {
    /// Loads the jobs tripped before a restart.
    pub fn load(
        config: LoopBreakerConfig,
        store: Store,
        alerts: Arc<Alerts>,
        fleet: Option<Arc<Fleet>>,
    ) -> Result<Self, StoreError> {
        let tripped = store
            .meta_keys("tripped-job/")?
            .into_iter()
            .map(|key| key["tripped-job/".len()..].to_string())
            .collect();
        Ok(Self {
            config,
            alerts,
            store,
            recent: Mutex::new(HashMap::new()),
            tripped: Mutex::new(tripped),
            fleet,
        })
    }

    /// Lets a job's upstream-bound prompt through, or refuses it. `vector` is the prompt's
    /// embedding (`None` when it was too long to embed: such prompts are not compared).
    pub fn check(
        &self,
        job: &str,
        vector: Option<&[f32]>,
        now_ms: u64,
    ) -> Result<(), BreakerError> {
        if job.is_empty() || self.config.repeats == 0 {
            return Ok(());
        }
        let tripped = || BreakerError::Tripped {
            job: job.to_string(),
            repeats: self.config.repeats,
            window_secs: self.config.window_secs,
        };
        if self.tripped.lock().expect("breaker poisoned").contains(job) {
            return Err(tripped());
        }
        let Some(vector) = vector else { return Ok(()) };
        let mut recent = self.recent.lock().expect("breaker poisoned");
        let history = recent.entry(job.to_string()).or_default();
        let window_start = now_ms.saturating_sub(self.config.window_secs * 1000);
        history.retain(|(at, _)| *at >= window_start);
        let alike = history
            .iter()
            .filter(|(_, earlier)| similarity(earlier, vector) >= self.config.similarity)
            .count();
        if alike + 1 >= self.config.repeats {
            history.clear();
            drop(recent);
            self.stop(job, true)?;
            self.alerts.raise(
                Kind::LoopBreaker,
                format!("job `{job}`"),
                "",
                format!(
                    "job `{job}` sent {} near-identical prompts upstream within {} s; stopped until an operator resets it",
                    self.config.repeats, self.config.window_secs
                ),
            );
            return Err(tripped());
        }
        Self::push(history, self.config.repeats, now_ms, vector);
        drop(recent);
        if let Some(fleet) = &self.fleet {
            // The job's other sidecars weigh this prompt too: one agent is one job fleet-wide.
            fleet.publish(&Event::JobPrompt {
                job: job.to_string(),
                at_ms: now_ms,
                vector: vector.to_vec(),
            })?;
        }
        Ok(())
    }

    fn push(history: &mut Recent, repeats: usize, at_ms: u64, vector: &[f32]) {
        history.push_back((at_ms, vector.to_vec()));
        while history.len() > repeats.max(1) * 4 {
            history.pop_front();
        }
    }

    /// Adds a prompt a job sent upstream through another sidecar to its history here.
    pub fn remember(&self, job: &str, at_ms: u64, vector: &[f32]) {
        if self.config.repeats == 0 {
            return;
        }
        let mut recent = self.recent.lock().expect("breaker poisoned");
        let history = recent.entry(job.to_string()).or_default();
        Self::push(history, self.config.repeats, at_ms, vector);
    }

    /// Stops a job, durably; `publish`: tripped here, so the fleet is told too.
    pub fn stop(&self, job: &str, publish: bool) -> Result<(), BreakerError> {
        self.store
            .set_meta(&trip_key(job), &now_millis().to_be_bytes())?;
        if let (true, Some(fleet)) = (publish, &self.fleet) {
            fleet.publish(&Event::JobTripped {
                job: job.to_string(),
            })?;
        }
        self.store.flush()?; // rare, and a restart must not release the job
        self.tripped
            .lock()
            .expect("breaker poisoned")
            .insert(job.to_string());
        Ok(())
    }

    /// Releases a tripped job, on every sidecar of the fleet. Returns whether it was tripped.
    pub fn reset(&self, job: &str) -> Result<bool, BreakerError> {
        if let Some(fleet) = &self.fleet {
            fleet.publish(&Event::JobReset {
                job: job.to_string(),
            })?;
        }
        Ok(self.release(job)?)
    }

    /// Releases a tripped job here. Returns whether it was tripped.
    pub fn release(&self, job: &str) -> Result<bool, StoreError> {
        self.store.remove_meta(&trip_key(job))?;
        self.recent.lock().expect("breaker poisoned").remove(job);
        Ok(self.tripped.lock().expect("breaker poisoned").remove(job))
    }
}
