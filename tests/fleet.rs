//! Fleet mode: sidecars sharing answers, budgets and kill-switches through a real
//! `redis-server` on loopback, and what happens when Redis goes away.

mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use cachet::proto::{
    invalidate_request, CacheStatus, CompleteRequest, InvalidateRequest, Labels, ReportRequest,
    ResetJobRequest, UsageTotals,
};
use cachet::simulator::Simulator;
use common::*;
use tonic::Code;

/// Polls `check` every 20 ms until it holds; how long that took, or `None` after `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A fleet of sidecars on one Redis and one simulated provider.
struct Fleet {
    redis: Redis,
    upstream: Simulator,
    config: String,
    dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// `fleet_keys` go into the `[fleet]` section, `extra` after it.
    async fn new(prefix: &str, fleet_keys: &str, extra: &str) -> Self {
        let redis = Redis::start();
        let config = format!("{}{fleet_keys}\n{extra}", redis.fleet_config(prefix));
        Self {
            redis,
            upstream: simulator().await,
            config,
            dirs: Vec::new(),
        }
    }

    /// Starts one more sidecar, with a data folder of its own.
    async fn sidecar(&mut self) -> Sidecar {
        self.sidecar_with("").await
    }

    /// Starts one more sidecar, with `extra` config of its own.
    async fn sidecar_with(&mut self, extra: &str) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("{}\n{extra}", self.config);
        let sidecar = Sidecar::start_with(dir.path(), &self.upstream.base_url(), &config).await;
        self.dirs.push(dir);
        sidecar
    }
}

/// Stores `answer` for `request` through `sidecar`; the entry id.
async fn store_on(sidecar: &Sidecar, request: &CompleteRequest, answer: &str) -> String {
    sidecar
        .client()
        .await
        .store(store_of(request, answer, 20))
        .await
        .unwrap()
        .into_inner()
        .entry_id
}

async fn status_of(sidecar: &Sidecar, request: &CompleteRequest) -> CacheStatus {
    sidecar
        .client()
        .await
        .lookup(lookup_of(request))
        .await
        .unwrap()
        .into_inner()
        .status()
}

async fn fleet_totals(sidecar: &Sidecar) -> UsageTotals {
    sidecar
        .admin()
        .await
        .report(as_admin(ReportRequest { days: 1 }))
        .await
        .unwrap()
        .into_inner()
        .totals
        .unwrap()
}

/// A free loopback port for a sidecar's metrics.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One unlabelled metric's value from a sidecar's `/metrics`.
async fn metric(port: u16, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

/// Questions unlike each other, so that a job sending them never trips a loop breaker itself.
const UNALIKE: [&str; 12] = [
    "What is the capital of Peru?",
    "How do volcanoes form?",
    "Explain photosynthesis in one sentence.",
    "Who wrote Don Quixote?",
    "Convert 30 Celsius to Fahrenheit.",
    "Suggest a name for a grey kitten.",
    "Why is the sky blue?",
    "List three uses of baking soda.",
    "When did the Berlin Wall fall?",
    "Translate good morning into Italian.",
    "What does a tax auditor do?",
    "How many players are on a rugby team?",
];

/// Sends `job`'s `questions` (each once, then again) to `sidecar` until one answer satisfies
/// `done`; how long that took.
async fn until_job(
    sidecar: &Sidecar,
    job: &str,
    questions: &[&str],
    done: impl Fn(&Result<tonic::Response<cachet::proto::CompleteResponse>, tonic::Status>) -> bool,
) -> Option<Duration> {
    let client = sidecar.client().await;
    let mut questions = questions.iter().cycle();
    eventually(Duration::from_secs(20), || {
        let request = labelled(questions.next().unwrap(), "ops", job);
        let mut client = client.clone();
        let done = &done;
        async move { done(&client.complete(request).await) }
    })
    .await
}

fn micro(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

/// Micro-dollars a `small`-tier answer cost, from the usage it reports ($/Mtok = µ$/token).
fn small_cost(prompt: u32, completion: u32) -> u64 {
    (f64::from(prompt) * 0.15 + f64::from(completion) * 0.60).round() as u64
}

/// What the answers of a run cost, from the usage each reported.
#[derive(Debug, Default, Clone, Copy)]
struct Bill {
    spent: u64,
    answered: u64,
}

impl Bill {
    fn pay(&mut self, answer: cachet::proto::CompleteResponse) {
        let usage = answer.usage.unwrap();
        self.spent += small_cost(usage.prompt_tokens, usage.completion_tokens);
        self.answered += 1;
    }
}

fn labelled(text: &str, department: &str, job: &str) -> CompleteRequest {
    let mut r = chat("acme", "small", &[msg("user", text)]);
    r.labels = Some(Labels {
        department: department.into(),
        workflow: "agents".into(),
        job_id: job.into(),
        critical: false,
    });
    r.params = Some(cachet::proto::SamplingParams {
        max_tokens: Some(100),
        ..Default::default()
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stored_on_one_sidecar_are_served_by_the_others_within_their_tenant() {
    let mut fleet = Fleet::new("answers", "", "").await;
    let a = fleet.sidecar().await;
    let b = fleet.sidecar().await;

    let asked = question("acme", "How do I reset my password?");
    let stored = store_on(&a, &asked, "Use the Forgot password link.").await;
    let paraphrase = question("acme", "How can I reset my password?");
    let took = eventually(Duration::from_secs(10), || async {
        status_of(&b, &paraphrase).await == CacheStatus::HitSemantic
    })
    .await
    .expect("B serves A's answer to a paraphrase");
    eprintln!("propagation A -> B: {} ms", took.as_millis());
    let served = b
        .client()
        .await
        .lookup(lookup_of(&paraphrase))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.answer, "Use the Forgot password link.");
    // Another tenant asking the same on B gets nothing of acme's.
    assert_eq!(
        status_of(&b, &question("globex", "How do I reset my password?")).await,
        CacheStatus::Miss
    );

    // Stored through A while C did not exist yet; then a second answer, then the first removed.
    let kept = question("acme", "Where is your head office?");
    store_on(&a, &kept, "In Lisbon.").await;
    let removed = a
        .client()
        .await
        .invalidate(as_admin(InvalidateRequest {
            tenant: "acme".into(),
            target: Some(invalidate_request::Target::EntryId(stored)),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    eventually(Duration::from_secs(10), || async {
        status_of(&b, &asked).await == CacheStatus::Miss
    })
    .await
    .expect("the invalidation reaches B");
    assert_eq!(status_of(&b, &kept).await, CacheStatus::HitExact);

    // A sidecar joining later catches up before it reports SERVING.
    let c = fleet.sidecar().await;
    assert_eq!(status_of(&c, &kept).await, CacheStatus::HitExact);
    assert_eq!(
        status_of(&c, &question("acme", "Where's your head office?")).await,
        CacheStatus::HitSemantic
    );
    assert_eq!(
        status_of(&c, &asked).await,
        CacheStatus::Miss,
        "removed before C joined"
    );

    // B killed; what A stores meanwhile is read from B's cursor when B comes back.
    let b = b
        .restart_after_with(Stop::Kill9, || async {
            store_on(&a, &question("acme", "Do you sell gift cards?"), "Yes.").await;
        })
        .await;
    assert_eq!(
        status_of(&b, &question("acme", "Do you sell gift cards?")).await,
        CacheStatus::HitExact
    );
    assert_eq!(status_of(&b, &kept).await, CacheStatus::HitExact);
    let resumed = b.log();
    let caught_up = resumed
        .lines()
        .rfind(|l| l.contains("caught up with the stream"))
        .unwrap();
    assert!(
        caught_up.contains("events=1 "),
        "B resumed from its cursor, reading only what it missed: {caught_up}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_password_from_the_environment() {
    let redis = Redis::start_tls();
    let upstream = simulator().await;
    let config = format!(
        "{}password_env = \"CACHET_TEST_REDIS_PASSWORD\"\n",
        redis.fleet_config("tls")
    );
    let ca = redis.ca_file();
    // The CA is trusted through the variable rustls-native-certs reads, as on a real host.
    let env = [
        ("CACHET_TEST_REDIS_PASSWORD", REDIS_PASSWORD),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Sidecar::start_with_env(dir_a.path(), &upstream.base_url(), &config, &env).await;
    let b = Sidecar::start_with_env(dir_b.path(), &upstream.base_url(), &config, &env).await;
    let asked = question("acme", "Do you ship to Norway?");
    store_on(&a, &asked, "Yes, in five working days.").await;
    eventually(Duration::from_secs(10), || async {
        status_of(&b, &asked).await == CacheStatus::HitExact
    })
    .await
    .unwrap_or_else(|| panic!("B gets A's answer over TLS; A:\n{}", a.log()));
    assert!(
        !a.log().contains(REDIS_PASSWORD),
        "the password is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_spend_over_three_sidecars_stays_under_one_shared_ceiling() {
    // About 80 µ$ a call (25-30 prompt tokens, 100 of output at most, small tier).
    let ceiling = 0.0015;
    let extra = format!(
        "{TIERS}\n[budgets.departments.research]\nceiling_usd = {ceiling}\nowner = \"research-lead@example.com\"\n"
    );
    let mut fleet = Fleet::new("ceiling", "", &extra).await;
    let sidecars = [
        fleet.sidecar().await,
        fleet.sidecar().await,
        fleet.sidecar().await,
    ];
    let mut clients = Vec::new();
    for s in &sidecars {
        clients.push(s.client().await);
    }
    let mut calls = Vec::new();
    for i in 0..48 {
        let mut client = clients[i % 3].clone();
        calls.push(tokio::spawn(async move {
            client
                .complete(labelled(
                    &format!("Summarise research note number {i}."),
                    "research",
                    "",
                ))
                .await
        }));
    }
    let (mut bill, mut refused) = (Bill::default(), 0);
    for call in calls {
        match call.await.unwrap() {
            Ok(answer) => bill.pay(answer.into_inner()),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::ResourceExhausted,
                    "{}",
                    status.message()
                );
                assert!(
                    status.message().contains("department `research`"),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    let Bill { spent, answered } = bill;
    eprintln!(
        "answered {answered}, refused {refused}, spent {spent} µ$ of {} µ$",
        micro(ceiling)
    );
    assert!(
        refused > 0 && answered > 0,
        "answered {answered}, refused {refused}"
    );
    // Estimates are reserved on the shared ledger before each call and are upper bounds of
    // the cost, so the fleet never passes the ceiling at all.
    assert!(spent <= micro(ceiling), "spent {spent} µ$ over the ceiling");
    assert_eq!(fleet.upstream.calls(), answered);
    // Showback on any sidecar is the fleet's, and adds up to what was answered, in total and
    // for the department that paid.
    for sidecar in &sidecars {
        let totals = fleet_totals(sidecar).await;
        assert_eq!(totals.upstream_calls, answered);
        assert_eq!(micro(totals.cost_usd), spent);
    }
    let report = sidecars[0].report(1).await;
    let research = report
        .rows
        .iter()
        .find(|r| r.dimension == "department" && r.key == "research")
        .and_then(|r| r.totals)
        .expect("a row for the research department");
    assert_eq!(research.upstream_calls, answered);
    assert_eq!(micro(research.cost_usd), spent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stopped_on_one_sidecar_is_refused_on_the_others_until_reset() {
    let extra =
        format!("{TIERS}\n[loop_breaker]\nrepeats = 3\nwindow_secs = 60\nsimilarity = 0.9\n");
    let mut fleet = Fleet::new("breaker", "", &extra).await;
    let a = fleet.sidecar().await;
    let b = fleet.sidecar().await;
    let attempt = |n: u32| {
        labelled(
            &format!("Fetch the status of order 48213, attempt {n}, and retry if it fails."),
            "ops",
            "looping-agent",
        )
    };
    // The agent's calls land on both sidecars: each one weighs the other's prompts too.
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    let propagation = Duration::from_millis(1_000);
    on_a.complete(attempt(1)).await.unwrap();
    tokio::time::sleep(propagation).await;
    on_b.complete(attempt(2)).await.unwrap();
    tokio::time::sleep(propagation).await;
    let stopped = on_a.complete(attempt(3)).await.unwrap_err();
    assert_eq!(
        fleet.upstream.calls(),
        2,
        "the third round never went upstream"
    );
    assert_eq!(
        stopped.code(),
        Code::FailedPrecondition,
        "{}",
        stopped.message()
    );

    // B never saw the loop itself, and these questions are unlike each other.
    let took = until_job(
        &b,
        "looping-agent",
        &UNALIKE[..6],
        |r| matches!(r, Err(s) if s.code() == Code::FailedPrecondition),
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "B refuses the job A stopped; A:\n{}\nB:\n{}",
            a.log(),
            b.log()
        )
    });
    eprintln!("kill-switch A -> B: {} ms", took.as_millis());
    assert!(
        b.log()
            .contains("stopped by the loop breaker of another sidecar"),
        "{}",
        b.log()
    );
    // Other jobs go on.
    b.client()
        .await
        .complete(labelled("Name a river in Africa.", "ops", "healthy-agent"))
        .await
        .unwrap();

    // Released by an operator on B: released on A too.
    let reset = b
        .admin()
        .await
        .reset_job(as_admin(ResetJobRequest {
            job_id: "looping-agent".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(reset.was_stopped);
    // Questions A never saw answered (a hit is served to a stopped job too): they go upstream.
    until_job(&a, "looping-agent", &UNALIKE[6..], |r| {
        r.as_ref()
            .is_ok_and(|answer| answer.get_ref().status() == CacheStatus::Miss)
    })
    .await
    .expect("A lets the job through after the reset on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_hits_are_served_spend_stays_within_the_lease_and_the_ledger_reconciles() {
    // A lease of 300 µ$: about six calls of 45 µ$ (each admitted on its estimate of about
    // 63 µ$, then holding the lease with its real cost until Redis has counted it).
    let lease = "lease_usd = 0.0003\n";
    let mut fleet = Fleet::new("faults", lease, TIERS).await;
    let metrics = free_port();
    let a = fleet
        .sidecar_with(&format!(
            "[server]\nmetrics_listen = \"127.0.0.1:{metrics}\"\n"
        ))
        .await;
    let b = fleet.sidecar().await;
    let mut on_a = a.client().await;

    let mut bill = Bill::default();
    let known = labelled("How do I export my invoices?", "finance", "");
    bill.pay(on_a.complete(known.clone()).await.unwrap().into_inner());
    bill.pay(
        on_a.complete(labelled(
            "How do I change my billing address?",
            "finance",
            "",
        ))
        .await
        .unwrap()
        .into_inner(),
    );

    let before_outage = bill;
    fleet.redis.stop();
    // Hits are served from the local index.
    let hit = on_a.complete(known.clone()).await.unwrap().into_inner();
    assert_eq!(hit.status(), CacheStatus::HitExact);
    // Misses are answered within the lease, then refused with a clear error.
    let mut refusal = None;
    for i in 0..10 {
        match on_a
            .complete(labelled(
                &format!("Explain invoice line {i} of the March statement."),
                "finance",
                "",
            ))
            .await
        {
            Ok(answer) => bill.pay(answer.into_inner()),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("the lease runs out");
    assert_eq!(refusal.code(), Code::Unavailable, "{}", refusal.message());
    assert!(
        refusal.message().contains("fleet.lease_usd"),
        "{}",
        refusal.message()
    );
    let during_outage = bill.answered - before_outage.answered;
    let outage_spend = bill.spent - before_outage.spent;
    assert!(
        during_outage >= 3 && outage_spend <= 300,
        "{during_outage} calls for {outage_spend} µ$ answered on a lease of 300 µ$"
    );
    // Stored on A while Redis was down (its answer is in the outbox, not yet in the stream).
    let stored_offline = question("acme", "Which currencies do you accept?");
    store_on(&a, &stored_offline, "Euros and dollars.").await;

    // The lease holds what Redis has not counted yet; the outbox holds that spend and the store.
    let lease_used = metric(metrics, "cachet_fleet_lease_used_usd").await;
    assert_eq!(micro(lease_used), outage_spend);
    assert!(metric(metrics, "cachet_fleet_outbox_pending").await >= (during_outage + 1) as f64);
    let Bill { spent, answered } = bill;
    fleet.redis.restart();
    // The outbox is published: the ledger holds every call exactly once, and B gets the answer.
    let reconciled = eventually(Duration::from_secs(10), || async {
        micro(fleet_totals(&b).await.cost_usd) == spent
    })
    .await;
    let totals = fleet_totals(&a).await;
    assert!(
        reconciled.is_some(),
        "fleet ledger {totals:?}, answers cost {spent} µ$"
    );
    assert_eq!(totals.upstream_calls, answered);
    assert_eq!(totals.cache_hits, 1);
    assert_eq!(metric(metrics, "cachet_fleet_lease_used_usd").await, 0.0);
    assert!(metric(metrics, "cachet_fleet_ledger_rtt_seconds_count").await > 0.0);
    assert_eq!(fleet.upstream.calls(), answered);
    eventually(Duration::from_secs(10), || async {
        status_of(&b, &stored_offline).await == CacheStatus::HitExact
    })
    .await
    .expect("the answer stored during the outage reaches B");
    // With Redis back, spending goes on.
    on_a.complete(labelled("How do I download a receipt?", "finance", ""))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_retrying_through_several_sidecars_stops_at_its_retry_limit() {
    let extra = format!("{TIERS}\n[budgets.jobs]\nmax_retries = 2\n");
    let mut fleet = Fleet::new("retries", "", &extra).await;
    let a = fleet.sidecar().await;
    let b = fleet.sidecar().await;
    fleet
        .upstream
        .set_behaviour(cachet::simulator::Behaviour::Fail(500));
    let same = || labelled("Sync the CRM export now.", "ops", "sync-agent");
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);
    // The first try and two retries, alternating pods: each pod alone has seen at most two.
    for round in 0..3 {
        let client = if round % 2 == 0 { &mut on_a } else { &mut on_b };
        let failed = client.complete(same()).await.unwrap_err();
        assert_eq!(failed.code(), Code::Unavailable, "{}", failed.message());
    }
    let stopped = on_b.complete(same()).await.unwrap_err();
    assert_eq!(
        stopped.code(),
        Code::ResourceExhausted,
        "{}",
        stopped.message()
    );
    assert!(
        stopped.message().contains("retries of one chat"),
        "{}",
        stopped.message()
    );
    assert_eq!(fleet.upstream.calls(), 3, "no fourth attempt went upstream");
}
