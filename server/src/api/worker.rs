//! Socket.IO namespace `/worker`: remote workers. A worker connects with
//! auth `{token, name, kinds, concurrency}`, gets `job`s (never more than
//! `concurrency` at once) and `cancel`s, and answers with `progress`, `done`
//! and `fail`, each acked. When it disconnects, its running tasks go back to
//! the queue.

use app::{Ack, ErrorBody, ProgressEvent, WorkerDone, WorkerFail, WorkerHello, WorkerId, events};
use serde::de::DeserializeOwned;
use serde_json::Value;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};

use super::AppState;
use super::auth::{self, AccessToken};
use crate::pool::frame::FromWorker;
use crate::scheduler::{Command, Link, Slots, WorkerLink};

/// Remote workers have one connection each: no incarnations.
const INCARNATION: u64 = 0;

/// The id a remote worker is known by: its name and its socket id, so two
/// workers with one name never collide.
fn worker_id(socket: &SocketRef, hello: &WorkerHello) -> WorkerId {
    WorkerId::from(format!("{}#{}", hello.name, socket.id))
}

/// Connect middleware: refuses a bad `auth` (without the access token, when
/// one is configured, before even looking at the rest), registers the event
/// handlers before the CONNECT packet is sent.
pub async fn register(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) -> Result<(), ErrorBody> {
    let auth = auth.ok();
    if !state.token.allows(auth.as_ref().and_then(auth::auth_token)) {
        return Err(AccessToken::refusal("token in the worker's auth"));
    }
    let hello = WorkerHello::parse(auth)?;
    let id = worker_id(&socket, &hello);
    on_report(&socket, events::PROGRESS, &id, |p: ProgressEvent| {
        FromWorker::Progress {
            id: p.task_id,
            done: p.done,
            total: p.total,
            message: p.message,
        }
    });
    on_report(&socket, events::DONE, &id, |d: WorkerDone| {
        FromWorker::Done {
            id: d.task_id,
            output: d.output,
        }
    });
    on_report(&socket, events::FAIL, &id, |f: WorkerFail| {
        FromWorker::Failed {
            id: f.task_id,
            message: f.error.message,
        }
    });
    socket.on_fallback(super::socket::on_unknown);
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
pub async fn on_connect(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) {
    let Ok(hello) = WorkerHello::parse(auth.ok()) else {
        return; // the middleware refused it already
    };
    tracing::info!(worker = %hello.name, kinds = ?hello.kinds, concurrency = hello.concurrency, "remote worker connected");
    state.remote_kinds.add(&hello.kinds);
    let link = WorkerLink {
        id: worker_id(&socket, &hello),
        incarnation: INCARNATION,
        slots: Slots::shared(hello.concurrency),
        link: Link::Remote { socket },
        kinds: Some(hello.kinds),
        pid: None,
    };
    let _ = state.dispatcher.send(Command::WorkerUp(link)).await;
}

/// Registers the handler of one kind of report.
fn on_report<T: DeserializeOwned + Send + 'static>(
    socket: &SocketRef,
    event: &'static str,
    id: &WorkerId,
    frame: fn(T) -> FromWorker,
) {
    let id = id.clone();
    socket.on(
        event,
        move |data: TryData<Value>, ack: AckSender, state: State<AppState>| {
            report(data, ack, state, id.clone(), frame)
        },
    );
}

/// A worker's report: parse, hand to the scheduler, ack.
async fn report<T: DeserializeOwned>(
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(state): State<AppState>,
    id: WorkerId,
    frame: fn(T) -> FromWorker,
) {
    let parsed = data
        .map_err(|e| ErrorBody::invalid(format!("expected one JSON payload: {e}")))
        .and_then(|v| {
            serde_json::from_value::<T>(v).map_err(|e| ErrorBody::invalid(e.to_string()))
        });
    let answer = match parsed {
        Ok(report) => {
            let cmd = Command::FromWorker {
                id,
                incarnation: INCARNATION,
                frames: vec![frame(report)],
            };
            match state.dispatcher.send(cmd).await {
                Ok(()) => Ack::ok(),
                Err(e) => Ack::error(e),
            }
        }
        Err(e) => Ack::error(e),
    };
    if let Err(e) = ack.send(&answer) {
        tracing::debug!(error = %e, "ack not sent");
    }
}
