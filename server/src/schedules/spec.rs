//! A schedule as a client sends it (`schedule`, `PUT /schedules/{name}`),
//! validated at the edge, and [`When`]: its cron pattern in its time zone,
//! which says when it fires.

use std::str::FromStr as _;

use app::{ErrorBody, Field, TaskSpec, Timestamp, valid_schedule_name};
use chrono::Utc;
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde_json::Value;

/// Time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Longest cron pattern accepted, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// Fields of `task` a schedule may not set: each firing sets its own `key`
/// (`schedule:<name>:<fire time>`), and a time or a dependency fixed once
/// would be the same for every firing.
const FORBIDDEN_TASK_FIELDS: [&str; 3] = ["key", "after", "run_at"];

/// A validated schedule: what `schedule` carries, its cron parsed.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    /// The pattern as sent (trimmed).
    pub cron: String,
    pub timezone: String,
    pub when: When,
    /// The task each firing submits, its envelope checked (its kind's own
    /// rules are checked by whoever knows the kinds).
    pub task: TaskSpec,
    pub paused: bool,
}

impl ScheduleSpec {
    /// Validates `{name, cron, timezone?, task, paused?}`. Every refusal
    /// is `invalid_payload` with the field it is about.
    pub fn parse(raw: Value) -> Result<Self, ErrorBody> {
        let Value::Object(mut obj) = raw else {
            return Err(ErrorBody::invalid("a schedule must be a JSON object"));
        };
        let name = match obj.remove("name") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(invalid("name", "name must be a string")),
            None => return Err(invalid("name", "missing field name")),
        };
        check_name(&name)?;
        let cron = match obj.remove("cron") {
            Some(Value::String(cron)) => cron.trim().to_owned(),
            Some(_) => return Err(invalid("cron", "cron must be a string")),
            None => return Err(invalid("cron", "missing field cron")),
        };
        let timezone = match obj.remove("timezone") {
            None | Some(Value::Null) => DEFAULT_TIMEZONE.to_owned(),
            Some(Value::String(tz)) => tz,
            Some(_) => {
                return Err(invalid(
                    "timezone",
                    "timezone must be an IANA time zone name such as Europe/Paris",
                ));
            }
        };
        let when = When::parse(&cron, &timezone)?;
        if when.next_after(Timestamp::now()).is_none() {
            return Err(invalid(
                "cron",
                format!("cron {:?} never fires", shorten(&cron)),
            ));
        }
        let paused = match obj.remove("paused") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(paused)) => paused,
            Some(_) => return Err(invalid("paused", "paused must be true or false")),
        };
        let task = match obj.remove("task") {
            Some(task @ Value::Object(_)) => parse_task(task)?,
            Some(_) => {
                return Err(invalid(
                    "task",
                    "task must be a task object {kind, input, ...}",
                ));
            }
            None => return Err(invalid("task", "missing field task")),
        };
        Ok(Self {
            name,
            cron,
            timezone,
            when,
            task,
            paused,
        })
    }

    /// Validates the body of `PUT /schedules/{name}`: a schedule without
    /// its name, which the path gives. A `name` in the body must be that one.
    pub fn parse_named(name: &str, raw: Value) -> Result<Self, ErrorBody> {
        let Value::Object(mut obj) = raw else {
            return Err(ErrorBody::invalid("a schedule must be a JSON object"));
        };
        match obj.get("name") {
            None | Some(Value::Null) => {}
            Some(Value::String(n)) if n == name => {}
            Some(_) => {
                return Err(invalid(
                    "name",
                    "the body's name differs from the path's; leave it out",
                ));
            }
        }
        obj.insert("name".into(), Value::String(name.to_owned()));
        Self::parse(Value::Object(obj))
    }
}

/// `invalid_payload` unless `name` is 1..=128 of `[A-Za-z0-9_.-]`.
pub fn check_name(name: &str) -> Result<(), ErrorBody> {
    if valid_schedule_name(name) {
        return Ok(());
    }
    Err(invalid(
        "name",
        format!(
            "name must be 1 to {} characters of A-Z, a-z, 0-9, _, . and -",
            app::MAX_SCHEDULE_NAME
        ),
    ))
}

/// The schedule's `task`: a submission without `key`, `after` or `run_at`.
fn parse_task(raw: Value) -> Result<TaskSpec, ErrorBody> {
    if let Value::Object(obj) = &raw
        && let Some(field) = FORBIDDEN_TASK_FIELDS
            .into_iter()
            .find(|f| obj.get(*f).is_some_and(|v| !v.is_null()))
    {
        return Err(invalid(
            &format!("task.{field}"),
            format!(
                "task.{field} cannot be set in a schedule{}",
                if field == "key" {
                    ": each firing's key is schedule:<name>:<fire time>"
                } else {
                    ""
                }
            ),
        ));
    }
    TaskSpec::parse(raw).map_err(in_task)
}

/// A refusal of the schedule's task, as the schedule's: `invalid_payload`
/// (an unknown kind too: the schedule is what is refused), the message
/// and the field saying it is about the task (`task: ...`,
/// `task.input.limit`).
pub fn in_task(e: ErrorBody) -> ErrorBody {
    let field = e.field.as_ref().map_or_else(
        || Field::from_name("task"),
        |f| Field::from_name(&format!("task.{f}")),
    );
    ErrorBody::invalid(format!("task: {}", e.message)).with_field(field)
}

/// `invalid_payload` about the schedule's field `name`.
fn invalid(name: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody::invalid(message).with_field(Field::from_name(name))
}

/// When a schedule fires: a cron pattern evaluated on the wall clock of a
/// time zone. croner does the calendar work, daylight saving included: a
/// time that a spring-forward gap skips fires at the first instant after
/// the gap, and a time that a fall-back overlap repeats fires once, on its
/// first pass.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    cron: Cron,
    tz: Tz,
}

impl When {
    /// Parses `cron` (5 fields, or 6 with a leading seconds field) in the
    /// IANA zone `timezone`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Self, ErrorBody> {
        let tz = Tz::from_str(timezone).map_err(|_| {
            invalid(
                "timezone",
                format!(
                    "unknown time zone {:?}: use an IANA name such as UTC or Europe/Paris",
                    shorten(timezone)
                ),
            )
        })?;
        let fields = cron.split_whitespace().count();
        if cron.len() > MAX_CRON_LEN || !(5..=6).contains(&fields) {
            return Err(invalid(
                "cron",
                format!(
                    "cron must have 5 fields (minute hour day-of-month month day-of-week) \
                     or 6 with a leading seconds field; got {fields} in {:?}",
                    shorten(cron)
                ),
            ));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| invalid("cron", format!("bad cron {:?}: {e}", shorten(cron))))?;
        Ok(Self { cron: parsed, tz })
    }

    /// The first firing strictly after `t`, if there is one.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut from = t.0.with_timezone(&self.tz);
        // Occurrences are whole seconds and `t` may have a fraction of
        // one: never answer a time that is not after `t`.
        for _ in 0..2 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            if next.with_timezone(&Utc) > t.0 {
                return Some(Timestamp(next.with_timezone(&Utc)));
            }
            from = next;
        }
        None
    }

    /// The last firing at or before `t`, if there is one.
    pub fn latest_until(&self, t: Timestamp) -> Option<Timestamp> {
        let mut from = t.0.with_timezone(&self.tz);
        let mut inclusive = true;
        for _ in 0..2 {
            let prev = self.cron.find_previous_occurrence(&from, inclusive).ok()?;
            if prev.with_timezone(&Utc) <= t.0 {
                return Some(Timestamp(prev.with_timezone(&Utc)));
            }
            from = prev;
            inclusive = false;
        }
        None
    }
}

/// At most 64 characters of a client's text, for a message.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}
