//! Lookups on an in-memory server (`list`, a task's attempts), answered
//! from the table's index; and the attempts that end while their task goes
//! on (a lost worker, a retry), recorded where lookups read them: the
//! table (in memory), the store (durable), or nowhere here in a cluster
//! (the database records them as it requeues the task).

use app::{Attempt, AttemptOutcome, Attempts, ListPage, ListQuery};

use super::*;
use crate::lookup::{attempts_of, ended_attempt};

/// The answer to `list`.
pub type ListReply = Reply<Result<ListPage, ErrorBody>>;
/// The answer to a task's attempts.
pub type AttemptsReply = Reply<Result<Attempts, ErrorBody>>;

impl Scheduler {
    pub(super) fn reply_list(&self, query: ListQuery, reply: ListReply) {
        if !self.table.has_lookups() {
            return reply.send(Err(ErrorBody::new(
                ErrorCode::Internal,
                "this server lists tasks from its store",
            )));
        }
        let (tasks, next) = self.table.list(&query);
        reply.send(Ok(ListPage::new(
            tasks.into_iter().cloned().collect(),
            next,
        )));
    }

    pub(super) fn reply_attempts(&self, id: TaskId, reply: AttemptsReply) {
        reply.send(match self.table.get(&id) {
            None => Err(not_found(id)),
            Some(e) => Ok(attempts_of(&e.task, self.table.earlier_attempts(&id))),
        });
    }

    /// Records the running attempt of task `id` as ended with `outcome`:
    /// the task goes on (back to the queue, or a retry later), so the
    /// task itself will no longer say how this attempt went.
    pub(super) fn attempt_ended(&mut self, id: TaskId, outcome: AttemptOutcome, error: ErrorBody) {
        if self.cluster.is_some() {
            return;
        }
        let Some(attempt) = self
            .table
            .get(&id)
            .and_then(|e| ended_attempt(&e.task, outcome, error))
        else {
            return;
        };
        match self.outbox.store.is_some() {
            true => self.outbox.attempts.push((id, attempt)),
            false => self.table.record_attempt(id, attempt),
        }
    }
}

/// What an attempt that failed and is retried later ended as.
pub(super) fn retried_outcome(error: &ErrorBody) -> AttemptOutcome {
    match error.code {
        ErrorCode::TimedOut => AttemptOutcome::TimedOut,
        _ => AttemptOutcome::Failed,
    }
}

/// An attempt of a task, as recorded: its number and JSON.
pub(super) type RecordedAttempt = (TaskId, Attempt);

impl Dispatcher {
    /// One page of `list` (in-memory server).
    pub async fn list(&self, query: ListQuery) -> Result<ListPage, ErrorBody> {
        let (reply, rx) = Reply::channel();
        self.send(Command::List { query, reply }).await?;
        rx.await.map_err(|_| command::stopped())?
    }

    /// Every attempt of a task (in-memory server).
    pub async fn attempts(&self, id: TaskId) -> Result<Attempts, ErrorBody> {
        let (reply, rx) = Reply::channel();
        self.send(Command::Attempts { id, reply }).await?;
        rx.await.map_err(|_| command::stopped())?
    }
}
