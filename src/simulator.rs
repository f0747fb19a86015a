//! A SIMULATED OpenAI-compatible provider, for trying cachet out and for its tests.
//!
//! No real model is reachable from a sandbox or CI, so this stands in for one: a real HTTP
//! server speaking the chat-completions protocol, answering with text derived from the question
//! after a configurable delay, and reporting token usage the way a provider does. It is not a
//! model and says so in every answer. Tests can make it misbehave (slow, failing, garbage) to
//! check how cachet copes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How the simulator answers the next requests.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Behaviour {
    /// Answer normally.
    #[default]
    Answer,
    /// Answer only after this long (to trip timeouts).
    Stall(Duration),
    /// Reply with this HTTP status and an OpenAI-style error body.
    Fail(u16),
    /// Reply 200 with a body that is not a chat completion.
    Garbage,
}

struct Shared {
    latency: Duration,
    behaviour: Mutex<Behaviour>,
    calls: AtomicU64,
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Simulator {
    /// Starts serving on `listen` (port 0 picks a free port).
    pub async fn start(listen: SocketAddr, latency: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            latency,
            behaviour: Mutex::new(Behaviour::Answer),
            calls: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(Arc::clone(&shared));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure as `upstream.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Chat-completion requests received so far.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().expect("behaviour lock") = behaviour;
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<Value>,
) -> Response {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let behaviour = shared.behaviour.lock().expect("behaviour lock").clone();
    match behaviour {
        Behaviour::Answer => {}
        Behaviour::Stall(delay) => tokio::time::sleep(delay).await,
        Behaviour::Fail(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body =
                json!({"error": {"message": "simulated provider failure", "type": "server_error"}});
            return (status, Json(body)).into_response();
        }
        Behaviour::Garbage => {
            return (StatusCode::OK, "<html>gateway says hi</html>").into_response()
        }
    }
    tokio::time::sleep(shared.latency).await;
    let model = request["model"].as_str().unwrap_or("unknown").to_string();
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let question = messages
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let answer = format!(
        "[simulated {model}] This is a simulated answer to \"{question}\". A real provider would \
         reason about the question here; the simulator only echoes it so that cached and fresh \
         answers can be told apart and token usage can be metered."
    );
    let prompt_tokens: u32 = messages
        .iter()
        .map(|m| approximate_tokens(m["content"].as_str().unwrap_or_default()) + 4)
        .sum();
    let completion_tokens = approximate_tokens(&answer);
    Json(json!({
        "id": format!("chatcmpl-sim-{}", shared.calls.load(Ordering::SeqCst)),
        "object": "chat.completion",
        "created": crate::store::now_millis() / 1000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
    .into_response()
}

/// About four characters a token, as for English text with common BPE vocabularies.
fn approximate_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4).max(1)
}
