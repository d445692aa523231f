//! Ending work early: cancel, timeouts, killing a worker that does not
//! stop, and the graceful drain at shutdown.

use super::*;

impl Scheduler {
    pub(super) async fn cancel(&mut self, id: TaskId, reply: TaskReply) {
        let Some(entry) = self.table.get(&id) else {
            return reply.error(not_found(id));
        };
        if let Some(reason) = &self.outbox.degraded
            && !entry.task.status.is_final()
        {
            // A cancel that cannot be stored would come undone at restart.
            return reply.error(self.outbox.store_down(reason));
        }
        if entry.task.status.is_final() {
            return reply.error(ErrorBody::new(
                ErrorCode::AlreadyFinished,
                format!("task {id} is already {}", entry.task.status),
            ));
        }
        let error = ErrorBody::new(ErrorCode::Cancelled, "cancelled by request");
        self.stop(id, TaskStatus::Cancelled, error, Some(reply))
            .await;
    }

    /// Ends an unfinished task as `cancelled` or `timed_out`; a running one
    /// is told to stop, and its worker is killed if it does not in time.
    pub(super) async fn stop(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        error: ErrorBody,
        reply: Option<TaskReply>,
    ) {
        let Some(entry) = self.table.get(&id) else {
            return;
        };
        if entry.task.status == TaskStatus::Running
            && let Some(worker) = entry.task.worker.clone()
        {
            self.stop_work(id, worker);
        }
        // A timed-out attempt of a task that asked for retries is retried.
        if status == TaskStatus::TimedOut && self.retry_later(id, &error).await {
            return;
        }
        // The ack shows the final state and goes out before the `result` push.
        self.settle(id, status, None, Some(error));
        if let Some(reply) = reply {
            self.emit(Deferred::Task { reply, id }).await;
        }
        self.emit(Deferred::Result(id)).await;
    }

    /// Tells `worker` to stop task `id`, and kills the worker if it does
    /// not within the grace period.
    pub(super) fn stop_work(&mut self, id: TaskId, worker: WorkerId) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker)
            && w.stop(id)
        {
            self.timers.insert(
                Timer::Kill {
                    worker,
                    incarnation: w.incarnation,
                    task: id,
                },
                self.config.stop_grace,
            );
        }
    }

    pub(super) async fn on_timer(&mut self, timer: Timer) {
        match timer {
            // The round that follows starts the held commit.
            Timer::CommitHold => {}
            Timer::RetryCommit => {
                self.outbox.retry_pending = false;
                if self.outbox.degraded.is_some() {
                    self.write_changes();
                    if self.outbox.commits.is_empty() {
                        // Nothing to write: a probe commit tells whether
                        // the store works again.
                        self.outbox.deferred.push(Deferred::Probe);
                        self.write_changes();
                    }
                }
            }
            Timer::Timeout(id) => {
                if let Some(entry) = self.table.get_mut(&id) {
                    entry.timer = None;
                    let ms = entry
                        .task
                        .timeout_ms
                        .unwrap_or(self.config.default_timeout.as_millis() as u64);
                    let error =
                        ErrorBody::new(ErrorCode::TimedOut, format!("attempt ran over {ms} ms"));
                    self.stop(id, TaskStatus::TimedOut, error, None).await;
                }
            }
            Timer::Due(id) => self.on_due(id).await,
            Timer::DueLater(id) => self.on_due_later(id),
            Timer::Kill {
                worker,
                incarnation,
                task,
            } => {
                if let Some(w) = self.worker_index(&worker, incarnation)
                    && self.workers[w].holds(task)
                {
                    tracing::warn!(worker = ?worker.0, %task, "task did not stop in time; killing its worker");
                    self.workers[w].kill();
                }
            }
            Timer::DrainDeadline => self.requeue_running().await,
            Timer::CancelAnswer(id) => self.answer_cancels(id, true),
            Timer::Promote => self.due_timer_fired(),
        }
    }

    /// End of the grace period: what still runs goes back to the queue, as
    /// if never started (the attempt is not counted), and is stored so.
    pub(super) async fn requeue_running(&mut self) {
        let running = self.table.running_ids();
        tracing::info!(
            tasks = running.len(),
            "grace period over: requeueing running tasks"
        );
        for id in running {
            self.requeue(id, false).await;
        }
    }

    /// Answers a drain once nothing runs any more (and it was stored).
    pub(super) async fn finish_drain(&mut self) {
        if self.table.running() > 0 || self.draining.is_none() {
            return;
        }
        // Everything changed so far must be stored before we answer.
        loop {
            self.start_commit();
            let Some(done) = self.outbox.commits.next().await else {
                break;
            };
            self.committed(done).await;
        }
        if let Some(reason) = &self.outbox.degraded {
            tracing::error!(%reason, held = self.outbox.held.len(), "stopping with changes the store could not write; the last stored state will be recovered");
        }
        if let Some(side) = &self.cluster
            && let Err(e) = side.link.leave().await
        {
            tracing::warn!(error = %e, "could not leave the cluster; the others take this node's tasks back when its lease runs out");
        }
        if let Some(done) = self.draining.take() {
            let _ = done.send(());
        }
    }
}
