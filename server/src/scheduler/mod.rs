//! The scheduler: one actor that owns every task, the run queues and the
//! workers' slots. Everything else talks to it through a [`Dispatcher`].
//!
//! It wakes only on events (a command, a worker's frames, a timer) and after
//! each batch of events hands queued tasks to free slots. A task is handed
//! over only into a free slot, so `running` means the work really started.
//! Pushes are emitted after the state changed, from this one task, so every
//! socket sees a task's events in lifecycle order.

mod emit;
mod queue;
mod worker;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use app::{
    Ack, ErrorBody, ErrorCode, Progress, ProgressEvent, Stats, StatusEvent, Task, TaskAck, TaskId,
    TaskStatus, TasksAck, Timestamp, WorkerId, WorkerInfo,
};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::socket::Sid;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

pub use emit::Emitter;
pub use queue::{KindQueues, Place, RunQueue};
pub use worker::{Link, Slots, WorkerLink};

use crate::health::Health;
use crate::kinds::Class;
use crate::pool::frame::FromWorker;
use crate::store::{Store, StoreError, StoredTask, Write};
use worker::Worker;

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
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 100_000,
            default_timeout: Duration::from_secs(300),
            retain_finished: 100_000,
            retain_age: Duration::from_secs(7 * 24 * 3600),
            retain_bytes: 256 << 20,
            stop_grace: Duration::from_secs(2),
            stats_interval: Duration::from_millis(500),
            max_unfinished_per_socket: 10_000,
        }
    }
}

/// Where the answer to a command goes: straight into a Socket.IO ack (so
/// the ack is queued on the socket before any push about the task), or
/// back to an awaiting caller.
pub enum Reply {
    Ack(AckSender),
    Task(oneshot::Sender<Result<Task, ErrorBody>>),
    Stats(oneshot::Sender<Stats>),
}

fn send_ack<T: Serialize + ?Sized>(ack: AckSender, body: &T) {
    if let Err(e) = ack.send(body) {
        tracing::debug!(error = %e, "ack not sent");
    }
}

impl Reply {
    fn task(self, task: &Task) {
        match self {
            Self::Ack(ack) => send_ack(ack, &TaskAck::new(task)),
            Self::Task(tx) => drop(tx.send(Ok(task.clone()))),
            Self::Stats(_) => {}
        }
    }

    fn tasks(self, tasks: Vec<&Task>) {
        match self {
            Self::Ack(ack) => send_ack(ack, &TasksAck { ok: true, tasks }),
            Self::Task(tx) => match tasks.first() {
                Some(t) => drop(tx.send(Ok((*t).clone()))),
                None => drop(tx.send(Err(ErrorBody::invalid("no task")))),
            },
            Self::Stats(_) => {}
        }
    }

    fn ok(self) {
        if let Self::Ack(ack) = self {
            send_ack(ack, &Ack::ok());
        }
    }

    fn stats(self, stats: Stats) {
        match self {
            Self::Ack(ack) => send_ack(ack, &Ack::stats(stats)),
            Self::Stats(tx) => drop(tx.send(stats)),
            Self::Task(_) => {}
        }
    }

    fn error(self, error: ErrorBody) {
        match self {
            Self::Ack(ack) => send_ack(ack, &Ack::error(error)),
            Self::Task(tx) => drop(tx.send(Err(error))),
            Self::Stats(_) => {}
        }
    }
}

/// A message to the scheduler.
pub enum Command {
    /// New tasks (validated), all queued or all refused. `batch` picks the
    /// ack shape (`tasks` rather than `task`); `socket` joins their rooms
    /// before any of them can start.
    Submit {
        tasks: Vec<(Task, Class)>,
        socket: Option<SocketRef>,
        batch: bool,
        reply: Reply,
    },
    /// A task's snapshot.
    Get { id: TaskId, reply: Reply },
    /// Snapshot, and join the room if the task is not finished.
    Subscribe {
        id: TaskId,
        socket: SocketRef,
        reply: Reply,
    },
    /// Leave a task's room.
    Unsubscribe {
        id: TaskId,
        socket: SocketRef,
        reply: Reply,
    },
    /// Cancel a task.
    Cancel { id: TaskId, reply: Reply },
    /// Counters and workers.
    Stats { reply: Reply },
    /// A worker is ready for tasks.
    WorkerUp(WorkerLink),
    /// A worker is gone; what it ran goes back to the queue.
    WorkerDown { id: WorkerId, incarnation: u64 },
    /// Frames from a worker.
    FromWorker {
        id: WorkerId,
        incarnation: u64,
        frames: Vec<FromWorker>,
    },
    /// Graceful shutdown: refuse new tasks, start no more, let running ones
    /// finish within `grace`, then put the rest back in the queue (stored,
    /// attempt not counted) and answer `done`.
    Drain {
        grace: Duration,
        done: oneshot::Sender<()>,
    },
}

impl Command {
    fn into_reply(self) -> Option<Reply> {
        match self {
            Self::Submit { reply, .. }
            | Self::Get { reply, .. }
            | Self::Subscribe { reply, .. }
            | Self::Unsubscribe { reply, .. }
            | Self::Cancel { reply, .. }
            | Self::Stats { reply } => Some(reply),
            Self::WorkerUp(_)
            | Self::WorkerDown { .. }
            | Self::FromWorker { .. }
            | Self::Drain { .. } => None,
        }
    }
}

/// Cheap-clone handle to the scheduler.
#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::Sender<Command>,
}

impl Dispatcher {
    /// Sends a command; fails only when the scheduler has stopped, and
    /// then the command's reply gets that error too.
    pub async fn send(&self, cmd: Command) -> Result<(), ErrorBody> {
        let Err(mpsc::error::SendError(cmd)) = self.tx.send(cmd).await else {
            return Ok(());
        };
        let error = ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped");
        if let Some(reply) = cmd.into_reply() {
            reply.error(error.clone());
        }
        Err(error)
    }

    async fn ask_task(&self, make: impl FnOnce(Reply) -> Command) -> Result<Task, ErrorBody> {
        let (tx, rx) = oneshot::channel();
        self.send(make(Reply::Task(tx))).await?;
        rx.await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped"))?
    }

    /// Queues one task (HTTP).
    pub async fn submit(&self, task: Task, class: Class) -> Result<Task, ErrorBody> {
        self.ask_task(|reply| Command::Submit {
            tasks: vec![(task, class)],
            socket: None,
            batch: false,
            reply,
        })
        .await
    }

    /// A task's snapshot.
    pub async fn get(&self, id: TaskId) -> Result<Task, ErrorBody> {
        self.ask_task(|reply| Command::Get { id, reply }).await
    }

    /// Cancels a task.
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ErrorBody> {
        self.ask_task(|reply| Command::Cancel { id, reply }).await
    }

    /// Graceful shutdown of the scheduler's work (see [`Command::Drain`]);
    /// resolves when nothing runs any more and that is stored.
    pub async fn drain(&self, grace: Duration) -> Result<(), ErrorBody> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Drain { grace, done }).await?;
        rx.await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped"))
    }

    /// Counters and workers.
    pub async fn stats(&self) -> Result<Stats, ErrorBody> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stats {
            reply: Reply::Stats(tx),
        })
        .await?;
        rx.await
            .map_err(|_| ErrorBody::new(ErrorCode::Internal, "the scheduler has stopped"))
    }
}

/// Timers the scheduler waits on.
#[derive(Debug)]
enum Timer {
    /// An attempt ran out of time.
    Timeout(TaskId),
    /// A stopped task did not stop in time: kill its worker.
    Kill {
        worker: WorkerId,
        incarnation: u64,
        task: TaskId,
    },
    /// The shutdown grace period is over.
    DrainDeadline,
    /// The store failed to write: try again.
    RetryCommit,
}

/// One task and what the scheduler needs to know about it.
struct Entry {
    task: Task,
    class: Class,
    seq: u64,
    /// The attempt's timeout, while running.
    timer: Option<delay_queue::Key>,
    /// Changed since the last commit (durable mode).
    dirty: bool,
    /// The socket that submitted it, while it is unfinished.
    owner: Option<Sid>,
    /// Where a finished task's input, output and error are (see
    /// [`Scheduler::shelve`]).
    payload: Payload,
}

/// Where a task's payload (input, output, error) is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// In `task`, as it runs (or finished, not yet shelved).
    Live,
    /// In `task`, finished, counted against the in-memory byte budget.
    Kept(usize),
    /// Only in the store: `task` holds the rest of the task.
    Stored,
}

/// Cumulative counts of final tasks (not limited by retention).
#[derive(Debug, Default)]
struct Counters {
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    timed_out: u64,
}

impl Counters {
    fn count(&mut self, status: TaskStatus) {
        match status {
            TaskStatus::Succeeded => self.succeeded += 1,
            TaskStatus::Failed => self.failed += 1,
            TaskStatus::Cancelled => self.cancelled += 1,
            TaskStatus::TimedOut => self.timed_out += 1,
            TaskStatus::Queued | TaskStatus::Running => {}
        }
    }

    /// Takes back a [`Counters::count`] (a task withdrawn after it ended).
    fn uncount(&mut self, status: TaskStatus) {
        let n = match status {
            TaskStatus::Succeeded => &mut self.succeeded,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
            TaskStatus::TimedOut => &mut self.timed_out,
            TaskStatus::Queued | TaskStatus::Running => return,
        };
        *n = n.saturating_sub(1);
    }

    fn total(&self) -> u64 {
        self.succeeded + self.failed + self.cancelled + self.timed_out
    }
}

/// The scheduler's mailbox, so handles can exist before the actor starts.
pub struct Mailbox(mpsc::Receiver<Command>);

/// A dispatcher and the mailbox its commands go to.
pub fn channel() -> (Dispatcher, Mailbox) {
    let (tx, rx) = mpsc::channel(64 * 1024);
    (Dispatcher { tx }, Mailbox(rx))
}

/// Starts the scheduler actor; it runs until `shutdown` is cancelled or
/// every dispatcher is dropped.
pub fn spawn(
    mailbox: Mailbox,
    config: SchedulerConfig,
    emitter: Emitter,
    durable: Option<Durable>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut actor = Scheduler::new(config, emitter);
    if let Some(durable) = durable {
        actor.restore(durable.recovered, &*durable.classify);
        actor.store = Some(durable.store);
        actor.health = durable.health;
    }
    tokio::spawn(actor.run(mailbox.0, shutdown))
}

/// A durable store for the scheduler, and what it held at start.
pub struct Durable {
    pub store: Store,
    pub recovered: Vec<StoredTask>,
    /// The class of a kind (recovered tasks go back to their class's queue).
    pub classify: Box<dyn Fn(&str) -> Class + Send>,
    /// Where the scheduler reports that the store cannot write.
    pub health: Health,
}

/// How long a store that failed to write rests before the next attempt.
const COMMIT_RETRY: Duration = Duration::from_secs(1);

/// A commit under way and what waits for it.
type PendingCommit = BoxFuture<'static, CommitDone>;

/// A finished commit: its outcome, what waited for it, and what it wrote
/// (written again by a later commit if this one failed).
struct CommitDone {
    result: Result<(), StoreError>,
    deferred: Vec<Deferred>,
    written: Vec<TaskId>,
    deleted: Vec<TaskId>,
    /// Commits are numbered in the order they started.
    generation: u64,
}

/// What waits for the next commit: acks of new or cancelled tasks, and
/// `result` pushes, which must not go out before the state they announce
/// is stored.
enum Deferred {
    /// The tasks as submitted (`queued`): the work may have started, or
    /// even ended, by the time their commit is durable.
    Submitted {
        reply: Reply,
        tasks: Vec<Task>,
        batch: bool,
    },
    Task {
        reply: Reply,
        id: TaskId,
    },
    Result(TaskId),
    /// A `status` or `progress` push, kept in order behind the acks and
    /// results of earlier commits.
    Status(StatusEvent),
    Progress(ProgressEvent),
    /// Nothing: makes an otherwise empty commit, to test the store.
    Probe,
}

struct Scheduler {
    config: SchedulerConfig,
    emitter: Emitter,
    /// Boxed entries keep the table small, so growing it copies little.
    tasks: HashMap<TaskId, Box<Entry>>,
    queues: [KindQueues; 2],
    queued: usize,
    running: usize,
    next_seq: u64,
    workers: Vec<Worker>,
    /// The worker I/O-bound tasks went to in the current dispatch round.
    round_worker: Option<usize>,
    timers: DelayQueue<Timer>,
    finished: VecDeque<TaskId>,
    counters: Counters,
    /// Finished totals of the last few stats ticks, for throughput.
    history: VecDeque<(tokio::time::Instant, u64)>,
    /// The durable store, if any; `None` keeps everything in memory.
    store: Option<Store>,
    /// Tasks changed since the last commit.
    dirty: Vec<TaskId>,
    /// Tasks to remove from the store at the next commit (retention).
    deletes: Vec<TaskId>,
    deferred: Vec<Deferred>,
    /// Commits under way, oldest first, with what waits for each.
    commits: FuturesOrdered<PendingCommit>,
    /// Number of the next commit to start.
    next_generation: u64,
    /// Set while the store cannot write (why): new tasks and cancels are
    /// refused, and every ack or push that waits for a commit is held in
    /// `held` until a commit started after the failure succeeds (one from
    /// `recovers_from` on), which rewrites everything the failed ones held.
    degraded: Option<String>,
    held: Vec<Deferred>,
    recovers_from: u64,
    /// A retry of a failed commit is due (its timer is set).
    retry_pending: bool,
    /// Where `degraded` is reported for `GET /healthz`.
    health: Health,
    /// Set while shutting down: answered when nothing runs any more.
    draining: Option<oneshot::Sender<()>>,
    /// Shutting down: no new tasks, none started.
    stopping: bool,
    /// Unfinished tasks per submitting socket.
    unfinished: HashMap<Sid, usize>,
    /// Payload bytes of the finished tasks kept in memory (no store).
    kept_bytes: usize,
}

fn queue_index(class: Class) -> usize {
    match class {
        Class::Cpu => 0,
        Class::Io => 1,
    }
}

impl Scheduler {
    fn new(config: SchedulerConfig, emitter: Emitter) -> Self {
        let capacity = (config.queue_capacity + config.retain_finished).min(1 << 20);
        Self {
            config,
            emitter,
            // Sized for a full queue plus the retained tasks up front: one
            // table allocation instead of a rehash every doubling.
            tasks: HashMap::with_capacity(capacity),
            queues: Default::default(),
            queued: 0,
            running: 0,
            next_seq: 0,
            workers: Vec::new(),
            round_worker: None,
            timers: DelayQueue::new(),
            finished: VecDeque::new(),
            counters: Counters::default(),
            history: VecDeque::new(),
            store: None,
            dirty: Vec::new(),
            deletes: Vec::new(),
            deferred: Vec::new(),
            commits: FuturesOrdered::new(),
            next_generation: 0,
            degraded: None,
            held: Vec::new(),
            recovers_from: 0,
            retry_pending: false,
            health: Health::default(),
            draining: None,
            stopping: false,
            unfinished: HashMap::new(),
            kept_bytes: 0,
        }
    }

    /// Takes back the tasks a store held: queued ones are queued again in
    /// their order; ones that were running count that attempt (their
    /// worker died with the server) and are queued again, or fail with
    /// `worker_lost` if it was their last; finished ones stay readable.
    fn restore(&mut self, stored: Vec<StoredTask>, classify: &dyn Fn(&str) -> Class) {
        let (mut requeued, mut lost) = (0, 0);
        for StoredTask { mut task, seq } in stored {
            self.next_seq = self.next_seq.max(seq + 1);
            let id = task.id;
            let class = classify(&task.kind);
            let mut dirty = false;
            if task.status == TaskStatus::Running {
                dirty = true;
                task.worker = None;
                task.progress = None;
                if task.attempt >= task.max_attempts {
                    lost += 1;
                    task.status = TaskStatus::Failed;
                    task.error = Some(ErrorBody::new(
                        ErrorCode::WorkerLost,
                        format!("the server stopped during attempt {}", task.attempt),
                    ));
                    task.finished_at = Some(Timestamp::now());
                } else {
                    requeued += 1;
                    task.status = TaskStatus::Queued;
                    task.started_at = None;
                }
            }
            match task.status {
                TaskStatus::Queued => {
                    self.queues[queue_index(class)].push(
                        &task.kind,
                        Place {
                            priority: task.priority,
                            seq,
                            id,
                        },
                    );
                    self.queued += 1;
                }
                TaskStatus::Running => {}
                _ => self.finished.push_back(id),
            }
            let mut payload = Payload::Live;
            if task.status.is_final() && !dirty {
                // Stored as it is: read from the store when asked for.
                strip_payload(&mut task);
                payload = Payload::Stored;
            }
            self.tasks.insert(
                id,
                Box::new(Entry {
                    task,
                    class,
                    seq,
                    timer: None,
                    dirty,
                    owner: None,
                    payload,
                }),
            );
            if dirty {
                self.dirty.push(id);
            }
        }
        self.prune();
        tracing::info!(
            tasks = self.tasks.len(),
            queued = self.queued,
            requeued,
            lost,
            "recovered tasks from the store"
        );
    }

    /// Marks a task for the next commit (durable mode).
    fn touch(&mut self, id: TaskId) {
        if self.store.is_none() {
            return;
        }
        if let Some(e) = self.tasks.get_mut(&id)
            && !e.dirty
        {
            e.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Starts writing every task changed since the last commit, in one
    /// transaction, taking along what waits for it. The scheduler goes on
    /// meanwhile; [`Scheduler::committed`] runs when it is durable.
    fn start_commit(&mut self) {
        // While the store fails, only the retry timer starts commits.
        if self.degraded.is_none() {
            self.write_changes();
        }
    }

    fn write_changes(&mut self) {
        let Some(store) = &self.store else { return };
        if self.dirty.is_empty() && self.deletes.is_empty() && self.deferred.is_empty() {
            return;
        }
        let mut writes = Vec::with_capacity(self.dirty.len() + self.deletes.len());
        let mut written = Vec::with_capacity(self.dirty.len());
        for id in self.dirty.drain(..) {
            if let Some(e) = self.tasks.get_mut(&id) {
                e.dirty = false;
                match Write::put(&e.task, e.seq) {
                    Ok(w) => {
                        writes.push(w);
                        written.push(id);
                    }
                    Err(err) => tracing::error!(task = %id, error = %err, "cannot serialize task"),
                }
            }
        }
        let deleted = std::mem::take(&mut self.deletes);
        writes.extend(deleted.iter().copied().map(Write::Delete));
        let deferred = std::mem::take(&mut self.deferred);
        let generation = self.next_generation;
        self.next_generation += 1;
        let commit = store.commit(writes);
        self.commits.push_back(
            async move {
                CommitDone {
                    result: commit.await,
                    deferred,
                    written,
                    deleted,
                    generation,
                }
            }
            .boxed(),
        );
    }

    /// A commit finished. Durable: queue its new tasks, send its acks and
    /// results (after those held by earlier failures). Failed: see
    /// [`Scheduler::commit_failed`].
    async fn committed(&mut self, done: CommitDone) {
        let CommitDone {
            result,
            deferred,
            written,
            deleted,
            generation,
        } = done;
        if let Err(e) = result {
            return self.commit_failed(&e, deferred, written, deleted).await;
        }
        if self.degraded.is_some() {
            if generation < self.recovers_from {
                // Stored, but it holds nothing of the failed commits: its
                // pushes stay behind theirs. New tasks in it are safe to ack.
                for d in deferred {
                    match d {
                        Deferred::Submitted {
                            reply,
                            tasks,
                            batch,
                        } => reply_submitted(reply, tasks.iter(), batch),
                        other => self.held.push(other),
                    }
                }
                return;
            }
            let reason = self.degraded.take().unwrap_or_default();
            self.health.restore();
            tracing::warn!(
                was = %reason,
                held = self.held.len(),
                "the task store writes again; sending what waited for it"
            );
            let held = std::mem::take(&mut self.held);
            self.release(held).await;
        }
        self.release(deferred).await;
    }

    /// A commit failed (disk full, database file gone): nothing of it is
    /// stored. Its new tasks are refused (`internal`) and withdrawn, as if
    /// never submitted; everything else it wrote is written again by the
    /// next attempt, and the acks and pushes that waited for it are held
    /// until one succeeds. Meanwhile the server reports itself degraded.
    async fn commit_failed(
        &mut self,
        error: &StoreError,
        deferred: Vec<Deferred>,
        written: Vec<TaskId>,
        deleted: Vec<TaskId>,
    ) {
        let reason = format!("the task store cannot write: {error}");
        self.degrade(reason.clone());
        for id in written {
            self.touch(id);
        }
        self.deletes.extend(deleted);
        for d in deferred {
            match d {
                Deferred::Submitted { reply, tasks, .. } => {
                    for task in &tasks {
                        self.withdraw(task.id);
                    }
                    reply.error(ErrorBody::new(
                        ErrorCode::Internal,
                        format!("{reason}; the task was not created, try again later"),
                    ));
                }
                other => self.held.push(other),
            }
        }
    }

    /// Enters (or stays in) degraded mode for `reason` and arms a retry.
    fn degrade(&mut self, reason: String) {
        if self.degraded.is_none() {
            tracing::error!(%reason, "new tasks are refused and results held until the store writes again");
        }
        self.health.degrade(reason.clone());
        self.degraded = Some(reason);
        // Only a commit started from now on rewrites what failed so far.
        self.recovers_from = self.next_generation;
        if !self.retry_pending {
            self.retry_pending = true;
            self.timers.insert(Timer::RetryCommit, COMMIT_RETRY);
        }
    }

    /// Sends the acks and pushes that waited for a commit, in order.
    async fn release(&mut self, deferred: Vec<Deferred>) {
        for d in deferred {
            match d {
                Deferred::Submitted {
                    reply,
                    tasks,
                    batch,
                } => reply_submitted(reply, tasks.iter(), batch),
                Deferred::Task { reply, id } => match self.tasks.get(&id) {
                    Some(e) => reply.task(&e.task),
                    None => reply.error(not_found(id)),
                },
                Deferred::Result(id) => self.publish(id).await,
                // Nothing about a withdrawn task goes out.
                Deferred::Status(ev) if self.tasks.contains_key(&ev.task_id) => {
                    self.emitter.status(&ev).await;
                }
                Deferred::Progress(ev) if self.tasks.contains_key(&ev.task_id) => {
                    self.emitter.progress(&ev).await;
                }
                Deferred::Status(_) | Deferred::Progress(_) | Deferred::Probe => {}
            }
        }
    }

    /// Removes a task whose submission could not be stored, wherever it is
    /// in its life (the work may have started while its commit ran): it
    /// stops, leaves the counters, and any row a later commit wrote of it
    /// is deleted.
    fn withdraw(&mut self, id: TaskId) {
        let Some(entry) = self.tasks.get(&id) else {
            return;
        };
        let status = entry.task.status;
        if status == TaskStatus::Running
            && let Some(worker) = entry.task.worker.clone()
        {
            self.stop_work(id, worker);
        }
        let Some(mut entry) = self.tasks.remove(&id) else {
            return;
        };
        match status {
            TaskStatus::Queued => self.queued -= 1, // its queue place is skipped
            TaskStatus::Running => self.running -= 1,
            done => self.counters.uncount(done),
        }
        if let Some(key) = entry.timer.take() {
            self.timers.remove(&key);
        }
        if let Some(sid) = entry.owner.take() {
            self.forget_owner(sid);
        }
        self.deletes.push(id);
    }

    /// Pushes `status`: at once without a store; with one, after the
    /// commits already under way, so no push about a task overtakes its ack.
    async fn push_status(&mut self, ev: StatusEvent) {
        if self.store.is_some() {
            self.deferred.push(Deferred::Status(ev));
        } else {
            self.emitter.status(&ev).await;
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut batch = Vec::with_capacity(256);
        let mut stats_tick = tokio::time::interval(self.config.stats_interval);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    for cmd in batch.drain(..) {
                        self.handle(cmd).await;
                    }
                    // Under load, more commands are on their way from other
                    // threads: let them land, so one round (and one write to
                    // each worker) carries many tasks instead of one.
                    tokio::task::yield_now().await;
                    while rx.recv_many(&mut batch, 256).now_or_never().unwrap_or(0) > 0 {
                        for cmd in batch.drain(..) {
                            self.handle(cmd).await;
                        }
                    }
                }
                Some(expired) = self.timers.next(), if !self.timers.is_empty() => {
                    self.on_timer(expired.into_inner()).await;
                }
                _ = stats_tick.tick() => self.push_stats().await,
                Some(done) = self.commits.next(), if !self.commits.is_empty() => {
                    self.committed(done).await;
                }
            }
            // With a store, acks and results wait for the commit that holds
            // the state they announce (`committed`), and new tasks join the
            // run queue only then, so a submitter sees its ack before any
            // push about the task. Commits overlap with the next rounds.
            self.start_commit();
            self.dispatch().await;
            self.flush();
            self.finish_drain().await;
            // Running states are stored with the next round's commit (at the
            // latest one stats tick later): the work starts without waiting
            // for the disk, and a task that finishes by then is written once.
        }
        tracing::debug!("scheduler stopped");
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Submit {
                tasks,
                socket,
                batch,
                reply,
            } => self.submit(tasks, socket, batch, reply),
            Command::Get { id, reply } => self.reply_task(id, reply),
            Command::Subscribe { id, socket, reply } => {
                if let Some(e) = self.tasks.get(&id)
                    && !e.task.status.is_final()
                {
                    socket.join(id.room());
                }
                self.reply_task(id, reply);
            }
            Command::Unsubscribe { id, socket, reply } => {
                socket.leave(id.room());
                match self.tasks.contains_key(&id) {
                    true => reply.ok(),
                    false => reply.error(not_found(id)),
                }
            }
            Command::Cancel { id, reply } => self.cancel(id, reply).await,
            Command::Stats { reply } => reply.stats(self.stats()),
            Command::Drain { grace, done } => {
                tracing::info!(running = self.running, ?grace, "draining: no new tasks");
                self.stopping = true;
                self.draining = Some(done);
                self.timers.insert(Timer::DrainDeadline, grace);
            }
            Command::WorkerUp(link) => {
                tracing::info!(worker = ?link.id.0, "worker up");
                self.workers.retain(|w| w.id != link.id);
                self.workers.push(Worker::new(link));
            }
            Command::WorkerDown { id, incarnation } => self.worker_down(&id, incarnation).await,
            Command::FromWorker {
                id,
                incarnation,
                frames,
            } => {
                for frame in frames {
                    self.on_frame(&id, incarnation, frame).await;
                }
            }
        }
    }

    /// Answers with a task's snapshot; a finished task whose payload is
    /// only in the store is read from there, without holding up the loop.
    fn reply_task(&self, id: TaskId, reply: Reply) {
        match (self.tasks.get(&id), &self.store) {
            (None, _) => reply.error(not_found(id)),
            (Some(e), Some(store)) if e.payload == Payload::Stored => {
                let read = store.read(id);
                tokio::spawn(async move {
                    match read.await {
                        Ok(Some(task)) => reply.task(&task),
                        // Pruned meanwhile.
                        Ok(None) => reply.error(not_found(id)),
                        Err(e) => {
                            tracing::error!(task = %id, error = %e, "cannot read a task");
                            reply.error(ErrorBody::new(
                                ErrorCode::Internal,
                                format!("task {id} cannot be read: {e}"),
                            ));
                        }
                    }
                });
            }
            (Some(e), _) => reply.task(&e.task),
        }
    }

    fn submit(
        &mut self,
        tasks: Vec<(Task, Class)>,
        socket: Option<SocketRef>,
        batch: bool,
        reply: Reply,
    ) {
        if self.stopping {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                "the server is shutting down and takes no new tasks; try again shortly",
            ));
        }
        if let Some(reason) = &self.degraded {
            return reply.error(store_down(reason));
        }
        let owner = socket.as_ref().map(|s| s.id);
        if let Some(sid) = owner {
            let mine = self.unfinished.get(&sid).copied().unwrap_or(0);
            if mine + tasks.len() > self.config.max_unfinished_per_socket {
                return reply.error(ErrorBody::new(
                    ErrorCode::RateLimited,
                    format!(
                        "this socket has {mine} unfinished tasks (limit {})",
                        self.config.max_unfinished_per_socket
                    ),
                ));
            }
        }
        if self.queued + tasks.len() > self.config.queue_capacity {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                format!(
                    "the queue is full ({} of {} queued)",
                    self.queued, self.config.queue_capacity
                ),
            ));
        }
        if let Some(sid) = owner {
            *self.unfinished.entry(sid).or_default() += tasks.len();
        }
        let ids: Vec<TaskId> = tasks.iter().map(|(t, _)| t.id).collect();
        if let Some(socket) = &socket {
            socket.join(ids.iter().map(TaskId::room).collect::<Vec<_>>());
        }
        let durable = self.store.is_some();
        for (task, class) in tasks {
            let seq = self.next_seq;
            self.next_seq += 1;
            // With a store the work may start while its commit is under way:
            // the ack still goes first, since every push about the task
            // waits behind that commit.
            self.queues[queue_index(class)].push(
                &task.kind,
                Place {
                    priority: task.priority,
                    seq,
                    id: task.id,
                },
            );
            self.queued += 1;
            self.tasks.insert(
                task.id,
                Box::new(Entry {
                    task,
                    class,
                    seq,
                    timer: None,
                    dirty: durable,
                    owner,
                    payload: Payload::Live,
                }),
            );
        }
        let submitted = ids
            .iter()
            .filter_map(|id| self.tasks.get(id))
            .map(|e| &e.task);
        if durable {
            // Stored before acked; the ack shows them as submitted.
            let tasks = submitted.cloned().collect();
            self.dirty.extend_from_slice(&ids);
            self.deferred.push(Deferred::Submitted {
                reply,
                tasks,
                batch,
            });
        } else {
            reply_submitted(reply, submitted, batch);
        }
    }

    /// Hands queued tasks to free slots, highest priority first.
    async fn dispatch(&mut self) {
        self.round_worker = None;
        if self.stopping {
            return;
        }
        for class in [Class::Cpu, Class::Io] {
            let q = queue_index(class);
            while let Some(place) =
                self.queues[q].pop_runnable(|kind| can_run(&self.workers, class, kind))
            {
                let Some(entry) = self
                    .tasks
                    .get_mut(&place.id)
                    .filter(|e| e.task.status == TaskStatus::Queued)
                else {
                    continue; // cancelled while queued
                };
                let Some(w) = pick_worker(
                    &self.workers,
                    &mut self.round_worker,
                    class,
                    &entry.task.kind,
                ) else {
                    // `can_run` found a free worker, so this does not
                    // happen; if it did, the task keeps its place.
                    self.queues[q].push(&entry.task.kind, place);
                    break;
                };
                self.queued -= 1;
                self.running += 1;
                let worker = &mut self.workers[w];
                let task = &mut entry.task;
                task.status = TaskStatus::Running;
                task.attempt += 1;
                task.worker = Some(worker.id.clone());
                task.started_at = Some(Timestamp::now());
                task.progress = None;
                let timeout = task
                    .timeout_ms
                    .map_or(self.config.default_timeout, Duration::from_millis);
                entry.timer = Some(self.timers.insert(Timer::Timeout(task.id), timeout));
                worker.start(task, entry.class);
                let ev = emit::status_of(task);
                if self.store.is_some() {
                    self.deferred.push(Deferred::Status(ev));
                    if !entry.dirty {
                        entry.dirty = true;
                        self.dirty.push(place.id);
                    }
                } else {
                    self.emitter.status(&ev).await;
                }
            }
        }
    }

    /// Writes what the workers were handed in this round.
    fn flush(&mut self) {
        for w in &mut self.workers {
            w.flush();
        }
    }

    fn worker_index(&self, id: &WorkerId, incarnation: u64) -> Option<usize> {
        self.workers
            .iter()
            .position(|w| &w.id == id && w.incarnation == incarnation)
    }

    async fn on_frame(&mut self, id: &WorkerId, incarnation: u64, frame: FromWorker) {
        let Some(w) = self.worker_index(id, incarnation) else {
            return; // a frame from a replaced worker
        };
        let (task_id, outcome) = match frame {
            FromWorker::Progress {
                id: task_id,
                done,
                total,
                message,
            } => {
                if let Some(entry) = running_on(&mut self.tasks, task_id, id) {
                    entry.task.progress = Some(Progress {
                        done,
                        total,
                        message: message.clone(),
                    });
                    let ev = ProgressEvent {
                        task_id,
                        done,
                        total,
                        message,
                    };
                    if self.store.is_some() {
                        self.deferred.push(Deferred::Progress(ev));
                    } else {
                        self.emitter.progress(&ev).await;
                    }
                }
                return;
            }
            FromWorker::Done { id, output } => (id, Ok(output)),
            FromWorker::Failed { id, message } => {
                (id, Err(ErrorBody::new(ErrorCode::TaskFailed, message)))
            }
            FromWorker::Stopped { id } => (id, Err(ErrorBody::new(ErrorCode::Cancelled, ""))),
        };
        self.workers[w].release(task_id);
        if running_on(&mut self.tasks, task_id, id).is_none() {
            return; // already final (cancelled or timed out): only the slot was held
        }
        match outcome {
            Ok(output) => {
                self.finish(task_id, TaskStatus::Succeeded, Some(output), None)
                    .await
            }
            Err(e) if e.code == ErrorCode::TaskFailed => {
                self.finish(task_id, TaskStatus::Failed, None, Some(e))
                    .await;
            }
            Err(_) => {
                // Stopped without being asked to: treat as a failure of the handler.
                let e = ErrorBody::new(ErrorCode::TaskFailed, "the handler stopped early");
                self.finish(task_id, TaskStatus::Failed, None, Some(e))
                    .await;
            }
        }
    }

    /// Makes a task final, pushes its `result` and closes its room.
    async fn finish(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<serde_json::Value>,
        error: Option<ErrorBody>,
    ) {
        if self.settle(id, status, output, error) {
            self.announce(id).await;
        }
    }

    /// Publishes a task that just became final: at once without a store,
    /// after the commit that stores it with one.
    async fn announce(&mut self, id: TaskId) {
        if self.store.is_some() {
            self.deferred.push(Deferred::Result(id));
        } else {
            self.publish(id).await;
        }
    }

    /// Sets a task's final state; `false` if it was final already.
    fn settle(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<serde_json::Value>,
        error: Option<ErrorBody>,
    ) -> bool {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return false;
        };
        match entry.task.status {
            TaskStatus::Queued => self.queued -= 1,
            TaskStatus::Running => {
                self.running -= 1;
                if let Some(worker) = &entry.task.worker
                    && let Some(w) = self.workers.iter_mut().find(|w| &w.id == worker)
                {
                    w.tasks_done += 1;
                }
            }
            _ => return false,
        }
        if let Some(key) = entry.timer.take() {
            self.timers.remove(&key);
        }
        let owner = entry.owner.take();
        let task = &mut entry.task;
        task.status = status;
        task.output = output;
        task.error = error;
        task.finished_at = Some(Timestamp::now());
        self.counters.count(status);
        if let Some(sid) = owner {
            self.forget_owner(sid);
        }
        self.touch(id);
        true
    }

    /// One fewer unfinished task of socket `sid`.
    fn forget_owner(&mut self, sid: Sid) {
        if let Some(n) = self.unfinished.get_mut(&sid) {
            *n -= 1;
            if *n == 0 {
                self.unfinished.remove(&sid);
            }
        }
    }

    /// Pushes a final task's `result`, closes its room and applies retention.
    async fn publish(&mut self, id: TaskId) {
        let Some(entry) = self.tasks.get(&id) else {
            return; // withdrawn
        };
        self.emitter.result(&entry.task).await;
        self.shelve(id);
        self.finished.push_back(id);
        self.prune();
    }

    /// Takes a finished (and stored, if there is a store) task's payload
    /// out of memory: with a store it is read from there when asked for;
    /// without one it counts against `retain_bytes`, so finished tasks
    /// hold a bounded amount of memory either way.
    fn shelve(&mut self, id: TaskId) {
        let durable = self.store.is_some();
        let Some(entry) = self.tasks.get_mut(&id) else {
            return;
        };
        if entry.payload != Payload::Live {
            return;
        }
        let task = &mut entry.task;
        if durable {
            strip_payload(task);
            entry.payload = Payload::Stored;
        } else {
            let bytes = payload_bytes(task);
            self.kept_bytes += bytes;
            entry.payload = Payload::Kept(bytes);
        }
    }

    /// Drops the oldest finished tasks beyond the retention count, from
    /// memory and from the store.
    fn prune(&mut self) {
        let oldest_kept = Timestamp::now().millis()
            - i64::try_from(self.config.retain_age.as_millis()).unwrap_or(i64::MAX);
        while let Some(&old) = self.finished.front() {
            let too_many = self.finished.len() > self.config.retain_finished
                || self.kept_bytes > self.config.retain_bytes;
            let too_old = self
                .tasks
                .get(&old)
                .and_then(|e| e.task.finished_at)
                .is_none_or(|t| t.millis() < oldest_kept);
            if !too_many && !too_old {
                break;
            }
            self.finished.pop_front();
            if let Some(Payload::Kept(bytes)) = self.tasks.remove(&old).map(|e| e.payload) {
                self.kept_bytes -= bytes;
            }
            if self.store.is_some() {
                self.deletes.push(old);
            }
        }
    }

    async fn cancel(&mut self, id: TaskId, reply: Reply) {
        let Some(entry) = self.tasks.get(&id) else {
            return reply.error(not_found(id));
        };
        if let Some(reason) = &self.degraded
            && !entry.task.status.is_final()
        {
            // A cancel that cannot be stored would come undone at restart.
            return reply.error(store_down(reason));
        }
        if entry.task.status.is_final() {
            return reply.error(ErrorBody::new(
                ErrorCode::AlreadyFinished,
                format!("task {id} is already {}", entry.task.status),
            ));
        }
        let error = ErrorBody::new(ErrorCode::Cancelled, "cancelled by request");
        self.stop(id, TaskStatus::Cancelled, error, Some(reply))
            .await;
    }

    /// Ends an unfinished task as `cancelled` or `timed_out`; a running one
    /// is told to stop, and its worker is killed if it does not in time.
    async fn stop(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        error: ErrorBody,
        reply: Option<Reply>,
    ) {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return;
        };
        if entry.task.status == TaskStatus::Running
            && let Some(worker) = entry.task.worker.clone()
        {
            self.stop_work(id, worker);
        }
        // The ack shows the final state and goes out before the `result` push.
        self.settle(id, status, None, Some(error));
        if let Some(reply) = reply {
            if self.store.is_some() {
                self.deferred.push(Deferred::Task { reply, id });
            } else if let Some(entry) = self.tasks.get(&id) {
                reply.task(&entry.task);
            }
        }
        self.announce(id).await;
    }

    /// Tells `worker` to stop task `id`, and kills the worker if it does
    /// not within the grace period.
    fn stop_work(&mut self, id: TaskId, worker: WorkerId) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.id == worker)
            && w.stop(id)
        {
            self.timers.insert(
                Timer::Kill {
                    worker,
                    incarnation: w.incarnation,
                    task: id,
                },
                self.config.stop_grace,
            );
        }
    }

    async fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::RetryCommit => {
                self.retry_pending = false;
                if self.degraded.is_some() {
                    self.write_changes();
                    if self.commits.is_empty() {
                        // Nothing to write: a probe commit tells whether
                        // the store works again.
                        self.deferred.push(Deferred::Probe);
                        self.write_changes();
                    }
                }
            }
            Timer::Timeout(id) => {
                if let Some(entry) = self.tasks.get_mut(&id) {
                    entry.timer = None;
                    let ms = entry
                        .task
                        .timeout_ms
                        .unwrap_or(self.config.default_timeout.as_millis() as u64);
                    let error =
                        ErrorBody::new(ErrorCode::TimedOut, format!("attempt ran over {ms} ms"));
                    self.stop(id, TaskStatus::TimedOut, error, None).await;
                }
            }
            Timer::Kill {
                worker,
                incarnation,
                task,
            } => {
                if let Some(w) = self.worker_index(&worker, incarnation)
                    && self.workers[w].holds(task)
                {
                    tracing::warn!(worker = ?worker.0, %task, "task did not stop in time; killing its worker");
                    self.workers[w].kill();
                }
            }
            Timer::DrainDeadline => self.requeue_running().await,
        }
    }

    /// End of the grace period: what still runs goes back to the queue, as
    /// if never started (the attempt is not counted), and is stored so.
    async fn requeue_running(&mut self) {
        let running: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|e| e.task.status == TaskStatus::Running)
            .map(|e| e.task.id)
            .collect();
        tracing::info!(
            tasks = running.len(),
            "grace period over: requeueing running tasks"
        );
        for id in running {
            let Some(entry) = self.tasks.get_mut(&id) else {
                continue;
            };
            if let Some(key) = entry.timer.take() {
                self.timers.remove(&key);
            }
            let task = &mut entry.task;
            task.status = TaskStatus::Queued;
            task.attempt = task.attempt.saturating_sub(1);
            task.worker = None;
            task.started_at = None;
            task.progress = None;
            self.running -= 1;
            self.queued += 1;
            let ev = emit::status_of(task);
            self.push_status(ev).await;
            self.touch(id);
        }
    }

    /// Answers a drain once nothing runs any more (and it was stored).
    async fn finish_drain(&mut self) {
        if self.running > 0 || self.draining.is_none() {
            return;
        }
        // Everything changed so far must be stored before we answer.
        self.start_commit();
        while let Some(done) = self.commits.next().await {
            self.committed(done).await;
        }
        if let Some(reason) = &self.degraded {
            tracing::error!(%reason, held = self.held.len(), "stopping with changes the store could not write; the last stored state will be recovered");
        }
        if let Some(done) = self.draining.take() {
            let _ = done.send(());
        }
    }

    async fn worker_down(&mut self, id: &WorkerId, incarnation: u64) {
        let Some(w) = self.worker_index(id, incarnation) else {
            return;
        };
        let worker = self.workers.remove(w);
        tracing::warn!(worker = ?id.0, running = worker.running_count(), "worker down");
        for task_id in worker.running_tasks() {
            let Some(entry) = running_on(&mut self.tasks, task_id, id) else {
                continue; // already final, only its slot was held
            };
            if let Some(key) = entry.timer.take() {
                self.timers.remove(&key);
            }
            if entry.task.attempt >= entry.task.max_attempts {
                let e = ErrorBody::new(
                    ErrorCode::WorkerLost,
                    format!("worker {id} was lost on attempt {}", entry.task.attempt),
                );
                self.finish(task_id, TaskStatus::Failed, None, Some(e))
                    .await;
                continue;
            }
            entry.task.status = TaskStatus::Queued;
            entry.task.worker = None;
            entry.task.started_at = None;
            entry.task.progress = None;
            let place = Place {
                priority: entry.task.priority,
                seq: entry.seq,
                id: task_id,
            };
            self.queues[queue_index(entry.class)].push(&entry.task.kind, place);
            self.running -= 1;
            self.queued += 1;
            let ev = emit::status_of(&entry.task);
            self.push_status(ev).await;
            self.touch(task_id);
        }
    }

    fn stats(&self) -> Stats {
        let total = self.counters.total();
        let throughput = match (self.history.front(), self.history.back()) {
            (Some((t0, n0)), Some((t1, _))) if t1 > t0 => {
                (total - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        };
        Stats {
            queued: self.queued as u64,
            running: self.running as u64,
            succeeded: self.counters.succeeded,
            failed: self.counters.failed,
            cancelled: self.counters.cancelled,
            timed_out: self.counters.timed_out,
            workers: self
                .workers
                .iter()
                .map(Worker::info)
                .collect::<Vec<WorkerInfo>>(),
            throughput_per_s: throughput,
            at: Timestamp::now(),
        }
    }

    async fn push_stats(&mut self) {
        let now = tokio::time::Instant::now();
        self.history.push_back((now, self.counters.total()));
        while self.history.len() > 10 {
            self.history.pop_front();
        }
        let stats = self.stats();
        self.emitter.stats(&stats).await;
        // A database deleted or replaced under us is noticed even while
        // nothing is written (the writer checks it at every commit too).
        if self.degraded.is_none()
            && let Some(store) = &self.store
            && let Err(reason) = store.verify()
        {
            self.degrade(format!("the task store cannot write: {reason}"));
        }
        // Retention by age runs in the background, on this tick.
        self.prune();
    }
}

/// The entry of `task_id` if it is running on worker `worker`.
fn running_on<'a>(
    tasks: &'a mut HashMap<TaskId, Box<Entry>>,
    task_id: TaskId,
    worker: &WorkerId,
) -> Option<&'a mut Entry> {
    tasks
        .get_mut(&task_id)
        .filter(|e| e.task.status == TaskStatus::Running && e.task.worker.as_ref() == Some(worker))
        .map(|e| &mut **e)
}

/// Whether some worker has a free slot for a task of `class` and `kind`.
fn can_run(workers: &[Worker], class: Class, kind: &str) -> bool {
    workers.iter().any(|w| w.free(class) > 0 && w.accepts(kind))
}

/// Where a task of `class` and `kind` goes: I/O-bound tasks stay on the
/// worker chosen earlier in this round while it has room, so a round is
/// one write to one worker; otherwise the worker with the most free
/// slots, which spreads CPU-bound tasks over the processes.
fn pick_worker(
    workers: &[Worker],
    round_worker: &mut Option<usize>,
    class: Class,
    kind: &str,
) -> Option<usize> {
    if class == Class::Io
        && let Some(w) = *round_worker
        && workers
            .get(w)
            .is_some_and(|w| w.free(class) > 0 && w.accepts(kind))
    {
        return Some(w);
    }
    let best = workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.free(class) > 0 && w.accepts(kind))
        .max_by_key(|(_, w)| w.free(class))
        .map(|(i, _)| i);
    if class == Class::Io {
        *round_worker = best;
    }
    best
}

/// Acks a submission with its tasks: `{ok, tasks}` for a batch, else `{ok, task}`.
fn reply_submitted<'a>(reply: Reply, mut tasks: impl Iterator<Item = &'a Task>, batch: bool) {
    if batch {
        reply.tasks(tasks.collect());
    } else if let Some(task) = tasks.next() {
        reply.task(task);
    }
}

/// The refusal of a change while the store cannot write.
fn store_down(reason: &str) -> ErrorBody {
    ErrorBody::new(ErrorCode::Internal, format!("{reason}; try again later"))
}

/// Drops what a finished task holds besides its state and times.
fn strip_payload(task: &mut Task) {
    task.input = serde_json::Value::Null;
    task.output = None;
    task.error = None;
    task.progress = None;
}

/// The memory a task's payload (input, output, error) takes, estimated
/// from its parsed form: a JSON number costs a whole `Value`, so 1 MB of
/// JSON can take 30 MB once parsed, and the budget must count that.
fn payload_bytes(task: &Task) -> usize {
    let error = task.error.as_ref().map_or(0, |e| e.message.capacity());
    value_bytes(&task.input) + task.output.as_ref().map_or(0, value_bytes) + error
}

/// Estimated bytes of a parsed JSON value, itself included.
fn value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    // An object entry: its key, its value and the map's own bookkeeping
    // (hash and index of an insertion-ordered map).
    const ENTRY_OVERHEAD: usize = 2 * std::mem::size_of::<usize>();
    std::mem::size_of::<Value>()
        + match value {
            Value::String(s) => s.capacity(),
            Value::Array(items) => {
                items.iter().map(value_bytes).sum::<usize>()
                    + (items.capacity() - items.len()) * std::mem::size_of::<Value>()
            }
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| k.capacity() + value_bytes(v) + ENTRY_OVERHEAD)
                .sum(),
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
}

fn not_found(id: TaskId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no task {id}"))
}
