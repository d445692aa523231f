//! The page's live state: the [`Book`] of followed tasks behind
//! fine-grained triggers (one per row, one for the list), the dashboard's
//! stats, and the connection. Socket pushes land here.

use std::collections::{HashMap, VecDeque};

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::json;

use super::book::{Book, Change, Filter};
use super::io::{self, ConnState};
use crate::protocol::{
    ErrorBody, ProgressEvent, Stats, StatusEvent, Task, TaskId, TaskRef, TaskStatus, Timestamp,
    events,
};

/// Seconds of throughput the dashboard's chart shows.
pub const CHART_SECONDS: i64 = 60;

/// Shared by every component (a `Copy` handle to arena-stored values).
#[derive(Clone, Copy)]
pub struct Live {
    book: StoredValue<Book>,
    rows: StoredValue<HashMap<TaskId, ArcTrigger>>,
    list: RwSignal<u64>,
    bump_pending: StoredValue<bool>,
    started: StoredValue<bool>,
    on_dashboard: StoredValue<bool>,
    ever_connected: StoredValue<bool>,
    pub conn: RwSignal<ConnState>,
    pub stats: RwSignal<Option<Stats>>,
    /// `(at ms, tasks finished per second)`, the last [`CHART_SECONDS`].
    pub history: RwSignal<VecDeque<(i64, f64)>>,
    /// Text for the page's `aria-live` announcer.
    pub announcement: RwSignal<String>,
    /// Wall clock in ms, ticking once a second in the browser.
    pub now: RwSignal<i64>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Self {
            book: StoredValue::new(Book::default()),
            rows: StoredValue::new(HashMap::new()),
            list: RwSignal::new(0),
            bump_pending: StoredValue::new(false),
            started: StoredValue::new(false),
            on_dashboard: StoredValue::new(false),
            ever_connected: StoredValue::new(false),
            conn: RwSignal::new(ConnState::Connecting),
            stats: RwSignal::new(None),
            history: RwSignal::new(VecDeque::new()),
            announcement: RwSignal::new(String::new()),
            now: RwSignal::new(Timestamp::now().millis()),
        }
    }

    /// The page's `Live`, provided by [`super::App`].
    pub fn get() -> Self {
        use_context::<Live>().unwrap_or_default()
    }

    /// Connects the socket and routes its pushes here. Browser only; once.
    pub fn start(self) {
        if self.started.get_value() {
            return;
        }
        self.started.set_value(true);
        io::on(events::STATUS, move |ev: StatusEvent| self.apply_status(ev));
        io::on(events::PROGRESS, move |ev: ProgressEvent| {
            self.apply_progress(ev)
        });
        io::on(events::RESULT, move |task: Task| self.finished(task));
        io::on(events::STATS, move |stats: Stats| self.record_stats(stats));
        io::on_state(move |state| {
            self.conn.set(state);
            if state == ConnState::Connected {
                if self.ever_connected.get_value() {
                    self.resubscribe();
                }
                self.ever_connected.set_value(true);
                if self.on_dashboard.get_value() {
                    self.join_dashboard_now();
                }
            }
        });
        #[cfg(target_arch = "wasm32")]
        {
            let now = self.now;
            // Lives as long as the page.
            let _ = set_interval_with_handle(
                move || now.set(Timestamp::now().millis()),
                std::time::Duration::from_secs(1),
            );
        }
    }

    fn apply(self, id: TaskId, f: impl FnOnce(&mut Book) -> Change) {
        let Some(change) = self.book.try_update_value(f) else {
            return;
        };
        if change.row {
            self.rows.with_value(|rows| {
                if let Some(t) = rows.get(&id) {
                    t.notify();
                }
            });
        }
        if !change.evicted.is_empty() {
            self.rows.update_value(|rows| {
                for id in &change.evicted {
                    rows.remove(id);
                }
            });
        }
        if change.list {
            self.bump_list();
        }
    }

    /// Lists re-render at most once per tick, however many pushes arrive:
    /// a batch of results is one re-render, not thousands.
    fn bump_list(self) {
        if self.bump_pending.get_value() {
            return;
        }
        self.bump_pending.set_value(true);
        let list = self.list;
        let pending = self.bump_pending;
        let bump = move || {
            pending.set_value(false);
            list.update(|v| *v += 1);
        };
        #[cfg(target_arch = "wasm32")]
        set_timeout(bump, std::time::Duration::from_millis(40));
        #[cfg(not(target_arch = "wasm32"))]
        bump();
    }

    /// Applies a `status` push.
    pub fn apply_status(self, ev: StatusEvent) {
        let now = Timestamp::now();
        // Back to `scheduled` (a retry's backoff): the push does not say
        // until when, the task's snapshot does.
        let rescheduled = ev.status == TaskStatus::Scheduled
            && self.book.with_value(|b| {
                b.get(&ev.task_id)
                    .is_some_and(|t| t.status != TaskStatus::Scheduled)
            });
        let id = ev.task_id;
        self.apply(id, |b| b.status(&ev, now));
        if rescheduled {
            self.subscribe(id);
        }
    }

    /// Applies a `progress` push.
    pub fn apply_progress(self, ev: ProgressEvent) {
        self.apply(ev.task_id, |b| b.progress(&ev));
    }

    /// Records a snapshot (an ack's task, or a `result`).
    pub fn upsert(self, task: Task) {
        let id = task.id;
        self.apply(id, |b| b.upsert(task));
    }

    fn finished(self, task: Task) {
        let line = format!(
            "Task {} ({}) {}.",
            short_id(&task.id),
            task.kind,
            status_label(task.status)
        );
        self.upsert(task);
        self.announcement.set(line);
    }

    /// Records a task and subscribes to it if it is not finished (the task
    /// page). Its pushes then update it here.
    pub fn follow(self, task: Task) {
        let unfinished = !task.status.is_final();
        let id = task.id;
        self.upsert(task);
        if unfinished {
            self.subscribe(id);
        }
    }

    fn subscribe(self, id: TaskId) {
        spawn_local(async move {
            match io::emit(events::SUBSCRIBE, &TaskRef::from(id)).await {
                Ok(ack) => {
                    if let Some(task) = ack.task {
                        self.upsert(task);
                    }
                }
                Err(e) => leptos::logging::warn!("subscribe {id}: {e}"),
            }
        });
    }

    /// After a reconnect: the server forgot this socket's rooms, and results
    /// may have been pushed while it was away. Subscribing again joins the
    /// rooms and returns each task's current state, finished ones included.
    fn resubscribe(self) {
        for id in self.book.with_value(Book::unfinished) {
            self.subscribe(id);
        }
    }

    /// Cancels a task; the ack's snapshot updates its row.
    pub async fn cancel(self, id: TaskId) -> Result<(), ErrorBody> {
        let ack = io::emit(events::CANCEL, &TaskRef::from(id)).await?;
        if let Some(task) = ack.task {
            self.upsert(task);
        }
        Ok(())
    }

    /// Joins the `dashboard` room (again after every reconnect).
    pub fn join_dashboard(self) {
        if !self.on_dashboard.get_value() {
            self.on_dashboard.set_value(true);
            self.join_dashboard_now();
        }
    }

    fn join_dashboard_now(self) {
        spawn_local(async move {
            match io::emit(events::DASHBOARD, &json!({})).await {
                Ok(ack) => {
                    if let Some(stats) = ack.stats {
                        self.record_stats(stats);
                    }
                }
                Err(e) => leptos::logging::warn!("dashboard: {e}"),
            }
        });
    }

    fn record_stats(self, stats: Stats) {
        let at = stats.at.millis();
        let rate = stats.throughput_per_s;
        self.history.update(|h| {
            if h.back().is_some_and(|(last, _)| *last >= at) {
                return;
            }
            h.push_back((at, rate));
            while h
                .front()
                .is_some_and(|(t, _)| *t < at - CHART_SECONDS * 1000)
            {
                h.pop_front();
            }
        });
        self.stats.set(Some(stats));
    }

    /// Up to `limit` tasks a new one may run after (see
    /// [`Book::after_candidates`]); re-runs the caller when the list moves.
    pub fn after_candidates(self, limit: usize) -> Vec<TaskId> {
        self.list.track();
        self.book.with_value(|b| b.after_candidates(limit))
    }

    /// The wall clock in ms now; re-runs the caller at each tick of
    /// [`Live::now`]. (`now` itself is up to a second old between ticks,
    /// too old for a countdown drawn just after a tick.)
    pub fn clock(self) -> i64 {
        self.now.get().max(Timestamp::now().millis())
    }

    /// A task's current state; re-runs the caller when that row changes.
    pub fn row(self, id: TaskId) -> Option<Task> {
        let trigger = self
            .rows
            .try_update_value(|rows| rows.entry(id).or_default().clone());
        if let Some(t) = trigger {
            t.track();
        }
        self.book.with_value(|b| b.get(&id).cloned())
    }

    /// Up to `limit` ids for `filter`, newest first, and the total matching.
    pub fn visible(self, filter: Filter, limit: usize) -> (Vec<TaskId>, usize) {
        self.list.track();
        self.book.with_value(|b| b.visible(filter, limit))
    }

    pub fn counts(self) -> HashMap<Filter, usize> {
        self.list.track();
        self.book.with_value(Book::counts)
    }

    /// Finished tasks no longer kept.
    pub fn dropped(self) -> u64 {
        self.list.track();
        self.book.with_value(Book::dropped)
    }
}

/// The last 8 hex digits of a task id: enough to tell tasks apart on
/// screen. (A UUID v7 starts with its timestamp, so the first digits are the
/// same for every task of the same minute; the last ones are random.)
pub fn short_id(id: &TaskId) -> String {
    let s = id.to_string();
    s[s.len() - 8..].to_owned()
}

pub fn status_label(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Scheduled => "scheduled",
        TaskStatus::Waiting => "waiting",
        TaskStatus::Queued => "queued",
        TaskStatus::Running => "running",
        TaskStatus::Succeeded => "succeeded",
        TaskStatus::Failed => "failed",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::TimedOut => "timed out",
    }
}
