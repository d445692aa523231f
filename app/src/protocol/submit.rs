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
/// Upper bound of `delay_ms` (365 days).
pub const MAX_DELAY_MS: u64 = 31_536_000_000;
/// Longest `key` and `concurrency_key`, in characters.
pub const MAX_KEY_CHARS: usize = 256;
/// Most ids in `after`.
pub const MAX_AFTER: usize = 100;
/// Upper bound of `backoff_ms`, and of any retry's delay (one hour).
pub const MAX_BACKOFF_MS: u64 = 3_600_000;
/// First retry's delay when the submission does not say.
pub const DEFAULT_BACKOFF_MS: u64 = 1000;
/// Upper bound of `concurrency_limit`.
pub const MAX_CONCURRENCY_LIMIT: u32 = 10_000;

/// One entry of `after`: a task's id, or (in a `tasks` batch) `"#<i>"`,
/// the index of an earlier item of the same batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Id(TaskId),
    Index(usize),
}

impl fmt::Display for After {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Index(i) => write!(f, "#{i}"),
        }
    }
}

impl Serialize for After {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<After>,
    #[serde(skip_serializing_if = "is_false")]
    pub retry_on_failure: bool,
    #[serde(skip_serializing_if = "is_default_backoff")]
    pub backoff_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    #[serde(skip_serializing_if = "is_one")]
    pub concurrency_limit: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_default_backoff(ms: &u64) -> bool {
    *ms == DEFAULT_BACKOFF_MS
}

fn is_one(n: &u32) -> bool {
    *n == 1
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
        let delay_ms = match optional(&obj, "delay_ms") {
            None => None,
            Some(v) => Some(v.as_u64().filter(|d| *d <= MAX_DELAY_MS).ok_or_else(|| {
                invalid_field(
                    "delay_ms",
                    format!("delay_ms must be an integer 0..={MAX_DELAY_MS}"),
                )
            })?),
        };
        let run_at = match optional(&obj, "run_at") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| Timestamp(t.with_timezone(&Utc)))
                    .ok_or_else(|| {
                        invalid_field(
                            "run_at",
                            "run_at must be an ISO 8601 UTC time such as 2026-12-05T01:00:00.000Z",
                        )
                    })?,
            ),
        };
        if delay_ms.is_some() && run_at.is_some() {
            return Err(invalid_field("run_at", "give run_at or delay_ms, not both"));
        }
        let key = key_string(&obj, "key")?;
        let after = match optional(&obj, "after") {
            None => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_AFTER => items
                .iter()
                .map(parse_after)
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Array(_)) => {
                return Err(invalid_field(
                    "after",
                    format!("after names at most {MAX_AFTER} tasks"),
                ));
            }
            Some(_) => return Err(invalid_field("after", "after must be an array of task ids")),
        };
        let retry_on_failure = match optional(&obj, "retry_on_failure") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| {
                invalid_field("retry_on_failure", "retry_on_failure must be true or false")
            })?,
        };
        let backoff_ms = match optional(&obj, "backoff_ms") {
            None => DEFAULT_BACKOFF_MS,
            Some(v) => v.as_u64().filter(|b| *b <= MAX_BACKOFF_MS).ok_or_else(|| {
                invalid_field(
                    "backoff_ms",
                    format!("backoff_ms must be an integer 0..={MAX_BACKOFF_MS}"),
                )
            })?,
        };
        let concurrency_key = key_string(&obj, "concurrency_key")?;
        let concurrency_limit = match optional(&obj, "concurrency_limit") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(MAX_CONCURRENCY_LIMIT)).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    invalid_field(
                        "concurrency_limit",
                        format!("concurrency_limit must be an integer 1..={MAX_CONCURRENCY_LIMIT}"),
                    )
                })?,
        };
        Ok(Self {
            kind,
            input,
            priority,
            timeout_ms,
            max_attempts,
            delay_ms,
            run_at,
            key,
            after,
            retry_on_failure,
            backoff_ms,
            concurrency_key,
            concurrency_limit,
        })
    }

    /// Replaces `"#<i>"` entries of `after` by the ids of the batch's
    /// items (`ids[i]`); only earlier items may be named, so a batch
    /// cannot wait on itself in a cycle. Outside a batch `ids` is empty
    /// and any index is refused.
    pub fn resolve_after(&mut self, position: usize, ids: &[TaskId]) -> Result<(), ErrorBody> {
        for a in &mut self.after {
            if let After::Index(i) = *a {
                let id = ids.get(i).filter(|_| i < position).ok_or_else(|| {
                    invalid_field(
                        "after",
                        format!(
                            "after entry #{i} must name an earlier item of the same tasks batch"
                        ),
                    )
                })?;
                *a = After::Id(*id);
            }
        }
        Ok(())
    }

    /// A submission of `kind` with `input` and every option at its default.
    pub fn new(kind: impl Into<String>, input: Value) -> Self {
        Self {
            kind: kind.into(),
            input,
            priority: 0,
            timeout_ms: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            delay_ms: None,
            run_at: None,
            key: None,
            after: Vec::new(),
            retry_on_failure: false,
            backoff_ms: DEFAULT_BACKOFF_MS,
            concurrency_key: None,
            concurrency_limit: 1,
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

/// `invalid_payload` about the submission's field `name`.
fn invalid_field(name: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody::invalid(message).with_field(Field::from_name(name))
}

/// An optional string of 1..=[`MAX_KEY_CHARS`] characters.
fn key_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ErrorBody> {
    match optional(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_KEY_CHARS => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(invalid_field(
            name,
            format!("{name} must be a string of 1 to {MAX_KEY_CHARS} characters"),
        )),
    }
}

/// One entry of `after`: a task id, or `"#<i>"`.
fn parse_after(v: &Value) -> Result<After, ErrorBody> {
    let bad = || {
        invalid_field(
            "after",
            "after entries must be task ids (or \"#<index>\" in a batch)",
        )
    };
    let s = v.as_str().ok_or_else(bad)?;
    if let Some(index) = s.strip_prefix('#') {
        return index.parse().map(After::Index).map_err(|_| bad());
    }
    s.parse().map(After::Id).map_err(|_| {
        ErrorBody::new(ErrorCode::NotFound, format!("after names no task {s}"))
            .with_field(Field::from_name("after"))
    })
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
