//! What a task's page adds to its detail: the Retry button (a failed,
//! cancelled or timed-out task runs again as a new task, whose page opens)
//! and the table of its attempts (read with the task while the page is
//! rendered; in the browser `GET /tasks/{id}/attempts` again whenever the
//! task's status or attempt changes: pushes, not a timer).

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use super::live::{Live, short_id};
use super::load_attempts;
use super::task_view::{TaskLink, duration};
use super::when::utc_time;
use crate::protocol::{Attempt, AttemptOutcome, Attempts, Task, TaskId, TaskStatus};

/// The outcome as the table shows it.
pub fn outcome_label(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Running => "running",
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::TimedOut => "timed out",
        AttemptOutcome::Cancelled => "cancelled",
        AttemptOutcome::WorkerLost => "worker lost",
    }
}

/// The name of an outcome on the wire (its CSS class and data attribute).
pub fn outcome_name(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Running => "running",
        AttemptOutcome::Succeeded => "succeeded",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::TimedOut => "timed_out",
        AttemptOutcome::Cancelled => "cancelled",
        AttemptOutcome::WorkerLost => "worker_lost",
    }
}

/// Whether `retry` accepts a task in `status`.
pub fn retryable(status: TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::TimedOut
    )
}

/// The Retry button of a finished task that may run again, and the
/// attempts of `initial` (`attempts` as read with it).
#[component]
pub fn TaskOps(initial: Task, attempts: Option<Attempts>) -> impl IntoView {
    let live = Live::get();
    let id = initial.id;
    let task = live.current(initial);
    let status = Memo::new(move |_| task.with(|t| t.status));
    view! {
        {move || retryable(status.get()).then(|| view! { <RetryButton id/> })}
        <AttemptsTable id task first=attempts/>
    }
}

/// Runs the task again and opens the new task's page.
#[component]
fn RetryButton(id: TaskId) -> impl IntoView {
    let live = Live::get();
    let navigate = use_navigate();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let retried = RwSignal::new(None::<TaskId>);
    let retry = move |_| {
        busy.set(true);
        error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match live.retry(id).await {
                Ok(task) => {
                    retried.set(Some(task.id));
                    navigate(&format!("/tasks/{}", task.id), Default::default());
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="task-actions">
            <button type="button" class="retry" id="retry-button" on:click=retry disabled=move || busy.get()>
                "Retry"<span class="visually-hidden">" task "{short_id(&id)}</span>
            </button>
            {move || retried.get().map(|new| view! {
                <span class="retried">"Retried as " <TaskLink id=new/></span>
            })}
            {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
        </div>
    }
}

/// Every attempt of the task, oldest first: `first` (as rendered), read
/// again when the task's status or attempt number moves. (Not a resource:
/// the page renders it with the task, so the server waits on one read.)
#[component]
fn AttemptsTable(id: TaskId, task: Memo<Task>, first: Option<Attempts>) -> impl IntoView {
    let attempts = RwSignal::new(first);
    let moved = Memo::new(move |_| task.with(|t| (t.status, t.attempt)));
    Effect::new(move |prev: Option<(TaskStatus, u32)>| {
        let now = moved.get();
        if prev.is_some_and(|p| p != now) {
            spawn_local(async move {
                if let Some(a) = load_attempts(id).await {
                    attempts.set(Some(a));
                }
            });
        }
        now
    });
    view! {
        <section class="attempts" aria-labelledby="attempts-title">
            <h3 id="attempts-title">"Attempts"</h3>
            {move || match attempts.get() {
                None => view! { <p class="empty">"The attempts could not be read."</p> }.into_any(),
                Some(a) if a.attempts.is_empty() => view! {
                    <p class="empty" id="no-attempts">"Not started yet: no attempt."</p>
                }.into_any(),
                Some(a) => view! { <AttemptRows attempts=a.attempts/> }.into_any(),
            }}
        </section>
    }
}

#[component]
fn AttemptRows(attempts: Vec<Attempt>) -> impl IntoView {
    view! {
        <table id="attempts" class="attempts-table">
            <thead>
                <tr>
                    <th scope="col" class="num">"#"</th>
                    <th scope="col">"Worker"</th>
                    <th scope="col">"Started"</th>
                    <th scope="col" class="num">"Ran"</th>
                    <th scope="col">"Outcome"</th>
                    <th scope="col">"Error"</th>
                </tr>
            </thead>
            <tbody>
                {attempts.into_iter().map(|a| {
                    let ran = a.finished_at.as_ref().map(|f| duration(f.millis() - a.started_at.millis()));
                    let name = outcome_name(a.outcome);
                    view! {
                        <tr data-attempt=a.attempt.to_string() data-outcome=name>
                            <td class="num">{a.attempt}</td>
                            <td>{a.worker.as_ref().map(|w| view! { <code>{w.to_string()}</code> })}</td>
                            <td><time datetime=a.started_at.to_string()>{utc_time(&a.started_at)}</time></td>
                            <td class="num">{ran}</td>
                            <td><span class=format!("badge badge-{name}")>{outcome_label(a.outcome)}</span></td>
                            <td>{a.error.map(|e| view! {
                                <code class="error">{e.code.as_str()}": "{e.message}</code>
                            })}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_unsuccessful_tasks_are_retryable() {
        let yes: Vec<_> = super::super::explore::STATUSES
            .into_iter()
            .filter(|s| retryable(*s))
            .collect();
        assert_eq!(
            yes,
            [
                TaskStatus::Failed,
                TaskStatus::Cancelled,
                TaskStatus::TimedOut
            ]
        );
    }

    #[test]
    fn outcomes_are_named_as_on_the_wire() {
        for o in [
            AttemptOutcome::Running,
            AttemptOutcome::Succeeded,
            AttemptOutcome::Failed,
            AttemptOutcome::TimedOut,
            AttemptOutcome::Cancelled,
            AttemptOutcome::WorkerLost,
        ] {
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::json!(outcome_name(o))
            );
        }
    }
}
