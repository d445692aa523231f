//! The page's live state: the [`Book`] of followed tasks behind
//! fine-grained triggers (one per row, one for the list), the dashboard's
//! stats, the recurring schedules, and the connection. Socket pushes land
//! here.

use std::collections::{HashMap, VecDeque};

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};

use super::book::{Book, Change, Filter};
use super::io::{self, ConnState};
use crate::protocol::{
    ErrorBody, ErrorCode, ProgressEvent, Schedule, SchedulesEvent, Stats, StatusEvent, Task,
    TaskId, TaskRef, TaskStatus, Timestamp, events,
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
    on_schedules: StoredValue<bool>,
    /// `schedules` pushes received so far: an ack answering a request sent
    /// before the latest push is older than it, and is not applied.
    schedules_seen: StoredValue<u64>,
    pub conn: RwSignal<ConnState>,
    pub stats: RwSignal<Option<Stats>>,
    /// `(at ms, tasks finished per second)`, the last [`CHART_SECONDS`].
    pub history: RwSignal<VecDeque<(i64, f64)>>,
    /// Text for the page's `aria-live` announcer.
    pub announcement: RwSignal<String>,
    /// Wall clock in ms, ticking once a second in the browser.
    pub now: RwSignal<i64>,
    /// Every schedule, sorted by name, once loaded (the schedules page).
    pub schedules: RwSignal<Option<Vec<Schedule>>>,
    /// Why the schedules could not be loaded, if they could not.
    pub schedules_error: RwSignal<Option<String>>,
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
            on_schedules: StoredValue::new(false),
            schedules_seen: StoredValue::new(0),
            conn: RwSignal::new(ConnState::Connecting),
            stats: RwSignal::new(None),
            history: RwSignal::new(VecDeque::new()),
            announcement: RwSignal::new(String::new()),
            now: RwSignal::new(Timestamp::now().millis()),
            schedules: RwSignal::new(None),
            schedules_error: RwSignal::new(None),
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
        io::on(events::SCHEDULES, move |ev: SchedulesEvent| {
            self.schedules_seen.update_value(|n| *n += 1);
            self.schedules_error.set(None);
            self.schedules.set(Some(ev.schedules));
        });
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
                if self.on_schedules.get_value() {
                    self.load_schedules();
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

    /// Follows a task another client may have submitted (the explorer's
    /// rows): recorded and subscribed unless this page follows it already
    /// (then its row is at least as new as `task`, which is not applied).
    pub fn watch(self, task: Task) {
        if self.book.with_value(|b| b.get(&task.id).is_none()) {
            self.follow(task);
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

    /// Runs a failed, cancelled or timed-out task again (`retry`); the new
    /// task is followed, as a submission is.
    pub async fn retry(self, id: TaskId) -> Result<Task, ErrorBody> {
        let ack = io::emit(events::RETRY, &TaskRef::from(id)).await?;
        let task = ack
            .task
            .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "ack without task"))?;
        self.follow(task.clone());
        Ok(task)
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

    /// Follows the schedules: joins the `dashboard` room (whose `schedules`
    /// pushes keep [`Live::schedules`] current) and loads them now and
    /// after every reconnect.
    pub fn follow_schedules(self) {
        self.join_dashboard();
        if !self.on_schedules.get_value() {
            self.on_schedules.set_value(true);
            if self.conn.get_untracked() == ConnState::Connected {
                self.load_schedules();
            }
        }
    }

    fn load_schedules(self) {
        let seen = self.schedules_seen.get_value();
        spawn_local(async move {
            match io::emit(events::SCHEDULES, &json!({})).await {
                Ok(ack) => {
                    if let Some(list) = ack.schedules
                        && self.schedules_seen.get_value() == seen
                    {
                        self.schedules_error.set(None);
                        self.schedules.set(Some(list));
                    }
                }
                Err(e) => self.schedules_error.set(Some(e.message)),
            }
        });
    }

    /// Creates or replaces a schedule (`schedule`, payload as the protocol
    /// has it). The list shows it at once unless a push came meanwhile
    /// (which is newer, and the push of this change follows anyway).
    pub async fn put_schedule(self, payload: Value) -> Result<Schedule, ErrorBody> {
        let seen = self.schedules_seen.get_value();
        let ack = io::emit(events::SCHEDULE, &payload).await?;
        let schedule = ack
            .schedule
            .ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "ack without schedule"))?;
        if self.schedules_seen.get_value() == seen {
            let put = schedule.clone();
            self.schedules.update(|list| {
                if let Some(list) = list {
                    list.retain(|s| s.name != put.name);
                    let at = list.partition_point(|s| s.name < put.name);
                    list.insert(at, put);
                }
            });
        }
        Ok(schedule)
    }

    /// Deletes a schedule (`unschedule`); the list drops it as
    /// [`Live::put_schedule`] shows a new one.
    pub async fn delete_schedule(self, name: String) -> Result<(), ErrorBody> {
        let seen = self.schedules_seen.get_value();
        io::emit(events::UNSCHEDULE, &json!({ "name": name })).await?;
        if self.schedules_seen.get_value() == seen {
            self.schedules.update(|list| {
                if let Some(list) = list {
                    list.retain(|s| s.name != name);
                }
            });
        }
        Ok(())
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

    /// A task's current state, `initial` until this page knows it (a
    /// task's page, an explorer row); a memo, so readers re-run only when
    /// the task changes.
    pub fn current(self, initial: Task) -> Memo<Task> {
        let id = initial.id;
        Memo::new(move |_| self.row(id).unwrap_or_else(|| initial.clone()))
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
