//! Handing queued tasks to free worker slots.

use super::*;

impl Scheduler {
    /// Hands queued tasks to free slots, highest priority first.
    pub(super) async fn dispatch(&mut self) {
        self.round_worker = None;
        if self.stopping {
            return;
        }
        for class in [Class::Cpu, Class::Io] {
            while let Some(id) = self.table.next_runnable(class, |kind| {
                can_run(&self.workers, class, kind) && !self.by_kind.paused.contains(kind)
            }) {
                let Some(w) = self.table.get(&id).and_then(|e| {
                    pick_worker(&self.workers, &mut self.round_worker, class, &e.task.kind)
                }) else {
                    // `can_run` found a free worker, so this does not
                    // happen; if it did, the task keeps its place.
                    self.table.unpop(id);
                    break;
                };
                let waited = self.waited(&id);
                let worker = &mut self.workers[w];
                let Some(entry) = self.table.start(id, worker.id.clone()) else {
                    continue;
                };
                if let Some(wait) = waited {
                    self.by_kind.waited(&self.metrics, &entry.task.kind, wait);
                }
                let timeout = entry
                    .task
                    .timeout_ms
                    .map_or(self.config.default_timeout, Duration::from_millis);
                entry.timer = Some(self.timers.insert(Timer::Timeout(id), timeout));
                worker.start(&entry.task, entry.class);
                let ev = status_of(&entry.task);
                // In a cluster the claim stored the running state.
                if self.cluster.is_none() {
                    self.touch(id);
                }
                self.emit(Deferred::Status(ev)).await;
            }
        }
    }

    /// How long queued task `id` waited: since it was queued here, or in
    /// a cluster since it could first run (its submission, or its
    /// `run_at`), as its node only holds it from its claim on.
    fn waited(&self, id: &TaskId) -> Option<Duration> {
        let entry = self.table.get(id)?;
        if self.cluster.is_none() {
            return Some(entry.since.elapsed());
        }
        let task = &entry.task;
        let from = task
            .run_at
            .map_or(task.created_at, |r| r.max(task.created_at));
        let ms = Timestamp::now().millis().saturating_sub(from.millis());
        Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// Writes what the workers were handed in this round.
    pub(super) fn flush(&mut self) {
        for w in &mut self.workers {
            w.flush();
        }
    }
}

/// Whether some worker has a free slot for a task of `class` and `kind`.
pub(super) fn can_run(workers: &[Worker], class: Class, kind: &str) -> bool {
    workers.iter().any(|w| w.free(class) > 0 && w.accepts(kind))
}

/// Where a task of `class` and `kind` goes: I/O-bound tasks stay on the
/// worker chosen earlier in this round while it has room, so a round is
/// one write to one worker; otherwise the worker with the most free
/// slots, which spreads CPU-bound tasks over the processes.
pub(super) fn pick_worker(
    workers: &[Worker],
    round_worker: &mut Option<usize>,
    class: Class,
    kind: &str,
) -> Option<usize> {
    if class == Class::Io
        && let Some(w) = *round_worker
        && workers
            .get(w)
            .is_some_and(|w| w.free(class) > 0 && w.accepts(kind))
    {
        return Some(w);
    }
    let best = workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.free(class) > 0 && w.accepts(kind))
        .max_by_key(|(_, w)| w.free(class))
        .map(|(i, _)| i);
    if class == Class::Io {
        *round_worker = best;
    }
    best
}
