//! The OpenAI-compatible HTTP front door, end to end: real binary, real model, real sled, real
//! HTTP on loopback, simulated provider. `openai_sdk` drives the same door with the official
//! `openai` Python package.

mod common;

use cachet::proto::{CacheStatus, LookupRequest};
use cachet::simulator::Behaviour;
use common::*;
use serde_json::{json, Value};
use tonic::Code;

const SYSTEM: &str = "Answer briefly.";

fn body(question: &str) -> Value {
    json!({
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
        ],
    })
}

/// Posts one chat completion; returns the status, the `x-cachet-*` headers and the body text.
async fn post(
    sidecar: &Sidecar,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/chat/completions", sidecar.openai_base_url()))
        .header("authorization", "Bearer sk-not-needed")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the front door answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

fn cache_status(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get("x-cachet-status")
        .map(|v| v.to_str().unwrap())
        .unwrap_or("<none>")
}

/// The `data:` payloads of a server-sent-event stream, `[DONE]` included.
fn events(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_completion_is_cached_and_shared_with_the_grpc_api() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let tenant = [("x-cachet-tenant", "acme")];

    let (status, headers, text) =
        post(sidecar, &tenant, &body("How do I reset my password?")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(cache_status(&headers), "miss");
    let first: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(first["object"], "chat.completion");
    assert_eq!(first["model"], "gpt-test");
    assert_eq!(first["choices"][0]["message"]["role"], "assistant");
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    let answer = first["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.contains("reset my password"), "{answer}");
    let spent = first["usage"]["total_tokens"].as_u64().unwrap();
    assert!(spent > 0);
    assert_eq!(upstream.calls(), 1);

    let (_, headers, text) = post(sidecar, &tenant, &body("how do i reset my  password?")).await;
    assert_eq!(cache_status(&headers), "hit_exact");
    let again: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(again["choices"][0]["message"]["content"], answer);
    assert_eq!(again["usage"]["total_tokens"], 0, "a hit spends nothing");
    assert_eq!(headers["x-cachet-tokens-saved"], spent.to_string().as_str());
    assert_ne!(again["id"], first["id"], "every response has its own id");

    let (_, headers, _) = post(sidecar, &tenant, &body("How can I reset my password?")).await;
    assert_eq!(cache_status(&headers), "hit_semantic");
    let similarity: f32 = headers["x-cachet-similarity"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(similarity > 0.88 && similarity < 1.0, "{similarity}");

    // A near-identical trap is refused by a guard and says which one.
    let (_, headers, _) = post(sidecar, &tenant, &body("Where is order 48213?")).await;
    assert_eq!(cache_status(&headers), "miss");
    let (_, headers, _) = post(sidecar, &tenant, &body("Where is order 48231?")).await;
    assert_eq!(cache_status(&headers), "miss");
    assert_eq!(headers["x-cachet-refused-by"], "quantities");
    assert_eq!(upstream.calls(), 3);

    // The gRPC API sees what the front door stored, in the same scope.
    let lookup = sidecar
        .client()
        .await
        .lookup(LookupRequest {
            tenant: "acme".into(),
            model: "gpt-test".into(),
            messages: vec![
                msg("system", SYSTEM),
                msg("user", "How do I reset my password?"),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lookup.status(), CacheStatus::HitExact);
    assert_eq!(lookup.answer, answer);

    // Another tenant shares nothing.
    let (_, headers, _) = post(
        sidecar,
        &[("x-cachet-tenant", "globex")],
        &body("How do I reset my password?"),
    )
    .await;
    assert_eq!(cache_status(&headers), "miss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_replays_a_hit_as_server_sent_events() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let tenant = [("x-cachet-tenant", "acme")];
    let mut streamed = body("Do you ship to Canada?");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});

    let mut texts = Vec::new();
    for expected in ["miss", "hit_exact"] {
        let (status, headers, text) = post(sidecar, &tenant, &streamed).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(cache_status(&headers), expected);
        assert_eq!(headers["content-type"], "text/event-stream");
        let events = events(&text);
        assert_eq!(events.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = events[..events.len() - 1]
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect();
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert!(chunks.len() > 4, "the answer comes in pieces: {chunks:?}");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        let spent = usage["usage"]["total_tokens"].as_u64().unwrap();
        assert_eq!(spent > 0, expected == "miss", "{usage}");
        texts.push(content);
    }
    assert_eq!(texts[0], texts[1]);
    assert!(texts[0].contains("ship to Canada"));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_carry_cache_control_and_metering_labels() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let question = body("What is your refund policy?");
    let labelled = [
        ("x-cachet-tenant", "acme"),
        ("x-cachet-department", "support"),
        ("x-cachet-workflow", "triage"),
        ("x-cachet-job", "ticket-7"),
    ];
    let no_store = [("x-cachet-tenant", "acme"), ("x-cachet-cache", "no-store")];
    let (_, headers, _) = post(sidecar, &no_store, &question).await;
    assert_eq!(cache_status(&headers), "miss");
    assert!(headers.get("x-cachet-entry-id").is_none(), "nothing stored");
    let (_, headers, _) = post(sidecar, &labelled, &question).await;
    assert_eq!(cache_status(&headers), "miss", "no-store kept it out");
    assert!(headers.get("x-cachet-entry-id").is_some());
    let (_, headers, _) = post(sidecar, &labelled, &question).await;
    assert_eq!(cache_status(&headers), "hit_exact");
    // The standard header asks for a fresh answer.
    let refresh = [("x-cachet-tenant", "acme"), ("cache-control", "no-cache")];
    let (_, headers, _) = post(sidecar, &refresh, &question).await;
    assert_eq!(cache_status(&headers), "miss");
    let bypass = [("x-cachet-tenant", "acme"), ("x-cachet-cache", "bypass")];
    let (_, headers, _) = post(sidecar, &bypass, &question).await;
    assert_eq!(cache_status(&headers), "bypass");
    assert_eq!(upstream.calls(), 4);

    // Showback sees the labels that came in headers: one call spent, one hit saved.
    let report = sidecar.report(1).await;
    let support = report
        .rows
        .iter()
        .find(|r| r.dimension == "department" && r.key == "support")
        .expect("a row for the support department")
        .totals
        .unwrap();
    assert_eq!((support.upstream_calls, support.cache_hits), (1, 1));
    assert!(support.tokens_saved > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_openai_shaped_errors() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let acme = [("x-cachet-tenant", "acme")];
    let error_of =
        |text: &str| -> Value { serde_json::from_str::<Value>(text).unwrap()["error"].clone() };

    let (status, _, text) = post(sidecar, &[("x-cachet-tenant", "initech")], &body("Hi?")).await;
    assert_eq!(status, 403);
    let error = error_of(&text);
    assert_eq!(error["type"], "permission_error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("[tenants.initech]"));

    let mut tools = body("What's the weather?");
    tools["tools"] = json!([{"type": "function", "function": {"name": "weather"}}]);
    let (status, _, text) = post(sidecar, &acme, &tools).await;
    assert_eq!(status, 400);
    assert!(error_of(&text)["message"]
        .as_str()
        .unwrap()
        .contains("`tools`"));

    let empty = json!({"model": "gpt-test", "messages": []});
    let (status, _, text) = post(sidecar, &acme, &empty).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(error_of(&text)["type"], "invalid_request_error");

    let (status, _, text) = post(sidecar, &acme, &json!({"messages": "hello"})).await;
    assert_eq!(status, 400);
    assert!(error_of(&text)["message"]
        .as_str()
        .unwrap()
        .contains("not a chat completion request"));

    let (status, _, text) = post(
        sidecar,
        &[("x-cachet-tenant", "acme"), ("x-cachet-ttl", "soon")],
        &body("Hi?"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error_of(&text)["message"]
        .as_str()
        .unwrap()
        .contains("x-cachet-ttl"));

    // Bigger than server.max_request_bytes: refused before it is read in full.
    let huge = body(&"x".repeat(5 * 1024 * 1024));
    let (status, _, _) = post(sidecar, &acme, &huge).await;
    assert_eq!(status, 413);
    assert_eq!(upstream.calls(), 0, "nothing bad reached the provider");

    upstream.set_behaviour(Behaviour::Fail(500));
    let (status, _, text) = post(sidecar, &acme, &body("Is anyone there?")).await;
    assert_eq!(status, 503);
    assert_eq!(error_of(&text)["code"], "unavailable");
    upstream.set_behaviour(Behaviour::Garbage);
    let (status, _, _) = post(sidecar, &acme, &body("Is anyone there?")).await;
    assert_eq!(status, 503);
    upstream.set_behaviour(Behaviour::Answer);
    let (status, headers, _) = post(sidecar, &acme, &body("Is anyone there?")).await;
    assert_eq!(
        (status, cache_status(&headers)),
        (200, "miss"),
        "failures stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_rate_limited_on_both_apis() {
    let Fixture { sidecar, .. } = &Fixture::with_config(
        "[limits]\nrequests_per_second = 0.1\nburst = 2\n[tenants.globex]\nrequests_per_second = 0.0\n",
    )
    .await;
    let acme = [("x-cachet-tenant", "acme")];
    for _ in 0..2 {
        let (status, _, text) = post(sidecar, &acme, &body("How do I reset my password?")).await;
        assert_eq!(status, 200, "{text}");
    }
    let (status, headers, text) = post(sidecar, &acme, &body("How do I reset my password?")).await;
    assert_eq!(status, 429, "{text}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    assert!(text.contains("rate limit"));

    let refused = sidecar
        .client()
        .await
        .complete(question("acme", "How do I reset my password?"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("tenant `acme`"),
        "{}",
        refused.message()
    );
    // globex has no limit of its own.
    for _ in 0..4 {
        sidecar
            .client()
            .await
            .complete(question("globex", "How do I reset my password?"))
            .await
            .unwrap();
    }
}
