//! Client for an OpenAI-compatible chat-completions API (OpenAI, vLLM, Ollama, LiteLLM, ...).
//!
//! Only what a cache needs: send the chat, get the first choice's text, the model that answered
//! and the `usage` the provider reports, which is what the entry is metered by. Anything else
//! the provider says (an error status, a body that is not a completion, silence past the
//! timeout) becomes an [`UpstreamError`] that tells the operator what to look at.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scope::{ChatMessage, SamplingParams};
use crate::store::Usage;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("upstream {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("upstream {url} refused the request with HTTP {status}: {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("upstream {url} failed with HTTP {status}: {body}")]
    Failed {
        url: String,
        status: u16,
        body: String,
    },
    #[error("upstream {url} sent a response that is not a chat completion: {message}")]
    Malformed { url: String, message: String },
}

/// An answer from the upstream model.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub content: String,
    pub model: String,
    pub usage: Usage,
}

#[derive(Clone)]
pub struct Upstream {
    http: reqwest::Client,
    url: String,
    api_key: Option<String>,
    timeout: Duration,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    usage: WireUsage,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireAnswer,
}

#[derive(Deserialize)]
struct WireAnswer {
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
    #[serde(default)]
    total_tokens: Option<u32>,
}

/// Longest provider error body quoted back to the caller.
const QUOTED_BODY_CHARS: usize = 300;

impl Upstream {
    /// `base_url` up to and including `/v1`; `api_key` sent as a bearer token if present.
    pub fn new(base_url: &str, api_key: Option<String>, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            timeout,
        }
    }

    pub async fn complete(
        &self,
        model: &str,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<Completion, UpstreamError> {
        let body = WireRequest {
            model,
            messages: messages
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str(),
                    content: &m.content,
                })
                .collect(),
            temperature: params.temperature,
            top_p: params.top_p,
            max_tokens: params.max_tokens,
            seed: params.seed,
            stop: &params.stop,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
        };
        let mut request = self.http.post(&self.url).json(&body).timeout(self.timeout);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        if !status.is_success() {
            let body = quote(&bytes);
            let status = status.as_u16();
            let url = self.url.clone();
            // 4xx other than rate limiting: our request or our key is wrong, retrying won't help.
            return Err(if (400..500).contains(&status) && status != 429 {
                UpstreamError::Rejected { url, status, body }
            } else {
                UpstreamError::Failed { url, status, body }
            });
        }
        self.parse(&bytes, model)
    }

    fn parse(&self, bytes: &[u8], requested_model: &str) -> Result<Completion, UpstreamError> {
        let malformed = |message: String| UpstreamError::Malformed {
            url: self.url.clone(),
            message,
        };
        let wire: WireResponse = serde_json::from_slice(bytes)
            .map_err(|e| malformed(format!("{e} in {}", quote(bytes))))?;
        let content = wire
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| malformed("no choice with message content".into()))?;
        let u = wire.usage;
        let total = u
            .total_tokens
            .unwrap_or(u.prompt_tokens + u.completion_tokens);
        Ok(Completion {
            content,
            model: wire.model.unwrap_or_else(|| requested_model.to_string()),
            usage: Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: total,
            },
        })
    }

    fn transport_error(&self, err: reqwest::Error) -> UpstreamError {
        if err.is_timeout() {
            UpstreamError::Timeout {
                url: self.url.clone(),
                after: self.timeout,
            }
        } else if err.is_decode() || err.is_body() {
            UpstreamError::Malformed {
                url: self.url.clone(),
                message: err.to_string(),
            }
        } else {
            UpstreamError::Unreachable {
                url: self.url.clone(),
                message: error_chain(&err),
            }
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut quoted: String = text.chars().take(QUOTED_BODY_CHARS).collect();
    if text.chars().count() > QUOTED_BODY_CHARS {
        quoted.push('…');
    }
    format!("`{quoted}`")
}
