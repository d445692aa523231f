//! How one task looks: in the console's list and on its own page.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::live::{Live, short_id, status_label};
use super::when::{countdown, utc_time};
use crate::protocol::{Task, TaskId, TaskStatus, Timestamp};

/// `350 ms`, `2.4 s`, `3 m 05 s`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} m {:02} s", ms / 60_000, (ms / 1000) % 60),
    }
}

/// Time spent queued and running so far (`now` for the parts not over
/// yet). A delayed task is queued from its `run_at` on.
pub fn durations(task: &Task, now: i64) -> (i64, Option<i64>) {
    let created = task
        .run_at
        .as_ref()
        .map_or(task.created_at.millis(), |at| at.millis())
        .max(task.created_at.millis());
    let end = task.finished_at.as_ref().map(|t| t.millis()).unwrap_or(now);
    match &task.started_at {
        Some(started) => (started.millis() - created, Some(end - started.millis())),
        None => (end - created, None),
    }
}

/// JSON as indented text.
pub fn pretty(value: &crate::protocol::Json) -> String {
    serde_json::to_string_pretty(&value.to_value()).unwrap_or_else(|_| value.to_string())
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

/// A link to a task's page, by its short id.
#[component]
pub fn TaskLink(id: TaskId) -> impl IntoView {
    view! { <a class="task-ref" href=format!("/tasks/{id}")><code>{short_id(&id)}</code></a> }
}

/// What a task that is not queued yet waits for: a countdown to its
/// `run_at` (ticking in the browser), or the tasks it runs after.
#[component]
fn Pending(task: Task) -> impl IntoView {
    let live = Live::get();
    match task.status {
        TaskStatus::Scheduled => task.run_at.map(|at| {
            let run_at = at.millis();
            view! {
                <p class="pending countdown">
                    "runs "
                    <time datetime=at.to_string() title=utc_time(&at)>
                        {move || countdown(run_at - live.clock())}
                    </time>
                </p>
            }
            .into_any()
        }),
        TaskStatus::Waiting => Some(
            view! {
                <p class="pending waits">
                    "waits for "
                    <AfterLinks after=task.after/>
                </p>
            }
            .into_any(),
        ),
        _ => None,
    }
}

/// The tasks of `after`, linked, each with its status when this page
/// follows it.
#[component]
fn AfterLinks(after: Vec<TaskId>) -> impl IntoView {
    let live = Live::get();
    let n = after.len();
    after
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let status = move || {
                live.row(id)
                    .map(|t| format!(" ({})", status_label(t.status)))
            };
            view! {
                <span class="after" data-after=id.to_string()>
                    <TaskLink id/>
                    {status}
                </span>
                {(i + 1 < n).then_some(", ")}
            }
        })
        .collect_view()
}

/// Body of a task: durations, progress, output or error, cancel.
#[component]
fn TaskBody(task: Task, #[prop(optional)] full: bool) -> impl IntoView {
    let live = Live::get();
    let id = task.id;
    let unfinished = !task.status.is_final();
    let pending = task.status.is_pending();
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
        {(!pending).then(|| view! {
            <p class="times">
                {times}
                {task.worker.as_ref().map(|w| format!(" · {w}"))}
                {(task.attempt > 1).then(|| format!(" · attempt {}/{}", task.attempt, task.max_attempts))}
            </p>
        })}
        <Pending task=task.clone()/>
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
    let task = live.current(initial);
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
                    <Scheduling task=t.clone()/>
                </header>
                <TaskBody task=t full=true/>
            </article>
        }
    }
}

/// The task's v1.1 options, those it has: when it may run, its key, the
/// tasks it runs after, its retries and concurrency key, the task it re-runs.
#[component]
fn Scheduling(task: Task) -> impl IntoView {
    let run_at = task.run_at.as_ref().map(|at: &Timestamp| {
        view! {
            <div><dt>"Runs from"</dt><dd><time datetime=at.to_string()>{utc_time(at)}</time></dd></div>
        }
    });
    let key = task.key.clone().map(|key| {
        view! { <div><dt>"Key"</dt><dd><code class="key">{key}</code></dd></div> }
    });
    let after = (!task.after.is_empty()).then(|| {
        view! { <div><dt>"After"</dt><dd><AfterLinks after=task.after.clone()/></dd></div> }
    });
    let retries = task.retry_on_failure.then(|| {
        view! {
            <div><dt>"Retries"</dt><dd>{format!("on failure, backoff from {}", duration(task.backoff_ms as i64))}</dd></div>
        }
    });
    let concurrency = task.concurrency_key.clone().map(|k| {
        view! {
            <div><dt>"Concurrency"</dt><dd><code>{k}</code>{format!(" (at most {} at once)", task.concurrency_limit)}</dd></div>
        }
    });
    let retry_of = task.retry_of.map(|id| {
        view! { <div><dt>"Retry of"</dt><dd><TaskLink id/></dd></div> }
    });
    let any = run_at.is_some()
        || key.is_some()
        || after.is_some()
        || retries.is_some()
        || concurrency.is_some()
        || retry_of.is_some();
    any.then(|| {
        view! {
            <dl class="props">{run_at}{key}{after}{retries}{concurrency}{retry_of}</dl>
        }
    })
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
        // Delayed: queued from its run_at.
        t.run_at = Some(at(1_100));
        assert_eq!(durations(&t, 9_999), (100, Some(500)));
    }
}
