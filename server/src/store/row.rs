//! A task's row: the task in columns, so that it is written once whole
//! (its submission, which never changes) and afterwards only in the
//! columns of its state. Integers and times are SQLite integers, ids
//! 16-byte blobs, `after` their concatenation; input and output are their
//! JSON text, kept as received; `error` and `progress`, rare, are JSON.

use app::{ErrorBody, Json, Progress, Task, TaskId, TaskStatus, Timestamp, WorkerId};
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, Row, Statement, ToSql, params};

/// Every column, in the order [`decode`] reads them.
pub(super) const COLUMNS: &str = "seq, id, status, kind, key, input, priority, max_attempts, \
    timeout_ms, created_at, after, retry_on_failure, backoff_ms, concurrency_key, \
    concurrency_limit, retry_of, attempt, worker, started_at, finished_at, run_at, output, \
    error, progress";

/// Where [`decode`] finds `key`.
const KEY: usize = 4;

/// The table, as created by schema version 2.
pub(super) const TABLE: &str = "
    CREATE TABLE IF NOT EXISTS tasks (
        id                BLOB PRIMARY KEY,
        seq               INTEGER NOT NULL,
        status            TEXT NOT NULL,
        kind              TEXT NOT NULL,
        key               TEXT,
        input             TEXT NOT NULL,
        priority          INTEGER NOT NULL,
        max_attempts      INTEGER NOT NULL,
        timeout_ms        INTEGER,
        created_at        INTEGER NOT NULL,
        after             BLOB,
        retry_on_failure  INTEGER NOT NULL,
        backoff_ms        INTEGER NOT NULL,
        concurrency_key   TEXT,
        concurrency_limit INTEGER NOT NULL,
        retry_of          BLOB,
        attempt           INTEGER NOT NULL,
        worker            TEXT,
        started_at        INTEGER,
        finished_at       INTEGER,
        run_at            INTEGER,
        output            TEXT,
        error             TEXT,
        progress          TEXT
    ) WITHOUT ROWID;";

/// A task's first write, the whole row; written again whole (its state
/// replaced) if a failed commit took the first one with it.
pub(super) const INSERT: &str = "
    INSERT INTO tasks (id, seq, kind, key, input, priority, max_attempts, timeout_ms,
        created_at, after, retry_on_failure, backoff_ms, concurrency_key, concurrency_limit,
        retry_of, status, attempt, worker, started_at, finished_at, run_at, output, error,
        progress)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
        ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)
    ON CONFLICT (id) DO UPDATE SET
        status = excluded.status, attempt = excluded.attempt, worker = excluded.worker,
        started_at = excluded.started_at, finished_at = excluded.finished_at,
        run_at = excluded.run_at, output = excluded.output, error = excluded.error,
        progress = excluded.progress";

/// A later write: the state only.
pub(super) const UPDATE: &str = "
    UPDATE tasks SET status = ?2, attempt = ?3, worker = ?4, started_at = ?5,
        finished_at = ?6, run_at = ?7, output = ?8, error = ?9, progress = ?10
    WHERE id = ?1";

/// What changes in a task after it is submitted: the columns [`UPDATE`]
/// writes.
#[derive(Debug, Clone)]
pub struct TaskState {
    pub id: TaskId,
    pub status: TaskStatus,
    pub attempt: u32,
    pub worker: Option<WorkerId>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub run_at: Option<Timestamp>,
    pub output: Option<Json>,
    pub error: Option<Box<ErrorBody>>,
    pub progress: Option<Box<Progress>>,
}

impl TaskState {
    pub fn of(task: &Task) -> Self {
        Self {
            id: task.id,
            status: task.status,
            attempt: task.attempt,
            worker: task.worker.clone(),
            started_at: task.started_at,
            finished_at: task.finished_at,
            run_at: task.run_at,
            output: task.output.clone(),
            error: task.error.clone(),
            progress: task.progress.clone(),
        }
    }
}

/// Writes `task` whole (see [`INSERT`]).
pub(super) fn insert(stmt: &mut Statement<'_>, task: &Task, seq: u64) -> rusqlite::Result<()> {
    let after = (!task.after.is_empty()).then(|| {
        task.after
            .iter()
            .flat_map(|id| *id.0.as_bytes())
            .collect::<Vec<u8>>()
    });
    let retry_of = task.retry_of.map(|id| *id.0.as_bytes());
    let submission: [&dyn ToSql; 15] = [
        &task.id.0.as_bytes().as_slice(),
        &i64::try_from(seq).unwrap_or(i64::MAX),
        &task.kind,
        &task.key,
        &task.input.get(),
        &task.priority,
        &task.max_attempts,
        &task.timeout_ms.map(clamp),
        &task.created_at.millis(),
        &after,
        &task.retry_on_failure,
        &clamp(task.backoff_ms),
        &task.concurrency_key,
        &task.concurrency_limit,
        &retry_of.as_ref().map(|b| b.as_slice()),
    ];
    bind(stmt, 1, &submission)?;
    State::of(
        task.status,
        task.attempt,
        &task.worker,
        [task.started_at, task.finished_at, task.run_at],
        &task.output,
        task.error.as_deref(),
        task.progress.as_deref(),
    )?
    .bind(stmt, 1 + submission.len())?;
    stmt.raw_execute()?;
    Ok(())
}

/// Writes a task's state (see [`UPDATE`]); whether its row was there.
pub(super) fn update(stmt: &mut Statement<'_>, s: &TaskState) -> rusqlite::Result<bool> {
    bind(stmt, 1, &[&s.id.0.as_bytes().as_slice()])?;
    State::of(
        s.status,
        s.attempt,
        &s.worker,
        [s.started_at, s.finished_at, s.run_at],
        &s.output,
        s.error.as_deref(),
        s.progress.as_deref(),
    )?
    .bind(stmt, 2)?;
    Ok(stmt.raw_execute()? > 0)
}

/// Binds `values` to the parameters from `first` (1-based) on.
fn bind(stmt: &mut Statement<'_>, first: usize, values: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for (i, value) in values.iter().enumerate() {
        stmt.raw_bind_parameter(first + i, value)?;
    }
    Ok(())
}

/// The state columns as bound.
struct State<'a> {
    status: &'static str,
    attempt: u32,
    worker: Option<&'a str>,
    times: [Option<i64>; 3],
    output: Option<&'a str>,
    error: Option<String>,
    progress: Option<String>,
}

impl<'a> State<'a> {
    fn of(
        status: TaskStatus,
        attempt: u32,
        worker: &'a Option<WorkerId>,
        times: [Option<Timestamp>; 3],
        output: &'a Option<Json>,
        error: Option<&ErrorBody>,
        progress: Option<&Progress>,
    ) -> rusqlite::Result<Self> {
        Ok(Self {
            status: status.as_str(),
            attempt,
            worker: worker.as_ref().map(|w| &*w.0),
            times: times.map(|t| t.map(|t| t.millis())),
            output: output.as_ref().map(Json::get),
            error: json_of(error)?,
            progress: json_of(progress)?,
        })
    }

    /// Binds the state columns in [`UPDATE`]'s order from `first` on.
    fn bind(&self, stmt: &mut Statement<'_>, first: usize) -> rusqlite::Result<()> {
        let [started_at, finished_at, run_at] = &self.times;
        bind(
            stmt,
            first,
            &[
                &self.status,
                &self.attempt,
                &self.worker,
                started_at,
                finished_at,
                run_at,
                &self.output,
                &self.error,
                &self.progress,
            ],
        )
    }
}

fn json_of<T: serde::Serialize>(value: Option<&T>) -> rusqlite::Result<Option<String>> {
    value
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A row read with [`COLUMNS`]: its place in submission order and its task.
/// Task `id` as stored; `None` if the store does not hold it.
pub(super) fn read(conn: &Connection, id: TaskId) -> rusqlite::Result<Option<Task>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"))?;
    let mut rows = stmt.query(params![id.0.as_bytes().as_slice()])?;
    rows.next()?
        .map(|r| decode(r).map(|(_, task)| task))
        .transpose()
}

pub(super) fn decode(row: &Row<'_>) -> rusqlite::Result<(i64, Task)> {
    let seq: i64 = row.get(0)?;
    let task = Task {
        id: TaskId(uuid(row, 1)?),
        status: {
            let name: String = row.get(2)?;
            TaskStatus::from_name(&name).ok_or_else(|| bad(2, format!("unknown status {name}")))?
        },
        kind: row.get(3)?,
        key: row.get(KEY)?,
        input: json_text(row, 5)?.unwrap_or_else(Json::null),
        priority: row.get(6)?,
        max_attempts: row.get(7)?,
        timeout_ms: row.get::<_, Option<i64>>(8)?.map(unsigned),
        created_at: time(row, 9)?.ok_or_else(|| bad(9, "no creation time".into()))?,
        after: match row.get_ref(10)? {
            ValueRef::Null => Vec::new(),
            value => {
                let bytes = value.as_blob()?;
                if bytes.len() % 16 != 0 {
                    return Err(bad(10, "ids of 16 bytes expected".into()));
                }
                bytes
                    .chunks_exact(16)
                    .map(|c| TaskId(uuid::Uuid::from_slice(c).unwrap_or_default()))
                    .collect()
            }
        },
        retry_on_failure: row.get(11)?,
        backoff_ms: unsigned(row.get(12)?),
        concurrency_key: row.get(13)?,
        concurrency_limit: row.get(14)?,
        retry_of: match row.get_ref(15)? {
            ValueRef::Null => None,
            _ => Some(TaskId(uuid(row, 15)?)),
        },
        attempt: row.get(16)?,
        worker: row.get::<_, Option<String>>(17)?.map(WorkerId::from),
        started_at: time(row, 18)?,
        finished_at: time(row, 19)?,
        run_at: time(row, 20)?,
        output: json_text(row, 21)?,
        error: json_value(row, 22)?,
        progress: json_value(row, 23)?,
    };
    Ok((seq, task))
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

fn bad(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Blob, message.into())
}

pub(super) fn uuid(row: &Row<'_>, column: usize) -> rusqlite::Result<uuid::Uuid> {
    let bytes = row.get_ref(column)?.as_blob()?;
    uuid::Uuid::from_slice(bytes).map_err(|e| bad(column, e.to_string()))
}

fn time(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Timestamp>> {
    row.get::<_, Option<i64>>(column)?
        .map(|ms| Timestamp::from_millis(ms).ok_or_else(|| bad(column, format!("time {ms}"))))
        .transpose()
}

fn json_text(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<Json>> {
    row.get::<_, Option<String>>(column)?
        .map(|text| {
            Json::from_text(text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
            })
        })
        .transpose()
}

fn json_value<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    column: usize,
) -> rusqlite::Result<Option<Box<T>>> {
    match row.get_ref(column)? {
        ValueRef::Null => Ok(None),
        value => serde_json::from_slice(value.as_bytes()?)
            .map(Some)
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
            }),
    }
}

#[cfg(test)]
mod tests {
    use app::{ErrorCode, TaskSpec};
    use serde_json::json;

    use crate::store::{Store, Write, tests::reopen};

    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn id(n: u128) -> TaskId {
        uuid::Uuid::from_u128(n).into()
    }

    /// A task with every field set, times in whole milliseconds (as the
    /// wire carries them).
    fn full() -> Task {
        let spec = TaskSpec {
            priority: -3,
            timeout_ms: Some(1500),
            max_attempts: 4,
            key: Some("report:7".into()),
            retry_on_failure: true,
            backoff_ms: 250,
            concurrency_key: Some("tenant:1".into()),
            concurrency_limit: 2,
            ..TaskSpec::new("echo", json!({"text": "héllo", "n": [1, 2.5, null]}))
        };
        let mut task = Task::new(id(1), spec, at(1_700_000_000_123));
        task.after = vec![id(2), id(3)];
        task.retry_of = Some(id(4));
        task.run_at = Some(at(1_700_000_001_000));
        task.status = TaskStatus::Running;
        task.attempt = 2;
        task.worker = Some(WorkerId::from("remote-7".to_owned()));
        task.started_at = Some(at(1_700_000_002_000));
        task.progress = Some(Box::new(Progress {
            done: 3,
            total: 9,
            message: Some("a third".into()),
        }));
        task
    }

    #[tokio::test]
    async fn a_task_is_inserted_whole_then_only_its_state_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let mut task = full();
        let bare = Task::new(id(9), TaskSpec::new("sleep", json!(null)), at(5));
        store
            .commit(vec![
                Write::task(&task, 7, false),
                Write::task(&bare, 8, false),
            ])
            .await
            .unwrap();
        assert_eq!(store.read(task.id).await.unwrap(), Some(task.clone()));
        assert_eq!(store.read(bare.id).await.unwrap(), Some(bare.clone()));

        task.status = TaskStatus::Failed;
        task.finished_at = Some(at(1_700_000_003_000));
        task.output = Some(json!({"partial": true}).into());
        task.error = Some(Box::new(ErrorBody::new(ErrorCode::TaskFailed, "boom")));
        task.progress = None;
        // A state whose row is not there (its insert failed) is no row.
        let mut lost = bare.clone();
        lost.id = id(10);
        store
            .commit(vec![
                Write::task(&task, 7, true),
                Write::task(&lost, 9, true),
            ])
            .await
            .unwrap();
        assert_eq!(store.read(task.id).await.unwrap(), Some(task.clone()));
        assert_eq!(store.read(lost.id).await.unwrap(), None);

        // Written whole again (after a failed commit), only the state
        // changes: an insert never moves a task in line.
        task.attempt = 3;
        store
            .commit(vec![Write::task(&task, 99, false)])
            .await
            .unwrap();
        drop(store);
        let (_, recovered) = reopen(dir.path());
        let got: Vec<(u64, &Task)> = recovered.iter().map(|t| (t.seq, &t.task)).collect();
        assert_eq!(got, vec![(7, &task), (8, &bare)]);
    }
}
