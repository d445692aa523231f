//! Counters of final tasks and the `stats` push.

use super::*;

/// Stats ticks kept for the throughput figure (it spans the oldest to the
/// newest of them: about 5 s at the default interval).
pub(super) const HISTORY_TICKS: usize = 10;

/// Cumulative counts of final tasks (not limited by retention).
#[derive(Debug, Default)]
pub(super) struct Counters {
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    timed_out: u64,
}

impl Counters {
    pub(super) fn count(&mut self, status: TaskStatus) {
        match status {
            TaskStatus::Succeeded => self.succeeded += 1,
            TaskStatus::Failed => self.failed += 1,
            TaskStatus::Cancelled => self.cancelled += 1,
            TaskStatus::TimedOut => self.timed_out += 1,
            TaskStatus::Scheduled
            | TaskStatus::Waiting
            | TaskStatus::Queued
            | TaskStatus::Running => {}
        }
    }

    /// Takes back a [`Counters::count`] (a task withdrawn after it ended).
    pub(super) fn uncount(&mut self, status: TaskStatus) {
        let n = match status {
            TaskStatus::Succeeded => &mut self.succeeded,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
            TaskStatus::TimedOut => &mut self.timed_out,
            TaskStatus::Scheduled
            | TaskStatus::Waiting
            | TaskStatus::Queued
            | TaskStatus::Running => return,
        };
        *n = n.saturating_sub(1);
    }

    pub(super) fn total(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled + self.timed_out
    }
}

/// Tasks finished per second over `history` (finished totals by time),
/// up to `total` now.
pub(super) fn throughput(history: &VecDeque<(tokio::time::Instant, u64)>, total: u64) -> f64 {
    match (history.front(), history.back()) {
        (Some((t0, n0)), Some((t1, _))) if t1 > t0 => {
            total.saturating_sub(*n0) as f64 / t1.duration_since(*t0).as_secs_f64()
        }
        _ => 0.0,
    }
}

impl Scheduler {
    pub(super) fn stats(&self) -> Stats {
        let counters = self.table.counters();
        let total = counters.total();
        let workers: Vec<WorkerInfo> = self.workers.iter().map(|w| self.worker_info(w)).collect();
        let node = app::NodeSummary {
            id: self.node.id.0.clone(),
            addr: self.node.addr.clone(),
            started_at: self.node.started_at,
            workers: workers.len() as u32,
            running: self.table.running() as u64,
        };
        Stats {
            scheduled: self.table.scheduled() as u64,
            waiting: self.table.waiting() as u64,
            queued: self.table.queued() as u64,
            running: self.table.running() as u64,
            succeeded: counters.succeeded,
            failed: counters.failed,
            cancelled: counters.cancelled,
            timed_out: counters.timed_out,
            workers,
            nodes: vec![node],
            throughput_per_s: throughput(&self.history, total),
            kinds: self.kind_lines(),
            at: Timestamp::now(),
        }
    }

    /// A worker's line in `stats`, naming this node.
    pub(super) fn worker_info(&self, worker: &Worker) -> WorkerInfo {
        WorkerInfo {
            node: self.node.id.0.clone(),
            ..worker.info()
        }
    }

    pub(super) async fn push_stats(&mut self) {
        if self.cluster.is_some() {
            // Cluster-wide counts come from the database.
            return self.cluster_stats(None);
        }
        let now = tokio::time::Instant::now();
        self.history.push_back((now, self.table.counters().total()));
        while self.history.len() > HISTORY_TICKS {
            self.history.pop_front();
        }
        let stats = self.stats();
        self.publisher.stats(&stats).await;
        // A database deleted or replaced under us is noticed even while
        // nothing is written (the writer checks it at every commit too).
        if self.outbox.degraded.is_none()
            && let Some(store) = &self.outbox.store
            && let Err(reason) = store.verify()
        {
            self.degrade(format!("the task store cannot write: {reason}"));
        }
        // Retention by age runs in the background, on this tick.
        self.prune();
    }
}
