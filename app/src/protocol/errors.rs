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

/// The body of an HTTP error: `{error: {code, message}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpError {
    pub error: ErrorBody,
}
