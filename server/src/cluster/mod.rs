//! Cluster mode: many nodes, one queue. PostgreSQL holds every task and is
//! the source of truth ([`db`]); Redis carries the rooms' pushes between
//! nodes (the socketioxide adapter) and the nodes' own signals ([`bus`]).
//!
//! A node keeps in memory only the tasks it runs. It claims queued tasks
//! into its free slots (`FOR UPDATE SKIP LOCKED`, priority then submission
//! order across the cluster), and every later write of a task it claimed is
//! fenced by (owner node, attempt): a node whose lease ran out and whose
//! tasks were taken back cannot finish them a second time.

pub mod bus;
pub mod db;
mod driver;
pub mod link;
pub mod redis;
pub mod testdb;

use std::time::Duration;

use app::{Task, TaskId, TaskStatus, Timestamp, WorkerInfo};
use serde::{Deserialize, Serialize};

/// A node's identity in the cluster: unique, never reused (a node that
/// restarts, or that lost its lease, is a new node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    /// A fresh id: short, unique, and readable in logs and worker ids.
    pub fn fresh() -> Self {
        let uuid = uuid::Uuid::now_v7().simple().to_string();
        // The random tail: the time head is shared by nodes started together.
        Self(format!("n{}", &uuid[uuid.len() - 10..]))
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node tells the others about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// `host:port` it listens on.
    pub addr: String,
    pub started_at: Timestamp,
}

/// A node as the cluster sees it (its last heartbeat): `stats.nodes`, and
/// its workers for `stats.workers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub info: NodeInfo,
    /// Its workers as of its last heartbeat.
    pub workers: Vec<WorkerInfo>,
    /// Tasks it runs as of its last heartbeat.
    pub running: u64,
    /// Its queue waits and run times of the last minutes, by kind, as of
    /// its last heartbeat (v1.1 `stats.kinds`).
    #[serde(default)]
    pub latencies: std::collections::BTreeMap<String, KindLatencies>,
}

/// One kind's latency observations on one node: each a histogram as
/// `[value, count]` pairs, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindLatencies {
    pub wait: Vec<(u64, u64)>,
    pub run: Vec<(u64, u64)>,
}

/// Counts of tasks by status across the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub scheduled: u64,
    pub waiting: u64,
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    /// Per kind: paused, queued and running (v1.1 `stats.kinds`).
    pub kinds: std::collections::BTreeMap<String, db::pause::KindCount>,
}

/// A task claimed by this node: `running` in the database (owner = this
/// node, attempt counted, `started_at` set, `worker` not yet), in its
/// place in line (`seq`, submission order across the cluster).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub task: Task,
    pub seq: i64,
}

impl Claimed {
    /// The task as it was before the claim: queued, its attempt not yet
    /// counted (the node counts it when the task starts), and its place
    /// in line.
    pub fn unstarted(self) -> (Task, i64) {
        let Self { mut task, seq } = self;
        task.status = TaskStatus::Queued;
        task.attempt = task.attempt.saturating_sub(1);
        task.started_at = None;
        (task, seq)
    }
}

/// What became of a round of submissions ([`crate::scheduler::ClusterPort::submit`]).
#[derive(Debug)]
pub struct Submitted {
    /// One per submission, in order.
    pub outcomes: Vec<Result<db::Outcome, ClusterError>>,
    /// The tasks this node offered to start that were stored `running` on
    /// it (see [`db::Db::insert_all`]), with their `seq`.
    pub started: std::collections::HashMap<TaskId, i64>,
}

/// How many queued tasks of one kind this node can start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub kind: String,
    pub slots: u32,
}

/// One fenced write of a task this node claimed: applied only while the
/// task is still `running` with this owner and this attempt.
#[derive(Debug, Clone)]
// Nearly every write is a `Put`: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Fenced {
    /// Its current snapshot (running on a worker, progress, or final).
    Put(Task),
    /// Give a claimed task back to the queue, attempt not counted (no slot
    /// for it after all, or the node is shutting down).
    Release { id: TaskId, attempt: u32 },
    /// Put it back in the queue with its attempt counted (its worker was
    /// lost and attempts are left).
    Requeue { id: TaskId, attempt: u32 },
}

/// What a cancel found.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// It was queued: it is `cancelled` now (committed).
    Cancelled(Task),
    /// It runs on `owner`, which is asked to stop it (`cancel_requested`
    /// is set, so whoever takes it back from a dead owner cancels it).
    Running {
        owner: NodeId,
        task: Task,
    },
    AlreadyFinished(Task),
    NotFound,
}

/// A running task taken back from a node whose lease ran out.
#[derive(Debug, Clone)]
pub struct Reaped {
    /// Its state now: `queued` again (attempt kept), or final (`failed`
    /// with `worker_lost` at its last attempt, `cancelled` if a cancel was
    /// requested).
    pub task: Task,
    /// The node that lost it.
    pub from: NodeId,
}

/// Signals between nodes (over Redis pub/sub; at most once, so each has a
/// fallback: claims and promotions also run on a timer, cancels are also in
/// the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Signal {
    /// New tasks were queued (of these kinds): nodes with free slots claim.
    Wake { kinds: Vec<String> },
    /// Stop task `id` if you run it (it was cancelled).
    Cancel { id: TaskId, owner: NodeId },
    /// Task `id` is final and stored (answers a cross-node cancel).
    Finished { id: TaskId },
    /// Some task is `scheduled` for `at`: promote the due ones then.
    Due { at: Timestamp },
}

/// `--lease-ms`'s default: how long a silent node keeps its running tasks.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// Why a cluster operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// PostgreSQL or Redis cannot be reached now: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (a bug, a corrupt row).
    #[error("{0}")]
    Failed(String),
}

impl ClusterError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
