//! Soak: a bounded mixed load (new questions, repeats, client-side stores) runs while the
//! sidecar is killed with SIGKILL and restarted, round after round; then nothing acknowledged
//! may be missing: every acknowledged entry is served with its own answer, and the ledger holds
//! at least every acknowledged upstream call's tokens (and no call the provider never saw).
//!
//! `CACHET_SOAK_SECS` sets the total load time (default 90 s, in three rounds).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachet::proto::CacheStatus;
use common::*;

const WORKERS: usize = 6;
const ROUNDS: usize = 3;

/// What the clients were told, and so what must never be lost.
#[derive(Default)]
struct Acknowledged {
    /// Question → the answer acknowledged for it (by a stored miss or by `Store`).
    entries: HashMap<String, String>,
    /// Upstream calls answered to a client, and their tokens.
    upstream_calls: u64,
    upstream_tokens: u64,
    /// Calls that failed (the kills make these).
    failed: u64,
    hits: u64,
}

/// A cheap pseudo-random number: the load only needs variety, not statistics.
fn jitter(seed: u64) -> u64 {
    let nanos = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    (nanos ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 33
}

/// Counts a call cut off by a kill, and backs off a little: the sidecar is down.
async fn failed(acked: &Mutex<Acknowledged>) {
    acked.lock().unwrap().failed += 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// One client: until `stop`, sends new questions, repeats of acknowledged ones and stores.
async fn worker(
    sidecar_addr: std::net::SocketAddr,
    id: usize,
    round: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{sidecar_addr}"))
        .unwrap()
        .connect_lazy();
    let mut client = cachet::proto::cache_client::CacheClient::new(channel);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let unique = format!("worker {id} round {round} item {n}");
        let roll = jitter(n + id as u64 * 7919) % 10;
        let repeat = if roll < 3 {
            let acked = acked.lock().unwrap();
            let k = jitter(n) as usize % acked.entries.len().max(1);
            acked
                .entries
                .iter()
                .nth(k)
                .map(|(q, a)| (q.clone(), a.clone()))
        } else {
            None
        };
        if let Some((text, answer)) = repeat {
            match client.complete(question("acme", &text)).await {
                Ok(r) => {
                    let r = r.into_inner();
                    assert_eq!(r.status(), CacheStatus::HitExact, "a repeat of {text}");
                    assert_eq!(r.answer, answer, "a repeat was served another answer");
                    acked.lock().unwrap().hits += 1;
                }
                Err(_) => failed(&acked).await,
            }
        } else if roll < 8 {
            let text = format!("In the soak test, what does the code {unique} mean?");
            match client.complete(question("acme", &text)).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let mut acked = acked.lock().unwrap();
                    if r.status() == CacheStatus::Miss {
                        let usage = r.usage.unwrap();
                        acked.upstream_calls += 1;
                        acked.upstream_tokens += u64::from(usage.total_tokens);
                        assert!(!r.entry_id.is_empty());
                        acked.entries.insert(text, r.answer);
                    } else {
                        acked.hits += 1;
                    }
                }
                Err(_) => failed(&acked).await,
            }
        } else {
            let text = format!("Stored by the client: how is {unique} handled?");
            let answer = format!("client-side answer for {unique}");
            let request = question("acme", &text);
            match client.store(store_of(&request, &answer, 40)).await {
                Ok(_) => {
                    acked.lock().unwrap().entries.insert(text, answer);
                }
                Err(_) => failed(&acked).await,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_across_kills_under_load() {
    let total_secs: u64 = std::env::var("CACHET_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let round_time = Duration::from_secs(total_secs) / ROUNDS as u32;
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let mut sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let acked = Arc::new(Mutex::new(Acknowledged::default()));

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..WORKERS)
            .map(|id| {
                tokio::spawn(worker(
                    sidecar.addr,
                    id,
                    round,
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                ))
            })
            .collect();
        // Each round but the last ends in SIGKILL with the workers mid-request; the last in
        // SIGTERM once they stopped. A round's length varies so kills land anywhere.
        let jittered = round_time.mul_f64(0.75 + (jitter(round as u64) % 50) as f64 / 100.0);
        tokio::time::sleep(jittered).await;
        let last = round + 1 == ROUNDS;
        if !last {
            sidecar = sidecar.restart_after(Stop::Kill9).await;
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.await.expect("a worker saw a wrong answer");
        }
        if last {
            sidecar = sidecar.restart_after(Stop::Term).await;
        }
    }

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.entries.len() > 50,
        "the load did little: {} entries",
        acked.entries.len()
    );
    assert!(acked.failed > 0, "the kills interrupted nothing");
    let mut client = sidecar.client().await;
    for (text, answer) in &acked.entries {
        let found = client
            .lookup(lookup_of(&question("acme", text)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.status(), CacheStatus::HitExact, "lost: {text}");
        assert_eq!(&found.answer, answer, "changed: {text}");
    }

    let report = sidecar.report(1).await;
    let totals = report.totals.unwrap();
    let metered_tokens = totals.prompt_tokens + totals.completion_tokens;
    // Calls cut off by a kill after the provider answered are metered but never acknowledged:
    // the ledger may hold more than the clients saw, never less, and never more than the
    // provider served.
    assert!(
        totals.upstream_calls >= acked.upstream_calls,
        "{} metered < {} acknowledged",
        totals.upstream_calls,
        acked.upstream_calls
    );
    assert!(totals.upstream_calls <= upstream.calls());
    assert!(
        metered_tokens >= acked.upstream_tokens,
        "{metered_tokens} metered < {} acknowledged",
        acked.upstream_tokens
    );
    eprintln!(
        "soak: {} entries acknowledged, {} upstream calls acknowledged ({} metered, {} served by the provider), {} hits, {} calls failed while the sidecar was down",
        acked.entries.len(),
        acked.upstream_calls,
        totals.upstream_calls,
        upstream.calls(),
        acked.hits,
        acked.failed
    );
}
