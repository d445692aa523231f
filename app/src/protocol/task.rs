//! The task object and its lifecycle.

use super::*;

/// Where a task is in its lifecycle:
/// `scheduled | waiting → queued → running → succeeded | failed | cancelled | timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its `run_at` (a delay, or a retry's backoff).
    Scheduled,
    /// Waiting for the tasks it names in `after` to succeed.
    Waiting,
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
        !matches!(
            self,
            Self::Scheduled | Self::Waiting | Self::Queued | Self::Running
        )
    }

    /// Not yet in the run queue: `scheduled` or `waiting`.
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Scheduled | Self::Waiting)
    }

    /// Every status, in lifecycle order.
    pub const ALL: [Self; 8] = [
        Self::Scheduled,
        Self::Waiting,
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];

    /// The status named `name` on the wire, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Waiting => "waiting",
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
    pub input: Json,
    pub priority: i32,
    pub status: TaskStatus,
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_ms: Option<u64>,
    /// Boxed, as is `error`: most tasks never have one, and a queued task
    /// should cost little memory.
    pub progress: Option<Box<Progress>>,
    pub output: Option<Json>,
    pub error: Option<Box<ErrorBody>>,
    pub worker: Option<WorkerId>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// When it may run from (v1.1): as submitted (`run_at`, `delay_ms`)
    /// or computed (a retry's backoff); kept after it came due.
    #[serde(default)]
    pub run_at: Option<Timestamp>,
    /// Idempotency key (v1.1).
    #[serde(default)]
    pub key: Option<String>,
    /// Tasks that must succeed before this one runs (v1.1).
    #[serde(default)]
    pub after: Vec<TaskId>,
    /// Whether `task_failed` and `timed_out` attempts are retried (v1.1).
    #[serde(default)]
    pub retry_on_failure: bool,
    /// First retry's delay; doubles each retry (v1.1).
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Tasks sharing it run at most `concurrency_limit` at once (v1.1).
    #[serde(default)]
    pub concurrency_key: Option<String>,
    #[serde(default = "default_concurrency_limit")]
    pub concurrency_limit: u32,
    /// The task this one re-runs (`retry`), if any (v1.1).
    #[serde(default)]
    pub retry_of: Option<TaskId>,
}

fn default_backoff_ms() -> u64 {
    DEFAULT_BACKOFF_MS
}

fn default_concurrency_limit() -> u32 {
    1
}

impl Task {
    /// A new queued task made from a validated submission whose `after`
    /// names tasks by id (see [`TaskSpec::resolve_after`]): `run_at` is
    /// computed from `delay_ms` and `created_at`. The scheduler decides
    /// whether it starts `scheduled`, `waiting` or `queued`.
    pub fn new(id: TaskId, spec: TaskSpec, created_at: Timestamp) -> Self {
        let run_at = match (spec.run_at, spec.delay_ms) {
            (Some(at), _) => Some(at),
            (None, Some(ms)) => Some(created_at.plus_millis(ms)),
            (None, None) => None,
        };
        let after = spec
            .after
            .iter()
            .filter_map(|a| match a {
                After::Id(id) => Some(*id),
                After::Index(_) => None,
            })
            .collect();
        Self {
            id,
            kind: spec.kind,
            input: Json::from_value(&spec.input),
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
            run_at,
            key: spec.key,
            after,
            retry_on_failure: spec.retry_on_failure,
            backoff_ms: spec.backoff_ms,
            concurrency_key: spec.concurrency_key,
            concurrency_limit: spec.concurrency_limit,
            retry_of: None,
        }
    }

    /// The submission that re-creates this task (`retry`, schedules).
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            kind: self.kind.clone(),
            input: self.input.to_value(),
            priority: self.priority,
            timeout_ms: self.timeout_ms,
            max_attempts: self.max_attempts,
            delay_ms: None,
            run_at: None,
            key: None,
            after: Vec::new(),
            retry_on_failure: self.retry_on_failure,
            backoff_ms: self.backoff_ms,
            concurrency_key: self.concurrency_key.clone(),
            concurrency_limit: self.concurrency_limit,
        }
    }
}
