//! Server → client pushes: `status`, `progress`, `stats` and its workers.

use super::*;

/// One worker's line on the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: WorkerId,
    /// `starting`, `idle`, `busy` or `stopping`.
    pub state: WorkerState,
    /// One of the tasks it runs now (the oldest), if any.
    pub current_task: Option<TaskId>,
    /// How many tasks it runs now.
    pub running: u32,
    /// How many tasks it ran to the end (any final status).
    pub tasks_done: u64,
    /// Whether it connected over `/worker` rather than being spawned.
    pub remote: bool,
    /// Its OS process id, for workers the server spawned.
    pub pid: Option<u32>,
    /// The id of the node it runs on (see [`NodeSummary`]).
    #[serde(default)]
    pub node: String,
}

/// One server of the cluster (the only one, on a single server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub id: String,
    /// The `host:port` it listens on.
    pub addr: String,
    pub started_at: Timestamp,
    /// How many workers it has.
    pub workers: u32,
    /// How many tasks it runs now.
    pub running: u64,
}

/// State of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Starting,
    Idle,
    Busy,
    Stopping,
}

impl WorkerState {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Stopping => "stopping",
        }
    }
}

/// The `stats` push and the `dashboard` ack's `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Waiting for their `run_at` (v1.1).
    #[serde(default)]
    pub scheduled: u64,
    /// Waiting for their `after` tasks (v1.1).
    #[serde(default)]
    pub waiting: u64,
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    pub workers: Vec<WorkerInfo>,
    /// Every node of the cluster (one on a single server).
    #[serde(default)]
    pub nodes: Vec<NodeSummary>,
    /// Tasks finished per second, averaged over the last few seconds.
    pub throughput_per_s: f64,
    /// Per kind: paused or not, queue depth and latency (v1.1), sorted by
    /// kind.
    #[serde(default)]
    pub kinds: Vec<KindStats>,
    pub at: Timestamp,
}

/// One kind's line of `stats.kinds`: whether it is paused, how many of its
/// tasks are queued and running, and how long its tasks waited in the
/// queue (`queued` until `running`) and ran (`running` until final).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindStats {
    pub kind: String,
    pub paused: bool,
    pub queued: u64,
    pub running: u64,
    pub wait_ms: Latency,
    pub run_ms: Latency,
}

/// Percentiles of a latency, in milliseconds, over the tasks `count`
/// counts; `None` while there are none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// `status` push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub task_id: TaskId,
    pub status: TaskStatus,
    pub attempt: u32,
    pub worker: Option<WorkerId>,
}

/// `progress` push (and a remote worker's `progress` report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    pub task_id: TaskId,
    pub done: u64,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
