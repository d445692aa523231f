//! The scheduler of one node of a cluster: the queue is in the database,
//! shared by every node, and this node holds in memory only the tasks it
//! claimed into its free slots.
//!
//! - Submissions are stored (committed) and then acked; any node may claim
//!   them. A `Wake` signal tells the others, and every node also claims on
//!   a short timer, since signals are at most once.
//! - A claim takes at most as many tasks of each kind as this node's
//!   workers have free slots for; what still has no slot after the round
//!   goes back at once, its attempt not counted.
//! - Every later write of a claimed task is fenced by (node, attempt): a
//!   write the cluster refuses means the task was taken back (this node's
//!   lease ran out), and the task is dropped here without a push.
//! - `running` and `progress` are pushed at once (the claim stored the
//!   running state); `result` only after the final state is committed.
//! - Lookups, cancels and subscriptions of tasks this node does not hold
//!   go to the database; a cancel of a task another node runs is signalled
//!   to that node and answered when it is final there.
//! - Each node heartbeats, and takes back the running tasks of nodes whose
//!   lease ran out (requeued, or failed `worker_lost` at their last attempt).
//! - Scheduled tasks (v1.1 delays and retries) wait in the database; any
//!   node promotes them when they are due (see `due`). Tasks waiting for
//!   others are released or failed by the node that ended the last of
//!   those (see `deps`).
//!
//! `done` handles what each operation answered.

use std::collections::{HashMap, HashSet};

use futures_util::stream::FuturesUnordered;
use tokio_util::time::delay_queue;

mod deps;
mod done;
mod due;
mod kinds;
mod submit;

use super::*;
use crate::cluster::db::{Promoted, Resolved, Stored};
use crate::cluster::{
    CancelOutcome, Claimed, ClusterError, Counts, Fenced, NodeId, NodeState, Reaped, Signal,
    Submitted, Want,
};
use submit::Acking;

/// Most tasks one claim takes (a short transaction).
const MAX_CLAIM: u32 = 1000;

/// How often an idle node looks for queued tasks without a signal.
pub(super) const CLAIM_POLL: Duration = Duration::from_millis(200);

/// How long the node that asked for a cross-node cancel waits for the
/// owner's answer beyond the stop grace, before it answers from the
/// database as it is.
const CANCEL_ANSWER_SLACK: Duration = Duration::from_secs(2);

/// A cluster operation that finished, and what waits for it.
pub(super) enum ClusterDone {
    /// Submissions stored together (or not), each acked with its own
    /// tasks.
    Inserted {
        submissions: Vec<Acking>,
        submitted: Submitted,
    },
    /// The tasks a submission's keys named, read again once its socket is
    /// in their rooms.
    Deduplicated {
        acking: Acking,
        stored: Stored,
        result: Result<Vec<Task>, ClusterError>,
    },
    Claimed(Result<Vec<Claimed>, ClusterError>),
    Read {
        id: TaskId,
        reply: Option<TaskReply>,
        /// A subscriber that joined the room before the read.
        joined: Option<Client>,
        done: Option<DoneReply>,
        result: Result<Option<Task>, ClusterError>,
    },
    Cancel {
        id: TaskId,
        reply: TaskReply,
        result: Result<CancelOutcome, ClusterError>,
    },
    /// The state of a task whose cancels wait for its end; `forced`: their
    /// time is up, answer whatever it is.
    CancelRead {
        id: TaskId,
        replies: Vec<TaskReply>,
        forced: bool,
        result: Result<Option<Task>, ClusterError>,
    },
    Beat(Result<bool, ClusterError>),
    /// Tasks this node runs whose cancel is pending.
    CancelRequests(Result<Vec<TaskId>, ClusterError>),
    Rejoined(Result<(), ClusterError>),
    Reaped(Result<Vec<Reaped>, ClusterError>),
    Overview {
        reply: Option<StatsReply>,
        result: Result<(Counts, Vec<NodeState>), ClusterError>,
    },
    /// A signal was sent (or not: it is at most once anyway).
    Signalled(Result<(), ClusterError>),
    /// Scheduled tasks that came due were queued.
    Promoted(Result<Promoted, ClusterError>),
    /// Tasks waiting for others were looked at again.
    Resolved(Result<Resolved, ClusterError>),
}

/// The cluster side of the scheduler.
pub struct ClusterSide {
    pub(super) link: Arc<dyn ClusterPort>,
    /// The class of a kind (claimed tasks go to their class's slots).
    pub(super) classify: Box<dyn Fn(&str) -> Class + Send>,
    /// The kinds a worker with no list of its own runs (the registry's).
    pub(super) local_kinds: Vec<String>,
    /// How long a silent node keeps its tasks.
    pub(super) lease: Duration,
    pub(super) ops: FuturesUnordered<BoxFuture<'static, ClusterDone>>,
    /// A claim is under way.
    claiming: bool,
    /// Submissions waiting for the insert under way to end: they are
    /// stored together by the next one (group commit).
    submissions: Vec<(Acking, Vec<Task>)>,
    inserting: bool,
    /// There may be queued tasks: claim at the next chance.
    more: bool,
    last_beat: Option<tokio::time::Instant>,
    beating: bool,
    /// Cancels of tasks other nodes run, waiting for their end.
    cancels: HashMap<TaskId, Vec<TaskReply>>,
    /// Tasks this node runs that another node asked to cancel: it is told
    /// when they are final.
    cancelled_elsewhere: HashSet<TaskId>,
    /// Finished totals of the last few stats, for throughput.
    history: VecDeque<(tokio::time::Instant, u64)>,
    /// The earliest `run_at` this node knows of, and its timer.
    due: Option<(Timestamp, delay_queue::Key)>,
    /// A promotion is under way; `promote_again`: another was asked for
    /// meanwhile.
    promoting: bool,
    promote_again: bool,
    /// The same for resolutions of dependencies.
    resolving: bool,
    resolve_again: bool,
}

impl ClusterSide {
    pub fn new(
        link: Arc<dyn ClusterPort>,
        classify: Box<dyn Fn(&str) -> Class + Send>,
        local_kinds: Vec<String>,
        lease: Duration,
    ) -> Self {
        Self {
            link,
            classify,
            local_kinds,
            lease,
            ops: FuturesUnordered::new(),
            claiming: false,
            submissions: Vec::new(),
            inserting: false,
            more: true,
            last_beat: None,
            beating: false,
            cancels: HashMap::new(),
            cancelled_elsewhere: HashSet::new(),
            history: VecDeque::new(),
            due: None,
            promoting: false,
            promote_again: false,
            resolving: false,
            resolve_again: false,
        }
    }

    fn push(&mut self, op: impl Future<Output = ClusterDone> + Send + 'static) {
        self.ops.push(op.boxed());
    }

    fn signal(&mut self, signal: Signal) {
        let sent = self.link.signal(signal);
        self.push(async move { ClusterDone::Signalled(sent.await) });
    }
}

/// The next finished cluster operation; never resolves without a cluster.
pub(super) async fn next_op(side: &mut Option<ClusterSide>) -> ClusterDone {
    match side {
        Some(side) if !side.ops.is_empty() => match side.ops.next().await {
            Some(done) => done,
            None => std::future::pending().await,
        },
        _ => std::future::pending().await,
    }
}

impl Scheduler {
    /// The refusal of a change while the cluster cannot be reached.
    fn unavailable(e: &ClusterError) -> ErrorBody {
        ErrorBody::new(
            ErrorCode::Unavailable,
            format!("the cluster's database or broker cannot be reached: {e}; try again later"),
        )
    }

    /// Notes an operation's outcome for `GET /healthz`.
    fn cluster_health<T>(&mut self, result: &Result<T, ClusterError>) {
        match result {
            Err(e) if e.is_unavailable() => self
                .outbox
                .health
                .degrade(format!("the cluster cannot be reached: {e}")),
            Err(e) => tracing::error!(error = %e, "cluster operation failed"),
            Ok(_) if self.outbox.degraded.is_none() => self.outbox.health.restore(),
            Ok(_) => {}
        }
    }

    /// A task this node does not hold: answered from the database.
    /// `joined`: a subscriber already in the room, which leaves it if the
    /// task is final (the answer then holds the result).
    pub(super) fn cluster_read(
        &mut self,
        id: TaskId,
        reply: Option<TaskReply>,
        joined: Option<Client>,
        done: Option<DoneReply>,
    ) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let read = side.link.get(id);
        side.push(async move {
            ClusterDone::Read {
                id,
                reply,
                joined,
                done,
                result: read.await,
            }
        });
    }

    pub(super) fn cluster_cancel(&mut self, id: TaskId, reply: TaskReply) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let cancel = side.link.cancel(id);
        side.push(async move {
            ClusterDone::Cancel {
                id,
                reply,
                result: cancel.await,
            }
        });
    }

    /// The periodic part: heartbeat and taking back dead nodes' tasks
    /// (every tenth of a lease), and a claim and a promotion in case a
    /// signal was missed.
    pub(super) fn cluster_tick(&mut self) {
        self.promote();
        let running = self.table.running() as u64;
        let latencies = self.latency_pairs();
        let workers: Vec<WorkerInfo> = self.workers.iter().map(|w| self.worker_info(w)).collect();
        let Some(side) = &mut self.cluster else {
            return;
        };
        side.more = true;
        let now = tokio::time::Instant::now();
        let due = side
            .last_beat
            .is_none_or(|t| now.duration_since(t) >= side.lease / 10);
        if due && !side.beating {
            // Checks a node queued but did not take (it died first).
            self.resolve();
            let Some(side) = &mut self.cluster else {
                return;
            };
            side.beating = true;
            side.last_beat = Some(now);
            let state = NodeState {
                info: side.link.node().clone(),
                workers,
                running,
                latencies,
            };
            let beat = side.link.heartbeat(state);
            let reap = side.link.reap();
            let cancels = side.link.cancel_requests();
            side.push(async move { ClusterDone::Beat(beat.await) });
            side.push(async move { ClusterDone::Reaped(reap.await) });
            side.push(async move { ClusterDone::CancelRequests(cancels.await) });
        }
    }

    /// Claims queued tasks for this node's free slots, unless a claim is
    /// under way or there is no reason to think any are queued.
    pub(super) fn claim(&mut self) {
        if self.stopping || self.outbox.degraded.is_some() {
            return;
        }
        let Some(side) = &self.cluster else {
            return;
        };
        // An insert under way may start tasks in the free slots: the
        // claim waits for it (and the next insert for the claim).
        if side.claiming || side.inserting || !side.more {
            return;
        }
        let Some((slots, limit)) = self.free_slots() else {
            return;
        };
        let wants = slots
            .into_iter()
            .map(|(kind, slots)| Want {
                kind,
                slots: slots.min(limit),
            })
            .collect();
        let Some(side) = &mut self.cluster else {
            return;
        };
        side.claiming = true;
        side.more = false;
        let claim = side.link.claim(wants, limit);
        side.push(async move { ClusterDone::Claimed(claim.await) });
    }

    /// The free slots of this node's workers by kind, and in all (at most
    /// [`MAX_CLAIM`]); `None` if there are none.
    pub(super) fn free_slots(&self) -> Option<(HashMap<String, u32>, u32)> {
        let side = self.cluster.as_ref()?;
        let mut slots: HashMap<String, u32> = HashMap::new();
        let mut limit = 0u32;
        for w in &self.workers {
            let kinds = w.kinds().unwrap_or(&side.local_kinds);
            let mut any = false;
            for kind in kinds {
                let free = w.free((side.classify)(kind));
                if free > 0 {
                    any = true;
                    let n = slots.entry(kind.clone()).or_default();
                    *n = n.saturating_add(free);
                }
            }
            if any {
                limit = limit.saturating_add(w.free_total());
            }
        }
        let limit = limit.min(MAX_CLAIM);
        (limit > 0).then_some((slots, limit))
    }

    /// Tasks this node took to start (claimed, or started as they were
    /// stored), each with its place in line (`seq`), as the table holds
    /// them until they start: queued, their attempt not yet counted.
    pub(super) fn take_to_start(&mut self, tasks: impl IntoIterator<Item = (Task, i64)>) {
        let Some(side) = &self.cluster else {
            return;
        };
        for (task, seq) in tasks {
            let class = (side.classify)(&task.kind);
            self.table
                .restore(task, class, u64::try_from(seq).unwrap_or(0), false);
        }
    }

    /// After a round: claimed tasks that found no slot go back to the
    /// shared queue, their attempt not counted.
    pub(super) fn give_back_unstarted(&mut self) {
        if self.cluster.is_none() || self.table.queued() == 0 {
            return;
        }
        for id in self.table.queued_ids() {
            if let Some(entry) = self.table.withdraw(id) {
                // The claim counted the attempt the local start would have.
                let attempt = entry.task.attempt + 1;
                self.outbox.fenced.push(Fenced::Release { id, attempt });
            }
        }
    }

    /// A task this node claimed goes back to the shared queue (its worker
    /// was lost, or the node is draining) and leaves this node: stored,
    /// then announced `queued`.
    pub(super) async fn give_back(&mut self, id: TaskId, attempt_counts: bool) {
        let Some(attempt) = self.table.get(&id).map(|e| e.task.attempt) else {
            return;
        };
        let Some(Left { timer, .. }) = self.table.requeue(id, attempt_counts) else {
            return;
        };
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        let Some(entry) = self.table.withdraw(id) else {
            return;
        };
        self.outbox.fenced.push(match attempt_counts {
            true => Fenced::Requeue { id, attempt },
            false => Fenced::Release { id, attempt },
        });
        self.emit(Deferred::GivenBack(status_of(&entry.task))).await;
        if let Some(side) = &mut self.cluster {
            side.signal(Signal::Wake {
                kinds: vec![entry.task.kind.clone()],
            });
        }
    }

    /// Drops tasks the cluster took back from this node: their work stops
    /// and nothing more about them is pushed from here.
    pub(super) fn forget_taken(&mut self, ids: &[TaskId]) {
        for &id in ids {
            let Some(entry) = self.table.withdraw(id) else {
                continue;
            };
            tracing::warn!(task = %id, attempt = entry.task.attempt, "the cluster took this task back (this node's lease ran out); dropping it");
            if entry.task.status == TaskStatus::Running
                && let Some(worker) = entry.task.worker.clone()
            {
                self.stop_work(id, worker);
            }
            if let Some(key) = entry.timer {
                self.timers.remove(&key);
            }
        }
    }

    /// Tells every node that task `id` is final (answers the cancels
    /// waiting for it, on any node).
    pub(super) fn signal_finished(&mut self, id: TaskId) {
        if let Some(side) = &mut self.cluster {
            side.signal(Signal::Finished { id });
        }
    }

    /// A final task was pushed: this node forgets it (the database keeps
    /// it), and tells a node waiting to answer a cancel of it.
    pub(super) fn cluster_published(&mut self, id: TaskId) {
        if self.cluster.is_none() {
            return;
        }
        self.table.withdraw(id);
        let Some(side) = &mut self.cluster else {
            return;
        };
        if side.cancelled_elsewhere.remove(&id) {
            side.signal(Signal::Finished { id });
        }
    }

    pub(super) fn cluster_stats(&mut self, reply: Option<StatsReply>) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let overview = side.link.overview();
        side.push(async move {
            ClusterDone::Overview {
                reply,
                result: overview.await,
            }
        });
    }

    pub(super) async fn on_signal(&mut self, signal: Signal) {
        let held = |s: &Self, id| s.table.get(&id).is_some_and(|e| !e.task.status.is_final());
        match signal {
            Signal::Wake { .. } => {
                if let Some(side) = &mut self.cluster {
                    side.more = true;
                }
            }
            Signal::Cancel { id, owner } if owner == self.node.id => {
                let (holds, running) = (self.table.contains(&id), held(self, id));
                let Some(side) = &mut self.cluster else {
                    return;
                };
                if !holds {
                    // Not here (any more, or not yet: a claim under way, then
                    // the heartbeat's cancel requests find it): the asker
                    // reads the database, and waits on if it is not final.
                    return side.signal(Signal::Finished { id });
                }
                // Told when it is final and pushed (it may be already,
                // waiting for its commit).
                side.cancelled_elsewhere.insert(id);
                if running {
                    let error = ErrorBody::new(ErrorCode::Cancelled, "cancelled by request");
                    self.stop(id, TaskStatus::Cancelled, error, None).await;
                }
            }
            Signal::Cancel { .. } => {}
            Signal::Finished { id } => self.answer_cancels(id, false),
            Signal::Due { at } => self.scheduled_for(at, false),
        }
    }

    /// Reads task `id` for the cancels waiting for its end: answered once
    /// it is final, or now if `forced` (their time is up).
    pub(super) fn answer_cancels(&mut self, id: TaskId, forced: bool) {
        let Some(side) = &mut self.cluster else {
            return;
        };
        let Some(replies) = side.cancels.remove(&id) else {
            return;
        };
        let read = side.link.get(id);
        side.push(async move {
            ClusterDone::CancelRead {
                id,
                replies,
                forced,
                result: read.await,
            }
        });
    }

    /// Waits for the end of task `id`, which a cancel asked node `owner`
    /// to stop (this node too, if it just gave the task back): answered
    /// when a node signals it final, or as it is after the stop grace.
    fn await_cancel(&mut self, id: TaskId, owner: NodeId, reply: TaskReply) {
        let wait = self.config.stop_grace + CANCEL_ANSWER_SLACK;
        if let Some(side) = &mut self.cluster {
            side.cancels.entry(id).or_default().push(reply);
            side.signal(Signal::Cancel { id, owner });
        }
        self.timers.insert(Timer::CancelAnswer(id), wait);
    }
}
