//! The scheduler's ports on Socket.IO: pushes to rooms (`status`,
//! `progress`, `result` to a task's room, `stats` to the dashboard), a
//! client socket joining and leaving rooms or getting a task's pushes as
//! its follower, and replies that are acks.
//! Emit failures are logged, never ignored silently: the task's state is
//! already stored, so a client that missed a push gets the task again with
//! `subscribe`.

use std::sync::Arc;

use app::{Ack, ProgressEvent, Stats, StatusEvent, Task, TaskAck, TasksAck, events};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use socketioxide::BroadcastError;
use socketioxide::SocketIo;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, SocketRef};

use crate::scheduler::{
    Client, ClientId, ClientPort, DoneReply, Publisher, StatsReply, TaskReply, TasksReply,
};

/// Pushes through the Socket.IO server. With a remote adapter (cluster
/// mode), a push to a room reaches its sockets on every node, and closing a
/// room empties it on every node.
pub struct RoomPublisher<A: Adapter> {
    io: SocketIo<A>,
    /// Every socket is on this node (the in-memory adapter), so a room no
    /// socket here has joined is empty: its pushes are skipped before they
    /// are written. Most rooms are: a task's submitter gets its pushes as
    /// its follower, and only `subscribe` puts sockets in its room.
    all_here: bool,
}

// Not derived: that would ask for `A: Clone`, which adapters are not.
impl<A: Adapter> Clone for RoomPublisher<A> {
    fn clone(&self) -> Self {
        Self {
            io: self.io.clone(),
            all_here: self.all_here,
        }
    }
}

impl RoomPublisher<LocalAdapter> {
    /// A single server's: every room's sockets are here.
    pub fn local(io: SocketIo<LocalAdapter>) -> Self {
        Self { io, all_here: true }
    }
}

impl<A: Adapter> RoomPublisher<A> {
    /// A cluster node's: a room may have sockets on other nodes.
    pub fn shared(io: SocketIo<A>) -> Self {
        Self {
            io,
            all_here: false,
        }
    }

    /// Whether a push to `room` would reach no socket: known only when
    /// every socket is here. It is read just before the push, on the same
    /// task, so it sees every join the push would have seen.
    fn surely_empty(&self, room: &str) -> bool {
        self.all_here && self.io.local().to(room.to_owned()).sockets().is_empty()
    }

    /// Pushes to `room` unless it is surely empty.
    async fn to_room<T: Serialize + ?Sized>(&self, room: String, event: &str, data: &T) {
        if !self.surely_empty(&room) {
            self.broadcast(room, event, data).await;
        }
    }

    /// Pushes to `room` on every node. If the other nodes cannot be
    /// reached (a remote adapter's error: it then delivered to no socket,
    /// this node's included), this node's sockets get the push anyway.
    async fn broadcast<T: Serialize + ?Sized>(&self, room: String, event: &str, data: &T) {
        match self.io.to(room.clone()).emit(event, data).await {
            Ok(()) => {}
            Err(BroadcastError::Adapter(e)) => {
                tracing::warn!(event, error = %e, "push not sent to the other nodes; this node's sockets only");
                if let Err(e) = self.io.local().to(room).emit(event, data).await {
                    tracing::warn!(event, error = %e, "push not delivered to every socket");
                }
            }
            Err(e) => tracing::warn!(event, error = %e, "push not delivered to every socket"),
        }
    }

    /// Empties `room` on every node; on this node alone if the others
    /// cannot be reached (sockets elsewhere then stay in it until they
    /// disconnect; a finished task's room gets no more pushes).
    async fn close_room(&self, room: String) {
        if let Err(e) = self.io.within(room.clone()).leave(room.clone()).await {
            tracing::warn!(error = %e, "closing a finished task's room on every node failed");
            if let Err(e) = self.io.local().within(room.clone()).leave(room).await {
                tracing::warn!(error = %e, "closing a finished task's room failed");
            }
        }
    }
}

impl<A: Adapter> Publisher for RoomPublisher<A> {
    fn status<'a>(&'a self, ev: &'a StatusEvent) -> BoxFuture<'a, ()> {
        self.to_room(ev.task_id.room(), events::STATUS, ev).boxed()
    }

    fn progress<'a>(&'a self, ev: &'a ProgressEvent) -> BoxFuture<'a, ()> {
        self.to_room(ev.task_id.room(), events::PROGRESS, ev)
            .boxed()
    }

    fn result<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, ()> {
        async move {
            let room = task.id.room();
            // Nobody to tell, and no room to close.
            if self.surely_empty(&room) {
                return;
            }
            self.broadcast(room.clone(), events::RESULT, task).await;
            self.close_room(room).await;
        }
        .boxed()
    }

    /// `stats` goes to this node's own dashboard sockets only (`local()`):
    /// in cluster mode every node pushes its own `stats` to its own
    /// sockets, so a broadcast through the adapter would give each
    /// dashboard one copy per node, and cost Redis traffic for nothing.
    fn stats<'a>(&'a self, stats: &'a Stats) -> BoxFuture<'a, ()> {
        async move {
            let local = self.io.local().to(events::DASHBOARD_ROOM);
            if let Err(e) = local.emit(events::STATS, stats).await {
                tracing::warn!(event = events::STATS, error = %e, "push not delivered to every socket");
            }
        }
        .boxed()
    }
}

/// A client socket, as the scheduler sees it. Joining and leaving rooms
/// is local to this node whatever the adapter: the socket lives here.
struct SocketClient<A: Adapter>(SocketRef<A>);

impl<A: Adapter> ClientPort for SocketClient<A> {
    fn id(&self) -> ClientId {
        let mut id = [0; 16];
        let sid = self.0.id.as_str();
        let n = sid.len().min(16);
        id[..n].copy_from_slice(&sid.as_bytes()[..n]);
        ClientId(id)
    }

    fn join(&self, rooms: Vec<String>) {
        self.0.join(rooms);
    }

    fn leave(&self, room: String) {
        self.0.leave(room);
    }

    fn status(&self, ev: &StatusEvent) {
        self.push(events::STATUS, ev);
    }

    fn progress(&self, ev: &ProgressEvent) {
        self.push(events::PROGRESS, ev);
    }

    fn result(&self, task: &Task) {
        self.push(events::RESULT, task);
    }
}

impl<A: Adapter> SocketClient<A> {
    fn push<T: Serialize + ?Sized>(&self, event: &str, data: &T) {
        // A socket that is gone gets nothing, as a room would do.
        if let Err(e) = self.0.emit(event, data) {
            tracing::debug!(event, error = %e, "push not delivered to its follower");
        }
    }
}

/// `socket` as a client of the scheduler.
pub fn client<A: Adapter>(socket: SocketRef<A>) -> Client {
    Arc::new(SocketClient(socket))
}

pub fn send_ack<A: Adapter, T: Serialize + ?Sized>(ack: AckSender<A>, body: &T) {
    if let Err(e) = ack.send(body) {
        tracing::debug!(error = %e, "ack not sent");
    }
}

/// Acks a submission: `{ok, tasks}` for a batch (`tasks`), else `{ok, task}`.
pub fn submitted_ack<A: Adapter>(ack: AckSender<A>, batch: bool) -> TasksReply {
    TasksReply::new(move |answer| match answer {
        Ok(s) if batch => send_ack(
            ack,
            &TasksAck {
                ok: true,
                tasks: s.tasks.to_vec(),
                deduplicated: s.deduplicated,
            },
        ),
        Ok(s) => match s.tasks.first() {
            Some(task) => send_ack(
                ack,
                &TaskAck::submitted(task, s.deduplicated.first() == Some(&true)),
            ),
            None => send_ack(ack, &Ack::error(app::ErrorBody::invalid("no task"))),
        },
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}

/// Acks a `retry` with `{ok, task}`: the new task.
pub fn retried_ack<A: Adapter>(ack: AckSender<A>) -> TasksReply {
    TasksReply::new(
        move |answer| match answer.map(|s| s.tasks.first().copied()) {
            Ok(Some(task)) => send_ack(ack, &TaskAck::new(task)),
            Ok(None) => send_ack(ack, &Ack::error(app::ErrorBody::invalid("no task"))),
            Err(e) => send_ack(ack, &Ack::error(e)),
        },
    )
}

/// Acks with `{ok, task}`.
pub fn task_ack<A: Adapter>(ack: AckSender<A>) -> TaskReply {
    TaskReply::new(move |answer| match answer {
        Ok(task) => send_ack(ack, &TaskAck::new(task)),
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}

/// Acks with `{ok: true}`.
pub fn done_ack<A: Adapter>(ack: AckSender<A>) -> DoneReply {
    DoneReply::new(move |answer| match answer {
        Ok(()) => send_ack(ack, &Ack::ok()),
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}

/// Acks with `{ok, stats}`.
pub fn stats_ack<A: Adapter>(ack: AckSender<A>) -> StatsReply {
    StatsReply::new(move |answer| match answer {
        Ok(stats) => send_ack(ack, &Ack::stats(stats)),
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}
