//! The page's record of the tasks it follows: plain data, no reactivity, so
//! every rule (ordering, bounds, filters, event merging) is tested on its
//! own. [`super::live`] wraps it in signals.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::protocol::{ProgressEvent, StatusEvent, Task, TaskId, TaskStatus, Timestamp};

/// Finished tasks kept by default; older ones are dropped and counted.
pub const KEEP_FINISHED: usize = 300;

/// Which tasks the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    All,
    /// Not finished: `scheduled`, `waiting`, `queued` or `running`.
    Active,
    Is(TaskStatus),
}

impl Filter {
    /// Every filter, in the order the page offers them.
    pub const ALL: [Filter; 8] = [
        Filter::All,
        Filter::Active,
        Filter::Is(TaskStatus::Scheduled),
        Filter::Is(TaskStatus::Waiting),
        Filter::Is(TaskStatus::Succeeded),
        Filter::Is(TaskStatus::Failed),
        Filter::Is(TaskStatus::Cancelled),
        Filter::Is(TaskStatus::TimedOut),
    ];

    pub fn matches(self, status: TaskStatus) -> bool {
        match self {
            Filter::All => true,
            Filter::Active => !status.is_final(),
            Filter::Is(s) => s == status,
        }
    }

    /// A short name, also the `data-filter` attribute.
    pub fn name(self) -> &'static str {
        match self {
            Filter::All => "all",
            Filter::Active => "active",
            Filter::Is(s) => s.as_str(),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Active => "Active",
            Filter::Is(TaskStatus::Succeeded) => "Succeeded",
            Filter::Is(TaskStatus::Failed) => "Failed",
            Filter::Is(TaskStatus::Cancelled) => "Cancelled",
            Filter::Is(TaskStatus::TimedOut) => "Timed out",
            Filter::Is(TaskStatus::Queued) => "Queued",
            Filter::Is(TaskStatus::Running) => "Running",
            Filter::Is(TaskStatus::Scheduled) => "Scheduled",
            Filter::Is(TaskStatus::Waiting) => "Waiting",
        }
    }
}

/// What an update did, so the reactive layer re-renders only what changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// The task's row changed.
    pub row: bool,
    /// Membership, order or a status changed: lists and counts move.
    pub list: bool,
    /// Rows dropped to keep the bound.
    pub evicted: Vec<TaskId>,
}

impl Change {
    fn none() -> Self {
        Self::default()
    }
    fn row() -> Self {
        Self {
            row: true,
            ..Self::default()
        }
    }
    fn list() -> Self {
        Self {
            row: true,
            list: true,
            ..Self::default()
        }
    }
}

/// The tasks a page follows, newest first.
#[derive(Debug, Clone)]
pub struct Book {
    keep_finished: usize,
    next_seq: u64,
    /// Insertion sequence → id; iterated backwards for newest first.
    order: BTreeMap<u64, TaskId>,
    rows: HashMap<TaskId, (u64, Task)>,
    /// Finished tasks in the order they finished, oldest first.
    finished: VecDeque<TaskId>,
    dropped: u64,
}

impl Default for Book {
    fn default() -> Self {
        Self::new(KEEP_FINISHED)
    }
}

impl Book {
    /// A book that keeps at most `keep_finished` finished tasks.
    pub fn new(keep_finished: usize) -> Self {
        Self {
            keep_finished,
            next_seq: 0,
            order: BTreeMap::new(),
            rows: HashMap::new(),
            finished: VecDeque::new(),
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Finished tasks dropped to keep the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn get(&self, id: &TaskId) -> Option<&Task> {
        self.rows.get(id).map(|(_, t)| t)
    }

    /// Records a task snapshot (a `task`/`tasks`/`subscribe`/`cancel` ack or
    /// a `result`). A new task goes to the top; a known one is updated, but
    /// never moved back from a final state (late, stale snapshots lose).
    pub fn upsert(&mut self, task: Task) -> Change {
        let id = task.id;
        let Some((_, row)) = self.rows.get_mut(&id) else {
            let final_now = task.status.is_final();
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, id);
            self.rows.insert(id, (seq, task));
            let mut change = Change::list();
            if final_now {
                change.evicted = self.finish(id);
            }
            return change;
        };
        if row.status.is_final() || *row == task {
            return Change::none();
        }
        let became_final = task.status.is_final();
        let status_changed = row.status != task.status;
        *row = task;
        let mut change = if status_changed {
            Change::list()
        } else {
            Change::row()
        };
        if became_final {
            change.evicted = self.finish(id);
        }
        change
    }

    /// Applies a `status` push.
    pub fn status(&mut self, ev: &StatusEvent, now: Timestamp) -> Change {
        let Some((_, row)) = self.rows.get_mut(&ev.task_id) else {
            return Change::none();
        };
        if row.status.is_final() {
            return Change::none();
        }
        let status_changed = row.status != ev.status;
        row.status = ev.status;
        row.attempt = ev.attempt;
        row.worker = ev.worker.clone();
        if ev.status == TaskStatus::Running {
            // The push has no timestamp; the result brings the exact one.
            row.started_at = Some(now);
        } else {
            row.progress = None;
        }
        if status_changed {
            Change::list()
        } else {
            Change::row()
        }
    }

    /// Applies a `progress` push.
    pub fn progress(&mut self, ev: &ProgressEvent) -> Change {
        let Some((_, row)) = self.rows.get_mut(&ev.task_id) else {
            return Change::none();
        };
        if row.status.is_final() {
            return Change::none();
        }
        row.progress = Some(Box::new(crate::protocol::Progress {
            done: ev.done,
            total: ev.total,
            message: ev.message.clone(),
        }));
        Change::row()
    }

    /// Marks `id` finished and drops the oldest finished rows past the bound.
    fn finish(&mut self, id: TaskId) -> Vec<TaskId> {
        self.finished.push_back(id);
        let mut evicted = Vec::new();
        while self.finished.len() > self.keep_finished {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if let Some((seq, _)) = self.rows.remove(&old) {
                self.order.remove(&seq);
                self.dropped += 1;
                evicted.push(old);
            }
        }
        evicted
    }

    /// Ids of the tasks that are not finished (to re-subscribe after a
    /// reconnect).
    pub fn unfinished(&self) -> Vec<TaskId> {
        self.order
            .values()
            .filter(|id| self.get(id).is_some_and(|t| !t.status.is_final()))
            .copied()
            .collect()
    }

    /// Up to `limit` ids matching `filter`, newest first, and how many match
    /// in all.
    pub fn visible(&self, filter: Filter, limit: usize) -> (Vec<TaskId>, usize) {
        let mut shown = Vec::with_capacity(limit.min(self.rows.len()));
        let mut matching = 0;
        for id in self.order.values().rev() {
            if self.get(id).is_some_and(|t| filter.matches(t.status)) {
                matching += 1;
                if shown.len() < limit {
                    shown.push(*id);
                }
            }
        }
        (shown, matching)
    }

    /// Up to `limit` ids of tasks that may still succeed (unfinished or
    /// succeeded), newest first: what a new task may run `after`.
    pub fn after_candidates(&self, limit: usize) -> Vec<TaskId> {
        self.order
            .values()
            .rev()
            .filter(|id| {
                self.get(id)
                    .is_some_and(|t| !t.status.is_final() || t.status == TaskStatus::Succeeded)
            })
            .take(limit)
            .copied()
            .collect()
    }

    /// How many tasks each filter matches.
    pub fn counts(&self) -> HashMap<Filter, usize> {
        let mut counts: HashMap<Filter, usize> = Filter::ALL.iter().map(|f| (*f, 0)).collect();
        for (_, task) in self.rows.values() {
            for f in Filter::ALL {
                if f.matches(task.status) {
                    *counts.entry(f).or_default() += 1;
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorBody, ErrorCode, TaskSpec, WorkerId};
    use serde_json::json;

    fn task(n: u128) -> Task {
        Task::new(
            TaskId(uuid::Uuid::from_u128(n)),
            TaskSpec::new("echo", json!(n as u64)),
            Timestamp::now(),
        )
    }

    fn finished(mut t: Task, status: TaskStatus) -> Task {
        t.status = status;
        t.attempt = 1;
        t.finished_at = Some(Timestamp::now());
        if status == TaskStatus::Succeeded {
            t.output = Some(t.input.clone());
        } else {
            t.error = Some(Box::new(ErrorBody::new(ErrorCode::TaskFailed, "no")));
        }
        t
    }

    fn running(id: TaskId) -> StatusEvent {
        StatusEvent {
            task_id: id,
            status: TaskStatus::Running,
            attempt: 1,
            worker: Some(WorkerId::from("local-1")),
        }
    }

    #[test]
    fn newest_first_and_filters() {
        let mut book = Book::default();
        for n in 1..=3 {
            assert!(book.upsert(task(n)).list);
        }
        let ids = |v: (Vec<TaskId>, usize)| v.0.iter().map(|i| i.0.as_u128()).collect::<Vec<_>>();
        assert_eq!(ids(book.visible(Filter::All, 10)), [3, 2, 1]);
        assert_eq!(ids(book.visible(Filter::All, 2)), [3, 2]);
        assert_eq!(book.visible(Filter::All, 2).1, 3);

        book.upsert(finished(task(2), TaskStatus::Succeeded));
        assert_eq!(ids(book.visible(Filter::Active, 10)), [3, 1]);
        assert_eq!(
            ids(book.visible(Filter::Is(TaskStatus::Succeeded), 10)),
            [2]
        );
        let counts = book.counts();
        assert_eq!(counts[&Filter::All], 3);
        assert_eq!(counts[&Filter::Active], 2);
        assert_eq!(counts[&Filter::Is(TaskStatus::Failed)], 0);
    }

    #[test]
    fn pending_tasks_are_active_and_have_their_own_filters() {
        let mut book = Book::default();
        let mut later = task(1);
        later.status = TaskStatus::Scheduled;
        let mut waits = task(2);
        waits.status = TaskStatus::Waiting;
        waits.after = vec![later.id];
        book.upsert(later.clone());
        book.upsert(waits.clone());
        book.upsert(task(3));
        let counts = book.counts();
        assert_eq!(counts[&Filter::Active], 3);
        assert_eq!(counts[&Filter::Is(TaskStatus::Scheduled)], 1);
        assert_eq!(counts[&Filter::Is(TaskStatus::Waiting)], 1);
        assert_eq!(
            book.visible(Filter::Is(TaskStatus::Waiting), 10).0,
            [waits.id]
        );
        // The scheduled task comes due: it moves from one filter to the other.
        let c = book.status(
            &StatusEvent {
                task_id: later.id,
                status: TaskStatus::Queued,
                attempt: 0,
                worker: None,
            },
            Timestamp::now(),
        );
        assert!(c.list);
        let counts = book.counts();
        assert_eq!(counts[&Filter::Is(TaskStatus::Scheduled)], 0);
        assert_eq!(counts[&Filter::Active], 3);
    }

    #[test]
    fn after_candidates_are_tasks_that_may_still_succeed() {
        let mut book = Book::default();
        for n in 1..=5 {
            book.upsert(task(n));
        }
        book.upsert(finished(task(2), TaskStatus::Succeeded));
        book.upsert(finished(task(3), TaskStatus::Failed));
        book.upsert(finished(task(4), TaskStatus::Cancelled));
        let ids = |v: Vec<TaskId>| v.iter().map(|i| i.0.as_u128()).collect::<Vec<_>>();
        assert_eq!(ids(book.after_candidates(10)), [5, 2, 1]);
        assert_eq!(ids(book.after_candidates(2)), [5, 2]);
    }

    #[test]
    fn progress_touches_one_row_and_status_moves_lists() {
        let mut book = Book::default();
        let t = task(7);
        let id = t.id;
        book.upsert(t);
        let c = book.status(&running(id), Timestamp::now());
        assert!(c.row && c.list);
        assert_eq!(
            book.get(&id).unwrap().worker,
            Some(WorkerId::from("local-1"))
        );
        let c = book.progress(&ProgressEvent {
            task_id: id,
            done: 5,
            total: 10,
            message: None,
        });
        assert_eq!(c, Change::row());
        assert_eq!(book.get(&id).unwrap().progress.as_ref().unwrap().done, 5);
        // Unknown ids change nothing.
        let other = TaskId(uuid::Uuid::from_u128(99));
        assert_eq!(
            book.status(&running(other), Timestamp::now()),
            Change::none()
        );
    }

    #[test]
    fn final_state_is_never_undone() {
        let mut book = Book::default();
        let t = task(1);
        let id = t.id;
        book.upsert(t.clone());
        let done = finished(t.clone(), TaskStatus::Cancelled);
        assert!(book.upsert(done.clone()).list);
        // A stale snapshot, a late status and late progress are ignored.
        assert_eq!(book.upsert(t), Change::none());
        assert_eq!(book.status(&running(id), Timestamp::now()), Change::none());
        assert_eq!(
            book.progress(&ProgressEvent {
                task_id: id,
                done: 1,
                total: 2,
                message: None
            }),
            Change::none()
        );
        assert_eq!(book.get(&id), Some(&done));
        assert!(book.unfinished().is_empty());
    }

    #[test]
    fn keeps_a_bounded_number_of_finished_rows() {
        let mut book = Book::new(3);
        let mut evicted = Vec::new();
        for n in 0..10 {
            book.upsert(task(n));
        }
        for n in 0..8 {
            evicted.extend(
                book.upsert(finished(task(n), TaskStatus::Succeeded))
                    .evicted,
            );
        }
        // 8 finished, 3 kept: the 5 that finished first are gone.
        assert_eq!(
            evicted.iter().map(|i| i.0.as_u128()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(book.len(), 5);
        assert_eq!(book.dropped(), 5);
        // Unfinished tasks are never dropped.
        assert_eq!(
            book.unfinished()
                .iter()
                .map(|i| i.0.as_u128())
                .collect::<Vec<_>>(),
            [8, 9]
        );
    }

    #[test]
    fn ten_thousand_tasks_stay_bounded() {
        let mut book = Book::default();
        for n in 0..10_000 {
            book.upsert(task(n));
        }
        for n in 0..10_000 {
            book.upsert(finished(task(n), TaskStatus::Succeeded));
        }
        assert_eq!(book.len(), KEEP_FINISHED);
        assert_eq!(book.dropped(), 10_000 - KEEP_FINISHED as u64);
        let (shown, total) = book.visible(Filter::All, 50);
        assert_eq!((shown.len(), total), (50, KEEP_FINISHED));
        assert_eq!(shown[0].0.as_u128(), 9_999);
    }
}
