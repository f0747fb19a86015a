//! The load generator (`cachet bench`) against a real sidecar: every path it claims to measure
//! is exercised and reported, as a table and as JSON, with the sidecar's own time beside the
//! client's.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_every_path_and_the_paired_embedding_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let json_path = dir.path().join("bench.json");
    let stdout = succeeded(
        std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
            .args(["bench", "--concurrency", "1,4", "--requests", "60"])
            .args(["--tenant", "acme", "--embed-baseline", "--endpoint"])
            .arg(format!("http://{}", sidecar.addr))
            .arg("--sidecar-pid")
            .arg(sidecar.pid().to_string())
            .arg("--json")
            .arg(&json_path)
            .output()
            .unwrap(),
    );
    println!("{stdout}");
    assert!(stdout.contains("timed in pairs"), "{stdout}");

    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["requests"], 60);
        assert_eq!(run["errors"], 0, "{run}");
        assert!(run["throughput_rps"].as_f64().unwrap() > 0.0);
        assert!(run["sidecar_cpu_ms_per_request"].as_f64().is_some());
        let kind = |name: &str| {
            run["intended"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["kind"] == name)
                .unwrap()
                .clone()
        };
        // The default mix: 40% exact repeats, 40% paraphrases, 20% never stored.
        let (exact, paraphrase, new) = (kind("exact"), kind("paraphrase"), kind("new"));
        assert_eq!(exact["sent"], 24);
        assert_eq!(exact["hit_exact"], 24, "{exact}");
        assert!(
            paraphrase["hit_semantic"].as_u64().unwrap() >= 20,
            "{paraphrase}"
        );
        assert_eq!(paraphrase["hit_exact"], 0, "{paraphrase}");
        assert_eq!(new["hit_rate"], 0.0, "{new}");
        assert_eq!(
            run["semantic"]["count"].as_u64().unwrap(),
            paraphrase["hit_semantic"].as_u64().unwrap()
        );
        assert!(
            run["semantic"]["p50_ms"].as_f64().unwrap() > run["exact"]["p50_ms"].as_f64().unwrap()
        );
        // The sidecar reports its own time for every call, and it is part of what the client saw.
        for status in ["exact", "semantic", "miss", "all"] {
            let (client, sidecar) = (&run[status], &run["sidecar"][status]);
            assert_eq!(sidecar["count"], client["count"], "{status}: {run}");
            let own = sidecar["p50_ms"].as_f64().unwrap();
            assert!(
                own > 0.0 && own < client["p50_ms"].as_f64().unwrap(),
                "{status}: {run}"
            );
        }
    }
    // Paired timings at concurrency 1 only: one per semantic hit.
    let paired = &runs[0]["semantic_vs_bare"];
    assert_eq!(paired["lookup"]["count"], runs[0]["semantic"]["count"]);
    assert_eq!(paired["bare"]["count"], runs[0]["semantic"]["count"]);
    let ratio = paired["p50_ratio"].as_f64().unwrap();
    assert!(ratio > 0.5 && ratio < 10.0, "paired ratio {ratio}");
    assert!(runs[1]["semantic_vs_bare"].is_null());
    assert!(
        report["embed_baseline"]["one_prompt"]["p50_ms"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

/// With the narrowest possible first search (a greedy walk, one candidate), some paraphrases'
/// entries are not found by it; every one of them must still be found and served by the full
/// search, and the widened searches counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_first_search_that_misses_widens_and_still_hits() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(
        dir.path(),
        &upstream.base_url(),
        "[server]\nmetrics_listen = \"127.0.0.1:0\"\n[matching]\ncandidates = 1\nef_narrow = 1\n",
    )
    .await;
    let json_path = dir.path().join("bench.json");
    succeeded(
        std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
            .args(["bench", "--concurrency", "4", "--requests", "300"])
            .args(["--mix", "paraphrase=1", "--tenant", "acme", "--endpoint"])
            .arg(format!("http://{}", sidecar.addr))
            .arg("--json")
            .arg(&json_path)
            .output()
            .unwrap(),
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let paraphrase = &report["runs"][0]["intended"][1];
    assert_eq!(paraphrase["kind"], "paraphrase");
    assert_eq!(paraphrase["hit_semantic"], 300, "{paraphrase}");

    let metrics = sidecar.metrics().await;
    let widened = |found: &str| -> u64 {
        let line = format!("cachet_searches_widened_total{{found=\"{found}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .unwrap_or_else(|| panic!("no {line} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    // About one in five greedy walks ends away from the entry in a graph of this size.
    assert!(widened("hit") > 0, "{metrics}");
    assert_eq!(widened("miss"), 0, "{metrics}");
}

/// `--fill-scope runs` fills the very scope a later run looks up in, so the run searches a
/// larger cache, and its paraphrases are still semantic hits and its new questions misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_of_the_runs_scope_is_searched_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(
        dir.path(),
        &upstream.base_url(),
        "[server]\nmetrics_listen = \"127.0.0.1:0\"\n",
    )
    .await;
    let bench = |args: &[&str]| {
        succeeded(
            std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
                .args(["bench", "--tenant", "acme", "--endpoint"])
                .arg(format!("http://{}", sidecar.addr))
                .args(args)
                .output()
                .unwrap(),
        )
    };
    bench(&["--fill", "200", "--fill-scope", "runs"]);
    let json_path = dir.path().join("bench.json");
    bench(&[
        "--concurrency",
        "1",
        "--requests",
        "40",
        "--json",
        json_path.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let intended = &report["runs"][0]["intended"];
    let (paraphrase, new) = (&intended[1], &intended[2]);
    assert_eq!(
        paraphrase["hit_semantic"], paraphrase["sent"],
        "{paraphrase}"
    );
    assert_eq!(new["hit_rate"], 0.0, "{new}");

    let metrics = sidecar.metrics().await;
    let graphs: Vec<u64> = metrics
        .lines()
        .filter(|l| l.starts_with("cachet_index_points{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    // One scope, holding the fill and the run's own warm-up.
    assert_eq!(graphs.len(), 1, "{metrics}");
    assert!(graphs[0] >= 200, "{metrics}");
}
