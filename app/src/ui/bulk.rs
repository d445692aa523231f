//! Bulk operations of the explorer: cancel or retry every task the current
//! filters match (every page of them, up to [`MAX_BULK`]), once the count
//! is confirmed, and a report of how many succeeded.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::explore::Explore;
use super::io;
use crate::protocol::{ErrorBody, ListPage, MAX_LIST_LIMIT, TaskId, TaskRef, TaskStatus, events};

/// Most tasks one bulk operation looks at (pages of [`MAX_LIST_LIMIT`]).
pub const MAX_BULK: usize = 5_000;

/// What a bulk operation does to each task it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOp {
    /// `cancel` every unfinished task.
    Cancel,
    /// `retry` every failed, cancelled or timed-out task.
    Retry,
}

impl BulkOp {
    /// Whether the operation applies to a task in `status`.
    pub fn applies(self, status: TaskStatus) -> bool {
        match self {
            BulkOp::Cancel => !status.is_final(),
            BulkOp::Retry => matches!(
                status,
                TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::TimedOut
            ),
        }
    }

    /// Whether a filter on `status` can match a task it applies to.
    pub fn possible(self, status: Option<TaskStatus>) -> bool {
        status.is_none_or(|s| self.applies(s))
    }

    pub fn name(self) -> &'static str {
        match self {
            BulkOp::Cancel => "cancel",
            BulkOp::Retry => "retry",
        }
    }

    fn event(self) -> &'static str {
        match self {
            BulkOp::Cancel => events::CANCEL,
            BulkOp::Retry => events::RETRY,
        }
    }

    /// `Cancel 3 tasks`, `Retry 1 task`.
    pub fn action(self, n: usize) -> String {
        let verb = match self {
            BulkOp::Cancel => "Cancel",
            BulkOp::Retry => "Retry",
        };
        format!("{verb} {n} {}", tasks(n))
    }
}

fn tasks(n: usize) -> &'static str {
    if n == 1 { "task" } else { "tasks" }
}

/// How a bulk operation went: how many tasks it applied to, and the
/// refusals (a task may have finished, or been retried, meanwhile).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub op: Option<BulkOp>,
    pub total: usize,
    pub refused: Vec<(TaskId, String)>,
}

impl Outcome {
    pub fn succeeded(&self) -> usize {
        self.total - self.refused.len()
    }

    /// `Cancelled 7 of 7 tasks.`, `Retried 2 of 3 tasks; 1 refused (…).`
    pub fn summary(&self) -> String {
        let verb = match self.op {
            Some(BulkOp::Cancel) => "Cancelled",
            Some(BulkOp::Retry) => "Retried",
            None => "Done:",
        };
        let mut text = format!(
            "{verb} {} of {} {}.",
            self.succeeded(),
            self.total,
            tasks(self.total)
        );
        if let Some((id, why)) = self.refused.first() {
            text.pop();
            text.push_str(&format!(
                "; {} refused (task {id}: {why}).",
                self.refused.len()
            ));
        }
        text
    }
}

/// The ids the filters of `view` match that `op` applies to, newest first,
/// over every page (at most [`MAX_BULK`] tasks looked at), and whether
/// there were more.
async fn matching(view: &Explore, op: BulkOp) -> Result<(Vec<TaskId>, bool), ErrorBody> {
    let mut ids = Vec::new();
    let mut seen = 0;
    let mut page = Explore {
        limit: Some(MAX_LIST_LIMIT.to_string()),
        ..view.first_page()
    };
    loop {
        let got: ListPage = io::request(events::LIST, &page.payload()).await?;
        seen += got.tasks.len();
        ids.extend(
            got.tasks
                .iter()
                .filter(|t| op.applies(t.status))
                .map(|t| t.id),
        );
        match got.next {
            Some(next) if seen < MAX_BULK => page = page.page(next),
            Some(_) => return Ok((ids, true)),
            None => return Ok((ids, false)),
        }
    }
}

/// Where the bulk panel is.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Idle,
    Counting(BulkOp),
    /// The tasks found, waiting for a yes; whether more matched than were
    /// looked at.
    Confirm(BulkOp, Vec<TaskId>, bool),
    Running(BulkOp, usize, usize),
    Done(Outcome),
    Failed(String),
}

/// Cancel or retry what the filters of `view` match, after saying how
/// many tasks that is.
#[component]
pub fn Bulk(view: Explore) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);
    let status = view.query().ok().and_then(|q| q.status);
    let count = {
        let view = view.clone();
        move |op: BulkOp| {
            step.set(Step::Counting(op));
            let view = view.clone();
            spawn_local(async move {
                step.set(match matching(&view, op).await {
                    Ok((ids, more)) => Step::Confirm(op, ids, more),
                    Err(e) => Step::Failed(e.message),
                });
            });
        }
    };
    let run = move |_| {
        let Step::Confirm(op, ids, _) = step.get_untracked() else {
            return;
        };
        spawn_local(async move {
            let mut outcome = Outcome {
                op: Some(op),
                total: ids.len(),
                refused: Vec::new(),
            };
            for (i, id) in ids.into_iter().enumerate() {
                step.set(Step::Running(op, i, outcome.total));
                if let Err(e) = io::emit(op.event(), &TaskRef::from(id)).await {
                    outcome.refused.push((id, e.message));
                }
            }
            step.set(Step::Done(outcome));
        });
    };
    let button = move |op: BulkOp| {
        let count = count.clone();
        op.possible(status).then(|| {
            view! {
                <button type="button" class=format!("secondary bulk-{}", op.name())
                    disabled=move || matches!(step.get(), Step::Counting(_) | Step::Running(..) | Step::Confirm(..))
                    on:click=move |_| count(op)>
                    {match op { BulkOp::Cancel => "Cancel all…", BulkOp::Retry => "Retry all…" }}
                </button>
            }
        })
    };
    let state = move || {
        match step.get() {
        Step::Idle => ().into_any(),
        Step::Counting(_) => view! { <p class="bulk-state">"Counting the matching tasks…"</p> }.into_any(),
        Step::Confirm(op, ids, more) if ids.is_empty() => view! {
            <p class="bulk-state bulk-report" role="status">
                {format!("No task {} matches could be {}.", if more { "of the first ones" } else { "these filters" }, match op { BulkOp::Cancel => "cancelled", BulkOp::Retry => "retried" })}
            </p>
        }.into_any(),
        Step::Confirm(op, ids, more) => {
            let question = format!(
                "{} matching these filters{}?",
                op.action(ids.len()),
                if more { format!(" (among the newest {MAX_BULK})") } else { String::new() }
            );
            view! {
                <div class="row-actions confirm bulk-confirm" role="group" aria-label=question.clone()>
                    <span class="question">{question.clone()}</span>
                    <button type="button" class="cancel confirm-bulk" on:click=run>{op.action(ids.len())}</button>
                    <button type="button" class="secondary keep" on:click=move |_| step.set(Step::Idle)>"Keep"</button>
                </div>
            }.into_any()
        }
        Step::Running(op, i, n) => view! {
            <p class="bulk-state" role="status">{format!("{}: {i} of {n}…", op.action(n))}</p>
        }.into_any(),
        Step::Done(outcome) => view! {
            <p class="bulk-state bulk-report" role="status">{outcome.summary()}</p>
        }.into_any(),
        Step::Failed(why) => view! { <p class="field-error" role="alert">{why}</p> }.into_any(),
    }
    };
    view! {
        <div class="bulk" role="group" aria-label="Every matching task">
            {button(BulkOp::Cancel)}
            {button(BulkOp::Retry)}
            {state}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_apply_to_the_statuses_they_can_change() {
        use TaskStatus::*;
        let cancel: Vec<_> = super::super::explore::STATUSES
            .into_iter()
            .filter(|s| BulkOp::Cancel.applies(*s))
            .collect();
        assert_eq!(cancel, [Scheduled, Waiting, Queued, Running]);
        let retry: Vec<_> = super::super::explore::STATUSES
            .into_iter()
            .filter(|s| BulkOp::Retry.applies(*s))
            .collect();
        assert_eq!(retry, [Failed, Cancelled, TimedOut]);
        assert!(BulkOp::Cancel.possible(None));
        assert!(!BulkOp::Cancel.possible(Some(Failed)));
        assert!(BulkOp::Retry.possible(Some(TimedOut)));
    }

    #[test]
    fn reports_say_how_many_succeeded() {
        let mut o = Outcome {
            op: Some(BulkOp::Cancel),
            total: 7,
            refused: Vec::new(),
        };
        assert_eq!(o.summary(), "Cancelled 7 of 7 tasks.");
        let id: TaskId = "0190a5c3-0000-7000-8000-000000000001".parse().unwrap();
        o.op = Some(BulkOp::Retry);
        o.total = 3;
        o.refused.push((id, "it is succeeded".into()));
        assert_eq!(
            o.summary(),
            format!("Retried 2 of 3 tasks; 1 refused (task {id}: it is succeeded).")
        );
        assert_eq!(BulkOp::Retry.action(1), "Retry 1 task");
    }
}
