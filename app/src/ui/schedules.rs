//! `/schedules`: the recurring schedules, rendered on the server (for a
//! viewer who may see them), then live: the page joins the `dashboard`
//! room and shows every `schedules` push. Each schedule can be paused,
//! resumed (sent again with `paused` toggled) and deleted (once
//! confirmed); the form below the list creates one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;
use serde_json::{Value, json};

use super::live::Live;
use super::load_schedules;
use super::schedule_form::ScheduleForm;
use super::task_view::TaskLink;
use super::when::{ago, countdown, utc_time};
use crate::protocol::Schedule;

/// The payload of `schedule` that puts `s` back with `paused` set so.
pub fn with_paused(s: &Schedule, paused: bool) -> Value {
    json!({
        "name": s.name,
        "cron": s.cron,
        "timezone": s.timezone,
        "task": s.task,
        "paused": paused,
    })
}

/// The kind of a schedule's task, as its `task` names it.
pub fn task_kind(s: &Schedule) -> String {
    s.task
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

#[component]
pub fn SchedulesPage() -> impl IntoView {
    let live = Live::get();
    let first = Resource::new(|| (), |_| load_schedules());
    Effect::new(move |_| live.follow_schedules());
    view! {
        <Title text="Schedules · Taskwire"/>
        <div class="schedules-page">
            <section class="panel" aria-labelledby="schedules-title">
                <h2 id="schedules-title">"Schedules"</h2>
                <Suspense fallback=|| view! { <p class="empty">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let first = first.await;
                        view! { <ScheduleTable first/> }
                    })}
                </Suspense>
            </section>
            <ScheduleForm/>
        </div>
    }
}

/// Every schedule: `first` (as the server rendered them, if it could)
/// until the live list comes.
#[component]
pub fn ScheduleTable(first: Option<Vec<Schedule>>) -> impl IntoView {
    let live = Live::get();
    let list = Memo::new(move |_| live.schedules.get().or_else(|| first.clone()));
    let names = move || {
        list.with(|l| {
            l.iter()
                .flatten()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        })
    };
    view! {
        <table id="schedules" class="schedules">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"When"</th>
                    <th scope="col">"Task"</th>
                    <th scope="col">"Next run"</th>
                    <th scope="col">"Last run"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                <For each=names key=|n| n.clone() let:name>
                    <ScheduleRow name list/>
                </For>
            </tbody>
        </table>
        {move || match list.with(|l| l.as_ref().map(Vec::is_empty)) {
            Some(true) => Some(view! { <p class="empty">"No schedules yet."</p> }.into_any()),
            Some(false) => None,
            None => Some(view! {
                <p class="empty" id="schedules-loading">
                    {move || live.schedules_error.get()
                        .unwrap_or_else(|| "The schedules show once the page is connected.".into())}
                </p>
            }.into_any()),
        }}
    }
}

/// One schedule. Each cell follows the schedule on its own, so a firing
/// (every second, for some) does not re-create the buttons under the
/// pointer or the keyboard focus.
#[component]
fn ScheduleRow(name: String, list: Memo<Option<Vec<Schedule>>>) -> impl IntoView {
    let live = Live::get();
    let key = name.clone();
    let schedule =
        Memo::new(move |_| list.with(|l| l.iter().flatten().find(|s| s.name == key).cloned()));
    let field = move |f: fn(&Schedule) -> String| {
        move || schedule.with(|s| s.as_ref().map(f).unwrap_or_default())
    };
    let paused = Memo::new(move |_| schedule.with(|s| s.as_ref().is_some_and(|s| s.paused)));
    let next = move || {
        schedule.with(|s| {
            let s = s.as_ref()?;
            let at = s.next_run_at?;
            let text = utc_time(&at);
            let left = (!s.paused).then(|| countdown(at.millis() - live.clock()));
            Some(view! {
                <time datetime=at.to_string()>{text}</time>
                {left.map(|l| view! { <small class="countdown">{l}</small> })}
            })
        })
    };
    let last = move || {
        schedule.with(|s| {
            let s = s.as_ref()?;
            let Some(at) = s.last_run_at else {
                return Some(view! { <span class="never">"never"</span> }.into_any());
            };
            let since = ago(live.clock() - at.millis());
            Some(
                view! {
                    <time datetime=at.to_string() title=utc_time(&at)>{since}</time>
                    {s.last_task_id.map(|id| view! { " · " <TaskLink id/> })}
                }
                .into_any(),
            )
        })
    };
    view! {
        <tr data-schedule=name.clone() data-paused=move || paused.get().to_string()>
            <th scope="row"><span class="name">{name.clone()}</span></th>
            <td>
                <code class="cron">{field(|s| s.cron.clone())}</code>
                " "<span class="tz">{field(|s| s.timezone.clone())}</span>
            </td>
            <td>
                <span class="kind" title=field(|s| s.task.to_string())>{field(task_kind)}</span>
                {move || paused.get().then(|| view! { <span class="tag paused">"paused"</span> })}
            </td>
            <td class="next">{next}</td>
            <td class="last">{last}</td>
            <td class="actions"><RowActions name=name.clone() schedule paused/></td>
        </tr>
    }
}

/// Pause or resume, and delete once confirmed.
#[component]
fn RowActions(name: String, schedule: Memo<Option<Schedule>>, paused: Memo<bool>) -> impl IntoView {
    let live = Live::get();
    let busy = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let keep_ref = NodeRef::<leptos::html::Button>::new();
    let delete_ref = NodeRef::<leptos::html::Button>::new();
    let run = move |op: std::pin::Pin<Box<dyn Future<Output = Result<(), String>>>>| {
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let r = op.await;
            busy.set(false);
            error.set(r.err());
        });
    };
    let toggle = move |_| {
        let Some(s) = schedule.get_untracked() else {
            return;
        };
        let payload = with_paused(&s, !s.paused);
        run(Box::pin(async move {
            live.put_schedule(payload)
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        }));
    };
    let ask = move |_| {
        confirming.set(true);
        request_focus(keep_ref);
    };
    let keep = move |_| {
        confirming.set(false);
        request_focus(delete_ref);
    };
    let confirm = {
        let name = name.clone();
        move |_| {
            let name = name.clone();
            run(Box::pin(async move {
                live.delete_schedule(name).await.map_err(|e| e.message)
            }));
        }
    };
    let label = name.clone();
    view! {
        <div class="row-actions" hidden=move || confirming.get()>
            <button type="button" class="secondary toggle" on:click=toggle disabled=move || busy.get()>
                {move || if paused.get() { "Resume" } else { "Pause" }}
                <span class="visually-hidden">" "{name.clone()}</span>
            </button>
            <button type="button" class="cancel delete" on:click=ask node_ref=delete_ref disabled=move || busy.get()>
                "Delete"<span class="visually-hidden">" "{name.clone()}</span>
            </button>
        </div>
        <div class="row-actions confirm" role="group" aria-label=format!("Delete {label}?") hidden=move || !confirming.get()>
            <span class="question">{format!("Delete {label}?")}</span>
            <button type="button" class="cancel confirm-delete" on:click=confirm disabled=move || busy.get()>"Delete"</button>
            <button type="button" class="secondary keep" on:click=keep node_ref=keep_ref>"Keep"</button>
        </div>
        {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
    }
}

/// Moves the keyboard focus to a button once it shows (its group's
/// `hidden` goes on the next render).
fn request_focus(target: NodeRef<leptos::html::Button>) {
    request_animation_frame(move || {
        if let Some(el) = target.get_untracked() {
            let _ = el.focus();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TaskSpec;

    #[test]
    fn pausing_sends_the_schedule_back_as_it_is() {
        let s = Schedule {
            name: "nightly".into(),
            cron: "0 1 * * *".into(),
            timezone: "Europe/Paris".into(),
            task: TaskSpec::new("sleep", json!({"ms": 5})).to_json(),
            paused: false,
            next_run_at: None,
            last_run_at: None,
            last_task_id: None,
        };
        assert_eq!(
            with_paused(&s, true),
            json!({
                "name": "nightly",
                "cron": "0 1 * * *",
                "timezone": "Europe/Paris",
                "task": {"kind": "sleep", "input": {"ms": 5}, "priority": 0, "max_attempts": 3},
                "paused": true,
            })
        );
        assert_eq!(task_kind(&s), "sleep");
    }
}
