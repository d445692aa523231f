//! Acks: `{ok: true, ...}` or `{ok: false, error}`.

use super::*;

/// Every ack: `{ok: true, ...}` or `{ok: false, error}`. Fields that do not
/// apply are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// A submission's: whether its key named an existing task (`task`),
    /// or that for each item (`tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<Deduplicated>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<Schedule>>,
}

/// `deduplicated` of a submission's ack: one flag (`task`) or one per
/// item (`tasks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Deduplicated {
    One(bool),
    Each(Vec<bool>),
}

impl Ack {
    /// `{ok: true}`.
    pub fn ok() -> Self {
        Self {
            ok: true,
            task: None,
            tasks: None,
            stats: None,
            error: None,
            deduplicated: None,
            schedule: None,
            schedules: None,
        }
    }

    /// `{ok: true, stats}`.
    pub fn stats(stats: Stats) -> Self {
        Self {
            stats: Some(stats),
            ..Self::ok()
        }
    }

    /// `{ok: false, error}`.
    pub fn error(error: ErrorBody) -> Self {
        Self {
            ok: false,
            error: Some(error),
            ..Self::ok()
        }
    }

    /// The error of a failed ack, or the ack itself.
    pub fn into_result(self) -> Result<Self, ErrorBody> {
        if self.ok {
            return Ok(self);
        }
        Err(self
            .error
            .unwrap_or_else(|| ErrorBody::new(ErrorCode::Internal, "ack without error")))
    }
}

/// `{ok: true, task}` borrowing its task, so the server acks without a copy;
/// a submission's ack also says whether it was `deduplicated`.
#[derive(Debug, Serialize)]
pub struct TaskAck<'a> {
    pub ok: bool,
    pub task: &'a Task,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
}

impl<'a> TaskAck<'a> {
    pub fn new(task: &'a Task) -> Self {
        Self {
            ok: true,
            task,
            deduplicated: None,
        }
    }

    /// The ack of a `task` submission.
    pub fn submitted(task: &'a Task, deduplicated: bool) -> Self {
        Self {
            deduplicated: Some(deduplicated),
            ..Self::new(task)
        }
    }
}

/// `{ok: true, tasks, deduplicated}` borrowing its tasks: a `tasks`
/// submission's ack, with one `deduplicated` flag per item.
#[derive(Debug, Serialize)]
pub struct TasksAck<'a> {
    pub ok: bool,
    pub tasks: Vec<&'a Task>,
    pub deduplicated: &'a [bool],
}
