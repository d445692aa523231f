//! The scheduler's ports on Socket.IO: pushes to rooms (`status`,
//! `progress`, `result` to a task's room, `stats` to the dashboard), a
//! client socket joining and leaving rooms, and replies that are acks.
//! Emit failures are logged, never ignored silently: the task's state is
//! already stored, so a client that missed a push gets the task again with
//! `subscribe`.

use std::sync::Arc;

use app::{Ack, ProgressEvent, Stats, StatusEvent, Task, TaskAck, TasksAck, events};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef};

use crate::scheduler::{
    Client, ClientId, ClientPort, DoneReply, Publisher, StatsReply, TaskReply, TasksReply,
};

/// Pushes through the Socket.IO server.
#[derive(Clone)]
pub struct RoomPublisher {
    io: SocketIo,
}

impl RoomPublisher {
    pub fn new(io: SocketIo) -> Self {
        Self { io }
    }

    async fn to_room<T: Serialize + ?Sized>(&self, room: String, event: &str, data: &T) {
        if let Err(e) = self.io.to(room).emit(event, data).await {
            tracing::warn!(event, error = %e, "push not delivered to every socket");
        }
    }
}

impl Publisher for RoomPublisher {
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
            self.to_room(room.clone(), events::RESULT, task).await;
            if let Err(e) = self.io.within(room.clone()).leave(room).await {
                tracing::warn!(error = %e, "closing a finished task's room failed");
            }
        }
        .boxed()
    }

    fn stats<'a>(&'a self, stats: &'a Stats) -> BoxFuture<'a, ()> {
        self.to_room(events::DASHBOARD_ROOM.to_owned(), events::STATS, stats)
            .boxed()
    }
}

/// A client socket, as the scheduler sees it.
struct SocketClient(SocketRef);

impl ClientPort for SocketClient {
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
}

/// `socket` as a client of the scheduler.
pub fn client(socket: SocketRef) -> Client {
    Arc::new(SocketClient(socket))
}

pub fn send_ack<T: Serialize + ?Sized>(ack: AckSender, body: &T) {
    if let Err(e) = ack.send(body) {
        tracing::debug!(error = %e, "ack not sent");
    }
}

/// Acks a submission: `{ok, tasks}` for a batch (`tasks`), else `{ok, task}`.
pub fn submitted_ack(ack: AckSender, batch: bool) -> TasksReply {
    TasksReply::new(move |answer| match answer {
        Ok(tasks) if batch => send_ack(
            ack,
            &TasksAck {
                ok: true,
                tasks: tasks.to_vec(),
            },
        ),
        Ok(tasks) => match tasks.first() {
            Some(task) => send_ack(ack, &TaskAck::new(task)),
            None => send_ack(ack, &Ack::error(app::ErrorBody::invalid("no task"))),
        },
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}

/// Acks with `{ok, task}`.
pub fn task_ack(ack: AckSender) -> TaskReply {
    TaskReply::new(move |answer| match answer {
        Ok(task) => send_ack(ack, &TaskAck::new(task)),
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}

/// Acks with `{ok: true}`.
pub fn done_ack(ack: AckSender) -> DoneReply {
    DoneReply::new(move |answer| match answer {
        Ok(()) => send_ack(ack, &Ack::ok()),
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}

/// Acks with `{ok, stats}`.
pub fn stats_ack(ack: AckSender) -> StatsReply {
    StatsReply::new(move |answer| match answer {
        Ok(stats) => send_ack(ack, &Ack::stats(stats)),
        Err(e) => send_ack(ack, &Ack::error(e)),
    })
}
