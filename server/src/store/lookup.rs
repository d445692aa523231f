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

use super::{Store, StoreError, row};
use crate::lookup::attempts_of;

pub(super) enum Job {
    Tasks(
        Vec<TaskId>,
        oneshot::Sender<Result<HashMap<TaskId, Task>, String>>,
    ),
    Attempts(TaskId, oneshot::Sender<Result<Option<Attempts>, String>>),
}

impl Store {
    /// Tasks `ids` as last committed, by id; one the store does not hold
    /// is left out.
    pub fn read_many(
        &self,
        ids: Vec<TaskId>,
    ) -> impl Future<Output = Result<HashMap<TaskId, Task>, StoreError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self.lookups.send(Job::Tasks(ids, done));
        async move {
            queued.map_err(|_| StoreError::Stopped)?;
            rx.await
                .map_err(|_| StoreError::Stopped)?
                .map_err(StoreError::Read)
        }
    }

    /// Every attempt of task `id` as last committed; `None` if the store
    /// does not hold the task.
    pub async fn attempts(&self, id: TaskId) -> Result<Option<Attempts>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.lookups
            .send(Job::Attempts(id, done))
            .map_err(|_| StoreError::Stopped)?;
        rx.await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Read)
    }
}

/// The lookup thread: one job at a time.
pub(super) fn serve(conn: Connection, rx: std_mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Tasks(ids, done) => {
                let _ = done.send(tasks(&conn, &ids).map_err(|e| e.to_string()));
            }
            Job::Attempts(id, done) => {
                let _ = done.send(attempts(&conn, id).map_err(|e| e.to_string()));
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

/// Tasks `ids` as stored, by id.
fn tasks(conn: &Connection, ids: &[TaskId]) -> Result<HashMap<TaskId, Task>, LookupError> {
    let mut found = HashMap::with_capacity(ids.len());
    for &id in ids {
        if let Some(task) = row::read(conn, id)? {
            found.insert(id, task);
        }
    }
    Ok(found)
}

fn attempts(conn: &Connection, id: TaskId) -> Result<Option<Attempts>, LookupError> {
    let Some(task) = row::read(conn, id)? else {
        return Ok(None);
    };
    let key = id.0.as_bytes().as_slice();
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
        let unknown = TaskId::from(uuid::Uuid::now_v7());
        let found = store
            .read_many(vec![tasks[1].id, unknown, tasks[2].id])
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[&tasks[1].id], tasks[1]);
        assert_eq!(found[&tasks[2].id], tasks[2]);
    }
}
