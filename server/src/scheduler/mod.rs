//! The scheduler: one actor that owns every task, the run queues and the
//! workers' slots. Everything else talks to it through a [`Dispatcher`].
//!
//! It wakes only on events (a command, a worker's frames, a timer) and after
//! each batch of events hands queued tasks to free slots. A task is handed
//! over only into a free slot, so `running` means the work really started.
//! Pushes are emitted after the state changed, from this one task, so every
//! socket sees a task's events in lifecycle order.
//!
//! Here: the actor's state, its loop, submissions and settling a task.
//! - `command`: commands, typed replies, the `Dispatcher` handle;
//! - `dispatch`: queued tasks to free slots; `queue`: the run queues;
//! - `reports`: what workers report, and their loss; `worker`: one worker;
//! - `stop`: cancel, timeouts, kills, the graceful drain;
//! - `outbox`: commits to the store and what waits for them;
//! - `retention`: finished tasks' results, payloads and pruning;
//! - `stats`: counters and the `stats` push;
//! - `ports`: the traits workers, clients and rooms are reached through.

mod command;
mod dispatch;
mod outbox;
mod ports;
mod queue;
mod reports;
mod retention;
mod stats;
mod stop;
mod worker;

use outbox::*;
use retention::*;
use stats::*;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use app::{
    ErrorBody, ErrorCode, Progress, ProgressEvent, Stats, StatusEvent, Task, TaskId, TaskStatus,
    Timestamp, WorkerId, WorkerInfo,
};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

pub use command::{
    Command, Dispatcher, DoneReply, Mailbox, Reply, StatsReply, TaskReply, TasksReply, channel,
};
pub use outbox::Durable;
pub use ports::{
    Client, ClientId, ClientPort, PortError, Publisher, Report, Stopping, WorkerPort, status_of,
};
pub use queue::{KindQueues, Place, RunQueue};
pub use worker::{Slots, WorkerLink};

use crate::health::Health;
use crate::kinds::Class;
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
    /// The client that submitted it, while it is unfinished.
    owner: Option<ClientId>,
    /// Where a finished task's input, output and error are (see
    /// [`Scheduler::shelve`]).
    payload: Payload,
}

/// Starts the scheduler actor; it runs until `shutdown` is cancelled or
/// every dispatcher is dropped.
pub fn spawn(
    mailbox: Mailbox,
    config: SchedulerConfig,
    publisher: Arc<dyn Publisher>,
    durable: Option<Durable>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut actor = Scheduler::new(config, publisher);
    if let Some(durable) = durable {
        actor.restore(durable.recovered, &*durable.classify);
        actor.store = Some(durable.store);
        actor.health = durable.health;
    }
    tokio::spawn(actor.run(mailbox.0, shutdown))
}

struct Scheduler {
    config: SchedulerConfig,
    publisher: Arc<dyn Publisher>,
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
    /// Unfinished tasks per submitting client.
    unfinished: HashMap<ClientId, usize>,
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
    fn new(config: SchedulerConfig, publisher: Arc<dyn Publisher>) -> Self {
        let capacity = (config.queue_capacity + config.retain_finished).min(1 << 20);
        Self {
            config,
            publisher,
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
                client,
                reply,
            } => self.submit(tasks, client, reply),
            Command::Get { id, reply } => self.reply_task(id, reply),
            Command::Subscribe { id, client, reply } => {
                if let Some(e) = self.tasks.get(&id)
                    && !e.task.status.is_final()
                {
                    client.join(vec![id.room()]);
                }
                self.reply_task(id, reply);
            }
            Command::Unsubscribe { id, client, reply } => {
                client.leave(id.room());
                match self.tasks.contains_key(&id) {
                    true => reply.send(Ok(())),
                    false => reply.send(Err(not_found(id))),
                }
            }
            Command::Cancel { id, reply } => self.cancel(id, reply).await,
            Command::Stats { reply } => reply.send(Ok(self.stats())),
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
                reports,
            } => {
                for report in reports {
                    self.on_report(&id, incarnation, report).await;
                }
            }
        }
    }

    fn submit(&mut self, tasks: Vec<(Task, Class)>, client: Option<Client>, reply: TasksReply) {
        if self.stopping {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                "the server is shutting down and takes no new tasks; try again shortly",
            ));
        }
        if let Some(reason) = &self.degraded {
            return reply.error(store_down(reason));
        }
        let owner = client.as_ref().map(|c| c.id());
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
        if let Some(client) = &client {
            client.join(ids.iter().map(TaskId::room).collect());
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
        let submitted: Vec<&Task> = ids
            .iter()
            .filter_map(|id| self.tasks.get(id))
            .map(|e| &e.task)
            .collect();
        if durable {
            // Stored before acked; the ack shows them as submitted.
            let tasks = submitted.into_iter().cloned().collect();
            self.dirty.extend_from_slice(&ids);
            self.deferred.push(Deferred::Submitted { reply, tasks });
        } else {
            reply.tasks(&submitted);
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

    /// One fewer unfinished task of client `sid`.
    fn forget_owner(&mut self, sid: ClientId) {
        if let Some(n) = self.unfinished.get_mut(&sid) {
            *n -= 1;
            if *n == 0 {
                self.unfinished.remove(&sid);
            }
        }
    }
}

fn not_found(id: TaskId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no task {id}"))
}

#[cfg(test)]
mod tests;
