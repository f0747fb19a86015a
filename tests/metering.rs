//! The metered router: tiers with prices, the ledger of spend and savings, and showback.

mod common;

use cachet::proto::{CacheStatus, CompleteRequest, Labels, ReportRequest};
use common::*;
use tonic::Code;

fn labelled(model: &str, text: &str, department: &str, job: &str) -> CompleteRequest {
    let mut request = chat("acme", model, &[msg("user", text)]);
    request.labels = Some(Labels {
        department: department.into(),
        workflow: "triage".into(),
        job_id: job.into(),
        ..Default::default()
    });
    request
}

/// Micro-dollars, as the meter counts: $/Mtok equals µ$/token.
fn cost(prompt: u32, completion: u32, input: f64, output: f64) -> u64 {
    (f64::from(prompt) * input + f64::from(completion) * output).round() as u64
}

fn micro(usd: f64) -> u64 {
    (usd * 1_000_000.0).round() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_matches_the_upstream_usage_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(dir.path(), &upstream.base_url(), TIERS).await;
    let mut client = sidecar.client().await;

    let mut expected_cost = 0u64;
    let mut support_cost = 0u64;
    let mut saved_tokens = 0u64;
    let calls = [
        (
            "small",
            "How do I reset my password?",
            "support",
            "job-1",
            0.15,
            0.60,
        ),
        (
            "small",
            "Where can I download my invoices?",
            "support",
            "job-1",
            0.15,
            0.60,
        ),
        (
            "gpt-4o",
            "Summarise the attached contract in three bullet points.",
            "legal",
            "job-2",
            2.50,
            10.00,
        ),
        (
            "large",
            "Draft a reply to an unhappy enterprise customer.",
            "sales",
            "job-3",
            2.50,
            10.00,
        ),
    ];
    for (model, text, department, job, input, output) in calls {
        let answer = client
            .complete(labelled(model, text, department, job))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status(), CacheStatus::Miss);
        let usage = answer.usage.unwrap();
        let spent = cost(usage.prompt_tokens, usage.completion_tokens, input, output);
        expected_cost += spent;
        if department == "support" {
            support_cost += spent;
        }
        let tier_model = if input < 1.0 { "gpt-4o-mini" } else { "gpt-4o" };
        assert_eq!(
            answer.model, tier_model,
            "{model} was routed to its tier's model"
        );
    }
    // A repeat is served from the cache: no spend, a saving.
    let hit = client
        .complete(labelled(
            "small",
            "How do I reset my password?",
            "support",
            "job-1",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hit.status(), CacheStatus::HitExact);
    saved_tokens += u64::from(hit.tokens_saved);

    let unknown = client
        .complete(labelled("gpt-5", "Anything at all?", "support", "job-1"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("small (gpt-4o-mini)"),
        "{}",
        unknown.message()
    );
    assert_eq!(
        upstream.calls(),
        4,
        "neither the hit nor the unknown model reached the upstream"
    );

    let r = sidecar.report(1).await;
    let totals = r.totals.unwrap();
    assert_eq!(totals.upstream_calls, 4);
    assert_eq!(totals.cache_hits, 1);
    assert_eq!(
        micro(totals.cost_usd),
        expected_cost,
        "spend equals usage times price, exactly"
    );
    assert_eq!(totals.tokens_saved, saved_tokens);
    assert!(totals.saved_usd > 0.0);
    let row = |dimension: &str, key: &str| {
        r.rows
            .iter()
            .find(|row| row.dimension == dimension && row.key == key)
            .unwrap_or_else(|| panic!("no {dimension} {key} in {:?}", r.rows))
            .totals
            .unwrap()
    };
    assert_eq!(micro(row("department", "support").cost_usd), support_cost);
    assert_eq!(row("department", "support").cache_hits, 1);
    assert_eq!(row("job", "job-2").upstream_calls, 1);
    assert_eq!(row("model", "gpt-4o").upstream_calls, 2);
    assert_eq!(
        r.top_consumers.len(),
        7,
        "3 departments (support, legal, sales), 1 workflow, 3 jobs"
    );
    assert!(
        r.top_consumers[0].totals.unwrap().cost_usd >= r.top_consumers[1].totals.unwrap().cost_usd
    );
    assert_eq!(r.days.len(), 1);

    // The CLI renders the same figures for finance tools.
    let csv = std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
        .args(["report", "--format", "csv", "--days", "1", "--endpoint"])
        .arg(sidecar.admin_endpoint())
        .env("CACHET_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("dimension,key,requests"), "{csv}");
    let support_line = csv
        .lines()
        .find(|l| l.starts_with("department,support,"))
        .unwrap();
    assert!(
        support_line.contains(&format!("{:.6}", support_cost as f64 / 1e6)),
        "{support_line}"
    );

    // Spend is durable with the answer it paid for.
    let sidecar = sidecar.restart_after(Stop::Kill9).await;
    let after = sidecar.report(1).await.totals.unwrap();
    assert_eq!(micro(after.cost_usd), expected_cost);
    assert_eq!(after.upstream_calls, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_an_admin_call() {
    let Fixture { sidecar, .. } = &Fixture::start().await;
    let refused = sidecar
        .admin()
        .await
        .report(tonic::Request::new(ReportRequest { days: 1 }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tier_opens_its_circuit_and_falls_back_to_a_smaller_one() {
    use cachet::simulator::Behaviour;

    let small = simulator().await;
    let large = simulator().await;
    let config = format!(
        r#"
[router]
breaker_failures = 2
breaker_cooldown_secs = 1

[[router.tiers]]
name = "small"
model = "gpt-4o-mini"
base_url = "{}"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[[router.tiers]]
name = "large"
model = "gpt-4o"
base_url = "{}"
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00
"#,
        small.base_url(),
        large.base_url()
    );
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start_with(dir.path(), &small.base_url(), &config).await;
    let mut client = sidecar.client().await;
    let ask = |n: u32| {
        labelled(
            "large",
            &format!("Write release note number {n}."),
            "eng",
            "",
        )
    };

    large.set_behaviour(Behaviour::Fail(503));
    for n in 0..2 {
        let failed = client.complete(ask(n)).await.unwrap_err();
        assert_eq!(failed.code(), Code::Unavailable);
    }
    assert_eq!(large.calls(), 2);
    let fallback = client.complete(ask(2)).await.unwrap().into_inner();
    assert_eq!(
        fallback.model, "gpt-4o-mini",
        "the open circuit sent it to the smaller tier"
    );
    assert_eq!(fallback.downgraded_from, "large");
    assert_eq!(
        large.calls(),
        2,
        "the failing tier is left alone while its circuit is open"
    );
    assert_eq!(small.calls(), 1);

    // After the cool-down the tier is tried again, and serves once healthy.
    large.set_behaviour(Behaviour::Answer);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let recovered = client.complete(ask(3)).await.unwrap().into_inner();
    assert_eq!(recovered.model, "gpt-4o");
    assert_eq!(recovered.downgraded_from, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_count_requests_spend_and_savings() {
    let config = format!(
        "{TIERS}\n[server]\nmetrics_listen = \"127.0.0.1:0\"\n[budgets.organisation]\nceiling_usd = 100.0\n"
    );
    let Fixture { sidecar, .. } = &Fixture::with_config(&config).await;
    let mut client = sidecar.client().await;
    client
        .complete(labelled("small", "What is a sidecar?", "eng", ""))
        .await
        .unwrap();
    client
        .complete(labelled("small", "What is a sidecar?", "eng", ""))
        .await
        .unwrap();
    let body = sidecar.metrics().await;
    for line in [
        "cachet_requests_total{cache_status=\"miss\"} 1",
        "cachet_requests_total{cache_status=\"hit_exact\"} 1",
        "cachet_upstream_requests_total{tier=\"small\"} 1",
        "cachet_entries 1",
        "cachet_request_duration_seconds_count{call=\"complete\",cache_status=\"miss\"} 1",
        "cachet_request_duration_seconds_count{call=\"complete\",cache_status=\"hit_exact\"} 1",
        "cachet_request_duration_seconds_bucket{call=\"complete\",cache_status=\"hit_exact\",le=\"+Inf\"} 1",
        "cachet_embed_batch_size_count 1",
        "cachet_budget_ceiling_usd{level=\"organisation\",name=\"\"} 100",
    ] {
        assert!(body.lines().any(|l| l == line), "no `{line}` in\n{body}");
    }
    let value = |name: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("cachet_upstream_cost_usd_total{tier=\"small\"}") > 0.0);
    assert!(value("cachet_saved_usd_total") > 0.0);
    assert!(value("cachet_tokens_saved_total") > 0.0);
    assert!(value("cachet_budget_spent_usd{level=\"organisation\",name=\"\"}") > 0.0);
    let points = body
        .lines()
        .find(|l| {
            l.starts_with("cachet_index_points{") && l.contains("tenant=\"acme\",model=\"small\"")
        })
        .unwrap_or_else(|| panic!("no index size for acme in\n{body}"));
    assert!(points.ends_with(" 1"), "{points}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_change_at_run_time_through_the_admin_api() {
    use cachet::proto::SetTierRequest;

    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(dir.path(), &upstream.base_url(), TIERS).await;
    let mut client = sidecar.client().await;
    let pricier = SetTierRequest {
        name: "large".into(),
        model: "gpt-4o".into(),
        input_usd_per_mtok: 5.0,
        output_usd_per_mtok: 20.0,
        ..Default::default()
    };
    let mut admin = sidecar.admin().await;
    let refused = admin
        .set_tier(cachet::operate::with_token(pricier.clone(), "guess"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    admin
        .set_tier(cachet::operate::with_token(pricier, ADMIN_TOKEN))
        .await
        .unwrap();

    let answer = client
        .complete(labelled("large", "Explain vector clocks.", "eng", ""))
        .await
        .unwrap()
        .into_inner();
    let usage = answer.usage.unwrap();
    let expected = cost(usage.prompt_tokens, usage.completion_tokens, 5.0, 20.0);
    assert_eq!(
        micro(sidecar.report(1).await.totals.unwrap().cost_usd),
        expected,
        "the new price applies at once"
    );

    let remove = SetTierRequest {
        name: "small".into(),
        remove: true,
        ..Default::default()
    };
    admin
        .set_tier(cachet::operate::with_token(remove, ADMIN_TOKEN))
        .await
        .unwrap();
    let gone = client
        .complete(labelled("small", "Explain Lamport clocks.", "eng", ""))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::InvalidArgument);

    // Kept across a restart.
    let sidecar = sidecar.restart_after(Stop::Kill9).await;
    let mut client = sidecar.client().await;
    let still_gone = client
        .complete(labelled("small", "Explain Lamport clocks.", "eng", ""))
        .await
        .unwrap_err();
    assert_eq!(still_gone.code(), Code::InvalidArgument);
    let large = client
        .complete(labelled(
            "large",
            "Explain hybrid logical clocks.",
            "eng",
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(large.model, "gpt-4o");
    let mut admin = sidecar.admin().await;
    let last = SetTierRequest {
        name: "large".into(),
        remove: true,
        ..Default::default()
    };
    let refused = admin
        .set_tier(cachet::operate::with_token(last, ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::InvalidArgument,
        "the last tier cannot be removed"
    );
}
