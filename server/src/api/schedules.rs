//! Recurring schedules on the API: the events `schedule`, `schedules` and
//! `unschedule` (namespace `/`), the routes `PUT /schedules/{name}`,
//! `GET /schedules` and `DELETE /schedules/{name}`, the `schedules` push
//! to the dashboard room, and how a firing's task is submitted (as a
//! `task` would be, without a client).

use app::{Ack, ErrorBody, SchedulesEvent, TaskId, TaskSpec, events};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, State as SocketState, TryData};

use super::AppState;
use super::http::{self, ApiError};
use super::publish::send_ack;
use super::socket::{admit, payload, reject};
use crate::schedules::{Announce, ScheduleSpec, Submit, check_name, in_task};

/// Validates a schedule (`name` from the path, if given) and its task
/// against the kinds, as `task` would.
fn parse(state: &AppState, raw: Value, name: Option<&str>) -> Result<ScheduleSpec, ErrorBody> {
    state.schedules.check_supported()?;
    let spec = match name {
        Some(name) => ScheduleSpec::parse_named(name, raw)?,
        None => ScheduleSpec::parse(raw)?,
    };
    state.prepare(spec.task.clone()).map_err(in_task)?;
    Ok(spec)
}

/// `{name}` of `unschedule`.
fn name_of(raw: &Value) -> Result<String, ErrorBody> {
    let field = || app::Field::from_name("name");
    match raw.get("name") {
        Some(Value::String(name)) => {
            check_name(name)?;
            Ok(name.clone())
        }
        Some(_) => Err(ErrorBody::invalid("name must be a string").with_field(field())),
        None => Err(ErrorBody::invalid("missing field name").with_field(field())),
    }
}

/// `schedule`: `{ok, schedule}`.
pub async fn on_schedule<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    SocketState(state): SocketState<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    let answer = match payload(data).and_then(|raw| parse(&state, raw, None)) {
        Ok(spec) => state.schedules.put(spec).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(schedule) => send_ack(
            ack,
            &Ack {
                schedule: Some(schedule),
                ..Ack::ok()
            },
        ),
        Err(e) => reject(ack, e),
    }
}

/// `schedules`: `{ok, schedules}`, sorted by name.
pub async fn on_schedules<A: Adapter>(
    socket: SocketRef<A>,
    ack: AckSender<A>,
    SocketState(state): SocketState<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    match state.schedules.list().await {
        Ok(schedules) => send_ack(
            ack,
            &Ack {
                schedules: Some(schedules),
                ..Ack::ok()
            },
        ),
        Err(e) => reject(ack, e),
    }
}

/// `unschedule`: `{ok}`, or `not_found`.
pub async fn on_unschedule<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    SocketState(state): SocketState<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    let answer = match state
        .schedules
        .check_supported()
        .and_then(|()| payload(data))
        .and_then(|raw| name_of(&raw))
    {
        Ok(name) => state.schedules.delete(name).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(()) => send_ack(ack, &Ack::ok()),
        Err(e) => reject(ack, e),
    }
}

/// `PUT /schedules/{name}`: `200` and the schedule.
pub async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Err(e) = http::json_only(&headers) {
        return Ok(http::error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, e));
    }
    let bytes = http::body(raw)?;
    let json = serde_json::from_slice(&bytes)
        .map_err(|e| ErrorBody::invalid(format!("body is not JSON: {e}")))?;
    let spec = parse(&state, json, Some(&name))?;
    Ok(match state.schedules.put(spec).await {
        Ok(schedule) => Json(schedule).into_response(),
        Err(e) => http::refused(&state, e),
    })
}

/// `GET /schedules`: `{schedules}`.
pub async fn list(State(state): State<AppState>) -> Result<Response, ApiError> {
    let schedules = state.schedules.list().await?;
    Ok(Json(json!({ "schedules": schedules })).into_response())
}

/// `DELETE /schedules/{name}`: `200` `{}`, or `404`.
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.schedules.check_supported()?;
    check_name(&name)?;
    Ok(match state.schedules.delete(name).await {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => http::refused(&state, e),
    })
}

/// A firing's task goes in as a `task` from no socket: checked against
/// the kinds, then queued.
impl Submit for AppState {
    fn submit(&self, spec: TaskSpec) -> BoxFuture<'static, Result<TaskId, ErrorBody>> {
        let state = self.clone();
        async move {
            let (task, class) = state.prepare(spec)?;
            let (task, _deduplicated) = state.dispatcher.submit(task, class).await?;
            Ok(task.id)
        }
        .boxed()
    }
}

/// The `schedules` push, to the dashboard room.
pub struct RoomAnnouncer<A: Adapter> {
    io: SocketIo<A>,
}

impl<A: Adapter> RoomAnnouncer<A> {
    pub fn new(io: SocketIo<A>) -> Self {
        Self { io }
    }
}

impl<A: Adapter> Announce for RoomAnnouncer<A> {
    fn schedules<'a>(&'a self, all: &'a SchedulesEvent) -> BoxFuture<'a, ()> {
        async move {
            let room = self.io.to(events::DASHBOARD_ROOM);
            if let Err(e) = room.emit(events::SCHEDULES, all).await {
                tracing::warn!(event = events::SCHEDULES, error = %e, "push not delivered to every socket");
            }
        }
        .boxed()
    }
}
