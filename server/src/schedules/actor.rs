//! The actor: the schedules by name, one timer for the earliest firing,
//! firings (with the catch-up at start), and what it keeps where.

use std::collections::BTreeMap;
use std::future::pending;
use std::time::Duration;

use app::{Schedule, SchedulesEvent, Timestamp};
use tokio::sync::mpsc;

use super::*;

/// How long a firing whose task was refused for a passing reason (queue
/// full, store down, server draining) waits before it is tried again.
pub(super) const RETRY: Duration = Duration::from_secs(1);

/// Most schedules one server (or cluster) holds: each `schedules` push
/// carries them all.
pub const MAX_SCHEDULES: usize = 1000;

/// In cluster mode, how often a node reads the schedules again, to see
/// those other nodes created, changed or deleted.
pub(super) const CLUSTER_REFRESH: Duration = Duration::from_secs(2);

/// One schedule: as the wire shows it, and when it fires.
struct Entry {
    schedule: Schedule,
    when: When,
    /// A firing claimed (its `next_run_at` moved on) whose task is not
    /// submitted yet: it was refused for a passing reason.
    pending: Option<Timestamp>,
    /// When a firing that could not be claimed or submitted is tried again.
    retry_at: Option<Timestamp>,
}

impl Entry {
    fn new(schedule: Schedule, when: When) -> Self {
        Self {
            schedule,
            when,
            pending: None,
            retry_at: None,
        }
    }

    /// When the timer must wake for it: never while paused.
    fn due_at(&self) -> Option<Timestamp> {
        if self.schedule.paused {
            return None;
        }
        self.retry_at.or(self.schedule.next_run_at)
    }
}

pub(super) struct Actor {
    entries: BTreeMap<String, Entry>,
    keep: Keep,
    submit: Arc<dyn Submit>,
    announce: Arc<dyn Announce>,
    clock: Clock,
}

impl Actor {
    /// The actor, with what was kept. Schedules that were due while no
    /// server ran are due now: the first round fires each once.
    pub(super) async fn open(setup: Setup) -> Result<Self, ErrorBody> {
        let mut actor = Self {
            entries: BTreeMap::new(),
            keep: setup.keep,
            submit: setup.submit,
            announce: setup.announce,
            clock: setup.clock,
        };
        actor.reload().await?;
        if !matches!(actor.keep, Keep::Memory) {
            tracing::info!(schedules = actor.entries.len(), "schedules read back");
        }
        Ok(actor)
    }

    /// Reads the schedules kept, keeping what this actor knows of its own
    /// pending firings.
    async fn reload(&mut self) -> Result<(), ErrorBody> {
        let mut old = std::mem::take(&mut self.entries);
        for schedule in self.keep.load().await? {
            let name = schedule.name.clone();
            let when = match old.get(&name) {
                Some(e)
                    if e.schedule.cron == schedule.cron
                        && e.schedule.timezone == schedule.timezone =>
                {
                    e.when.clone()
                }
                _ => match When::parse(&schedule.cron, &schedule.timezone) {
                    Ok(when) => when,
                    Err(e) => {
                        tracing::error!(%name, error = %e, "kept schedule unreadable; left out");
                        continue;
                    }
                },
            };
            let mut entry = Entry::new(schedule, when);
            if let Some(mine) = old.remove(&name) {
                entry.pending = mine.pending;
                entry.retry_at = mine.retry_at;
            }
            self.entries.insert(name, entry);
        }
        Ok(())
    }

    /// In cluster mode, reads the schedules again (a failure is logged:
    /// the cache serves meanwhile).
    async fn refresh(&mut self) {
        if self.keep.shared()
            && let Err(e) = self.reload().await
        {
            tracing::warn!(error = %e, "cannot read the cluster's schedules");
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
    ) {
        let shared = self.keep.shared();
        let mut refresh = tokio::time::interval(CLUSTER_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.reset();
        loop {
            // One timer, for the earliest firing; made again after every
            // event, so a new or changed schedule moves it.
            let wake = self.entries.values().filter_map(Entry::due_at).min();
            let timer = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(self.clock.instant_of(t)).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                req = rx.recv() => match req {
                    Some(req) => self.handle(req).await,
                    None => break,
                },
                () = timer => self.fire_due(&shutdown).await,
                _ = refresh.tick(), if shared => self.refresh().await,
            }
        }
        tracing::debug!("schedules stopped");
    }

    async fn handle(&mut self, req: Request) {
        match req {
            Request::Put { spec, reply } => {
                let answer = self.put(*spec).await;
                let changed = answer.is_ok();
                let _ = reply.send(answer);
                if changed {
                    self.announce().await;
                }
            }
            Request::List { reply } => {
                self.refresh().await;
                let _ = reply.send(self.view());
            }
            Request::Delete { name, reply } => {
                let answer = self.delete(&name).await;
                let changed = answer.is_ok();
                let _ = reply.send(answer);
                if changed {
                    self.announce().await;
                }
            }
        }
    }

    /// Creates or replaces a schedule; a replaced one keeps its history
    /// (`last_run_at`, `last_task_id`). Its next firing is the first one
    /// after now. Acked once kept.
    async fn put(&mut self, spec: ScheduleSpec) -> Result<Schedule, ErrorBody> {
        self.refresh().await;
        let old = self.entries.get(&spec.name);
        if old.is_none() && self.entries.len() >= MAX_SCHEDULES {
            return Err(ErrorBody::invalid(format!(
                "there are {MAX_SCHEDULES} schedules already, the most a server holds; \
                 delete one first"
            )));
        }
        let now = self.clock.now();
        let schedule = Schedule {
            name: spec.name,
            cron: spec.cron,
            timezone: spec.timezone,
            task: spec.task.to_json(),
            paused: spec.paused,
            next_run_at: spec.when.next_after(now),
            last_run_at: old.and_then(|e| e.schedule.last_run_at),
            last_task_id: old.and_then(|e| e.schedule.last_task_id),
        };
        let schedule = self.keep.put(schedule).await?;
        let entry = Entry::new(schedule.clone(), spec.when);
        self.entries.insert(schedule.name.clone(), entry);
        tracing::info!(name = %schedule.name, cron = %schedule.cron, timezone = %schedule.timezone, paused = schedule.paused, "schedule set");
        Ok(schedule)
    }

    async fn delete(&mut self, name: &str) -> Result<(), ErrorBody> {
        let known = self.entries.contains_key(name);
        let existed = match (known, self.keep.shared()) {
            (false, false) => false,
            _ => self.keep.delete(name).await?,
        };
        self.entries.remove(name);
        if !existed {
            return Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no schedule {name}"),
            ));
        }
        tracing::info!(name, "schedule deleted");
        Ok(())
    }

    /// Every schedule, by name. A paused one shows when it would fire
    /// next, counted from now.
    fn view(&self) -> Vec<Schedule> {
        let now = self.clock.now();
        self.entries
            .values()
            .map(|e| {
                let mut s = e.schedule.clone();
                if s.paused {
                    s.next_run_at = e.when.next_after(now);
                }
                s
            })
            .collect()
    }

    async fn announce(&self) {
        let event = SchedulesEvent {
            schedules: self.view(),
        };
        self.announce.schedules(&event).await;
    }

    /// Fires every schedule that is due, each once.
    async fn fire_due(&mut self, shutdown: &CancellationToken) {
        let now = self.clock.now();
        let due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.due_at().is_some_and(|t| t <= now))
            .map(|(name, _)| name.clone())
            .collect();
        let mut fired = false;
        for name in due {
            if shutdown.is_cancelled() {
                return;
            }
            match self.fire(&name, now).await {
                Fired::Changed => fired = true,
                Fired::Unchanged => {}
                // Another node fired it, or it changed there: read again
                // (and if that fails, look again in a moment).
                Fired::Lost => {
                    self.retry(&name, None, now);
                    self.refresh().await;
                }
            }
        }
        if fired {
            self.announce().await;
        }
    }

    /// Fires schedule `name`, due at `now`, once: for the latest of its
    /// times that have come (one time, normally; after a stop, the missed
    /// ones count as one firing at the latest), or the pending one.
    async fn fire(&mut self, name: &str, now: Timestamp) -> Fired {
        let Some(entry) = self.entries.get(name) else {
            return Fired::Unchanged;
        };
        let at = match (entry.pending, entry.schedule.next_run_at) {
            (Some(at), _) => at,
            (None, None) => return Fired::Unchanged,
            // Woken for a retry, but what is kept says it is not due yet.
            (None, Some(next)) if next > now => {
                if let Some(entry) = self.entries.get_mut(name) {
                    entry.retry_at = None;
                }
                return Fired::Unchanged;
            }
            (None, Some(next)) => {
                let at = entry
                    .when
                    .latest_until(now)
                    .filter(|t| *t >= next)
                    .unwrap_or(next);
                let after = entry.when.next_after(at);
                match self.keep.claim(name, next, after).await {
                    Ok(true) => {}
                    Ok(false) => return Fired::Lost,
                    Err(e) => {
                        tracing::warn!(name, error = %e, "cannot claim a firing; trying again");
                        return self.retry(name, None, now);
                    }
                }
                let Some(entry) = self.entries.get_mut(name) else {
                    return Fired::Unchanged;
                };
                entry.schedule.next_run_at = after;
                entry.pending = Some(at);
                at
            }
        };
        let Some(entry) = self.entries.get(name) else {
            return Fired::Unchanged;
        };
        let submitted = match TaskSpec::parse(entry.schedule.task.clone()) {
            Ok(mut spec) => {
                spec.key = Some(Schedule::firing_key(name, at));
                self.submit.submit(spec).await
            }
            // It was valid when it was set; say so rather than fire a guess.
            Err(e) => Err(e),
        };
        let fired = match submitted {
            Ok(id) => {
                tracing::debug!(name, at = %at, task = %id, "schedule fired");
                Some((at, id))
            }
            Err(e) if passing(&e) => {
                tracing::warn!(name, at = %at, error = %e, "schedule's task refused for now; trying again");
                return self.retry(name, Some(at), now);
            }
            Err(e) => {
                tracing::warn!(name, at = %at, error = %e, "schedule's task refused; this firing is skipped");
                None
            }
        };
        let Some(entry) = self.entries.get_mut(name) else {
            return Fired::Unchanged;
        };
        if let Some((at, id)) = fired {
            entry.schedule.last_run_at = Some(at);
            entry.schedule.last_task_id = Some(id);
        }
        entry.pending = None;
        entry.retry_at = None;
        // The firing happened; a failed write means it may be submitted
        // again at the next start, where its key makes it a duplicate.
        if let Err(e) = self.keep.record(&entry.schedule, fired).await {
            tracing::error!(name, error = %e, "cannot keep the schedule's firing");
        }
        Fired::Changed
    }

    /// Tries the firing (claimed at `at`, or not claimed yet) again soon.
    fn retry(&mut self, name: &str, at: Option<Timestamp>, now: Timestamp) -> Fired {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.pending = at;
            entry.retry_at = Some(now.plus_millis(RETRY.as_millis() as u64));
        }
        Fired::Unchanged
    }
}

/// What a firing did.
enum Fired {
    /// Submitted (or skipped) and recorded.
    Changed,
    /// Nothing yet (tried again later), or nothing to do.
    Unchanged,
    /// Another node had claimed it, or the schedule changed there.
    Lost,
}

/// Whether a refusal may pass by itself: the firing is tried again.
fn passing(e: &ErrorBody) -> bool {
    matches!(
        e.code,
        ErrorCode::QueueFull
            | ErrorCode::Internal
            | ErrorCode::Unavailable
            | ErrorCode::RateLimited
    )
}
