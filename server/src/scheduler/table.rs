//! The task table: every task the scheduler knows, the run queues, and the
//! counts (scheduled, waiting, queued, running, finished by status,
//! unfinished per client, bytes of kept payloads), the idempotency keys and
//! the concurrency keys. It is the only code that changes a task's status or
//! a count, through the verbs of the lifecycle — enqueue, release, hold,
//! start, requeue, reschedule, settle, withdraw, shelve, prune — so the
//! counts cannot drift from the tasks.

use std::collections::{HashMap, VecDeque};

use app::{ErrorBody, Task, TaskId, TaskStatus, Timestamp, WorkerId};
use tokio::time::Instant;
use tokio_util::time::delay_queue;

use super::IdMap;
use super::depth::{Depth, KindDepth};

use super::limits::Limits;
use super::ports::{Client, ClientId};
use super::queue::{KindQueues, Place};
use super::retention::{Payload, payload_bytes, strip_payload};
use super::stats::Counters;
use crate::kinds::Class;
use crate::store::Key;

mod index;
mod prune;

use index::{Lookups, indexed, set_status, unindexed};

/// One task and what the scheduler needs to know about it.
pub(super) struct Entry {
    pub task: Task,
    pub class: Class,
    /// Its place in line among tasks of its priority (submission order).
    pub seq: u64,
    /// The attempt's timeout, while running.
    pub timer: Option<delay_queue::Key>,
    /// Changed since the last commit (durable mode).
    pub dirty: bool,
    /// Its row is in the store, or on its way there in a commit under way
    /// (durable mode): later commits write only its state.
    pub stored: bool,
    /// Where its input, output and error are, once finished.
    pub payload: Payload,
    /// The client that submitted it, while it is unfinished.
    owner: Option<ClientId>,
    /// The client that gets its pushes without being in its room (its
    /// submitter on a single server), until its `result` went out.
    pub follower: Option<Client>,
    /// When it became queued (while queued) or running (while running):
    /// its queue wait and run time.
    pub since: Instant,
}

impl Entry {
    /// Where the store keeps its row.
    pub fn key(&self) -> Key {
        Key {
            id: self.task.id,
            seq: self.seq,
        }
    }
}

/// The client submitting tasks: counted against its limit of unfinished
/// tasks, and, when `follows`, their follower (see [`ClientPort`]).
///
/// [`ClientPort`]: super::ports::ClientPort
pub(super) struct Owner {
    pub id: ClientId,
    pub client: Client,
    pub follows: bool,
}

impl Entry {
    /// Whether `client` is the task's follower (gets its pushes directly).
    pub fn followed_by(&self, client: ClientId) -> bool {
        self.follower.as_ref().is_some_and(|f| f.id() == client)
    }
}

/// What the scheduler still has to undo for a task that left `running`.
pub(super) struct Left {
    /// Its timeout, to cancel.
    pub timer: Option<delay_queue::Key>,
    /// The worker it ran on, if it was running.
    pub worker: Option<WorkerId>,
    /// How long it ran, if it was running.
    pub ran: Option<std::time::Duration>,
}

#[derive(Default)]
pub(super) struct TaskTable {
    /// Boxed entries keep the table small, so growing it copies little.
    tasks: IdMap<TaskId, Box<Entry>>,
    queues: [KindQueues; 2],
    scheduled: usize,
    waiting: usize,
    /// Queued and running tasks, in all and by kind.
    depth: Depth,
    /// Tasks by idempotency key: unfinished ones, and finished ones until
    /// they leave `keyed_finished`.
    keys: HashMap<String, TaskId>,
    /// Finished tasks with a key, oldest first: kept for the dedup window
    /// even when retention would drop them sooner.
    keyed_finished: VecDeque<TaskId>,
    /// Running tasks per concurrency key, and queued ones set aside.
    limits: Limits,
    next_seq: u64,
    /// Finished tasks, oldest first (retention drops from the front).
    finished: VecDeque<TaskId>,
    counters: Counters,
    /// Unfinished tasks per submitting client.
    unfinished: IdMap<ClientId, usize>,
    /// Payload bytes of the finished tasks kept in memory (no store).
    kept_bytes: usize,
    /// `list` and attempts, on an in-memory server only (see `index`).
    lookups: Option<Box<Lookups>>,
}

fn queue_index(class: Class) -> usize {
    match class {
        Class::Cpu => 0,
        Class::Io => 1,
    }
}

impl TaskTable {
    /// Sized for `capacity` tasks up front: one allocation instead of a
    /// rehash every doubling.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tasks: IdMap::with_capacity_and_hasher(capacity, Default::default()),
            ..Self::default()
        }
    }

    pub fn get(&self, id: &TaskId) -> Option<&Entry> {
        self.tasks.get(id).map(|e| &**e)
    }

    /// For what is not a status or a count: progress, the dirty flag.
    pub fn get_mut(&mut self, id: &TaskId) -> Option<&mut Entry> {
        self.tasks.get_mut(id).map(|e| &mut **e)
    }

    pub fn contains(&self, id: &TaskId) -> bool {
        self.tasks.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn queued(&self) -> usize {
        self.depth.queued
    }

    pub fn scheduled(&self) -> usize {
        self.scheduled
    }

    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// The task holding idempotency key `key`: an unfinished one, or one
    /// that finished at or after `since` (ms since the epoch).
    pub fn key_holder(&self, key: &str, since: i64) -> Option<TaskId> {
        let id = *self.keys.get(key)?;
        let task = &self.tasks.get(&id)?.task;
        task.finished_at
            .is_none_or(|t| t.millis() >= since)
            .then_some(id)
    }

    pub fn running(&self) -> usize {
        self.depth.running
    }

    /// Queued and running tasks of each kind that has some.
    pub fn by_kind(&self) -> impl Iterator<Item = (&String, &KindDepth)> {
        self.depth.by_kind()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Unfinished tasks `client` submitted.
    pub fn unfinished_of(&self, client: ClientId) -> usize {
        self.unfinished.get(&client).copied().unwrap_or(0)
    }

    /// Ids of the running tasks.
    pub fn running_ids(&self) -> Vec<TaskId> {
        self.tasks
            .values()
            .filter(|e| e.task.status == TaskStatus::Running)
            .map(|e| e.task.id)
            .collect()
    }

    /// Ids of the queued tasks.
    pub fn queued_ids(&self) -> Vec<TaskId> {
        self.tasks
            .values()
            .filter(|e| e.task.status == TaskStatus::Queued)
            .map(|e| e.task.id)
            .collect()
    }

    /// Ids of every task held.
    pub fn ids(&self) -> Vec<TaskId> {
        self.tasks.keys().copied().collect()
    }

    /// A new task, `queued`, last in line among its priority, with the
    /// client that submitted it and whether that client follows it.
    pub fn enqueue(&mut self, task: Task, class: Class, owner: Option<&Owner>, dirty: bool) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(owner) = owner {
            *self.unfinished.entry(owner.id).or_default() += 1;
        }
        self.insert(task, class, seq, dirty, owner, false);
    }

    /// A task as a store held it, in its old place in line. One that was
    /// running comes back running, without a worker: the caller requeues
    /// or settles it.
    pub fn restore(&mut self, task: Task, class: Class, seq: u64, dirty: bool) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.insert(task, class, seq, dirty, None, true);
    }

    fn insert(
        &mut self,
        mut task: Task,
        class: Class,
        seq: u64,
        dirty: bool,
        owner: Option<&Owner>,
        stored: bool,
    ) {
        let id = task.id;
        let mut payload = Payload::Live;
        if let Some(key) = &task.key {
            self.keys.insert(key.clone(), id);
        }
        match task.status {
            TaskStatus::Scheduled => self.scheduled += 1,
            TaskStatus::Waiting => self.waiting += 1,
            TaskStatus::Queued => {
                self.queues[queue_index(class)].push(
                    &task.kind,
                    Place {
                        priority: task.priority,
                        seq,
                        id,
                    },
                );
                self.depth.queue(&task.kind);
            }
            // Only restored tasks come in running (their worker died with
            // the server: the caller requeues or fails them at once) or
            // final (as stored, unless changed since).
            TaskStatus::Running => self.depth.run(&task.kind),
            status if status.is_final() => {
                match task.key {
                    Some(_) => self.keyed_finished.push_back(id),
                    None => self.finished.push_back(id),
                }
                if !dirty {
                    strip_payload(&mut task);
                    payload = Payload::Stored;
                }
            }
            _ => {}
        }
        indexed(&mut self.lookups, &task, seq);
        let entry = Entry {
            task,
            class,
            seq,
            timer: None,
            dirty,
            stored,
            payload,
            owner: owner.map(|o| o.id),
            follower: owner.and_then(|o| o.follows.then(|| o.client.clone())),
            since: Instant::now(),
        };
        self.tasks.insert(id, Box::new(entry));
    }

    /// Takes the first queued task in line of `class` among the kinds
    /// `runnable` accepts.
    pub fn next_runnable(
        &mut self,
        class: Class,
        mut runnable: impl FnMut(&str) -> bool,
    ) -> Option<TaskId> {
        let queue = &mut self.queues[queue_index(class)];
        while let Some(place) = queue.pop_runnable(&mut runnable) {
            // A place whose task is no longer queued (cancelled while
            // queued) is skipped.
            let Some(task) = self
                .tasks
                .get(&place.id)
                .map(|e| &e.task)
                .filter(|t| t.status == TaskStatus::Queued)
            else {
                continue;
            };
            // One whose concurrency key is at its limit waits aside.
            if let Some(key) = &task.concurrency_key
                && self.limits.full(key, task.concurrency_limit)
            {
                self.limits.park(key, place);
                continue;
            }
            return Some(place.id);
        }
        None
    }

    /// A scheduled or waiting task joins the run queue, in its place.
    pub fn release(&mut self, id: TaskId) -> bool {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return false;
        };
        match entry.task.status {
            TaskStatus::Scheduled => self.scheduled -= 1,
            TaskStatus::Waiting => self.waiting -= 1,
            _ => return false,
        }
        set_status(&mut self.lookups, entry, TaskStatus::Queued);
        entry.since = Instant::now();
        self.depth.queue(&entry.task.kind);
        self.queues[queue_index(entry.class)].push(
            &entry.task.kind,
            Place {
                priority: entry.task.priority,
                seq: entry.seq,
                id,
            },
        );
        true
    }

    /// A scheduled task whose time came waits for its `after` tasks.
    pub fn hold(&mut self, id: TaskId) -> bool {
        let Some(entry) = self
            .tasks
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Scheduled)
        else {
            return false;
        };
        set_status(&mut self.lookups, entry, TaskStatus::Waiting);
        self.scheduled -= 1;
        self.waiting += 1;
        true
    }

    /// A running task whose attempt failed waits for its retry at `run_at`.
    pub fn reschedule(&mut self, id: TaskId, run_at: Timestamp) -> Option<Left> {
        let entry = self
            .tasks
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Running)?;
        entry.task.run_at = Some(run_at);
        self.leave_running(id, TaskStatus::Scheduled)
    }

    /// A running task goes back to `status` (`queued` or `scheduled`):
    /// the counts move, its attempt's start, progress and worker are
    /// cleared, and what the caller must undo is returned.
    fn leave_running(&mut self, id: TaskId, status: TaskStatus) -> Option<Left> {
        let entry = self
            .tasks
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Running)?;
        self.depth.unrun(&entry.task.kind);
        match status {
            TaskStatus::Queued => self.depth.queue(&entry.task.kind),
            _ => self.scheduled += 1,
        }
        set_status(&mut self.lookups, entry, status);
        entry.since = Instant::now();
        let task = &mut entry.task;
        task.started_at = None;
        task.progress = None;
        let left = Left {
            timer: entry.timer.take(),
            worker: task.worker.take(),
            ran: None,
        };
        self.stopped_running(id);
        Some(left)
    }

    /// A task left `running`: a task parked under its concurrency key may
    /// take its turn.
    fn stopped_running(&mut self, id: TaskId) {
        let Some(key) = self
            .tasks
            .get(&id)
            .and_then(|e| e.task.concurrency_key.as_deref())
        else {
            return;
        };
        if let Some(place) = self.limits.stopped(key)
            && let Some(e) = self.tasks.get(&place.id)
        {
            self.queues[queue_index(e.class)].push(&e.task.kind, place);
        }
    }

    /// Puts a task taken by [`TaskTable::next_runnable`] back in its place.
    pub fn unpop(&mut self, id: TaskId) {
        if let Some(e) = self.tasks.get(&id) {
            self.queues[queue_index(e.class)].push(
                &e.task.kind,
                Place {
                    priority: e.task.priority,
                    seq: e.seq,
                    id,
                },
            );
        }
    }

    /// A queued task starts its next attempt on `worker`.
    pub fn start(&mut self, id: TaskId, worker: WorkerId) -> Option<&mut Entry> {
        let entry = self
            .tasks
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Queued)?;
        self.depth.unqueue(&entry.task.kind);
        self.depth.run(&entry.task.kind);
        set_status(&mut self.lookups, entry, TaskStatus::Running);
        entry.since = Instant::now();
        let task = &mut entry.task;
        task.attempt += 1;
        task.worker = Some(worker);
        task.started_at = Some(Timestamp::now());
        task.progress = None;
        if let Some(key) = &task.concurrency_key {
            self.limits.started(key);
        }
        Some(entry)
    }

    /// A running task goes back in line, in its old place. Its attempt
    /// counts (a lost worker) or not (a drain's end: it never really ran).
    pub fn requeue(&mut self, id: TaskId, attempt_counts: bool) -> Option<Left> {
        let entry = self
            .tasks
            .get_mut(&id)
            .filter(|e| e.task.status == TaskStatus::Running)?;
        if !attempt_counts {
            entry.task.attempt = entry.task.attempt.saturating_sub(1);
        }
        self.queues[queue_index(entry.class)].push(
            &entry.task.kind,
            Place {
                priority: entry.task.priority,
                seq: entry.seq,
                id,
            },
        );
        self.leave_running(id, TaskStatus::Queued)
    }

    /// An unfinished task becomes final; `None` if it was final already.
    pub fn settle(
        &mut self,
        id: TaskId,
        status: TaskStatus,
        output: Option<app::Json>,
        error: Option<ErrorBody>,
    ) -> Option<Left> {
        let entry = self.tasks.get_mut(&id)?;
        let was_running = entry.task.status == TaskStatus::Running;
        let worker = match entry.task.status {
            TaskStatus::Scheduled => {
                self.scheduled -= 1;
                None
            }
            TaskStatus::Waiting => {
                self.waiting -= 1;
                None
            }
            TaskStatus::Queued => {
                self.depth.unqueue(&entry.task.kind);
                None
            }
            TaskStatus::Running => {
                self.depth.unrun(&entry.task.kind);
                entry.task.worker.clone()
            }
            _ => return None,
        };
        let owner = entry.owner.take();
        let timer = entry.timer.take();
        set_status(&mut self.lookups, entry, status);
        let entry_since = entry.since;
        let task = &mut entry.task;
        task.output = output;
        task.error = error.map(Box::new);
        task.finished_at = Some(Timestamp::now());
        self.counters.count(status);
        if let Some(client) = owner {
            self.forget_owner(client);
        }
        if was_running {
            self.stopped_running(id);
        }
        let ran = was_running.then(|| entry_since.elapsed());
        Some(Left { timer, worker, ran })
    }

    /// Removes a task as if it had never been submitted (its submission
    /// could not be stored), wherever it is in its life.
    pub fn withdraw(&mut self, id: TaskId) -> Option<Entry> {
        if self.tasks.get(&id)?.task.status == TaskStatus::Running {
            self.stopped_running(id);
        }
        let mut entry = *self.tasks.remove(&id)?;
        unindexed(&mut self.lookups, &entry.task, entry.seq);
        if let Some(key) = &entry.task.key
            && self.keys.get(key) == Some(&id)
        {
            self.keys.remove(key);
        }
        match entry.task.status {
            TaskStatus::Scheduled => self.scheduled -= 1,
            TaskStatus::Waiting => self.waiting -= 1,
            // Its place in line is skipped.
            TaskStatus::Queued => self.depth.unqueue(&entry.task.kind),
            TaskStatus::Running => self.depth.unrun(&entry.task.kind),
            done => {
                // Its place among the finished is skipped by `prune`.
                self.counters.uncount(done);
                if let Payload::Kept(bytes) = entry.payload {
                    self.kept_bytes -= bytes as usize;
                }
            }
        }
        if let Some(client) = entry.owner.take() {
            self.forget_owner(client);
        }
        Some(entry)
    }

    /// One fewer unfinished task of `client`.
    fn forget_owner(&mut self, client: ClientId) {
        if let Some(n) = self.unfinished.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.unfinished.remove(&client);
            }
        }
    }

    /// A final task that was published joins the finished ones, its
    /// payload out of memory: with a store it is read from there when asked
    /// for; without one it counts against the byte budget.
    pub fn shelve(&mut self, id: TaskId, durable: bool) {
        let Some(entry) = self.tasks.get_mut(&id) else {
            return;
        };
        if entry.payload != Payload::Live || !entry.task.status.is_final() {
            return;
        }
        if durable {
            strip_payload(&mut entry.task);
            entry.payload = Payload::Stored;
        } else {
            // Counted as kept, so added and taken off alike.
            let bytes = u32::try_from(payload_bytes(&entry.task)).unwrap_or(u32::MAX);
            self.kept_bytes += bytes as usize;
            entry.payload = Payload::Kept(bytes);
        }
        match entry.task.key {
            Some(_) => self.keyed_finished.push_back(id),
            None => self.finished.push_back(id),
        }
    }
}
