//! `GET /kinds`, `POST /kinds/{kind}/pause` and `POST /kinds/{kind}/resume`
//! (v1.1): the kinds a submission may name, each with whether it is
//! paused. A pause or resume answers `200` with `{kind, paused}` once it is
//! in force (and stored, with a store); a kind this server does not know
//! is `404` `unknown_kind`.

use app::{ErrorCode, KindInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::http::{ApiError, error_response, refused};

/// `GET /kinds`: `[{kind, paused}, ...]`: the registry's kinds, then those
/// only connected remote workers run, then any other paused kind.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<KindInfo>>, ApiError> {
    Ok(Json(state.dispatcher.kinds(state.kinds()).await?))
}

/// `POST /kinds/{kind}/pause`.
pub async fn pause(State(state): State<AppState>, Path(kind): Path<String>) -> Response {
    set(state, kind, true).await
}

/// `POST /kinds/{kind}/resume`.
pub async fn resume(State(state): State<AppState>, Path(kind): Path<String>) -> Response {
    set(state, kind, false).await
}

async fn set(state: AppState, kind: String, paused: bool) -> Response {
    let known = state.kinds().contains(&kind);
    match state.dispatcher.set_paused(kind, paused, known).await {
        Ok(info) => Json(info).into_response(),
        Err(e) if e.code == ErrorCode::UnknownKind => error_response(StatusCode::NOT_FOUND, e),
        Err(e) => refused(&state, e),
    }
}
