//! The `cachet` binary: a thin command line over the library.

use std::io::IsTerminal;
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
    /// Run the sidecar (gRPC) until SIGTERM or Ctrl-C.
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
    /// Send a short workload with repeats and paraphrases to a running sidecar and report.
    Demo {
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        endpoint: String,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CACHET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("CACHET_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Serve { config } => {
            let config =
                cachet::config::Config::load(config.as_deref()).context("invalid configuration")?;
            cachet::server::serve(config, shutdown_signal(), |addr| {
                println!("cachet: listening on {addr}");
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
        Command::Demo { endpoint, tenant } => {
            cachet::demo::run(&endpoint, &tenant).await?;
        }
    }
    Ok(())
}
