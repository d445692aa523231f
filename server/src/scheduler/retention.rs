//! Finished tasks: publishing their result, taking their payload out of
//! memory (read back from the store, or a byte budget), and retention.

use super::*;

/// Where a task's payload (input, output, error) is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Payload {
    /// In `task`, as it runs (or finished, not yet shelved).
    Live,
    /// In `task`, finished, counted against the in-memory byte budget
    /// (these bytes; 4 bytes, not 8, since every entry has this field).
    Kept(u32),
    /// Only in the store: `task` holds the rest of the task.
    Stored,
}

/// Drops what a finished task holds besides its state and times.
pub(super) fn strip_payload(task: &mut Task) {
    task.input = app::Json::null();
    task.output = None;
    task.error = None;
    task.progress = None;
}

/// The memory a task's payload takes: the text of its input and output
/// (held as text, never parsed) and its error's message.
pub(super) fn payload_bytes(task: &Task) -> usize {
    let error = task.error.as_ref().map_or(0, |e| e.message.capacity());
    task.input.heap_bytes() + task.output.as_ref().map_or(0, app::Json::heap_bytes) + error
}

impl Scheduler {
    /// Answers with a task's snapshot; a finished task whose payload is
    /// only in the store is read from there, without holding up the loop.
    pub(super) fn reply_task(&self, id: TaskId, reply: TaskReply) {
        match (self.table.get(&id), &self.outbox.store) {
            (None, _) => reply.error(not_found(id)),
            (Some(e), Some(store)) if e.payload == Payload::Stored => {
                let read = store.read(e.key());
                tokio::spawn(async move {
                    match read.await {
                        Ok(Some(task)) => reply.task(&task),
                        // Pruned meanwhile.
                        Ok(None) => reply.error(not_found(id)),
                        Err(e) => {
                            tracing::error!(task = %id, error = %e, "cannot read a task");
                            reply.error(ErrorBody::new(
                                ErrorCode::Internal,
                                format!("task {id} cannot be read: {e}"),
                            ));
                        }
                    }
                });
            }
            (Some(e), _) => reply.task(&e.task),
        }
    }

    /// Pushes a final task's `result`, closes its room and applies retention.
    pub(super) async fn publish(&mut self, id: TaskId) {
        let Some(entry) = self.table.get_mut(&id) else {
            return; // withdrawn
        };
        if let Some(follower) = entry.follower.take() {
            follower.result(&entry.task);
        }
        self.publisher.result(&entry.task).await;
        if self.cluster.is_some() {
            return self.cluster_published(id);
        }
        self.table.shelve(id, self.outbox.durable());
        self.prune();
    }

    /// Finished tasks hold their idempotency key if they finished at or
    /// after this time (ms since the epoch).
    pub(super) fn keys_since(&self) -> i64 {
        self.keys_since_at(Timestamp::now().millis())
    }

    /// [`Self::keys_since`] at `now` (ms since the epoch).
    fn keys_since_at(&self, now: i64) -> i64 {
        now - i64::try_from(self.config.dedup_window.as_millis()).unwrap_or(i64::MAX)
    }

    /// Drops the oldest finished tasks beyond the retention limits, from
    /// memory and from the store.
    pub(super) fn prune(&mut self) {
        // One clock read: this runs for every task that finishes.
        let now = Timestamp::now().millis();
        let oldest_kept =
            now - i64::try_from(self.config.retain_age.as_millis()).unwrap_or(i64::MAX);
        let dropped = self.table.prune(
            self.config.retain_finished,
            self.config.retain_bytes,
            oldest_kept,
            self.keys_since_at(now),
        );
        if self.outbox.durable() {
            self.outbox.deletes.extend(dropped);
        }
    }
}
