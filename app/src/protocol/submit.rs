//! Submissions: their limits and their validation at the edge.

use super::*;

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

/// A validated submission: the payload of `task`, one item of `tasks`, or
/// the body of `POST /tasks`.
///
/// [`TaskSpec::parse`] checks the envelope; the kind's own input rules are
/// checked by whoever knows the kinds (see [`builtin`]).
/// It serializes as the JSON a client sends (no `timeout_ms` when `None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskSpec {
    pub kind: String,
    pub input: Value,
    pub priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
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
                return Err(
                    ErrorBody::invalid(format!("kind must be 1 to {MAX_KIND_LEN} bytes"))
                        .with_field(Field::Kind),
                );
            }
            Some(_) => {
                return Err(ErrorBody::invalid("kind must be a string").with_field(Field::Kind));
            }
            None => return Err(ErrorBody::invalid("missing field kind").with_field(Field::Kind)),
        };
        let input = obj.remove("input").unwrap_or(Value::Null);
        let priority = match optional(&obj, "priority") {
            None => 0,
            Some(v) => v
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| {
                    ErrorBody::invalid("priority must be a 32-bit integer")
                        .with_field(Field::Priority)
                })?,
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
                        .with_field(Field::TimeoutMs)
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
                    .with_field(Field::MaxAttempts)
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
        // Cannot fail: every key is a string and `input` is a `Value` already.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The payload of `tasks`: `{tasks: [...]}`, each item a submission
/// ([`TaskSpec`] or its JSON).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Batch<'a, T> {
    pub tasks: &'a [T],
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
        return Err(ErrorBody::invalid("tasks must be an array").with_field(Field::Tasks));
    };
    if items.len() > MAX_BATCH {
        return Err(ErrorBody::invalid(format!(
            "a batch holds at most {MAX_BATCH} tasks, got {}",
            items.len()
        ))
        .with_field(Field::Tasks));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| TaskSpec::parse(item).map_err(|e| e.in_batch_item(i)))
        .collect()
}
