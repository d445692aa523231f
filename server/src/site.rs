//! The Leptos site: server-rendered pages that hydrate in the browser, and
//! the static files `cargo leptos build` put in the site root (the WASM, its
//! JS glue, the Socket.IO client module and the stylesheet).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use app::{App, Backend, Task, shell};
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{Html, Response};
use leptos::prelude::{LeptosOptions, provide_context};
use leptos_axum::{
    LeptosRoutes, file_and_error_handler, generate_route_list, render_app_async_with_context,
};

use crate::api::AppState;

/// The name cargo-leptos gives the site's JS, WASM and CSS files.
pub const OUTPUT_NAME: &str = "taskwire";

/// The task page's route. `GET` on it is shared with the JSON API and
/// negotiated by `Accept` (see `api::http`), so it is not routed here.
const TASK_PAGE: &str = "/tasks/{id}";

/// The site's options, or `None` when the site has not been built.
pub fn options(site_root: &Path, addr: SocketAddr) -> Option<LeptosOptions> {
    let pkg = site_root.join("pkg");
    if !pkg.join(format!("{OUTPUT_NAME}.js")).is_file() {
        return None;
    }
    Some(
        LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(site_root.to_string_lossy().as_ref())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build(),
    )
}

/// What the pages read from the server while they are rendered.
fn backend(state: &AppState) -> Backend {
    let for_kinds = state.clone();
    let dispatcher = state.dispatcher.clone();
    Backend {
        kinds: Arc::new(move || for_kinds.kinds()),
        task: Arc::new(move |id| {
            let dispatcher = dispatcher.clone();
            Box::pin(async move { dispatcher.get(id).await.ok() })
        }),
    }
}

/// Routes of the site's pages and files.
pub fn router(options: LeptosOptions, state: &AppState) -> Router {
    let routes = generate_route_list(App)
        .into_iter()
        .filter(|r| r.path() != TASK_PAGE)
        .collect();
    let backend = backend(state);
    Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || provide_context(backend.clone()),
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(file_and_error_handler(shell))
        .with_state(options)
}

/// `GET /tasks/{id}` from a browser: the page of `task`, already read by
/// the caller (`404` when there is none).
pub async fn task_page(
    state: &AppState,
    options: LeptosOptions,
    task: Option<Task>,
    req: Request,
) -> Response {
    let status = if task.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    // The page reads the task the caller read: one lookup, one state.
    let backend = Backend {
        task: Arc::new(move |id| {
            let task = task.clone().filter(|t| t.id == id);
            Box::pin(async move { task })
        }),
        ..backend(state)
    };
    let render = render_app_async_with_context(
        move || provide_context(backend.clone()),
        move || shell(options.clone()),
    );
    // Whole, not streamed: the page must read without JavaScript.
    let mut res = render(req).await;
    *res.status_mut() = status;
    res
}

/// What `/` shows when the site was not built: the API still works.
pub async fn not_built() -> (StatusCode, Html<&'static str>) {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!DOCTYPE html><title>Taskwire</title><h1>Taskwire</h1>\
             <p>The API and Socket.IO are up. The web UI has not been built: \
             run <code>cargo leptos build --release</code>.</p>",
        ),
    )
}
