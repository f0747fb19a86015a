//! OpenTelemetry export: with the standard `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans around
//! requests reach an OTLP/HTTP collector (here a real HTTP server on loopback that keeps what it
//! is sent).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::*;

/// A collector that keeps the bodies POSTed to `/v1/traces`.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let keep = Arc::clone(&keep);
            async move {
                keep.lock().unwrap().push(body);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_otlp_http() {
    let (addr, received) = collector().await;
    let endpoint = format!("http://{addr}");
    let Fixture { sidecar, .. } = &Fixture::with_env(
        "",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "cachet-under-test"),
        ],
    )
    .await;
    sidecar
        .client()
        .await
        .complete(question("acme", "How do I reset my password?"))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let exported = loop {
        let bodies = received.lock().unwrap().clone();
        let all: Vec<u8> = bodies.iter().flat_map(|b| b.iter().copied()).collect();
        if contains(&all, "Complete") || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        contains(&exported, "Complete"),
        "no Complete span reached the collector; log:\n{}",
        sidecar.log()
    );
    assert!(
        contains(&exported, "cachet-under-test"),
        "the service is named"
    );
    assert!(contains(&exported, "acme"), "the span carries its tenant");
}
