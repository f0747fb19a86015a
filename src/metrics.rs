//! Prometheus metrics, in the text exposition format, served on their own port
//! (`server.metrics_listen`) so they can be bound to another interface than the API.
//!
//! Counter names follow the common shape for LLM gateways: requests by `cache_status`, hits
//! refused by guard family, upstream tokens and spend per tier, tokens and money saved.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::cache::Cache;
use crate::meter::dollars;

fn metric(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The current metrics of `cache`.
pub fn render(cache: &Cache) -> String {
    let stats = cache.stats();
    let mut out = String::new();
    metric(
        &mut out,
        "cachet_requests_total",
        "counter",
        "Lookup and Complete requests by cache status.",
    );
    for (status, count) in stats.by_status() {
        let _ = writeln!(
            out,
            "cachet_requests_total{{cache_status=\"{status}\"}} {count}"
        );
    }
    metric(
        &mut out,
        "cachet_guard_refusals_total",
        "counter",
        "Candidates above the threshold refused, by guard family or earlier_turns.",
    );
    for (reason, count) in stats.refusals() {
        let _ = writeln!(
            out,
            "cachet_guard_refusals_total{{reason=\"{reason}\"}} {count}"
        );
    }
    metric(
        &mut out,
        "cachet_tokens_saved_total",
        "counter",
        "Tokens not sent upstream thanks to cache hits.",
    );
    let _ = writeln!(out, "cachet_tokens_saved_total {}", stats.tokens_saved());
    metric(
        &mut out,
        "cachet_saved_usd_total",
        "counter",
        "Money not spent upstream thanks to cache hits, in US dollars.",
    );
    let _ = writeln!(
        out,
        "cachet_saved_usd_total {}",
        dollars(stats.saved_micro_usd())
    );
    let spend = stats.spend();
    metric(
        &mut out,
        "cachet_upstream_requests_total",
        "counter",
        "Upstream calls per tier.",
    );
    for (tier, s) in &spend {
        let _ = writeln!(
            out,
            "cachet_upstream_requests_total{{tier=\"{}\"}} {}",
            label(tier),
            s.calls
        );
    }
    metric(
        &mut out,
        "gen_ai_client_token_usage_total",
        "counter",
        "Upstream tokens per tier and type (OpenTelemetry gen_ai.client.token.usage).",
    );
    for (tier, s) in &spend {
        let tier = label(tier);
        let _ = writeln!(
            out,
            "gen_ai_client_token_usage_total{{tier=\"{tier}\",gen_ai_token_type=\"input\"}} {}",
            s.prompt_tokens
        );
        let _ = writeln!(
            out,
            "gen_ai_client_token_usage_total{{tier=\"{tier}\",gen_ai_token_type=\"output\"}} {}",
            s.completion_tokens
        );
    }
    metric(
        &mut out,
        "cachet_upstream_cost_usd_total",
        "counter",
        "Upstream spend per tier, in US dollars.",
    );
    for (tier, s) in &spend {
        let _ = writeln!(
            out,
            "cachet_upstream_cost_usd_total{{tier=\"{}\"}} {}",
            label(tier),
            dollars(s.cost_micro_usd)
        );
    }
    metric(&mut out, "cachet_entries", "gauge", "Entries in the store.");
    let _ = writeln!(out, "cachet_entries {}", cache.entry_count());
    let embed = cache.embedder().stats();
    metric(
        &mut out,
        "cachet_embed_batches_total",
        "counter",
        "Batches run by the embedding worker.",
    );
    let _ = writeln!(
        out,
        "cachet_embed_batches_total {}",
        embed.batches.load(Ordering::Relaxed)
    );
    metric(
        &mut out,
        "cachet_embed_texts_total",
        "counter",
        "Texts embedded.",
    );
    let _ = writeln!(
        out,
        "cachet_embed_texts_total {}",
        embed.texts.load(Ordering::Relaxed)
    );
    cache.render_fleet_metrics(&mut out);
    out
}
