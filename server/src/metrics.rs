//! What `GET /metrics` shows: a Prometheus recorder of the `metrics` crate
//! that each server owns (tests run several servers in one process, so
//! nothing is installed globally), recorded into through
//! `metrics::with_local_recorder` and rendered by its own handle.
//!
//! The scheduler records each task's queue wait and run time here at the
//! same point where it adds them to the dashboard's per-kind percentiles
//! (`scheduler::latency`), so both are drawn from the same observations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{Stats, TaskStatus};
use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio_util::sync::CancellationToken;

/// Bucket bounds of the latency histograms, in seconds: a millisecond to
/// an hour.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// How often histogram samples are folded in when nobody scrapes (they
/// are buffered until then).
const UPKEEP: Duration = Duration::from_secs(5);

pub const TASKS: &str = "taskwire_tasks";
pub const WORKERS: &str = "taskwire_workers";
pub const THROUGHPUT: &str = "taskwire_throughput_per_second";
pub const WORKER_TASKS_DONE: &str = "taskwire_worker_tasks_done";
pub const FINISHED: &str = "taskwire_tasks_finished_total";
pub const RETRIES: &str = "taskwire_task_retries_total";
pub const WORKER_RESTARTS: &str = "taskwire_worker_restarts_total";
pub const WAIT: &str = "taskwire_task_wait_seconds";
pub const RUN: &str = "taskwire_task_run_seconds";
pub const QUEUE_DEPTH: &str = "taskwire_queue_depth";
pub const RUNNING: &str = "taskwire_tasks_running";
pub const PAUSED: &str = "taskwire_kind_paused";
pub const STORE_COMMITS: &str = "taskwire_store_commits_total";
pub const STORE_ROWS: &str = "taskwire_store_task_writes_total";
pub const STORE_COMMITS_HERE: &str = "taskwire_store_commits_on_scheduler_total";

/// Why a task runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A failed or timed-out attempt with `retry_on_failure`, after its
    /// backoff.
    Failure,
    /// Its worker died or disconnected.
    WorkerLost,
    /// Someone asked (`retry` / `POST /tasks/{id}/retry`): a new task.
    Manual,
}

impl Retry {
    fn as_str(self) -> &'static str {
        match self {
            Self::Failure => "failure",
            Self::WorkerLost => "worker_lost",
            Self::Manual => "manual",
        }
    }
}

/// One server's metrics: a cheap-clone handle.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Each kind's series, registered at first use and kept.
    kinds: Mutex<HashMap<Box<str>, KindSeries>>,
}

/// The series of one kind that every task records into, held once
/// registered: the macros find a series by name and labels on every call
/// (a key built, hashed and looked up), which at three calls per task cost
/// about 3 % of the scheduler thread. Each is registered when it is first
/// recorded into, as the macros did, so `/metrics` shows the same series.
#[derive(Default)]
struct KindSeries {
    wait: Option<Histogram>,
    run: Option<Histogram>,
    /// By status, in declaration (and `TaskStatus::ALL`) order.
    finished: [Option<Counter>; TaskStatus::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("the latency buckets are a constant, valid list")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self(Arc::new(Inner {
            recorder,
            handle,
            kinds: Mutex::default(),
        }));
        metrics.with(describe);
        metrics
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.0.recorder, f)
    }

    /// Runs `f` on the series of `kind`.
    fn series<T>(&self, kind: &str, f: impl FnOnce(&mut KindSeries) -> T) -> T {
        let mut kinds = self.0.kinds.lock().unwrap_or_else(|e| e.into_inner());
        match kinds.get_mut(kind) {
            Some(series) => f(series),
            None => f(kinds.entry(kind.into()).or_default()),
        }
    }

    /// A task ended in final `status`.
    pub fn finished(&self, kind: &str, status: TaskStatus) {
        self.series(kind, |s| {
            // A fieldless enum: its discriminant is its declaration index.
            s.finished[status as usize]
                .get_or_insert_with(|| {
                    let kind = kind.to_owned();
                    self.with(|| counter!(FINISHED, "kind" => kind, "status" => status.as_str()))
                })
                .increment(1);
        });
    }

    /// A task of `kind` runs again, for `why`.
    pub fn retried(&self, kind: &str, why: Retry) {
        let kind = kind.to_owned();
        self.with(|| counter!(RETRIES, "kind" => kind, "reason" => why.as_str()).increment(1));
    }

    /// A worker process died and was started again.
    pub fn worker_restarted(&self) {
        self.with(|| counter!(WORKER_RESTARTS).increment(1));
    }

    /// The durable store began a commit writing `inserts` tasks whole and
    /// `updates` tasks' state only.
    pub fn committing(&self, inserts: u64, updates: u64) {
        self.with(|| {
            counter!(STORE_COMMITS).increment(1);
            counter!(STORE_ROWS, "write" => "insert").increment(inserts);
            counter!(STORE_ROWS, "write" => "update").increment(updates);
        });
    }

    /// A commit (counted by [`Metrics::committing`]) was made on the
    /// scheduler's thread, not the store's writer thread.
    pub fn committed_here(&self) {
        self.with(|| counter!(STORE_COMMITS_HERE).increment(1));
    }

    /// A task of `kind` started after waiting `wait` in the queue.
    pub fn waited(&self, kind: &str, wait: Duration) {
        self.record(kind, WAIT, |s| &mut s.wait, wait);
    }

    /// A task of `kind` ran `run` until it was final.
    pub fn ran(&self, kind: &str, run: Duration) {
        self.record(kind, RUN, |s| &mut s.run, run);
    }

    /// Records `value` into histogram `name` of `kind`, held in `slot`.
    fn record(
        &self,
        kind: &str,
        name: &'static str,
        slot: fn(&mut KindSeries) -> &mut Option<Histogram>,
        value: Duration,
    ) {
        self.series(kind, |s| {
            slot(s)
                .get_or_insert_with(|| {
                    let kind = kind.to_owned();
                    self.with(|| histogram!(name, "kind" => kind))
                })
                .record(value.as_secs_f64());
        });
    }

    /// The Prometheus text, with the gauges set from `stats` as of now.
    pub fn render(&self, stats: &Stats) -> String {
        self.with(|| set_gauges(stats));
        self.0.handle.render()
    }

    /// Folds buffered histogram samples in every few seconds until
    /// `shutdown`, so they take no memory while nobody scrapes.
    pub fn spawn_upkeep(&self, shutdown: CancellationToken) {
        let handle = self.0.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        });
    }
}

fn describe() {
    describe_gauge!(
        TASKS,
        "Tasks by status (scheduled/waiting/queued/running now; final ones since start)."
    );
    describe_gauge!(WORKERS, "Connected workers.");
    describe_gauge!(THROUGHPUT, "Tasks finished per second, recent average.");
    describe_counter!(WORKER_TASKS_DONE, "Tasks each worker ran to the end.");
    describe_counter!(
        FINISHED,
        "Tasks this server ended, by kind and final status."
    );
    describe_counter!(
        RETRIES,
        "Tasks run again, by kind and reason (failure: retry_on_failure after its backoff; \
         worker_lost: requeued; manual: a retry request)."
    );
    describe_counter!(
        STORE_COMMITS,
        "Transactions the durable store began (each is one disk sync)."
    );
    describe_counter!(
        STORE_COMMITS_HERE,
        "Of those transactions, the ones made on the scheduler's thread: small ones at \
         light load, while the store's writer thread had nothing to do."
    );
    describe_counter!(
        STORE_ROWS,
        "Task writes of the durable store: insert (the task whole, its first write) or \
         update (its state only). A task submitted and finished within one commit is \
         written once."
    );
    describe_counter!(
        WORKER_RESTARTS,
        "Worker processes started again after they died."
    );
    // Shown from the start, at 0.
    counter!(WORKER_RESTARTS).increment(0);
    describe_histogram!(WAIT, Unit::Seconds, "Time from queued to running, by kind.");
    describe_histogram!(RUN, Unit::Seconds, "Time from running to final, by kind.");
    describe_gauge!(QUEUE_DEPTH, "Queued tasks, by kind.");
    describe_gauge!(RUNNING, "Running tasks, by kind.");
    describe_gauge!(PAUSED, "1 while a kind is paused, by kind.");
}

fn set_gauges(s: &Stats) {
    for (status, n) in [
        ("scheduled", s.scheduled),
        ("waiting", s.waiting),
        ("queued", s.queued),
        ("running", s.running),
        ("succeeded", s.succeeded),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
        ("timed_out", s.timed_out),
    ] {
        gauge!(TASKS, "status" => status).set(n as f64);
    }
    gauge!(WORKERS).set(s.workers.len() as f64);
    gauge!(THROUGHPUT).set(s.throughput_per_s);
    for w in &s.workers {
        counter!(WORKER_TASKS_DONE, "worker" => w.id.to_string()).absolute(w.tasks_done);
    }
    for k in &s.kinds {
        gauge!(QUEUE_DEPTH, "kind" => k.kind.clone()).set(k.queued as f64);
        gauge!(RUNNING, "kind" => k.kind.clone()).set(k.running as f64);
        gauge!(PAUSED, "kind" => k.kind.clone()).set(if k.paused { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines of `text` for series `name`, sorted.
    fn series(text: &str, name: &str) -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(name))
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn kind_series_are_registered_once_and_counted_apart() {
        let metrics = Metrics::new();
        let ms = Duration::from_millis;
        for _ in 0..3 {
            metrics.finished("echo", TaskStatus::Succeeded);
        }
        metrics.finished("echo", TaskStatus::TimedOut);
        metrics.finished("fail", TaskStatus::Failed);
        metrics.ran("echo", ms(2));
        metrics.ran("echo", ms(40));
        metrics.waited("fail", ms(1));
        // A second server's metrics are its own.
        Metrics::new().finished("echo", TaskStatus::Succeeded);
        let text = metrics.0.handle.render();
        assert_eq!(
            series(&text, FINISHED),
            [
                "taskwire_tasks_finished_total{kind=\"echo\",status=\"succeeded\"} 3",
                "taskwire_tasks_finished_total{kind=\"echo\",status=\"timed_out\"} 1",
                "taskwire_tasks_finished_total{kind=\"fail\",status=\"failed\"} 1",
            ]
        );
        let count = |name: &str| series(&text, &format!("{name}_count"));
        assert_eq!(
            count(RUN),
            ["taskwire_task_run_seconds_count{kind=\"echo\"} 2"]
        );
        assert_eq!(
            count(WAIT),
            ["taskwire_task_wait_seconds_count{kind=\"fail\"} 1"]
        );
        assert!(text.contains("taskwire_task_run_seconds_bucket{kind=\"echo\",le=\"0.0025\"} 1"));
        assert!(text.contains("taskwire_task_run_seconds_bucket{kind=\"echo\",le=\"0.05\"} 2"));
    }
}
