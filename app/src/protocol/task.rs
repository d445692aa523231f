//! The task object and its lifecycle.

use super::*;

/// Where a task is in its lifecycle:
/// `queued → running → succeeded | failed | cancelled | timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl TaskStatus {
    /// A final task never runs again and never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{done, total, message?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The task object, field for field as PROTOCOL.md shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub kind: String,
    pub input: Value,
    pub priority: i32,
    pub status: TaskStatus,
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_ms: Option<u64>,
    pub progress: Option<Progress>,
    pub output: Option<Value>,
    pub error: Option<ErrorBody>,
    pub worker: Option<WorkerId>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

impl Task {
    /// A new queued task made from a validated submission.
    pub fn new(id: TaskId, spec: TaskSpec, created_at: Timestamp) -> Self {
        Self {
            id,
            kind: spec.kind,
            input: spec.input,
            priority: spec.priority,
            status: TaskStatus::Queued,
            attempt: 0,
            max_attempts: spec.max_attempts,
            timeout_ms: spec.timeout_ms,
            progress: None,
            output: None,
            error: None,
            worker: None,
            created_at,
            started_at: None,
            finished_at: None,
        }
    }
}
