//! Retention's side of the table: dropping the oldest finished tasks.

use crate::store::Key;

use super::index::unindexed;
use app::TaskId;

use super::{Entry, Payload, TaskTable};

impl TaskTable {
    /// Drops the oldest finished tasks while there are more than `count`,
    /// their kept payloads take more than `bytes`, or they finished before
    /// `oldest_kept` (ms since the epoch); returns where they were stored. Tasks with an
    /// idempotency key are kept while they finished at or after
    /// `keys_since`, whatever the rest says.
    pub fn prune(
        &mut self,
        count: usize,
        bytes: usize,
        oldest_kept: i64,
        keys_since: i64,
    ) -> Vec<Key> {
        let mut dropped = self.prune_keyed(count, oldest_kept, keys_since);
        while let Some(&old) = self.finished.front() {
            let too_many = self.finished.len() > count || self.kept_bytes > bytes;
            let too_old = self
                .tasks
                .get(&old)
                .and_then(|e| e.task.finished_at)
                .is_none_or(|t| t.millis() < oldest_kept);
            if !too_many && !too_old {
                break;
            }
            self.finished.pop_front();
            if let Some(entry) = self.drop_finished(old) {
                dropped.push(entry.key());
            }
        }
        dropped
    }

    /// Drops the oldest finished tasks with a key once out of the dedup
    /// window and also too many or too old.
    fn prune_keyed(&mut self, count: usize, oldest_kept: i64, keys_since: i64) -> Vec<Key> {
        let mut dropped = Vec::new();
        while let Some(&old) = self.keyed_finished.front() {
            let finished = self
                .tasks
                .get(&old)
                .and_then(|e| e.task.finished_at)
                .map_or(i64::MIN, |t| t.millis());
            let too_many = self.keyed_finished.len() > count;
            if finished >= keys_since || (!too_many && finished >= oldest_kept) {
                break;
            }
            self.keyed_finished.pop_front();
            if let Some(entry) = self.drop_finished(old) {
                if let Some(key) = &entry.task.key
                    && self.keys.get(key) == Some(&old)
                {
                    self.keys.remove(key);
                }
                dropped.push(entry.key());
            }
        }
        dropped
    }

    /// Takes a finished task out of the table and its lookups.
    fn drop_finished(&mut self, id: TaskId) -> Option<Box<Entry>> {
        let entry = self.tasks.remove(&id)?;
        unindexed(&mut self.lookups, &entry.task, entry.seq);
        if let Payload::Kept(b) = entry.payload {
            self.kept_bytes -= b as usize;
        }
        Some(entry)
    }
}
