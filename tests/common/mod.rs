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
        let sidecar = Sidecar::start_with_env(dir.path(), &upstream.base_url(), extra, env).await;
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
        Self::start_with_env(dir, upstream, extra, &[]).await
    }

    /// As [`Sidecar::start_with`], with these variables set for the sidecar (kept across
    /// [`Sidecar::restart_after`]).
    pub async fn start_with_env(
        dir: &Path,
        upstream: &str,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let config = write_config(dir, upstream, extra);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start_config(dir, config, env).await
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The Prometheus text its metrics port serves (the config must set `metrics_listen`).
    pub async fn metrics(&self) -> String {
        let port = self.ports.metrics.expect("metrics_listen is set");
        reqwest::get(format!("http://{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
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
        self.restart_after_with(how, || async {}).await
    }

    /// Stops, runs `meanwhile`, then starts again on the same data folder and config.
    pub async fn restart_after_with<F, Fut>(self, how: Stop, meanwhile: F) -> Self
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let (dir, config, env) = (self.dir.clone(), self.config.clone(), self.env.clone());
        match how {
            Stop::Kill9 => self.kill9(),
            Stop::Term => self.stop(),
        }
        meanwhile().await;
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

/// The standard output of a finished `cachet` command; fails the test, showing both outputs,
/// unless the command succeeded.
pub fn succeeded(out: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
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

/// An admin call: the message with the test's bearer token.
pub fn as_admin<T>(message: T) -> tonic::Request<T> {
    cachet::operate::with_token(message, ADMIN_TOKEN)
}

/// A real `redis-server` (the Debian package `scripts/test.sh` installs) on a free loopback
/// port, with its data in a temporary folder; killed when dropped. Append-only with fsync on
/// every write, so a stop and a restart keep the fleet's ledger as a production Redis would.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// TLS only, with a CA of its own (`ca.crt` in its folder) and [`REDIS_PASSWORD`].
    tls: bool,
}

/// The password a TLS test Redis asks for.
pub const REDIS_PASSWORD: &str = "test-redis-password";

impl Redis {
    pub fn start() -> Self {
        Self::launch(false)
    }

    /// A Redis that speaks only TLS (certificate for 127.0.0.1 signed by a CA made here with
    /// openssl) and asks for [`REDIS_PASSWORD`].
    pub fn start_tls() -> Self {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            tls,
        };
        if tls {
            redis.make_certificates();
        }
        redis.restart();
        redis
    }

    fn make_certificates(&self) {
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            self.dir.path().join("san.ext"),
            "subjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
    }

    /// The CA a TLS Redis's certificate is signed by.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The `[fleet]` section of a sidecar using this Redis, with keys under `prefix`. The
    /// command timeout is generous: test machines run several builds at once.
    pub fn fleet_config(&self, prefix: &str) -> String {
        format!(
            "[fleet]\nredis_url = \"{}\"\nkey_prefix = \"{prefix}\"\ncommand_timeout_ms = 2000\n",
            self.url()
        )
    }

    /// Starts (again) on the same port and folder, and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let dir = self.dir.path();
        let log = dir.join("redis.log");
        let _ = std::fs::remove_file(&log);
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1"]);
        if self.tls {
            command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                ])
                .args([
                    "--tls-ca-cert-file",
                    "ca.crt",
                    "--requirepass",
                    REDIS_PASSWORD,
                ]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Ready to accept connections") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (Redis writes its append-only file and exits), then waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
