//! The outbox: writing the tasks changed since the last commit to the
//! store, and the acks and pushes that wait for a commit. It decides "now
//! or after the commit", and what happens when a commit fails (degraded
//! mode).

use super::*;

/// A durable store for the scheduler, and what it held at start.
pub struct Durable {
    pub store: Store,
    pub recovered: Vec<StoredTask>,
    /// The class of a kind (recovered tasks go back to their class's queue).
    pub classify: Box<dyn Fn(&str) -> Class + Send>,
    /// Where the scheduler reports that the store cannot write.
    pub health: Health,
}

/// How long a store that failed to write rests before the next attempt.
pub(super) const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// A commit under way and what waits for it.
pub(super) type PendingCommit = BoxFuture<'static, CommitDone>;

/// A finished commit: its outcome, what waited for it, and what it wrote
/// (written again by a later commit if this one failed).
pub(super) struct CommitDone {
    result: Result<(), StoreError>,
    deferred: Vec<Deferred>,
    written: Vec<TaskId>,
    deleted: Vec<TaskId>,
    /// Commits are numbered in the order they started.
    generation: u64,
}

/// What waits for the next commit: acks of new or cancelled tasks, and
/// `result` pushes, which must not go out before the state they announce
/// is stored.
pub(super) enum Deferred {
    /// The tasks as submitted (`queued`): the work may have started, or
    /// even ended, by the time their commit is durable.
    Submitted {
        reply: TasksReply,
        tasks: Vec<Task>,
    },
    Task {
        reply: TaskReply,
        id: TaskId,
    },
    Result(TaskId),
    /// A `status` or `progress` push, kept in order behind the acks and
    /// results of earlier commits.
    Status(StatusEvent),
    Progress(ProgressEvent),
    /// Nothing: makes an otherwise empty commit, to test the store.
    Probe,
}

/// The refusal of a change while the store cannot write.
pub(super) fn store_down(reason: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::Internal, format!("{reason}; try again later"))
}

impl Scheduler {
    /// Marks a task for the next commit (durable mode).
    pub(super) fn touch(&mut self, id: TaskId) {
        if self.store.is_none() {
            return;
        }
        if let Some(e) = self.tasks.get_mut(&id)
            && !e.dirty
        {
            e.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Starts writing every task changed since the last commit, in one
    /// transaction, taking along what waits for it. The scheduler goes on
    /// meanwhile; [`Scheduler::committed`] runs when it is durable.
    pub(super) fn start_commit(&mut self) {
        // While the store fails, only the retry timer starts commits.
        if self.degraded.is_none() {
            self.write_changes();
        }
    }

    pub(super) fn write_changes(&mut self) {
        let Some(store) = &self.store else { return };
        if self.dirty.is_empty() && self.deletes.is_empty() && self.deferred.is_empty() {
            return;
        }
        let mut writes = Vec::with_capacity(self.dirty.len() + self.deletes.len());
        let mut written = Vec::with_capacity(self.dirty.len());
        for id in self.dirty.drain(..) {
            if let Some(e) = self.tasks.get_mut(&id) {
                e.dirty = false;
                match Write::put(&e.task, e.seq) {
                    Ok(w) => {
                        writes.push(w);
                        written.push(id);
                    }
                    Err(err) => tracing::error!(task = %id, error = %err, "cannot serialize task"),
                }
            }
        }
        let deleted = std::mem::take(&mut self.deletes);
        writes.extend(deleted.iter().copied().map(Write::Delete));
        let deferred = std::mem::take(&mut self.deferred);
        let generation = self.next_generation;
        self.next_generation += 1;
        let commit = store.commit(writes);
        self.commits.push_back(
            async move {
                CommitDone {
                    result: commit.await,
                    deferred,
                    written,
                    deleted,
                    generation,
                }
            }
            .boxed(),
        );
    }

    /// A commit finished. Durable: queue its new tasks, send its acks and
    /// results (after those held by earlier failures). Failed: see
    /// [`Scheduler::commit_failed`].
    pub(super) async fn committed(&mut self, done: CommitDone) {
        let CommitDone {
            result,
            deferred,
            written,
            deleted,
            generation,
        } = done;
        if let Err(e) = result {
            return self.commit_failed(&e, deferred, written, deleted).await;
        }
        if self.degraded.is_some() {
            if generation < self.recovers_from {
                // Stored, but it holds nothing of the failed commits: its
                // pushes stay behind theirs. New tasks in it are safe to ack.
                for d in deferred {
                    match d {
                        Deferred::Submitted { reply, tasks } => {
                            reply.tasks(&tasks.iter().collect::<Vec<_>>());
                        }
                        other => self.held.push(other),
                    }
                }
                return;
            }
            let reason = self.degraded.take().unwrap_or_default();
            self.health.restore();
            tracing::warn!(
                was = %reason,
                held = self.held.len(),
                "the task store writes again; sending what waited for it"
            );
            let held = std::mem::take(&mut self.held);
            self.release(held).await;
        }
        self.release(deferred).await;
    }

    /// A commit failed (disk full, database file gone): nothing of it is
    /// stored. Its new tasks are refused (`internal`) and withdrawn, as if
    /// never submitted; everything else it wrote is written again by the
    /// next attempt, and the acks and pushes that waited for it are held
    /// until one succeeds. Meanwhile the server reports itself degraded.
    pub(super) async fn commit_failed(
        &mut self,
        error: &StoreError,
        deferred: Vec<Deferred>,
        written: Vec<TaskId>,
        deleted: Vec<TaskId>,
    ) {
        let reason = format!("the task store cannot write: {error}");
        self.degrade(reason.clone());
        for id in written {
            self.touch(id);
        }
        self.deletes.extend(deleted);
        for d in deferred {
            match d {
                Deferred::Submitted { reply, tasks, .. } => {
                    for task in &tasks {
                        self.withdraw(task.id);
                    }
                    reply.error(ErrorBody::new(
                        ErrorCode::Internal,
                        format!("{reason}; the task was not created, try again later"),
                    ));
                }
                other => self.held.push(other),
            }
        }
    }

    /// Enters (or stays in) degraded mode for `reason` and arms a retry.
    pub(super) fn degrade(&mut self, reason: String) {
        if self.degraded.is_none() {
            tracing::error!(%reason, "new tasks are refused and results held until the store writes again");
        }
        self.health.degrade(reason.clone());
        self.degraded = Some(reason);
        // Only a commit started from now on rewrites what failed so far.
        self.recovers_from = self.next_generation;
        if !self.retry_pending {
            self.retry_pending = true;
            self.timers.insert(Timer::RetryCommit, COMMIT_RETRY);
        }
    }

    /// Sends the acks and pushes that waited for a commit, in order.
    pub(super) async fn release(&mut self, deferred: Vec<Deferred>) {
        for d in deferred {
            match d {
                Deferred::Submitted { reply, tasks } => {
                    reply.tasks(&tasks.iter().collect::<Vec<_>>());
                }
                Deferred::Task { reply, id } => match self.tasks.get(&id) {
                    Some(e) => reply.task(&e.task),
                    None => reply.error(not_found(id)),
                },
                Deferred::Result(id) => self.publish(id).await,
                // Nothing about a withdrawn task goes out.
                Deferred::Status(ev) if self.tasks.contains_key(&ev.task_id) => {
                    self.publisher.status(&ev).await;
                }
                Deferred::Progress(ev) if self.tasks.contains_key(&ev.task_id) => {
                    self.publisher.progress(&ev).await;
                }
                Deferred::Status(_) | Deferred::Progress(_) | Deferred::Probe => {}
            }
        }
    }

    /// Removes a task whose submission could not be stored, wherever it is
    /// in its life (the work may have started while its commit ran): it
    /// stops, leaves the counters, and any row a later commit wrote of it
    /// is deleted.
    pub(super) fn withdraw(&mut self, id: TaskId) {
        let Some(entry) = self.tasks.get(&id) else {
            return;
        };
        let status = entry.task.status;
        if status == TaskStatus::Running
            && let Some(worker) = entry.task.worker.clone()
        {
            self.stop_work(id, worker);
        }
        let Some(mut entry) = self.tasks.remove(&id) else {
            return;
        };
        match status {
            TaskStatus::Queued => self.queued -= 1, // its queue place is skipped
            TaskStatus::Running => self.running -= 1,
            done => self.counters.uncount(done),
        }
        if let Some(key) = entry.timer.take() {
            self.timers.remove(&key);
        }
        if let Some(sid) = entry.owner.take() {
            self.forget_owner(sid);
        }
        self.deletes.push(id);
    }

    /// Pushes `status`: at once without a store; with one, after the
    /// commits already under way, so no push about a task overtakes its ack.
    pub(super) async fn push_status(&mut self, ev: StatusEvent) {
        if self.store.is_some() {
            self.deferred.push(Deferred::Status(ev));
        } else {
            self.publisher.status(&ev).await;
        }
    }
}
