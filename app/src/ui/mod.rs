//! The Leptos application: the HTML shell rendered on the server and the
//! component tree hydrated in the browser.
//!
//! Pages: the console (`/`: submit panel and live task list), the dashboard
//! (`/dashboard`), the recurring schedules (`/schedules`), the task
//! explorer (`/tasks`: every client's tasks) and one task's page
//! (`/tasks/{id}`); each is rendered on the server, so it reads without
//! JavaScript, and live once hydrated.

pub mod book;
pub mod bulk;
pub mod console;
pub mod dashboard;
pub mod explore;
pub mod explorer;
pub mod fields;
pub mod io;
mod kind_form;
pub mod kinds_table;
pub mod live;
pub mod run_options;
pub mod schedule_form;
pub mod schedules;
pub mod submit;
pub mod task_input;
pub mod task_ops;
pub mod task_page;
pub mod task_view;
pub mod when;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment, path};

pub use live::Live;

use crate::protocol::{Attempts, ListPage, ListQuery, Schedule, Task, TaskId, builtin};

/// The text of the `<title>`, for every page (the formatter of the root
/// `<Title>` applies to those below it).
///
/// leptos_meta writes the title into the server-rendered `<head>` as is:
/// the same string later becomes `document.title` in the browser, where it
/// is text and must not be escaped, so leptos_meta leaves escaping to the
/// caller. Titles hold data (a task's kind), so on the server the text is
/// escaped here; `</title><script>` stays text.
pub fn title_text(text: String) -> String {
    if cfg!(feature = "ssr") {
        html_escape::encode_text(&text).into_owned()
    } else {
        text
    }
}

/// A future the server's [`Backend`] answers with.
#[cfg(feature = "ssr")]
pub type BackendFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// What the server gives the pages it renders: the kinds it runs and ways
/// to read a task and the schedules. Provided as context by the server
/// crate.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct Backend {
    pub kinds: std::sync::Arc<dyn Fn() -> Vec<String> + Send + Sync>,
    pub task: std::sync::Arc<dyn Fn(TaskId) -> BackendFuture<Option<Task>> + Send + Sync>,
    /// Every schedule, sorted by name; `None` when the viewer may not see
    /// them (the access token) or the server cannot list them.
    pub schedules: std::sync::Arc<dyn Fn() -> BackendFuture<Option<Vec<Schedule>>> + Send + Sync>,
    /// One page of every client's tasks (the explorer); `None` when the
    /// viewer may not see them (the access token) or the server cannot
    /// list them.
    pub list: std::sync::Arc<dyn Fn(ListQuery) -> BackendFuture<Option<ListPage>> + Send + Sync>,
    /// A task's attempts (its page); `None` when there is no such task or
    /// they cannot be read.
    pub attempts: std::sync::Arc<dyn Fn(TaskId) -> BackendFuture<Option<Attempts>> + Send + Sync>,
}

/// The kinds the server runs: from the server itself while rendering, from
/// `GET /kinds` in a browser-only build.
async fn load_kinds() -> Vec<String> {
    #[cfg(feature = "ssr")]
    if let Some(backend) = use_context::<Backend>() {
        return (backend.kinds)();
    }
    #[cfg(target_arch = "wasm32")]
    {
        let fetch = send_wrapper::SendWrapper::new(
            io::fetch_json::<Vec<crate::protocol::KindInfo>>("/kinds"),
        );
        if let Ok(kinds) = fetch.await {
            return kinds.into_iter().map(|k| k.kind).collect();
        }
    }
    builtin::KINDS.iter().map(|k| (*k).to_owned()).collect()
}

/// One task: from the server while rendering, over the socket (which also
/// follows it) in the browser.
async fn load_task(id: TaskId) -> Option<Task> {
    #[cfg(feature = "ssr")]
    if let Some(backend) = use_context::<Backend>() {
        return (backend.task)(id).await;
    }
    #[cfg(target_arch = "wasm32")]
    {
        let payload = crate::protocol::TaskRef::from(id);
        let ack =
            send_wrapper::SendWrapper::new(io::emit(crate::protocol::events::SUBSCRIBE, &payload));
        return ack.await.ok().and_then(|a| a.task);
    }
    #[allow(unreachable_code)]
    {
        let _ = id;
        None
    }
}

/// The schedules as the server rendered them; in the browser, the live
/// list ([`Live::follow_schedules`]) brings them instead.
async fn load_schedules() -> Option<Vec<Schedule>> {
    #[cfg(feature = "ssr")]
    if let Some(backend) = use_context::<Backend>() {
        return (backend.schedules)().await;
    }
    None
}

/// One page of the explorer: from the server while rendering (`None` for
/// a viewer who may not see it: the browser then asks over its socket), by
/// `list` over the socket in the browser. `Err` says why `list` refused.
async fn load_list(
    query: ListQuery,
    payload: serde_json::Value,
) -> Result<Option<ListPage>, String> {
    #[cfg(feature = "ssr")]
    if let Some(backend) = use_context::<Backend>() {
        return Ok((backend.list)(query).await);
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = query;
        let ask = send_wrapper::SendWrapper::new(io::request::<_, ListPage>(
            crate::protocol::events::LIST,
            &payload,
        ));
        return ask.await.map(Some).map_err(|e| e.message);
    }
    #[allow(unreachable_code)]
    {
        let _ = (query, payload);
        Ok(None)
    }
}

/// A task's attempts: from the server while rendering, from `GET
/// /tasks/{id}/attempts` in the browser.
async fn load_attempts(id: TaskId) -> Option<Attempts> {
    #[cfg(feature = "ssr")]
    if let Some(backend) = use_context::<Backend>() {
        return (backend.attempts)(id).await;
    }
    #[cfg(target_arch = "wasm32")]
    {
        let url = format!("/tasks/{id}/attempts");
        let fetch = send_wrapper::SendWrapper::new(io::fetch_json::<Attempts>(&url));
        return fetch.await.ok();
    }
    #[allow(unreachable_code)]
    {
        let _ = id;
        None
    }
}

/// The whole document, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The kinds the server runs, loaded once per page.
#[derive(Clone, Copy)]
pub struct Kinds(pub Resource<Vec<String>>);

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let live = Live::new();
    provide_context(live);
    provide_context(Kinds(Resource::new(|| (), |_| load_kinds())));
    // Effects run only in the browser, after hydration.
    Effect::new(move |_| {
        live.start();
        mark_hydrated();
    });
    // cargo-leptos serves the stylesheet; Trunk (`csr`) injects it itself.
    let stylesheet = (!cfg!(feature = "csr"))
        .then(|| view! { <Stylesheet id="leptos" href="/pkg/taskwire.css"/> });
    view! {
        {stylesheet}
        <Title text="Taskwire" formatter=title_text/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"Taskwire"</a>
                <nav aria-label="Main">
                    <A href="/">"Console"</A>
                    <A href="/tasks">"Tasks"</A>
                    <A href="/dashboard">"Dashboard"</A>
                    <A href="/schedules">"Schedules"</A>
                </nav>
                <ConnIndicator/>
            </header>
            <main id="main">
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    // Async: the server sends each page whole, data in place,
                    // so it reads (and its form posts) without JavaScript.
                    <Route path=StaticSegment("") view=console::Console ssr=SsrMode::Async/>
                    <Route path=StaticSegment("dashboard") view=dashboard::Dashboard ssr=SsrMode::Async/>
                    <Route path=StaticSegment("schedules") view=schedules::SchedulesPage ssr=SsrMode::Async/>
                    <Route path=StaticSegment("tasks") view=explorer::TasksPage ssr=SsrMode::Async/>
                    <Route path=path!("/tasks/:id") view=task_page::TaskPage ssr=SsrMode::Async/>
                </Routes>
            </main>
            <p id="announcer" class="visually-hidden" aria-live="polite" role="status">
                {move || live.announcement.get()}
            </p>
        </Router>
    }
}

/// Lets scripts (and the browser tests) know the page is interactive.
fn mark_hydrated() {
    #[cfg(target_arch = "wasm32")]
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.dataset().set("hydrated", "true");
    }
}

/// The connection's state, always visible in the top bar.
#[component]
fn ConnIndicator() -> impl IntoView {
    let live = Live::get();
    view! {
        <span
            id="conn"
            class=move || format!("conn conn-{}", live.conn.get().name())
            data-state=move || live.conn.get().name()
            role="status"
            aria-live="polite"
        >
            <span class="dot" aria-hidden="true"></span>
            {move || live.conn.get().label()}
        </span>
    }
}
