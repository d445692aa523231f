//! Starting a server for one test and talking to it.

use std::process::Stdio;
use std::time::Duration;

use app::{Stats, Task, TaskId, TaskSpec, WorkerInfo};
use serde_json::Value;
use taskwire::client::{Client, Push};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Upper bound of any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(30);

/// A `taskwire serve` process, killed when dropped.
pub struct TestServer {
    pub child: Child,
    pub url: String,
    /// Its `--token`, sent by [`TestServer::client`].
    pub token: Option<String>,
}

impl TestServer {
    /// Starts a server with 2 workers and `extra` flags.
    pub async fn start(extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
        cmd.args(["serve", "--addr", "127.0.0.1:0"]);
        if !extra.contains(&"--workers") {
            cmd.args(["--workers", "2"]);
        }
        if !extra.contains(&"--data-dir") {
            cmd.arg("--memory");
        }
        cmd.args(extra)
            .env("TASKWIRE_SITE_ROOT", "/nonexistent")
            .env(
                "TASKWIRE_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()),
            )
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
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--token")
            .map(|w| w[1].to_owned());
        let server = Self { child, url, token };
        server.wait_workers(server.expected_workers(extra)).await;
        server
    }

    fn expected_workers(&self, extra: &[&str]) -> usize {
        extra
            .windows(2)
            .find(|w| w[0] == "--workers")
            .map_or(2, |w| w[1].parse().expect("--workers N"))
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

    pub fn pid(&self) -> u32 {
        self.child.id().expect("server pid")
    }
}

/// A task submission.
pub fn spec(kind: &str, input: Value) -> TaskSpec {
    TaskSpec::new(kind, input)
}

/// Waits for the `result` push of `id`, ignoring other pushes.
pub async fn result_of(client: &mut Client, id: TaskId) -> Task {
    tokio::time::timeout(WAIT, client.wait_result(id, |_| {}))
        .await
        .expect("no result in time")
        .expect("connection lost")
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
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
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
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
