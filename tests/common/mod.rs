//! Test harness: runs the real `cachet` binary as a child process on loopback, with the real
//! model and a real sled folder, in front of the simulated OpenAI-compatible provider.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cachet::proto::admin_client::AdminClient;
use cachet::proto::cache_client::CacheClient;
use cachet::proto::{
    CompleteRequest, GetStatsRequest, GetStatsResponse, LookupRequest, Message, ReportRequest,
    ReportResponse, StoreRequest, TokenUsage,
};
use cachet::simulator::Simulator;
use tonic::transport::Channel;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Two priced tiers, both served by the test's simulated provider.
pub const TIERS: &str = r#"
[[router.tiers]]
name = "small"
model = "gpt-4o-mini"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[[router.tiers]]
name = "large"
model = "gpt-4o"
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00
"#;

pub async fn simulator() -> Simulator {
    Simulator::start("127.0.0.1:0".parse().unwrap(), Duration::ZERO)
        .await
        .expect("simulator starts")
}

/// A sidecar with its own data folder in front of its own simulated provider; all three go
/// away together.
pub struct Fixture {
    pub upstream: Simulator,
    pub sidecar: Sidecar,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::with_config("").await
    }

    /// With the TOML in `extra` merged over the test config.
    pub async fn with_config(extra: &str) -> Self {
        Self::with_env(extra, &[]).await
    }

    /// With extra config and extra environment variables for the sidecar process.
    pub async fn with_env(extra: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let upstream = simulator().await;
        let config = write_config(dir.path(), &upstream.base_url(), extra);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sidecar = Sidecar::start_config(dir.path(), config, env).await;
        Self {
            upstream,
            sidecar,
            _dir: dir,
        }
    }

    pub async fn client(&self) -> CacheClient<Channel> {
        self.sidecar.client().await
    }
}

/// A running sidecar process.
pub struct Sidecar {
    child: Child,
    /// The gRPC cache API.
    pub addr: SocketAddr,
    pub ports: Ports,
    pub dir: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
}

/// The config every test sidecar gets, with the TOML in `extra` merged over it.
pub fn write_config(dir: &Path, upstream: &str, extra: &str) -> PathBuf {
    let path = dir.join("cachet.toml");
    let data = dir.join("data");
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
metrics_listen = ""

[storage]
data_dir = "{data}"
checkpoint_every_secs = 3600

[upstream]
base_url = "{upstream}"
timeout_secs = 2

[tenants.acme]
[tenants.globex]
"#,
        data = data.display()
    );
    let mut config: toml::Table = text.parse().unwrap();
    merge(&mut config, extra.parse().expect("extra config is TOML"));
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(more)) => merge(inner, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Sidecar {
    /// Starts a sidecar whose data lives in `dir` and waits until it reports SERVING.
    pub async fn start(dir: &Path, upstream: &str) -> Self {
        Self::start_with(dir, upstream, "").await
    }

    pub async fn start_with(dir: &Path, upstream: &str, extra: &str) -> Self {
        let config = write_config(dir, upstream, extra);
        Self::start_config(dir, config, Vec::new()).await
    }

    async fn start_config(dir: &Path, config: PathBuf, env: Vec<(String, String)>) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("sidecar.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_cachet"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("CACHET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CACHET_LOG", "info,hnsw_rs=warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("cachet binary starts");
        let stdout = child.stdout.take().unwrap();
        let ports = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut port = |name: &str| {
                let line = lines.next().expect("sidecar printed its ports").unwrap();
                let addr = line
                    .strip_prefix(&format!("cachet: {name} "))
                    .unwrap_or_else(|| panic!("expected the {name} port, got {line:?}"));
                addr.parse::<SocketAddr>().ok()
            };
            let ports = Ports {
                api: port("listening on").expect("the cache API always listens"),
                admin: port("admin on"),
                http: port("http on"),
                metrics: port("metrics on"),
            };
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            ports
        })
        .await
        .unwrap();
        let sidecar = Self {
            child,
            addr: ports.api,
            ports,
            env,
            dir: dir.to_path_buf(),
            config,
        };
        // Health is asked on the admin port when there is one: the cache API may speak TLS.
        let health = match sidecar.ports.admin {
            Some(_) => sidecar.admin_channel().await,
            None => sidecar.channel().await,
        };
        cachet::demo::wait_until_serving(health, Duration::from_secs(120))
            .await
            .unwrap_or_else(|_| panic!("sidecar not serving; log:\n{}", sidecar.log()));
        sidecar
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to sidecar")
    }

    pub async fn client(&self) -> CacheClient<Channel> {
        CacheClient::new(self.channel().await)
    }

    /// `http://` address of the admin API, for the CLI's `--endpoint`.
    pub fn admin_endpoint(&self) -> String {
        format!("http://{}", self.ports.admin.expect("admin API is on"))
    }

    pub async fn admin_channel(&self) -> Channel {
        Channel::from_shared(self.admin_endpoint())
            .unwrap()
            .connect()
            .await
            .expect("connect to the admin API")
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.admin_channel().await)
    }

    /// The showback of the last `days`, through the admin API.
    pub async fn report(&self, days: u32) -> ReportResponse {
        let request = cachet::operate::with_token(ReportRequest { days }, ADMIN_TOKEN);
        self.admin()
            .await
            .report(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// What the cache decided since start, through the admin API.
    pub async fn stats(&self) -> GetStatsResponse {
        let request = cachet::operate::with_token(GetStatsRequest {}, ADMIN_TOKEN);
        self.admin()
            .await
            .get_stats(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// Base URL of the OpenAI-compatible front door, as SDKs take it.
    pub fn openai_base_url(&self) -> String {
        format!(
            "http://{}/v1",
            self.ports.http.expect("HTTP front door is on")
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sidecar.log")).unwrap_or_default()
    }

    /// Merges `extra` into the sidecar's config file and sends SIGHUP, as an operator would
    /// after editing it.
    pub fn reload_with(&self, extra: &str) {
        let mut config: toml::Table = std::fs::read_to_string(&self.config)
            .unwrap()
            .parse()
            .unwrap();
        merge(&mut config, extra.parse().expect("extra config is TOML"));
        std::fs::write(&self.config, toml::to_string(&config).unwrap()).unwrap();
        self.hangup();
    }

    pub fn hangup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL: no shutdown code runs at all.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        self.signal("TERM");
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "sidecar exited with {exit}; log:\n{}",
            self.log()
        );
    }

    /// Starts again on the same data folder and config.
    pub async fn restart_after(self, how: Stop) -> Self {
        let (dir, config, env) = (self.dir.clone(), self.config.clone(), self.env.clone());
        match how {
            Stop::Kill9 => self.kill9(),
            Stop::Term => self.stop(),
        }
        Self::start_config(&dir, config, env).await
    }
}

/// Where a sidecar listens; `None` for a port turned off.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub api: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
}

pub enum Stop {
    Kill9,
    Term,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn msg(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

/// A single-question chat with a fixed system prompt.
pub fn question(tenant: &str, text: &str) -> CompleteRequest {
    chat(
        tenant,
        "gpt-test",
        &[msg("system", "Answer briefly."), msg("user", text)],
    )
}

pub fn chat(tenant: &str, model: &str, messages: &[Message]) -> CompleteRequest {
    CompleteRequest {
        tenant: tenant.into(),
        model: model.into(),
        messages: messages.to_vec(),
        ..Default::default()
    }
}

pub fn lookup_of(request: &CompleteRequest) -> LookupRequest {
    LookupRequest {
        tenant: request.tenant.clone(),
        model: request.model.clone(),
        messages: request.messages.clone(),
        params: request.params.clone(),
        cache_control: request.cache_control,
        labels: request.labels.clone(),
    }
}

pub fn store_of(request: &CompleteRequest, answer: &str, total_tokens: u32) -> StoreRequest {
    StoreRequest {
        tenant: request.tenant.clone(),
        model: request.model.clone(),
        messages: request.messages.clone(),
        params: request.params.clone(),
        cache_control: request.cache_control,
        labels: request.labels.clone(),
        answer: answer.into(),
        usage: Some(TokenUsage {
            prompt_tokens: total_tokens / 2,
            completion_tokens: total_tokens - total_tokens / 2,
            total_tokens,
        }),
        answered_by: String::new(),
    }
}
