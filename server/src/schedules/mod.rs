//! Recurring schedules (v1.1): one actor per server owns them, fires each
//! at its cron times by submitting one task, and keeps them in the durable
//! store or the cluster's database when there is one. Everything else
//! talks to it through a [`Schedules`] handle.
//!
//! - `spec`: a schedule as a client sends it, validated; [`When`], its cron
//!   pattern in its time zone (croner and chrono-tz do the calendar and
//!   daylight-saving work);
//! - `clock`: wall-clock time that follows tokio's clock, so tests run on
//!   the paused clock;
//! - `actor`: the actor: its commands, its one timer, firings and catch-up;
//! - `keep`: where schedules are kept: memory, the durable store, or the
//!   cluster's database (a compare-and-set there lets one node only fire
//!   each firing).
//!
//! A firing at time `T` submits the schedule's task with key
//! `schedule:<name>:<T>`; only then is it recorded (`last_run_at`,
//! `last_task_id`, the next `next_run_at`). A server that stops in between
//! submits the same key again at start, which the idempotency keys
//! deduplicate: a firing never runs twice. Firings missed while no server
//! ran are caught up by one run, for the latest of them. In a cluster the
//! claim comes first (the compare-and-set moves `next_run_at` on), so a
//! node that dies between its claim and its submission loses that firing.

mod actor;
mod clock;
mod keep;
mod spec;

pub use actor::MAX_SCHEDULES;
pub use clock::Clock;
pub use keep::Keep;
pub use spec::{DEFAULT_TIMEZONE, ScheduleSpec, When, check_name, in_task};

use std::sync::Arc;

use app::{ErrorBody, ErrorCode, Schedule, SchedulesEvent, TaskId, TaskSpec};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How a firing's task is submitted (the API's validation and the
/// scheduler, on a server; a fake in tests).
pub trait Submit: Send + Sync + 'static {
    /// Validates `spec` against its kind and queues it; the task's id
    /// (that of the existing task when its key was taken).
    fn submit(&self, spec: TaskSpec) -> BoxFuture<'static, Result<TaskId, ErrorBody>>;
}

/// Where the schedules are announced when they change or fire: the
/// `schedules` push to the dashboard room.
pub trait Announce: Send + Sync + 'static {
    fn schedules<'a>(&'a self, all: &'a SchedulesEvent) -> BoxFuture<'a, ()>;
}

/// A message to the actor.
enum Request {
    Put {
        // Boxed: a parsed cron is large, and every request's slot is that size.
        spec: Box<ScheduleSpec>,
        reply: oneshot::Sender<Result<Schedule, ErrorBody>>,
    },
    List {
        reply: oneshot::Sender<Vec<Schedule>>,
    },
    Delete {
        name: String,
        reply: oneshot::Sender<Result<(), ErrorBody>>,
    },
}

/// The actor's mailbox, so the handle can exist before the actor starts.
pub struct Mailbox(mpsc::Receiver<Request>);

/// Cheap-clone handle to the schedules actor.
#[derive(Clone)]
pub struct Schedules {
    /// `None` where there are no schedules (a test's server).
    tx: Option<mpsc::Sender<Request>>,
}

/// Requests that may wait in the mailbox.
const MAILBOX_CAPACITY: usize = 1024;

/// A handle and the mailbox its requests go to.
pub fn channel() -> (Schedules, Mailbox) {
    let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
    (Schedules { tx: Some(tx) }, Mailbox(rx))
}

/// What the actor needs.
pub struct Setup {
    pub keep: Keep,
    pub submit: Arc<dyn Submit>,
    pub announce: Arc<dyn Announce>,
    pub clock: Clock,
}

/// Starts the actor; it runs until `shutdown` is cancelled or every
/// handle is dropped. It first reads back the schedules kept (those it
/// cannot read are logged and left out).
pub async fn spawn(
    mailbox: Mailbox,
    setup: Setup,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ErrorBody> {
    let actor = actor::Actor::open(setup).await?;
    Ok(tokio::spawn(actor.run(mailbox.0, shutdown)))
}

impl Schedules {
    /// A handle that refuses everything (a test's server that has no
    /// schedules).
    pub fn unsupported() -> Self {
        Self { tx: None }
    }

    /// `invalid_payload` where schedules are not supported.
    pub fn check_supported(&self) -> Result<(), ErrorBody> {
        match self.tx {
            Some(_) => Ok(()),
            None => Err(ErrorBody::invalid("this server has no schedules")),
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, ErrorBody> {
        self.check_supported()?;
        let tx = self.tx.as_ref().ok_or_else(stopped)?;
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// Creates or replaces the schedule of `spec.name`.
    pub async fn put(&self, spec: ScheduleSpec) -> Result<Schedule, ErrorBody> {
        self.ask(|reply| Request::Put {
            spec: Box::new(spec),
            reply,
        })
        .await?
    }

    /// Every schedule, sorted by name.
    pub async fn list(&self) -> Result<Vec<Schedule>, ErrorBody> {
        self.ask(|reply| Request::List { reply }).await
    }

    /// Deletes a schedule; `not_found` if there is none of that name.
    pub async fn delete(&self, name: String) -> Result<(), ErrorBody> {
        self.ask(|reply| Request::Delete { name, reply }).await?
    }
}

fn stopped() -> ErrorBody {
    ErrorBody::new(ErrorCode::Internal, "the schedules have stopped")
}

#[cfg(test)]
mod tests;
