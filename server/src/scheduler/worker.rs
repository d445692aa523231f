//! The scheduler's view of one worker: its port, its free slots per
//! [`Class`] and the tasks it holds.

use app::{Task, TaskId, WorkerId, WorkerInfo, WorkerState};

use super::IdMap;
use super::ports::{Stopping, WorkerPort};
use crate::kinds::Class;

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

/// A worker announcing itself to the scheduler.
pub struct WorkerLink {
    pub id: WorkerId,
    /// Tells this process apart from an earlier one with the same id.
    pub incarnation: u64,
    pub slots: Slots,
    pub port: Box<dyn WorkerPort>,
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
    port: Box<dyn WorkerPort>,
    kinds: Option<Vec<String>>,
    pid: Option<u32>,
    running: IdMap<TaskId, Class>,
    busy: Slots,
}

impl Worker {
    pub fn new(link: WorkerLink) -> Self {
        Self {
            id: link.id,
            incarnation: link.incarnation,
            tasks_done: 0,
            slots: link.slots,
            port: link.port,
            kinds: link.kinds,
            pid: link.pid,
            running: IdMap::default(),
            busy: Slots {
                cpu: 0,
                io: 0,
                total: 0,
            },
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

    /// Free slots in all, whatever the class.
    pub fn free_total(&self) -> u32 {
        self.slots.total.saturating_sub(self.busy.total)
    }

    /// The kinds it runs; `None` means every kind.
    pub fn kinds(&self) -> Option<&[String]> {
        self.kinds.as_deref()
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
        if let Err(e) = self.port.run(task) {
            tracing::warn!(worker = ?self.id.0, task = %task.id, error = %e, "cannot hand the task over; ending the worker");
            self.kill();
        }
    }

    /// Asks the worker to stop `id`. Returns `true` when it will answer
    /// `Stopped` (its slot stays taken until then: wait for it, kill the
    /// worker if it does not come); otherwise the slot is free at once.
    pub fn stop(&mut self, id: TaskId) -> bool {
        match self.port.stop(id) {
            Stopping::Confirmed => true,
            Stopping::Released => {
                self.release(id);
                false
            }
        }
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

    /// Ends the worker; its transport reports it down.
    pub fn kill(&self) {
        self.port.kill();
    }

    /// Sends what was handed over in this round in one write.
    pub fn flush(&mut self) {
        self.port.flush();
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
            remote: self.port.is_remote(),
            pid: self.pid,
            node: String::new(),
        }
    }
}
