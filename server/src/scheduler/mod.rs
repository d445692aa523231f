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
mod table;
mod worker;

use outbox::*;

use table::{Left, TaskTable};

use std::collections::VecDeque;
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
use tokio_util::time::DelayQueue;

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

impl SchedulerConfig {
    /// The defaults, which `taskwire serve`'s flags show and use too.
    pub const DEFAULT: Self = Self {
        queue_capacity: 100_000,
        default_timeout: Duration::from_secs(5 * 60),
        retain_finished: 100_000,
        retain_age: Duration::from_secs(7 * 24 * 3600),
        retain_bytes: 256 << 20,
        stop_grace: Duration::from_secs(2),
        stats_interval: Duration::from_millis(500),
        max_unfinished_per_socket: 10_000,
    };
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Most task slots reserved up front (a full queue plus the retained
/// tasks, up to this many); the table grows past it as needed.
const PREALLOCATED_TASKS: usize = 1 << 20;

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
        actor.outbox.store = Some(durable.store);
        actor.outbox.health = durable.health;
    }
    tokio::spawn(actor.run(mailbox.0, shutdown))
}

struct Scheduler {
    config: SchedulerConfig,
    publisher: Arc<dyn Publisher>,
    /// Every task, the run queues and the counts.
    table: TaskTable,
    workers: Vec<Worker>,
    /// The worker I/O-bound tasks went to in the current dispatch round.
    round_worker: Option<usize>,
    timers: DelayQueue<Timer>,
    /// Finished totals of the last few stats ticks, for throughput.
    history: VecDeque<(tokio::time::Instant, u64)>,
    /// The store, what waits for its commits, and degraded mode.
    outbox: Outbox,
    /// Set while shutting down: answered when nothing runs any more.
    draining: Option<oneshot::Sender<()>>,
    /// Shutting down: no new tasks, none started.
    stopping: bool,
}

impl Scheduler {
    fn new(config: SchedulerConfig, publisher: Arc<dyn Publisher>) -> Self {
        let capacity = (config.queue_capacity + config.retain_finished).min(PREALLOCATED_TASKS);
        Self {
            config,
            publisher,
            table: TaskTable::with_capacity(capacity),
            workers: Vec::new(),
            round_worker: None,
            timers: DelayQueue::new(),
            history: VecDeque::new(),
            outbox: Outbox::default(),
            draining: None,
            stopping: false,
        }
    }

    /// Takes back the tasks a store held: queued ones are queued again in
    /// their order; ones that were running count that attempt (their
    /// worker died with the server) and are queued again, or fail with
    /// `worker_lost` if it was their last; finished ones stay readable.
    fn restore(&mut self, stored: Vec<StoredTask>, classify: &dyn Fn(&str) -> Class) {
        let (mut requeued, mut lost) = (0, 0);
        for StoredTask { task, seq } in stored {
            let (id, attempt) = (task.id, task.attempt);
            let was_running = task.status == TaskStatus::Running;
            let last = attempt >= task.max_attempts;
            let class = classify(&task.kind);
            self.table.restore(task, class, seq, was_running);
            if !was_running {
                continue;
            }
            self.outbox.dirty.push(id);
            if last {
                lost += 1;
                let error = ErrorBody::new(
                    ErrorCode::WorkerLost,
                    format!("the server stopped during attempt {attempt}"),
                );
                self.table.settle(id, TaskStatus::Failed, None, Some(error));
            } else {
                requeued += 1;
                self.table.requeue(id, true);
            }
        }
        self.prune();
        tracing::info!(
            tasks = self.table.len(),
            queued = self.table.queued(),
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
                Some(done) = self.outbox.commits.next(), if !self.outbox.commits.is_empty() => {
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
                if let Some(e) = self.table.get(&id)
                    && !e.task.status.is_final()
                {
                    client.join(vec![id.room()]);
                }
                self.reply_task(id, reply);
            }
            Command::Unsubscribe { id, client, reply } => {
                client.leave(id.room());
                match self.table.contains(&id) {
                    true => reply.send(Ok(())),
                    false => reply.send(Err(not_found(id))),
                }
            }
            Command::Cancel { id, reply } => self.cancel(id, reply).await,
            Command::Stats { reply } => reply.send(Ok(self.stats())),
            Command::Drain { grace, done } => {
                tracing::info!(
                    running = self.table.running(),
                    ?grace,
                    "draining: no new tasks"
                );
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
        if let Some(reason) = &self.outbox.degraded {
            return reply.error(store_down(reason));
        }
        let owner = client.as_ref().map(|c| c.id());
        if let Some(sid) = owner {
            let mine = self.table.unfinished_of(sid);
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
        let queued = self.table.queued();
        if queued + tasks.len() > self.config.queue_capacity {
            return reply.error(ErrorBody::new(
                ErrorCode::QueueFull,
                format!(
                    "the queue is full ({queued} of {} queued)",
                    self.config.queue_capacity
                ),
            ));
        }
        let ids: Vec<TaskId> = tasks.iter().map(|(t, _)| t.id).collect();
        if let Some(client) = &client {
            client.join(ids.iter().map(TaskId::room).collect());
        }
        let durable = self.outbox.durable();
        for (task, class) in tasks {
            // With a store the work may start while its commit is under way:
            // the ack still goes first, since every push about the task
            // waits behind that commit.
            self.table.enqueue(task, class, owner, durable);
        }
        let submitted: Vec<&Task> = ids
            .iter()
            .filter_map(|id| self.table.get(id))
            .map(|e| &e.task)
            .collect();
        if durable {
            // Stored before acked; the ack shows them as submitted.
            let tasks = submitted.into_iter().cloned().collect();
            self.outbox.dirty.extend_from_slice(&ids);
            self.outbox
                .deferred
                .push(Deferred::Submitted { reply, tasks });
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
            self.emit(Deferred::Result(id)).await;
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
        let Some(Left { timer, worker }) = self.table.settle(id, status, output, error) else {
            return false;
        };
        if let Some(key) = timer {
            self.timers.remove(&key);
        }
        if let Some(worker) = worker
            && let Some(w) = self.workers.iter_mut().find(|w| w.id == worker)
        {
            w.tasks_done += 1;
        }
        self.touch(id);
        true
    }
}

fn not_found(id: TaskId) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotFound, format!("no task {id}"))
}

#[cfg(test)]
mod tests;
