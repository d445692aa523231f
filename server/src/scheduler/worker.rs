//! The scheduler's view of one worker: its link, its free slots per
//! [`Class`], the tasks it holds, and the frames queued for it in this round.

use std::borrow::Cow;
use std::collections::HashMap;

use app::{Task, TaskId, TaskRef, WorkerId, WorkerInfo, WorkerState, events};
use bytes::{Bytes, BytesMut};
use socketioxide::extract::SocketRef;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kinds::Class;
use crate::pool::frame::{ToWorker, encode};

/// How many tasks of each class a worker runs at once, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub cpu: u32,
    pub io: u32,
    pub total: u32,
}

impl Slots {
    /// Separate slots per class (a local worker process).
    pub fn per_class(cpu: u32, io: u32) -> Self {
        Self {
            cpu,
            io,
            total: cpu.saturating_add(io),
        }
    }

    /// `n` slots shared by every class (a remote worker's `concurrency`).
    pub fn shared(n: u32) -> Self {
        Self {
            cpu: n,
            io: n,
            total: n,
        }
    }
}

/// How the scheduler reaches a worker.
pub enum Link {
    /// A process the pool spawned: frames go to its stdin; `kill` ends it.
    Local {
        tx: mpsc::UnboundedSender<Bytes>,
        kill: CancellationToken,
    },
    /// A worker connected over the `/worker` namespace.
    Remote { socket: SocketRef },
}

/// A worker announcing itself to the scheduler.
pub struct WorkerLink {
    pub id: WorkerId,
    /// Tells this process apart from an earlier one with the same id.
    pub incarnation: u64,
    pub slots: Slots,
    pub link: Link,
    /// Kinds it runs; `None` means every kind.
    pub kinds: Option<Vec<String>>,
    /// OS process id of a local worker.
    pub pid: Option<u32>,
}

pub(super) struct Worker {
    pub id: WorkerId,
    pub incarnation: u64,
    pub tasks_done: u64,
    slots: Slots,
    link: Link,
    kinds: Option<Vec<String>>,
    pid: Option<u32>,
    running: HashMap<TaskId, Class>,
    busy: Slots,
    out: BytesMut,
}

impl Worker {
    pub fn new(link: WorkerLink) -> Self {
        Self {
            id: link.id,
            incarnation: link.incarnation,
            tasks_done: 0,
            slots: link.slots,
            link: link.link,
            kinds: link.kinds,
            pid: link.pid,
            running: HashMap::new(),
            busy: Slots {
                cpu: 0,
                io: 0,
                total: 0,
            },
            out: BytesMut::new(),
        }
    }

    /// Free slots for tasks of `class`.
    pub fn free(&self, class: Class) -> u32 {
        let of_class = match class {
            Class::Cpu => self.slots.cpu.saturating_sub(self.busy.cpu),
            Class::Io => self.slots.io.saturating_sub(self.busy.io),
        };
        of_class.min(self.slots.total.saturating_sub(self.busy.total))
    }

    /// Whether it runs tasks of `kind`.
    pub fn accepts(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }

    fn busy_mut(&mut self, class: Class) -> &mut u32 {
        match class {
            Class::Cpu => &mut self.busy.cpu,
            Class::Io => &mut self.busy.io,
        }
    }

    /// Takes a slot for `task` and hands it over (written at [`flush`]).
    ///
    /// [`flush`]: Worker::flush
    pub fn start(&mut self, task: &Task, class: Class) {
        self.running.insert(task.id, class);
        *self.busy_mut(class) += 1;
        self.busy.total += 1;
        match &self.link {
            Link::Local { .. } => {
                let frame = ToWorker::Run {
                    id: task.id,
                    kind: Cow::Borrowed(&task.kind),
                    input: Cow::Borrowed(&task.input),
                };
                if let Err(e) = encode(&frame, &mut self.out) {
                    tracing::error!(task = %task.id, error = %e, "cannot hand task over");
                    self.kill();
                }
            }
            Link::Remote { socket } => {
                if let Err(e) = socket.emit(events::JOB, task) {
                    tracing::warn!(worker = ?self.id.0, error = %e, "job not delivered");
                    self.kill();
                }
            }
        }
    }

    /// Asks the worker to stop `id`. A local worker keeps the slot taken
    /// until it answers `Stopped` (returns `true`: wait for it, kill it if it
    /// does not come). The remote protocol has no such answer, so a remote
    /// worker's slot is freed at once (returns `false`).
    pub fn stop(&mut self, id: TaskId) -> bool {
        match &self.link {
            Link::Local { .. } => {
                if let Err(e) = encode(&ToWorker::Stop { id }, &mut self.out) {
                    tracing::error!(task = %id, error = %e, "cannot send stop");
                }
            }
            Link::Remote { socket } => {
                if let Err(e) = socket.emit(events::CANCEL, &TaskRef::from(id)) {
                    tracing::warn!(worker = ?self.id.0, error = %e, "cancel not delivered");
                }
                self.release(id);
                return false;
            }
        }
        true
    }

    /// Frees the slot of `id` (the worker answered for it).
    pub fn release(&mut self, id: TaskId) {
        if let Some(class) = self.running.remove(&id) {
            *self.busy_mut(class) -= 1;
            self.busy.total -= 1;
        }
    }

    /// Whether `id` still holds one of its slots.
    pub fn holds(&self, id: TaskId) -> bool {
        self.running.contains_key(&id)
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    pub fn running_tasks(&self) -> Vec<TaskId> {
        self.running.keys().copied().collect()
    }

    /// Ends the worker; the pool (or the socket's disconnect) reports it down.
    pub fn kill(&self) {
        match &self.link {
            Link::Local { kill, .. } => kill.cancel(),
            Link::Remote { socket } => {
                let _ = socket.clone().disconnect();
            }
        }
    }

    /// Sends the frames queued in this round in one write.
    pub fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if let Link::Local { tx, .. } = &self.link
            && tx.send(self.out.split().freeze()).is_err()
        {
            // The process is gone; its supervisor reports it down.
            self.out.clear();
        }
    }

    pub fn info(&self) -> WorkerInfo {
        WorkerInfo {
            id: self.id.clone(),
            state: if self.running.is_empty() {
                WorkerState::Idle
            } else {
                WorkerState::Busy
            },
            current_task: self.running.keys().min().copied(),
            running: self.running.len() as u32,
            tasks_done: self.tasks_done,
            remote: matches!(self.link, Link::Remote { .. }),
            pid: self.pid,
        }
    }
}
