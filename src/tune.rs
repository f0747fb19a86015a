//! `cachet tune`: measures hit rate and wrong-answer rate of a running sidecar on labelled
//! pairs, across thresholds, and picks the threshold with the most hits under a budget of
//! wrong answers.
//!
//! Each pair goes through the real matching path over gRPC: side `a` is stored in a scope of
//! its own (a model name made for the pair), side `b` is looked up. The lookup's explanation
//! says how similar the closest entry was, how similar the earlier turns were, and whether a
//! guard objected, which is everything needed to say whether `b` would have been served at
//! any other threshold: served at `t` when no guard objected, the similarity reaches `t` and
//! the earlier turns reach the (separate, unswept) context threshold.
//! One pass measures every threshold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tonic::transport::Channel;

use crate::operate::with_token;
use crate::pairs::{self, Pair, PairsError};
use crate::proto::cache_client::CacheClient;
use crate::proto::{
    invalidate_request, CacheControl, CacheStatus, InvalidateRequest, LookupRequest, ScopeSelector,
    SetThresholdRequest, StoreRequest, TokenUsage,
};

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Pairs(#[from] PairsError),
    #[error("no pairs to evaluate{0}")]
    Empty(String),
    #[error("cannot reach the sidecar at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    #[error("pair {index} ({category}): {status}")]
    Call {
        index: usize,
        category: String,
        status: tonic::Status,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("applying the threshold failed: {0}")]
    Apply(#[from] crate::operate::OperateError),
}

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The cache API (`server.listen`), where the pairs are looked up.
    pub endpoint: String,
    /// The admin API (`server.admin_listen`), where a threshold is applied.
    pub admin_endpoint: String,
    pub tenant: String,
    pub pairs: PathBuf,
    /// Only pairs whose `split` is this (e.g. `heldout`); all pairs when `None`.
    pub split: Option<String>,
    /// Largest acceptable share of wrong answers among pairs that must not share an answer.
    pub budget: f64,
    pub concurrency: usize,
    pub chart: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// Admin token: used to clean up the evaluation entries and to apply the threshold.
    pub admin_token: Option<String>,
    /// Apply the chosen threshold to this tenant through the admin API.
    pub apply_to: Option<String>,
}

/// How one pair came out.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub category: String,
    pub same_answer: bool,
    /// Served by the exact path: a hit at every threshold.
    pub exact: bool,
    pub similarity: f32,
    pub context_similarity: f32,
    /// What the earlier turns needed (a setting of its own, not swept).
    pub context_threshold: f32,
    /// The guard family that refused it (at every threshold).
    pub guard: Option<String>,
}

impl Outcome {
    pub fn served_at(&self, threshold: f32) -> bool {
        self.exact
            || (self.guard.is_none()
                && self.similarity >= threshold
                && self.context_similarity >= self.context_threshold)
    }
}

/// Hit rate and wrong-answer rate at one threshold.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    pub threshold: f32,
    /// Share of same-answer pairs served.
    pub hit_rate: f64,
    /// Share of different-answer pairs served (wrongly).
    pub wrong_rate: f64,
}

/// Per category at one threshold.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryResult {
    pub category: String,
    pub should_hit: usize,
    pub hit_rate: Option<f64>,
    pub must_not_hit: usize,
    pub wrong_rate: Option<f64>,
    /// Traps caught, by the guard family that caught them.
    pub caught_by: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub pairs: usize,
    pub should_hit: usize,
    pub must_not_hit: usize,
    pub budget: f64,
    /// The tenant's threshold in force during the run.
    pub current_threshold: f32,
    pub current: Point,
    pub current_by_category: Vec<CategoryResult>,
    /// The threshold with the most hits within the budget, if any is.
    pub best: Option<Point>,
    pub best_by_category: Vec<CategoryResult>,
    pub curve: Vec<Point>,
    pub outcomes: Vec<Outcome>,
}

/// Thresholds swept: 0.50 to 1.00 in steps of 0.01.
fn thresholds() -> impl Iterator<Item = f32> {
    (50..=100).map(|t| t as f32 / 100.0)
}

pub fn point(outcomes: &[Outcome], threshold: f32) -> Point {
    let rate = |same: bool| {
        let group: Vec<&Outcome> = outcomes.iter().filter(|o| o.same_answer == same).collect();
        let served = group.iter().filter(|o| o.served_at(threshold)).count();
        served as f64 / group.len().max(1) as f64
    };
    Point {
        threshold,
        hit_rate: rate(true),
        wrong_rate: rate(false),
    }
}

pub fn by_category(outcomes: &[Outcome], threshold: f32) -> Vec<CategoryResult> {
    let mut groups: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        groups.entry(o.category.as_str()).or_default().push(o);
    }
    groups
        .into_iter()
        .map(|(category, group)| {
            let (same, different): (Vec<&&Outcome>, Vec<&&Outcome>) =
                group.iter().partition(|o| o.same_answer);
            let rate = |g: &[&&Outcome]| {
                (!g.is_empty()).then(|| {
                    g.iter().filter(|o| o.served_at(threshold)).count() as f64 / g.len() as f64
                })
            };
            let mut caught_by = BTreeMap::new();
            for o in &different {
                if let Some(family) = &o.guard {
                    *caught_by.entry(family.clone()).or_default() += 1;
                }
            }
            CategoryResult {
                category: category.to_string(),
                should_hit: same.len(),
                hit_rate: rate(&same),
                must_not_hit: different.len(),
                wrong_rate: rate(&different),
                caught_by,
            }
        })
        .collect()
}

/// The threshold with the highest hit rate whose wrong-answer rate is within `budget`
/// (the highest such threshold on a tie).
pub fn best_within(curve: &[Point], budget: f64) -> Option<Point> {
    curve
        .iter()
        .filter(|p| p.wrong_rate <= budget)
        .max_by(|a, b| {
            a.hit_rate
                .total_cmp(&b.hit_rate)
                .then(a.threshold.total_cmp(&b.threshold))
        })
        .copied()
}

/// Runs the evaluation and returns the report (also printed, and written as asked).
pub async fn run(settings: &Settings) -> Result<Report, TuneError> {
    let mut pairs = pairs::read(&settings.pairs)?;
    if let Some(split) = &settings.split {
        pairs.retain(|p| p.split.as_deref() == Some(split.as_str()));
    }
    if pairs.is_empty() {
        let which = settings
            .split
            .as_ref()
            .map(|s| format!(" in split `{s}`"))
            .unwrap_or_default();
        return Err(TuneError::Empty(which));
    }
    let channel = Channel::from_shared(settings.endpoint.clone())
        .map_err(|e| connect_error(settings, e.to_string()))?
        .connect()
        .await
        .map_err(|e| connect_error(settings, e.to_string()))?;
    // A sidecar just started may still be loading its model and index.
    crate::demo::wait_until_serving(channel.clone(), crate::demo::READY_TIMEOUT)
        .await
        .map_err(|waited| {
            connect_error(settings, format!("not serving after {}s", waited.as_secs()))
        })?;
    let run_id = format!("{:x}", crate::store::now_millis());
    let (outcomes, current_threshold) =
        evaluate(settings, channel.clone(), &pairs, &run_id).await?;
    if let Some(token) = &settings.admin_token {
        clean_up(settings, channel.clone(), token, pairs.len(), &run_id).await;
    }

    let curve: Vec<Point> = thresholds().map(|t| point(&outcomes, t)).collect();
    let best = best_within(&curve, settings.budget);
    let report = Report {
        pairs: outcomes.len(),
        should_hit: outcomes.iter().filter(|o| o.same_answer).count(),
        must_not_hit: outcomes.iter().filter(|o| !o.same_answer).count(),
        budget: settings.budget,
        current_threshold,
        current: point(&outcomes, current_threshold),
        current_by_category: by_category(&outcomes, current_threshold),
        best,
        best_by_category: best
            .map(|b| by_category(&outcomes, b.threshold))
            .unwrap_or_default(),
        curve,
        outcomes,
    };
    println!("{}", render(&report, settings));
    if let Some(path) = &settings.chart {
        write(path, chart_svg(&report))?;
        println!("chart: {}", path.display());
    }
    if let Some(path) = &settings.json {
        write(
            path,
            serde_json::to_string_pretty(&report).expect("report serialises"),
        )?;
        println!("json: {}", path.display());
    }
    if let (Some(tenant), Some(best)) = (&settings.apply_to, report.best) {
        apply(settings, tenant, best.threshold).await?;
        println!(
            "applied threshold {:.2} to tenant `{tenant}`",
            best.threshold
        );
    }
    Ok(report)
}

fn connect_error(settings: &Settings, message: String) -> TuneError {
    TuneError::Connect {
        endpoint: settings.endpoint.clone(),
        message,
    }
}

fn write(path: &Path, text: String) -> Result<(), TuneError> {
    std::fs::write(path, text).map_err(|source| TuneError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A model name no real traffic uses, one per pair, so every pair is alone in its scope.
fn pair_model(run_id: &str, index: usize) -> String {
    format!("cachet-tune/{run_id}/{index}")
}

async fn evaluate(
    settings: &Settings,
    channel: Channel,
    pairs: &[Pair],
    run_id: &str,
) -> Result<(Vec<Outcome>, f32), TuneError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(pairs.len());
    for (index, pair) in pairs.iter().cloned().enumerate() {
        let permit = Arc::clone(&semaphore);
        let client = CacheClient::new(channel.clone());
        let tenant = settings.tenant.clone();
        let model = pair_model(run_id, index);
        tasks.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await.expect("semaphore open");
            evaluate_pair(client, &tenant, &model, &pair)
                .await
                .map_err(|status| TuneError::Call {
                    index,
                    category: pair.category.clone(),
                    status,
                })
        }));
    }
    let mut outcomes = Vec::with_capacity(pairs.len());
    let mut current = None;
    for task in tasks {
        let (outcome, threshold) = task.await.expect("evaluation task panicked")?;
        current = current.or(threshold);
        outcomes.push(outcome);
    }
    Ok((outcomes, current.unwrap_or(f32::NAN)))
}

/// Stores `a`, looks `b` up. Returns the outcome and the threshold the lookup was held to.
async fn evaluate_pair(
    mut client: CacheClient<Channel>,
    tenant: &str,
    model: &str,
    pair: &Pair,
) -> Result<(Outcome, Option<f32>), tonic::Status> {
    client
        .store(StoreRequest {
            tenant: tenant.into(),
            model: model.into(),
            messages: pair.a.messages(),
            answer: format!("evaluation answer for: {}", pair.a.last_text()),
            usage: Some(TokenUsage {
                prompt_tokens: 1,
                completion_tokens: 1,
                total_tokens: 2,
            }),
            // Evaluation entries clean themselves up even without an admin token.
            cache_control: Some(CacheControl {
                ttl_seconds: 900,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?;
    let found = client
        .lookup(LookupRequest {
            tenant: tenant.into(),
            model: model.into(),
            messages: pair.b.messages(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let exact = found.status() == CacheStatus::HitExact;
    let explanation = found.explanation.unwrap_or_default();
    let guard = Some(explanation.refused_by.clone())
        .filter(|r| !r.is_empty() && r != "earlier_turns" && r != "below_threshold");
    let outcome = Outcome {
        category: pair.category.clone(),
        same_answer: pair.same_answer,
        exact,
        similarity: if exact { 1.0 } else { explanation.similarity },
        context_similarity: if exact {
            1.0
        } else {
            explanation.context_similarity
        },
        context_threshold: explanation.context_threshold,
        guard,
    };
    let threshold = (!exact && explanation.threshold > 0.0).then_some(explanation.threshold);
    Ok((outcome, threshold))
}

/// Removes the evaluation entries (they would expire on their own within 15 minutes).
async fn clean_up(settings: &Settings, channel: Channel, token: &str, count: usize, run_id: &str) {
    let mut client = CacheClient::new(channel);
    for index in 0..count {
        let request = InvalidateRequest {
            tenant: settings.tenant.clone(),
            target: Some(invalidate_request::Target::Scope(ScopeSelector {
                model: pair_model(run_id, index),
                ..Default::default()
            })),
        };
        if let Err(status) = client.invalidate(with_token(request, token)).await {
            eprintln!("cleanup stopped (entries expire within 15 minutes): {status}");
            return;
        }
    }
}

async fn apply(settings: &Settings, tenant: &str, threshold: f32) -> Result<(), TuneError> {
    let token = settings.admin_token.as_deref().unwrap_or_default();
    crate::operate::admin(&settings.admin_endpoint)
        .await?
        .set_threshold(with_token(
            SetThresholdRequest {
                tenant: tenant.into(),
                threshold,
            },
            token,
        ))
        .await
        .map_err(crate::operate::OperateError::from)?;
    Ok(())
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or("-".into(), |r| format!("{:.1}%", 100.0 * r))
}

fn category_table(out: &mut String, rows: &[CategoryResult]) {
    let _ = writeln!(
        out,
        "  {:<22} {:>6} {:>9} {:>6} {:>11}  traps caught by",
        "category", "should", "hit rate", "traps", "wrong rate"
    );
    for r in rows {
        let caught: Vec<String> = r
            .caught_by
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {:<22} {:>6} {:>9} {:>6} {:>11}  {}",
            r.category,
            r.should_hit,
            percent(r.hit_rate),
            r.must_not_hit,
            percent(r.wrong_rate),
            caught.join(", ")
        );
    }
}

/// The report as text tables.
pub fn render(report: &Report, settings: &Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "cachet tune: {} pairs from {}{} ({} should hit, {} must not), tenant `{}`",
        report.pairs,
        settings.pairs.display(),
        settings
            .split
            .as_ref()
            .map(|s| format!(" [split {s}]"))
            .unwrap_or_default(),
        report.should_hit,
        report.must_not_hit,
        settings.tenant
    );
    let _ = writeln!(out, "\n  threshold  hit rate  wrong-answer rate");
    for p in report
        .curve
        .iter()
        .filter(|p| (p.threshold * 100.0).round() as i32 % 2 == 0 && p.threshold >= 0.7)
    {
        let _ = writeln!(
            out,
            "  {:>9.2}  {:>8.1}%  {:>17.1}%",
            p.threshold,
            100.0 * p.hit_rate,
            100.0 * p.wrong_rate
        );
    }
    let _ = writeln!(
        out,
        "\nat the threshold in force ({:.2}): hit rate {:.1}%, wrong-answer rate {:.1}%",
        report.current_threshold,
        100.0 * report.current.hit_rate,
        100.0 * report.current.wrong_rate
    );
    category_table(&mut out, &report.current_by_category);
    match report.best {
        Some(best) => {
            let _ = writeln!(
                out,
                "\nbest within a {:.1}% wrong-answer budget: threshold {:.2}, hit rate {:.1}%, wrong-answer rate {:.1}%",
                100.0 * report.budget,
                best.threshold,
                100.0 * best.hit_rate,
                100.0 * best.wrong_rate
            );
            category_table(&mut out, &report.best_by_category);
        }
        None => {
            let _ = writeln!(
                out,
                "\nno threshold keeps wrong answers within {:.1}%",
                100.0 * report.budget
            );
        }
    }
    out
}

/// Hit rate against wrong-answer rate across thresholds, as an SVG line chart.
pub fn chart_svg(report: &Report) -> String {
    let (w, h, margin) = (640.0, 480.0, 60.0);
    // The wrong-answer axis ends where the data (and twice the budget) ends, so that a curve
    // within a few percent is not squeezed against the left edge.
    let widest = report
        .curve
        .iter()
        .map(|p| p.wrong_rate)
        .fold(2.0 * report.budget, f64::max);
    let x_max = [0.1, 0.2, 0.5, 1.0]
        .into_iter()
        .find(|m| widest <= *m)
        .unwrap_or(1.0);
    let x = |wrong: f64| margin + wrong / x_max * (w - 2.0 * margin);
    let y = |hit: f64| h - margin - hit * (h - 2.0 * margin);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">cachet: hit rate vs wrong-answer rate ({} pairs)</text>"#,
        w / 2.0,
        report.pairs
    );
    for tick in 0..=10 {
        let v = tick as f64 / 10.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#eee"/>"##,
            x(v * x_max),
            y(0.0),
            x(v * x_max),
            y(1.0)
        );
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#eee"/>"##,
            x(0.0),
            y(v),
            x(x_max),
            y(v)
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}%</text>"#,
            x(v * x_max),
            h - margin + 16.0,
            (v * x_max * 100.0).round()
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}%</text>"#,
            margin - 6.0,
            y(v) + 4.0,
            tick * 10
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">wrong-answer rate (traps served)</text>"#,
        w / 2.0,
        h - 16.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">hit rate (repeats served)</text>"#,
        h / 2.0,
        h / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#c33" stroke-dasharray="4 3"/>"##,
        x(report.budget),
        y(0.0),
        x(report.budget),
        y(1.0)
    );
    let points: Vec<String> = report
        .curve
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.wrong_rate), y(p.hit_rate)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#36c" stroke-width="2"/>"##,
        points.join(" ")
    );
    // Every fifth threshold is marked, and labelled unless too close to the last label to read.
    let mut last_label: Option<(f64, f64)> = None;
    for p in report
        .curve
        .iter()
        .filter(|p| (p.threshold * 100.0).round() as i32 % 5 == 0)
    {
        let (px, py) = (x(p.wrong_rate), y(p.hit_rate));
        let _ = writeln!(
            svg,
            r##"<circle cx="{px:.1}" cy="{py:.1}" r="3" fill="#36c"/>"##
        );
        let crowded =
            last_label.is_some_and(|(lx, ly)| (lx - px).abs() < 30.0 && (ly - py).abs() < 14.0);
        if !crowded {
            last_label = Some((px, py));
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" fill="#36c">{:.2}</text>"##,
                px + 5.0,
                py - 5.0,
                p.threshold
            );
        }
    }
    let mut mark = |p: Point, label: &str, colour: &str| {
        let _ = writeln!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="{colour}">{label} {:.2}</text>"#,
            x(p.wrong_rate),
            y(p.hit_rate),
            x(p.wrong_rate) + 9.0,
            y(p.hit_rate) + 16.0,
            p.threshold
        );
    };
    mark(report.current, "in force", "#090");
    if let Some(best) = report.best {
        mark(best, "best", "#c33");
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(same: bool, similarity: f32, guard: Option<&str>) -> Outcome {
        Outcome {
            category: if same { "paraphrase" } else { "trap" }.into(),
            same_answer: same,
            exact: false,
            similarity,
            context_similarity: 1.0,
            context_threshold: 0.8,
            guard: guard.map(str::to_string),
        }
    }

    #[test]
    fn the_best_threshold_respects_the_budget() {
        let outcomes = vec![
            outcome(true, 0.95, None),
            outcome(true, 0.85, None),
            outcome(true, 0.75, None),
            outcome(false, 0.90, Some("quantities")),
            outcome(false, 0.80, None),
            outcome(false, 0.60, None),
        ];
        let curve: Vec<Point> = thresholds().map(|t| point(&outcomes, t)).collect();
        let best = best_within(&curve, 0.0).unwrap();
        // 0.81..=0.85 serve two of three repeats and no trap; the highest of them wins.
        assert_eq!(best.threshold, 0.85);
        assert!((best.hit_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(best.wrong_rate, 0.0);
        let loose = best_within(&curve, 0.34).unwrap();
        assert_eq!(loose.threshold, 0.75);
        let rows = by_category(&outcomes, 0.5);
        let trap = rows.iter().find(|r| r.category == "trap").unwrap();
        assert_eq!(trap.caught_by.get("quantities"), Some(&1));
        assert!((trap.wrong_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert!(chart_svg(&Report {
            pairs: 6,
            should_hit: 3,
            must_not_hit: 3,
            budget: 0.05,
            current_threshold: 0.9,
            current: point(&outcomes, 0.9),
            current_by_category: rows.clone(),
            best: Some(best),
            best_by_category: rows,
            curve,
            outcomes,
        })
        .contains("<polyline"));
    }

    #[test]
    fn the_chart_axis_ends_where_the_wrong_answers_do() {
        // Wrong-answer rates of 0 and 1/4: the axis runs to 50%, not to 100%.
        let outcomes = vec![
            outcome(true, 0.95, None),
            outcome(true, 0.70, None),
            outcome(false, 0.75, None),
            outcome(false, 0.60, Some("names")),
            outcome(false, 0.50, Some("names")),
            outcome(false, 0.40, Some("names")),
        ];
        let curve: Vec<Point> = thresholds().map(|t| point(&outcomes, t)).collect();
        let report = Report {
            pairs: outcomes.len(),
            should_hit: 2,
            must_not_hit: 4,
            budget: 0.05,
            current_threshold: 0.88,
            current: point(&outcomes, 0.88),
            current_by_category: Vec::new(),
            best: best_within(&curve, 0.05),
            best_by_category: Vec::new(),
            curve,
            outcomes,
        };
        let svg = chart_svg(&report);
        let x_tick = |label: &str| format!(r#"text-anchor="middle">{label}</text>"#);
        assert!(svg.contains(&x_tick("50%")), "{svg}");
        assert!(!svg.contains(&x_tick("100%")), "{svg}");
    }
}
