//! The quick-start demo: a small support-desk workload sent to a running sidecar over gRPC,
//! with exact repeats, paraphrases, near-miss traps and multi-turn chats, and a report of what
//! the cache answered and how many tokens it saved.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::proto::cache_client::CacheClient;
use crate::proto::{CacheStatus, CompleteRequest, Labels, Message};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the sidecar at {0} did not answer health SERVING within {1:?}: is it running, on that address?")]
    NotReady(String, Duration),
    #[error("request {step} failed: {status}")]
    Call { step: usize, status: tonic::Status },
    #[error("the OpenAI-compatible front door at {url} failed: {message}")]
    Http { url: String, message: String },
}

const MODEL: &str = "gpt-4o-mini";
const SYSTEM: &str = "You are the support assistant of an online shop. Answer briefly.";

/// One demo request: the chat after the system prompt, and what a person should expect.
struct Step {
    turns: &'static [(&'static str, &'static str)],
    expect: &'static str,
}

const WORKLOAD: &[Step] = &[
    Step {
        turns: &[("user", "How do I reset my password?")],
        expect: "new question",
    },
    Step {
        turns: &[("user", "How do I reset my password?")],
        expect: "exact repeat",
    },
    Step {
        turns: &[("user", "how do i reset my  password?")],
        expect: "repeat, other casing and spacing",
    },
    Step {
        turns: &[("user", "How can I reset my password?")],
        expect: "paraphrase",
    },
    Step {
        turns: &[("user", "What is your refund policy?")],
        expect: "new question",
    },
    Step {
        turns: &[("user", "Can you explain your refund policy?")],
        expect: "paraphrase",
    },
    Step {
        turns: &[("user", "Where is my order 48213?")],
        expect: "new question",
    },
    Step {
        turns: &[("user", "Where is my order 48231?")],
        expect: "trap: another order number",
    },
    Step {
        turns: &[("user", "Do you ship to Canada?")],
        expect: "new question",
    },
    Step {
        turns: &[("user", "Can you ship to Canada?")],
        expect: "paraphrase",
    },
    Step {
        turns: &[
            ("user", "I pay for the premium streaming plan."),
            ("assistant", "Thanks, I can help with your streaming plan."),
            ("user", "Yes, cancel it."),
        ],
        expect: "new multi-turn chat",
    },
    Step {
        turns: &[
            ("user", "I have a gym membership with you."),
            ("assistant", "Thanks, I can help with your gym membership."),
            ("user", "Yes, cancel it."),
        ],
        expect: "trap: same words, other conversation",
    },
    Step {
        turns: &[("user", "How do I reset my password?")],
        expect: "exact repeat",
    },
];

/// Runs the workload against `endpoint` as `tenant` and prints a report; then, with
/// `openai_base_url`, asks once more through the OpenAI-compatible front door.
pub async fn run(
    endpoint: &str,
    openai_base_url: Option<&str>,
    tenant: &str,
) -> Result<(), DemoError> {
    // Lazily: the demo is started beside the sidecar and may be first; until the port is open,
    // the health checks below fail and are retried like those of a sidecar still loading.
    let channel = Channel::from_shared(endpoint.to_string())
        .expect("endpoint is a URI")
        .connect_lazy();
    wait_until_serving(channel.clone(), READY_TIMEOUT)
        .await
        .map_err(|waited| DemoError::NotReady(endpoint.to_string(), waited))?;
    let mut client = CacheClient::new(channel);
    println!(
        "\ncachet demo: {} requests to {endpoint} (tenant `{tenant}`, model `{MODEL}`)\n",
        WORKLOAD.len()
    );
    println!(
        "{:>2}  {:<13} {:>6} {:>9} {:>6}  {:<44} expected",
        "#", "status", "sim", "latency", "saved", "last message"
    );
    let (mut hits, mut used, mut saved) = (0u32, 0u64, 0u64);
    for (step_no, step) in WORKLOAD.iter().enumerate() {
        let mut messages = vec![Message {
            role: "system".into(),
            content: SYSTEM.into(),
        }];
        messages.extend(step.turns.iter().map(|(role, content)| Message {
            role: role.to_string(),
            content: content.to_string(),
        }));
        let started = Instant::now();
        let response = client
            .complete(CompleteRequest {
                tenant: tenant.to_string(),
                model: MODEL.to_string(),
                messages,
                // Who is asking, for the showback (`cachet report`).
                labels: Some(Labels {
                    department: "support".into(),
                    workflow: "help-desk".into(),
                    job_id: "demo".into(),
                    critical: false,
                }),
                ..Default::default()
            })
            .await
            .map_err(|status| DemoError::Call {
                step: step_no + 1,
                status,
            })?
            .into_inner();
        let elapsed = started.elapsed();
        let status = match response.status() {
            CacheStatus::HitExact => "HIT exact",
            CacheStatus::HitSemantic => "HIT semantic",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
            CacheStatus::Unspecified => "?",
        };
        if response.tokens_saved > 0 {
            hits += 1;
            saved += u64::from(response.tokens_saved);
        } else {
            used += response.usage.map_or(0, |u| u64::from(u.total_tokens));
        }
        let last = step.turns.last().map_or("", |(_, c)| c);
        println!(
            "{:>2}  {:<13} {:>6.3} {:>7.1}ms {:>6}  {:<44} {}",
            step_no + 1,
            status,
            response.similarity,
            elapsed.as_secs_f64() * 1000.0,
            response.tokens_saved,
            last,
            step.expect
        );
    }
    let total = WORKLOAD.len() as u32;
    println!(
        "\n{hits} of {total} requests answered from the cache; {used} tokens sent upstream, {saved} tokens saved ({:.0}% of the total).",
        100.0 * saved as f64 / (used + saved).max(1) as f64
    );
    if let Some(base_url) = openai_base_url {
        ask_over_http(base_url, tenant).await?;
    }
    println!("Run it again: entries persist in sled, so this time even the new questions are answered from the cache.");
    println!("(The upstream here is cachet's SIMULATED provider: its answers are placeholders, its token counts are estimates.)\n");
    Ok(())
}

/// One paraphrase through `POST /v1/chat/completions`, as any OpenAI SDK would send it: the
/// gRPC and HTTP faces share one cache.
async fn ask_over_http(base_url: &str, tenant: &str) -> Result<(), DemoError> {
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let failed = |message: String| DemoError::Http {
        url: url.clone(),
        message,
    };
    let question = "What's your policy on refunds?";
    let response = reqwest::Client::new()
        .post(&url)
        .header("x-cachet-tenant", tenant)
        .header("x-cachet-department", "support")
        .json(&serde_json::json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
            ],
        }))
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let (status, saved) = (header("x-cachet-status"), header("x-cachet-tokens-saved"));
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    println!(
        "Over HTTP ({url}, as an OpenAI SDK sends it): \"{question}\" -> x-cachet-status: {status}, x-cachet-tokens-saved: {saved}"
    );
    Ok(())
}

/// Longest a sidecar may take to report SERVING: loading the model and a large index.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Polls `grpc.health.v1` until the sidecar reports SERVING (it loads its model first).
pub async fn wait_until_serving(channel: Channel, timeout: Duration) -> Result<(), Duration> {
    let mut health = HealthClient::new(channel);
    let started = Instant::now();
    while started.elapsed() < timeout {
        let reply = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if reply.is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(timeout)
}
