//! Socket.IO namespace `/`: `task`, `tasks`, `subscribe`, `unsubscribe`,
//! `cancel`, `retry`, `dashboard`, `list` (see [`super::lookup`]) and the
//! schedules' events (see [`super::schedules`]). A bad payload gets an error ack and nothing else:
//! the socket stays connected and no other task is touched.

use std::sync::Arc;

use app::{Ack, ErrorBody, TaskId, TaskSpec, events, parse_batch};
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};

use super::AppState;
use super::auth::{self, AccessToken};
use super::publish::{self, client, done_ack, stats_ack, submitted_ack, task_ack};
use super::schedules;
use crate::scheduler::Command;

/// Registers the event handlers of a new client socket.
///
/// It runs as a connect middleware, which socketioxide awaits before it
/// sends the CONNECT packet: a handler registered in the connect handler
/// itself (spawned after that packet) could miss a client's first emit.
///
/// With `--token`, the handshake `auth` must be `{token}`; otherwise the
/// connection is refused with a `connect_error` `unauthorized: ...`.
pub async fn register<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(state): State<AppState>,
) -> Result<(), ErrorBody> {
    let auth = auth.unwrap_or_default();
    let presented = auth::auth_token(&auth);
    if !state.token.allows(presented) {
        return Err(AccessToken::refusal("handshake auth {token}"));
    }
    // Kept for `dashboard`'s own check; only when a token is configured.
    let presented: Option<Arc<str>> = state
        .token
        .required()
        .then(|| presented.map(Arc::from))
        .flatten();
    socket
        .extensions
        .insert(Arc::new(event_rate(state.events_per_sec)));
    socket.on(events::TASK, on_task::<A>);
    socket.on(events::TASKS, on_tasks::<A>);
    socket.on(events::SUBSCRIBE, on_subscribe::<A>);
    socket.on(events::UNSUBSCRIBE, on_unsubscribe::<A>);
    socket.on(events::CANCEL, on_cancel::<A>);
    socket.on(events::RETRY, on_retry::<A>);
    super::lookup::register(&socket);
    socket.on(events::SCHEDULE, schedules::on_schedule::<A>);
    socket.on(events::SCHEDULES, schedules::on_schedules::<A>);
    socket.on(events::UNSCHEDULE, schedules::on_unschedule::<A>);
    socket.on_fallback(on_unknown::<A>);
    socket.on(
        events::DASHBOARD,
        move |socket: SocketRef<A>, ack: AckSender<A>, State(state): State<AppState>| {
            on_dashboard(socket, ack, state, presented.clone())
        },
    );
    Ok(())
}

/// Characters of an unknown event's name that are logged and answered.
const LOGGED_NAME_CHARS: usize = 64;

/// Any event this namespace does not know (on `/` and `/worker`): an
/// `invalid_payload` ack, so a client that asked for one does not wait
/// forever. The name is quoted and shortened: it is the client's text.
pub async fn on_unknown<A: Adapter>(socket: SocketRef<A>, Event(event): Event, ack: AckSender<A>) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    let name: String = event.chars().take(LOGGED_NAME_CHARS).collect();
    tracing::debug!(event = ?name, ns = socket.ns(), "unknown event");
    reject(ack, ErrorBody::invalid(format!("unknown event {name:?}")));
}

/// The connect handler proper: everything was done in [`register`].
pub async fn on_connect() {}

/// One socket's event budget (governor's GCRA): `per_sec` events a second,
/// bursts of twice that.
type EventRate = governor::DefaultDirectRateLimiter;

fn event_rate(per_sec: u32) -> EventRate {
    use std::num::NonZeroU32;
    let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    governor::RateLimiter::direct(governor::Quota::per_second(rate).allow_burst(burst))
}

/// `rate_limited` once the socket spends its event budget.
pub(super) fn admit<A: Adapter>(socket: &SocketRef<A>) -> Result<(), ErrorBody> {
    match socket.extensions.get::<Arc<EventRate>>() {
        Some(rate) if rate.check().is_err() => Err(ErrorBody::new(
            app::ErrorCode::RateLimited,
            "too many events from this socket; slow down",
        )),
        _ => Ok(()),
    }
}

pub(super) fn reject<A: Adapter>(ack: AckSender<A>, error: ErrorBody) {
    publish::send_ack(ack, &Ack::error(error));
}

/// The payload, or `invalid_payload` if it is not JSON.
pub(super) fn payload(data: Result<Value, impl std::fmt::Display>) -> Result<Value, ErrorBody> {
    data.map_err(|e| ErrorBody::invalid(format!("expected one JSON payload: {e}")))
}

async fn send(state: &AppState, cmd: Command) {
    if let Err(e) = state.dispatcher.send(cmd).await {
        tracing::error!(error = %e, "scheduler unavailable");
    }
}

async fn on_task<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    match payload(data)
        .and_then(TaskSpec::parse)
        .and_then(|spec| state.prepare(spec))
    {
        Ok(task) => {
            let cmd = Command::Submit {
                tasks: vec![task],
                client: Some(client(socket)),
                reply: submitted_ack(ack, false),
            };
            send(&state, cmd).await;
        }
        Err(e) => reject(ack, e),
    }
}

async fn on_tasks<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    let tasks = payload(data)
        .and_then(parse_batch)
        .and_then(|specs| state.prepare_batch(specs));
    match tasks {
        Ok(tasks) => {
            let cmd = Command::Submit {
                tasks,
                client: Some(client(socket)),
                reply: submitted_ack(ack, true),
            };
            send(&state, cmd).await;
        }
        Err(e) => reject(ack, e),
    }
}

/// Reads `{task_id}`.
fn task_id(data: Result<Value, impl std::fmt::Display>) -> Result<TaskId, ErrorBody> {
    payload(data).and_then(|v| TaskId::from_payload(&v))
}

/// The events that name one task: `{task_id}` in, one command out.
async fn about_task<A: Adapter>(
    socket: SocketRef<A>,
    data: Result<Value, impl std::fmt::Display>,
    ack: AckSender<A>,
    state: AppState,
    command: impl FnOnce(TaskId, SocketRef<A>, AckSender<A>) -> Command,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    match task_id(data) {
        Ok(id) => send(&state, command(id, socket, ack)).await,
        Err(e) => reject(ack, e),
    }
}

async fn on_subscribe<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
) {
    about_task(socket, data, ack, state, |id, socket, ack| {
        Command::Subscribe {
            id,
            client: client(socket),
            reply: task_ack(ack),
        }
    })
    .await;
}

async fn on_unsubscribe<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
) {
    about_task(socket, data, ack, state, |id, socket, ack| {
        Command::Unsubscribe {
            id,
            client: client(socket),
            reply: done_ack(ack),
        }
    })
    .await;
}

/// `retry`: a new task with the failed one's spec; the socket joins its
/// room, and the ack is `{ok, task}`.
async fn on_retry<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    let id = match task_id(data) {
        Ok(id) => id,
        Err(e) => return reject(ack, e),
    };
    match state.prepare_retry(id).await {
        Ok(task) => {
            let cmd = Command::Submit {
                tasks: vec![task],
                client: Some(client(socket)),
                reply: publish::retried_ack(ack),
            };
            send(&state, cmd).await;
        }
        Err(e) => reject(ack, e),
    }
}

async fn on_cancel<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    State(state): State<AppState>,
) {
    about_task(socket, data, ack, state, |id, _, ack| Command::Cancel {
        id,
        reply: task_ack(ack),
    })
    .await;
}

/// `dashboard`. The middleware already refused sockets without the token;
/// the room of every task's pushes is checked again here with the token
/// this socket presented, so that it stays closed even if the middleware
/// changes.
async fn on_dashboard<A: Adapter>(
    socket: SocketRef<A>,
    ack: AckSender<A>,
    state: AppState,
    presented: Option<Arc<str>>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    if !state.token.allows(presented.as_deref()) {
        return reject(ack, AccessToken::refusal("handshake auth {token}"));
    }
    socket.join(events::DASHBOARD_ROOM);
    let reply = stats_ack(ack);
    send(&state, Command::Stats { reply }).await;
}
