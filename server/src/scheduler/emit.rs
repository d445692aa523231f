//! Pushes to sockets: `status`, `progress`, `result` to a task's room and
//! `stats` to the dashboard room. Emit failures are logged, never ignored
//! silently: the task's state is already stored, so a client that missed a
//! push gets the task again with `subscribe`.

use app::{ProgressEvent, Stats, StatusEvent, Task, events};
use serde::Serialize;
use socketioxide::SocketIo;

/// The scheduler's handle to the Socket.IO server (`None` when it runs
/// without one, as in unit tests).
#[derive(Clone, Default)]
pub struct Emitter {
    io: Option<SocketIo>,
}

impl Emitter {
    pub fn new(io: SocketIo) -> Self {
        Self { io: Some(io) }
    }

    async fn to_room<T: Serialize + ?Sized>(&self, room: String, event: &str, data: &T) {
        let Some(io) = &self.io else { return };
        if let Err(e) = io.to(room).emit(event, data).await {
            tracing::warn!(event, error = %e, "push not delivered to every socket");
        }
    }

    /// `status` on a transition to `queued` or `running`.
    pub async fn status(&self, ev: &StatusEvent) {
        self.to_room(ev.task_id.room(), events::STATUS, ev).await;
    }

    /// `progress` of a running task.
    pub async fn progress(&self, ev: &ProgressEvent) {
        self.to_room(ev.task_id.room(), events::PROGRESS, ev).await;
    }

    /// `result` of a final task, then closes its room: every socket leaves,
    /// so finished tasks cost no per-socket memory.
    pub async fn result(&self, task: &Task) {
        let room = task.id.room();
        self.to_room(room.clone(), events::RESULT, task).await;
        let Some(io) = &self.io else { return };
        if let Err(e) = io.within(room.clone()).leave(room).await {
            tracing::warn!(error = %e, "closing a finished task's room failed");
        }
    }

    /// `stats` to the dashboard.
    pub async fn stats(&self, stats: &Stats) {
        self.to_room(events::DASHBOARD_ROOM.to_owned(), events::STATS, stats)
            .await;
    }
}

/// The `status` push announcing `task`'s current state.
pub fn status_of(task: &Task) -> StatusEvent {
    StatusEvent {
        task_id: task.id,
        status: task.status,
        attempt: task.attempt,
        worker: task.worker.clone(),
    }
}
