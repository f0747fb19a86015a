//! Budgets: downgrade past a target, refusal at a ceiling, the reserve, restarts, concurrency.

mod common;

use cachet::proto::{CacheStatus, CompleteRequest, Labels};
use common::*;
use tonic::Code;

fn request(
    model: &str,
    text: &str,
    department: &str,
    job: &str,
    critical: bool,
) -> CompleteRequest {
    let mut r = chat("acme", model, &[msg("user", text)]);
    r.labels = Some(Labels {
        department: department.into(),
        workflow: "agents".into(),
        job_id: job.into(),
        critical,
    });
    r.params = Some(cachet::proto::SamplingParams {
        max_tokens: Some(100),
        ..Default::default()
    });
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_target_requests_are_downgraded_and_at_the_ceiling_refused() {
    // One large call (about 30 prompt + 60 completion tokens) costs about $0.0007.
    let config = format!(
        "{TIERS}\n[budgets.departments.research]\ntarget_usd = 0.0005\nceiling_usd = 0.0012\nowner = \"research-lead@example.com\"\n"
    );
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::with_config(&config).await;
    let mut client = sidecar.client().await;

    let first = client
        .complete(request(
            "large",
            "Plan a literature review on battery recycling.",
            "research",
            "",
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.model, "gpt-4o",
        "under the target: the tier asked for"
    );
    assert_eq!(first.downgraded_from, "");

    let second = client
        .complete(request(
            "large",
            "List open problems in solid-state batteries.",
            "research",
            "",
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second.model, "gpt-4o-mini",
        "past the target: the next smaller tier"
    );
    assert_eq!(second.downgraded_from, "large");

    // Other departments are not affected by research's budget.
    let other = client
        .complete(request(
            "large",
            "Draft a sales pitch for batteries.",
            "sales",
            "",
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other.model, "gpt-4o");

    // Spend on, until the ceiling refuses.
    let mut refusal = None;
    for i in 0..40 {
        match client
            .complete(request(
                "small",
                &format!("Summarise battery paper number {i}."),
                "research",
                "",
                false,
            ))
            .await
        {
            Ok(_) => {}
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("the ceiling refuses eventually");
    assert_eq!(refusal.code(), Code::ResourceExhausted);
    let message = refusal.message();
    for part in [
        "department `research`",
        "research-lead@example.com",
        "monthly ceiling",
        "resets on",
    ] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
    let calls = upstream.calls();
    let again = client
        .complete(request(
            "small",
            "One more battery question?",
            "research",
            "",
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::ResourceExhausted);
    assert_eq!(upstream.calls(), calls, "a refused request costs nothing");
    // Cache hits stay free and allowed.
    let hit = client
        .complete(request(
            "large",
            "Plan a literature review on battery recycling.",
            "research",
            "",
            false,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hit.status(), CacheStatus::HitExact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserve_is_for_critical_requests_and_spend_survives_a_restart() {
    let config = format!("{TIERS}\n[budgets.organisation]\nceiling_usd = 0.004\nreserve_usd = 0.002\nowner = \"cfo@example.com\"\n");
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(dir.path(), &upstream.base_url(), &config).await;
    let mut client = sidecar.client().await;
    let mut served = 0;
    let refusal = loop {
        match client
            .complete(request(
                "large",
                &format!("Routine question number {served}?"),
                "ops",
                "",
                false,
            ))
            .await
        {
            Ok(_) => served += 1,
            Err(status) => break status,
        }
        assert!(served < 20, "the ceiling less the reserve never refused");
    };
    assert_eq!(refusal.code(), Code::ResourceExhausted);
    assert!(
        refusal.message().contains("reserve"),
        "{}",
        refusal.message()
    );
    let critical = client
        .complete(request(
            "large",
            "Production is down: what do we check first?",
            "ops",
            "",
            true,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        critical.status(),
        CacheStatus::Miss,
        "a critical request may use the reserve"
    );

    // After a crash the budget still knows what was spent.
    let sidecar = sidecar.restart_after(Stop::Kill9).await;
    let mut client = sidecar.client().await;
    let after = client
        .complete(request(
            "large",
            "Another routine question?",
            "ops",
            "",
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(after.code(), Code::ResourceExhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_overshoot_a_ceiling_by_at_most_one_estimate() {
    // Per job: a ceiling that fits a few calls.
    let config = format!("{TIERS}\n[budgets.jobs]\nceiling_usd = 0.003\n");
    let Fixture { sidecar, .. } = &Fixture::with_config(&config).await;
    let client = sidecar.client().await;
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .complete(request(
                        "large",
                        &format!("Agent step {i}: what next?"),
                        "ops",
                        "runaway-agent",
                        false,
                    ))
                    .await
            })
        })
        .collect();
    let mut spent = 0.0;
    let mut refused = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(answer) => {
                let u = answer.into_inner().usage.unwrap();
                spent += (f64::from(u.prompt_tokens) * 2.5 + f64::from(u.completion_tokens) * 10.0)
                    / 1e6;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                assert!(
                    status.message().contains("job `runaway-agent`"),
                    "{}",
                    status.message()
                );
                refused += 1;
            }
        }
    }
    // One estimate: about 15 prompt tokens at $2.50/M plus 100 output tokens at $10/M.
    let one_estimate = 0.0011;
    assert!(refused > 0, "the job's ceiling never refused");
    assert!(
        spent <= 0.003 + one_estimate,
        "spent ${spent:.6} against a $0.003 ceiling"
    );
    // Another job is untouched.
    let mut client = sidecar.client().await;
    client
        .complete(request(
            "large",
            "A fresh job's first step?",
            "ops",
            "other-job",
            false,
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stops_at_its_call_limit() {
    let config = format!("{TIERS}\n[budgets.jobs]\nmax_calls = 3\n");
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::with_config(&config).await;
    let mut client = sidecar.client().await;
    let topics = ["tides", "volcanoes", "glaciers", "deserts"];
    let mut answers = Vec::new();
    for topic in topics {
        answers.push(
            client
                .complete(request(
                    "small",
                    &format!("Explain how {topic} form."),
                    "ops",
                    "agent-7",
                    false,
                ))
                .await,
        );
    }
    assert!(answers[..3].iter().all(|a| a.is_ok()));
    let refused = answers[3].as_ref().unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("3 of its 3 upstream calls"),
        "{}",
        refused.message()
    );
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_breaker_stops_a_looping_job_until_an_operator_resets_it() {
    use cachet::proto::ResetJobRequest;

    let config =
        format!("{TIERS}\n[loop_breaker]\nrepeats = 3\nwindow_secs = 60\nsimilarity = 0.9\n");
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(dir.path(), &upstream.base_url(), &config).await;
    let mut client = sidecar.client().await;
    // The attempt counter makes every prompt a miss (the numbers guard), yet they are alike.
    let attempt = |n: u32, job: &str| {
        request(
            "small",
            &format!("Fetch the status of order 48213, attempt {n}, and retry if it fails."),
            "ops",
            job,
            false,
        )
    };
    client.complete(attempt(1, "looping-agent")).await.unwrap();
    client.complete(attempt(2, "looping-agent")).await.unwrap();
    let stopped = client
        .complete(attempt(3, "looping-agent"))
        .await
        .unwrap_err();
    assert_eq!(stopped.code(), Code::FailedPrecondition);
    assert!(
        stopped.message().contains("loop breaker"),
        "{}",
        stopped.message()
    );
    assert_eq!(upstream.calls(), 2, "the third round never went upstream");
    // Another job, and the same job's other work, are judged on their own.
    client.complete(attempt(3, "healthy-agent")).await.unwrap();
    let unrelated = client
        .complete(request(
            "small",
            "What is the capital of Peru?",
            "ops",
            "looping-agent",
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        unrelated.code(),
        Code::FailedPrecondition,
        "stopped until reset, whatever it sends"
    );

    // A restart does not release it; an operator does.
    let sidecar = sidecar.restart_after(Stop::Kill9).await;
    let mut client = sidecar.client().await;
    assert_eq!(
        client
            .complete(attempt(4, "looping-agent"))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let mut admin = sidecar.admin().await;
    let refused = admin
        .reset_job(tonic::Request::new(ResetJobRequest {
            job_id: "looping-agent".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let reset = as_admin(ResetJobRequest {
        job_id: "looping-agent".into(),
    });
    assert!(
        admin
            .reset_job(reset)
            .await
            .unwrap()
            .into_inner()
            .was_stopped
    );
    client.complete(attempt(5, "looping-agent")).await.unwrap();
}

/// A webhook receiver standing in for the operator's alerting system.
async fn webhook() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(alert): axum::Json<serde_json::Value>| {
            let sink = std::sync::Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(alert);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_posted_once_per_crossing() {
    let (url, received) = webhook().await;
    let config = format!(
        "{TIERS}\n[alerts]\nwebhook_url = \"{url}\"\n[budgets.departments.research]\ntarget_usd = 0.00005\nceiling_usd = 0.0002\nowner = \"research-lead@example.com\"\n"
    );
    let Fixture { sidecar, .. } = &Fixture::with_config(&config).await;
    let mut client = sidecar.client().await;
    let mut refused = 0;
    for i in 0..8 {
        let r = client
            .complete(request(
                "small",
                &format!("Research question number {i}?"),
                "research",
                "",
                false,
            ))
            .await;
        refused += usize::from(r.is_err());
    }
    assert!(refused >= 2, "the ceiling refused {refused} requests");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let alerts = received.lock().unwrap().clone();
    let kinds: Vec<&str> = alerts.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["budget_target", "budget_ceiling"], "{alerts:?}");
    assert_eq!(alerts[1]["owner"], "research-lead@example.com");
    assert!(alerts[1]["message"]
        .as_str()
        .unwrap()
        .contains("department `research`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_change_at_run_time_through_the_admin_api() {
    use cachet::proto::{Budget, SetBudgetRequest};

    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(dir.path(), &upstream.base_url(), TIERS).await;
    let mut client = sidecar.client().await;
    let ask = |n: u32| {
        request(
            "small",
            &format!("Finance question number {n}?"),
            "finance",
            "",
            false,
        )
    };
    client.complete(ask(0)).await.unwrap();

    let tight = SetBudgetRequest {
        level: "departments".into(),
        name: "finance".into(),
        budget: Some(Budget {
            ceiling_usd: Some(0.00005),
            owner: "cfo@example.com".into(),
            ..Default::default()
        }),
    };
    let mut admin = sidecar.admin().await;
    let refused = admin
        .set_budget(tonic::Request::new(tight.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    client
        .complete(ask(1))
        .await
        .expect("a refused admin call changes nothing");

    let mut invalid = tight.clone();
    invalid.budget.as_mut().unwrap().target_usd = Some(1.0);
    let err = admin.set_budget(as_admin(invalid)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "a target above the ceiling: {}",
        err.message()
    );

    admin.set_budget(as_admin(tight)).await.unwrap();
    let err = client.complete(ask(2)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::ResourceExhausted,
        "the new ceiling applies at once"
    );
    assert!(err.message().contains("cfo@example.com"));

    // Kept across a restart, until removed.
    let sidecar = sidecar.restart_after(Stop::Kill9).await;
    let mut client = sidecar.client().await;
    assert_eq!(
        client.complete(ask(3)).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
    let mut admin = sidecar.admin().await;
    admin
        .set_budget(as_admin(SetBudgetRequest {
            level: "departments".into(),
            name: "finance".into(),
            budget: None,
        }))
        .await
        .unwrap();
    client.complete(ask(4)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_retrying_a_failing_call_stops_at_its_retry_limit() {
    use cachet::simulator::Behaviour;

    let config = format!("{TIERS}\n[budgets.jobs]\nmax_retries = 2\n");
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::with_config(&config).await;
    let mut client = sidecar.client().await;
    upstream.set_behaviour(Behaviour::Fail(500));
    let same = || {
        request(
            "small",
            "Sync the CRM export now.",
            "ops",
            "sync-agent",
            false,
        )
    };
    for _ in 0..3 {
        assert_eq!(
            client.complete(same()).await.unwrap_err().code(),
            Code::Unavailable
        );
    }
    let stopped = client.complete(same()).await.unwrap_err();
    assert_eq!(stopped.code(), Code::ResourceExhausted);
    assert!(
        stopped.message().contains("retries of one chat"),
        "{}",
        stopped.message()
    );
    assert_eq!(
        upstream.calls(),
        3,
        "the first try and two retries went upstream, no more"
    );
    // Other chats of the job, and other jobs, are not affected.
    upstream.set_behaviour(Behaviour::Answer);
    client
        .complete(request(
            "small",
            "Sync the billing export now.",
            "ops",
            "sync-agent",
            false,
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_thresholds_and_budgets_from_the_config_file() {
    let Fixture { sidecar, .. } = &Fixture::with_config(TIERS).await;
    let mut client = sidecar.client().await;
    let ask = |text: &str| {
        chat(
            "acme",
            "small",
            &[msg("system", "Answer briefly."), msg("user", text)],
        )
    };
    client
        .complete(ask("How do I reset my password?"))
        .await
        .unwrap();
    let paraphrase = || ask("How can I reset my password?");
    let hit = client.complete(paraphrase()).await.unwrap().into_inner();
    assert_eq!(hit.status(), CacheStatus::HitSemantic);

    // A stricter threshold and a spent-out organisation budget, by editing the file.
    sidecar.reload_with(
        "[tenants.acme]\nthreshold = 0.999\n[budgets.organisation]\nceiling_usd = 0.000001\n",
    );
    let threshold = || async { sidecar.stats().await.thresholds["acme"] };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while threshold().await != 0.999 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(threshold().await, 0.999);
    let refused = client
        .complete(ask("What is a sidecar?"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let stricter = client
        .lookup(lookup_of(&paraphrase()))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !stricter.hit,
        "similarity {} passed 0.999",
        stricter.similarity
    );

    // A broken file changes nothing and the sidecar keeps serving.
    sidecar.reload_with("[matching]\nthreshold = 7.0\n");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(threshold().await, 0.999);
    assert!(sidecar
        .log()
        .contains("SIGHUP: the config file was not reloaded"));
    client.lookup(lookup_of(&paraphrase())).await.unwrap();
}
