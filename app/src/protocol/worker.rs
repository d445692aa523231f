//! The `/worker` namespace: a remote worker's hello and reports.

use super::*;

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
    pub output: Json,
}

/// A remote worker's `fail`: `{task_id, error: {code, message}}`. The task
/// ends `failed` with code `task_failed` and this message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerFail {
    pub task_id: TaskId,
    pub error: WorkerFailure,
}

impl WorkerFail {
    /// A handler's own failure, as this crate's remote worker reports it:
    /// code `task_failed`.
    pub fn task_failed(task_id: TaskId, message: impl Into<String>) -> Self {
        Self {
            task_id,
            error: WorkerFailure {
                code: Some(ErrorCode::TaskFailed.as_str().to_owned()),
                message: message.into(),
            },
        }
    }
}

/// The error a remote worker reports; its `code` is free-form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerFailure {
    #[serde(default)]
    pub code: Option<String>,
    pub message: String,
}
