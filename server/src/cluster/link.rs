//! A node's link to its cluster: the scheduler's [`ClusterPort`] over the
//! database ([`Db`]) and the node bus ([`Bus`]), and a publisher that does
//! not hold the scheduler up while a push crosses Redis.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use app::{ProgressEvent, Stats, StatusEvent, Task, TaskId};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::bus::Bus;
use super::db::{Committed, Db, DbError, Promoted, Resolved, Start, Stored, decides_in_database};
use super::redis::{RedisError, RedisHealth};
use super::{
    CancelOutcome, Claimed, ClusterError, Counts, Fenced, NodeInfo, NodeState, Reaped, Signal,
    Submitted, Want,
};
use crate::scheduler::{ClusterFuture, ClusterPort, Publisher};

impl From<DbError> for ClusterError {
    fn from(e: DbError) -> Self {
        match e.is_unavailable() {
            true => Self::Unavailable(e.to_string()),
            false => Self::Failed(e.to_string()),
        }
    }
}

impl From<RedisError> for ClusterError {
    fn from(e: RedisError) -> Self {
        match e {
            RedisError::Unavailable(_) | RedisError::Command(_) | RedisError::Connect { .. } => {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Failed(e.to_string()),
        }
    }
}

/// Most tasks one promotion queues (a short statement); more due are
/// promoted by the next one, at once.
const MAX_PROMOTE: u32 = 1000;

/// Most dependency checks one resolution takes (the rest by the next).
const MAX_RESOLVE: u32 = 1000;

/// This node's database and bus.
pub struct Link {
    db: Db,
    bus: Bus,
    node: NodeInfo,
    lease: Duration,
    /// Redis's connections (rooms and bus): new work is refused while one
    /// is down.
    redis: RedisHealth,
}

impl Link {
    pub fn new(db: Db, bus: Bus, node: NodeInfo, lease: Duration, redis: RedisHealth) -> Self {
        Self {
            db,
            bus,
            node,
            lease,
            redis,
        }
    }

    /// Runs a database call on a clone of the handle, owning its inputs.
    fn db<T, F>(&self, call: impl FnOnce(Db) -> F) -> ClusterFuture<T>
    where
        F: Future<Output = Result<T, DbError>> + Send + 'static,
    {
        call(self.db.clone())
            .map(|r| r.map_err(ClusterError::from))
            .boxed()
    }
}

impl ClusterPort for Link {
    fn node(&self) -> &NodeInfo {
        &self.node
    }

    fn problem(&self) -> Option<String> {
        self.redis.problem()
    }

    fn submit(
        &self,
        submissions: Vec<Vec<Task>>,
        window: Duration,
        start: HashSet<TaskId>,
    ) -> BoxFuture<'static, Submitted> {
        let db = self.db.clone();
        let node = self.node.id.clone();
        async move {
            // Those PostgreSQL need not decide for go in one statement.
            let plain: Vec<&Task> = submissions
                .iter()
                .filter(|s| !decides_in_database(s))
                .flatten()
                .collect();
            let flags: Vec<bool> = plain.iter().map(|t| start.contains(&t.id)).collect();
            let start = Start {
                node: &node,
                flags: &flags,
            };
            let plain = db
                .insert_all(&plain, Some(start))
                .await
                .map_err(ClusterError::from);
            let mut outcomes = Vec::with_capacity(submissions.len());
            for tasks in submissions {
                outcomes.push(match decides_in_database(&tasks) {
                    false => plain
                        .as_ref()
                        .map(|_| Ok(Stored::new(tasks)))
                        .map_err(Clone::clone),
                    true => db.submit(&tasks, window).await.map_err(ClusterError::from),
                });
            }
            let started = plain.map(|s| s.into_iter().collect()).unwrap_or_default();
            Submitted { outcomes, started }
        }
        .boxed()
    }

    fn claim(&self, wants: Vec<Want>, limit: u32) -> ClusterFuture<Vec<Claimed>> {
        let node = self.node.id.clone();
        self.db(|db| async move { db.claim(&node, &wants, limit).await })
    }

    fn commit(&self, writes: Vec<Fenced>) -> ClusterFuture<Committed> {
        let node = self.node.id.clone();
        self.db(|db| async move { db.commit(&node, &writes).await })
    }

    fn promote(&self) -> ClusterFuture<Promoted> {
        self.db(|db| async move { db.promote(MAX_PROMOTE).await })
    }

    fn resolve(&self) -> ClusterFuture<Resolved> {
        self.db(|db| async move { db.resolve(MAX_RESOLVE).await })
    }

    fn get(&self, id: TaskId) -> ClusterFuture<Option<Task>> {
        self.db(|db| async move { db.get(id).await })
    }

    fn get_many(&self, ids: Vec<TaskId>) -> ClusterFuture<Vec<Task>> {
        self.db(|db| async move { db.get_many(&ids).await })
    }

    fn cancel(&self, id: TaskId) -> ClusterFuture<CancelOutcome> {
        self.db(|db| async move { db.cancel(id).await })
    }

    fn cancel_requests(&self) -> ClusterFuture<Vec<TaskId>> {
        let node = self.node.id.clone();
        self.db(|db| async move { db.cancel_requests(&node).await })
    }

    fn signal(&self, signal: Signal) -> ClusterFuture<()> {
        let bus = self.bus.clone();
        async move { bus.publish(&signal).await.map_err(ClusterError::from) }.boxed()
    }

    fn heartbeat(&self, state: NodeState) -> ClusterFuture<bool> {
        self.db(|db| async move { db.heartbeat(&state).await })
    }

    fn rejoin(&self) -> ClusterFuture<()> {
        let node = self.node.clone();
        self.db(|db| async move { db.register(&node).await })
    }

    fn reap(&self) -> ClusterFuture<Vec<Reaped>> {
        let lease = self.lease;
        self.db(|db| async move { db.reap(lease).await })
    }

    fn overview(&self) -> ClusterFuture<(Counts, Vec<NodeState>)> {
        self.db(|db| async move {
            let mut counts = db.counts().await?;
            counts.kinds = db.kind_counts().await?;
            Ok((counts, db.nodes().await?))
        })
    }

    fn set_paused(&self, kind: String, paused: bool) -> ClusterFuture<()> {
        self.db(|db| async move { db.set_paused(&kind, paused).await })
    }

    fn paused_kinds(&self) -> ClusterFuture<Vec<String>> {
        self.db(|db| async move { db.paused_kinds().await })
    }

    fn leave(&self) -> ClusterFuture<()> {
        let node = self.node.id.clone();
        self.db(|db| async move { db.leave(&node).await })
    }
}

/// A push waiting for its turn.
enum Push {
    Status(StatusEvent),
    Progress(ProgressEvent),
    Result(Box<Task>),
    Stats(Box<Stats>),
}

impl Push {
    /// The task whose room it goes to (none: the dashboard).
    fn task(&self) -> Option<TaskId> {
        match self {
            Self::Status(ev) => Some(ev.task_id),
            Self::Progress(ev) => Some(ev.task_id),
            Self::Result(task) => Some(task.id),
            Self::Stats(_) => None,
        }
    }

    async fn send(self, to: &dyn Publisher) {
        match self {
            Self::Status(ev) => to.status(&ev).await,
            Self::Progress(ev) => to.progress(&ev).await,
            Self::Result(task) => to.result(&task).await,
            Self::Stats(stats) => to.stats(&stats).await,
        }
    }
}

/// Most pushes sent at once by a [`QueuedPublisher`].
const PUSHES_AT_ONCE: usize = 256;

/// A publisher whose pushes are sent by a task of their own: a push
/// through Redis takes a round trip, and the scheduler must not wait
/// for it. Pushes are only ever sent after the state they announce is
/// stored, so one still in this queue when the node dies is lost exactly
/// as one lost in Redis would be: clients get the task again with
/// `subscribe`.
///
/// The pushes queued are sent together, so that the Redis connection
/// carries them in a few writes instead of one round trip each: a run of
/// pushes to different rooms at once (they are started in order, and
/// Redis runs one connection's commands in order), and the next run when
/// it is done, so that two pushes to one room keep their order on every
/// node.
pub struct QueuedPublisher {
    tx: mpsc::UnboundedSender<Push>,
}

impl QueuedPublisher {
    /// Sends through `inner`, from a task that ends when this is dropped.
    pub fn new(inner: Arc<dyn Publisher>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Push>();
        tokio::spawn(async move {
            let mut queued = Vec::with_capacity(PUSHES_AT_ONCE);
            let mut rooms = HashSet::new();
            while rx.recv_many(&mut queued, PUSHES_AT_ONCE).await > 0 {
                let mut pushes = queued.drain(..).peekable();
                while pushes.peek().is_some() {
                    rooms.clear();
                    let mut run = Vec::new();
                    while let Some(push) = pushes.next_if(|p| rooms.insert(p.task())) {
                        run.push(push.send(&*inner));
                    }
                    futures_util::future::join_all(run).await;
                }
            }
        });
        Self { tx }
    }

    fn send(&self, push: Push) -> BoxFuture<'static, ()> {
        if self.tx.send(push).is_err() {
            tracing::warn!("the push queue has stopped; a push was not sent");
        }
        std::future::ready(()).boxed()
    }
}

impl Publisher for QueuedPublisher {
    fn status<'a>(&'a self, ev: &'a StatusEvent) -> BoxFuture<'a, ()> {
        self.send(Push::Status(ev.clone()))
    }

    fn progress<'a>(&'a self, ev: &'a ProgressEvent) -> BoxFuture<'a, ()> {
        self.send(Push::Progress(ev.clone()))
    }

    fn result<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, ()> {
        self.send(Push::Result(Box::new(task.clone())))
    }

    fn stats<'a>(&'a self, stats: &'a Stats) -> BoxFuture<'a, ()> {
        self.send(Push::Stats(Box::new(stats.clone())))
    }
}
