//! The Leptos site: server-rendered pages that hydrate in the browser, and
//! the static files `cargo leptos build` put in the site root (the WASM, its
//! JS glue, the Socket.IO client module and the stylesheet), and the
//! Content-Security-Policy of the pages, with the nonce Leptos puts on its
//! inline hydration script.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use app::{App, Backend, Task, shell};
use axum::Router;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, Response};
use leptos::nonce::use_nonce;
use leptos::prelude::{LeptosOptions, provide_context, use_context};
use leptos_axum::{
    LeptosRoutes, ResponseOptions, file_and_error_handler_with_context, generate_route_list,
    render_app_async_with_context,
};

use crate::api::{AppState, ExplorerPage, SchedulesPage, TaskPage, auth};

/// The name cargo-leptos gives the site's JS, WASM and CSS files.
pub const OUTPUT_NAME: &str = "taskwire";

/// The task page's route. `GET` on it is shared with the JSON API and
/// negotiated by `Accept` (see `api::http`), so it is not routed here.
const TASK_PAGE: &str = "/tasks/{id}";

/// The schedules page's route, shared with `GET /schedules` as the task
/// page's is.
const SCHEDULES_PAGE: &str = "/schedules";

/// The task explorer's route, shared with `GET /tasks` (`list` as JSON).
const EXPLORER_PAGE: &str = "/tasks";

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
    if let Some(policy) = policy_header(&nonce, reload_port) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, policy);
    }
}

/// [`page_policy`] as a header value (none, logged, if it cannot be one).
fn policy_header(nonce: &str, reload_port: Option<u32>) -> Option<HeaderValue> {
    HeaderValue::from_str(&page_policy(nonce, reload_port))
        .inspect_err(|e| {
            tracing::error!(error = %e, "cannot make the page's Content-Security-Policy");
        })
        .ok()
}

/// What the pages read from the server while they are rendered.
///
/// `GET /kinds` needs the access token (when the server has one), so the
/// pages list the kinds only remote workers offer just to a viewer who
/// presented it (`trusted`): to anyone else, their names (chosen by whoever
/// runs those workers) are not the server's to show. The same goes for the
/// schedules (`GET /schedules`), whose tasks hold their inputs: the page
/// of an untrusted viewer shows them once its socket is accepted.
fn backend(state: &AppState, trusted: bool) -> Backend {
    let for_kinds = state.clone();
    let dispatcher = state.dispatcher.clone();
    let schedules = state.schedules.clone();
    let for_list = state.clone();
    let for_attempts = state.clone();
    Backend {
        kinds: Arc::new(move || {
            if trusted {
                for_kinds.kinds()
            } else {
                for_kinds.registry.kinds()
            }
        }),
        task: Arc::new(move |id| {
            let dispatcher = dispatcher.clone();
            Box::pin(async move { dispatcher.get(id).await.ok() })
        }),
        schedules: Arc::new(move || {
            let schedules = schedules.clone();
            Box::pin(async move {
                if !trusted {
                    return None;
                }
                match schedules.list().await {
                    Ok(list) => Some(list),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the schedules for a page");
                        None
                    }
                }
            })
        }),
        list: Arc::new(move |query| {
            let state = for_list.clone();
            Box::pin(async move {
                if !trusted {
                    return None;
                }
                match state.lookup.list(&state.dispatcher, query).await {
                    Ok(page) => Some(page),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the tasks for a page");
                        None
                    }
                }
            })
        }),
        attempts: Arc::new(move |id| {
            let state = for_attempts.clone();
            Box::pin(async move { state.lookup.attempts(&state.dispatcher, id).await.ok() })
        }),
    }
}

/// Whether the request of the page being rendered may see what the API
/// shows only with the access token: always without `--token`, else with
/// `Authorization: Bearer <token>` or `?token=<token>` (how the console is
/// opened the first time, see the README).
fn viewer_trusted(state: &AppState, request: Option<&Parts>) -> bool {
    if !state.token.required() {
        return true;
    }
    let Some(request) = request else {
        return false;
    };
    if let Some(token) = auth::bearer_token(&request.headers) {
        return state.token.allows(Some(token));
    }
    let query = request.uri.query().unwrap_or_default();
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .is_some_and(|(_, token)| state.token.allows(Some(&token)))
}

/// Routes of the site's pages and files.
pub fn router(options: LeptosOptions, state: &AppState) -> Router {
    let routes = generate_route_list(App)
        .into_iter()
        .filter(|r| ![TASK_PAGE, SCHEDULES_PAGE, EXPLORER_PAGE].contains(&r.path()))
        .collect();
    let state = state.clone();
    let reload = reload_port(&options);
    Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            // leptos_axum provides the request's parts before this runs.
            move || {
                let trusted = viewer_trusted(&state, use_context::<Parts>().as_ref());
                provide_context(backend(&state, trusted));
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

/// The API's renderer of task pages (see [`TaskPage`]).
pub fn task_pages(options: LeptosOptions) -> TaskPage {
    Arc::new(move |state, task, req| Box::pin(task_page(state, options.clone(), task, req)))
}

/// `GET /tasks/{id}` from a browser: the page of `task`, already read by
/// the caller (`404` when there is none).
async fn task_page(
    state: AppState,
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
        // The HTTP API let the request through: it has the token, if any.
        ..backend(&state, true)
    };
    let mut res = render_page(options, backend, req).await;
    *res.status_mut() = status;
    res
}

/// The API's renderer of the schedules page (see [`SchedulesPage`]).
pub fn schedules_pages(options: LeptosOptions) -> SchedulesPage {
    Arc::new(move |state, req| Box::pin(viewer_page(state, options.clone(), req)))
}

/// The API's renderer of the task explorer (see [`ExplorerPage`]).
pub fn tasks_pages(options: LeptosOptions) -> ExplorerPage {
    Arc::new(move |state, req| Box::pin(viewer_page(state, options.clone(), req)))
}

/// `GET /schedules` or `GET /tasks` from a browser: the page, with the
/// schedules or tasks in it for a viewer who may see them (the API did not
/// check the token).
async fn viewer_page(state: AppState, options: LeptosOptions, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let trusted = viewer_trusted(&state, Some(&parts));
    let backend = backend(&state, trusted);
    render_page(options, backend, Request::from_parts(parts, body)).await
}

/// A page the API routes (the task page, the schedules page), rendered
/// with `backend`.
///
/// The page's policy normally reaches the response through Leptos's
/// `ResponseOptions` (see [`send_page_policy`]). Should a render end without
/// it, the policy is set here from the nonce the render drew, so the page
/// never gets the default policy, which would block its own files.
async fn render_page(options: LeptosOptions, backend: Backend, req: Request) -> Response {
    let reload = reload_port(&options);
    let drawn: Arc<OnceLock<String>> = Arc::default();
    let render = render_app_async_with_context(
        {
            let drawn = drawn.clone();
            move || {
                provide_context(backend.clone());
                if let Some(nonce) = use_nonce() {
                    let _ = drawn.set(nonce.to_string());
                }
                send_page_policy(reload);
            }
        },
        move || shell(options.clone()),
    );
    // Whole, not streamed: the page must read without JavaScript.
    let mut res = render(req).await;
    if res.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        return res;
    }
    let Some(nonce) = drawn.get() else {
        tracing::error!("a page was rendered without a nonce");
        return res;
    };
    if let Some(policy) = policy_header(nonce, reload) {
        tracing::warn!("a page was rendered without its policy; set it afterwards");
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::AccessToken;
    use crate::kinds::Registry;
    use app::{TaskId, TaskSpec, Timestamp};
    use axum::body::Body;
    use axum::http::header::ACCEPT;

    /// A kind name a remote worker could once offer (and a store written
    /// then may still hold): markup that closes `<title>`.
    const INJECTED: &str = "</title><img src=x onerror=alert(1)>";

    #[tokio::test]
    async fn the_task_page_title_shows_a_kind_as_text() {
        // Sets up leptos' executor, as building the server's router does.
        let _ = generate_route_list(App);
        // No scheduler behind it: what the page asks of one (the task's
        // attempts) fails at once and the page renders without them.
        let (dispatcher, mailbox) = crate::scheduler::channel();
        drop(mailbox);
        let state = AppState {
            dispatcher,
            health: Default::default(),
            registry: Registry::builtin(),
            remote_kinds: Default::default(),
            token: AccessToken::default(),
            events_per_sec: 100,
            local_workers: false,
            task_page: None,
            schedules_page: None,
            tasks_page: None,
            schedules: crate::schedules::Schedules::unsupported(),
            lookup: Default::default(),
            metrics: Default::default(),
        };
        let options = LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(".")
            .site_pkg_dir("pkg")
            .build();
        let id = TaskId::from(uuid::Uuid::now_v7());
        let task = Task::new(
            id,
            TaskSpec::new(INJECTED, serde_json::json!(1)),
            Timestamp::now(),
        );
        let req = Request::builder()
            .uri(format!("/tasks/{id}"))
            .header(ACCEPT, "text/html")
            .body(Body::empty())
            .unwrap();
        let res = task_page(state.clone(), options, Some(task), req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let policy = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !html.contains("<img"),
            "injected markup in the page: {html}"
        );
        let full = id.to_string();
        let short = &full[full.len() - 8..];
        let title = format!("<title>&lt;/title&gt;&lt;img src=x onerror=alert(1)&gt; {short}");
        assert!(html.contains(&title), "{title} not in {html}");
        // The page's own policy, with the nonce its inline script bears.
        let nonce = html
            .split(" nonce=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no nonce in {html}"));
        assert_eq!(policy, page_policy(nonce, None));
    }
}
