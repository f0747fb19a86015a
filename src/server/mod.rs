//! The faces of the sidecar, each on a port of its own so each can be bound to its own
//! interface (or turned off):
//!
//! - `server.listen`: the gRPC cache API (`cachet.v1.Cache`), optionally over TLS;
//! - `server.admin_listen`: the gRPC admin API (`cachet.v1.Admin`), bearer-token protected;
//! - `server.http_listen`: the OpenAI-compatible HTTP front door ([`openai`]);
//! - `server.metrics_listen`: Prometheus `GET /metrics`.
//!
//! Both gRPC ports carry `grpc.health.v1` and reflection. The ports open at once and health says
//! NOT_SERVING while the model and the indexes load, so an orchestrator can tell "starting" from
//! "dead"; calls made meanwhile get UNAVAILABLE. On shutdown health turns NOT_SERVING first,
//! every port stops accepting and drains its in-flight calls, then the indexes are checkpointed
//! and sled is flushed.

mod openai;
mod rate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::{error, info, warn, Instrument};

use self::rate::RateLimits;

use crate::breaker::BreakerError;
use crate::budget::{BudgetError, Level};
use crate::cache::{self, format_entry_id, Cache, CacheError, Control, Explanation, Target};
use crate::config::{BudgetConfig, Config, Period, TierConfig, TlsConfig};
use crate::embed::EmbedError;
use crate::meter::{dollars, Totals};
use crate::proto::admin_server::{Admin as AdminApi, AdminServer};
use crate::proto::cache_server::{Cache as CacheApi, CacheServer};
use crate::proto::{self, invalidate_request};
use crate::router::RouterError;
use crate::scope::{ChatMessage, Role, SamplingParams};
use crate::store::{Labels, StoreError, Usage};
use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start: {0}")]
    Load(#[from] CacheError),
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("HTTP front door failed: {0}")]
    Http(std::io::Error),
    #[error("cannot set up TLS on server.listen: {0}")]
    Tls(String),
}

/// What every face shares: the cache once loaded, the admin token and the rate limits.
struct Shared {
    cache: OnceCell<Arc<Cache>>,
    admin_token: Option<String>,
    limits: RateLimits,
}

/// The addresses the sidecar is bound to (ports resolved when configured as 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub api: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

/// The `cachet.v1.Cache` implementation.
pub struct CacheService(Arc<Shared>);

/// The `cachet.v1.Admin` implementation: every call needs the admin token.
pub struct AdminService(Arc<Shared>);

impl Shared {
    /// Counts a cache call against its tenant's rate limit.
    fn admit(&self, tenant: &str) -> Result<(), Status> {
        self.limits
            .admit(tenant)
            .map_err(|limited| Status::resource_exhausted(limited.to_string()))
    }

    fn ready(&self) -> Result<&Arc<Cache>, Status> {
        self.cache.get().ok_or_else(|| {
            Status::unavailable("the sidecar is still loading its model and index; retry shortly")
        })
    }

    /// What every chat call does first: counts it against its tenant's rate limit, checks the
    /// sidecar is ready, and reads the chat into a cache request (the rest stays in `wire`).
    fn admit_chat(
        &self,
        wire: &mut impl ChatCall,
    ) -> Result<(&Arc<Cache>, cache::Request), Status> {
        self.admit(wire.tenant())?;
        let cache = self.ready()?;
        Ok((cache, wire.take_request()?))
    }

    /// Admin calls carry `authorization: Bearer <token>`, compared in constant time.
    fn authorize_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.admin_token else {
            return Err(Status::unauthenticated(
                "admin calls are disabled: no admin token is configured (set the variable named by admin.token_env, CACHET_ADMIN_TOKEN by default)",
            ));
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(
                    "admin call without `authorization: Bearer <admin token>` metadata",
                )
            })?;
        if constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated("the admin token is wrong"))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn upstream_code(err: &UpstreamError) -> Code {
    match err {
        UpstreamError::Timeout { .. } => Code::DeadlineExceeded,
        // Our request or our key is wrong: retrying won't help.
        UpstreamError::Rejected { .. } => Code::FailedPrecondition,
        _ => Code::Unavailable,
    }
}

/// Maps a cache error to the gRPC status a client can act on.
fn status(err: CacheError) -> Status {
    let code = match &err {
        CacheError::Invalid(_) => Code::InvalidArgument,
        CacheError::UnknownTenant(_) => Code::PermissionDenied,
        CacheError::NotFound(_) => Code::NotFound,
        CacheError::Router(RouterError::UnknownModel { .. }) => Code::InvalidArgument,
        CacheError::Router(RouterError::CircuitOpen { .. }) => Code::Unavailable,
        CacheError::Router(RouterError::Invalid(_)) => Code::InvalidArgument,
        CacheError::Router(RouterError::Store(_)) => Code::Internal,
        CacheError::Budget(BudgetError::Exhausted(_) | BudgetError::LimitReached { .. }) => {
            Code::ResourceExhausted
        }
        CacheError::Budget(BudgetError::Ledger(_)) => Code::Internal,
        CacheError::Budget(BudgetError::Invalid(_)) => Code::InvalidArgument,
        CacheError::Breaker(BreakerError::Tripped { .. }) => Code::FailedPrecondition,
        CacheError::Breaker(BreakerError::Store(_)) => Code::Internal,
        CacheError::Budget(BudgetError::Fleet(e))
        | CacheError::Breaker(BreakerError::Fleet(e))
        | CacheError::Fleet(e) => e.code(),
        CacheError::Router(RouterError::Upstream(e)) => upstream_code(e),
        CacheError::Upstream(e) => upstream_code(e),
        CacheError::Store(StoreError::DiskFull(_)) => Code::ResourceExhausted,
        CacheError::Index(crate::index::IndexError::Store(StoreError::DiskFull(_))) => {
            Code::ResourceExhausted
        }
        CacheError::Embed(EmbedError::WorkerGone) => Code::Unavailable,
        CacheError::Store(_)
        | CacheError::Index(_)
        | CacheError::Embed(_)
        | CacheError::WordNet(_) => Code::Internal,
    };
    if code == Code::Internal {
        error!(%err, "internal error");
    }
    Status::new(code, err.to_string())
}

fn messages(wire: Vec<proto::Message>) -> Result<Vec<ChatMessage>, Status> {
    wire.into_iter()
        .enumerate()
        .map(|(i, m)| {
            let role = Role::parse(&m.role).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "messages[{i}].role `{}` is not one of system, developer, user, assistant, tool",
                    m.role
                ))
            })?;
            Ok(ChatMessage { role, content: m.content })
        })
        .collect()
}

fn params(wire: Option<proto::SamplingParams>) -> SamplingParams {
    let p = wire.unwrap_or_default();
    SamplingParams {
        temperature: p.temperature,
        top_p: p.top_p,
        max_tokens: p.max_tokens,
        seed: p.seed,
        stop: p.stop,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
    }
}

/// A call that carries a chat (Lookup, Store, Complete): prost gives their shared fields no
/// shared type, so this reads them the same way for each.
trait ChatCall {
    fn tenant(&self) -> &str;
    /// Moves the chat's fields out into a cache request.
    fn take_request(&mut self) -> Result<cache::Request, Status>;
}

macro_rules! chat_call {
    ($($wire:ty),*) => {$(
        impl ChatCall for $wire {
            fn tenant(&self) -> &str {
                &self.tenant
            }

            fn take_request(&mut self) -> Result<cache::Request, Status> {
                to_request(
                    std::mem::take(&mut self.tenant),
                    std::mem::take(&mut self.model),
                    std::mem::take(&mut self.messages),
                    self.params.take(),
                    self.cache_control.take(),
                    self.labels.take(),
                )
            }
        }
    )*};
}

chat_call!(
    proto::LookupRequest,
    proto::StoreRequest,
    proto::CompleteRequest
);

/// A cache request from the fields every cache RPC carries, checked as far as the wire can be.
fn to_request(
    tenant: String,
    model: String,
    wire_messages: Vec<proto::Message>,
    wire_params: Option<proto::SamplingParams>,
    control: Option<proto::CacheControl>,
    labels: Option<proto::Labels>,
) -> Result<cache::Request, Status> {
    let control = control.unwrap_or_default();
    let labels = labels.unwrap_or_default();
    Ok(cache::Request {
        tenant,
        model,
        messages: messages(wire_messages)?,
        params: params(wire_params),
        control: Control {
            bypass: control.bypass,
            refresh: control.refresh,
            no_store: control.no_store,
            ttl_seconds: control.ttl_seconds,
            min_similarity: control.min_similarity,
        },
        critical: labels.critical,
        labels: Labels {
            department: labels.department,
            workflow: labels.workflow,
            job_id: labels.job_id,
        },
    })
}

fn wire_status(status: cache::Status) -> proto::CacheStatus {
    match status {
        cache::Status::HitExact => proto::CacheStatus::HitExact,
        cache::Status::HitSemantic => proto::CacheStatus::HitSemantic,
        cache::Status::Miss => proto::CacheStatus::Miss,
        cache::Status::Bypass => proto::CacheStatus::Bypass,
    }
}

fn wire_usage(u: Usage) -> proto::TokenUsage {
    proto::TokenUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.total_tokens,
    }
}

fn wire_explanation(e: Explanation) -> proto::MatchExplanation {
    proto::MatchExplanation {
        threshold: e.threshold,
        similarity: e.similarity,
        context_similarity: e.context_similarity,
        context_threshold: e.context_threshold,
        candidate_entry_id: e.candidate.map(format_entry_id).unwrap_or_default(),
        guards_checked: e.guards_checked.iter().map(|g| g.to_string()).collect(),
        refused_by: e.refused_by.unwrap_or_default().to_string(),
    }
}

fn wire_totals(t: &Totals) -> proto::UsageTotals {
    proto::UsageTotals {
        requests: t.requests,
        upstream_calls: t.upstream_calls,
        cache_hits: t.cache_hits,
        prompt_tokens: t.prompt_tokens,
        completion_tokens: t.completion_tokens,
        cost_usd: dollars(t.cost_micro_usd),
        tokens_saved: t.tokens_saved,
        saved_usd: dollars(t.saved_micro_usd),
    }
}

fn wire_row(dimension: &str, key: &str, totals: &Totals) -> proto::UsageRow {
    proto::UsageRow {
        dimension: dimension.to_string(),
        key: key.to_string(),
        totals: Some(wire_totals(totals)),
    }
}

#[tonic::async_trait]
impl AdminApi for AdminService {
    async fn compact(
        &self,
        request: Request<proto::CompactRequest>,
    ) -> Result<Response<proto::CompactResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let cache = Arc::clone(self.0.ready()?);
        let dropped = tokio::task::spawn_blocking(move || cache.compact())
            .await
            .map_err(|e| Status::internal(format!("compaction failed: {e}")))?
            .map_err(status)?;
        info!(tombstones_dropped = dropped, "compacted");
        Ok(Response::new(proto::CompactResponse {
            tombstones_dropped: dropped as u64,
        }))
    }

    async fn set_tier(
        &self,
        request: Request<proto::SetTierRequest>,
    ) -> Result<Response<proto::SetTierResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let cache = self.0.ready()?;
        let r = request.into_inner();
        let optional = |text: String| Some(text).filter(|t| !t.is_empty());
        let tier = (!r.remove).then(|| TierConfig {
            name: r.name.clone(),
            model: r.model,
            base_url: optional(r.base_url),
            api_key_env: optional(r.api_key_env),
            input_usd_per_mtok: r.input_usd_per_mtok,
            output_usd_per_mtok: r.output_usd_per_mtok,
        });
        cache.set_tier(&r.name, tier).await.map_err(status)?;
        Ok(Response::new(proto::SetTierResponse {}))
    }

    async fn set_budget(
        &self,
        request: Request<proto::SetBudgetRequest>,
    ) -> Result<Response<proto::SetBudgetResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let cache = self.0.ready()?;
        let r = request.into_inner();
        let level: Level = r
            .level
            .parse()
            .map_err(|e: BudgetError| Status::invalid_argument(e.to_string()))?;
        let budget = r
            .budget
            .map(|b| -> Result<BudgetConfig, Status> {
                Ok(BudgetConfig {
                    period: match b.period.as_str() {
                        "day" => Period::Day,
                        "week" => Period::Week,
                        "month" | "" => Period::Month,
                        other => {
                            return Err(Status::invalid_argument(format!(
                                "budget.period `{other}` is not day, week or month"
                            )))
                        }
                    },
                    target_usd: b.target_usd,
                    ceiling_usd: b.ceiling_usd,
                    reserve_usd: b.reserve_usd,
                    owner: b.owner,
                    max_calls: b.max_calls,
                    max_tokens: b.max_tokens,
                    max_retries: b.max_retries,
                })
            })
            .transpose()?;
        cache
            .set_budget(level, &r.name, budget)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SetBudgetResponse {}))
    }

    async fn reset_job(
        &self,
        request: Request<proto::ResetJobRequest>,
    ) -> Result<Response<proto::ResetJobResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let cache = self.0.ready()?;
        let job = request.into_inner().job_id;
        if job.is_empty() {
            return Err(Status::invalid_argument("job_id is required"));
        }
        let was_stopped = cache.reset_job(&job).map_err(status)?;
        tracing::info!(job, was_stopped, "job reset by an operator");
        Ok(Response::new(proto::ResetJobResponse { was_stopped }))
    }

    async fn report(
        &self,
        request: Request<proto::ReportRequest>,
    ) -> Result<Response<proto::ReportResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let cache = self.0.ready()?;
        let days = match request.into_inner().days {
            0 => 30,
            days => days,
        };
        let report = cache.report(days).await.map_err(status)?;
        Ok(Response::new(proto::ReportResponse {
            since_unix_ms: report.since_ms,
            until_unix_ms: report.until_ms,
            totals: Some(wire_totals(&report.totals)),
            rows: report
                .by
                .iter()
                .flat_map(|(dimension, keys)| {
                    keys.iter().map(move |(key, t)| wire_row(dimension, key, t))
                })
                .collect(),
            top_consumers: report
                .top_consumers
                .iter()
                .map(|(key, t)| wire_row("top", key, t))
                .collect(),
            days: report
                .days
                .iter()
                .map(|(day, t)| wire_row("day", day, t))
                .collect(),
            anomalies: report.anomalies,
        }))
    }

    async fn set_threshold(
        &self,
        request: Request<proto::SetThresholdRequest>,
    ) -> Result<Response<proto::SetThresholdResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let r = request.into_inner();
        let span = tracing::info_span!("SetThreshold", tenant = %r.tenant);
        async move {
            let cache = self.0.ready()?;
            let threshold = (r.threshold != 0.0).then_some(r.threshold);
            let previous = cache
                .set_threshold(&r.tenant, threshold)
                .await
                .map_err(status)?;
            Ok(Response::new(proto::SetThresholdResponse {
                previous,
                threshold: cache.tenant_threshold(&r.tenant),
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_stats(
        &self,
        request: Request<proto::GetStatsRequest>,
    ) -> Result<Response<proto::GetStatsResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let cache = self.0.ready()?;
        let stats = cache.stats();
        Ok(Response::new(proto::GetStatsResponse {
            requests_by_status: stats.by_status().into_iter().collect(),
            refusals: stats.refusals().into_iter().collect(),
            thresholds: cache.thresholds().into_iter().collect(),
            entries: cache.entry_count() as u64,
            tokens_saved: stats.tokens_saved(),
        }))
    }
}

#[tonic::async_trait]
impl CacheApi for CacheService {
    async fn lookup(
        &self,
        request: Request<proto::LookupRequest>,
    ) -> Result<Response<proto::LookupResponse>, Status> {
        let started = Instant::now();
        let mut r = request.into_inner();
        let span = tracing::info_span!("Lookup", tenant = %r.tenant, model = %r.model);
        async move {
            let (cache, request) = self.0.admit_chat(&mut r)?;
            let lookup = cache.lookup(&request).await.map_err(status)?;
            let response = match lookup.hit {
                Some(hit) => proto::LookupResponse {
                    hit: true,
                    similarity: hit.similarity,
                    entry_id: format_entry_id(hit.id),
                    status: wire_status(lookup.status).into(),
                    usage: Some(wire_usage(hit.entry.usage)),
                    tokens_saved: hit.entry.usage.total_tokens,
                    model: hit.entry.answered_by,
                    answer: hit.entry.answer,
                    explanation: lookup.explanation.map(wire_explanation),
                },
                None => proto::LookupResponse {
                    similarity: lookup.best_similarity.unwrap_or(0.0),
                    status: wire_status(lookup.status).into(),
                    explanation: lookup.explanation.map(wire_explanation),
                    ..Default::default()
                },
            };
            Ok(timed(response, started))
        }
        .instrument(span)
        .await
    }

    async fn store(
        &self,
        request: Request<proto::StoreRequest>,
    ) -> Result<Response<proto::StoreResponse>, Status> {
        let started = Instant::now();
        let mut r = request.into_inner();
        let span = tracing::info_span!("Store", tenant = %r.tenant, model = %r.model);
        async move {
            let (cache, request) = self.0.admit_chat(&mut r)?;
            let usage = r.usage.unwrap_or_default();
            let usage = Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                total_tokens: if usage.total_tokens == 0 {
                    usage.prompt_tokens + usage.completion_tokens
                } else {
                    usage.total_tokens
                },
            };
            let stored = cache
                .store(&request, &r.answer, usage, &r.answered_by)
                .await
                .map_err(status)?;
            let response = proto::StoreResponse {
                entry_id: stored.id.map(format_entry_id).unwrap_or_default(),
                replaced: stored.replaced,
            };
            Ok(timed(response, started))
        }
        .instrument(span)
        .await
    }

    async fn complete(
        &self,
        request: Request<proto::CompleteRequest>,
    ) -> Result<Response<proto::CompleteResponse>, Status> {
        let started = Instant::now();
        let mut r = request.into_inner();
        let span = tracing::info_span!("Complete", tenant = %r.tenant, model = %r.model);
        async move {
            let (cache, request) = self.0.admit_chat(&mut r)?;
            let answer = cache.complete(&request).await.map_err(status)?;
            let response = proto::CompleteResponse {
                answer: answer.text,
                status: wire_status(answer.status).into(),
                similarity: answer.similarity,
                entry_id: answer.entry_id.map(format_entry_id).unwrap_or_default(),
                usage: Some(wire_usage(answer.usage)),
                tokens_saved: answer.tokens_saved,
                model: answer.model,
                explanation: answer.explanation.map(wire_explanation),
                downgraded_from: answer.downgraded_from.unwrap_or_default(),
            };
            Ok(timed(response, started))
        }
        .instrument(span)
        .await
    }

    async fn invalidate(
        &self,
        request: Request<proto::InvalidateRequest>,
    ) -> Result<Response<proto::InvalidateResponse>, Status> {
        self.0.authorize_admin(&request)?;
        let r = request.into_inner();
        let span = tracing::info_span!("Invalidate", tenant = %r.tenant);
        async move {
            let cache = self.0.ready()?;
            let target = match r.target {
                Some(invalidate_request::Target::EntryId(id)) => Target::Entry(id),
                Some(invalidate_request::Target::Scope(scope)) => Target::Scope {
                    model: scope.model,
                    messages: messages(scope.messages)?,
                    params: params(scope.params),
                },
                Some(invalidate_request::Target::WholeTenant(true)) => Target::WholeTenant,
                Some(invalidate_request::Target::WholeTenant(false)) | None => {
                    return Err(Status::invalid_argument(
                        "say what to invalidate: entry_id, scope, or whole_tenant = true",
                    ))
                }
            };
            let removed = cache.invalidate(&r.tenant, &target).await.map_err(status)?;
            Ok(Response::new(proto::InvalidateResponse { removed }))
        }
        .instrument(span)
        .await
    }
}

/// Sets both the overall status ("", what Kubernetes probes ask by default) and the service's.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(proto::cache_server::SERVICE_NAME, status)
        .await;
}

/// Serves `GET /metrics`: 503 until the cache is loaded. Not drained on shutdown: a scrape
/// cut short loses nothing.
fn serve_metrics(listener: TcpListener, shared: Arc<Shared>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let shared = Arc::clone(&shared);
            async move {
                match shared.cache.get() {
                    Some(cache) => (axum::http::StatusCode::OK, crate::metrics::render(cache)),
                    None => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "loading\n".to_string(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            error!(%err, "metrics server stopped");
        }
    });
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_error = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

async fn bind_optional(
    addr: Option<SocketAddr>,
) -> Result<Option<(TcpListener, SocketAddr)>, ServeError> {
    match addr {
        Some(addr) => bind(addr).await.map(Some),
        None => Ok(None),
    }
}

fn tls_config(tls: &TlsConfig) -> Result<ServerTlsConfig, ServeError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ServeError::Tls(format!("{}: {e}", path.display())))
    };
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&tls.cert_file)?,
        read(&tls.key_file)?,
    ));
    if let Some(ca) = &tls.client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(config)
}

fn reflection() -> tonic_reflection::server::v1::ServerReflectionServer<
    impl tonic_reflection::server::v1::ServerReflection,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("embedded descriptors are valid")
}

/// Response metadata key with the time the sidecar spent on a call, in the W3C Server-Timing
/// format (`cachet;dur=1.234`, milliseconds): lets a client tell the sidecar's time from its own
/// and the network's (`cachet bench` reports both).
pub const SERVER_TIMING: &str = "server-timing";

/// `message` as a response that says how long the handler took since `started`.
fn timed<T>(message: T, started: Instant) -> Response<T> {
    let mut response = Response::new(message);
    let timing = format!("cachet;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(value) = timing.parse() {
        response.metadata_mut().insert(SERVER_TIMING, value);
    }
    response
}

/// Accepted gRPC connections skip Nagle: small request/response pairs would otherwise wait
/// ~40 ms on delayed ACKs.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Runs the sidecar until `shutdown` completes. `on_listening` is told the bound addresses
/// (useful with port 0) once every port is open, before the model loads. Each config sent on
/// `reloads` (a re-read config file) has its thresholds and budgets applied at once.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut reloads: tokio::sync::mpsc::Receiver<Config>,
    on_listening: impl FnOnce(Bound),
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let server = &config.server;
    // Every port is bound before anything is announced: a taken port fails the start.
    let (api_listener, api) = bind(server.listen).await?;
    let admin = bind_optional(server.admin_listen.0).await?;
    let http = bind_optional(server.http_listen.0).await?;
    let metrics = bind_optional(server.metrics_listen.0).await?;
    let bound = Bound {
        api,
        admin: admin.as_ref().map(|(_, addr)| *addr),
        http: http.as_ref().map(|(_, addr)| *addr),
        metrics: metrics.as_ref().map(|(_, addr)| *addr),
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::NotServing).await;
    let admin_token = Some(config.admin.token_env.as_str())
        .filter(|name| !name.is_empty())
        .and_then(|name| std::env::var(name).ok())
        .filter(|token| !token.is_empty());
    let shared = Arc::new(Shared {
        cache: OnceCell::new(),
        admin_token,
        limits: RateLimits::new(&config),
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stop_rx = stop_rx.clone();
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        }
    };
    let mut faces: Vec<tokio::task::JoinHandle<Result<(), ServeError>>> = Vec::new();

    let mut api_server = tonic::transport::Server::builder();
    if let Some(tls) = &server.tls {
        api_server = api_server.tls_config(tls_config(tls)?)?;
    }
    let cache_api = CacheServer::new(CacheService(Arc::clone(&shared)))
        .max_decoding_message_size(server.max_request_bytes);
    let serving = api_server
        .trace_fn(|_| tracing::info_span!("grpc"))
        .add_service(health_service.clone())
        .add_service(reflection())
        .add_service(cache_api)
        .serve_with_incoming_shutdown(incoming(api_listener), stopped());
    faces.push(tokio::spawn(async move { Ok(serving.await?) }));

    if let Some((listener, addr)) = admin {
        let admin_api = AdminServer::new(AdminService(Arc::clone(&shared)))
            .max_decoding_message_size(server.max_request_bytes);
        let serving = tonic::transport::Server::builder()
            .trace_fn(|_| tracing::info_span!("grpc_admin"))
            .add_service(health_service)
            .add_service(reflection())
            .add_service(admin_api)
            .serve_with_incoming_shutdown(incoming(listener), stopped());
        faces.push(tokio::spawn(async move { Ok(serving.await?) }));
        info!(%addr, "admin API");
    }
    if let Some((listener, addr)) = http {
        let app = openai::routes(Arc::clone(&shared), server.max_request_bytes);
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serving = axum::serve(listener, app).with_graceful_shutdown(stopped());
        faces.push(tokio::spawn(async move {
            serving.await.map_err(ServeError::Http)
        }));
        info!(%addr, "OpenAI-compatible HTTP on /v1/chat/completions");
    }
    if let Some((listener, addr)) = metrics {
        serve_metrics(listener, Arc::clone(&shared));
        info!(%addr, "metrics on /metrics");
    }
    info!(%api, tls = server.tls.is_some(), "listening; loading model and index");
    on_listening(bound);

    let started = Instant::now();
    let load_config = Arc::clone(&config);
    let (cache, report) = tokio::task::spawn_blocking(move || Cache::open(load_config))
        .await
        .expect("loader panicked")?;
    let cache = Arc::new(cache);
    cache.spawn_checkpointer();
    cache.spawn_sweeper();
    cache.start_fleet().await;
    let _ = shared.cache.set(Arc::clone(&cache));
    let reloading = Arc::clone(&cache);
    tokio::spawn(async move {
        while let Some(config) = reloads.recv().await {
            if let Err(err) = reloading.reload(config) {
                error!(%err, "reloading thresholds and budgets failed; the previous ones stay");
            }
        }
    });
    set_health(&health, ServingStatus::Serving).await;
    info!(
        entries = cache.entry_count(),
        scopes = report.scopes,
        from_checkpoint = report.from_checkpoint,
        rebuilt = report.rebuilt,
        replayed = report.replayed_entries,
        load_ms = started.elapsed().as_millis() as u64,
        "ready"
    );

    shutdown.await;
    info!("shutting down: draining in-flight calls");
    set_health(&health, ServingStatus::NotServing).await;
    let _ = stop_tx.send(true);
    let drain = Duration::from_secs(config.server.drain_secs);
    let drained = tokio::time::timeout(drain, async {
        for face in &mut faces {
            face.await.expect("server task panicked")?;
        }
        Ok::<(), ServeError>(())
    })
    .await;
    match drained {
        Ok(result) => result?,
        Err(_) => {
            warn!(
                drain_secs = drain.as_secs(),
                "calls still in flight after server.drain_secs were cut off"
            );
            faces.iter().for_each(|face| face.abort());
        }
    }
    let closing = Arc::clone(&cache);
    tokio::task::spawn_blocking(move || closing.close())
        .await
        .expect("close panicked")?;
    info!("stopped cleanly");
    Ok(())
}
