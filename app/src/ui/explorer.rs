//! `/tasks`: the task explorer. Every client's tasks, a page at a time
//! (`list`), filtered by status, kind and key, or one task found by id;
//! the filters live in the URL query ([`Explore`]), so a view can be
//! linked and survives a reload. Rendered on the server with its page for
//! a viewer who may see it (the access token), then live:
//!
//! - the rows follow their tasks: each listed task is subscribed, so its
//!   room's `status`, `progress` and `result` pushes update its row;
//! - new tasks appear without a timer: the page joins the `dashboard`
//!   room, and when a `stats` push shows the counters moved (a task
//!   submitted, started or finished anywhere), the newest page is listed
//!   again (one request at a time; pushes meanwhile make one more). Older
//!   pages are not listed again (new tasks never land on them); their
//!   rows still update in place.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use serde::{Deserialize, Serialize};

use super::bulk::Bulk;
use super::explore::{Explore, LIMITS, STATUSES, Trail};
use super::io::{self, ConnState};
use super::live::{Live, short_id, status_label};
use super::task_view::{Badge, pretty};
use super::when::utc_time;
use super::{Kinds, load_list, load_task};
use crate::protocol::{ListPage, Stats, Task, TaskId, events};

/// What a view of the explorer shows, as loaded for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shown {
    /// A page of the listing; `Ok(None)` until the browser loads it (the
    /// server did not render it for this viewer), `Err` when `list` refused
    /// the filters.
    List(Result<Option<ListPage>, String>),
    /// A task looked up by id (`None`: no such task), or why the text is
    /// not an id.
    Found(Result<Option<Box<Task>>, String>),
}

async fn load(view: Explore) -> (Explore, Shown) {
    let shown = match view.search() {
        Some(Ok(id)) => Shown::Found(Ok(load_task(id).await.map(Box::new))),
        Some(Err(why)) => Shown::Found(Err(why)),
        None => match view.query() {
            Ok(q) => Shown::List(load_list(q, view.payload()).await),
            Err(e) => Shown::List(Err(e.message)),
        },
    };
    (view, shown)
}

#[component]
pub fn TasksPage() -> impl IntoView {
    let query = use_query_map();
    let view = Memo::new(move |_| query.with(|q| Explore::from_pairs(q.latest_values())));
    let shown = Resource::new(move || view.get(), load);
    let trail = StoredValue::new(Trail::default());
    let live = Live::get();
    Effect::new(move |_| live.join_dashboard());
    view! {
        <Title text="Tasks · Taskwire"/>
        <div class="explorer">
            <section class="panel" aria-labelledby="explorer-title">
                <h2 id="explorer-title">"Tasks"</h2>
                <p class="hint">"Every client's tasks, newest first."</p>
                {move || view! { <Filters view=view.get()/> }}
                <Transition fallback=|| view! { <p class="empty">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let (view, shown) = shown.await;
                        match shown {
                            Shown::List(Ok(first)) => view! { <Listing view first trail/> }.into_any(),
                            Shown::List(Err(why)) => view! {
                                <p class="field-error" role="alert" id="explorer-error">{why}</p>
                            }.into_any(),
                            Shown::Found(found) => view! { <Found view found/> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </div>
    }
}

/// The filters and the search by id: plain `GET` forms (they work
/// without JavaScript); in the browser they navigate to the clean URL of
/// the view, and an id typed in opens that task's page.
#[component]
fn Filters(view: Explore) -> impl IntoView {
    let Kinds(kinds) = expect_context::<Kinds>();
    let navigate = use_navigate();
    let status = RwSignal::new(view.status.clone().unwrap_or_default());
    let kind = RwSignal::new(view.kind.clone().unwrap_or_default());
    let key = RwSignal::new(view.key.clone().unwrap_or_default());
    let limit = RwSignal::new(view.limit.clone().unwrap_or_default());
    let id = RwSignal::new(view.id.clone().unwrap_or_default());
    let go = navigate.clone();
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let next = Explore::from_pairs([
            ("status", status.get_untracked()),
            ("kind", kind.get_untracked()),
            ("key", key.get_untracked()),
            ("limit", limit.get_untracked()),
        ]);
        go(&next.href(), Default::default());
    };
    let find = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = id.get_untracked();
        let text = text.trim();
        match text.parse::<TaskId>() {
            Ok(id) => navigate(&format!("/tasks/{id}"), Default::default()),
            Err(_) => navigate(
                &Explore::from_pairs([("id", text)]).href(),
                Default::default(),
            ),
        }
    };
    let chosen_kind = view.kind.clone();
    let chosen_status = view.status.clone();
    let chosen_limit = view.limit.clone();
    view! {
        <form id="explorer-filters" class="filters-form" method="get" action="/tasks" on:submit=apply>
            <div class="row">
                <label for="filter-status">"Status"</label>
                <select id="filter-status" name="status" on:change=move |ev| status.set(event_target_value(&ev))>
                    <option value="" selected=chosen_status.is_none()>"any"</option>
                    {STATUSES.into_iter().map(|s| view! {
                        <option value=s.as_str() selected=chosen_status.as_deref() == Some(s.as_str())>
                            {status_label(s)}
                        </option>
                    }).collect_view()}
                </select>
            </div>
            <div class="row">
                <label for="filter-kind">"Kind"</label>
                <Transition fallback=|| ()>
                    <select id="filter-kind" name="kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="" selected=chosen_kind.is_none()>"any"</option>
                        {move || {
                            let mut names = kinds.get().unwrap_or_default();
                            if let Some(k) = &chosen_kind && !names.contains(k) {
                                names.push(k.clone());
                            }
                            names.into_iter().map(|k| {
                                let selected = chosen_kind.as_ref() == Some(&k);
                                view! { <option value=k.clone() selected=selected>{k.clone()}</option> }
                            }).collect_view()
                        }}
                    </select>
                </Transition>
            </div>
            <div class="row">
                <label for="filter-key">"Key"</label>
                <input id="filter-key" name="key" type="search" placeholder="report:42 or report:*"
                    value=view.key.clone() prop:value=move || key.get() on:input=move |ev| key.set(event_target_value(&ev))/>
            </div>
            <div class="row">
                <label for="filter-limit">"Per page"</label>
                <select id="filter-limit" name="limit" on:change=move |ev| limit.set(event_target_value(&ev))>
                    {LIMITS.into_iter().map(|n| {
                        let value = n.to_string();
                        let selected = chosen_limit.as_deref().unwrap_or("50") == value;
                        view! { <option value=value.clone() selected=selected>{value.clone()}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="form-actions">
                <button type="submit" id="apply-filters">"Apply"</button>
                <a class="clear" href="/tasks">"Clear"</a>
            </div>
        </form>
        <form id="explorer-find" class="find-form" method="get" action="/tasks" on:submit=find>
            <label for="find-id">"Find by id"</label>
            <input id="find-id" name="id" type="search" spellcheck="false" autocomplete="off"
                placeholder="0190a5c3-…" value=view.id.clone() prop:value=move || id.get()
                on:input=move |ev| id.set(event_target_value(&ev))/>
            <button type="submit" class="secondary" id="find-button">"Find"</button>
        </form>
    }
}

/// The eight counters of a `stats` push: when they move, tasks came,
/// went or changed status somewhere.
fn counters(s: &Stats) -> [u64; 8] {
    [
        s.scheduled,
        s.waiting,
        s.queued,
        s.running,
        s.succeeded,
        s.failed,
        s.cancelled,
        s.timed_out,
    ]
}

/// A page of the listing, kept current (see the module's notes).
#[component]
fn Listing(view: Explore, first: Option<ListPage>, trail: StoredValue<Trail>) -> impl IntoView {
    let live = Live::get();
    let navigate = use_navigate();
    let page = RwSignal::new(first);
    let busy = StoredValue::new(false);
    let again = StoredValue::new(false);
    let payload = StoredValue::new(view.payload());
    let error = RwSignal::new(None::<String>);
    // Lists this view again; one request at a time, and one more if asked
    // meanwhile.
    let relist = move || {
        if busy.get_value() {
            again.set_value(true);
            return;
        }
        busy.set_value(true);
        spawn_local(async move {
            loop {
                let ask = payload.get_value();
                match io::request::<_, ListPage>(events::LIST, &ask).await {
                    Ok(p) => {
                        error.set(None);
                        page.set(Some(p));
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                if !again.get_value() {
                    break;
                }
                again.set_value(false);
            }
            busy.set_value(false);
        });
    };
    // Follow every listed task.
    Effect::new(move |_| {
        page.with(|p| {
            for t in p.iter().flat_map(|p| &p.tasks) {
                live.watch(t.clone());
            }
        })
    });
    // Not rendered by the server (the token): list it once connected.
    Effect::new(move |_| {
        if live.conn.get() == ConnState::Connected && page.with_untracked(Option::is_none) {
            relist();
        }
    });
    if view.is_first_page() {
        Effect::new(move |prev: Option<Option<[u64; 8]>>| {
            let now = live.stats.with(|s| s.as_ref().map(counters));
            if let Some(prev) = prev
                && now.is_some()
                && prev != now
            {
                relist();
            }
            now
        });
    }
    let rows = move || {
        page.with(|p| {
            p.iter()
                .flat_map(|p| &p.tasks)
                .map(|t| (t.id, t.clone()))
                .collect::<Vec<_>>()
        })
    };
    let count = move || page.with(|p| p.as_ref().map(|p| p.tasks.len()));
    let newer = {
        let view = view.clone();
        let navigate = navigate.clone();
        move |ev: leptos::ev::MouseEvent| {
            ev.prevent_default();
            let target = trail.try_update_value(|t| t.newer(&view));
            if let Some(target) = target {
                navigate(&target.href(), Default::default());
            }
        }
    };
    let older = {
        let view = view.clone();
        move || {
            let next = page.with(|p| p.as_ref().and_then(|p| p.next))?;
            let href = view.page(next).href();
            let from = view.clone();
            Some(view! {
                <a class="older" href=href on:click=move |_| trail.update_value(|t| t.push(&from))>
                    "Older →"
                </a>
            })
        }
    };
    let newest = view.first_page().href();
    let first_page = view.is_first_page();
    let filtered = view.filtered();
    view! {
        <Bulk view=view.clone()/>
        {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
        <table id="explorer" class="explorer-table" data-count=move || count().unwrap_or(0).to_string()>
            <thead>
                <tr>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Kind"</th>
                    <th scope="col">"Task"</th>
                    <th scope="col">"Key"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col" class="num">"Attempt"</th>
                    <th scope="col">"Worker"</th>
                    <th scope="col">"Output or error"</th>
                </tr>
            </thead>
            <tbody>
                <For each=rows key=|(id, _)| *id let:((_, task))>
                    <ExplorerRow initial=task/>
                </For>
            </tbody>
        </table>
        {move || match count() {
            None => Some(view! { <p class="empty" id="explorer-loading">"The tasks show once the page is connected."</p> }.into_any()),
            Some(0) => Some(view! {
                <p class="empty">{if filtered { "No task matches these filters." } else { "No tasks yet." }}</p>
            }.into_any()),
            Some(_) => None,
        }}
        <nav class="pager" aria-label="Pages">
            {(!first_page).then(|| view! {
                <a class="newer" href=newest on:click=newer>"← Newer"</a>
            })}
            <span class="page-count">{move || count().map(|n| format!("{n} on this page"))}</span>
            {older}
        </nav>
    }
}

/// A task found by id: its row and a link to its page.
#[component]
fn Found(view: Explore, found: Result<Option<Box<Task>>, String>) -> impl IntoView {
    let live = Live::get();
    match found {
        Err(why) => {
            view! { <p class="field-error" role="alert" id="explorer-error">{why}</p> }.into_any()
        }
        Ok(None) => view! {
            <p class="empty" id="explorer-missing">
                {format!("No task has the id {}.", view.id.unwrap_or_default())}
            </p>
        }
        .into_any(),
        Ok(Some(task)) => {
            let task = *task;
            let id = task.id;
            let initial = task.clone();
            Effect::new(move |_| live.watch(initial.clone()));
            view! {
                <table id="explorer" class="explorer-table" data-count="1">
                    <tbody><ExplorerRow initial=task/></tbody>
                </table>
                <p><a class="open-task" href=format!("/tasks/{id}")>"Open the task's page →"</a></p>
            }
            .into_any()
        }
    }
}

/// A short line for the last cell: the error, or the start of the output.
pub fn summary(task: &Task) -> String {
    const MAX: usize = 80;
    let text = match (&task.error, &task.output) {
        (Some(e), _) => format!("{}: {}", e.code.as_str(), e.message),
        (None, Some(out)) => pretty(out).split_whitespace().collect::<Vec<_>>().join(" "),
        (None, None) => String::new(),
    };
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// One listed task; re-renders when its task changes.
#[component]
fn ExplorerRow(initial: Task) -> impl IntoView {
    let live = Live::get();
    let id = initial.id;
    let task = live.current(initial);
    move || {
        let t = task.get();
        let status = t.status;
        let failed = t.error.is_some();
        view! {
            <tr data-task-id=id.to_string() data-status=status.as_str()>
                <td><Badge status/></td>
                <td class="kind">{t.kind.clone()}</td>
                <td><a class="task-link" href=format!("/tasks/{id}")><code>{short_id(&id)}</code></a></td>
                <td>{t.key.clone().map(|k| view! { <code class="key">{k}</code> })}</td>
                <td><time datetime=t.created_at.to_string()>{utc_time(&t.created_at)}</time></td>
                <td class="num">{(t.attempt > 0).then(|| format!("{}/{}", t.attempt, t.max_attempts))}</td>
                <td>{t.worker.as_ref().map(|w| view! { <code>{w.to_string()}</code> })}</td>
                <td class=if failed { "summary error" } else { "summary" }>{summary(&t)}</td>
            </tr>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorBody, ErrorCode, TaskSpec, Timestamp};

    #[test]
    fn the_last_cell_sums_a_task_up() {
        let mut t = Task::new(
            TaskId(uuid::Uuid::nil()),
            TaskSpec::new("echo", serde_json::json!(1)),
            Timestamp::now(),
        );
        assert_eq!(summary(&t), "");
        t.output = Some(serde_json::json!({"a": [1, 2]}).into());
        assert_eq!(summary(&t), r#"{ "a": [ 1, 2 ] }"#);
        t.output = Some(serde_json::json!("x".repeat(100)).into());
        assert_eq!(summary(&t).chars().count(), 80);
        assert!(summary(&t).ends_with('…'));
        t.error = Some(Box::new(ErrorBody::new(ErrorCode::TaskFailed, "boom")));
        assert_eq!(summary(&t), "task_failed: boom");
    }
}
