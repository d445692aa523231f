//! The actor: the schedules by name, one timer for the earliest firing,
//! firings (with the catch-up at start), and their writes to the store.

use std::collections::BTreeMap;
use std::future::pending;
use std::time::Duration;

use app::{Schedule, SchedulesEvent, Timestamp};
use tokio::sync::mpsc;

use super::*;
use crate::store::{StoreError, Write};

/// How long a firing whose task was refused for a passing reason (queue
/// full, store down, server draining) waits before it is tried again.
pub(super) const RETRY: Duration = Duration::from_secs(1);

/// One schedule: as the wire shows it, and when it fires.
struct Entry {
    schedule: Schedule,
    when: When,
    /// A firing refused for a passing reason is tried again then.
    retry_at: Option<Timestamp>,
}

impl Entry {
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
    /// The actor, with what the store kept. Schedules that were due while
    /// no server ran are due now: the first round fires each once.
    pub(super) fn open(setup: Setup) -> Result<Self, StoreError> {
        let mut entries = BTreeMap::new();
        if let Keep::Store(store) = &setup.keep {
            for stored in store.load_schedules()? {
                match restore(&stored.body) {
                    Ok(entry) => {
                        entries.insert(stored.name, entry);
                    }
                    Err(e) => {
                        tracing::error!(name = %stored.name, error = %e, "stored schedule unreadable; left out");
                    }
                }
            }
            tracing::info!(
                schedules = entries.len(),
                "recovered schedules from the store"
            );
        }
        Ok(Self {
            entries,
            keep: setup.keep,
            submit: setup.submit,
            announce: setup.announce,
            clock: setup.clock,
        })
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
    ) {
        loop {
            // One timer, for the earliest firing; rebuilt after every event,
            // so a new or changed schedule moves it.
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
    /// after now. Acked once stored.
    async fn put(&mut self, spec: ScheduleSpec) -> Result<Schedule, ErrorBody> {
        let now = self.clock.now();
        let (last_run_at, last_task_id) = self.entries.get(&spec.name).map_or((None, None), |e| {
            (e.schedule.last_run_at, e.schedule.last_task_id)
        });
        let schedule = Schedule {
            name: spec.name,
            cron: spec.cron,
            timezone: spec.timezone,
            task: spec.task.to_json(),
            paused: spec.paused,
            next_run_at: spec.when.next_after(now),
            last_run_at,
            last_task_id,
        };
        self.write(put_write(&schedule)?).await?;
        let entry = Entry {
            schedule: schedule.clone(),
            when: spec.when,
            retry_at: None,
        };
        self.entries.insert(schedule.name.clone(), entry);
        tracing::info!(name = %schedule.name, cron = %schedule.cron, timezone = %schedule.timezone, paused = schedule.paused, "schedule set");
        Ok(schedule)
    }

    async fn delete(&mut self, name: &str) -> Result<(), ErrorBody> {
        if !self.entries.contains_key(name) {
            return Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no schedule {name}"),
            ));
        }
        self.write(Write::DeleteSchedule(name.to_owned())).await?;
        self.entries.remove(name);
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
            fired |= self.fire(&name, now).await;
        }
        if fired {
            self.announce().await;
        }
    }

    /// Fires schedule `name`, due at `now`, once: for the latest of its
    /// times that have come (one time, normally; after a stop, the missed
    /// ones count as one firing at the latest). Whether it changed.
    async fn fire(&mut self, name: &str, now: Timestamp) -> bool {
        let Some(entry) = self.entries.get(name) else {
            return false;
        };
        let Some(next) = entry.schedule.next_run_at else {
            return false;
        };
        let at = entry
            .when
            .latest_until(now)
            .filter(|t| *t >= next)
            .unwrap_or(next);
        let outcome = match TaskSpec::parse(entry.schedule.task.clone()) {
            Ok(mut spec) => {
                spec.key = Some(Schedule::firing_key(name, at));
                self.submit.submit(spec).await
            }
            // It was valid when it was set; say so rather than fire a guess.
            Err(e) => Err(e),
        };
        let Some(entry) = self.entries.get_mut(name) else {
            return false;
        };
        match outcome {
            Ok(id) => {
                tracing::debug!(name, at = %at, task = %id, "schedule fired");
                entry.schedule.last_run_at = Some(at);
                entry.schedule.last_task_id = Some(id);
            }
            Err(e) if passing(&e) => {
                tracing::warn!(name, at = %at, error = %e, "schedule's task refused for now; trying again");
                entry.retry_at = Some(now.plus_millis(RETRY.as_millis() as u64));
                return false;
            }
            Err(e) => {
                tracing::warn!(name, at = %at, error = %e, "schedule's task refused; this firing is skipped");
            }
        }
        entry.retry_at = None;
        entry.schedule.next_run_at = entry.when.next_after(at);
        let write = put_write(&entry.schedule);
        // The firing happened; a failed write means it may be submitted
        // again at the next start, where its key makes it a duplicate.
        match write {
            Ok(write) => {
                if let Err(e) = self.write(write).await {
                    tracing::error!(name, error = %e, "cannot store the schedule's firing");
                }
            }
            Err(e) => tracing::error!(name, error = %e, "cannot store the schedule's firing"),
        }
        true
    }

    /// Makes `write` durable (nothing to do in memory).
    async fn write(&self, write: Write) -> Result<(), ErrorBody> {
        let Keep::Store(store) = &self.keep else {
            return Ok(());
        };
        store.commit(vec![write]).await.map_err(|e| {
            tracing::error!(error = %e, "cannot store a schedule");
            ErrorBody::new(
                ErrorCode::Internal,
                format!("cannot store the schedule: {e}; try again later"),
            )
        })
    }
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

/// The write that stores `schedule` as it is now.
fn put_write(schedule: &Schedule) -> Result<Write, ErrorBody> {
    let body = serde_json::to_string(schedule)
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("schedule not stored: {e}")))?;
    Ok(Write::PutSchedule {
        name: schedule.name.clone(),
        body,
    })
}

/// A stored schedule, its cron parsed again.
fn restore(body: &str) -> Result<Entry, String> {
    let schedule: Schedule = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let when = When::parse(&schedule.cron, &schedule.timezone).map_err(|e| e.message)?;
    Ok(Entry {
        schedule,
        when,
        retry_at: None,
    })
}
