//! The row of schema versions 2 and 3: the task in columns (integers and
//! times as SQLite integers, ids as 16-byte blobs, `after` as their
//! concatenation, input and output as their JSON text, `error` and
//! `progress` as JSON). Read once, when such a database is upgraded.

use app::{Json, Task, TaskId, TaskStatus, Timestamp, WorkerId};
use rusqlite::Row;
use rusqlite::types::{Type, ValueRef};

/// Every column, in the order [`decode`] reads them.
pub(super) const COLUMNS: &str = "seq, id, status, kind, key, input, priority, max_attempts, \
    timeout_ms, created_at, after, retry_on_failure, backoff_ms, concurrency_key, \
    concurrency_limit, retry_of, attempt, worker, started_at, finished_at, run_at, output, \
    error, progress";

/// Where [`decode`] finds `key`.
const KEY: usize = 4;

/// The table, as created by schema version 2.
#[cfg(test)]
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

/// Writes `task` as versions 2 and 3 did, for upgrade tests.
#[cfg(test)]
pub(super) fn write(conn: &rusqlite::Connection, task: &Task, seq: i64) -> rusqlite::Result<()> {
    let id = |id: &TaskId| id.0.as_bytes().to_vec();
    conn.execute(
        &format!(
            "INSERT INTO tasks ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
             ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
        ),
        rusqlite::params![
            seq,
            id(&task.id),
            task.status.as_str(),
            task.kind,
            task.key,
            task.input.get(),
            task.priority,
            task.max_attempts,
            task.timeout_ms.map(|t| t as i64),
            task.created_at.millis(),
            (!task.after.is_empty()).then(|| task.after.iter().flat_map(id).collect::<Vec<u8>>()),
            task.retry_on_failure,
            task.backoff_ms as i64,
            task.concurrency_key,
            task.concurrency_limit,
            task.retry_of.as_ref().map(id),
            task.attempt,
            task.worker.as_ref().map(|w| w.0.to_string()),
            task.started_at.map(|t| t.millis()),
            task.finished_at.map(|t| t.millis()),
            task.run_at.map(|t| t.millis()),
            task.output.as_ref().map(Json::get),
            task.error
                .as_ref()
                .map(|e| serde_json::to_string(e).unwrap()),
            task.progress
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap()),
        ],
    )?;
    Ok(())
}
