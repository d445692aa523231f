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
                if let Some(entry) = running_on(&mut self.tasks, task_id, id) {
                    entry.task.progress = Some(Progress {
                        done,
                        total,
                        message: message.clone(),
                    });
                    let ev = ProgressEvent {
                        task_id,
                        done,
                        total,
                        message,
                    };
                    if self.store.is_some() {
                        self.deferred.push(Deferred::Progress(ev));
                    } else {
                        self.publisher.progress(&ev).await;
                    }
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
        if running_on(&mut self.tasks, task_id, id).is_none() {
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
            let Some(entry) = running_on(&mut self.tasks, task_id, id) else {
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
            self.requeue(task_id).await;
        }
    }

    /// Puts a running task back in the queue, in its old place (its `seq`),
    /// and announces it `queued`. The caller decides about its attempt.
    pub(super) async fn requeue(&mut self, id: TaskId) {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return;
        };
        if let Some(key) = entry.timer.take() {
            self.timers.remove(&key);
        }
        let task = &mut entry.task;
        task.status = TaskStatus::Queued;
        task.worker = None;
        task.started_at = None;
        task.progress = None;
        let place = Place {
            priority: task.priority,
            seq: entry.seq,
            id,
        };
        self.queues[queue_index(entry.class)].push(&entry.task.kind, place);
        self.running -= 1;
        self.queued += 1;
        let ev = status_of(&entry.task);
        self.push_status(ev).await;
        self.touch(id);
    }
}

/// The entry of `task_id` if it is running on worker `worker`.
pub(super) fn running_on<'a>(
    tasks: &'a mut HashMap<TaskId, Box<Entry>>,
    task_id: TaskId,
    worker: &WorkerId,
) -> Option<&'a mut Entry> {
    tasks
        .get_mut(&task_id)
        .filter(|e| e.task.status == TaskStatus::Running && e.task.worker.as_ref() == Some(worker))
        .map(|e| &mut **e)
}
