//! A task's way in and out: submissions, and settling a task in its final
//! state.

use super::*;

impl Scheduler {
    pub(super) fn submit(
        &mut self,
        tasks: Vec<(Task, Class)>,
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
            let tasks = tasks.into_iter().map(|(t, _)| t).collect();
            return self.cluster_submit(tasks, reply);
        }
        let owner = client.as_ref().map(|c| c.id());
        if let Some(sid) = owner {
            let mine = self.table.unfinished_of(sid);
            if mine + tasks.len() > self.config.max_unfinished_per_socket {
                return reply.error(ErrorBody::new(
                    ErrorCode::RateLimited,
                    format!(
                        "this socket has {mine} unfinished tasks (limit {})",
                        self.config.max_unfinished_per_socket
                    ),
                ));
            }
        }
        let queued = self.table.queued();
        if queued + tasks.len() > self.config.queue_capacity {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                format!(
                    "the queue is full ({queued} of {} queued)",
                    self.config.queue_capacity
                ),
            ));
        }
        let ids: Vec<TaskId> = tasks.iter().map(|(t, _)| t.id).collect();
        if let Some(client) = &client {
            client.join(ids.iter().map(TaskId::room).collect());
        }
        let durable = self.outbox.durable();
        for (task, class) in tasks {
            // With a store the work may start while its commit is under way:
            // the ack still goes first, since every push about the task
            // waits behind that commit.
            self.table.enqueue(task, class, owner, durable);
        }
        let submitted: Vec<&Task> = ids
            .iter()
            .filter_map(|id| self.table.get(id))
            .map(|e| &e.task)
            .collect();
        if durable {
            // Stored before acked; the ack shows them as submitted.
            let tasks = submitted.into_iter().cloned().collect();
            self.outbox.dirty.extend_from_slice(&ids);
            self.outbox
                .deferred
                .push(Deferred::Submitted { reply, tasks });
        } else {
            reply.tasks(&submitted);
        }
    }

    /// Makes a task final, pushes its `result` and closes its room.
    pub(super) async fn finish(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<serde_json::Value>,
        error: Option<ErrorBody>,
    ) {
        if self.settle(id, status, output, error) {
            self.emit(Deferred::Result(id)).await;
        }
    }

    /// Sets a task's final state; `false` if it was final already.
    pub(super) fn settle(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<serde_json::Value>,
        error: Option<ErrorBody>,
    ) -> bool {
        let Some(Left { timer, worker }) = self.table.settle(id, status, output, error) else {
            return false;
        };
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        if let Some(worker) = worker
            && let Some(w) = self.workers.iter_mut().find(|w| w.id == worker)
        {
            w.tasks_done += 1;
        }
        self.touch(id);
        true
    }
}

pub(super) fn not_found(id: TaskId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no task {id}"))
}
