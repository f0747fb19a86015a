//! The shared memory of answers: a Redis Stream of stores, invalidations and trips.
//!
//! Each event names the sidecar that published it; followers skip their own. Applying an event
//! is idempotent (a store whose exact key already holds an answer as new or newer is skipped),
//! so reading an event twice, after a crash between applying it and committing the cursor, is
//! harmless. Entries carry their scope, which carries the tenant: nothing crosses scopes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};

use super::link::BLOCK_MS;
use super::outbox::Outgoing;
use super::{Fleet, FleetError};
use crate::scope::{ScopeKey, TextHash};
use crate::store::{now_millis, StoredEntry};

/// A change one sidecar made that the others apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// An answer stored in a scope (served by the model `model` names in listings).
    Stored {
        entry: Box<StoredEntry>,
        model: String,
    },
    /// Entries removed by an operator.
    Invalidated { tenant: String, what: Invalidation },
    /// A prompt a job sent upstream, for the loop breakers of the other sidecars.
    JobPrompt {
        job: String,
        at_ms: u64,
        vector: Vec<f32>,
    },
    /// A job stopped by the loop breaker.
    JobTripped { job: String },
    /// A stopped job released by an operator.
    JobReset { job: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Invalidation {
    /// One chat's answer, if stored no later than `stored_before_ms` (a newer answer stays).
    Chat {
        scope: ScopeKey,
        exact_key: TextHash,
        stored_before_ms: u64,
    },
    Scope(ScopeKey),
    WholeTenant,
}

/// What applies other sidecars' events locally: the cache.
pub trait Replica: Send + Sync + 'static {
    fn apply(&self, event: Event) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Default)]
pub struct FollowerStats {
    pub lag_ms: AtomicU64,
    pub applied: AtomicU64,
}

const CURSOR_KEY: &str = "fleet/stream-cursor";

impl Fleet {
    fn stream_key(&self) -> String {
        self.key("answers")
    }

    /// Queues an event for the other sidecars; durable with the caller's next commit.
    pub fn publish(&self, event: &Event) -> Result<(), FleetError> {
        let bytes = postcard::to_allocvec(event).expect("in-memory serialisation cannot fail");
        Ok(self.outbox.push(&Outgoing::Event(bytes))?)
    }

    pub(super) async fn send_event(&self, bytes: &[u8]) -> Result<(), FleetError> {
        let key = self.stream_key();
        let maxlen = self.config.stream_maxlen;
        let node = self.node.clone();
        self.link
            .run("publishing to the stream", |mut c| async move {
                redis::cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(maxlen)
                    .arg("*")
                    .arg("node")
                    .arg(&node)
                    .arg("ev")
                    .arg(bytes)
                    .query_async::<String>(&mut c)
                    .await
            })
            .await
            .map(drop)
    }

    fn cursor(&self) -> String {
        self.store
            .get_meta(CURSOR_KEY)
            .ok()
            .flatten()
            .map_or_else(|| "0".into(), |b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Reads what follows `cursor`, waiting up to `block_ms` for it (0: no wait).
    async fn read_after(&self, cursor: &str, block_ms: u64) -> Result<StreamReadReply, FleetError> {
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(512);
        if block_ms > 0 {
            command.arg("BLOCK").arg(block_ms);
        }
        command.arg("STREAMS").arg(self.stream_key()).arg(cursor);
        let mut connection = self.link.follower();
        let wait = Duration::from_millis(block_ms + self.config.command_timeout_ms);
        match tokio::time::timeout(
            wait,
            command.query_async::<Option<StreamReadReply>>(&mut connection),
        )
        .await
        {
            Ok(Ok(reply)) => Ok(reply.unwrap_or_default()),
            Ok(Err(err)) => Err(FleetError::Redis(format!("following the stream: {err}"))),
            Err(_) => Err(FleetError::Redis("following the stream: no answer".into())),
        }
    }

    /// Applies a batch of others' events and saves the cursor. Returns how many were read.
    async fn apply_batch<R: Replica>(&self, replica: &R, reply: StreamReadReply) -> usize {
        let mut read = 0;
        let mut cursor = None;
        for id in reply.keys.into_iter().flat_map(|k| k.ids) {
            read += 1;
            let own = id.get::<String>("node").is_some_and(|n| n == self.node);
            if !own {
                match id
                    .get::<Vec<u8>>("ev")
                    .and_then(|bytes| postcard::from_bytes::<Event>(&bytes).ok())
                {
                    Some(event) => match replica.apply(event).await {
                        Ok(()) => {
                            self.follower.applied.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => {
                            tracing::warn!(id = %id.id, %err, "fleet: cannot apply an event")
                        }
                    },
                    None => {
                        tracing::warn!(id = %id.id, "fleet: skipping an event that does not decode")
                    }
                }
                let published_ms = id
                    .id
                    .split('-')
                    .next()
                    .and_then(|ms| ms.parse::<u64>().ok());
                if let Some(ms) = published_ms {
                    self.follower
                        .lag_ms
                        .store(now_millis().saturating_sub(ms), Ordering::Relaxed);
                }
            }
            cursor = Some(id.id);
        }
        if let Some(cursor) = cursor {
            // Committed like a store (group commit, as `storage.sync` asks), so a sidecar killed
            // later resumes after what it applied instead of re-reading it.
            let saved = match self.store.set_meta(CURSOR_KEY, cursor.as_bytes()) {
                Ok(()) => self.store.commit().await,
                Err(err) => Err(err),
            };
            if let Err(err) = saved {
                tracing::warn!(%err, "fleet: cannot save the stream cursor");
            }
        }
        read
    }
}

/// Applies what the stream holds beyond this sidecar's cursor, for at most `limit`, before it
/// reports SERVING. A sidecar that cannot reach Redis starts with what it has.
pub async fn catch_up<R: Replica>(fleet: &Fleet, replica: &Weak<R>, limit: Duration) {
    let started = Instant::now();
    let mut applied = 0;
    while started.elapsed() < limit {
        let Some(replica) = replica.upgrade() else {
            return;
        };
        match fleet.read_after(&fleet.cursor(), 0).await {
            Ok(reply) => match fleet.apply_batch(replica.as_ref(), reply).await {
                0 => break,
                n => applied += n,
            },
            Err(err) => {
                tracing::warn!(%err, "fleet: cannot catch up with the stream at start; serving what is local");
                return;
            }
        }
    }
    tracing::info!(
        events = applied,
        ms = started.elapsed().as_millis() as u64,
        "fleet: caught up with the stream"
    );
}

/// Follows the stream for as long as the replica lives.
pub fn spawn_follower<R: Replica>(fleet: Arc<Fleet>, replica: Weak<R>) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let Some(target) = replica.upgrade() else {
                break;
            };
            match fleet.read_after(&fleet.cursor(), BLOCK_MS).await {
                Ok(reply) => {
                    failing = false;
                    fleet.apply_batch(target.as_ref(), reply).await;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(%err, "fleet: cannot follow the stream; retrying");
                        failing = true;
                    }
                    drop(target);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    });
}
