//! Lookups in the store (the tasks of a `list` page whose input and output
//! are only here, a task's attempts), on a connection and thread of their
//! own: WAL lets them read the last commit while the writer goes on, and a
//! long page never delays the scheduler's reads. Which tasks a page holds
//! is the scheduler's to say (its table indexes every task the store
//! holds); the store reads them by id.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;

use app::{Attempt, Attempts, Task, TaskId};
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

use super::{Key, Store, StoreError, answer, row};
use crate::lookup::attempts_of;

pub(super) enum Job {
    Tasks(
        Vec<Key>,
        oneshot::Sender<Result<HashMap<TaskId, Task>, String>>,
    ),
    Attempts(Key, oneshot::Sender<Result<Option<Attempts>, String>>),
}

impl Store {
    /// Tasks `keys` as last committed, by id; one the store does not hold
    /// is left out.
    pub fn read_many(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<HashMap<TaskId, Task>, StoreError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self.lookups.send(Job::Tasks(keys, done)).is_ok();
        answer(queued, rx, StoreError::Read)
    }

    /// Every attempt of the task stored under `key` as last committed;
    /// `None` if the store does not hold the task.
    pub fn attempts(
        &self,
        key: Key,
    ) -> impl Future<Output = Result<Option<Attempts>, StoreError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self.lookups.send(Job::Attempts(key, done)).is_ok();
        answer(queued, rx, StoreError::Read)
    }
}

/// The lookup thread: one job at a time.
pub(super) fn serve(conn: Connection, rx: std_mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Tasks(keys, done) => {
                let _ = done.send(tasks(&conn, &keys).map_err(|e| e.to_string()));
            }
            Job::Attempts(key, done) => {
                let _ = done.send(attempts(&conn, key).map_err(|e| e.to_string()));
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("a task or attempt in the database is unreadable: {0}")]
    Row(#[from] serde_json::Error),
}

/// Tasks `keys` as stored, by id.
fn tasks(conn: &Connection, keys: &[Key]) -> Result<HashMap<TaskId, Task>, LookupError> {
    let mut found = HashMap::with_capacity(keys.len());
    for &key in keys {
        if let Some(task) = row::read(conn, key)? {
            found.insert(key.id, task);
        }
    }
    Ok(found)
}

fn attempts(conn: &Connection, at: Key) -> Result<Option<Attempts>, LookupError> {
    let Some(task) = row::read(conn, at)? else {
        return Ok(None);
    };
    let key = at.id.0.as_bytes().as_slice();
    let mut stmt =
        conn.prepare_cached("SELECT body FROM attempts WHERE task = ?1 ORDER BY attempt")?;
    let bodies = stmt
        .query_map(params![key], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let earlier = bodies
        .iter()
        .map(|b| serde_json::from_str::<Attempt>(b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(attempts_of(&task, earlier)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Write;
    use app::{TaskSpec, TaskStatus, Timestamp};

    #[tokio::test]
    async fn tasks_are_read_as_last_committed_and_unknown_ones_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let mut tasks: Vec<Task> = (0..3)
            .map(|i| {
                let spec = TaskSpec::new("echo", serde_json::json!({ "n": i }));
                // Milliseconds, as the store keeps times.
                let at = Timestamp::from_millis(1_000 + i).unwrap();
                Task::new(uuid::Uuid::now_v7().into(), spec, at)
            })
            .collect();
        let writes = tasks
            .iter()
            .enumerate()
            .map(|(seq, t)| Write::task(t, seq as u64, false))
            .collect();
        store.commit(writes).await.unwrap();
        tasks[1].status = TaskStatus::Succeeded;
        tasks[1].output = Some(app::Json::from(serde_json::json!({ "n": 1 })));
        store
            .commit(vec![Write::task(&tasks[1], 1, true)])
            .await
            .unwrap();
        let key = |seq: u64| Key {
            id: tasks[seq as usize].id,
            seq,
        };
        // A task never stored, and one whose key holds another task.
        let unknown = Key {
            id: uuid::Uuid::now_v7().into(),
            seq: 7,
        };
        let misplaced = Key { seq: 0, ..key(2) };
        let found = store
            .read_many(vec![key(1), unknown, misplaced, key(2)])
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[&tasks[1].id], tasks[1]);
        assert_eq!(found[&tasks[2].id], tasks[2]);
    }
}
