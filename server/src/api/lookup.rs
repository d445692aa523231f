//! Looking up tasks on the API (v1.1): the event `list` (namespace `/`),
//! `GET /tasks?status=&kind=&key=&limit=&before=` (the same page as the
//! body) and `GET /tasks/{id}/attempts`. Answered by [`crate::lookup`],
//! from wherever the server keeps its tasks.

use app::{ListQuery, events};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef, State as SocketState, TryData};

use super::AppState;
use super::http::{ApiError, parse_id, refused};
use super::publish::send_ack;
use super::socket::{admit, reject};

/// Registers `list` on a client socket.
pub fn register<A: Adapter>(socket: &SocketRef<A>) {
    socket.on(events::LIST, on_list::<A>);
}

/// `list`: `{ok, tasks, next}`. No payload lists the newest tasks.
async fn on_list<A: Adapter>(
    socket: SocketRef<A>,
    TryData(data): TryData<Value>,
    ack: AckSender<A>,
    SocketState(state): SocketState<AppState>,
) {
    if let Err(e) = admit(&socket) {
        return reject(ack, e);
    }
    let page = match ListQuery::parse(data.unwrap_or_default()) {
        Ok(query) => state.lookup.list(&state.dispatcher, query).await,
        Err(e) => Err(e),
    };
    match page {
        Ok(page) => send_ack(ack, &page),
        Err(e) => reject(ack, e),
    }
}

/// The query string as `list`'s payload: an object of strings (a name
/// given twice keeps its last value).
fn query_object(raw: Option<&str>) -> Value {
    let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
    let obj: Map<String, Value> = pairs
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(obj)
}

/// `GET /tasks?...`: the page `list` answers, `{ok, tasks, next}`.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = ListQuery::parse(query_object(raw.as_deref()))?;
    Ok(match state.lookup.list(&state.dispatcher, query).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => refused(&state, e),
    })
}

/// `GET /tasks/{id}/attempts`: `{attempts}`, oldest first; `404` for an
/// unknown task.
pub async fn attempts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    Ok(match state.lookup.attempts(&state.dispatcher, id).await {
        Ok(attempts) => Json(attempts).into_response(),
        Err(e) => refused(&state, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_query_string_is_a_payload_of_strings() {
        assert_eq!(
            query_object(Some("status=failed&kind=&key=a%3A*&limit=5&limit=7")),
            json!({"status": "failed", "kind": "", "key": "a:*", "limit": "7"})
        );
        assert_eq!(query_object(None), json!({}));
    }
}
