//! Recurring schedules (v1.1): what `schedule`, `schedules` and the
//! `/schedules` routes carry.

use super::*;

/// Longest schedule name.
pub const MAX_SCHEDULE_NAME: usize = 128;

/// A recurring schedule: every firing of `cron` in `timezone` submits one
/// task from `task`, with key `schedule:<name>:<fire time>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub name: String,
    /// 5 fields (minute hour day-of-month month day-of-week), or 6 with a
    /// leading seconds field.
    pub cron: String,
    /// An IANA time zone name; `UTC` by default.
    pub timezone: String,
    /// The task each firing submits, as a submission (`task` event payload).
    pub task: Value,
    pub paused: bool,
    pub next_run_at: Option<Timestamp>,
    pub last_run_at: Option<Timestamp>,
    pub last_task_id: Option<TaskId>,
}

/// The `schedules` push to the dashboard room, sent whenever a schedule
/// is created, replaced, deleted or fires: every schedule, sorted by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedulesEvent {
    pub schedules: Vec<Schedule>,
}

impl Schedule {
    /// The idempotency key of the firing at `at`:
    /// `schedule:<name>:<RFC 3339 UTC with milliseconds>`.
    pub fn firing_key(name: &str, at: Timestamp) -> String {
        format!("schedule:{name}:{at}")
    }
}

/// Whether `name` is a valid schedule name: 1..=128 of `[A-Za-z0-9_.-]`.
pub fn valid_schedule_name(name: &str) -> bool {
    (1..=MAX_SCHEDULE_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
