//! The front door with a real OpenAI client library: the official `openai` Python package
//! (pinned in tests/sdk/requirements.txt, installed by scripts/test.sh), pointed at the
//! sidecar by its base URL only.

mod common;

use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_by_changing_the_base_url_only() {
    let python = std::env::var("CACHET_TEST_PYTHON").expect(
        "CACHET_TEST_PYTHON names a Python with the `openai` package; run the suite with scripts/test.sh, which installs it",
    );
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_client.py");
    let base_url = sidecar.openai_base_url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base_url)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK script failed:\n{stdout}\n{}\nsidecar log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        sidecar.log()
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a summary line")).unwrap();
    assert!(summary["answer"]
        .as_str()
        .unwrap()
        .contains("reset my password"));
    // Two misses reached the provider (the first question and the trap's two orders).
    assert_eq!(upstream.calls(), 3);
}
