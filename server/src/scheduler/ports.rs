//! The scheduler's edges, as traits the transports implement: a worker
//! ([`WorkerPort`]: the pool's processes, remote `/worker` sockets), a
//! client that follows tasks ([`ClientPort`]: a Socket.IO socket), and the
//! rooms pushes go to ([`Publisher`]). What a worker reports comes in as a
//! [`Report`]. Nothing here knows Socket.IO or the worker frames, so the
//! scheduler runs the same against fakes in its unit tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use app::{ProgressEvent, Stats, StatusEvent, Task, TaskId};
use futures_util::future::BoxFuture;

use crate::cluster::db::{Committed, Promoted, Resolved};
use crate::cluster::{
    CancelOutcome, Claimed, ClusterError, Counts, Fenced, NodeInfo, NodeState, Reaped, Signal,
    Submitted, Want,
};

/// How the scheduler reaches one worker.
pub trait WorkerPort: Send {
    /// Hands `task` over; it may be buffered until [`WorkerPort::flush`].
    /// An error means the link is broken: the scheduler kills the worker.
    fn run(&mut self, task: &Task) -> Result<(), PortError>;

    /// Asks the worker to stop task `id` (cancelled or timed out).
    fn stop(&mut self, id: TaskId) -> Stopping;

    /// Writes what [`WorkerPort::run`] and [`WorkerPort::stop`] buffered in
    /// this round, in one write.
    fn flush(&mut self) {}

    /// Ends the worker; its transport then reports it down.
    fn kill(&self);

    /// Whether it is a remote worker (shown in `stats`).
    fn is_remote(&self) -> bool;
}

/// What happens to the slot of a task a worker was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// The worker answers [`Report::Stopped`]: the slot stays taken until
    /// then, and the worker is killed if that does not come in time.
    Confirmed,
    /// No answer comes (the remote protocol has none): the slot is free now.
    Released,
}

/// A worker link that no longer carries tasks.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// What a worker reports about a task it was handed. Every task handed
/// over is answered by exactly one of `Done`, `Failed` or `Stopped`.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Progress {
        id: TaskId,
        done: u64,
        total: u64,
        message: Option<String>,
    },
    Done {
        id: TaskId,
        output: app::Json,
    },
    Failed {
        id: TaskId,
        message: String,
    },
    Stopped {
        id: TaskId,
    },
}

/// Tells clients apart (the count of unfinished tasks per client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub [u8; 16]);

/// A client that submits and follows tasks. It gets a task's pushes by
/// joining its room, or, for a task it submitted to a single server, by
/// being its follower: the scheduler then sends it each push itself, which
/// costs no room (a map entry and two strings per task in the adapter).
pub trait ClientPort: Send + Sync {
    fn id(&self) -> ClientId;
    /// Joins these rooms, before any push to them can be sent.
    fn join(&self, rooms: Vec<String>);
    fn leave(&self, room: String);
    /// Pushes to this client alone, as a follower.
    fn status(&self, ev: &StatusEvent);
    fn progress(&self, ev: &ProgressEvent);
    fn result(&self, task: &Task);
}

/// A shared handle to a client.
pub type Client = Arc<dyn ClientPort>;

/// Where pushes go: a task's room, and the dashboard.
pub trait Publisher: Send + Sync {
    /// `status` to the task's room.
    fn status<'a>(&'a self, ev: &'a StatusEvent) -> BoxFuture<'a, ()>;
    /// `progress` to the task's room.
    fn progress<'a>(&'a self, ev: &'a ProgressEvent) -> BoxFuture<'a, ()>;
    /// `result` to the task's room, then closes the room: every socket
    /// leaves, so finished tasks cost no per-socket memory.
    fn result<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, ()>;
    /// `stats` to the dashboard.
    fn stats<'a>(&'a self, stats: &'a Stats) -> BoxFuture<'a, ()>;
}

/// The `status` push announcing `task`'s current state.
pub fn status_of(task: &Task) -> StatusEvent {
    StatusEvent {
        task_id: task.id,
        status: task.status,
        attempt: task.attempt,
        worker: task.worker.clone(),
    }
}

/// A future a cluster operation answers with.
pub type ClusterFuture<T> = BoxFuture<'static, Result<T, ClusterError>>;

/// How the scheduler of one node reaches the rest of its cluster: the
/// shared queue in the database, and the other nodes (see [`crate::cluster`]).
/// Every future owns what it needs, so the scheduler runs many at once and
/// goes on meanwhile.
pub trait ClusterPort: Send + Sync {
    /// This node.
    fn node(&self) -> &NodeInfo;
    /// Why the broker cannot be reached now, if so: new work is refused
    /// (its pushes could not reach anyone).
    fn problem(&self) -> Option<String>;
    /// Stores submissions, each whole or not at all (committed when it
    /// resolves), and answers for each in order: its tasks as stored, the
    /// existing ones an idempotency key named (within the dedup `window`)
    /// instead of new ones, or why it was refused or could not be stored.
    /// Of the plain new tasks, those in `start` are stored already running
    /// on this node where a claim could take them now (`started`).
    fn submit(
        &self,
        submissions: Vec<Vec<Task>>,
        window: Duration,
        start: HashSet<TaskId>,
    ) -> BoxFuture<'static, Submitted>;
    /// Claims queued tasks into this node's free slots.
    fn claim(&self, wants: Vec<Want>, limit: u32) -> ClusterFuture<Vec<Claimed>>;
    /// Fenced writes of claimed tasks; resolves to the ids whose fence
    /// failed (taken back by the cluster: their writes did nothing), and
    /// the tasks given back that a pending cancel ended instead.
    fn commit(&self, writes: Vec<Fenced>) -> ClusterFuture<Committed>;
    /// Queues the scheduled tasks whose time came (v1.1 delays), and
    /// tells when the next one is due.
    fn promote(&self) -> ClusterFuture<Promoted>;
    /// Looks again at the tasks waiting for others where something
    /// changed (v1.1 dependencies): queued or failed as those stand.
    fn resolve(&self) -> ClusterFuture<Resolved>;
    fn get(&self, id: TaskId) -> ClusterFuture<Option<Task>>;
    /// The tasks with these ids that exist.
    fn get_many(&self, ids: Vec<TaskId>) -> ClusterFuture<Vec<Task>>;
    fn cancel(&self, id: TaskId) -> ClusterFuture<CancelOutcome>;
    /// Tasks this node runs whose cancel is pending (a missed signal).
    fn cancel_requests(&self) -> ClusterFuture<Vec<TaskId>>;
    /// Tells every node (at most once: each signal has a fallback).
    fn signal(&self, signal: Signal) -> ClusterFuture<()>;
    /// Says this node is alive, with its workers; `false` if the cluster
    /// had declared it dead (its tasks were taken back).
    fn heartbeat(&self, state: NodeState) -> ClusterFuture<bool>;
    /// Registers this node again after it was declared dead.
    fn rejoin(&self) -> ClusterFuture<()>;
    /// Takes back the running tasks of nodes whose lease ran out.
    fn reap(&self) -> ClusterFuture<Vec<Reaped>>;
    /// Counts by status and by kind, and the live nodes, for `stats`.
    fn overview(&self) -> ClusterFuture<(Counts, Vec<NodeState>)>;
    /// Pauses or resumes a kind for every node: once it resolves, no node
    /// claims a task of a paused kind.
    fn set_paused(&self, kind: String, paused: bool) -> ClusterFuture<()>;
    /// The paused kinds, by name.
    fn paused_kinds(&self) -> ClusterFuture<Vec<String>>;
    /// Leaves the cluster (graceful shutdown, after its tasks were released).
    fn leave(&self) -> ClusterFuture<()>;
}
