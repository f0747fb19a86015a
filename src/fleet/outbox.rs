//! The outbox: what this sidecar owes Redis, kept in sled until Redis has it.
//!
//! Stores, invalidations and trips are put here in the same sled commit as the change itself;
//! spend lands here when Redis could not take it at once. A publisher task sends the items in
//! order and removes each one Redis accepted, so nothing acknowledged is lost to an outage or
//! a restart, and the ledger's charge ids make a resend count once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::ledger::SpendRecord;
use super::{Fleet, FleetError};
use crate::store::{Store, StoreError};

#[derive(Debug, Serialize, Deserialize)]
pub enum Outgoing {
    /// An encoded [`super::Event`] for the shared stream.
    Event(Vec<u8>),
    /// Spend Redis has not counted yet.
    Spend(SpendRecord),
}

pub struct Outbox {
    tree: sled::Tree,
    store: Store,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            tree: store.tree("fleet_outbox")?,
            store: store.clone(),
            wake: Arc::new(Notify::new()),
        })
    }

    /// Queues an item; durable with the caller's next commit.
    pub fn push(&self, item: &Outgoing) -> Result<(), StoreError> {
        let seq = self.store.next_id()?;
        let bytes = postcard::to_allocvec(item).expect("in-memory serialisation cannot fail");
        self.tree.insert(seq.to_be_bytes(), bytes)?;
        self.wake.notify_one();
        Ok(())
    }

    pub fn pending(&self) -> usize {
        self.tree.len()
    }

    /// The oldest items, in order.
    fn front(&self, limit: usize) -> Result<Vec<(sled::IVec, Option<Outgoing>)>, StoreError> {
        self.tree
            .iter()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k, postcard::from_bytes(&v).ok()))
            })
            .collect()
    }

    /// Spend queued for Redis (after a restart: what the lease already covers).
    pub fn unsynced_spend(&self) -> Result<u64, StoreError> {
        Ok(self
            .front(usize::MAX)?
            .iter()
            .filter_map(|(_, item)| match item {
                Some(Outgoing::Spend(record)) => Some(record.cost_micro),
                _ => None,
            })
            .sum())
    }
}

/// How long the publisher waits before trying Redis again after a failure.
const RETRY: Duration = Duration::from_millis(250);

/// Sends the outbox to Redis whenever something is queued, and retries while Redis is away.
pub fn spawn_publisher(fleet: Arc<Fleet>) {
    let weak = Arc::downgrade(&fleet);
    drop(fleet);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let Some(fleet) = weak.upgrade() else { break };
            match drain(&fleet).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("fleet: Redis reachable again; outbox published");
                        failing = false;
                    }
                    let wake = Arc::clone(&fleet.outbox.wake);
                    drop(fleet);
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(%err, "fleet: cannot publish to Redis; changes and spend wait in the outbox");
                        failing = true;
                    }
                    drop(fleet);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}

async fn drain(fleet: &Fleet) -> Result<(), FleetError> {
    loop {
        let batch = fleet.outbox.front(256)?;
        if batch.is_empty() {
            return Ok(());
        }
        for (key, item) in batch {
            match item {
                Some(Outgoing::Event(bytes)) => fleet.send_event(&bytes).await?,
                Some(Outgoing::Spend(record)) => {
                    fleet.send_spend(&record).await?;
                    fleet.ledger.reconciled(record.cost_micro);
                }
                None => tracing::warn!("fleet: dropping an outbox item that does not decode"),
            }
            fleet.outbox.tree.remove(key).map_err(StoreError::from)?;
        }
    }
}
