//! Socket.IO namespace `/worker`: remote workers. A worker connects with
//! auth `{token, name, kinds, concurrency}`, gets `job`s (never more than
//! `concurrency` at once) and `cancel`s, and answers with `progress`, `done`
//! and `fail`, each acked. When it disconnects (or stops answering the
//! Engine.IO heartbeat), its running tasks go back to the queue.
//!
//! A remote worker is trusted with the inputs of every task of its kinds,
//! so what it may offer is checked here: kind names from a safe set, none
//! of the kinds this server runs itself, a bounded number of them. Its
//! events are rate-limited like a client's, and its `progress` is thinned
//! to what local workers send.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use app::{
    Ack, ErrorBody, ErrorCode, ProgressEvent, TaskId, WorkerDone, WorkerFail, WorkerHello,
    WorkerId, events,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};

use super::AppState;
use super::auth::{self, AccessToken};
use crate::kinds::PROGRESS_INTERVAL;
use crate::scheduler::{Command, PortError, Report, Slots, Stopping, WorkerLink, WorkerPort};

/// Remote workers have one connection each: no incarnations.
const INCARNATION: u64 = 0;

/// The id a remote worker is known by: its name and its socket id, so two
/// workers with one name never collide.
fn worker_id<A: Adapter>(socket: &SocketRef<A>, hello: &WorkerHello) -> WorkerId {
    WorkerId::from(format!("{}#{}", hello.name, socket.id))
}

/// Connect middleware: refuses a bad `auth` (without the access token, when
/// one is configured, before even looking at the rest), registers the event
/// handlers before the CONNECT packet is sent.
pub async fn register<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) -> Result<(), ErrorBody> {
    let auth = auth.ok();
    if !state.token.allows(auth.as_ref().and_then(auth::auth_token)) {
        return Err(AccessToken::refusal("token in the worker's auth"));
    }
    let hello = WorkerHello::parse(auth)?;
    if state.local_workers
        && let Some(own) = hello.kinds.iter().find(|k| state.registry.get(k).is_some())
    {
        // Jobs of a kind go to whichever worker is free: a worker offering
        // one of ours would be handed other clients' inputs and could
        // answer for the server's own code.
        return Err(ErrorBody::invalid(format!(
            "kind {own:?} is run by this server itself; a remote worker may not offer it"
        )));
    }
    // The last check, so a refused worker never holds a place.
    state.remote_kinds.try_add(&hello.kinds)?;
    let id = worker_id(&socket, &hello);
    let limits = Arc::new(Limits::new(state.events_per_sec));
    socket.extensions.insert(limits.rate.clone());
    on_report(
        &socket,
        events::PROGRESS,
        &id,
        &limits,
        |p: ProgressEvent| Report::Progress {
            id: p.task_id,
            done: p.done,
            total: p.total,
            message: p.message,
        },
    );
    on_report(&socket, events::DONE, &id, &limits, |d: WorkerDone| {
        Report::Done {
            id: d.task_id,
            output: d.output,
        }
    });
    on_report(&socket, events::FAIL, &id, &limits, |f: WorkerFail| {
        Report::Failed {
            id: f.task_id,
            message: f.error.message,
        }
    });
    socket.on_fallback(super::socket::on_unknown::<A>);
    socket.on_disconnect(move |State(state): State<AppState>| async move {
        state.remote_kinds.remove(&hello.kinds);
        let down = Command::WorkerDown {
            id,
            incarnation: INCARNATION,
        };
        let _ = state.dispatcher.send(down).await;
    });
    Ok(())
}

/// Connect handler: the socket is connected now, so jobs can be emitted to
/// it; announce the worker to the scheduler.
pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) {
    let Ok(hello) = WorkerHello::parse(auth.ok()) else {
        return; // the middleware refused it already
    };
    tracing::info!(worker = ?hello.name, kinds = ?hello.kinds, concurrency = hello.concurrency, "remote worker connected");
    let link = WorkerLink {
        id: worker_id(&socket, &hello),
        incarnation: INCARNATION,
        slots: Slots::shared(hello.concurrency),
        port: Box::new(RemotePort { socket }),
        kinds: Some(hello.kinds),
        pid: None,
    };
    let _ = state.dispatcher.send(Command::WorkerUp(link)).await;
}

/// The scheduler's port to a remote worker: `job` and `cancel` emits.
struct RemotePort<A: Adapter> {
    socket: SocketRef<A>,
}

impl<A: Adapter> WorkerPort for RemotePort<A> {
    fn run(&mut self, task: &app::Task) -> Result<(), PortError> {
        self.socket
            .emit(events::JOB, task)
            .map_err(|e| PortError(format!("job not delivered: {e}")))
    }

    /// The remote protocol has no answer to a `cancel`: the slot is free
    /// at once, and a late `done` or `fail` for the task is ignored.
    fn stop(&mut self, id: TaskId) -> Stopping {
        if let Err(e) = self.socket.emit(events::CANCEL, &app::TaskRef::from(id)) {
            tracing::warn!(worker = %self.socket.id, error = %e, "cancel not delivered");
        }
        Stopping::Released
    }

    fn kill(&self) {
        let _ = self.socket.clone().disconnect();
    }

    fn is_remote(&self) -> bool {
        true
    }
}

/// What one worker socket may send: its event budget (governor's GCRA,
/// the same as a client socket's: `per_sec` a second, bursts of twice that)
/// and when each of its tasks last had a progress report let through.
struct Limits {
    /// Also in the socket's extensions, where `/`'s handler of unknown
    /// events finds it: those count against the same budget.
    rate: Arc<governor::DefaultDirectRateLimiter>,
    /// Per task: when progress was last let through, and whether that
    /// was the final one. A std lock: held for a map operation only, never
    /// across an `.await`.
    progress: Mutex<HashMap<TaskId, (Instant, bool)>>,
}

impl Limits {
    fn new(per_sec: u32) -> Self {
        let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Self {
            rate: Arc::new(governor::RateLimiter::direct(
                governor::Quota::per_second(rate).allow_burst(burst),
            )),
            progress: Mutex::default(),
        }
    }

    /// `rate_limited` once the socket spends its event budget.
    fn admit(&self) -> Result<(), ErrorBody> {
        self.rate.check().map_err(|_| {
            ErrorBody::new(
                ErrorCode::RateLimited,
                "too many events from this worker; slow down",
            )
        })
    }

    /// Whether a report goes on to the scheduler. Progress is let through
    /// as local workers send it (docs/protocol-notes.md): at most once per
    /// [`PROGRESS_INTERVAL`] per task, plus the first `done >= total`.
    fn passes(&self, frame: &Report) -> bool {
        let mut seen = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match frame {
            Report::Progress {
                id, done, total, ..
            } => {
                let last = seen.get(id).copied();
                let due = last.is_none_or(|(t, _)| now.duration_since(t) >= PROGRESS_INTERVAL);
                let first_final = done >= total && !last.is_some_and(|(_, fin)| fin);
                if !due && !first_final {
                    return false;
                }
                // Entries older than the interval decide (almost) nothing:
                // dropping them keeps the map as small as the tasks
                // reporting now.
                if seen.len() >= MAX_TRACKED {
                    seen.retain(|_, (t, _)| now.duration_since(*t) < PROGRESS_INTERVAL);
                }
                let fin = done >= total || last.is_some_and(|(_, fin)| fin);
                seen.insert(*id, (now, fin));
                true
            }
            Report::Done { id, .. } | Report::Failed { id, .. } => {
                seen.remove(id);
                true
            }
            Report::Stopped { .. } => true,
        }
    }
}

/// Tasks whose last progress time is kept before old entries are dropped.
const MAX_TRACKED: usize = 1024;

/// Registers the handler of one kind of report.
fn on_report<A: Adapter, T: DeserializeOwned + Send + 'static>(
    socket: &SocketRef<A>,
    event: &'static str,
    id: &WorkerId,
    limits: &Arc<Limits>,
    frame: fn(T) -> Report,
) {
    let id = id.clone();
    let limits = limits.clone();
    socket.on(
        event,
        move |data: TryData<Value>, ack: AckSender<A>, state: State<AppState>| {
            report(data, ack, state, id.clone(), limits.clone(), frame)
        },
    );
}

/// A worker's report: parse, hand to the scheduler, ack.
async fn report<A: Adapter, T: DeserializeOwned>(
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
    id: WorkerId,
    limits: Arc<Limits>,
    frame: fn(T) -> Report,
) {
    let parsed = limits.admit().and_then(|()| {
        data.map_err(|e| ErrorBody::invalid(format!("expected one JSON payload: {e}")))
            .and_then(|v| {
                serde_json::from_value::<T>(v).map_err(|e| ErrorBody::invalid(e.to_string()))
            })
    });
    let answer = match parsed {
        Ok(report) => {
            let report = frame(report);
            if limits.passes(&report) {
                let cmd = Command::FromWorker {
                    id,
                    incarnation: INCARNATION,
                    reports: vec![report],
                };
                match state.dispatcher.send(cmd).await {
                    Ok(()) => Ack::ok(),
                    Err(e) => Ack::error(e),
                }
            } else {
                // Thinned out, as a local worker would not have sent it.
                Ack::ok()
            }
        }
        Err(e) => Ack::error(e),
    };
    if let Err(e) = ack.send(&answer) {
        tracing::debug!(error = %e, "ack not sent");
    }
}
