//! The `cachet` binary: a thin command line over the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cachet",
    version,
    about = "A semantic-caching sidecar for LLM traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (gRPC cache and admin APIs, OpenAI-compatible HTTP, metrics) until
    /// SIGTERM or Ctrl-C.
    Serve {
        /// TOML config file; without one, the embedded defaults (plus CACHET_* overrides) apply.
        #[arg(long, env = "CACHET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a config file and print the effective settings.
    CheckConfig {
        #[arg(long, env = "CACHET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run a SIMULATED OpenAI-compatible provider (for trying cachet out; not a model).
    SimulateUpstream {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: SocketAddr,
        /// How long each simulated answer takes.
        #[arg(long, default_value_t = 400)]
        latency_ms: u64,
    },
    /// Measure hit rate and wrong-answer rate on labelled pairs across thresholds, pick the
    /// best threshold within a wrong-answer budget, and optionally apply it to a tenant.
    Tune {
        /// JSONL of labelled pairs (`a`, `b`, `same_answer`, `category`, optional `split`); .gz allowed.
        #[arg(long)]
        pairs: PathBuf,
        /// Only the pairs of this split (e.g. heldout).
        #[arg(long)]
        split: Option<String>,
        /// The cache API (`server.listen`).
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// The admin API (`server.admin_listen`), for --apply-to.
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        admin_endpoint: String,
        /// Tenant whose matching is measured (its threshold is the one "in force").
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Largest acceptable wrong-answer rate, as a fraction.
        #[arg(long, default_value_t = 0.05)]
        budget: f64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Write a chart (SVG) of hit rate against wrong-answer rate.
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Write the whole report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Apply the best threshold to this tenant through the admin API (needs the token).
        #[arg(long)]
        apply_to: Option<String>,
        /// Admin token, to clean up the evaluation entries and to apply the threshold.
        #[arg(long, env = "CACHET_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Embed labelled pairs with the product's own model and write the vectors, labels and
    /// guard verdicts (PREFIX.f32, PREFIX.jsonl), for training the match scorer.
    EmbedPairs {
        /// JSONL of labelled pairs; .gz allowed.
        #[arg(long)]
        pairs: PathBuf,
        /// Output path prefix.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "CACHET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Showback: usage, spend and savings per department, workflow, job and model (admin).
    Report {
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        endpoint: String,
        /// The period: the last N days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, value_enum, default_value = "table")]
        format: cachet::showback::Format,
        #[arg(long, env = "CACHET_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
    /// What the cache decided since start, and the thresholds in force (admin).
    Stats {
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        endpoint: String,
        #[arg(long, env = "CACHET_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
    /// Rebuild the index graphs without tombstones, while serving (admin).
    Compact {
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        endpoint: String,
        #[arg(long, env = "CACHET_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
    /// Send a short workload with repeats and paraphrases to a running sidecar and report.
    Demo {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        /// Base URL of the OpenAI-compatible front door, for one request over HTTP; "" skips it.
        #[arg(long, default_value = "http://127.0.0.1:50080/v1")]
        openai_base_url: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Load-test a RUNNING sidecar over gRPC with Lookup traffic (exact repeats, paraphrases,
    /// new questions) at each concurrency level; report client-observed latency, throughput
    /// and hit rates. With --fill N: store N distinct entries and exit.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        scale: Option<BenchKind>,
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, default_value = "bench-model")]
        model: String,
        /// Concurrent clients, comma-separated: one measured run per level.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        concurrency: Vec<usize>,
        /// Lookups per run.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Gzipped JSONL of labelled pairs ({"a", "b", "same_answer", "category"} a line);
        /// without it, built-in generated questions and paraphrases.
        #[arg(long)]
        pairs: Option<PathBuf>,
        /// Shares of exact repeats, paraphrases and never-stored questions.
        #[arg(long, default_value = "exact=0.4,paraphrase=0.4,new=0.2")]
        mix: cachet::loadgen::Mix,
        /// Also write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Store this many distinct entries and exit (for measuring start-up with many entries,
        /// or lookups against a large cache: see --fill-scope).
        #[arg(long)]
        fill: Option<usize>,
        /// Where --fill stores: a scope of its own, or the scope later runs look up in (without
        /// the texts they send).
        #[arg(long, value_enum, default_value = "own")]
        fill_scope: cachet::loadgen::FillScope,
        /// Write what a run would store and look up (JSON) and exit, without a sidecar: the
        /// GPTCache peer run replays it.
        #[arg(long)]
        plan_out: Option<PathBuf>,
        /// Store calls in flight at once (warm-up and --fill).
        #[arg(long, default_value_t = 16)]
        store_concurrency: usize,
        /// Client-side deadline of every call, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// Time the bare embedding of the same texts in this process (the model from
        /// CACHET_ASSETS_DIR, default settings) and report each run as ratios of it: batches
        /// before the runs; at concurrency 1 also each paraphrase right next to its lookup.
        #[arg(long)]
        embed_baseline: bool,
        /// Process id of the sidecar (on this machine): its CPU time per lookup is reported,
        /// which a loaded machine does not distort as it does latency.
        #[arg(long)]
        sidecar_pid: Option<u32>,
    },
}

#[derive(Subcommand)]
enum BenchKind {
    /// Fill a data folder with N entries of SYNTHETIC vectors through the store and index code
    /// (no embedding), then measure search latency and recall@1, disk use, and the real
    /// `cachet serve` restarted on it: time to SERVING, memory per entry, lookups over gRPC.
    Scale {
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// The data folder (kept, so later runs and `CACHET_BENCH_SCALE_DIR` can reuse it).
        #[arg(long)]
        data_dir: PathBuf,
        /// Shape of the synthetic vectors: `calibrated` (fitted to real question embeddings)
        /// or `isotropic` (a hard case). Default: the folder's, else calibrated.
        #[arg(long, value_enum)]
        shape: Option<cachet::synthetic::Shape>,
        /// Topics the vectors cluster in. Default: the folder's, else the shape's default.
        #[arg(long)]
        topics: Option<usize>,
        /// Searches timed per query kind.
        #[arg(long, default_value_t = 2_000)]
        queries: usize,
        /// Of those, how many are checked against brute force.
        #[arg(long, default_value_t = 200)]
        recall_queries: usize,
        /// Search breadths (ef) to measure; the first should be `matching.ef_search`.
        #[arg(long, value_delimiter = ',', default_value = "64,128")]
        ef: Vec<usize>,
        /// Candidate breadth the graph is built with, if the folder has none yet (the
        /// product's is 200; 100 fills twice as fast at some cost in recall).
        #[arg(long, default_value_t = cachet::index::EF_CONSTRUCTION)]
        ef_construction: usize,
        /// Skip starting `cachet serve` on the folder.
        #[arg(long)]
        no_restart: bool,
        /// Lookups of each kind sent to the restarted sidecar.
        #[arg(long, default_value_t = 200)]
        lookups: usize,
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// On SIGHUP, reads the config file again and hands it to the sidecar, which applies its
/// thresholds and budgets; a file that does not load is reported and changes nothing.
fn reload_on_sighup(path: Option<PathBuf>) -> tokio::sync::mpsc::Receiver<cachet::config::Config> {
    let (send, receive) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match cachet::config::Config::load(path.as_deref()) {
                Ok(config) => {
                    let _ = send.send(config).await;
                }
                Err(err) => tracing::error!(%err, "SIGHUP: the config file was not reloaded"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (path, send);
    receive
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Held to the end of main: dropping it flushes the traces not yet exported.
    let _telemetry = cachet::telemetry::init()?;
    match Cli::parse().command {
        Command::Serve { config } => {
            let config_path = config.clone();
            let config =
                cachet::config::Config::load(config.as_deref()).context("invalid configuration")?;
            let reloads = reload_on_sighup(config_path);
            cachet::server::serve(config, shutdown_signal(), reloads, |bound| {
                let show = |addr: Option<SocketAddr>| addr.map_or("off".into(), |a| a.to_string());
                // Four lines that tools (and the test harness) read to find the ports.
                println!("cachet: listening on {}", bound.api);
                println!("cachet: admin on {}", show(bound.admin));
                println!("cachet: http on {}", show(bound.http));
                println!("cachet: metrics on {}", show(bound.metrics));
            })
            .await?;
        }
        Command::CheckConfig { config } => {
            let config =
                cachet::config::Config::load(config.as_deref()).context("invalid configuration")?;
            println!("{config:#?}");
        }
        Command::SimulateUpstream { listen, latency_ms } => {
            let sim =
                cachet::simulator::Simulator::start(listen, Duration::from_millis(latency_ms))
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
            println!(
                "cachet: SIMULATED OpenAI-compatible provider at {} (not a real model)",
                sim.base_url()
            );
            shutdown_signal().await;
        }
        Command::Tune {
            pairs,
            split,
            endpoint,
            admin_endpoint,
            tenant,
            budget,
            concurrency,
            chart,
            json,
            apply_to,
            admin_token,
        } => {
            let settings = cachet::tune::Settings {
                endpoint,
                admin_endpoint,
                tenant,
                pairs,
                split,
                budget,
                concurrency,
                chart,
                json,
                admin_token,
                apply_to,
            };
            cachet::tune::run(&settings).await?;
        }
        Command::EmbedPairs { pairs, out, config } => {
            let config =
                cachet::config::Config::load(config.as_deref()).context("invalid configuration")?;
            let embedder = cachet::embed::Embedder::start(&config.embed)?;
            cachet::cache::guard::install_wordnet(&config.embed.assets_dir)?;
            let written = cachet::pair_vectors::run(&embedder, &pairs, &out).await?;
            println!(
                "{written} pairs embedded into {}.{{f32,jsonl}}",
                out.display()
            );
        }
        Command::Report {
            endpoint,
            days,
            format,
            admin_token,
        } => {
            print!(
                "{}",
                cachet::showback::fetch(&endpoint, &admin_token, days, format).await?
            );
        }
        Command::Stats {
            endpoint,
            admin_token,
        } => {
            print!("{}", cachet::operate::stats(&endpoint, &admin_token).await?);
        }
        Command::Compact {
            endpoint,
            admin_token,
        } => {
            print!(
                "{}",
                cachet::operate::compact(&endpoint, &admin_token).await?
            );
        }
        Command::Demo {
            endpoint,
            openai_base_url,
            tenant,
        } => {
            let http = Some(openai_base_url.as_str()).filter(|url| !url.is_empty());
            cachet::demo::run(&endpoint, http, &tenant).await?;
        }
        Command::Bench {
            scale:
                Some(BenchKind::Scale {
                    entries,
                    data_dir,
                    shape,
                    topics,
                    queries,
                    recall_queries,
                    ef,
                    ef_construction,
                    no_restart,
                    lookups,
                    json,
                }),
            ..
        } => {
            let settings = cachet::scale::Settings {
                entries,
                data_dir,
                shape,
                topics,
                queries,
                recall_queries,
                ef,
                ef_construction,
                restart: !no_restart,
                lookups,
            };
            cachet::scale::run(&settings, json.as_deref())
                .await
                .context("bench scale failed")?;
        }
        Command::Bench {
            scale: None,
            endpoint,
            tenant,
            model,
            concurrency,
            requests,
            pairs,
            mix,
            json,
            fill,
            fill_scope,
            plan_out,
            store_concurrency,
            timeout_secs,
            embed_baseline,
            sidecar_pid,
        } => {
            let settings = cachet::loadgen::Settings {
                endpoint,
                tenant,
                model,
                concurrency,
                requests,
                pairs,
                mix,
                store_concurrency,
                timeout: Duration::from_secs(timeout_secs),
                embed_baseline,
                sidecar_pid,
            };
            match (fill, plan_out) {
                (_, Some(path)) => {
                    cachet::loadgen::write_plan(&settings, &path)
                        .context("bench --plan-out failed")?;
                    println!("wrote {}", path.display());
                }
                (Some(entries), None) => {
                    cachet::loadgen::fill(&settings, entries, fill_scope, json.as_deref())
                        .await
                        .context("bench --fill failed")?;
                }
                (None, None) => {
                    cachet::loadgen::run(&settings, json.as_deref())
                        .await
                        .context("bench failed")?;
                }
            }
        }
    }
    Ok(())
}
