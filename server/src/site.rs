//! The Leptos site: server-rendered pages that hydrate in the browser, and
//! the static files `cargo leptos build` put in the site root (the WASM, its
//! JS glue, the Socket.IO client module and the stylesheet), and the
//! Content-Security-Policy of the pages, with the nonce Leptos puts on its
//! inline hydration script.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use app::{App, Backend, Task, shell};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, Response};
use leptos::nonce::use_nonce;
use leptos::prelude::{LeptosOptions, provide_context, use_context};
use leptos_axum::{
    LeptosRoutes, ResponseOptions, file_and_error_handler_with_context, generate_route_list,
    render_app_async_with_context,
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

/// The Content-Security-Policy of every response but the pages: nothing
/// may load, run or frame it.
pub const DEFAULT_POLICY: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The Content-Security-Policy of a page. Only scripts from this origin and
/// the inline ones bearing this response's `nonce` run (Leptos's hydration
/// script has it); `'wasm-unsafe-eval'` lets the WASM compile;
/// `connect-src 'self'` also covers the same-origin Socket.IO websocket.
/// Under `cargo leptos watch`, its reload websocket's port is allowed too.
pub fn page_policy(nonce: &str, reload_port: Option<u32>) -> String {
    let reload = reload_port.map_or(String::new(), |port| format!(" ws://*:{port}"));
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self'; connect-src 'self'{reload}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The port of cargo-leptos's reload websocket, when it watches.
fn reload_port(options: &LeptosOptions) -> Option<u32> {
    std::env::var_os("LEPTOS_WATCH")
        .is_some()
        .then_some(options.reload_port)
}

/// Gives the page being rendered its policy, with the nonce Leptos drew for
/// this response (none outside a render: static files keep the default).
fn send_page_policy(reload_port: Option<u32>) {
    let (Some(nonce), Some(response)) = (use_nonce(), use_context::<ResponseOptions>()) else {
        return;
    };
    match HeaderValue::from_str(&page_policy(&nonce, reload_port)) {
        Ok(policy) => response.insert_header(header::CONTENT_SECURITY_POLICY, policy),
        Err(e) => tracing::error!(error = %e, "cannot make the page's Content-Security-Policy"),
    }
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
    let reload = reload_port(&options);
    Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || {
                provide_context(backend.clone());
                send_page_policy(reload);
            },
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(file_and_error_handler_with_context(
            move || send_page_policy(reload),
            shell,
        ))
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
    let reload = reload_port(&options);
    let render = render_app_async_with_context(
        move || {
            provide_context(backend.clone());
            send_page_policy(reload);
        },
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
