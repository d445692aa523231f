//! The scheduler: one actor that owns every task, the run queues and the
//! workers' slots. Everything else talks to it through a [`Dispatcher`].
//!
//! It wakes only on events (a command, a worker's frames, a timer) and after
//! each batch of events hands queued tasks to free slots. A task is handed
//! over only into a free slot, so `running` means the work really started.
//! Pushes are emitted after the state changed, from this one task, so every
//! socket sees a task's events in lifecycle order.
//!
//! The map:
//! - `actor`: the actor's state, its loop, and recovery from a store;
//! - `config`: its settings and their defaults;
//! - `command`: commands, typed replies, the `Dispatcher` handle;
//! - `table`: every task, the run queues and the counts; the only code that
//!   changes a task's status;
//! - `lifecycle`: submissions, and settling a task in its final state;
//! - `pending`: tasks scheduled for later or waiting for others, retries;
//! - `dispatch`: queued tasks to free slots; `queue`: the run queues;
//!   `limits`: concurrency keys;
//! - `reports`: what workers report, and their loss; `worker`: one worker;
//! - `stop`: cancel, timeouts, kills, the graceful drain;
//! - `outbox`: commits to the store, and pushes that wait for them;
//! - `retention`: finished tasks' results, payloads and pruning;
//! - `stats`: counters and the `stats` push;
//! - `lookups`: `list` and attempts in memory, and recording attempts;
//! - `ports`: the traits workers, clients, rooms and the cluster are
//!   reached through;
//! - `cluster`: one node of a cluster (the queue in the database).

mod actor;
mod cluster;
mod command;
mod config;
mod depth;
mod dispatch;
mod here;
mod kinds;
mod latency;
mod lifecycle;
mod limits;
mod lookups;
mod outbox;
mod pending;
mod ports;
mod queue;
mod reports;
mod retention;
mod stats;
mod stop;
mod table;
mod worker;

use here::*;
use outbox::*;

use table::{Left, Owner, TaskTable};

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
use tokio_util::time::DelayQueue;

/// A map keyed by the server's own ids (task ids, which are UUID v7, and
/// socket ids), never by a client's choice: a fast hasher is safe there.
/// SipHash on them cost about 2 % of the scheduler thread under load.
type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub use cluster::ClusterSide;
pub use command::{
    Command, Dispatcher, DoneReply, Mailbox, Reply, StatsReply, Submitted, TaskReply, TasksReply,
    channel,
};
pub use config::SchedulerConfig;
pub use kinds::{KindReply, KindsCommand, KindsReply};
pub use outbox::Durable;
pub use ports::{
    Client, ClientId, ClientPort, ClusterFuture, ClusterPort, PortError, Publisher, Report,
    Stopping, WorkerPort, status_of,
};
pub use queue::{KindQueues, Place, RunQueue};
pub use worker::{Slots, WorkerLink};

use crate::cluster::db::Committed;
use crate::cluster::{Fenced, NodeInfo};
use crate::health::Health;
use crate::kinds::Class;
use crate::metrics::{Metrics, Retry};
use crate::store::{Key, Store, StoredTask, Write};
use actor::{Scheduler, Timer};
use config::PREALLOCATED_TASKS;
use lifecycle::not_found;
use worker::Worker;

/// Where the scheduler keeps its tasks.
pub enum Backing {
    /// In memory only.
    Memory,
    /// The embedded store.
    Durable(Durable),
    /// The cluster's database, shared with other nodes.
    Cluster { side: ClusterSide, health: Health },
}

/// Starts the scheduler actor of server `node`, recording into `metrics`;
/// it runs until `shutdown` is cancelled or every dispatcher is dropped.
pub fn spawn(
    mailbox: Mailbox,
    config: SchedulerConfig,
    publisher: Arc<dyn Publisher>,
    node: NodeInfo,
    backing: Backing,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let mut actor = Scheduler::new(config, publisher, node);
    actor.metrics = metrics;
    match backing {
        Backing::Memory => actor.table.keep_lookups(),
        Backing::Durable(durable) => {
            // Before the recovered tasks go in: it indexes every one.
            actor.table.keep_lookups();
            actor.restore(durable.recovered, &*durable.classify);
            actor.by_kind.paused = durable.paused.into_iter().collect();
            actor.outbox.store = Some(durable.store);
            actor.outbox.health = durable.health;
        }
        Backing::Cluster { side, health } => {
            actor.outbox.cluster = Some(side.link.clone());
            actor.outbox.health = health;
            actor.cluster = Some(side);
        }
    }
    tokio::spawn(actor.run(mailbox.0, shutdown))
}

#[cfg(test)]
mod tests;
