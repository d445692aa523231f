//! Event names and rooms. No event name is spelled anywhere else.

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
/// Create or replace a recurring schedule (client → server, v1.1).
pub const SCHEDULE: &str = "schedule";
/// List the schedules (client → server, v1.1).
pub const SCHEDULES: &str = "schedules";
/// Delete a schedule (client → server, v1.1).
pub const UNSCHEDULE: &str = "unschedule";
/// Run a failed, cancelled or timed-out task again as a new task
/// (client → server, v1.1).
pub const RETRY: &str = "retry";
/// One page of every client's tasks, newest first (client → server, v1.1).
pub const LIST: &str = "list";
/// Join the dashboard room (client → server).
pub const DASHBOARD: &str = "dashboard";
/// Task went to `scheduled`, `waiting`, `queued` or `running` (server → room).
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
