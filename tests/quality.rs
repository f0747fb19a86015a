//! Hit quality end to end: `cachet tune` on the held-out pairs, guard explanations, and the
//! threshold set at run time through the admin API.

mod common;

use cachet::operate::with_token;
use cachet::proto::{GetStatsRequest, SetThresholdRequest};
use common::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_on_the_held_out_pairs_stays_within_the_wrong_answer_budget() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let pairs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/pairs.jsonl");
    let held_out = std::fs::read_to_string(&pairs)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""split": "heldout""#))
        .count();
    assert!(held_out >= 200, "the held-out split has {held_out} pairs");
    let report_path = dir.path().join("tune.json");
    let chart_path = dir.path().join("tune.svg");
    let stdout = succeeded(
        std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
            .args([
                "tune",
                "--split",
                "heldout",
                "--tenant",
                "acme",
                "--endpoint",
            ])
            .arg(format!("http://{}", sidecar.addr))
            .arg("--pairs")
            .arg(&pairs)
            .arg("--json")
            .arg(&report_path)
            .arg("--chart")
            .arg(&chart_path)
            .env("CACHET_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap(),
    );
    println!("{stdout}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["pairs"], held_out);
    let threshold = report["current_threshold"].as_f64().unwrap();
    assert!(
        (threshold - 0.88).abs() < 1e-6,
        "the default threshold was in force: {threshold}"
    );
    let wrong = report["current"]["wrong_rate"].as_f64().unwrap();
    let hits = report["current"]["hit_rate"].as_f64().unwrap();
    assert!(
        wrong <= 0.05,
        "default settings served {:.1}% of traps",
        100.0 * wrong
    );
    assert!(
        hits >= 0.45,
        "default settings served only {:.1}% of repeats",
        100.0 * hits
    );
    // Every trap family is caught by its guard at least once.
    let caught: Vec<String> = report["current_by_category"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["caught_by"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect();
    for family in [
        "quantities",
        "negation",
        "antonyms",
        "names",
        "calendar",
        "scope",
    ] {
        assert!(
            caught.iter().any(|f| f == family),
            "no trap caught by {family}: {caught:?}"
        );
    }
    assert!(std::fs::read_to_string(&chart_path)
        .unwrap()
        .contains("<polyline"));

    // The evaluation cleaned up after itself: a pair's question is not served afterwards.
    let mut client = sidecar.client().await;
    let stats = sidecar.stats().await;
    assert_eq!(stats.entries, 0, "evaluation entries were left behind");
    let probe = client
        .lookup(lookup_of(&question("acme", "How do I reset my password?")))
        .await
        .unwrap()
        .into_inner();
    assert!(!probe.hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_semantic_answer_says_why() {
    let Fixture { sidecar, .. } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    client
        .complete(question("acme", "Where is my order 48213?"))
        .await
        .unwrap();
    client
        .complete(question("acme", "How do I reset my password?"))
        .await
        .unwrap();

    let trap = client
        .lookup(lookup_of(&question("acme", "Where is my order 48231?")))
        .await
        .unwrap()
        .into_inner();
    assert!(!trap.hit);
    let why = trap.explanation.unwrap();
    assert_eq!(why.refused_by, "quantities");
    assert!(
        why.similarity > 0.9,
        "the trap is close in meaning: {}",
        why.similarity
    );
    assert!(why.guards_checked.contains(&"quantities".to_string()));

    let hit = client
        .complete(question("acme", "How can I reset my password?"))
        .await
        .unwrap()
        .into_inner();
    let why = hit.explanation.unwrap();
    assert_eq!(why.refused_by, "");
    let reading_last_messages = cachet::cache::guard::FAMILIES
        .iter()
        .filter(|(family, _)| family.reads_last_message())
        .count();
    assert_eq!(
        why.guards_checked.len(),
        reading_last_messages,
        "every family that reads a question ran: {:?}",
        why.guards_checked
    );
    assert!((why.threshold - 0.88).abs() < 1e-6);

    let stats = sidecar.stats().await;
    assert_eq!(stats.refusals.get("quantities"), Some(&1));
    assert_eq!(stats.requests_by_status.get("hit_semantic"), Some(&1));
    assert_eq!(stats.requests_by_status.get("miss"), Some(&3));
    assert!(stats.tokens_saved > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_threshold_is_set_at_run_time_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let mut client = sidecar.client().await;
    client
        .store(store_of(
            &question("acme", "Do you ship to Canada?"),
            "Yes, in 5 days.",
            40,
        ))
        .await
        .unwrap();
    // Close in meaning (about 0.85), below the default threshold.
    let paraphrase = lookup_of(&question("acme", "Is shipping to Canada available?"));
    let before = client
        .lookup(paraphrase.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!before.hit);
    let why = before.explanation.unwrap();
    assert_eq!(why.refused_by, "below_threshold");
    assert!(
        why.similarity > 0.8 && why.similarity < 0.88,
        "{}",
        why.similarity
    );

    let mut admin_client = sidecar.admin().await;
    let set = |tenant: &str, threshold: f32| SetThresholdRequest {
        tenant: tenant.into(),
        threshold,
    };
    let refused = admin_client
        .set_threshold(tonic::Request::new(set("acme", 0.8)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let wrong = admin_client
        .set_threshold(with_token(set("acme", 0.8), "guess"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    let invalid = admin_client
        .set_threshold(with_token(set("acme", 1.5), ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let unknown = admin_client
        .set_threshold(with_token(set("initech", 0.8), ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::PermissionDenied);
    assert!(
        !client
            .lookup(paraphrase.clone())
            .await
            .unwrap()
            .into_inner()
            .hit,
        "refused calls changed nothing"
    );

    let changed = admin_client
        .set_threshold(with_token(set("acme", 0.8), ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!((changed.previous - 0.88).abs() < 1e-6);
    assert!((changed.threshold - 0.8).abs() < 1e-6);
    assert!(
        client
            .lookup(paraphrase.clone())
            .await
            .unwrap()
            .into_inner()
            .hit,
        "applied without a restart"
    );
    let other_tenant = lookup_of(&question("globex", "Is shipping to Canada available?"));
    assert!(!client.lookup(other_tenant).await.unwrap().into_inner().hit);

    let sidecar = sidecar.restart_after(Stop::Kill9).await;
    let mut client = sidecar.client().await;
    assert!(
        client
            .lookup(paraphrase.clone())
            .await
            .unwrap()
            .into_inner()
            .hit,
        "kept across a restart"
    );
    let mut admin_client = sidecar.admin().await;
    let stats = admin_client
        .get_stats(with_token(GetStatsRequest {}, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!((stats.thresholds["acme"] - 0.8).abs() < 1e-6);
    assert!((stats.thresholds["globex"] - 0.88).abs() < 1e-6);

    admin_client
        .set_threshold(with_token(set("acme", 0.0), ADMIN_TOKEN))
        .await
        .unwrap();
    assert!(
        !client.lookup(paraphrase).await.unwrap().into_inner().hit,
        "0 restores the configured threshold"
    );
}

/// `cachet embed-pairs` writes the vectors the matching path compares (for training and
/// checking the match scorer offline): real model, each side's last message, guard verdicts.
#[test]
fn embed_pairs_writes_the_products_vectors_and_guard_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        concat!(
            r#"{"a": "How do I reset my password?", "b": "How can I reset my password?", "same_answer": true, "category": "paraphrase", "split": "tune"}"#,
            "\n",
            r#"{"a": "Where is my order 48213?", "b": "Where is my order 48231?", "same_answer": false, "category": "identifier"}"#,
            "\n",
            r#"{"a": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "  How do I reset my password?"}], "b": "Where is my order 48213?", "same_answer": false, "category": "unrelated"}"#,
            "\n",
        ),
    )
    .unwrap();
    let prefix = dir.path().join("out");
    let run = |pairs: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
            .args(["embed-pairs", "--pairs"])
            .arg(pairs)
            .arg("--out")
            .arg(&prefix)
            .output()
            .unwrap()
    };
    succeeded(run(&pairs));

    let bytes = std::fs::read(dir.path().join("out.f32")).unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let dims = cachet::embed::DIMENSIONS;
    assert_eq!(floats.len(), 3 * 2 * dims);
    let side = |pair: usize, side: usize| &floats[(pair * 2 + side) * dims..][..dims];
    for pair in 0..3 {
        for s in 0..2 {
            let norm: f32 = side(pair, s).iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-3,
                "pair {pair} side {s}: norm {norm}"
            );
        }
    }
    // A chat is embedded by its last message, trimmed, as the matching path does.
    assert_eq!(side(2, 0), side(0, 0));
    assert_eq!(side(2, 1), side(1, 0));
    let paraphrase = cachet::embed::similarity(side(0, 0), side(0, 1));
    assert!(paraphrase > 0.8, "paraphrase cosine {paraphrase}");

    let info: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(info.len(), 3);
    assert_eq!(info[0]["same_answer"], true);
    assert_eq!(info[0]["split"], "tune");
    assert!(info[0]["guard"].is_null(), "{}", info[0]);
    assert_eq!(info[1]["guard"], "quantities");
    assert_eq!(info[1]["category"], "identifier");

    // A malformed pairs file is refused with its line named.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"a\": \"x\", \"b\": \"y\", \"same_answer\": true}\n{\"a\": \"x\"}\n",
    )
    .unwrap();
    let out = run(&bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:2"), "{stderr}");
}
