//! Prometheus metrics, in the text exposition format, served on their own port
//! (`server.metrics_listen`) so they can be bound to another interface than the API.
//!
//! Counter names follow the common shape for LLM gateways: requests by `cache_status`, hits
//! refused by guard family, upstream tokens and spend per tier, tokens and money saved; with
//! latency histograms per call and cache status, embedding batch sizes, index size per scope
//! and budget use.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::cache::{Cache, IndexSize};
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
        "cachet_searches_widened_total",
        "counter",
        "Semantic lookups whose narrow search (matching.ef_narrow) found nothing to serve, by what the full search (matching.ef_search) then found.",
    );
    let (hits, misses) = stats.widened();
    let _ = writeln!(out, "cachet_searches_widened_total{{found=\"hit\"}} {hits}");
    let _ = writeln!(
        out,
        "cachet_searches_widened_total{{found=\"miss\"}} {misses}"
    );
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
    metric(
        &mut out,
        "cachet_request_duration_seconds",
        "histogram",
        "Time to answer Lookup and Complete calls (Complete misses include the upstream), by call and cache status.",
    );
    for (call, status, histogram) in stats.latency() {
        histogram.render(
            &mut out,
            "cachet_request_duration_seconds",
            &format!("call=\"{call}\",cache_status=\"{status}\""),
        );
    }
    metric(
        &mut out,
        "cachet_evictions_total",
        "counter",
        "Entries evicted (least recently used) to stay within storage.max_entries.",
    );
    let _ = writeln!(out, "cachet_evictions_total {}", stats.evictions());
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
    metric(
        &mut out,
        "cachet_embed_batch_size",
        "histogram",
        "Texts per embedding batch: above 1 when concurrent requests share a batch.",
    );
    embed
        .batch_sizes
        .render(&mut out, "cachet_embed_batch_size", "");
    render_index(&mut out, cache);
    render_budgets(&mut out, cache);
    cache.render_fleet_metrics(&mut out);
    out
}

fn render_index(out: &mut String, cache: &Cache) {
    let sizes = match cache.index_sizes() {
        Ok(sizes) => sizes,
        Err(err) => {
            tracing::warn!(%err, "index sizes unavailable for metrics");
            return;
        }
    };
    let mut gauge = |name: &str, help: &str, value: fn(&IndexSize) -> usize| {
        metric(out, name, "gauge", help);
        for size in &sizes {
            let _ = writeln!(
                out,
                "{name}{{scope=\"{}\",tenant=\"{}\",model=\"{}\"}} {}",
                size.scope,
                label(&size.tenant),
                label(&size.model),
                value(size)
            );
        }
    };
    gauge(
        "cachet_index_points",
        "Points in each scope's HNSW graph, tombstones included.",
        |s| s.points,
    );
    gauge(
        "cachet_index_tombstones",
        "Removed entries still in each scope's graph (cachet compact drops them).",
        |s| s.tombstones,
    );
}

fn render_budgets(out: &mut String, cache: &Cache) {
    let budgets = cache.budgets_in_use();
    metric(
        out,
        "cachet_budget_spent_usd",
        "gauge",
        "Spend in the current period of each organisation, department and workflow budget in use.",
    );
    for b in &budgets {
        let _ = writeln!(
            out,
            "cachet_budget_spent_usd{{level=\"{}\",name=\"{}\"}} {}",
            b.level,
            label(&b.name),
            b.spent_usd
        );
    }
    metric(
        out,
        "cachet_budget_ceiling_usd",
        "gauge",
        "Ceiling of each budget in use that has one.",
    );
    for b in &budgets {
        if let Some(ceiling) = b.ceiling_usd {
            let _ = writeln!(
                out,
                "cachet_budget_ceiling_usd{{level=\"{}\",name=\"{}\"}} {ceiling}",
                b.level,
                label(&b.name),
            );
        }
    }
}
