//! How one task looks: in the console's list and on its own page.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::live::{Live, short_id, status_label};
use crate::protocol::{Task, TaskId, TaskStatus};

/// `350 ms`, `2.4 s`, `3 m 05 s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} m {:02} s", ms / 60_000, (ms / 1000) % 60),
    }
}

/// Time spent queued and running so far (`now` for the parts not over yet).
pub fn durations(task: &Task, now: i64) -> (i64, Option<i64>) {
    let created = task.created_at.millis();
    let end = task.finished_at.as_ref().map(|t| t.millis()).unwrap_or(now);
    match &task.started_at {
        Some(started) => (started.millis() - created, Some(end - started.millis())),
        None => (end - created, None),
    }
}

/// JSON as indented text.
pub fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[component]
pub fn Badge(status: TaskStatus) -> impl IntoView {
    view! { <span class=format!("badge badge-{}", status.as_str())>{status_label(status)}</span> }
}

/// The progress bar of an unfinished task: determinate once the task has
/// reported progress.
#[component]
fn ProgressBar(task: Task) -> impl IntoView {
    match (task.status, task.progress) {
        (TaskStatus::Running, Some(p)) => {
            let pct = if p.total == 0 {
                100.0
            } else {
                p.done as f64 * 100.0 / p.total as f64
            };
            let text = match &p.message {
                Some(m) => format!("{:.0}% · {m}", pct),
                None => format!("{:.0}%", pct),
            };
            view! {
                <div class="progress">
                    <progress max=p.total.to_string() value=p.done.to_string() aria-label="Progress"></progress>
                    <span class="progress-text">{text}</span>
                </div>
            }
            .into_any()
        }
        (TaskStatus::Running, None) => view! {
            <div class="progress"><progress aria-label="Progress"></progress></div>
        }
        .into_any(),
        _ => ().into_any(),
    }
}

/// Body of a task: durations, progress, output or error, cancel.
#[component]
fn TaskBody(task: Task, #[prop(optional)] full: bool) -> impl IntoView {
    let live = Live::get();
    let id = task.id;
    let unfinished = !task.status.is_final();
    let (error, set_error) = signal(None::<String>);
    let created = task.created_at.millis();
    let times = {
        let task = task.clone();
        move || {
            // Only unfinished tasks follow the clock.
            let now = if unfinished { live.now.get() } else { created };
            let (queued, ran) = durations(&task, now);
            match ran {
                Some(ran) => format!("queued {} · ran {}", duration(queued), duration(ran)),
                None => format!("queued {}", duration(queued)),
            }
        }
    };
    let cancel = move |_| {
        spawn_local(async move {
            set_error.set(live.cancel(id).await.err().map(|e| e.message));
        });
    };
    let input = full.then(|| {
        view! {
            <h3>"Input"</h3>
            <pre class="input">{pretty(&task.input)}</pre>
        }
    });
    view! {
        <p class="times">
            {times}
            {task.worker.as_ref().map(|w| format!(" · {w}"))}
            {(task.attempt > 1).then(|| format!(" · attempt {}/{}", task.attempt, task.max_attempts))}
        </p>
        <ProgressBar task=task.clone()/>
        {input}
        {task.output.as_ref().map(|out| view! {
            {full.then(|| view! { <h3>"Output"</h3> })}
            <pre class="output">{pretty(out)}</pre>
        })}
        {task.error.as_ref().map(|e| view! {
            {full.then(|| view! { <h3>"Error"</h3> })}
            <pre class="error"><strong>{e.code.as_str()}</strong>": "{e.message.clone()}</pre>
        })}
        {unfinished.then(|| view! {
            <button type="button" class="cancel" on:click=cancel>
                "Cancel"<span class="visually-hidden">" task "{short_id(&id)}</span>
            </button>
        })}
        {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
    }
}

/// One row of the console's list; re-renders only when its task changes.
#[component]
pub fn TaskRow(id: TaskId) -> impl IntoView {
    let live = Live::get();
    let task = Memo::new(move |_| live.row(id));
    move || {
        task.get().map(|t| {
            let status = t.status;
            view! {
                <li class="task" data-task-id=id.to_string() data-status=status.as_str()>
                    <div class="task-head">
                        <Badge status/>
                        <span class="kind">{t.kind.clone()}</span>
                        <a class="task-link" href=format!("/tasks/{id}")>
                            <code>{short_id(&id)}</code>
                        </a>
                    </div>
                    <TaskBody task=t/>
                </li>
            }
        })
    }
}

/// A task on its own page: `initial` until the live state knows it.
#[component]
pub fn TaskDetail(initial: Task) -> impl IntoView {
    let live = Live::get();
    let id = initial.id;
    let task = Memo::new(move |_| live.row(id).unwrap_or_else(|| initial.clone()));
    move || {
        let t = task.get();
        let status = t.status;
        view! {
            <article class="task-page" data-task-id=id.to_string() data-status=status.as_str()>
                <header class="task-head">
                    <h1><span class="kind">{t.kind.clone()}</span>" "<Badge status/></h1>
                    <p class="id"><code>{id.to_string()}</code></p>
                    <p class="meta">
                        {format!(
                            "priority {} · max attempts {} · timeout {}",
                            t.priority,
                            t.max_attempts,
                            t.timeout_ms.map(|ms| duration(ms as i64)).unwrap_or_else(|| "server default".into()),
                        )}
                    </p>
                </header>
                <TaskBody task=t full=true/>
            </article>
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{TaskSpec, Timestamp};
    use chrono::{TimeZone, Utc};

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(-5), "0 ms");
        assert_eq!(duration(350), "350 ms");
        assert_eq!(duration(2_450), "2.5 s");
        assert_eq!(duration(185_000), "3 m 05 s");
    }

    #[test]
    fn queued_and_run_times() {
        let at = |ms| Timestamp(Utc.timestamp_millis_opt(ms).unwrap());
        let mut t = Task::new(
            TaskId(uuid::Uuid::nil()),
            TaskSpec::new("echo", serde_json::json!(1)),
            at(1_000),
        );
        assert_eq!(durations(&t, 1_500), (500, None));
        t.started_at = Some(at(1_200));
        assert_eq!(durations(&t, 2_000), (200, Some(800)));
        t.finished_at = Some(at(1_700));
        assert_eq!(durations(&t, 9_999), (200, Some(500)));
    }
}
