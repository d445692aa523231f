//! The scheduler's settings and their defaults.

use std::time::Duration;

/// How the scheduler behaves; see `Settings` for the flags.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Most tasks queued at once; more is `queue_full`.
    pub queue_capacity: usize,
    /// Timeout of an attempt whose task has `timeout_ms: null`.
    pub default_timeout: Duration,
    /// Finished tasks kept readable (oldest dropped first).
    pub retain_finished: usize,
    /// Finished tasks older than this are dropped too.
    pub retain_age: Duration,
    /// A finished task keeps its idempotency key this long (kept that long
    /// whatever the other retention limits say).
    pub dedup_window: Duration,
    /// Without a store: the oldest finished tasks are dropped while their
    /// inputs, outputs and errors take more memory than this (estimated).
    pub retain_bytes: usize,
    /// How long a cancelled or timed-out task may take to stop before its
    /// worker process is killed and replaced.
    pub stop_grace: Duration,
    /// How often `stats` is pushed to the dashboard.
    pub stats_interval: Duration,
    /// Unfinished tasks one socket may have submitted.
    pub max_unfinished_per_socket: usize,
    /// Whether a submitting socket gets its tasks' pushes from the
    /// scheduler instead of through their rooms (see `ClientPort`). Only
    /// when rooms are this process's own: a room shared with other
    /// processes (Redis) is how their pushes reach the submitter.
    pub submitters_follow: bool,
    /// When commits made on the scheduler's own thread (small ones at light
    /// load) take longer than this on average (a moving average, so one
    /// slow sync does not count for much, and a stalled disk at once), the
    /// commits of the next second go to the store's writer thread, so that
    /// the event loop is not held up by the disk again and again.
    pub commit_here_slow: Duration,
}

impl SchedulerConfig {
    /// The defaults, which `taskwire serve`'s flags show and use too.
    pub const DEFAULT: Self = Self {
        queue_capacity: 100_000,
        default_timeout: Duration::from_secs(5 * 60),
        retain_finished: 100_000,
        retain_age: Duration::from_secs(7 * 24 * 3600),
        dedup_window: Duration::from_secs(24 * 3600),
        retain_bytes: 256 << 20,
        stop_grace: Duration::from_secs(2),
        stats_interval: Duration::from_millis(500),
        max_unfinished_per_socket: 10_000,
        submitters_follow: true,
        commit_here_slow: Duration::from_millis(2),
    };
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Most task slots reserved up front (a full queue plus the retained
/// tasks, up to this many); the table grows past it as needed.
pub(super) const PREALLOCATED_TASKS: usize = 1 << 20;
