//! The actor: its state, its loop, and taking back what a store held.

use super::*;

/// Timers the scheduler waits on.
#[derive(Debug)]
pub(super) enum Timer {
    /// An attempt ran out of time.
    Timeout(TaskId),
    /// A scheduled task's `run_at` came.
    Due(TaskId),
    /// A scheduled task's `run_at` is further than a timer reaches: set
    /// its timer again.
    DueLater(TaskId),
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
    /// A commit held for running work waited long enough.
    CommitHold,
    /// A cancel of a task another node runs had no answer in time: answer
    /// it from the database as it is.
    CancelAnswer(TaskId),
    /// In a cluster: the earliest `run_at` this node knows of came.
    Promote,
}

pub(super) struct Scheduler {
    pub(super) config: SchedulerConfig,
    pub(super) publisher: Arc<dyn Publisher>,
    /// Every task, the run queues and the counts.
    pub(super) table: TaskTable,
    pub(super) workers: Vec<Worker>,
    /// The worker I/O-bound tasks went to in the current dispatch round.
    pub(super) round_worker: Option<usize>,
    pub(super) timers: DelayQueue<Timer>,
    /// Finished totals of the last few stats ticks, for throughput.
    pub(super) history: VecDeque<(tokio::time::Instant, u64)>,
    /// The store, what waits for its commits, and degraded mode.
    pub(super) outbox: Outbox,
    /// Set while shutting down: answered when nothing runs any more.
    pub(super) draining: Option<oneshot::Sender<()>>,
    /// Shutting down: no new tasks, none started.
    pub(super) stopping: bool,
    /// This server, as `stats.nodes` shows it.
    pub(super) node: NodeInfo,
    /// In cluster mode: the shared queue and the other nodes.
    pub(super) cluster: Option<ClusterSide>,
    /// Tasks waiting for others, and those that ended.
    pub(super) pending: pending::Pending,
    /// Paused kinds and latencies by kind.
    pub(super) by_kind: kinds::ByKind,
    /// What `/metrics` shows.
    pub(super) metrics: Metrics,
}

impl Scheduler {
    pub(super) fn new(
        config: SchedulerConfig,
        publisher: Arc<dyn Publisher>,
        node: NodeInfo,
    ) -> Self {
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
            node,
            cluster: None,
            pending: pending::Pending::default(),
            by_kind: kinds::ByKind::default(),
            metrics: Metrics::default(),
        }
    }

    /// Takes back the tasks a store held: queued ones are queued again in
    /// their order; ones that were running count that attempt (their
    /// worker died with the server) and are queued again, or fail with
    /// `worker_lost` if it was their last; finished ones stay readable.
    pub(super) fn restore(&mut self, stored: Vec<StoredTask>, classify: &dyn Fn(&str) -> Class) {
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
                let error = ErrorBody::new(
                    ErrorCode::WorkerLost,
                    format!("the server stopped during attempt {attempt}"),
                );
                // Only a durable store restores: its attempts are written.
                if let Some(ended) = self.table.get(&id).and_then(|e| {
                    crate::lookup::ended_attempt(&e.task, app::AttemptOutcome::WorkerLost, error)
                }) {
                    self.outbox.attempts.push((id, ended));
                }
                self.table.requeue(id, true);
            }
        }
        self.restore_pending();
        self.prune();
        tracing::info!(
            tasks = self.table.len(),
            scheduled = self.table.scheduled(),
            waiting = self.table.waiting(),
            queued = self.table.queued(),
            requeued,
            lost,
            "recovered tasks from the store"
        );
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(256);
        let mut stats_tick = tokio::time::interval(self.config.stats_interval);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cluster_tick = tokio::time::interval(cluster::CLAIM_POLL);
        cluster_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let clustered = self.cluster.is_some();
        // Waiting tasks whose dependencies ended while the server was down.
        self.resolve_dependents().await;
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
                    // Every timer that is due goes in this round: thousands
                    // of scheduled tasks due in one millisecond make one
                    // commit and one dispatch, not one each.
                    while let Some(Some(expired)) = self.timers.next().now_or_never() {
                        self.on_timer(expired.into_inner()).await;
                    }
                }
                _ = stats_tick.tick() => self.push_stats().await,
                Some(done) = self.outbox.commits.next(), if !self.outbox.commits.is_empty() => {
                    self.committed(done).await;
                }
                done = cluster::next_op(&mut self.cluster), if clustered => {
                    self.on_cluster(done).await;
                }
                _ = cluster_tick.tick(), if clustered => self.cluster_tick(),
            }
            self.resolve_dependents().await;
            // New tasks start at once; with a store, acks and results wait
            // for the commit that holds the state they announce
            // (`committed`), so a submitter sees its ack before any push
            // about the task. A commit runs while the next rounds go on,
            // and the one after it starts when it ends. The
            // commit starts after the dispatch, so that it can wait a
            // moment for work that has just started (`start_commit`).
            self.dispatch().await;
            self.start_commit();
            if clustered {
                // What found no slot goes back to the cluster at once;
                // then claim for the slots still free (tasks queued
                // before go first), or store the new submissions, which
                // may start in them.
                self.give_back_unstarted();
                self.start_commit();
                self.claim();
                self.insert_submissions();
            }
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
            } => self.submit(tasks, client, reply).await,
            Command::Get { id, reply } if self.elsewhere(&id) => {
                self.cluster_read(id, Some(reply), None, None);
            }
            Command::Get { id, reply } => self.reply_task(id, reply),
            Command::Subscribe { id, client, reply } if self.elsewhere(&id) => {
                // In the room before the read: a `result` committed after
                // the read reaches it; if the read finds the task final,
                // it leaves again and the answer holds the result.
                client.join(vec![id.room()]);
                self.cluster_read(id, Some(reply), Some(client), None);
            }
            Command::Subscribe { id, client, reply } => {
                // Its follower gets its pushes already.
                if let Some(e) = self.table.get(&id)
                    && !e.task.status.is_final()
                    && !e.followed_by(client.id())
                {
                    client.join(vec![id.room()]);
                }
                self.reply_task(id, reply);
            }
            Command::Unsubscribe { id, client, reply } if self.elsewhere(&id) => {
                client.leave(id.room());
                self.cluster_read(id, None, None, Some(reply));
            }
            Command::Unsubscribe { id, client, reply } => {
                client.leave(id.room());
                if let Some(e) = self.table.get_mut(&id)
                    && e.followed_by(client.id())
                {
                    e.follower = None;
                }
                match self.table.contains(&id) {
                    true => reply.send(Ok(())),
                    false => reply.send(Err(not_found(id))),
                }
            }
            Command::Cancel { id, reply } if self.elsewhere(&id) => self.cluster_cancel(id, reply),
            Command::Cancel { id, reply } => self.cancel(id, reply).await,
            Command::Stats { reply } if self.cluster.is_some() => self.cluster_stats(Some(reply)),
            Command::Stats { reply } => reply.send(Ok(self.stats())),
            Command::List { query, reply } => self.reply_list(query, reply),
            Command::Attempts { id, reply } => self.reply_attempts(id, reply),
            Command::Signal(signal) => self.on_signal(signal).await,
            Command::Kinds(cmd) => self.on_kinds(cmd),
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

    /// In cluster mode, whether task `id` is not held by this node (the
    /// database answers for it).
    fn elsewhere(&self, id: &TaskId) -> bool {
        self.cluster.is_some() && !self.table.contains(id)
    }
}
