//! Fleet mode against a real `redis-server` (started here on a free loopback port, append-only
//! with `appendfsync everysec`, as the README advises): `cargo bench --bench fleet`.
//!
//! - the latency a shared budget check adds to an upstream-bound request (RESERVE before the
//!   call, SETTLE after it; four budgets: organisation, department, workflow, job);
//! - the throughput of one Redis for N sidecars, each with 16 requests in flight;
//! - the delay from one sidecar's store to another sidecar having applied it;
//! - the memory Redis needs per shared answer and per ledger line.
//!
//! Each "sidecar" is the library's `Fleet` with its own sled folder and Redis connections, as
//! in `cachet serve`; no model is needed. Sized to run in about a minute.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachet::config::StorageConfig;
use cachet::fleet::{Account, Event, Fleet, FleetConfig, Replica, Verdict};
use cachet::meter::Charge;
use cachet::scope::ScopeKey;
use cachet::store::{now_millis, Labels, Store, StoredEntry, Usage};

/// The server, and its folder (removed after it).
struct RedisServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> (RedisServer, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (scripts/test.sh installs it)");
    std::thread::sleep(Duration::from_millis(300));
    (
        RedisServer { child, _dir: dir },
        format!("redis://127.0.0.1:{port}"),
    )
}

/// One sidecar's share of the fleet, with its own sled folder.
fn sidecar(url: &str, prefix: &str) -> (Arc<Fleet>, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StorageConfig::default()).unwrap();
    let config = FleetConfig {
        redis_url: url.into(),
        key_prefix: prefix.into(),
        ..FleetConfig::default()
    };
    let fleet = Fleet::open(&config, &store, Duration::from_secs(120))
        .unwrap()
        .expect("fleet mode is on");
    (fleet, store, dir)
}

fn accounts(job: usize) -> Vec<Account> {
    let now = now_millis();
    ["organisation", "department:support", "workflow:triage"]
        .iter()
        .map(|n| n.to_string())
        .chain([format!("job:agent-{job}")])
        .map(|name| Account {
            name,
            period_start_ms: now - now % 86_400_000,
            period_end_ms: now - now % 86_400_000 + 86_400_000,
            target_micro: Some(u64::MAX / 4),
            limit_micro: Some(u64::MAX / 2),
            max_calls: None,
            max_tokens: None,
        })
        .collect()
}

fn charge() -> Charge {
    Charge {
        at_ms: now_millis(),
        tenant: "default".into(),
        labels: Labels {
            department: "support".into(),
            workflow: "triage".into(),
            job_id: "agent".into(),
        },
        tier: "small".into(),
        model: "gpt-4o-mini".into(),
        usage: Usage {
            prompt_tokens: 30,
            completion_tokens: 70,
            total_tokens: 100,
        },
        cost_micro_usd: 47,
        tokens_saved: 0,
        saved_micro_usd: 0,
    }
}

/// One upstream-bound request's budget traffic: (reserve, settle) durations.
async fn budget_round(fleet: &Fleet, job: usize) -> (Duration, Duration) {
    let accounts = accounts(job);
    let started = Instant::now();
    let Verdict::Admitted(reservation) = fleet.reserve(&accounts, (80, 130), None).await.unwrap()
    else {
        panic!("the bench's budgets are never reached")
    };
    let reserved = started.elapsed();
    let started = Instant::now();
    fleet.settle(reservation, Some(&charge())).await.unwrap();
    (reserved, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "p50 {:.3} ms, p99 {:.3} ms",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    )
}

/// Records when each answer arrives.
struct Arrivals(Mutex<Vec<(String, Instant)>>);

impl Replica for Arrivals {
    async fn apply(&self, event: Event) -> Result<(), String> {
        if let Event::Stored { entry, .. } = event {
            self.0.lock().unwrap().push((entry.answer, Instant::now()));
        }
        Ok(())
    }
}

fn entry(n: usize) -> StoredEntry {
    StoredEntry {
        scope: ScopeKey([7; 16]),
        tenant: "default".into(),
        exact_key: blake3::hash(&n.to_le_bytes()).as_bytes()[..16]
            .try_into()
            .unwrap(),
        query: format!("question {n}"),
        context: String::new(),
        context_hash: [0; 16],
        query_vector: Some(vec![0.05; 384]),
        context_vector: None,
        answer: format!("answer {n}"),
        answered_by: "gpt-4o-mini".into(),
        usage: Usage::default(),
        labels: Labels::default(),
        created_at: now_millis(),
        expires_at: None,
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_redis, url) = redis_server();
    runtime.block_on(async {
        // 1. Latency of a shared budget check, one request at a time.
        let (fleet, _store, _dir) = sidecar(&url, "latency");
        for _ in 0..200 {
            budget_round(&fleet, 0).await;
        }
        let (mut reserve, mut settle) = (Vec::new(), Vec::new());
        for i in 0..2_000 {
            let (r, s) = budget_round(&fleet, i % 50).await;
            reserve.push(r);
            settle.push(s);
        }
        println!(
            "shared budget check (RESERVE, 4 budgets): {}",
            summary(reserve)
        );
        println!(
            "settle after the call (SETTLE, 4 budgets): {}",
            summary(settle)
        );

        // 2. Throughput of one Redis for N sidecars, 16 requests in flight each.
        for sidecars in [1usize, 2, 4, 8] {
            let fleets: Vec<_> = (0..sidecars).map(|_| sidecar(&url, "throughput")).collect();
            let deadline = Instant::now() + Duration::from_secs(4);
            let mut tasks = Vec::new();
            for (s, (fleet, _, _)) in fleets.iter().enumerate() {
                for worker in 0..16 {
                    let fleet = Arc::clone(fleet);
                    tasks.push(tokio::spawn(async move {
                        let mut done = 0u64;
                        while Instant::now() < deadline {
                            budget_round(&fleet, s * 16 + worker).await;
                            done += 1;
                        }
                        done
                    }));
                }
            }
            let mut rounds = 0;
            for task in tasks {
                rounds += task.await.unwrap();
            }
            println!(
                "{sidecars} sidecars x 16 in flight: {:.0} budgeted requests/s ({:.0} scripts/s)",
                rounds as f64 / 4.0,
                rounds as f64 / 2.0
            );
        }

        // 3. Propagation: stored on A, applied on B.
        let (a, _store_a, _dir_a) = sidecar(&url, "propagation");
        let (b, _store_b, _dir_b) = sidecar(&url, "propagation");
        let arrivals = Arc::new(Arrivals(Mutex::new(Vec::new())));
        a.start(std::sync::Weak::<Arrivals>::new(), Duration::ZERO)
            .await;
        b.start(Arc::downgrade(&arrivals), Duration::from_secs(1))
            .await;
        let mut delays = Vec::new();
        for n in 0..300 {
            let sent = Instant::now();
            a.publish(&Event::Stored {
                entry: Box::new(entry(n)),
                model: "gpt-4o-mini".into(),
            })
            .unwrap();
            let expected = format!("answer {n}");
            loop {
                let arrived = arrivals
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(answer, _)| *answer == expected)
                    .map(|(_, at)| *at);
                if let Some(at) = arrived {
                    delays.push(at - sent);
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        println!(
            "propagation A -> B (publish to applied): {}",
            summary(delays)
        );
    });
    // 4. What each command cost Redis itself (its one thread's time, whatever else the
    //    machine is doing), and what it holds per shared answer and per ledger line.
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis)
        .unwrap();
    for line in stats.lines().filter(|l| {
        ["evalsha", "xadd", "xread"]
            .iter()
            .any(|c| l.starts_with(&format!("cmdstat_{c}:")))
    }) {
        println!("Redis {line}");
    }
    for (key, what) in [
        (
            "propagation:answers",
            "shared answer (384-dim vector, short texts)",
        ),
        ("latency:ledger", "ledger line"),
    ] {
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query(&mut redis)
            .unwrap();
        let count: u64 = redis::cmd("XLEN").arg(key).query(&mut redis).unwrap();
        println!(
            "Redis memory per {what}: {} bytes ({count} in {key})",
            bytes / count.max(1)
        );
    }
}
