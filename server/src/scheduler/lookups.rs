//! Lookups on a single server: `list`, answered from the table's index
//! (a durable server reads the inputs and outputs of the page's finished
//! tasks from its store), and a task's attempts on an in-memory server;
//! and the attempts that end while their task goes on (a lost worker, a
//! retry), recorded where lookups read them: the table (in memory), the
//! store (durable), or nowhere here in a cluster (the database records
//! them as it requeues the task).

use std::collections::HashMap;

use app::{Attempt, AttemptOutcome, Attempts, ListPage, ListQuery};

use super::retention::Payload;
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
                "this server lists tasks from its database",
            )));
        }
        let Some(store) = &self.outbox.store else {
            let (entries, next) = self.table.list(&query, |_| true);
            let tasks = entries.into_iter().map(|e| e.task.clone()).collect();
            return reply.send(Ok(ListPage::new(tasks, next)));
        };
        // A task not yet written may still be withdrawn (its commit may
        // fail): it is listed once it is.
        let (entries, next) = self.table.list(&query, |e| e.stored);
        // Each task as the table holds it, or `None` where its input and
        // output are only in the store.
        let page: Vec<(Key, Option<Task>)> = entries
            .into_iter()
            .map(|e| {
                (
                    e.key(),
                    (e.payload != Payload::Stored).then(|| e.task.clone()),
                )
            })
            .collect();
        let shelved: Vec<Key> = page
            .iter()
            .filter(|(_, here)| here.is_none())
            .map(|&(key, _)| key)
            .collect();
        if shelved.is_empty() {
            return reply.send(Ok(ListPage::new(listed(page, HashMap::new()), next)));
        }
        // Finished tasks whose input and output are only in the store are
        // read from there, without holding up the loop.
        let read = store.read_many(shelved);
        tokio::spawn(async move {
            reply.send(match read.await {
                Ok(stored) => Ok(ListPage::new(listed(page, stored), next)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the tasks of a list page");
                    Err(ErrorBody::new(
                        ErrorCode::Internal,
                        format!("the tasks cannot be read: {e}"),
                    ))
                }
            });
        });
    }

    /// A task's attempts: in memory from the table; on a durable server
    /// as last committed, read from the store (where its earlier attempts
    /// are) without holding up the loop.
    pub(super) fn reply_attempts(&self, id: TaskId, reply: AttemptsReply) {
        let Some(e) = self.table.get(&id) else {
            return reply.send(Err(not_found(id)));
        };
        let Some(store) = &self.outbox.store else {
            return reply.send(Ok(attempts_of(&e.task, self.table.earlier_attempts(&id))));
        };
        let read = store.attempts(e.key());
        tokio::spawn(async move {
            reply.send(match read.await {
                Ok(Some(attempts)) => Ok(attempts),
                // Not yet written, or pruned meanwhile.
                Ok(None) => Err(not_found(id)),
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "cannot read a task's attempts");
                    Err(ErrorBody::new(
                        ErrorCode::Internal,
                        format!("the attempts of task {id} cannot be read: {e}"),
                    ))
                }
            })
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

/// The tasks of a `list` page in order, those the table did not hold
/// whole taken from `stored`; one the store no longer holds (pruned
/// meanwhile) is left out.
fn listed(page: Vec<(Key, Option<Task>)>, mut stored: HashMap<TaskId, Task>) -> Vec<Task> {
    page.into_iter()
        .filter_map(|(key, here)| here.or_else(|| stored.remove(&key.id)))
        .collect()
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
    /// One page of `list` (single server).
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
