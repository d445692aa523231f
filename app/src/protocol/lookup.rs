//! Looking up and operating on tasks (v1.1): what `list` / `GET /tasks`,
//! `GET /tasks/{id}/attempts` and `/kinds` carry.

use super::*;

/// Page size of `list` when the query does not say.
pub const DEFAULT_LIST_LIMIT: u32 = 50;
/// Largest page `list` returns.
pub const MAX_LIST_LIMIT: u32 = 500;

/// How `key` filters a listing: exactly, or by prefix when the filter ends
/// in `*` (`report:42:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatch {
    Exact(String),
    Prefix(String),
}

impl KeyMatch {
    /// The filter as a client writes it: a trailing `*` makes a prefix.
    pub fn parse(filter: &str) -> Self {
        match filter.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(filter.to_owned()),
        }
    }

    /// Whether a task's key passes the filter.
    pub fn matches(&self, key: Option<&str>) -> bool {
        match (self, key) {
            (_, None) => false,
            (Self::Exact(want), Some(key)) => key == want,
            (Self::Prefix(prefix), Some(key)) => key.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for KeyMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(key) => f.write_str(key),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// Where a page of `list` starts: the tasks submitted before this point,
/// newest first. On the wire it is an opaque string (`next` of the page
/// before); inside it is a position in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub u64);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A validated `list` payload or `GET /tasks` query: every filter given
/// must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<TaskStatus>,
    pub kind: Option<String>,
    pub key: Option<KeyMatch>,
    /// 1..=[`MAX_LIST_LIMIT`].
    pub limit: u32,
    /// Only tasks submitted before this point; `None` starts at the newest.
    pub before: Option<Cursor>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            status: None,
            kind: None,
            key: None,
            limit: DEFAULT_LIST_LIMIT,
            before: None,
        }
    }
}

impl ListQuery {
    /// Validates a `list` payload, or a `GET /tasks` query turned into an
    /// object of strings. A missing, `null` or empty-string field is
    /// absent (`?status=&kind=` filters nothing), `limit` may be a number
    /// or its decimal string, and unknown fields are ignored. `null` or no
    /// payload at all lists the newest tasks.
    pub fn parse(raw: Value) -> Result<Self, ErrorBody> {
        let obj = match raw {
            Value::Object(obj) => obj,
            Value::Null => Map::new(),
            _ => return Err(ErrorBody::invalid("a list query must be a JSON object")),
        };
        let given = |name: &str| -> Result<Option<String>, ErrorBody> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) if name == "limit" => Ok(Some(n.to_string())),
                Some(_) => Err(ErrorBody::invalid(format!("{name} must be a string"))
                    .with_field(Field::from_name(name))),
            }
        };
        let status = given("status")?
            .map(|s| {
                serde_json::from_value::<TaskStatus>(Value::String(s.clone())).map_err(|_| {
                    ErrorBody::invalid(format!(
                        "status must be one of scheduled, waiting, queued, running, \
                         succeeded, failed, cancelled, timed_out (got {s:?})"
                    ))
                    .with_field(Field::from_name("status"))
                })
            })
            .transpose()?;
        let kind = given("kind")?;
        if kind.as_ref().is_some_and(|k| k.len() > MAX_KIND_LEN) {
            return Err(
                ErrorBody::invalid(format!("kind must be 1 to {MAX_KIND_LEN} bytes"))
                    .with_field(Field::Kind),
            );
        }
        let key = given("key")?;
        if key
            .as_ref()
            .is_some_and(|k| k.chars().count() > MAX_KEY_CHARS + 1)
        {
            return Err(ErrorBody::invalid(format!(
                "key must be at most {MAX_KEY_CHARS} characters"
            ))
            .with_field(Field::from_name("key")));
        }
        let limit = match given("limit")? {
            None => DEFAULT_LIST_LIMIT,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
                .ok_or_else(|| {
                    ErrorBody::invalid(format!("limit must be an integer 1..={MAX_LIST_LIMIT}"))
                        .with_field(Field::from_name("limit"))
                })?,
        };
        let before = given("before")?
            .map(|s| {
                s.parse::<Cursor>().map_err(|_| {
                    ErrorBody::invalid("before must be the next cursor of an earlier page")
                        .with_field(Field::from_name("before"))
                })
            })
            .transpose()?;
        Ok(Self {
            status,
            kind,
            key: key.as_deref().map(KeyMatch::parse),
            limit,
            before,
        })
    }

    /// Whether `task` passes every filter (the cursor is the caller's).
    pub fn matches(&self, task: &Task) -> bool {
        self.status.is_none_or(|s| s == task.status)
            && self.kind.as_ref().is_none_or(|k| *k == task.kind)
            && self
                .key
                .as_ref()
                .is_none_or(|k| k.matches(task.key.as_deref()))
    }
}

/// The answer of `list` (its ack) and the body of `GET /tasks`: one page,
/// newest first, and where the next one starts (`None` after the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage {
    pub ok: bool,
    pub tasks: Vec<Task>,
    pub next: Option<Cursor>,
}

impl ListPage {
    pub fn new(tasks: Vec<Task>, next: Option<Cursor>) -> Self {
        Self {
            ok: true,
            tasks,
            next,
        }
    }
}

/// How one attempt of a task ended, or that it still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Running,
    Succeeded,
    /// The handler failed (`task_failed`, or a kind's own error code).
    Failed,
    TimedOut,
    Cancelled,
    /// Its worker died or disconnected (`worker_lost`); the task went back
    /// to the queue unless this was its last attempt.
    WorkerLost,
}

/// One attempt of a task: who ran it, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    pub worker: Option<WorkerId>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub outcome: AttemptOutcome,
    pub error: Option<ErrorBody>,
}

/// The body of `GET /tasks/{id}/attempts`: one entry per attempt started,
/// oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempts {
    pub attempts: Vec<Attempt>,
}

/// One item of `GET /kinds` (and the body of `POST /kinds/{kind}/pause`
/// and `/resume`): a kind a submission may name, and whether it is paused
/// (its tasks stay `queued` until it is resumed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindInfo {
    pub kind: String,
    pub paused: bool,
}
