//! Tasks to and from rows: the values a fenced write sets, and a task read
//! back from its body and the columns that changed.

use app::{ErrorBody, ErrorCode, Progress, Task, TaskId, TaskStatus, Timestamp, WorkerId};
use chrono::{DateTime, SubsecRound as _, Utc};
use serde::{Deserialize as _, Serialize};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::{DbError, Result};
use crate::cluster::Fenced;

/// One write of a commit as `json_to_recordset` reads it: the fence
/// (`attempt`) and the values the write sets.
#[derive(Serialize)]
pub(super) struct WriteRow<'a> {
    pub(super) id: TaskId,
    attempt: u32,
    next_attempt: u32,
    status: TaskStatus,
    progress: Option<&'a Progress>,
    output: Option<&'a app::Json>,
    error: Option<&'a ErrorBody>,
    worker: Option<&'a WorkerId>,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    /// Written only with status `scheduled` (a retry's backoff).
    run_at: Option<Timestamp>,
}

impl<'a> WriteRow<'a> {
    pub(super) fn of(write: &'a Fenced) -> Self {
        match write {
            Fenced::Put(task) => Self {
                id: task.id,
                attempt: task.attempt,
                next_attempt: task.attempt,
                status: task.status,
                progress: task.progress.as_deref(),
                output: task.output.as_ref(),
                error: task.error.as_deref(),
                worker: task.worker.as_ref(),
                started_at: task.started_at,
                finished_at: task.finished_at,
                // Sent only when it changes: the column keeps it otherwise
                // (and a submitted one, as JSON text, might not parse).
                run_at: task.run_at.filter(|_| task.status == TaskStatus::Scheduled),
            },
            Fenced::Release { id, attempt } => {
                Self::queued(*id, *attempt, attempt.saturating_sub(1))
            }
            Fenced::Requeue { id, attempt } => Self::queued(*id, *attempt, *attempt),
        }
    }

    /// Back in the queue, with nothing of the attempt it was in.
    fn queued(id: TaskId, attempt: u32, next_attempt: u32) -> Self {
        Self {
            id,
            attempt,
            next_attempt,
            status: TaskStatus::Queued,
            progress: None,
            output: None,
            error: None,
            worker: None,
            started_at: None,
            finished_at: None,
            run_at: None,
        }
    }
}

/// `value` as JSON text, bound as `$n::json`: a `jsonb` parameter would
/// lose the order of its keys.
pub(super) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(DbError::Encode)
}

pub(super) fn cancelled_error() -> ErrorBody {
    ErrorBody::new(ErrorCode::Cancelled, "cancelled by request")
}

/// A time as the database keeps it: to the millisecond, as on the wire.
pub(super) fn millis(at: Timestamp) -> DateTime<Utc> {
    at.0.trunc_subsecs(3)
}

pub(super) fn status(name: &str) -> Result<TaskStatus, sqlx::Error> {
    use serde::de::{IntoDeserializer as _, value};
    let name: value::StrDeserializer<'_, value::Error> = name.into_deserializer();
    TaskStatus::deserialize(name).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// Reads a task from a row holding `task_columns!`.
pub(super) fn task(row: &PgRow) -> Result<Task> {
    let Json(mut task) = row.try_get::<Json<Task>, _>("body")?;
    task.status = status(row.try_get("status")?)?;
    task.attempt = u32::try_from(row.try_get::<i32, _>("attempt")?)
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    task.progress = row.try_get::<Option<Json<_>>, _>("progress")?.map(|j| j.0);
    task.output = row.try_get::<Option<Json<_>>, _>("output")?.map(|j| j.0);
    task.error = row.try_get::<Option<Json<_>>, _>("error")?.map(|j| j.0);
    task.worker = row
        .try_get::<Option<String>, _>("worker")?
        .map(WorkerId::from);
    task.started_at = row
        .try_get::<Option<DateTime<Utc>>, _>("started_at")?
        .map(Timestamp);
    task.finished_at = row
        .try_get::<Option<DateTime<Utc>>, _>("finished_at")?
        .map(Timestamp);
    task.run_at = row
        .try_get::<Option<DateTime<Utc>>, _>("run_at")?
        .map(Timestamp);
    Ok(task)
}
