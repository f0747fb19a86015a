//! Logs and traces. Logs go to stderr, as text or (`CACHET_LOG_FORMAT=json`) JSON lines, at the
//! level `CACHET_LOG` sets. Traces are exported over OTLP/HTTP when the standard OpenTelemetry
//! variable `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, so
//! the spans around every request reach the collector a platform already runs; without it
//! nothing is exported and nothing is paid for it.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

#[derive(Debug, thiserror::Error)]
#[error("cannot set up OpenTelemetry export: {0}")]
pub struct TelemetryError(String);

/// Keeps the trace exporter alive; dropping it flushes the spans not yet sent.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.is_empty()))
}

/// Installs the global subscriber: stderr logs, plus OTLP traces when configured.
pub fn init() -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("CACHET_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn"));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = if std::env::var("CACHET_LOG_FORMAT").as_deref() == Ok("json") {
        logs.json().boxed()
    } else {
        logs.boxed()
    };
    let provider = otlp_configured().then(exporter).transpose()?;
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("cachet")));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .init();
    if provider.is_some() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// A batching OTLP/HTTP (protobuf) exporter; endpoint, headers and timeout come from the
/// standard `OTEL_EXPORTER_OTLP_*` variables, the service name from `OTEL_SERVICE_NAME`
/// (default `cachet`).
fn exporter() -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "cachet".into());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(service).build())
        .build())
}
