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

/// `{ok: true, task}` borrowing its task, so the server acks without a copy.
#[derive(Debug, Serialize)]
pub struct TaskAck<'a> {
    pub ok: bool,
    pub task: &'a Task,
}

impl<'a> TaskAck<'a> {
    pub fn new(task: &'a Task) -> Self {
        Self { ok: true, task }
    }
}

/// `{ok: true, tasks}` borrowing its tasks.
#[derive(Debug, Serialize)]
pub struct TasksAck<'a> {
    pub ok: bool,
    pub tasks: Vec<&'a Task>,
}
