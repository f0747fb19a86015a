//! The OpenAI-compatible front door: `POST /v1/chat/completions` over HTTP, so an application
//! that uses any OpenAI SDK gets caching by changing its base URL only.
//!
//! A request goes through the same `Cache::complete` as the gRPC `Complete`: the same scopes,
//! guards, budgets and metering. What gRPC carries in fields travels in headers here:
//!
//! | request header | meaning |
//! |---|---|
//! | `x-cachet-tenant` | tenant (default `default`) |
//! | `x-cachet-department`, `x-cachet-workflow`, `x-cachet-job` | metering labels |
//! | `x-cachet-critical: true` | may use budget reserves |
//! | `x-cachet-cache: bypass \| refresh \| no-store` | cache control (comma-separated) |
//! | `cache-control: no-cache \| no-store` | the standard spelling of refresh / no-store |
//! | `x-cachet-ttl` | lifetime of the stored answer, seconds |
//! | `x-cachet-min-similarity` | demand at least this similarity for a semantic hit |
//!
//! Responses say what the cache did in `x-cachet-status` (`hit_exact`, `hit_semantic`, `miss`,
//! `bypass`), `x-cachet-similarity`, `x-cachet-entry-id`, `x-cachet-tokens-saved` and, when a
//! budget sent the request to a smaller tier, `x-cachet-downgraded-from`. The body's `usage` is
//! what this request spent upstream: zero on a hit.
//!
//! With `stream: true` the answer comes as server-sent events in the provider's chunk format;
//! a hit is replayed as a stream. A miss is streamed once the upstream has answered in full
//! (cachet stores and meters whole answers), so its first token arrives with its last.
//!
//! Fields that would change the answer but that cachet cannot forward or key on (tools,
//! response formats, `n > 1`, images) are refused with 400 rather than silently dropped.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tonic::Code;
use tracing::Instrument;

use super::rate::RateLimited;
use super::Shared;
use crate::cache::{self, format_entry_id, Answer, Control};
use crate::scope::{ChatMessage, Role, SamplingParams};
use crate::store::Labels;

/// The routes of the front door, sharing the gRPC services' cache and limits.
pub(super) fn routes(shared: Arc<Shared>, max_body_bytes: usize) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(shared)
}

/// Top-level fields that do not change the answer and are accepted without effect: end-user
/// ids, the provider's own storage, tiering and prompt-cache hints.
const IGNORED_FIELDS: &[&str] = &[
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
];

#[derive(Deserialize)]
struct ChatCompletionRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Stop>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    n: Option<u32>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    /// A participant's name: part of what the model sees, so part of the text cached on.
    #[serde(default)]
    name: Option<String>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// A refused or failed request, as the OpenAI SDKs expect errors.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: "invalid_argument",
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn rate_limited(limited: RateLimited) -> Self {
        Self {
            retry_after_secs: Some(limited.retry_after.as_secs_f64().ceil() as u64),
            ..Self::from_code(Code::ResourceExhausted, limited.to_string())
        }
    }

    /// The HTTP face of the gRPC code the same error gets on the gRPC API.
    fn from_code(code: Code, message: String) -> Self {
        let (status, kind, code) = match code {
            Code::InvalidArgument => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_argument",
            ),
            Code::FailedPrecondition => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "failed_precondition",
            ),
            Code::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "unauthenticated",
            ),
            Code::PermissionDenied => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "permission_denied",
            ),
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found_error", "not_found"),
            Code::ResourceExhausted => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "resource_exhausted",
            ),
            Code::DeadlineExceeded => (
                StatusCode::GATEWAY_TIMEOUT,
                "timeout_error",
                "deadline_exceeded",
            ),
            Code::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "unavailable",
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal",
            ),
        };
        Self {
            status,
            kind,
            code,
            message,
            retry_after_secs: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"message": self.message, "type": self.kind, "param": null, "code": self.code}
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::from_code(status.code(), status.message().to_string())
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tenant = match header(&headers, "x-cachet-tenant") {
        Ok(tenant) => tenant.unwrap_or("default").to_string(),
        Err(err) => return err.into_response(),
    };
    let span = tracing::info_span!("ChatCompletions", tenant = %tenant, model = tracing::field::Empty, stream = tracing::field::Empty);
    async move {
        match answer(&shared, tenant, &headers, &body).await {
            Ok((answer, stream)) => respond(answer, stream),
            Err(err) => err.into_response(),
        }
    }
    .instrument(span)
    .await
}

/// Parses and answers one request; says whether to stream the answer (and with usage).
async fn answer(
    shared: &Shared,
    tenant: String,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, Option<bool>), ApiError> {
    let wire: ChatCompletionRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!("the body is not a chat completion request: {e}"))
    })?;
    let span = tracing::Span::current();
    span.record("model", wire.model.as_str());
    span.record("stream", wire.stream);
    shared
        .limits
        .admit(&tenant)
        .map_err(ApiError::rate_limited)?;
    let cache = shared.ready()?;
    let stream = wire.stream.then(|| {
        wire.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    });
    let request = to_request(tenant, wire, headers)?;
    let answer = cache
        .complete(&request)
        .await
        .map_err(|err| ApiError::from(super::status(err)))?;
    Ok((answer, stream))
}

fn to_request(
    tenant: String,
    wire: ChatCompletionRequest,
    headers: &HeaderMap,
) -> Result<cache::Request, ApiError> {
    refuse_unsupported("", &wire.other)?;
    if wire.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid(
            "n must be 1: cachet stores and serves one answer per request",
        ));
    }
    let messages = wire
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let params = SamplingParams {
        temperature: wire.temperature,
        top_p: wire.top_p,
        max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
        seed: wire.seed,
        stop: match wire.stop {
            None => Vec::new(),
            Some(Stop::One(stop)) => vec![stop],
            Some(Stop::Many(stops)) => stops,
        },
        presence_penalty: wire.presence_penalty,
        frequency_penalty: wire.frequency_penalty,
    };
    let labels = Labels {
        department: header(headers, "x-cachet-department")?
            .unwrap_or_default()
            .to_string(),
        workflow: header(headers, "x-cachet-workflow")?
            .unwrap_or_default()
            .to_string(),
        job_id: header(headers, "x-cachet-job")?
            .unwrap_or_default()
            .to_string(),
    };
    Ok(cache::Request {
        tenant,
        model: wire.model,
        messages,
        params,
        control: control(headers)?,
        labels,
        critical: flag(headers, "x-cachet-critical")?,
    })
}

/// Fields the front door does not know are refused unless empty: they may change the answer.
fn refuse_unsupported(path: &str, fields: &Map<String, Value>) -> Result<(), ApiError> {
    let unsupported = fields.iter().find(|(key, value)| {
        let empty = match value {
            Value::Null => true,
            Value::Array(items) => items.is_empty(),
            Value::Bool(set) => !set,
            _ => false,
        };
        let ignored = path.is_empty() && IGNORED_FIELDS.contains(&key.as_str());
        !(empty || ignored)
    });
    match unsupported {
        Some((key, _)) => Err(ApiError::invalid(format!(
            "`{path}{key}` is not supported by cachet's front door (it would change the answer, \
             and cachet caches plain text chats); send such requests to the provider directly"
        ))),
        None => Ok(()),
    }
}

fn message(i: usize, wire: WireMessage) -> Result<ChatMessage, ApiError> {
    refuse_unsupported(&format!("messages[{i}]."), &wire.other)?;
    let role = Role::parse(&wire.role).ok_or_else(|| {
        ApiError::invalid(format!(
            "messages[{i}].role `{}` is not one of system, developer, user, assistant, tool",
            wire.role
        ))
    })?;
    let text = match wire.content {
        None => String::new(),
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(piece)) => text.push_str(&piece),
                    (kind, _) => {
                        return Err(ApiError::invalid(format!(
                            "messages[{i}].content has a `{kind}` part; cachet caches text only"
                        )))
                    }
                }
            }
            text
        }
    };
    let content = match wire.name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{name}: {text}"),
        None => text,
    };
    Ok(ChatMessage { role, content })
}

/// A header's value as text; absent is `None`, unreadable is an error.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::trim)
                .map_err(|_| ApiError::invalid(format!("header `{name}` is not plain text")))
        })
        .transpose()
}

fn flag(headers: &HeaderMap, name: &str) -> Result<bool, ApiError> {
    match header(headers, name)? {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "header `{name}: {other}` must be true or false"
        ))),
    }
}

fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<Option<T>, ApiError> {
    header(headers, name)?
        .map(|text| {
            text.parse()
                .map_err(|_| ApiError::invalid(format!("header `{name}: {text}` is not a number")))
        })
        .transpose()
}

fn control(headers: &HeaderMap) -> Result<Control, ApiError> {
    let mut control = Control {
        ttl_seconds: number(headers, "x-cachet-ttl")?.unwrap_or(0),
        min_similarity: number(headers, "x-cachet-min-similarity")?,
        ..Control::default()
    };
    let directives = [("x-cachet-cache", true), ("cache-control", false)];
    for (name, ours) in directives {
        let Some(value) = header(headers, name)? else {
            continue;
        };
        for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            match directive.to_ascii_lowercase().as_str() {
                "bypass" if ours => control.bypass = true,
                "refresh" | "no-cache" => control.refresh = true,
                "no-store" => control.no_store = true,
                _ if ours => {
                    return Err(ApiError::invalid(format!(
                        "header `{name}`: `{directive}` is not one of bypass, refresh, no-store"
                    )))
                }
                // Other standard directives (max-age, ...) do not apply to a POST.
                _ => {}
            }
        }
    }
    Ok(control)
}

/// A unique id for one response, in the provider's `chatcmpl-` form.
fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    format!(
        "chatcmpl-cachet{nanos:x}{:x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Tokens this request spent upstream: none on a hit.
fn billed_usage(answer: &Answer) -> Value {
    let usage = match answer.status {
        cache::Status::HitExact | cache::Status::HitSemantic => Default::default(),
        cache::Status::Miss | cache::Status::Bypass => answer.usage,
    };
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

fn cache_headers(answer: &Answer) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("x-cachet-status", answer.status.as_str().to_string());
    put("x-cachet-similarity", format!("{:.4}", answer.similarity));
    put("x-cachet-tokens-saved", answer.tokens_saved.to_string());
    if let Some(id) = answer.entry_id {
        put("x-cachet-entry-id", format_entry_id(id));
    }
    if let Some(from) = &answer.downgraded_from {
        put("x-cachet-downgraded-from", from.clone());
    }
    if let Some(refused_by) = answer.explanation.as_ref().and_then(|e| e.refused_by) {
        put("x-cachet-refused-by", refused_by.to_string());
    }
    headers
}

fn respond(answer: Answer, stream: Option<bool>) -> Response {
    let headers = cache_headers(&answer);
    match stream {
        None => {
            let body = json!({
                "id": completion_id(),
                "object": "chat.completion",
                "created": unix_seconds(),
                "model": answer.model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "refusal": null},
                    "logprobs": null,
                    "finish_reason": "stop",
                }],
                "usage": billed_usage(&answer),
            });
            (headers, axum::Json(body)).into_response()
        }
        Some(include_usage) => {
            let events = stream_events(&answer, include_usage)
                .into_iter()
                .map(Ok::<_, Infallible>);
            (headers, Sse::new(futures_util::stream::iter(events))).into_response()
        }
    }
}

/// The answer as the provider would stream it: a role chunk, content chunks a few words
/// each, a final chunk with the finish reason, optionally a usage chunk, then `[DONE]`.
fn stream_events(answer: &Answer, include_usage: bool) -> Vec<Event> {
    let (id, created) = (completion_id(), unix_seconds());
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": answer.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    chunks.extend(pieces(&answer.text).map(|piece| chunk(json!({ "content": piece }), None)));
    chunks.push(chunk(json!({}), Some("stop")));
    if include_usage {
        chunks.push(json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": answer.model,
            "choices": [],
            "usage": billed_usage(answer),
        }));
    }
    chunks
        .into_iter()
        .map(|c| Event::default().data(c.to_string()))
        .chain(std::iter::once(Event::default().data("[DONE]")))
        .collect()
}

/// The text cut after every fourth space, so a replay streams like a model would.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let cut = rest
            .match_indices(' ')
            .nth(3)
            .map_or(rest.len(), |(at, _)| at + 1);
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_put_the_text_back_together() {
        let text = "one two three four five six seven eight nine";
        let parts: Vec<&str> = pieces(text).collect();
        assert_eq!(parts.concat(), text);
        assert_eq!(parts[0], "one two three four ");
        assert_eq!(parts.len(), 3);
        assert_eq!(pieces("").count(), 0);
    }

    fn parse(body: Value) -> Result<cache::Request, ApiError> {
        let wire: ChatCompletionRequest = serde_json::from_value(body).unwrap();
        to_request("acme".into(), wire, &HeaderMap::new())
    }

    #[test]
    fn sdk_shaped_requests_parse_with_their_null_fields() {
        let request = parse(json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "Hello", "tool_calls": null, "refusal": null},
                {"role": "user", "content": "Bye", "name": "ann"},
            ],
            "stop": "END",
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "user": "u-1",
            "tools": [],
        }))
        .ok()
        .unwrap();
        assert_eq!(request.messages[1].content, "Hi there");
        assert_eq!(request.messages[3].content, "ann: Bye");
        assert_eq!(request.params.stop, vec!["END".to_string()]);
        assert_eq!(request.params.max_tokens, Some(20));
    }

    #[test]
    fn answer_changing_fields_are_refused_by_name() {
        let refused = |body: Value| parse(body).err().unwrap().message;
        let base = |extra: Value| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "q"}]});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        assert!(refused(base(json!({"tools": [{"type": "function"}]}))).contains("`tools`"));
        assert!(
            refused(base(json!({"response_format": {"type": "json_object"}})))
                .contains("`response_format`")
        );
        assert!(refused(base(json!({"n": 2}))).contains("n must be 1"));
        let image = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]});
        assert!(refused(base(image)).contains("`image_url` part"));
        let bad_role = json!({"messages": [{"role": "function", "content": "x"}]});
        assert!(refused(base(bad_role)).contains("`function`"));
    }

    #[test]
    fn cache_control_comes_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-cachet-cache",
            HeaderValue::from_static("bypass, no-store"),
        );
        headers.insert(
            "cache-control",
            HeaderValue::from_static("no-cache, max-age=0"),
        );
        headers.insert("x-cachet-ttl", HeaderValue::from_static("60"));
        let parsed = control(&headers).ok().unwrap();
        assert!(parsed.bypass && parsed.no_store && parsed.refresh);
        assert_eq!(parsed.ttl_seconds, 60);
        headers.insert("x-cachet-cache", HeaderValue::from_static("forever"));
        assert!(control(&headers)
            .err()
            .unwrap()
            .message
            .contains("`forever`"));
        headers.insert("x-cachet-cache", HeaderValue::from_static("refresh"));
        headers.insert("x-cachet-ttl", HeaderValue::from_static("soon"));
        assert!(control(&headers)
            .err()
            .unwrap()
            .message
            .contains("not a number"));
    }
}
