//! The outbox: writing the tasks changed since the last commit to the
//! store, and the acks and pushes that wait for a commit. It decides "now
//! or after the commit", and what happens when a commit fails (degraded
//! mode).

use super::*;

/// A durable store for the scheduler, and what it held at start.
pub struct Durable {
    pub store: Store,
    pub recovered: Vec<StoredTask>,
    /// The kinds it holds paused.
    pub paused: Vec<String>,
    /// The class of a kind (recovered tasks go back to their class's queue).
    pub classify: Box<dyn Fn(&str) -> Class + Send>,
    /// Where the scheduler reports that the store cannot write.
    pub health: Health,
}

/// How long a store that failed to write rests before the next attempt.
pub(super) const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// Longest a commit waits for tasks that have just started: one that ends
/// by then is stored once, queued and final in one transaction, and its
/// ack and `result` go out after one disk sync instead of two.
pub(super) const COMMIT_HOLD: Duration = Duration::from_millis(1);

/// A hold is only worth it with this few tasks to write (light load); under
/// load, commits are pipelined and carry many tasks each anyway.
const HOLD_AT_MOST: usize = 64;

/// Under load (the last commit wrote at least this many tasks, so more
/// changes are on their way), a commit of fewer than [`PACE_GROUP`] tasks
/// also waits up to [`COMMIT_HOLD`] for more. Each commit costs about
/// 120 µs of CPU of its own, nearly all the disk sync (`cargo bench
/// --bench store`: 2.8 µs per task at 200 tasks per commit, 6.9 at 28),
/// so fewer and larger commits leave more CPU for the work; an ack or
/// `result` then waits at most that much longer, next to the queueing
/// such a load already costs. One task at a time is never paced.
pub(super) const PACE_FROM: usize = 16;
pub(super) const PACE_GROUP: usize = 128;

/// A commit under way and what waits for it.
pub(super) type PendingCommit = BoxFuture<'static, CommitDone>;

/// A finished commit: its outcome, what waited for it, and what it wrote
/// (written again by a later commit if this one failed).
pub(super) struct CommitDone {
    /// What the cluster did not write as asked (nothing for the embedded
    /// store), or why nothing was written.
    result: Result<Committed, String>,
    deferred: Vec<Deferred>,
    written: Vec<TaskId>,
    deleted: Vec<Key>,
    /// Attempts that ended while their task went on (written again by a
    /// later commit if this one failed).
    attempts: Vec<lookups::RecordedAttempt>,
    /// Cluster writes not about a held task (give-backs).
    fenced: Vec<Fenced>,
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
        deduplicated: Vec<bool>,
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
    /// `queued` again: a task this node gave back to the cluster (it no
    /// longer holds it, so it goes out without looking it up).
    GivenBack(StatusEvent),
    /// `scheduled` for a retry at `run_at`: a task this node gave back to
    /// the cluster; every node is told when it is due.
    Rescheduled {
        ev: StatusEvent,
        run_at: Timestamp,
    },
    /// Nothing: makes an otherwise empty commit, to test the store.
    Probe,
}

/// The store's side of the scheduler: the store handle, the tasks to
/// write or delete at the next commit, the commits under way and what
/// waits for each, and degraded mode while the store cannot write.
#[derive(Default)]
pub(super) struct Outbox {
    /// The durable store, if any; `None` keeps everything in memory.
    pub(super) store: Option<Store>,
    /// In cluster mode, the database (fenced writes) instead.
    pub(super) cluster: Option<Arc<dyn ClusterPort>>,
    /// Cluster writes to make at the next commit that are not a held
    /// task's snapshot (tasks given back).
    pub(super) fenced: Vec<Fenced>,
    /// Tasks changed since the last commit.
    pub(super) dirty: Vec<TaskId>,
    /// Tasks to remove from the store at the next commit (retention).
    pub(super) deletes: Vec<Key>,
    /// Attempts to store at the next commit (see `lookups`).
    pub(super) attempts: Vec<lookups::RecordedAttempt>,
    pub(super) deferred: Vec<Deferred>,
    /// Commits under way, oldest first, with what waits for each.
    pub(super) commits: FuturesOrdered<PendingCommit>,
    /// Number of the next commit to start.
    pub(super) next_generation: u64,
    /// Set while the store cannot write (why): new tasks and cancels are
    /// refused, and every ack or push that waits for a commit is held in
    /// `held` until a commit started after the failure succeeds (one from
    /// `recovers_from` on), which rewrites everything the failed ones held.
    pub(super) degraded: Option<String>,
    pub(super) held: Vec<Deferred>,
    pub(super) recovers_from: u64,
    /// A retry of a failed commit is due (its timer is set).
    pub(super) retry_pending: bool,
    /// Until when the next commit waits for running work (see
    /// [`COMMIT_HOLD`]), while it waits.
    pub(super) hold_until: Option<tokio::time::Instant>,
    /// Tasks the last commit wrote (see [`PACE_FROM`]).
    pub(super) last_size: usize,
    /// Commits made on the scheduler's thread (see [`COMMIT_HERE_AT_MOST`]).
    pub(super) here: HereCommits,
    /// Where `degraded` is reported for `GET /healthz`.
    pub(super) health: Health,
}

impl Outbox {
    /// Whether there is a store (else everything is in memory and goes out
    /// at once).
    pub(super) fn durable(&self) -> bool {
        self.store.is_some() || self.cluster.is_some()
    }

    /// The refusal of a change while the store cannot write.
    pub(super) fn store_down(&self, reason: &str) -> ErrorBody {
        let code = match self.cluster {
            Some(_) => ErrorCode::Unavailable,
            None => ErrorCode::Internal,
        };
        ErrorBody::new(code, format!("{reason}; try again later"))
    }
}

impl Scheduler {
    /// Marks a task for the next commit (durable mode).
    pub(super) fn touch(&mut self, id: TaskId) {
        if !self.outbox.durable() {
            return;
        }
        if let Some(e) = self.table.get_mut(&id)
            && !e.dirty
        {
            e.dirty = true;
            self.outbox.dirty.push(id);
        }
    }

    /// Sends a push or an answer: at once without a store; with one, after
    /// the commits already under way, so nothing about a task overtakes
    /// its ack and no `result` goes out before its state is stored. The one
    /// place that decides "now or after the commit". In a cluster,
    /// `running` and `progress` go at once: the claim stored the running
    /// state, and progress is stored only with the final one.
    pub(super) async fn emit(&mut self, d: Deferred) {
        let now = self.outbox.cluster.is_some()
            && matches!(d, Deferred::Status(_) | Deferred::Progress(_));
        if self.outbox.durable() && !now {
            self.outbox.deferred.push(d);
        } else {
            self.release_one(d).await;
        }
    }

    /// Starts writing every task changed since the last commit, in one
    /// transaction, taking along what waits for it. The scheduler goes on
    /// meanwhile; [`Scheduler::committed`] runs when it is durable.
    pub(super) fn start_commit(&mut self) {
        // One commit at a time: the next one carries everything changed
        // while this one was under way, each task once, as it is by then.
        // (The disk writes one transaction at a time anyway; a task whose
        // whole life fits in a commit is written once, final.)
        if !self.outbox.commits.is_empty() {
            return;
        }
        // While the store fails, only the retry timer starts commits.
        if self.outbox.degraded.is_none() && !self.hold_commit() {
            self.outbox.hold_until = None;
            self.write_changes();
        }
    }

    /// Whether the next commit should wait a moment: on a single server's
    /// store, with no commit under way, and [`COMMIT_HOLD`] not over since
    /// the wait began, when either
    /// - a few changes are to be written, every one of them a task that is
    ///   running: a task that ends meanwhile is then written once, final,
    ///   and its ack and `result` share one disk sync; or
    /// - the load is heavy and the commit small (see [`PACE_FROM`]).
    pub(super) fn hold_commit(&mut self) -> bool {
        let outbox = &self.outbox;
        let light = || {
            outbox.dirty.len() <= HOLD_AT_MOST
                && outbox.deletes.is_empty()
                && outbox.dirty.iter().all(|id| {
                    self.table
                        .get(id)
                        .is_some_and(|e| e.task.status == TaskStatus::Running)
                })
        };
        let paced = || outbox.last_size >= PACE_FROM && outbox.dirty.len() < PACE_GROUP;
        let holdable = outbox.store.is_some()
            && outbox.commits.is_empty()
            && !outbox.dirty.is_empty()
            && (light() || paced());
        if !holdable {
            return false;
        }
        let now = tokio::time::Instant::now();
        match self.outbox.hold_until {
            Some(until) => now < until,
            None => {
                self.outbox.hold_until = Some(now + COMMIT_HOLD);
                self.timers.insert(Timer::CommitHold, COMMIT_HOLD);
                true
            }
        }
    }

    pub(super) fn write_changes(&mut self) {
        if self.outbox.cluster.is_some() {
            return self.write_fenced();
        }
        let Some(store) = &self.outbox.store else {
            return;
        };
        if self.outbox.dirty.is_empty()
            && self.outbox.deletes.is_empty()
            && self.outbox.deferred.is_empty()
            && self.outbox.attempts.is_empty()
        {
            return;
        }
        let mut writes = Vec::with_capacity(self.outbox.dirty.len() + self.outbox.deletes.len());
        let mut written = Vec::with_capacity(self.outbox.dirty.len());
        let mut inserts = 0;
        for id in self.outbox.dirty.drain(..) {
            if let Some(e) = self.table.get_mut(&id) {
                e.dirty = false;
                inserts += u64::from(!e.stored);
                writes.push(Write::task(&e.task, e.seq, e.stored));
                e.stored = true;
                written.push(id);
            }
        }
        self.metrics
            .committing(inserts, written.len() as u64 - inserts);
        let light = self.outbox.last_size <= COMMIT_HERE_AT_MOST;
        self.outbox.last_size = written.len();
        let attempts = std::mem::take(&mut self.outbox.attempts);
        for (id, attempt) in &attempts {
            match Write::put_attempt(*id, attempt) {
                Ok(w) => writes.push(w),
                Err(err) => {
                    tracing::error!(task = %id, error = %err, "cannot serialize an attempt")
                }
            }
        }
        let deleted = std::mem::take(&mut self.outbox.deletes);
        writes.extend(deleted.iter().copied().map(Write::Delete));
        let deferred = std::mem::take(&mut self.outbox.deferred);
        let generation = self.outbox.next_generation;
        self.outbox.next_generation += 1;
        let here = (light && writes.len() <= COMMIT_HERE_AT_MOST)
            .then(|| {
                let slow = self.config.commit_here_slow;
                self.outbox.here.try_commit(store, &writes, slow)
            })
            .flatten();
        if here.is_some() {
            self.metrics.committed_here();
        }
        let commit = match here {
            Some(result) => futures_util::future::ready(result).left_future(),
            None => store.commit(writes).right_future(),
        };
        self.outbox.commits.push_back(
            async move {
                CommitDone {
                    result: commit
                        .await
                        .map(|()| Committed::default())
                        .map_err(|e| e.to_string()),
                    deferred,
                    written,
                    deleted,
                    attempts,
                    generation,
                    fenced: Vec::new(),
                }
            }
            .boxed(),
        );
    }

    /// [`Scheduler::write_changes`] in a cluster: fenced writes of the
    /// held tasks changed, and of those given back.
    fn write_fenced(&mut self) {
        let Some(cluster) = &self.outbox.cluster else {
            return;
        };
        if self.outbox.dirty.is_empty()
            && self.outbox.fenced.is_empty()
            && self.outbox.deferred.is_empty()
        {
            return;
        }
        let mut writes = std::mem::take(&mut self.outbox.fenced);
        let fenced = writes.clone();
        let mut written = Vec::with_capacity(self.outbox.dirty.len());
        for id in self.outbox.dirty.drain(..) {
            if let Some(e) = self.table.get_mut(&id) {
                e.dirty = false;
                writes.push(Fenced::Put(e.task.clone()));
                written.push(id);
            }
        }
        // Finished tasks leave the node once published: nothing to prune.
        self.outbox.deletes.clear();
        let deferred = std::mem::take(&mut self.outbox.deferred);
        let generation = self.outbox.next_generation;
        self.outbox.next_generation += 1;
        let commit = (!writes.is_empty()).then(|| cluster.commit(writes));
        self.outbox.commits.push_back(
            async move {
                let result = match commit {
                    Some(commit) => commit
                        .await
                        .map_err(|e| format!("the cluster's database cannot be written: {e}")),
                    None => Ok(Committed::default()),
                };
                CommitDone {
                    result,
                    deferred,
                    written,
                    deleted: Vec::new(),
                    attempts: Vec::new(),
                    generation,
                    fenced,
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
            attempts,
            generation,
            fenced,
        } = done;
        let Committed {
            fenced: taken,
            cancelled,
            checks,
        } = match result {
            Ok(committed) => committed,
            Err(e) => {
                self.outbox.fenced.extend(fenced);
                self.outbox.attempts.extend(attempts);
                return self.commit_failed(&e, deferred, written, deleted).await;
            }
        };
        // Tasks the cluster took back: nothing more about them goes out.
        self.forget_taken(&taken);
        // Tasks that ended have dependents: this node looks at them now.
        if checks {
            self.resolve();
        }
        let mut deferred = deferred;
        deferred.retain(
            |d| !matches!(d, Deferred::Rescheduled { ev, .. } if taken.contains(&ev.task_id)),
        );
        // Tasks given back that a cancel ended instead: their `result` is
        // this node's to push.
        for task in cancelled {
            deferred.retain(|d| {
                !matches!(d, Deferred::GivenBack(ev) | Deferred::Rescheduled { ev, .. }
                    if ev.task_id == task.id)
            });
            self.publisher.result(&task).await;
            // Whoever waits to answer its cancel may now.
            self.signal_finished(task.id);
        }
        if self.outbox.degraded.is_some() {
            if generation < self.outbox.recovers_from {
                // Stored, but it holds nothing of the failed commits: its
                // pushes stay behind theirs. New tasks in it are safe to ack.
                for d in deferred {
                    match d {
                        Deferred::Submitted {
                            reply,
                            tasks,
                            deduplicated,
                        } => reply.owned(&tasks, &deduplicated),
                        other => self.outbox.held.push(other),
                    }
                }
                return;
            }
            let reason = self.outbox.degraded.take().unwrap_or_default();
            self.outbox.health.restore();
            tracing::warn!(
                was = %reason,
                held = self.outbox.held.len(),
                "the task store writes again; sending what waited for it"
            );
            let held = std::mem::take(&mut self.outbox.held);
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
        error: &str,
        deferred: Vec<Deferred>,
        written: Vec<TaskId>,
        deleted: Vec<Key>,
    ) {
        let reason = match self.outbox.cluster {
            Some(_) => error.to_owned(),
            None => format!("the task store cannot write: {error}"),
        };
        self.degrade(reason.clone());
        for id in written {
            // Its row may have gone with this commit: written whole again.
            if let Some(e) = self.table.get_mut(&id) {
                e.stored = false;
            }
            self.touch(id);
        }
        self.outbox.deletes.extend(deleted);
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
                other => self.outbox.held.push(other),
            }
        }
    }

    /// Enters (or stays in) degraded mode for `reason` and arms a retry.
    pub(super) fn degrade(&mut self, reason: String) {
        if self.outbox.degraded.is_none() {
            tracing::error!(%reason, "new tasks are refused and results held until the store writes again");
        }
        self.outbox.health.degrade(reason.clone());
        self.outbox.degraded = Some(reason);
        // Only a commit started from now on rewrites what failed so far.
        self.outbox.recovers_from = self.outbox.next_generation;
        if !self.outbox.retry_pending {
            self.outbox.retry_pending = true;
            self.timers.insert(Timer::RetryCommit, COMMIT_RETRY);
        }
    }

    /// Sends the acks and pushes that waited for a commit, in order.
    pub(super) async fn release(&mut self, deferred: Vec<Deferred>) {
        for d in deferred {
            self.release_one(d).await;
        }
    }

    async fn release_one(&mut self, d: Deferred) {
        match d {
            Deferred::Submitted {
                reply,
                tasks,
                deduplicated,
            } => reply.owned(&tasks, &deduplicated),
            Deferred::Task { reply, id } => match self.table.get(&id) {
                Some(e) => reply.task(&e.task),
                None => reply.error(not_found(id)),
            },
            Deferred::Result(id) => self.publish(id).await,
            // Nothing about a withdrawn task goes out.
            Deferred::Status(ev) if let Some(e) = self.table.get(&ev.task_id) => {
                if let Some(follower) = &e.follower {
                    follower.status(&ev);
                }
                self.publisher.status(&ev).await;
            }
            Deferred::Progress(ev) if let Some(e) = self.table.get(&ev.task_id) => {
                if let Some(follower) = &e.follower {
                    follower.progress(&ev);
                }
                self.publisher.progress(&ev).await;
            }
            Deferred::GivenBack(ev) => self.publisher.status(&ev).await,
            Deferred::Rescheduled { ev, run_at } => {
                self.publisher.status(&ev).await;
                self.scheduled_for(run_at, true);
            }
            Deferred::Status(_) | Deferred::Progress(_) | Deferred::Probe => {}
        }
    }

    /// Removes a task whose submission could not be stored, wherever it is
    /// in its life (the work may have started while its commit ran): it
    /// stops, leaves the counters, and any row a later commit wrote of it
    /// is deleted.
    pub(super) fn withdraw(&mut self, id: TaskId) {
        let Some(mut entry) = self.table.withdraw(id) else {
            return;
        };
        if entry.task.status == TaskStatus::Running
            && let Some(worker) = entry.task.worker.clone()
        {
            self.stop_work(id, worker);
        }
        if let Some(key) = entry.timer.take() {
            self.timers.remove(&key);
        }
        self.outbox.deletes.push(entry.key());
    }
}
