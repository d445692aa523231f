//! Starting a server for one test and talking to it.
//!
//! [`TestServer::start`] runs the server inside the test binary: the same
//! [`Application`] that `taskwire serve` builds, on a thread and runtime of
//! its own, with the real binary as its worker processes. Tests about the
//! server process itself (signals, its memory, a restart after it was
//! killed) use [`TestServer::start_process`], which runs `taskwire serve`.

use std::net::SocketAddr;
use std::ops::Deref;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use app::{Stats, Task, TaskId, TaskSpec, WorkerInfo};
use clap::Parser as _;
use serde_json::Value;
use taskwire::client::{Client, Push};
use taskwire::{Application, Registry, Settings};
use tokio::io::{AsyncBufReadExt, AsyncReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// Upper bound of any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// The binary: `taskwire serve` for process servers, `taskwire worker` for
/// every server's workers.
const EXE: &str = env!("CARGO_BIN_EXE_taskwire");

/// A running server, stopped when dropped.
pub struct TestServer {
    pub url: String,
    /// Its `--token`, sent by [`TestServer::client`].
    pub token: Option<String>,
    /// The in-process server; `None` when a [`ServerProcess`] owns it.
    _in_process: Option<InProcess>,
}

/// A `taskwire serve` process, killed when dropped.
pub struct ServerProcess {
    server: TestServer,
    pub child: Child,
}

impl Deref for ServerProcess {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("server pid")
    }
}

/// The `serve` flags, as the command line takes them.
#[derive(clap::Parser)]
#[command(name = "taskwire serve")]
struct ServeFlags {
    #[command(flatten)]
    settings: Settings,
}

/// `serve`'s flags for a test server: port 0, 2 workers and in memory
/// unless `extra` says otherwise, then `extra`.
fn serve_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
    if !extra.contains(&"--workers") {
        args.extend(["--workers", "2"]);
    }
    if !extra.contains(&"--data-dir") && !extra.contains(&"--cluster") {
        args.push("--memory");
    }
    args.extend(extra);
    args
}

/// Log filter of the servers under test: `TEST_LOG`, else errors only.
fn test_log() -> String {
    std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into())
}

impl TestServer {
    /// Starts a server in this process with 2 workers and `extra` flags.
    pub async fn start(extra: &[&str]) -> Self {
        init_logging();
        let mut args = serve_args(extra);
        if !extra.contains(&"--site-root") {
            args.extend(["--site-root", "/nonexistent"]);
        }
        args.extend(["--worker-exe", EXE]);
        let settings = ServeFlags::try_parse_from(args)
            .unwrap_or_else(|e| panic!("bad serve flags {extra:?}: {e}"))
            .settings;
        let (in_process, addr) = InProcess::start(settings).await;
        let server = Self {
            url: format!("http://{addr}"),
            token: token_of(extra),
            _in_process: Some(in_process),
        };
        server.wait_workers(expected_workers(extra)).await;
        server
    }

    /// Starts `taskwire serve` with 2 workers and `extra` flags.
    pub async fn start_process(extra: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(EXE);
        cmd.args(serve_args(extra))
            .env("TASKWIRE_SITE_ROOT", "/nonexistent")
            .env("TASKWIRE_LOG", test_log())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn taskwire");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("server did not start in time")
            .expect("read stdout")
            .expect("server exited before listening");
        let url = line
            .strip_prefix("taskwire listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        // Keep draining stdout so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let server = Self {
            url,
            token: token_of(extra),
            _in_process: None,
        };
        server.wait_workers(expected_workers(extra)).await;
        ServerProcess { server, child }
    }

    /// A connected client (with the server's token, if it has one).
    pub async fn client(&self) -> Client {
        Client::connect_with_token(&self.url, self.token.as_deref(), WAIT)
            .await
            .expect("connect")
    }

    /// `base` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The server's stats (over a fresh socket).
    pub async fn stats(&self) -> Stats {
        let c = self.client().await;
        let s = c.dashboard().await.expect("dashboard");
        let _ = c.disconnect().await;
        s
    }

    /// Waits until `n` workers are up, and returns them.
    pub async fn wait_workers(&self, n: usize) -> Vec<WorkerInfo> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let workers = self.stats().await.workers;
            if workers.len() >= n {
                return workers;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "workers never came up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn expected_workers(extra: &[&str]) -> usize {
    extra
        .windows(2)
        .find(|w| w[0] == "--workers")
        .map_or(2, |w| w[1].parse().expect("--workers N"))
}

fn token_of(extra: &[&str]) -> Option<String> {
    extra
        .windows(2)
        .find(|w| w[0] == "--token")
        .map(|w| w[1].to_owned())
}

/// Server logs go through the test harness's capture: shown with a failing
/// test, and at the `TEST_LOG` level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_new(test_log())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    // Already set by an earlier test: fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// An [`Application`] on a thread and multi-thread runtime of its own, as
/// `taskwire serve` runs it: a test's runtime (current-thread, maybe
/// blocked or paused) never stalls it. Dropping it stops the server at once
/// and waits until it has stopped, its workers included.
struct InProcess {
    stop: CancellationToken,
    /// Disconnected when the server thread is done.
    done: mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    async fn start(settings: Settings) -> (Self, SocketAddr) {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (done_tx, done) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("taskwire-server".into())
            .spawn(move || {
                let _done = done_tx;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(settings.io_threads())
                    .thread_name("taskwire-server")
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let app = match Application::build(settings, Registry::builtin()).await {
                        Ok(app) => app,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                            return;
                        }
                    };
                    let started = app
                        .local_addr()
                        .map(|addr| (addr, app.shutdown_token()))
                        .map_err(|e| e.to_string());
                    if ready_tx.send(started).is_err() {
                        return;
                    }
                    if let Err(e) = app.run_until_stopped().await {
                        tracing::error!(error = format!("{e:#}"), "server failed");
                    }
                });
            })
            .expect("spawn the server thread");
        let (addr, stop) = tokio::time::timeout(WAIT, ready)
            .await
            .expect("server did not start in time")
            .expect("server thread died before listening")
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let server = Self {
            stop,
            done,
            thread: Some(thread),
        };
        (server, addr)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.cancel();
        // Bounded, so a server that cannot stop fails its test, not hangs it.
        match self.done.recv_timeout(WAIT) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !std::thread::panicking() {
                    panic!("the server did not stop within {WAIT:?}");
                }
            }
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let ended = self.thread.take().map(std::thread::JoinHandle::join);
                if matches!(ended, Some(Err(_))) && !std::thread::panicking() {
                    panic!("the server thread panicked");
                }
            }
        }
    }
}

/// A task submission.
pub fn spec(kind: &str, input: Value) -> TaskSpec {
    TaskSpec::new(kind, input)
}

/// `GET /metrics`: the Prometheus text.
pub async fn metrics_text(server: &TestServer) -> String {
    reqwest::get(server.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits for the `result` push of `id`, ignoring other pushes.
pub async fn result_of(client: &mut Client, id: TaskId) -> Task {
    tokio::time::timeout(WAIT, client.wait_result(id, |_| {}))
        .await
        .expect("no result in time")
        .expect("connection lost")
}

/// Task `id` once final: as `subscribe` answers if it is already, else
/// its `result`.
pub async fn final_of(client: &mut Client, id: TaskId) -> Task {
    let snapshot = client.subscribe(id).await.expect("subscribe");
    match snapshot.status.is_final() {
        true => snapshot,
        false => result_of(client, id).await,
    }
}

/// Waits for the first push matching `pick`.
pub async fn push_where<T>(client: &mut Client, mut pick: impl FnMut(Push) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let push = client
            .next_push_within(left)
            .await
            .expect("no matching push in time");
        if let Some(t) = pick(push) {
            return t;
        }
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `taskwire serve` on `127.0.0.1:0` with one worker, in memory, with `env`
/// and `args`, and no site; the caller picks stdio.
pub fn serve_command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(EXE);
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--memory",
        "--workers",
        "1",
    ])
    .args(args)
    .env("TASKWIRE_SITE_ROOT", "/nonexistent")
    .envs(env.iter().copied());
    cmd
}

/// CPU time (user + system, in clock ticks) a process has used so far.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

/// Polls `cond` every 20 ms until it holds, for at most [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `signal` to a process; `false` if there is no such process.
pub fn signal(pid: u32, signal: i32) -> bool {
    // SAFETY: sending a signal has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, signal) == 0 }
}

/// The error code of an HTTP error response.
pub async fn error_code(res: reqwest::Response) -> app::ErrorCode {
    res.json::<app::HttpError>()
        .await
        .expect("error body")
        .error
        .code
}

/// Starts `taskwire remote-worker` for `server` offering `kinds`
/// (comma-separated), with an access token if given.
pub fn remote_worker(
    server: &TestServer,
    name: &str,
    kinds: &str,
    concurrency: u32,
    token: Option<&str>,
) -> Child {
    let mut cmd = Command::new(EXE);
    cmd.args([
        "remote-worker",
        "--url",
        &server.url,
        "--name",
        name,
        "--kinds",
        kinds,
    ])
    .args(["--concurrency", &concurrency.to_string()])
    .env("TASKWIRE_LOG", "error")
    .stdout(Stdio::null())
    .kill_on_drop(true);
    if let Some(token) = token {
        cmd.env("TASKWIRE_TOKEN", token);
    }
    cmd.spawn().expect("spawn remote worker")
}

/// Runs a server with `env` and `args`, calls `during` with its URL, stops
/// it (SIGTERM) and returns everything it wrote to stderr.
pub async fn server_stderr<F, Fut>(env: &[(&str, &str)], args: &[&str], during: F) -> String
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut cmd = serve_command(env, args);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn taskwire");
    let mut stderr = child.stderr.take().unwrap();
    // Drained all along: a full pipe would block the server.
    let collected = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        all
    });
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = timeout(WAIT, lines.next_line())
        .await
        .expect("server did not start")
        .unwrap()
        .expect("server exited");
    let url = line
        .strip_prefix("taskwire listening on ")
        .unwrap()
        .to_owned();
    during(url).await;
    signal(child.id().unwrap(), libc::SIGTERM);
    timeout(WAIT, child.wait())
        .await
        .expect("server did not stop")
        .unwrap();
    let all = timeout(WAIT, collected)
        .await
        .expect("stderr not closed")
        .unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// A `redis-server` of this test's own on a free port (the shared one
/// cannot be stopped), killed when dropped.
pub struct PrivateRedis {
    port: u16,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts one on `port` (a free one if `None`) and waits until it
    /// answers.
    pub async fn start(port: Option<u16>) -> Self {
        let port = match port {
            Some(port) => port,
            None => std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port(),
        };
        let dir = tempfile::tempdir().expect("a directory for redis-server");
        let child = tokio::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would stop it.
    pub async fn kill(mut self) -> u16 {
        self.child.kill().await.expect("kill redis-server");
        self.port
    }
}

/// Runs the `taskwire` binary with `args` (a client command) and waits for
/// it, bounded.
pub async fn taskwire(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output();
    timeout(WAIT, out)
        .await
        .expect("cli in time")
        .expect("run cli")
}
