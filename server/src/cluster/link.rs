//! A node's link to its cluster: the scheduler's [`ClusterPort`] over the
//! database ([`Db`]) and the node bus ([`Bus`]), and a publisher that does
//! not hold the scheduler up while a push crosses Redis.

use std::sync::Arc;
use std::time::Duration;

use app::{ProgressEvent, Stats, StatusEvent, Task, TaskId};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::bus::Bus;
use super::db::{Committed, Db, DbError, Outcome, Promoted, Resolved, Stored, decides_in_database};
use super::redis::{RedisError, RedisHealth};
use super::{
    CancelOutcome, Claimed, ClusterError, Counts, Fenced, NodeInfo, NodeState, Reaped, Signal, Want,
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
    ) -> BoxFuture<'static, Vec<Result<Outcome, ClusterError>>> {
        let db = self.db.clone();
        async move {
            // Those PostgreSQL need not decide for go in one statement.
            let plain: Vec<&Task> = submissions
                .iter()
                .filter(|s| !decides_in_database(s))
                .flatten()
                .collect();
            let plain = db.insert_all(&plain).await.map_err(ClusterError::from);
            let mut outcomes = Vec::with_capacity(submissions.len());
            for tasks in submissions {
                outcomes.push(match decides_in_database(&tasks) {
                    false => plain.clone().map(|()| Ok(Stored::new(tasks))),
                    true => db.submit(&tasks, window).await.map_err(ClusterError::from),
                });
            }
            outcomes
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

/// A publisher whose pushes are sent in order by a task of their own: a
/// push through Redis takes a round trip, and the scheduler must not wait
/// for it. Pushes are only ever sent after the state they announce is
/// stored, so one still in this queue when the node dies is lost exactly
/// as one lost in Redis would be: clients get the task again with
/// `subscribe`.
pub struct QueuedPublisher {
    tx: mpsc::UnboundedSender<Push>,
}

impl QueuedPublisher {
    /// Sends through `inner`, from a task that ends when this is dropped.
    pub fn new(inner: Arc<dyn Publisher>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(push) = rx.recv().await {
                match push {
                    Push::Status(ev) => inner.status(&ev).await,
                    Push::Progress(ev) => inner.progress(&ev).await,
                    Push::Result(task) => inner.result(&task).await,
                    Push::Stats(stats) => inner.stats(&stats).await,
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
