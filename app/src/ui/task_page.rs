//! `/tasks/{id}`: one task, rendered on the server (the no-JS form's `303`
//! lands here), live after hydration, with its attempts and, once it
//! failed, was cancelled or timed out, a Retry button.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use super::live::{Live, short_id};
use super::task_ops::TaskOps;
use super::task_view::TaskDetail;
use super::{load_attempts, load_task};
use crate::protocol::TaskId;

#[component]
pub fn TaskPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || {
        params
            .read()
            .get("id")
            .and_then(|raw| raw.parse::<TaskId>().ok())
    };
    // The task and its attempts, read together: one resource for the
    // server to wait on.
    let task = Resource::new(id, |id| async move {
        let Some(id) = id else {
            return (None, None);
        };
        let task = load_task(id).await;
        let attempts = match task {
            Some(_) => load_attempts(id).await,
            None => None,
        };
        (task, attempts)
    });
    let live = Live::get();
    view! {
        <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match task.await {
                    (Some(t), attempts) => {
                        let title = format!("{} {} · Taskwire", t.kind, short_id(&t.id));
                        // Follow it live once the page runs in a browser.
                        let initial = t.clone();
                        Effect::new(move |_| live.follow(initial.clone()));
                        view! {
                            <Title text=title/>
                            <TaskDetail initial=t.clone()/>
                            <TaskOps initial=t attempts/>
                            <p class="back"><a href="/tasks">"← Tasks"</a>" · "<a href="/">"Console"</a></p>
                        }
                        .into_any()
                    }
                    (None, _) => view! {
                        <Title text="No such task · Taskwire"/>
                        <h1>"No such task"</h1>
                        <p class="empty">"The server has no task with this id (it may have been pruned)."</p>
                        <p class="back"><a href="/tasks">"← Tasks"</a>" · "<a href="/">"Console"</a></p>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}
