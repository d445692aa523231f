//! `taskwire bench`: a load generator for sizing a deployment. It opens
//! many sockets, keeps a window of tasks in flight on each (or, with
//! `--rate`, sends on a fixed schedule), verifies every result and reports
//! throughput and ack/result latency percentiles.
//!
//! - [`args`]: the flags, checked into a [`Config`];
//! - [`verify`]: each task's input and the outcome it must have;
//! - [`wire`]: Engine.IO/Socket.IO text frames, read without building trees;
//! - [`conn`]: opening a socket (source address, upgrade, joining `/`);
//! - [`driver`]: one socket's window, ack and result matching, deadlines;
//! - [`report`]: counts, latency histograms and the summary;
//! - [`progress`]: the bar on stderr.

pub mod args;
pub mod conn;
pub mod driver;
pub mod progress;
pub mod report;
pub mod verify;
pub mod wire;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use args::{Amount, BenchArgs, Config};
pub use report::Report;

use conn::{ConnectError, Target, Ws};
use driver::{Schedule, Shared};
use progress::Progress;
use report::{Latencies, Shape, Tally};
use verify::{Workload, WorkloadError};

/// Sockets opening at once.
const CONNECT_CONCURRENCY: usize = 64;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad --url {url}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--input is not valid JSON: {0}")]
    InputJson(#[source] serde_json::Error),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error("cannot connect: {0}")]
    Connect(#[from] ConnectError),
    #[error("--source-addrs needs a server on IPv4 loopback (127.0.0.0/8), not {0}")]
    SourcesNeedLoopback(IpAddr),
}

/// Runs the benchmark `config` describes. Cancelling `stop` ends it early
/// (tasks not yet sent are counted unsent; those in flight are awaited).
pub async fn run(config: Config, stop: CancellationToken) -> Result<Report, BenchError> {
    let (kind, input) = (config.kind.clone(), config.input.clone());
    // A large primes limit or many sha256 rounds take a while to check.
    let mut workload = tokio::task::spawn_blocking(move || Workload::new(&kind, input))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    if config.keys {
        // A run of its own, so no key names a task of an earlier run.
        workload.key_every_task(fastrand::u64(..));
    }

    let mut target = Target::resolve(&config.url, config.token.as_deref(), config.clients).await?;
    let (first, addr) = target.connect(0).await?;
    target.pin(addr, config.clients, config.source_addrs)?;
    let sockets = connect_rest(&target, first, config.clients).await;

    let start = Instant::now();
    let shared = Arc::new(Shared {
        workload,
        window: config.window,
        batch: config.batch,
        deadline: config.deadline,
        stop: stop.child_token(),
        settled: AtomicU64::new(0),
        latencies: Arc::new(Mutex::new(Latencies::new())),
        sockets: sockets.len() as u64,
        schedule: config.rate.map(|rate| Schedule {
            start,
            rate,
            end: match config.amount {
                Amount::For(duration) => start.checked_add(duration),
                Amount::Tasks(_) => None,
            },
        }),
    });
    let shape = Shape {
        kind: config.kind.clone(),
        clients: config.clients,
        connected: sockets.len(),
        inflight: config.inflight,
        batch: config.batch,
        source_addrs: target.sources().len().max(1),
        rate: config.rate,
    };
    let progress = Progress::start(config.amount, shared.clone());
    if let Amount::For(duration) = config.amount {
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(duration) => stop.cancel(),
                () = stop.cancelled() => {}
            }
        });
    }
    let count = sockets.len() as u64;
    let mut running = JoinSet::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let quota = match config.amount {
            Amount::Tasks(n) => Some(n / count + u64::from((i as u64) < n % count)),
            Amount::For(_) => None,
        };
        running.spawn(driver::drive(ws, i, quota, shared.clone()));
    }
    let mut tally = Tally::default();
    while let Some(done) = running.join_next().await {
        tally.merge(done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
    }
    shared.stop.cancel();
    progress.finish();
    let latencies = shared.latencies.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Report::new(shape, tally, &latencies, start))
}

/// Opens sockets 1.. next to the `first`, some at a time; those that fail
/// are left out (and counted as connect errors in the report).
async fn connect_rest(target: &Target, first: Ws, clients: usize) -> Vec<Ws> {
    let mut sockets = Vec::with_capacity(clients);
    sockets.push(first);
    let mut opening = futures_util::stream::iter(1..clients)
        .map(|i| target.connect(i))
        .buffer_unordered(CONNECT_CONCURRENCY);
    let mut failed = 0;
    while let Some(opened) = opening.next().await {
        match opened {
            Ok((ws, _)) => sockets.push(ws),
            Err(e) => {
                if failed == 0 {
                    tracing::warn!(error = %e, "bench: a socket could not connect");
                }
                failed += 1;
            }
        }
    }
    sockets
}
