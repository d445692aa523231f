//! What workers report (progress, done, failed, stopped)
//! and their loss.

use super::*;

impl Scheduler {
    pub(super) fn worker_index(&self, id: &WorkerId, incarnation: u64) -> Option<usize> {
        self.workers
            .iter()
            .position(|w| &w.id == id && w.incarnation == incarnation)
    }

    pub(super) async fn on_report(&mut self, id: &WorkerId, incarnation: u64, report: Report) {
        let Some(w) = self.worker_index(id, incarnation) else {
            return; // a report from a replaced worker
        };
        let (task_id, outcome) = match report {
            Report::Progress {
                id: task_id,
                done,
                total,
                message,
            } => {
                if let Some(entry) = running_on(&mut self.table, task_id, id) {
                    entry.task.progress = Some(Box::new(Progress {
                        done,
                        total,
                        message: message.clone(),
                    }));
                    let ev = ProgressEvent {
                        task_id,
                        done,
                        total,
                        message,
                    };
                    self.emit(Deferred::Progress(ev)).await;
                }
                return;
            }
            Report::Done { id, output } => (id, Ok(output)),
            Report::Failed { id, message } => {
                (id, Err(ErrorBody::new(ErrorCode::TaskFailed, message)))
            }
            Report::Stopped { id } => (id, Err(ErrorBody::new(ErrorCode::Cancelled, ""))),
        };
        self.workers[w].release(task_id);
        if running_on(&mut self.table, task_id, id).is_none() {
            return; // already final (cancelled or timed out): only the slot was held
        }
        match outcome {
            Ok(output) => {
                self.finish(task_id, TaskStatus::Succeeded, Some(output), None)
                    .await
            }
            Err(e) if e.code == ErrorCode::TaskFailed => {
                self.finish(task_id, TaskStatus::Failed, None, Some(e))
                    .await;
            }
            Err(_) => {
                // Stopped without being asked to: treat as a failure of the handler.
                let e = ErrorBody::new(ErrorCode::TaskFailed, "the handler stopped early");
                self.finish(task_id, TaskStatus::Failed, None, Some(e))
                    .await;
            }
        }
    }

    pub(super) async fn worker_down(&mut self, id: &WorkerId, incarnation: u64) {
        let Some(w) = self.worker_index(id, incarnation) else {
            return;
        };
        let worker = self.workers.remove(w);
        tracing::warn!(worker = ?id.0, running = worker.running_count(), "worker down");
        for task_id in worker.running_tasks() {
            let Some(entry) = running_on(&mut self.table, task_id, id) else {
                continue; // already final, only its slot was held
            };
            if entry.task.attempt >= entry.task.max_attempts {
                let e = ErrorBody::new(
                    ErrorCode::WorkerLost,
                    format!("worker {id} was lost on attempt {}", entry.task.attempt),
                );
                self.finish(task_id, TaskStatus::Failed, None, Some(e))
                    .await;
                continue;
            }
            let e = ErrorBody::new(
                ErrorCode::WorkerLost,
                format!("worker {id} was lost on attempt {}", entry.task.attempt),
            );
            self.metrics.retried(&entry.task.kind, Retry::WorkerLost);
            self.attempt_ended(task_id, app::AttemptOutcome::WorkerLost, e);
            self.requeue(task_id, true).await;
        }
    }

    /// Puts a running task back in line, in its old place, and announces
    /// it `queued`. Its attempt counts (a lost worker) or not (the end of
    /// a drain: it is as if it never started).
    pub(super) async fn requeue(&mut self, id: TaskId, attempt_counts: bool) {
        if self.cluster.is_some() {
            return self.give_back(id, attempt_counts).await;
        }
        let Some(Left { timer, .. }) = self.table.requeue(id, attempt_counts) else {
            return;
        };
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        if let Some(entry) = self.table.get(&id) {
            let ev = status_of(&entry.task);
            self.touch(id);
            self.emit(Deferred::Status(ev)).await;
        }
    }
}

/// The entry of `task_id` if it is running on worker `worker`.
pub(super) fn running_on<'a>(
    table: &'a mut TaskTable,
    task_id: TaskId,
    worker: &WorkerId,
) -> Option<&'a mut table::Entry> {
    table
        .get_mut(&task_id)
        .filter(|e| e.task.status == TaskStatus::Running && e.task.worker.as_ref() == Some(worker))
}
