//! Every setting of `taskwire serve`, from flags or `TASKWIRE_*` variables,
//! with defaults that need no external service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::origin::AllowedOrigin;
use crate::pool::PoolConfig;
use crate::scheduler::{SchedulerConfig, Slots};

/// The scheduler's defaults, which its flags below show and use.
const DEFAULTS: SchedulerConfig = SchedulerConfig::DEFAULT;

/// A default duration as the milliseconds its flag takes.
const fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Settings of the server.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "TASKWIRE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Worker processes [default: the number of CPUs].
    #[arg(long, env = "TASKWIRE_WORKERS")]
    pub workers: Option<usize>,
    /// Threads of the server's own event loop [default: half the CPUs, at
    /// least 1: the worker processes get the rest].
    #[arg(long, env = "TASKWIRE_IO_THREADS")]
    pub io_threads: Option<usize>,
    /// CPU-bound tasks (primes, sha256) one worker runs at once.
    #[arg(long, env = "TASKWIRE_CPU_SLOTS", default_value_t = 1)]
    pub cpu_slots: u32,
    /// I/O-bound tasks (sleep, echo, fail) one worker runs at once.
    #[arg(long, env = "TASKWIRE_IO_SLOTS", default_value_t = 1024)]
    pub io_slots: u32,
    /// Directory of the durable task store [default: `$XDG_DATA_HOME/taskwire`,
    /// else `~/.local/share/taskwire`].
    #[arg(long, env = "TASKWIRE_DATA_DIR", conflicts_with = "memory")]
    pub data_dir: Option<PathBuf>,
    /// Keep tasks in memory only: nothing survives a restart.
    #[arg(long, env = "TASKWIRE_MEMORY")]
    pub memory: bool,
    /// Most tasks queued at once; more is `queue_full`.
    #[arg(long, env = "TASKWIRE_QUEUE_CAPACITY", default_value_t = DEFAULTS.queue_capacity)]
    pub queue_capacity: usize,
    /// Timeout of an attempt whose task has `timeout_ms: null`.
    #[arg(long, env = "TASKWIRE_DEFAULT_TIMEOUT_MS", default_value_t = millis(DEFAULTS.default_timeout))]
    pub default_timeout_ms: u64,
    /// Finished tasks kept readable by `subscribe` and `GET /tasks/{id}`.
    #[arg(long, env = "TASKWIRE_RETAIN_FINISHED", default_value_t = DEFAULTS.retain_finished)]
    pub retain_finished: usize,
    /// With `--memory`: memory for finished tasks' inputs, outputs and
    /// errors (as parsed, estimated); the oldest finished tasks are dropped
    /// past it. (With a
    /// store, finished tasks' payloads are read from the store, not memory.)
    #[arg(long, env = "TASKWIRE_RETAIN_BYTES", default_value_t = DEFAULTS.retain_bytes)]
    pub retain_bytes: usize,
    /// On SIGTERM / ctrl-c: how long running tasks may take to finish before
    /// they are put back in the queue.
    #[arg(long, env = "TASKWIRE_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// Finished tasks older than this many seconds are dropped (memory and
    /// store), checked in the background.
    #[arg(long, env = "TASKWIRE_RETAIN_SECS", default_value_t = DEFAULTS.retain_age.as_secs())]
    pub retain_secs: u64,
    /// How long a finished task keeps its idempotency `key`: a submission
    /// with that key within this many seconds of its end gets that task.
    #[arg(long, env = "TASKWIRE_DEDUP_WINDOW_SECS", default_value_t = DEFAULTS.dedup_window.as_secs())]
    pub dedup_window_secs: u64,
    /// Grace for a cancelled task to stop before its worker is killed.
    #[arg(long, env = "TASKWIRE_STOP_GRACE_MS", default_value_t = millis(DEFAULTS.stop_grace))]
    pub stop_grace_ms: u64,
    /// Events one client socket may send per second (bursts of twice that);
    /// more are answered `rate_limited`.
    #[arg(long, env = "TASKWIRE_MAX_EVENTS_PER_SEC", default_value_t = 20_000)]
    pub max_events_per_sec: u32,
    /// Unfinished tasks one socket may have submitted; more is `rate_limited`.
    #[arg(
        long,
        env = "TASKWIRE_MAX_UNFINISHED_PER_SOCKET",
        default_value_t = DEFAULTS.max_unfinished_per_socket
    )]
    pub max_unfinished_per_socket: usize,
    /// Largest Socket.IO message or HTTP body, in bytes.
    #[arg(long, env = "TASKWIRE_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Packets queued per socket before pushes to it fail.
    #[arg(long, env = "TASKWIRE_SOCKET_BUFFER", default_value_t = 65_536)]
    pub socket_buffer: usize,
    /// Time a connection has to send a request's head: from when it is
    /// accepted or done with its previous request (so also how long a
    /// keep-alive connection may sit idle) until the head is complete.
    #[arg(long, env = "TASKWIRE_HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,
    /// Time a request has to send its whole body, from its start.
    #[arg(long, env = "TASKWIRE_BODY_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_ms: u64,
    /// Connections served at once; past it, only short single requests
    /// such as `GET /healthz` are answered [default: the open-file limit
    /// less 256].
    #[arg(long, env = "TASKWIRE_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Bytes waiting for a websocket client that does not read before its
    /// connection is closed.
    #[arg(long, env = "TASKWIRE_MAX_QUEUED_BYTES", default_value_t = 64 << 20)]
    pub max_queued_bytes: usize,
    /// Engine.IO heartbeat: how often the server pings every connection
    /// (clients and remote workers). A peer that does not answer a ping
    /// within `--ping-timeout-ms` is disconnected, so a frozen remote
    /// worker's tasks are back in the queue at most `ping-interval-ms +
    /// ping-timeout-ms` after it stopped answering (twice the interval for
    /// a client that sends a pong unasked at connect, as rust_socketio
    /// does).
    #[arg(long, env = "TASKWIRE_PING_INTERVAL_MS", default_value_t = 25_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_interval_ms: u64,
    /// Engine.IO heartbeat: how long a ping may wait for its pong.
    #[arg(long, env = "TASKWIRE_PING_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ping_timeout_ms: u64,
    /// Directory of the built Leptos site [default: `$LEPTOS_SITE_ROOT` or `target/site`].
    #[arg(long, env = "TASKWIRE_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    /// Access token [default: none, everything is open]. When set, Socket.IO
    /// clients must send auth `{token}`, remote workers `token` in their
    /// hello, and HTTP requests (but `GET /healthz`) `Authorization: Bearer`.
    #[arg(long, env = "TASKWIRE_TOKEN", hide_env_values = true,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub token: Option<String>,
    /// Web origins (`scheme://host[:port]`, or `*` for any) whose pages may
    /// use Socket.IO and the state-changing HTTP routes besides the
    /// server's own pages; repeat the flag or separate them with commas.
    #[arg(
        long = "allowed-origin",
        env = "TASKWIRE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<AllowedOrigin>,
    /// Cluster mode: this server is one node of several sharing one queue in
    /// PostgreSQL (`--database-url`) and their rooms through Redis
    /// (`--redis-url`). Without it the embedded store is used.
    #[arg(long, env = "TASKWIRE_CLUSTER", conflicts_with_all = ["memory", "data_dir"],
          requires_all = ["database_url", "redis_url"])]
    pub cluster: bool,
    /// Cluster mode: the PostgreSQL database (`postgres://user@host/db`).
    #[arg(
        long,
        env = "TASKWIRE_DATABASE_URL",
        hide_env_values = true,
        requires = "cluster"
    )]
    pub database_url: Option<String>,
    /// Cluster mode: the Redis server (`redis://host:port`).
    #[arg(
        long,
        env = "TASKWIRE_REDIS_URL",
        hide_env_values = true,
        requires = "cluster"
    )]
    pub redis_url: Option<String>,
    /// Cluster mode: the prefix of every Redis channel of this cluster;
    /// clusters sharing one Redis use different prefixes.
    #[arg(long, env = "TASKWIRE_REDIS_PREFIX", default_value = crate::cluster::redis::DEFAULT_PREFIX)]
    pub redis_prefix: String,
    /// Cluster mode: how long a silent node keeps its running tasks before
    /// another node takes them back (every node of a cluster uses the same).
    #[arg(long, env = "TASKWIRE_LEASE_MS", default_value_t = millis(crate::cluster::DEFAULT_LEASE),
          value_parser = clap::value_parser!(u64).range(100..))]
    pub lease_ms: u64,
    /// Binary to run as worker [default: this one].
    #[arg(long, env = "TASKWIRE_WORKER_EXE", hide = true)]
    pub worker_exe: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            s: Settings,
        }
        Wrap::parse_from(["taskwire"]).s
    }
}

impl Settings {
    pub fn scheduler(&self) -> SchedulerConfig {
        SchedulerConfig {
            queue_capacity: self.queue_capacity,
            default_timeout: Duration::from_millis(self.default_timeout_ms),
            retain_finished: self.retain_finished,
            retain_age: Duration::from_secs(self.retain_secs),
            dedup_window: Duration::from_secs(self.dedup_window_secs),
            retain_bytes: self.retain_bytes,
            stop_grace: Duration::from_millis(self.stop_grace_ms),
            max_unfinished_per_socket: self.max_unfinished_per_socket,
            ..SchedulerConfig::DEFAULT
        }
    }

    /// What one connection may cost (see [`crate::serve`]).
    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            max_connections: self
                .max_connections
                .map_or_else(crate::serve::default_max_connections, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
            max_queued_bytes: self.max_queued_bytes,
        }
    }

    pub fn pool(&self) -> std::io::Result<PoolConfig> {
        let workers = self.workers.unwrap_or_else(cpus);
        let exe = match &self.worker_exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe()?,
        };
        Ok(PoolConfig {
            workers,
            slots: Slots::per_class(self.cpu_slots, self.io_slots),
            exe,
            kinds: Vec::new(),
            id_prefix: String::new(),
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// Threads for the server's event loop. The task work runs in the worker
    /// processes; fewer loop threads mean fewer cross-thread wake-ups per
    /// task (measured: a fifth less server CPU per echo task on 2 cores).
    pub fn io_threads(&self) -> usize {
        self.io_threads.unwrap_or_else(|| cpus().div_ceil(2)).max(1)
    }

    /// Where the durable store of a server bound to `addr` lives; `None`
    /// with `--memory`.
    ///
    /// Without `--data-dir`, each listen address gets its own directory
    /// under `$XDG_DATA_HOME/taskwire` (or `~/.local/share/taskwire`), so
    /// servers on different ports never share one and a restart on the same
    /// address recovers its tasks. A server on port 0 gets a new port each
    /// start, so nothing could find its tasks again: it gets a fresh
    /// temporary directory, removed when it exits.
    pub fn data_dir(&self, addr: std::net::SocketAddr) -> Option<DataDir> {
        if self.memory {
            return None;
        }
        if let Some(dir) = &self.data_dir {
            return Some(DataDir::Kept(dir.clone()));
        }
        if self.addr.port() == 0 {
            return Some(DataDir::Temporary);
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        let name = format!("{}-{}", addr.ip(), addr.port()).replace([':', '[', ']'], "_");
        Some(DataDir::Kept(base.join("taskwire").join(name)))
    }

    pub fn site_root(&self) -> PathBuf {
        self.site_root.clone().unwrap_or_else(|| {
            std::env::var_os("LEPTOS_SITE_ROOT").map_or_else(|| "target/site".into(), PathBuf::from)
        })
    }
}

/// CPUs this process may use.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Where a durable store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// This directory, kept across restarts.
    Kept(PathBuf),
    /// A fresh directory removed at exit (a server on port 0).
    Temporary,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_defaults_are_the_schedulers() {
        let from_flags = Settings::default().scheduler();
        let d = SchedulerConfig::DEFAULT;
        assert_eq!(from_flags.queue_capacity, d.queue_capacity);
        assert_eq!(from_flags.default_timeout, d.default_timeout);
        assert_eq!(from_flags.retain_finished, d.retain_finished);
        assert_eq!(from_flags.retain_age, d.retain_age);
        assert_eq!(from_flags.dedup_window, d.dedup_window);
        assert_eq!(from_flags.retain_bytes, d.retain_bytes);
        assert_eq!(from_flags.stop_grace, d.stop_grace);
        assert_eq!(from_flags.stats_interval, d.stats_interval);
        assert_eq!(
            from_flags.max_unfinished_per_socket,
            d.max_unfinished_per_socket
        );
    }
}
