//! Looking up tasks (v1.1): pages of `list` over every client's tasks and
//! a task's attempts, served from where the tasks are kept. On a single
//! server the scheduler's table indexes every task, so it finds a page
//! (reading the page's finished tasks from the store's lookup thread on a
//! durable server); a task's attempts come from the table on an in-memory
//! server, and on a durable one from the store (committed state), where
//! the table says the task is kept. In cluster mode both come from
//! PostgreSQL.
//!
//! A task carries its current (or last) attempt itself: its worker,
//! `started_at`, and for a final task `finished_at` and `error`. Only
//! attempts that ended while the task went on (a lost worker, a retry) are
//! kept apart, so a task that ran once costs nothing more.

use std::sync::{Arc, OnceLock};

use app::{
    Attempt, AttemptOutcome, Attempts, Cursor, ErrorBody, ErrorCode, ListPage, ListQuery, Task,
    TaskId, TaskStatus,
};

use crate::cluster::db::{Db, DbError};
use crate::scheduler::Dispatcher;

/// Where lookups are answered from: the scheduler, unless the server is a
/// cluster node (set once, as the server starts, before it serves).
#[derive(Clone, Default)]
pub struct Lookup(Arc<OnceLock<Db>>);

impl Lookup {
    /// Serves lookups from the cluster's database.
    pub fn from_cluster(&self, db: Db) {
        let _ = self.0.set(db);
    }

    /// One page of every client's tasks, newest first.
    pub async fn list(
        &self,
        scheduler: &Dispatcher,
        query: ListQuery,
    ) -> Result<ListPage, ErrorBody> {
        match self.0.get() {
            None => scheduler.list(query).await,
            Some(db) => db.list(&query).await.map_err(db_error),
        }
    }

    /// Every attempt of task `id`, oldest first; `not_found` if there is
    /// no such task.
    pub async fn attempts(
        &self,
        scheduler: &Dispatcher,
        id: TaskId,
    ) -> Result<Attempts, ErrorBody> {
        let Some(db) = self.0.get() else {
            return scheduler.attempts(id).await;
        };
        let found = db.attempts(id).await.map_err(db_error)?;
        found.ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, format!("no task {id}")))
    }
}

/// A page from tasks read newest first with their submission order: a
/// read asks for one task past the page (`want` = limit + 1), so finding
/// it means an older page exists, which starts after the last one kept.
pub fn page_of(mut found: Vec<(i64, Task)>, want: usize) -> ListPage {
    let next = match found.len() == want {
        true => {
            found.pop();
            found
                .last()
                .map(|&(seq, _)| Cursor(u64::try_from(seq).unwrap_or_default()))
        }
        false => None,
    };
    ListPage::new(found.into_iter().map(|(_, t)| t).collect(), next)
}

fn db_error(e: DbError) -> ErrorBody {
    tracing::warn!(error = %e, "cannot look up tasks in the cluster's database");
    let code = match e.is_unavailable() {
        true => ErrorCode::Unavailable,
        false => ErrorCode::Internal,
    };
    ErrorBody::new(code, format!("cannot read the tasks: {e}; try again later"))
}

/// The attempt a task carries itself: the running one, or the one it
/// ended in. `None` if its current attempt never started (it waits, or
/// ended before running again).
pub fn current_attempt(task: &Task) -> Option<Attempt> {
    let started_at = task.started_at?;
    if task.attempt == 0 {
        return None;
    }
    let outcome = match task.status {
        TaskStatus::Running => AttemptOutcome::Running,
        TaskStatus::Succeeded => AttemptOutcome::Succeeded,
        TaskStatus::Failed
            if task
                .error
                .as_ref()
                .is_some_and(|e| e.code == ErrorCode::WorkerLost) =>
        {
            AttemptOutcome::WorkerLost
        }
        TaskStatus::Failed => AttemptOutcome::Failed,
        TaskStatus::TimedOut => AttemptOutcome::TimedOut,
        TaskStatus::Cancelled => AttemptOutcome::Cancelled,
        TaskStatus::Scheduled | TaskStatus::Waiting | TaskStatus::Queued => return None,
    };
    let running = outcome == AttemptOutcome::Running;
    Some(Attempt {
        attempt: task.attempt,
        worker: task.worker.clone(),
        started_at,
        finished_at: task.finished_at.filter(|_| !running),
        outcome,
        error: task.error.as_deref().cloned().filter(|_| !running),
    })
}

/// Every attempt of `task`: those that ended before (as recorded), then
/// the one it carries, oldest first.
pub fn attempts_of(task: &Task, mut earlier: Vec<Attempt>) -> Attempts {
    if let Some(current) = current_attempt(task)
        && earlier.last().is_none_or(|a| a.attempt < current.attempt)
    {
        earlier.push(current);
    }
    earlier.sort_by_key(|a| a.attempt);
    Attempts { attempts: earlier }
}

/// The record of an attempt of `task` that ends now while the task goes
/// on (back to the queue, or a retry later); `None` if it never started.
pub fn ended_attempt(task: &Task, outcome: AttemptOutcome, error: ErrorBody) -> Option<Attempt> {
    Some(Attempt {
        attempt: task.attempt,
        worker: task.worker.clone(),
        started_at: task.started_at?,
        finished_at: Some(app::Timestamp::now()),
        outcome,
        error: Some(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::{TaskSpec, Timestamp, WorkerId};
    use serde_json::json;

    fn ran(status: TaskStatus, error: Option<ErrorBody>) -> Task {
        let mut t = Task::new(
            uuid::Uuid::now_v7().into(),
            TaskSpec::new("echo", json!(1)),
            Timestamp::now(),
        );
        t.status = status;
        t.attempt = 2;
        t.worker = Some(WorkerId::from("w1".to_owned()));
        t.started_at = Some(Timestamp::now());
        t.finished_at = (status != TaskStatus::Running).then(Timestamp::now);
        t.error = error.map(Box::new);
        t
    }

    #[test]
    fn a_task_carries_its_current_attempt() {
        let lost = ErrorBody::new(ErrorCode::WorkerLost, "gone");
        for (status, error, outcome) in [
            (TaskStatus::Running, None, AttemptOutcome::Running),
            (TaskStatus::Succeeded, None, AttemptOutcome::Succeeded),
            (TaskStatus::Failed, Some(lost), AttemptOutcome::WorkerLost),
            (
                TaskStatus::Failed,
                Some(ErrorBody::new(ErrorCode::TaskFailed, "no")),
                AttemptOutcome::Failed,
            ),
            (TaskStatus::Cancelled, None, AttemptOutcome::Cancelled),
            (TaskStatus::TimedOut, None, AttemptOutcome::TimedOut),
        ] {
            let a = current_attempt(&ran(status, error)).expect("started");
            assert_eq!((a.attempt, a.outcome), (2, outcome), "{status}");
            assert_eq!(a.finished_at.is_none(), status == TaskStatus::Running);
        }
        let mut queued = ran(TaskStatus::Queued, None);
        queued.started_at = None;
        assert_eq!(current_attempt(&queued), None);
    }

    #[test]
    fn earlier_attempts_come_first() {
        let task = ran(TaskStatus::Succeeded, None);
        let first = ended_attempt(
            &Task {
                attempt: 1,
                ..task.clone()
            },
            AttemptOutcome::WorkerLost,
            ErrorBody::new(ErrorCode::WorkerLost, "gone"),
        )
        .expect("started");
        let all = attempts_of(&task, vec![first]).attempts;
        let got: Vec<_> = all.iter().map(|a| (a.attempt, a.outcome)).collect();
        assert_eq!(
            got,
            vec![
                (1, AttemptOutcome::WorkerLost),
                (2, AttemptOutcome::Succeeded)
            ]
        );
    }
}
