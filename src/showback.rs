//! `cachet report`: the showback of a running sidecar (its `Admin/Report` call) as a table for
//! people, or JSON or CSV for finance tools.

use std::fmt::Write as _;

use crate::operate::{admin, with_token, OperateError};
use crate::proto::{ReportRequest, ReportResponse, UsageRow, UsageTotals};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Fetches the report for the last `days` days and renders it.
pub async fn fetch(
    endpoint: &str,
    admin_token: &str,
    days: u32,
    format: Format,
) -> Result<String, OperateError> {
    let report = admin(endpoint)
        .await?
        .report(with_token(ReportRequest { days }, admin_token))
        .await?
        .into_inner();
    Ok(render(&report, format))
}

pub fn render(report: &ReportResponse, format: Format) -> String {
    match format {
        Format::Table => table(report),
        Format::Json => serde_json::to_string_pretty(&as_json(report)).expect("json"),
        Format::Csv => csv(report),
    }
}

fn totals(row: &UsageRow) -> UsageTotals {
    row.totals.unwrap_or_default()
}

fn totals_json(t: &UsageTotals) -> serde_json::Value {
    json!({
        "requests": t.requests, "upstream_calls": t.upstream_calls, "cache_hits": t.cache_hits,
        "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
        "cost_usd": t.cost_usd, "tokens_saved": t.tokens_saved, "saved_usd": t.saved_usd,
    })
}

fn rows_json(rows: &[UsageRow]) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|r| json!({"dimension": r.dimension, "key": r.key, "totals": totals_json(&totals(r))}))
        .collect()
}

fn as_json(report: &ReportResponse) -> serde_json::Value {
    json!({
        "since_unix_ms": report.since_unix_ms,
        "until_unix_ms": report.until_unix_ms,
        "totals": totals_json(&report.totals.unwrap_or_default()),
        "rows": rows_json(&report.rows),
        "top_consumers": rows_json(&report.top_consumers),
        "days": rows_json(&report.days),
        "anomalies": report.anomalies,
    })
}

const CSV_HEADER: &str = "dimension,key,requests,upstream_calls,cache_hits,prompt_tokens,completion_tokens,cost_usd,tokens_saved,saved_usd";

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// One line per row of every section; the totals as dimension `total`.
fn csv(report: &ReportResponse) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let total = UsageRow {
        dimension: "total".into(),
        key: String::new(),
        totals: report.totals,
    };
    for row in std::iter::once(&total)
        .chain(&report.rows)
        .chain(&report.top_consumers)
        .chain(&report.days)
    {
        let t = totals(row);
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.6},{},{:.6}",
            csv_field(&row.dimension),
            csv_field(&row.key),
            t.requests,
            t.upstream_calls,
            t.cache_hits,
            t.prompt_tokens,
            t.completion_tokens,
            t.cost_usd,
            t.tokens_saved,
            t.saved_usd
        );
    }
    out
}

fn table_section(out: &mut String, title: &str, rows: &[&UsageRow]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "  {:<28} {:>8} {:>8} {:>6} {:>11} {:>11} {:>12} {:>12}",
        "", "requests", "upstream", "hits", "tokens in", "tokens out", "spent $", "saved $"
    );
    for row in rows {
        let t = totals(row);
        let _ = writeln!(
            out,
            "  {:<28} {:>8} {:>8} {:>6} {:>11} {:>11} {:>12.6} {:>12.6}",
            row.key,
            t.requests,
            t.upstream_calls,
            t.cache_hits,
            t.prompt_tokens,
            t.completion_tokens,
            t.cost_usd,
            t.saved_usd
        );
    }
}

fn table(report: &ReportResponse) -> String {
    let t = report.totals.unwrap_or_default();
    let mut out = format!(
        "cachet report: {} requests, {} answered upstream, {} from the cache; spent ${:.6}, saved ${:.6} ({} tokens)\n",
        t.requests, t.upstream_calls, t.cache_hits, t.cost_usd, t.saved_usd, t.tokens_saved
    );
    for (dimension, title) in [
        ("department", "per department"),
        ("workflow", "per workflow"),
        ("job", "per job"),
        ("model", "per model"),
        ("tenant", "per tenant"),
    ] {
        let rows: Vec<&UsageRow> = report
            .rows
            .iter()
            .filter(|r| r.dimension == dimension)
            .collect();
        table_section(&mut out, title, &rows);
    }
    table_section(
        &mut out,
        "top consumers",
        &report.top_consumers.iter().collect::<Vec<_>>(),
    );
    table_section(
        &mut out,
        "per day (UTC)",
        &report.days.iter().collect::<Vec<_>>(),
    );
    let _ = writeln!(out, "\nanomalies");
    if report.anomalies.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for anomaly in &report.anomalies {
        let _ = writeln!(out, "  {anomaly}");
    }
    out
}
