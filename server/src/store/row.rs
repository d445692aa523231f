//! A task's row: its place in submission order (`seq`, the rowid), its id,
//! and two MessagePack blobs, the submission (written once, with the
//! task's first write; it never changes) and the state (rewritten at every
//! later write). The scheduler's table holds every stored task with its
//! `seq`, so every read and write finds a row by `seq`: new rows are
//! appended at the end of the table's b-tree and pruned from its start,
//! keys compare as integers, and no other index is kept up.
//!
//! The blobs are MessagePack arrays, fields by position (the structs
//! below); input and output are their JSON text as received, `error` its
//! JSON (rare). Changing a blob's layout is a schema version (see
//! `schema`).

use std::borrow::Cow;

use app::{ErrorBody, Json, Progress, Task, TaskId, TaskStatus, Timestamp, WorkerId};
use rusqlite::types::Type;
use rusqlite::{Connection, Row, Statement, params};

use super::Key;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every column, in the order [`decode`] reads them.
pub(super) const COLUMNS: &str = "seq, id, submission, state";

/// The table, as created by schema version 4.
pub(super) const TABLE: &str = "
    CREATE TABLE IF NOT EXISTS tasks (
        seq        INTEGER PRIMARY KEY,
        id         BLOB NOT NULL,
        submission BLOB NOT NULL,
        state      BLOB NOT NULL
    );";

/// A task's first write, the whole row; written again whole (its state
/// replaced) if a failed commit took the first one with it.
pub(super) const INSERT: &str = "
    INSERT INTO tasks (seq, id, submission, state) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (seq) DO UPDATE SET state = excluded.state";

/// A later write: the state only.
pub(super) const UPDATE: &str = "UPDATE tasks SET state = ?2 WHERE seq = ?1";

/// A row's removal.
pub(super) const DELETE: &str = "DELETE FROM tasks WHERE seq = ?1";

/// What changes in a task after it is submitted: what [`UPDATE`] writes.
#[derive(Debug, Clone)]
pub struct TaskState {
    /// The row's key.
    pub seq: u64,
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
    pub fn of(task: &Task, seq: u64) -> Self {
        Self {
            seq,
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

/// The `submission` blob: what a task was submitted as.
#[derive(Serialize, Deserialize)]
struct Submission<'a> {
    kind: &'a str,
    #[serde(borrow)]
    key: Option<&'a str>,
    input: &'a str,
    priority: i32,
    max_attempts: u32,
    timeout_ms: Option<u64>,
    created_at: i64,
    after: Vec<Uuid>,
    retry_on_failure: bool,
    backoff_ms: u64,
    #[serde(borrow)]
    concurrency_key: Option<&'a str>,
    concurrency_limit: u32,
    retry_of: Option<Uuid>,
}

/// The `state` blob.
#[derive(Serialize, Deserialize)]
struct State<'a> {
    status: &'a str,
    attempt: u32,
    #[serde(borrow)]
    worker: Option<&'a str>,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    run_at: Option<i64>,
    #[serde(borrow)]
    output: Option<&'a str>,
    /// Its JSON.
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    /// `done`, `total`, `message`.
    #[serde(borrow)]
    progress: Option<(u64, u64, Option<&'a str>)>,
}

impl<'a> State<'a> {
    fn of(
        status: TaskStatus,
        attempt: u32,
        worker: &'a Option<WorkerId>,
        times: [Option<Timestamp>; 3],
        output: &'a Option<Json>,
        error: Option<&ErrorBody>,
        progress: Option<&'a Progress>,
    ) -> rusqlite::Result<Self> {
        let [started_at, finished_at, run_at] = times.map(|t| t.map(|t| t.millis()));
        Ok(Self {
            status: status.as_str(),
            attempt,
            worker: worker.as_ref().map(|w| &*w.0),
            started_at,
            finished_at,
            run_at,
            output: output.as_ref().map(Json::get),
            error: error
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
                .map(Cow::Owned),
            progress: progress.map(|p| (p.done, p.total, p.message.as_deref())),
        })
    }
}

/// Writes `task` whole (see [`INSERT`]).
pub(super) fn insert(stmt: &mut Statement<'_>, task: &Task, seq: u64) -> rusqlite::Result<()> {
    let submission = Submission {
        kind: &task.kind,
        key: task.key.as_deref(),
        input: task.input.get(),
        priority: task.priority,
        max_attempts: task.max_attempts,
        timeout_ms: task.timeout_ms,
        created_at: task.created_at.millis(),
        after: task.after.iter().map(|id| id.0).collect(),
        retry_on_failure: task.retry_on_failure,
        backoff_ms: task.backoff_ms,
        concurrency_key: task.concurrency_key.as_deref(),
        concurrency_limit: task.concurrency_limit,
        retry_of: task.retry_of.map(|id| id.0),
    };
    let state = State::of(
        task.status,
        task.attempt,
        &task.worker,
        [task.started_at, task.finished_at, task.run_at],
        &task.output,
        task.error.as_deref(),
        task.progress.as_deref(),
    )?;
    stmt.raw_bind_parameter(1, key(seq))?;
    stmt.raw_bind_parameter(2, task.id.0.as_bytes().as_slice())?;
    stmt.raw_bind_parameter(3, encode(&submission)?)?;
    stmt.raw_bind_parameter(4, encode(&state)?)?;
    stmt.raw_execute()?;
    Ok(())
}

/// Writes a task's state (see [`UPDATE`]); whether its row was there.
pub(super) fn update(stmt: &mut Statement<'_>, s: &TaskState) -> rusqlite::Result<bool> {
    stmt.raw_bind_parameter(1, key(s.seq))?;
    let state = State::of(
        s.status,
        s.attempt,
        &s.worker,
        [s.started_at, s.finished_at, s.run_at],
        &s.output,
        s.error.as_deref(),
        s.progress.as_deref(),
    )?;
    stmt.raw_bind_parameter(2, encode(&state)?)?;
    Ok(stmt.raw_execute()? > 0)
}

/// `seq` as the row's key (SQLite's integers are signed).
pub(super) fn key(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn encode(value: &impl Serialize) -> rusqlite::Result<Vec<u8>> {
    // Room for a small task's blob: no regrowth while it is written.
    let mut out = Vec::with_capacity(128);
    rmp_serde::encode::write(&mut out, value)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    Ok(out)
}

/// The task stored under `key`; `None` if the store does not hold it.
pub(super) fn read(conn: &Connection, at: Key) -> rusqlite::Result<Option<Task>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tasks WHERE seq = ?1"))?;
    let mut rows = stmt.query(params![key(at.seq)])?;
    let task = rows.next()?.map(|r| decode(r).map(|(_, task)| task));
    // A row under that key holds that task, unless the task was pruned
    // (and its key is not reused): checked all the same.
    Ok(task.transpose()?.filter(|t| t.id == at.id))
}

/// A row read with [`COLUMNS`]: its place in submission order and its task.
pub(super) fn decode(row: &Row<'_>) -> rusqlite::Result<(u64, Task)> {
    let seq = u64::try_from(row.get::<_, i64>(0)?).unwrap_or_default();
    let id = TaskId(uuid(row, 1)?);
    let s: Submission<'_> = blob(row, 2)?;
    let state: State<'_> = blob(row, 3)?;
    let time = |column: usize, ms: i64| {
        Timestamp::from_millis(ms).ok_or_else(|| bad(column, format!("time {ms}")))
    };
    let times = |column, ms: Option<i64>| ms.map(|ms| time(column, ms)).transpose();
    let json = |column, text: &str| {
        Json::from_text(text.to_owned())
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Blob, Box::new(e)))
    };
    let task = Task {
        id,
        kind: s.kind.to_owned(),
        input: json(2, s.input)?,
        priority: s.priority,
        status: TaskStatus::from_name(state.status)
            .ok_or_else(|| bad(3, format!("unknown status {}", state.status)))?,
        attempt: state.attempt,
        max_attempts: s.max_attempts,
        timeout_ms: s.timeout_ms,
        progress: state.progress.map(|(done, total, message)| {
            Box::new(Progress {
                done,
                total,
                message: message.map(str::to_owned),
            })
        }),
        output: state.output.map(|text| json(3, text)).transpose()?,
        error: state
            .error
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(3, Type::Blob, Box::new(e))
                })
            })
            .transpose()?,
        worker: state.worker.map(|w| WorkerId::from(w.to_owned())),
        created_at: time(2, s.created_at)?,
        started_at: times(3, state.started_at)?,
        finished_at: times(3, state.finished_at)?,
        run_at: times(3, state.run_at)?,
        key: s.key.map(str::to_owned),
        after: s.after.into_iter().map(TaskId).collect(),
        retry_on_failure: s.retry_on_failure,
        backoff_ms: s.backoff_ms,
        concurrency_key: s.concurrency_key.map(str::to_owned),
        concurrency_limit: s.concurrency_limit,
        retry_of: s.retry_of.map(TaskId),
    };
    Ok((seq, task))
}

/// The id in `column` of a row read with [`COLUMNS`].
pub(super) fn uuid(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(column)?.as_blob()?;
    Uuid::from_slice(bytes).map_err(|e| bad(column, e.to_string()))
}

fn blob<'a, T: Deserialize<'a>>(row: &'a Row<'_>, column: usize) -> rusqlite::Result<T> {
    rmp_serde::from_slice(row.get_ref(column)?.as_blob()?)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Blob, Box::new(e)))
}

fn bad(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Blob, message.into())
}

#[cfg(test)]
pub(super) mod tests {
    use app::{ErrorCode, TaskSpec};
    use serde_json::json;

    use crate::store::{Key, Store, Write, tests::reopen};

    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn id(n: u128) -> TaskId {
        uuid::Uuid::from_u128(n).into()
    }

    /// A task with every field set, times in whole milliseconds (as the
    /// wire carries them).
    pub(in crate::store) fn full() -> Task {
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
        let key = |t: &Task, seq| Key { id: t.id, seq };
        store
            .commit(vec![
                Write::task(&task, 7, false),
                Write::task(&bare, 8, false),
            ])
            .await
            .unwrap();
        assert_eq!(store.read(key(&task, 7)).await.unwrap(), Some(task.clone()));
        assert_eq!(store.read(key(&bare, 8)).await.unwrap(), Some(bare.clone()));

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
        assert_eq!(store.read(key(&task, 7)).await.unwrap(), Some(task.clone()));
        assert_eq!(store.read(key(&lost, 9)).await.unwrap(), None);

        // Written whole again (after a failed commit, under the key it
        // had), only the state changes.
        task.attempt = 3;
        let mut changed = task.clone();
        changed.kind = "not written".into();
        store
            .commit(vec![Write::task(&changed, 7, false)])
            .await
            .unwrap();
        drop(store);
        let (_, recovered) = reopen(dir.path());
        let got: Vec<(u64, &Task)> = recovered.iter().map(|t| (t.seq, &t.task)).collect();
        assert_eq!(got, vec![(7, &task), (8, &bare)]);
    }
}
