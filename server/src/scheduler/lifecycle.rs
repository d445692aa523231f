//! A task's way in and out: submissions, and settling a task in its final
//! state.

use std::collections::{HashMap, HashSet};

use super::*;

impl Scheduler {
    pub(super) async fn submit(
        &mut self,
        mut tasks: Vec<(Task, Class)>,
        client: Option<Client>,
        reply: TasksReply,
    ) {
        if self.stopping {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                "the server is shutting down and takes no new tasks; try again shortly",
            ));
        }
        if let Some(reason) = &self.outbox.degraded {
            return reply.error(self.outbox.store_down(reason));
        }
        if let Some(side) = &self.cluster {
            if let Some(problem) = side.link.problem() {
                return reply.error(ErrorBody::new(
                    ErrorCode::Unavailable,
                    format!("{problem}; try again later"),
                ));
            }
            // The queue and its limits are the cluster's: stored, then
            // acked, then any node may claim them.
            if let Some(client) = &client {
                client.join(tasks.iter().map(|(t, _)| t.id.room()).collect());
            }
            let now = Timestamp::now();
            let tasks = tasks
                .into_iter()
                .map(|(mut task, _)| {
                    if task.retry_of.is_some() {
                        self.metrics.retried(&task.kind, Retry::Manual);
                    }
                    if task.run_at.is_some_and(|at| at > now) {
                        task.status = TaskStatus::Scheduled;
                    }
                    task
                })
                .collect();
            return self.cluster_submit(tasks, client, reply);
        }
        // Which items a key makes acks of existing tasks.
        let existing = match self.deduplicate(&mut tasks) {
            Ok(existing) => existing,
            Err(e) => return reply.error(e),
        };
        let fresh = existing.iter().filter(|e| e.is_none()).count();
        // The submitter follows its new tasks if it can: it gets their
        // pushes without joining their rooms.
        let follows = self.config.submitters_follow;
        let owner = client.map(|client| Owner {
            id: client.id(),
            client,
            follows,
        });
        if let Some(sid) = owner.as_ref().map(|o| o.id) {
            let mine = self.table.unfinished_of(sid);
            if mine + fresh > self.config.max_unfinished_per_socket {
                return reply.error(ErrorBody::new(
                    ErrorCode::RateLimited,
                    format!(
                        "this socket has {mine} unfinished tasks (limit {})",
                        self.config.max_unfinished_per_socket
                    ),
                ));
            }
        }
        // Tasks scheduled for later or waiting for others take memory as
        // queued ones do, so they count against the same capacity.
        let queued = self.table.queued() + self.table.scheduled() + self.table.waiting();
        if queued + fresh > self.config.queue_capacity {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                format!(
                    "the queue is full ({queued} of {} tasks queued, scheduled or waiting)",
                    self.config.queue_capacity
                ),
            ));
        }
        let ids: Vec<TaskId> = tasks
            .iter()
            .zip(&existing)
            .map(|((t, _), e)| e.unwrap_or(t.id))
            .collect();
        let deduplicated: Vec<bool> = existing.iter().map(Option::is_some).collect();
        if let Some(owner) = &owner {
            // Rooms of new tasks it does not follow, and of existing ones a
            // key named, unless finished (the room is closed: the ack holds
            // the result) or followed by this client already.
            let rooms: Vec<String> = ids
                .iter()
                .zip(&existing)
                .filter(|(_, e)| e.is_some() || !follows)
                .map(|(id, _)| id)
                .filter(|id| {
                    self.table
                        .get(id)
                        .is_none_or(|e| !e.task.status.is_final() && !e.followed_by(owner.id))
                })
                .map(TaskId::room)
                .collect();
            if !rooms.is_empty() {
                owner.client.join(rooms);
            }
        }
        let durable = self.outbox.durable();
        let mut failed = Vec::new();
        for ((task, class), existing) in tasks.into_iter().zip(&existing) {
            if existing.is_some() {
                continue;
            }
            let id = task.id;
            // With a store the work may start while its commit is under way:
            // the ack still goes first, since every push about the task
            // waits behind that commit.
            if self.admit(task, class, owner.as_ref(), durable) {
                failed.push(id);
            }
        }
        let submitted: Vec<&Task> = ids
            .iter()
            .filter_map(|id| self.table.get(id))
            .map(|e| &e.task)
            .collect();
        if durable {
            // Stored before acked; the ack shows them as submitted.
            let tasks = submitted.into_iter().cloned().collect();
            let new = existing
                .iter()
                .zip(&ids)
                .filter(|(e, _)| e.is_none())
                .map(|(_, id)| *id);
            self.outbox.dirty.extend(new);
            self.outbox.deferred.push(Deferred::Submitted {
                reply,
                tasks,
                deduplicated,
            });
        } else {
            reply.tasks(&submitted, &deduplicated);
        }
        // Tasks whose dependency had failed already: their `result`
        // follows the ack.
        for id in failed {
            self.emit(Deferred::Result(id)).await;
        }
    }

    /// For each submitted item, the existing task its idempotency key
    /// names (one held by the table within the dedup window, or an earlier
    /// item of the batch), if any. Checks that every task named in `after`
    /// exists, the batch's earlier new items included (`not_found` if not).
    fn deduplicate(&self, tasks: &mut [(Task, Class)]) -> Result<Vec<Option<TaskId>>, ErrorBody> {
        let since = self.keys_since();
        let mut existing = vec![None; tasks.len()];
        let mut batch_keys: HashMap<String, TaskId> = HashMap::new();
        // A deduplicated item's fresh id stands for the task it acks.
        let mut stands_for: HashMap<TaskId, TaskId> = HashMap::new();
        for (i, (task, _)) in tasks.iter().enumerate() {
            let Some(key) = &task.key else { continue };
            let held = self
                .table
                .key_holder(key, since)
                .or_else(|| batch_keys.get(key).copied());
            match held {
                Some(id) => {
                    existing[i] = Some(id);
                    stands_for.insert(task.id, id);
                }
                None => {
                    batch_keys.insert(key.clone(), task.id);
                }
            }
        }
        let batch = tasks.len() > 1;
        let mut earlier: HashSet<TaskId> = HashSet::new();
        for (i, (task, _)) in tasks.iter_mut().enumerate() {
            if existing[i].is_some() {
                continue;
            }
            for dep in &mut task.after {
                if let Some(id) = stands_for.get(dep) {
                    *dep = *id;
                }
                if !self.table.contains(dep) && !earlier.contains(dep) {
                    let e =
                        ErrorBody::new(ErrorCode::NotFound, format!("after names no task {dep}"))
                            .with_field(app::Field::from_name("after"));
                    return Err(if batch { e.in_batch_item(i) } else { e });
                }
            }
            earlier.insert(task.id);
        }
        Ok(existing)
    }

    /// Makes a task final, pushes its `result` and closes its room.
    pub(super) async fn finish(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<app::Json>,
        error: Option<ErrorBody>,
    ) {
        if status == TaskStatus::Failed
            && let Some(e) = &error
            && self.retry_later(id, e).await
        {
            return;
        }
        if self.settle(id, status, output, error) {
            self.emit(Deferred::Result(id)).await;
        }
    }

    /// Sets a task's final state; `false` if it was final already.
    pub(super) fn settle(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<app::Json>,
        error: Option<ErrorBody>,
    ) -> bool {
        let Some(Left { timer, worker, ran }) = self.table.settle(id, status, output, error) else {
            return false;
        };
        if let Some(e) = self.table.get(&id) {
            self.by_kind.ended(&self.metrics, &e.task.kind, status, ran);
        }
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        if let Some(worker) = worker
            && let Some(w) = self.workers.iter_mut().find(|w| w.id == worker)
        {
            w.tasks_done += 1;
        }
        self.touch(id);
        self.ended(id);
        true
    }
}

pub(super) fn not_found(id: TaskId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no task {id}"))
}
