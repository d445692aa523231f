//! Before the queue (v1.1): tasks `scheduled` for a later time (a delay, or
//! a retry's backoff) and tasks `waiting` for the tasks they name in
//! `after`; and retries of failed attempts.
//!
//! A scheduled task's time is a timer on the scheduler's event loop (the
//! same `DelayQueue` as timeouts), so it becomes `queued` when its time
//! comes, not at the next poll. A waiting task is listed under each
//! unfinished task it waits for; when one of those ends, its dependents are
//! looked at again: queued once every task they name has succeeded, failed
//! with `dependency_failed` as soon as one did not.

use std::collections::HashMap;

use app::MAX_BACKOFF_MS;

use super::*;

/// The dependency bookkeeping.
#[derive(Default)]
pub(super) struct Pending {
    /// Unfinished tasks named in `after`, and the tasks that name them.
    dependents: HashMap<TaskId, Vec<TaskId>>,
    /// Tasks with dependents that ended since their dependents were last
    /// looked at.
    ended: Vec<TaskId>,
}

/// Where the tasks a task names in `after` stand.
pub(super) enum Deps {
    /// Every one succeeded (or named none).
    Met,
    /// Some have not ended yet: these.
    Unmet(Vec<TaskId>),
    /// This one ended otherwise, with this status.
    Failed(TaskId, TaskStatus),
}

/// Longest wait a `run_at` timer is set for. The timer wheel holds about
/// two years at most (and `run_at` may name any year up to 9999): a task
/// due later is looked at again each day until its time comes.
pub(super) const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

/// How long from now until `at` (zero if it passed), and whether that is
/// more than [`MAX_TIMER`] (then the timer is set for that only).
pub(super) fn timer_until(at: Timestamp) -> (Duration, bool) {
    let wait = (at.0 - Timestamp::now().0)
        .to_std()
        .unwrap_or(Duration::ZERO);
    (wait.min(MAX_TIMER), wait > MAX_TIMER)
}

/// The delay before retry `attempt + 1` of a task with `backoff_ms`:
/// doubled each retry, ±20 % jitter, at most one hour.
pub(super) fn backoff(backoff_ms: u64, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let base = backoff_ms
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF_MS);
    let jittered = base as f64 * (0.8 + 0.4 * fastrand::f64());
    Duration::from_millis((jittered as u64).min(MAX_BACKOFF_MS))
}

/// The error of a task whose dependency `dep` ended with `status`.
fn dependency_failed(dep: TaskId, status: TaskStatus) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::DependencyFailed,
        format!("task {dep} ended {status}, not succeeded"),
    )
}

impl Scheduler {
    /// Where the tasks named in `after` stand. One no longer held ended
    /// long ago, and successfully: a task named by a waiting one is not
    /// dropped before it, and one that ended otherwise failed its
    /// dependents at once.
    pub(super) fn deps(&self, after: &[TaskId]) -> Deps {
        let mut unmet = Vec::new();
        for &dep in after {
            match self.table.get(&dep).map(|e| e.task.status) {
                None | Some(TaskStatus::Succeeded) => {}
                Some(status) if status.is_final() => return Deps::Failed(dep, status),
                Some(_) => unmet.push(dep),
            }
        }
        match unmet.is_empty() {
            true => Deps::Met,
            false => Deps::Unmet(unmet),
        }
    }

    /// Takes in a new task: `scheduled` if its time has not come, else
    /// `waiting` if some task it names has not succeeded yet, else
    /// `queued`. One whose dependency already ended otherwise ends
    /// `failed` at once: `true` then, and its `result` is the caller's to
    /// push (after the ack).
    pub(super) fn admit(
        &mut self,
        mut task: Task,
        class: Class,
        owner: Option<&Owner>,
        durable: bool,
    ) -> bool {
        let id = task.id;
        let deps = self.deps(&task.after);
        let later = task.run_at.is_some_and(|t| t > Timestamp::now());
        task.status = match (&deps, later) {
            (Deps::Failed(..), _) => TaskStatus::Waiting,
            (_, true) => TaskStatus::Scheduled,
            (Deps::Unmet(_), false) => TaskStatus::Waiting,
            (Deps::Met, false) => TaskStatus::Queued,
        };
        let status = task.status;
        if task.retry_of.is_some() {
            self.metrics.retried(&task.kind, Retry::Manual);
        }
        self.table.enqueue(task, class, owner, durable);
        match deps {
            Deps::Failed(dep, dep_status) => {
                let error = dependency_failed(dep, dep_status);
                return self.settle(id, TaskStatus::Failed, None, Some(error));
            }
            Deps::Unmet(deps) => self.wait_for(id, &deps),
            Deps::Met => {}
        }
        if status == TaskStatus::Scheduled {
            self.arm_due(id);
        }
        false
    }

    /// Lists `id` under each of `deps`.
    fn wait_for(&mut self, id: TaskId, deps: &[TaskId]) {
        for dep in deps {
            self.pending.dependents.entry(*dep).or_default().push(id);
        }
    }

    /// Arms the timer of a scheduled task for its `run_at`.
    pub(super) fn arm_due(&mut self, id: TaskId) {
        let Some(entry) = self.table.get_mut(&id) else {
            return;
        };
        let (wait, later) = entry
            .task
            .run_at
            .map_or((Duration::ZERO, false), timer_until);
        let timer = match later {
            true => Timer::DueLater(id),
            false => Timer::Due(id),
        };
        entry.timer = Some(self.timers.insert(timer, wait));
    }

    /// A scheduled task due beyond one timer's reach: the timer again.
    pub(super) fn on_due_later(&mut self, id: TaskId) {
        if let Some(entry) = self
            .table
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Scheduled)
        {
            entry.timer = None;
            self.arm_due(id);
        }
    }

    /// A scheduled task's time came: it is queued, or waits for the tasks
    /// it names.
    pub(super) async fn on_due(&mut self, id: TaskId) {
        let Some(entry) = self
            .table
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Scheduled)
        else {
            return;
        };
        entry.timer = None;
        let after = entry.task.after.clone();
        match self.deps(&after) {
            Deps::Failed(dep, status) => {
                let error = dependency_failed(dep, status);
                return self.finish(id, TaskStatus::Failed, None, Some(error)).await;
            }
            Deps::Met => self.table.release(id),
            Deps::Unmet(_) => self.table.hold(id),
        };
        self.announce(id).await;
    }

    /// Stores a task's new state and pushes its `status`.
    async fn announce(&mut self, id: TaskId) {
        self.touch(id);
        if let Some(entry) = self.table.get(&id) {
            let ev = status_of(&entry.task);
            self.emit(Deferred::Status(ev)).await;
        }
    }

    /// Notes that `id` ended, if some task waits for it.
    pub(super) fn ended(&mut self, id: TaskId) {
        if self.pending.dependents.contains_key(&id) {
            self.pending.ended.push(id);
        }
    }

    /// Looks again at the tasks waiting for those that ended: each is
    /// queued once all it names succeeded, or fails at once (and in turn
    /// fails its own dependents) when one did not.
    pub(super) async fn resolve_dependents(&mut self) {
        while let Some(dep) = self.pending.ended.pop() {
            for id in self.pending.dependents.remove(&dep).unwrap_or_default() {
                let Some(entry) = self.table.get(&id) else {
                    continue;
                };
                let (status, after) = (entry.task.status, entry.task.after.clone());
                if !status.is_pending() {
                    continue;
                }
                match self.deps(&after) {
                    Deps::Failed(dep, dep_status) => {
                        let error = dependency_failed(dep, dep_status);
                        self.finish(id, TaskStatus::Failed, None, Some(error)).await;
                    }
                    // A scheduled one waits for its time; its timer
                    // queues it.
                    Deps::Met if status == TaskStatus::Waiting => {
                        self.table.release(id);
                        self.announce(id).await;
                    }
                    Deps::Met | Deps::Unmet(_) => {}
                }
            }
        }
    }

    /// Retries a failed or timed-out attempt later, if the task asked for
    /// it (`retry_on_failure`) and has attempts left: it goes `scheduled`
    /// with `run_at` = now + backoff. `false` if not: the failure is final.
    pub(super) async fn retry_later(&mut self, id: TaskId, error: &ErrorBody) -> bool {
        let Some(task) = self.table.get(&id).map(|e| &e.task) else {
            return false;
        };
        let retried = matches!(error.code, ErrorCode::TaskFailed | ErrorCode::TimedOut)
            && task.retry_on_failure
            && task.status == TaskStatus::Running
            && task.attempt < task.max_attempts;
        if !retried {
            return false;
        }
        self.metrics.retried(&task.kind, Retry::Failure);
        let wait = backoff(task.backoff_ms, task.attempt);
        let run_at = Timestamp::now().plus_millis(wait.as_millis() as u64);
        self.attempt_ended(id, lookups::retried_outcome(error), error.clone());
        let Some(Left { timer, worker, .. }) = self.table.reschedule(id, run_at) else {
            return false;
        };
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        if let Some(worker) = &worker
            && let Some(w) = self.workers.iter_mut().find(|w| w.id == *worker)
        {
            w.tasks_done += 1;
        }
        tracing::debug!(task = %id, code = %error.code, ?wait, "attempt failed; retrying later");
        if self.cluster.is_some() {
            // Any node may run the retry: it waits in the database.
            self.give_back_scheduled(id, error.clone(), worker).await;
            return true;
        }
        self.arm_due(id);
        self.announce(id).await;
        true
    }

    /// After recovery: timers for the scheduled tasks (those due while the
    /// server was down are queued at once), and the waiting tasks listed
    /// under what they wait for (or resolved, if that ended meanwhile).
    pub(super) fn restore_pending(&mut self) {
        for id in self.table.ids() {
            let Some(task) = self.table.get(&id).map(|e| &e.task) else {
                continue;
            };
            if !task.status.is_pending() {
                continue;
            }
            let (status, after) = (task.status, task.after.clone());
            if status == TaskStatus::Scheduled {
                self.arm_due(id);
            }
            for dep in after {
                self.pending.dependents.entry(dep).or_default().push(id);
                let ended = self
                    .table
                    .get(&dep)
                    .is_none_or(|e| e.task.status.is_final());
                if ended {
                    self.pending.ended.push(dep);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_an_hour() {
        for _ in 0..200 {
            let first = backoff(1000, 1).as_millis();
            assert!((800..=1200).contains(&first), "{first}");
            let third = backoff(1000, 3).as_millis();
            assert!((3200..=4800).contains(&third), "{third}");
            let late = backoff(1000, 40).as_millis();
            assert!((2_880_000..=3_600_000).contains(&late), "{late}");
            assert_eq!(backoff(0, 5), Duration::ZERO);
        }
    }
}
