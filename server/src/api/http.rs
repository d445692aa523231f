//! HTTP routes: `POST /tasks` (JSON → `202`, no-JS form → `303`),
//! `GET /tasks/{id}`, `DELETE /tasks/{id}`, the lookups (see
//! [`super::lookup`]), `GET /healthz`, `GET /metrics`, the kinds' routes
//! (see [`super::kinds`]) and the schedules' routes (see
//! [`super::schedules`]).
//! Bodies are the task itself; errors are `{"error": {"code", "message"}}`
//! with the status of their code.
//! A body is JSON only when its `Content-Type` says so: a page of another
//! site may send `text/plain` without the browser asking anyone.

use app::{ErrorBody, ErrorCode, HttpError, TaskId, TaskSpec};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt as _;
use serde_json::{Map, Value};

use super::AppState;
use super::auth::{self, AccessToken};
use super::{kinds, schedules};

/// The API routes. With `--token`, every one but `GET /healthz` requires
/// `Authorization: Bearer <token>`; `GET /schedules` and `GET /tasks` check
/// it themselves, as a browser gets a page there (see [`schedules_index`]).
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/tasks", post(create))
        .route("/tasks/{id}", get(read).delete(cancel))
        .route("/tasks/{id}/retry", post(retry))
        .route("/tasks/{id}/attempts", get(super::lookup::attempts))
        .route("/kinds", get(kinds::list))
        .route("/kinds/{kind}/pause", post(kinds::pause))
        .route("/kinds/{kind}/resume", post(kinds::resume))
        .route(
            "/schedules/{name}",
            put(schedules::put).delete(schedules::delete),
        )
        .route("/metrics", get(metrics))
        // Only the routes above: health checks stay open.
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route("/schedules", get(schedules_index))
        .route("/tasks", get(tasks_index))
        .route("/healthz", get(healthz))
}

/// `router` with requests whose declared `Content-Length` is over `max`
/// refused with `413` `payload_too_large` before their body is parsed.
/// A client that sent `Expect: 100-continue` is refused without reading
/// its body (reading would tell it to go ahead and upload it all); one
/// that is already sending a body of at most [`DRAIN_MAX`] bytes has it
/// read and dropped first (for at most [`DRAIN_TIME`]), so that it reads
/// the `413` instead of a connection reset in the middle of its upload.
pub fn with_content_length_limit<S>(router: Router<S>, max: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.layer(middleware::from_fn_with_state(max, check_content_length))
}

/// Largest too-large body read (and dropped) before it is refused.
const DRAIN_MAX: u64 = 16 << 20;
/// Longest time spent reading a too-large body before it is refused.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

async fn check_content_length(State(max): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > u64::try_from(max).unwrap_or(u64::MAX) => {
            if !req.headers().contains_key(header::EXPECT) && len <= DRAIN_MAX {
                let mut body = req.into_body().into_data_stream();
                let drain = async { while let Some(Ok(_)) = body.next().await {} };
                let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            }
            let error = ErrorBody::new(
                ErrorCode::PayloadTooLarge,
                format!("a body of {len} bytes is over the limit of {max} bytes"),
            );
            let mut res = ApiError(error).into_response();
            // The body was not read, so the connection cannot carry another
            // request.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
        _ => next.run(req).await,
    }
}

/// Refuses a request without the access token (when one is configured)
/// with `401` `unauthorized`.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.token.allows(auth::bearer_token(req.headers())) {
        return next.run(req).await;
    }
    unauthorized()
}

/// `401` `unauthorized`, asking for a bearer token.
fn unauthorized() -> Response {
    let mut res = ApiError(AccessToken::refusal("Authorization: Bearer <token>")).into_response();
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

/// An error answered as `{"error": {...}}` with its code's status.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

/// The scheduler's refusal of a change. An `internal` one while the server
/// is degraded is `503`: the request was fine and may be sent again once
/// the server recovers (its task store writes again).
pub(super) fn refused(state: &AppState, e: ErrorBody) -> Response {
    if e.code == ErrorCode::Internal && state.health.is_degraded() {
        tracing::warn!(error = %e, "change refused while degraded");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HttpError { error: e }),
        )
            .into_response()
    } else {
        ApiError(e).into_response()
    }
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.code == ErrorCode::Internal {
            tracing::error!(error = %self.0, "internal error");
        }
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        error_response(status, self.0)
    }
}

/// `{"error": {...}}` with a status other than its code's usual one.
pub fn error_response(status: StatusCode, error: ErrorBody) -> Response {
    (status, Json(HttpError { error })).into_response()
}

/// A body, or `payload_too_large` / `invalid_payload`.
pub(super) fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::PayloadTooLarge
        } else {
            ErrorCode::InvalidPayload
        };
        ApiError(ErrorBody::new(code, e.body_text()))
    })
}

/// What a `POST /tasks` body is, by its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    /// `application/json` or `application/*+json`, any parameters.
    Json,
    /// `application/x-www-form-urlencoded`: the no-JS form.
    Form,
}

/// The body's type, or the `invalid_payload` error answered `415` for any
/// other (or none).
fn body_type(headers: &HeaderMap) -> Result<BodyType, ErrorBody> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let parsed = raw.as_deref().and_then(|ct| ct.parse::<mime::Mime>().ok());
    if let Some(m) = &parsed
        && m.type_() == mime::APPLICATION
    {
        if m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON) {
            return Ok(BodyType::Json);
        }
        if m.subtype() == mime::WWW_FORM_URLENCODED {
            return Ok(BodyType::Form);
        }
    }
    let what = raw.map_or_else(
        || "no Content-Type".to_owned(),
        |ct| format!("Content-Type {ct}"),
    );
    Err(ErrorBody::invalid(format!(
        "{what} is not accepted: send JSON as application/json \
         (or the form as application/x-www-form-urlencoded)"
    )))
}

/// `Ok` for a JSON body; else the `invalid_payload` error answered `415`.
pub(super) fn json_only(headers: &HeaderMap) -> Result<(), ErrorBody> {
    match body_type(headers)? {
        BodyType::Json => Ok(()),
        BodyType::Form => Err(ErrorBody::invalid(
            "Content-Type application/x-www-form-urlencoded is not accepted here: send JSON as application/json",
        )),
    }
}

/// The no-JS form: `kind`, `input` as JSON text, optional numeric options.
fn form_to_json(bytes: &[u8]) -> Result<Value, ErrorBody> {
    let mut obj = Map::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        let value = match key.as_ref() {
            "kind" => Value::String(value.into_owned()),
            "input" if value.trim().is_empty() => Value::Null,
            "input" => serde_json::from_str(&value)
                .map_err(|e| ErrorBody::invalid(format!("input is not JSON: {e}")))?,
            "priority" | "timeout_ms" | "max_attempts" if value.trim().is_empty() => continue,
            "priority" | "timeout_ms" | "max_attempts" => serde_json::from_str(value.trim())
                .map_err(|_| ErrorBody::invalid(format!("{key} must be an integer")))?,
            _ => continue,
        };
        obj.insert(key.into_owned(), value);
    }
    Ok(Value::Object(obj))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let form = match body_type(&headers) {
        Ok(t) => t == BodyType::Form,
        Err(e) => return Ok(error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, e)),
    };
    let bytes = body(raw)?;
    let json = if form {
        form_to_json(&bytes)?
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ErrorBody::invalid(format!("body is not JSON: {e}")))?
    };
    let (task, class) = state.prepare(TaskSpec::parse(json)?)?;
    let (task, deduplicated) = match state.dispatcher.submit(task, class).await {
        Ok(submitted) => submitted,
        Err(e) => return Ok(refused(&state, e)),
    };
    Ok(if form {
        Redirect::to(&format!("/tasks/{}", task.id)).into_response()
    } else if deduplicated {
        // The key named an existing task: nothing was created.
        (StatusCode::OK, Json(task)).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(task)).into_response()
    })
}

/// A task id from the path; anything that is not a UUID names no task.
pub(super) fn parse_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError(ErrorBody::new(
            ErrorCode::NotFound,
            format!("no task {raw}"),
        ))
    })
}

/// Whether the client asked for a page rather than JSON (a browser's
/// navigation sends `Accept: text/html,…`; API clients send `*/*` or JSON).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The task as JSON, or its page for a browser when the web UI is built.
async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    if wants_html(req.headers())
        && let Some(page) = state.task_page.clone()
    {
        let task = match parse_id(&id) {
            Ok(id) => state.dispatcher.get(id).await.ok(),
            Err(_) => None,
        };
        return Ok(page(state, task, req).await);
    }
    Ok(Json(state.dispatcher.get(parse_id(&id)?).await?).into_response())
}

/// `GET /schedules`: for a browser, the schedules page when the web UI is
/// built (served without the token, like the console: the page shows the
/// schedules only to a viewer who presents it, see `site`); else
/// `{schedules}`, with the token as every API route.
async fn schedules_index(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    if wants_html(req.headers())
        && let Some(page) = state.schedules_page.clone()
    {
        return Ok(page(state, req).await);
    }
    if !state.token.allows(auth::bearer_token(req.headers())) {
        return Ok(unauthorized());
    }
    schedules::list(State(state)).await
}

/// `GET /tasks`: for a browser, the task explorer when the web UI is
/// built (served as the schedules page is); else the `list` page as JSON
/// (see [`super::lookup::list`]), with the token as every API route.
async fn tasks_index(
    State(state): State<AppState>,
    query: RawQuery,
    req: Request,
) -> Result<Response, ApiError> {
    if wants_html(req.headers())
        && let Some(page) = state.tasks_page.clone()
    {
        return Ok(page(state, req).await);
    }
    if !state.token.allows(auth::bearer_token(req.headers())) {
        return Ok(unauthorized());
    }
    super::lookup::list(State(state), query).await
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match state.dispatcher.cancel(parse_id(&id)?).await {
        Ok(task) => Json(task).into_response(),
        Err(e) => refused(&state, e),
    })
}

/// `POST /tasks/{id}/retry`: `202` and the new task.
async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (task, class) = state.prepare_retry(parse_id(&id)?).await?;
    Ok(match state.dispatcher.submit(task, class).await {
        Ok((task, _)) => (StatusCode::ACCEPTED, Json(task)).into_response(),
        Err(e) => refused(&state, e),
    })
}

/// `200 ok`, or `503` with the reason while the server is degraded (its
/// task store cannot write, say).
async fn healthz(State(state): State<AppState>) -> Response {
    match state.health.problem() {
        None => "ok\n".into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: {reason}\n"),
        )
            .into_response(),
    }
}

/// The Prometheus text of this server's metrics (see [`crate::metrics`]),
/// its gauges as of now.
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let stats = state.dispatcher.stats().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&stats),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(ct: Option<&str>) -> Option<BodyType> {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        body_type(&h).ok()
    }

    #[test]
    fn body_types() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/problem+json",
        ] {
            assert_eq!(typed(Some(json)), Some(BodyType::Json), "{json}");
        }
        for form in [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded;charset=UTF-8",
        ] {
            assert_eq!(typed(Some(form)), Some(BodyType::Form), "{form}");
        }
        for other in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/jsonx",
            "application/x-www-form-urlencodedx",
            "json",
            "",
        ] {
            assert_eq!(typed(Some(other)), None, "{other}");
        }
        assert_eq!(typed(None), None);
    }

    #[test]
    fn form_fields() {
        let v = form_to_json(b"kind=echo&input=%7B%22a%22%3A1%7D&priority=3&timeout_ms=").unwrap();
        assert_eq!(v, json!({"kind": "echo", "input": {"a": 1}, "priority": 3}));
        assert!(form_to_json(b"kind=echo&input=%7B").is_err());
        assert_eq!(
            form_to_json(b"kind=echo&input=").unwrap(),
            json!({"kind": "echo", "input": null})
        );
    }
}
