//! The Taskwire wire protocol (v1) as types: event names, ids, the task
//! object, submissions and their validation, acks and pushes.
//!
//! Everything a client or the server puts on the wire is defined here once,
//! so the server, the CLI and the browser can never disagree about a field.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Event names and rooms. No event name is spelled anywhere else.
pub mod events {
    /// Submit one task (client → server).
    pub const TASK: &str = "task";
    /// Submit a batch of tasks (client → server).
    pub const TASKS: &str = "tasks";
    /// Join a task's room and get its snapshot (client → server).
    pub const SUBSCRIBE: &str = "subscribe";
    /// Leave a task's room (client → server).
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// Cancel a task (client → server; server → remote worker).
    pub const CANCEL: &str = "cancel";
    /// Join the dashboard room (client → server).
    pub const DASHBOARD: &str = "dashboard";
    /// Task went to `queued` or `running` (server → room).
    pub const STATUS: &str = "status";
    /// Task progress (server → room; remote worker → server).
    pub const PROGRESS: &str = "progress";
    /// Task finished (server → room).
    pub const RESULT: &str = "result";
    /// Counters and workers (server → dashboard room).
    pub const STATS: &str = "stats";
    /// A task handed to a remote worker (server → worker).
    pub const JOB: &str = "job";
    /// A remote worker finished a task (worker → server).
    pub const DONE: &str = "done";
    /// A remote worker's task failed (worker → server).
    pub const FAIL: &str = "fail";

    /// Room of the live dashboard.
    pub const DASHBOARD_ROOM: &str = "dashboard";
    /// Namespace of clients.
    pub const CLIENT_NS: &str = "/";
    /// Namespace of remote workers.
    pub const WORKER_NS: &str = "/worker";
}

/// Largest batch accepted by the `tasks` event.
pub const MAX_BATCH: usize = 1000;
/// Attempts a task gets when the submission does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Upper bound of `max_attempts`.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;
/// Upper bound of `timeout_ms` (one day).
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Longest accepted kind name.
pub const MAX_KIND_LEN: usize = 64;

/// A task's id: a UUID v7 assigned by the server, so ids sort by creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl From<Uuid> for TaskId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl TaskId {
    /// The id as the room name its subscribers join.
    pub fn room(&self) -> String {
        self.to_string()
    }

    /// Reads the `task_id` field of a client payload.
    ///
    /// A missing or non-string id is `invalid_payload`; a string that is not
    /// a UUID is `not_found` (no task can have it).
    pub fn from_payload(payload: &Value) -> Result<Self, ErrorBody> {
        let raw = match payload.get("task_id") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(ErrorBody::invalid("task_id must be a string")),
            None => return Err(ErrorBody::invalid("missing field task_id")),
        };
        raw.parse()
            .map_err(|_| ErrorBody::new(ErrorCode::NotFound, format!("no task {raw}")))
    }
}

/// A worker's id: `local-N` for the server's own processes, the connect
/// name for remote ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub Arc<str>);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkerId {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for WorkerId {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

/// A point in time, on the wire as RFC 3339 UTC with milliseconds
/// (`2026-11-25T19:00:00.000Z`), the format `Date.toISOString()` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// Milliseconds since the Unix epoch.
    pub fn millis(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Self(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

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
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];

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

/// Every error code of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidPayload,
    UnknownKind,
    PayloadTooLarge,
    QueueFull,
    NotFound,
    AlreadyFinished,
    Unauthorized,
    RateLimited,
    WorkerLost,
    TaskFailed,
    TimedOut,
    Cancelled,
    Internal,
}

impl ErrorCode {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "invalid_payload",
            Self::UnknownKind => "unknown_kind",
            Self::PayloadTooLarge => "payload_too_large",
            Self::QueueFull => "queue_full",
            Self::NotFound => "not_found",
            Self::AlreadyFinished => "already_finished",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::WorkerLost => "worker_lost",
            Self::TaskFailed => "task_failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidPayload => 400,
            Self::UnknownKind => 422,
            Self::PayloadTooLarge => 413,
            Self::QueueFull => 503,
            Self::NotFound => 404,
            Self::AlreadyFinished => 409,
            Self::Unauthorized => 401,
            Self::RateLimited => 429,
            _ => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{code, message}`: an error ack's body and a failed task's `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for `invalid_payload`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPayload, message)
    }

    /// The submission field a refusal is about, read from its message:
    /// `kind` for `unknown_kind`; for `invalid_payload`, the field the
    /// message starts with (`priority must be …`, `primes: limit must be …`,
    /// `missing field kind`), or `input` when the input as a whole is wrong.
    /// Forms use it to show the error next to its field.
    pub fn field(&self) -> Option<&str> {
        match self.code {
            ErrorCode::UnknownKind => return Some("kind"),
            ErrorCode::InvalidPayload => {}
            _ => return None,
        }
        let (rest, in_input) = match self.message.split_once(": ") {
            Some((kind, rest)) if !kind.contains(' ') => (rest, true),
            _ => (self.message.as_str(), false),
        };
        let rest = rest.strip_prefix("missing field ").unwrap_or(rest);
        let word = rest.split(' ').next().filter(|w| !w.is_empty())?;
        let is_name = word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match (is_name, in_input) {
            (true, true) if rest.starts_with(&format!("{word} input ")) => Some("input"),
            (true, _) => Some(word),
            (false, true) => Some("input"),
            (false, false) => None,
        }
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

/// A validated submission: the payload of `task`, one item of `tasks`, or
/// the body of `POST /tasks`.
///
/// [`TaskSpec::parse`] checks the envelope; the kind's own input rules are
/// checked by whoever knows the kinds (see [`builtin`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub kind: String,
    pub input: Value,
    pub priority: i32,
    pub timeout_ms: Option<u64>,
    pub max_attempts: u32,
}

impl TaskSpec {
    /// Validates a raw submission. Unknown fields are ignored; a missing
    /// `input` is `null`.
    pub fn parse(raw: Value) -> Result<Self, ErrorBody> {
        let Value::Object(mut obj) = raw else {
            return Err(ErrorBody::invalid("a task must be a JSON object"));
        };
        let kind = match obj.remove("kind") {
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_KIND_LEN => k,
            Some(Value::String(_)) => {
                return Err(ErrorBody::invalid(format!(
                    "kind must be 1 to {MAX_KIND_LEN} bytes"
                )));
            }
            Some(_) => return Err(ErrorBody::invalid("kind must be a string")),
            None => return Err(ErrorBody::invalid("missing field kind")),
        };
        let input = obj.remove("input").unwrap_or(Value::Null);
        let priority = match optional(&obj, "priority") {
            None => 0,
            Some(v) => v
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| ErrorBody::invalid("priority must be a 32-bit integer"))?,
        };
        let timeout_ms = match optional(&obj, "timeout_ms") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|t| (1..=MAX_TIMEOUT_MS).contains(t))
                    .ok_or_else(|| {
                        ErrorBody::invalid(format!(
                            "timeout_ms must be an integer 1..={MAX_TIMEOUT_MS} or null"
                        ))
                    })?,
            ),
        };
        let max_attempts = match optional(&obj, "max_attempts") {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_ATTEMPTS_LIMIT)).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ErrorBody::invalid(format!(
                        "max_attempts must be an integer 1..={MAX_ATTEMPTS_LIMIT}"
                    ))
                })?,
        };
        Ok(Self {
            kind,
            input,
            priority,
            timeout_ms,
            max_attempts,
        })
    }

    /// A submission of `kind` with `input` and every option at its default.
    pub fn new(kind: impl Into<String>, input: Value) -> Self {
        Self {
            kind: kind.into(),
            input,
            priority: 0,
            timeout_ms: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The submission as the JSON a client sends.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("kind".into(), Value::String(self.kind.clone()));
        obj.insert("input".into(), self.input.clone());
        obj.insert("priority".into(), self.priority.into());
        if let Some(t) = self.timeout_ms {
            obj.insert("timeout_ms".into(), t.into());
        }
        obj.insert("max_attempts".into(), self.max_attempts.into());
        Value::Object(obj)
    }
}

/// A field that may be absent or `null`.
fn optional<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Parses the payload of `tasks`: `{tasks: [...]}`, at most [`MAX_BATCH`]
/// items. The whole batch is refused if any item is invalid.
pub fn parse_batch(raw: Value) -> Result<Vec<TaskSpec>, ErrorBody> {
    let Value::Object(mut obj) = raw else {
        return Err(ErrorBody::invalid("a batch must be {tasks: [...]}"));
    };
    let Some(Value::Array(items)) = obj.remove("tasks") else {
        return Err(ErrorBody::invalid("tasks must be an array"));
    };
    if items.len() > MAX_BATCH {
        return Err(ErrorBody::invalid(format!(
            "a batch holds at most {MAX_BATCH} tasks, got {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            TaskSpec::parse(item)
                .map_err(|e| ErrorBody::new(e.code, format!("tasks[{i}]: {}", e.message)))
        })
        .collect()
}

/// One worker's line on the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: WorkerId,
    /// `starting`, `idle`, `busy` or `stopping`.
    pub state: WorkerState,
    /// One of the tasks it runs now (the oldest), if any.
    pub current_task: Option<TaskId>,
    /// How many tasks it runs now.
    pub running: u32,
    /// How many tasks it ran to the end (any final status).
    pub tasks_done: u64,
    /// Whether it connected over `/worker` rather than being spawned.
    pub remote: bool,
    /// Its OS process id, for workers the server spawned.
    pub pid: Option<u32>,
}

/// State of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Starting,
    Idle,
    Busy,
    Stopping,
}

impl WorkerState {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Stopping => "stopping",
        }
    }
}

/// The `stats` push and the `dashboard` ack's `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    pub workers: Vec<WorkerInfo>,
    /// Tasks finished per second, averaged over the last few seconds.
    pub throughput_per_s: f64,
    pub at: Timestamp,
}

/// `status` push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub attempt: u32,
    pub worker: Option<WorkerId>,
}

/// `progress` push (and a remote worker's `progress` report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub task_id: TaskId,
    pub done: u64,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

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

    /// `{ok: true, task}`.
    pub fn task(task: Task) -> Self {
        Self {
            task: Some(task),
            ..Self::ok()
        }
    }

    /// `{ok: true, tasks}`.
    pub fn tasks(tasks: Vec<Task>) -> Self {
        Self {
            tasks: Some(tasks),
            ..Self::ok()
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

impl From<Result<Task, ErrorBody>> for Ack {
    fn from(r: Result<Task, ErrorBody>) -> Self {
        r.map_or_else(Self::error, Self::task)
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

/// The body of an HTTP error: `{error: {code, message}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpError {
    pub error: ErrorBody,
}

/// Longest remote worker name.
pub const MAX_WORKER_NAME_LEN: usize = 64;
/// Largest `concurrency` a remote worker may ask for.
pub const MAX_WORKER_CONCURRENCY: u32 = 1024;
/// Most kinds one remote worker may offer.
pub const MAX_WORKER_KINDS: usize = 64;

/// Whether `kind` is a name a remote worker may offer: 1 to
/// [`MAX_KIND_LEN`] characters of `[A-Za-z0-9_.:-]`. Kind names end up in
/// pages, logs and metrics labels, so nothing that could be markup or a
/// control character gets in.
pub fn is_safe_kind_name(kind: &str) -> bool {
    (1..=MAX_KIND_LEN).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The `auth` of a remote worker connecting to `/worker`:
/// `{token, name, kinds: [...], concurrency}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHello {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub name: String,
    pub kinds: Vec<String>,
    #[serde(default = "one")]
    pub concurrency: u32,
}

fn one() -> u32 {
    1
}

impl WorkerHello {
    /// Validates a worker's `auth` payload.
    pub fn parse(raw: Option<Value>) -> Result<Self, ErrorBody> {
        let raw =
            raw.ok_or_else(|| ErrorBody::invalid("auth {name, kinds, concurrency} is required"))?;
        let hello: Self = serde_json::from_value(raw)
            .map_err(|e| ErrorBody::invalid(format!("bad worker auth: {e}")))?;
        if hello.name.is_empty() || hello.name.len() > MAX_WORKER_NAME_LEN {
            return Err(ErrorBody::invalid(format!(
                "name must be 1 to {MAX_WORKER_NAME_LEN} bytes"
            )));
        }
        if hello.kinds.is_empty() {
            return Err(ErrorBody::invalid(
                "kinds must be a non-empty list of kind names",
            ));
        }
        if hello.kinds.len() > MAX_WORKER_KINDS {
            return Err(ErrorBody::invalid(format!(
                "a worker may offer at most {MAX_WORKER_KINDS} kinds (got {})",
                hello.kinds.len()
            )));
        }
        if let Some(bad) = hello.kinds.iter().find(|k| !is_safe_kind_name(k)) {
            // Debug-quoted: the refusal must not echo markup back verbatim.
            return Err(ErrorBody::invalid(format!(
                "kind {bad:?} is not 1 to {MAX_KIND_LEN} characters of [A-Za-z0-9_.:-]"
            )));
        }
        if !(1..=MAX_WORKER_CONCURRENCY).contains(&hello.concurrency) {
            return Err(ErrorBody::invalid(format!(
                "concurrency must be an integer 1..={MAX_WORKER_CONCURRENCY}"
            )));
        }
        Ok(hello)
    }
}

/// A remote worker's `done`: `{task_id, output}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerDone {
    pub task_id: TaskId,
    #[serde(default)]
    pub output: Value,
}

/// A remote worker's `fail`: `{task_id, error: {code, message}}`. The task
/// ends `failed` with code `task_failed` and this message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerFail {
    pub task_id: TaskId,
    pub error: WorkerFailure,
}

/// The error a remote worker reports; its `code` is free-form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerFailure {
    #[serde(default)]
    pub code: Option<String>,
    pub message: String,
}

/// Built-in kinds: their inputs, validation and outputs, shared by the
/// server (which runs them) and the browser (which builds their forms).
pub mod builtin {
    use super::*;

    pub const ECHO: &str = "echo";
    pub const SLEEP: &str = "sleep";
    pub const PRIMES: &str = "primes";
    pub const SHA256: &str = "sha256";
    pub const FAIL: &str = "fail";
    /// Every built-in kind.
    pub const KINDS: [&str; 5] = [ECHO, SLEEP, PRIMES, SHA256, FAIL];

    pub const MAX_SLEEP_MS: u64 = 3_600_000;
    pub const MAX_PRIMES_LIMIT: u64 = 10_000_000_000;
    pub const MAX_SHA256_ROUNDS: u64 = 10_000_000;

    /// `sleep` input.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SleepInput {
        pub ms: u64,
    }

    /// `primes` input.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PrimesInput {
        pub limit: u64,
    }

    /// `sha256` input.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Sha256Input {
        pub data: String,
        pub rounds: u64,
    }

    /// `fail` input.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FailInput {
        pub message: String,
    }

    fn object<'a>(kind: &str, input: &'a Value) -> Result<&'a Map<String, Value>, String> {
        input
            .as_object()
            .ok_or_else(|| format!("{kind} input must be a JSON object"))
    }

    fn integer(
        obj: &Map<String, Value>,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, String> {
        obj.get(key)
            .and_then(Value::as_u64)
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "{key} must be an integer {}..={}",
                    range.start(),
                    range.end()
                )
            })
    }

    fn string(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
        obj.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{key} must be a string"))
    }

    impl SleepInput {
        pub fn parse(input: &Value) -> Result<Self, String> {
            let obj = object(SLEEP, input)?;
            Ok(Self {
                ms: integer(obj, "ms", 0..=MAX_SLEEP_MS)?,
            })
        }
    }

    impl PrimesInput {
        pub fn parse(input: &Value) -> Result<Self, String> {
            let obj = object(PRIMES, input)?;
            Ok(Self {
                limit: integer(obj, "limit", 0..=MAX_PRIMES_LIMIT)?,
            })
        }
    }

    impl Sha256Input {
        pub fn parse(input: &Value) -> Result<Self, String> {
            let obj = object(SHA256, input)?;
            Ok(Self {
                data: string(obj, "data")?,
                rounds: integer(obj, "rounds", 1..=MAX_SHA256_ROUNDS)?,
            })
        }
    }

    impl FailInput {
        pub fn parse(input: &Value) -> Result<Self, String> {
            let obj = object(FAIL, input)?;
            Ok(Self {
                message: string(obj, "message")?,
            })
        }
    }

    /// Checks the input of a built-in kind; `None` when `kind` is not one.
    pub fn validate(kind: &str, input: &Value) -> Option<Result<(), String>> {
        Some(match kind {
            ECHO => Ok(()),
            SLEEP => SleepInput::parse(input).map(drop),
            PRIMES => PrimesInput::parse(input).map(drop),
            SHA256 => Sha256Input::parse(input).map(drop),
            FAIL => FailInput::parse(input).map(drop),
            _ => return None,
        })
    }

    /// What a form field of a built-in kind's input holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FieldType {
        /// A JSON integer within `min..=max`.
        Integer { min: u64, max: u64 },
        /// A JSON string.
        Text,
    }

    /// One field of a built-in kind's input, for forms (the web UI).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Field {
        /// The key in the input object.
        pub name: &'static str,
        pub ty: FieldType,
        /// What a new form starts with.
        pub default: &'static str,
        /// One line of help.
        pub hint: &'static str,
    }

    const SLEEP_FIELDS: [Field; 1] = [Field {
        name: "ms",
        ty: FieldType::Integer {
            min: 0,
            max: MAX_SLEEP_MS,
        },
        default: "2000",
        hint: "How long to sleep, in milliseconds.",
    }];
    const PRIMES_FIELDS: [Field; 1] = [Field {
        name: "limit",
        ty: FieldType::Integer {
            min: 0,
            max: MAX_PRIMES_LIMIT,
        },
        default: "1000000",
        hint: "Counts the primes up to this number.",
    }];
    const SHA256_FIELDS: [Field; 2] = [
        Field {
            name: "data",
            ty: FieldType::Text,
            default: "hello",
            hint: "Text hashed first, as UTF-8.",
        },
        Field {
            name: "rounds",
            ty: FieldType::Integer {
                min: 1,
                max: MAX_SHA256_ROUNDS,
            },
            default: "1",
            hint: "How many times SHA-256 is applied.",
        },
    ];
    const FAIL_FIELDS: [Field; 1] = [Field {
        name: "message",
        ty: FieldType::Text,
        default: "it failed on purpose",
        hint: "The error message the task fails with.",
    }];

    /// The input fields of a built-in kind, or `None` when its input is free
    /// JSON (`echo`) or the kind is not built in: edit those as raw JSON.
    pub fn fields(kind: &str) -> Option<&'static [Field]> {
        Some(match kind {
            SLEEP => &SLEEP_FIELDS,
            PRIMES => &PRIMES_FIELDS,
            SHA256 => &SHA256_FIELDS,
            FAIL => &FAIL_FIELDS,
            _ => return None,
        })
    }

    /// Builds an input object from the form's text for each of a kind's
    /// [`fields`]; a field's own problem is reported as `(name, message)`.
    pub fn input_from_fields(
        fields: &[Field],
        text_of: impl Fn(&Field) -> String,
    ) -> Result<Value, (&'static str, String)> {
        let mut obj = Map::new();
        for field in fields {
            let text = text_of(field);
            let value = match field.ty {
                FieldType::Text => Value::String(text),
                FieldType::Integer { min, max } => match text.trim().parse::<u64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        return Err((
                            field.name,
                            format!("{} must be an integer {min}..={max}", field.name),
                        ));
                    }
                },
            };
            obj.insert(field.name.to_owned(), value);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_name_their_field() {
        let field = |raw: Value, kind_check: bool| {
            let err = match TaskSpec::parse(raw) {
                Err(e) => e,
                Ok(spec) if kind_check => {
                    let msg = builtin::validate(&spec.kind, &spec.input)
                        .expect("built-in kind")
                        .expect_err("bad input");
                    ErrorBody::invalid(format!("{}: {msg}", spec.kind))
                }
                Ok(_) => panic!("accepted"),
            };
            err.field().map(str::to_owned)
        };
        let f = |s: &str| Some(s.to_owned());
        assert_eq!(field(json!({"input": 1}), false), f("kind"));
        assert_eq!(field(json!({"kind": 3}), false), f("kind"));
        assert_eq!(
            field(json!({"kind": "echo", "priority": "x"}), false),
            f("priority")
        );
        assert_eq!(
            field(json!({"kind": "echo", "timeout_ms": 0}), false),
            f("timeout_ms")
        );
        assert_eq!(
            field(json!({"kind": "echo", "max_attempts": 0}), false),
            f("max_attempts")
        );
        assert_eq!(
            field(json!({"kind": "primes", "input": {"limit": -1}}), true),
            f("limit")
        );
        assert_eq!(field(json!({"kind": "sleep", "input": {}}), true), f("ms"));
        assert_eq!(
            field(
                json!({"kind": "sha256", "input": {"data": "a", "rounds": 0}}),
                true
            ),
            f("rounds")
        );
        assert_eq!(
            field(json!({"kind": "fail", "input": []}), true),
            f("input")
        );
        let unknown = ErrorBody::new(ErrorCode::UnknownKind, "unknown kind \"zzz\"");
        assert_eq!(unknown.field(), Some("kind"));
        assert_eq!(ErrorBody::new(ErrorCode::QueueFull, "full").field(), None);
    }

    #[test]
    fn worker_state_names_are_the_wire_names() {
        use WorkerState::*;
        for state in [Starting, Idle, Busy, Stopping] {
            assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
        }
    }

    #[test]
    fn builtin_fields_make_valid_inputs() {
        for kind in builtin::KINDS {
            let Some(fields) = builtin::fields(kind) else {
                assert_eq!(kind, builtin::ECHO, "only echo is free JSON");
                continue;
            };
            let input = builtin::input_from_fields(fields, |f| f.default.to_owned()).unwrap();
            assert_eq!(
                builtin::validate(kind, &input),
                Some(Ok(())),
                "{kind}: {input}"
            );
        }
        let primes = builtin::fields(builtin::PRIMES).unwrap();
        assert_eq!(
            builtin::input_from_fields(primes, |_| "12x".into()),
            Err(("limit", "limit must be an integer 0..=10000000000".into()))
        );
    }

    #[test]
    fn spec_defaults_and_fields() {
        let spec = TaskSpec::parse(json!({"kind": "echo", "input": {"b": 1, "a": 2}})).unwrap();
        assert_eq!(spec.kind, "echo");
        assert_eq!(spec.priority, 0);
        assert_eq!(spec.timeout_ms, None);
        assert_eq!(spec.max_attempts, DEFAULT_MAX_ATTEMPTS);
        // Key order survives (preserve_order), so echo returns the same text.
        assert_eq!(
            serde_json::to_string(&spec.input).unwrap(),
            r#"{"b":1,"a":2}"#
        );

        let spec = TaskSpec::parse(
            json!({"kind": "sleep", "input": {"ms": 5}, "priority": -3, "timeout_ms": 10, "max_attempts": 1}),
        )
        .unwrap();
        assert_eq!(
            (spec.priority, spec.timeout_ms, spec.max_attempts),
            (-3, Some(10), 1)
        );
        let spec =
            TaskSpec::parse(json!({"kind": "echo", "timeout_ms": null, "priority": null})).unwrap();
        assert_eq!((spec.input, spec.timeout_ms), (Value::Null, None));
    }

    #[test]
    fn spec_rejects_bad_envelopes() {
        for bad in [
            json!(null),
            json!("echo"),
            json!([1]),
            json!({}),
            json!({"kind": 1}),
            json!({"kind": ""}),
            json!({"kind": "x".repeat(MAX_KIND_LEN + 1)}),
            json!({"kind": "echo", "priority": "high"}),
            json!({"kind": "echo", "priority": 1.5}),
            json!({"kind": "echo", "priority": 1u64 << 40}),
            json!({"kind": "echo", "timeout_ms": 0}),
            json!({"kind": "echo", "timeout_ms": -5}),
            json!({"kind": "echo", "timeout_ms": MAX_TIMEOUT_MS + 1}),
            json!({"kind": "echo", "max_attempts": 0}),
            json!({"kind": "echo", "max_attempts": 101}),
        ] {
            let err = TaskSpec::parse(bad.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPayload, "{bad}");
        }
    }

    #[test]
    fn batch_limits() {
        let one = json!({"kind": "echo", "input": 1});
        assert_eq!(
            parse_batch(json!({"tasks": vec![one.clone(); MAX_BATCH]}))
                .unwrap()
                .len(),
            MAX_BATCH
        );
        assert!(parse_batch(json!({"tasks": vec![one.clone(); MAX_BATCH + 1]})).is_err());
        assert!(parse_batch(json!({"tasks": [one, {"kind": 5}]})).is_err());
        assert!(parse_batch(json!({"tasks": {}})).is_err());
        assert!(parse_batch(json!([])).is_err());
        assert_eq!(parse_batch(json!({"tasks": []})).unwrap().len(), 0);
    }

    #[test]
    fn builtin_inputs() {
        use builtin::*;
        assert_eq!(validate(ECHO, &json!([1, "x"])), Some(Ok(())));
        assert_eq!(validate("nope", &json!({})), None);
        assert!(validate(SLEEP, &json!({"ms": 0})).unwrap().is_ok());
        assert!(
            validate(SLEEP, &json!({"ms": MAX_SLEEP_MS}))
                .unwrap()
                .is_ok()
        );
        for bad in [
            json!({"ms": MAX_SLEEP_MS + 1}),
            json!({"ms": -1}),
            json!({"ms": 1.5}),
            json!({"ms": "1"}),
            json!({}),
            json!(5),
        ] {
            assert!(validate(SLEEP, &bad).unwrap().is_err(), "{bad}");
        }
        assert!(
            validate(PRIMES, &json!({"limit": MAX_PRIMES_LIMIT}))
                .unwrap()
                .is_ok()
        );
        assert!(
            validate(PRIMES, &json!({"limit": MAX_PRIMES_LIMIT + 1}))
                .unwrap()
                .is_err()
        );
        assert!(
            validate(SHA256, &json!({"data": "", "rounds": 1}))
                .unwrap()
                .is_ok()
        );
        assert!(
            validate(SHA256, &json!({"data": "a", "rounds": 0}))
                .unwrap()
                .is_err()
        );
        assert!(
            validate(SHA256, &json!({"data": 1, "rounds": 1}))
                .unwrap()
                .is_err()
        );
        assert!(validate(FAIL, &json!({"message": "boom"})).unwrap().is_ok());
        assert!(validate(FAIL, &json!({})).unwrap().is_err());
    }

    #[test]
    fn task_wire_shape() {
        let id: TaskId = "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40".parse().unwrap();
        let at = Timestamp(
            DateTime::parse_from_rfc3339("2026-11-25T19:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        let task = Task::new(id, TaskSpec::new("primes", json!({"limit": 10})), at);
        let text = serde_json::to_string(&task).unwrap();
        assert_eq!(
            text,
            r#"{"id":"0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40","kind":"primes","input":{"limit":10},"priority":0,"status":"queued","attempt":0,"max_attempts":3,"timeout_ms":null,"progress":null,"output":null,"error":null,"worker":null,"created_at":"2026-11-25T19:00:00.000Z","started_at":null,"finished_at":null}"#
        );
        let back: Task = serde_json::from_str(&text).unwrap();
        assert_eq!(back, task);
    }

    #[test]
    fn task_id_from_payload() {
        assert_eq!(
            TaskId::from_payload(&json!({"task_id": 5}))
                .unwrap_err()
                .code,
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            TaskId::from_payload(&json!({})).unwrap_err().code,
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            TaskId::from_payload(&json!({"task_id": "zz"}))
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        assert!(
            TaskId::from_payload(&json!({"task_id": "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40"}))
                .is_ok()
        );
    }

    #[test]
    fn acks() {
        assert_eq!(
            serde_json::to_value(Ack::ok()).unwrap(),
            json!({"ok": true})
        );
        assert_eq!(
            serde_json::to_value(Ack::error(ErrorBody::invalid("x"))).unwrap(),
            json!({"ok": false, "error": {"code": "invalid_payload", "message": "x"}})
        );
    }

    #[test]
    fn worker_kinds_are_safe_names_and_few() {
        let hello = |kinds: Value| WorkerHello::parse(Some(json!({"name": "w", "kinds": kinds})));
        let ok = [
            "echo",
            "a",
            "Report.v2",
            "ns:thumb-nail_3",
            &"k".repeat(MAX_KIND_LEN),
        ];
        for kind in ok {
            assert!(is_safe_kind_name(kind), "{kind}");
            assert!(hello(json!([kind])).is_ok(), "{kind}");
        }
        let long = "k".repeat(MAX_KIND_LEN + 1);
        let bad = [
            "",
            "</title><img src=x onerror=alert(1)>",
            "a b",
            "a\"b",
            "é",
            "tab\t",
            "new\nline",
            "a/b",
            "<",
            "&amp;",
            long.as_str(),
        ];
        for kind in bad {
            assert!(!is_safe_kind_name(kind), "{kind:?}");
            let err = hello(json!(["echo2", kind])).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPayload, "{kind:?}");
            assert!(err.message.starts_with("kind "), "{}", err.message);
        }
        let many: Vec<String> = (0..=MAX_WORKER_KINDS).map(|i| format!("k{i}")).collect();
        let err = hello(json!(many)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPayload);
        assert!(err.message.contains("at most 64 kinds"), "{}", err.message);
        assert!(hello(json!(many[..MAX_WORKER_KINDS])).is_ok());
        assert!(hello(json!([])).is_err());
    }
}
