//! Error codes, error bodies and the HTTP error shape.

use super::*;

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
    /// The server cannot reach its database or broker (cluster mode).
    Unavailable,
    /// A task named in `after` did not succeed (v1.1).
    DependencyFailed,
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
            Self::Unavailable => "unavailable",
            Self::DependencyFailed => "dependency_failed",
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
            Self::Unavailable => 503,
            _ => 500,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{code, message, field?}`: an error ack's body and a failed task's
/// `error`. `field` is only on the wire when a refusal is about one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// The part of the payload a refusal is about, so a form can show the
    /// error next to it without reading the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<Field>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Shorthand for `invalid_payload`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPayload, message)
    }

    /// The same error, about `field`.
    pub fn with_field(self, field: Field) -> Self {
        Self {
            field: Some(field),
            ..self
        }
    }

    /// The refusal of item `index` of a `tasks` batch: the message says
    /// which item (`tasks[3]: ...`), the field stays the item's own.
    pub fn in_batch_item(self, index: usize) -> Self {
        Self {
            message: format!("tasks[{index}]: {}", self.message),
            ..self
        }
    }
}

/// The part of a client's payload a refusal is about. On the wire it is a
/// string: a submission's own field (`kind`, `input`, `priority`,
/// `timeout_ms`, `max_attempts`), `tasks` of a batch, `task_id`, or
/// `input.<key>` for one key of the input a kind refused (`input.limit`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Kind,
    Input,
    Priority,
    TimeoutMs,
    MaxAttempts,
    Tasks,
    TaskId,
    /// One key of the task's `input`: `input.<key>`.
    InputKey(String),
    /// A name this version does not know (from a newer server), as sent.
    Other(String),
}

impl Field {
    /// The field named `name` on the wire; never fails, so a newer
    /// server's field names do not make its errors unreadable.
    pub fn from_name(name: &str) -> Self {
        match name {
            "kind" => Self::Kind,
            "input" => Self::Input,
            "priority" => Self::Priority,
            "timeout_ms" => Self::TimeoutMs,
            "max_attempts" => Self::MaxAttempts,
            "tasks" => Self::Tasks,
            "task_id" => Self::TaskId,
            _ => match name.strip_prefix("input.") {
                Some(key) => Self::InputKey(key.to_owned()),
                None => Self::Other(name.to_owned()),
            },
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kind => "kind",
            Self::Input => "input",
            Self::Priority => "priority",
            Self::TimeoutMs => "timeout_ms",
            Self::MaxAttempts => "max_attempts",
            Self::Tasks => "tasks",
            Self::TaskId => "task_id",
            Self::InputKey(key) => return write!(f, "input.{key}"),
            Self::Other(name) => name,
        })
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

/// Why a kind refused a task's input: the message (sent back after the
/// kind's name, `primes: limit must be ...`) and the input key it is
/// about, if one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    pub key: Option<String>,
    pub message: String,
}

impl InputError {
    /// A refusal of the input as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            key: None,
            message: message.into(),
        }
    }

    /// A refusal of the input's `key`.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// The `invalid_payload` a submission of `kind` with this input gets.
    pub fn into_refusal(self, kind: &str) -> ErrorBody {
        let field = self.key.map_or(Field::Input, Field::InputKey);
        ErrorBody::invalid(format!("{kind}: {}", self.message)).with_field(field)
    }
}

/// Lets a kind's check say `Err("input must be a string".into())`.
impl From<String> for InputError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for InputError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// The body of an HTTP error: `{error: {code, message, field?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpError {
    pub error: ErrorBody,
}
