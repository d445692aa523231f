//! The submit panel: a form for one task (or copies of it), with fields for
//! a built-in kind's input or a raw JSON editor, when it may run (a delay,
//! the tasks it runs after), its idempotency key, and refusals shown next
//! to the field they name.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Map, Value, json};

use super::fields::{Errors, FieldError, NumberField, field_error};
use super::io::{self, ConnState};
use super::live::{Live, status_label};
use super::run_options::{AfterPicker, RunOptions, WhenFields};
use super::task_input::{TaskInput, TaskInputFields};
use super::task_view::TaskLink;
use crate::protocol::{Ack, Batch, Deduplicated, MAX_BATCH, Task, events};

/// Fields of a submission with a slot of their own on the panel, by wire
/// name, and that slot.
const SLOTS: [(&str, &str); 8] = [
    ("kind", "kind"),
    ("priority", "priority"),
    ("timeout_ms", "timeout_ms"),
    ("max_attempts", "max_attempts"),
    ("delay_ms", "delay"),
    ("run_at", "delay"),
    ("key", "key"),
    ("after", "after"),
];

/// The task (or batch) the form describes, or the field that is wrong.
fn build_submission(
    kind: &str,
    input: Value,
    priority: &str,
    timeout_ms: &str,
    max_attempts: &str,
) -> Result<Map<String, Value>, (String, String)> {
    let mut task = Map::new();
    task.insert("kind".into(), json!(kind));
    task.insert("input".into(), input);
    let int = |name: &str, text: &str| -> Result<Option<Value>, (String, String)> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse::<i64>()
            .map(|n| Some(json!(n)))
            .map_err(|_| (name.to_owned(), format!("{name} must be an integer")))
    };
    for (name, text) in [
        ("priority", priority),
        ("timeout_ms", timeout_ms),
        ("max_attempts", max_attempts),
    ] {
        if let Some(v) = int(name, text)? {
            task.insert(name.into(), v);
        }
    }
    Ok(task)
}

/// The tasks of a submission's ack that existed before it (their key was
/// taken), once each. Copies sharing a key name the task the first of
/// them made: that one is new.
fn deduplicated(ack: &Ack) -> Vec<Task> {
    match (&ack.deduplicated, &ack.task, &ack.tasks) {
        (Some(Deduplicated::One(true)), Some(task), _) => vec![task.clone()],
        (Some(Deduplicated::Each(flags)), _, Some(tasks)) => {
            let made: Vec<_> = flags
                .iter()
                .zip(tasks)
                .filter(|(dup, _)| !**dup)
                .map(|(_, t)| t.id)
                .collect();
            let mut found: Vec<Task> = Vec::new();
            for (_, t) in flags.iter().zip(tasks).filter(|(dup, _)| **dup) {
                if !made.contains(&t.id) && !found.iter().any(|f| f.id == t.id) {
                    found.push(t.clone());
                }
            }
            found
        }
        _ => Vec::new(),
    }
}

/// The form's state, one signal per control; `Copy`, so every part of the
/// panel holds the same signals.
#[derive(Clone, Copy)]
struct Form {
    input: TaskInput,
    priority: RwSignal<String>,
    timeout_ms: RwSignal<String>,
    max_attempts: RwSignal<String>,
    count: RwSignal<String>,
    run: RunOptions,
    errors: RwSignal<Errors>,
    /// The existing tasks the last submission's key named.
    named: RwSignal<Vec<Task>>,
    busy: RwSignal<bool>,
}

impl Form {
    fn new() -> Self {
        let errors = RwSignal::new(Errors::new());
        Self {
            input: TaskInput::new("", errors),
            priority: RwSignal::new("0".to_owned()),
            timeout_ms: RwSignal::new(String::new()),
            max_attempts: RwSignal::new("3".to_owned()),
            count: RwSignal::new("1".to_owned()),
            run: RunOptions::new(),
            errors,
            named: RwSignal::new(Vec::new()),
            busy: RwSignal::new(false),
        }
    }

    fn show_error(self, field: impl Into<String>, message: impl Into<String>) {
        self.errors
            .set(Errors::from([(field.into(), message.into())]));
    }

    /// The submission and how many copies of it, or the first field that
    /// is wrong (shown, nothing sent).
    fn read(self) -> Option<(Value, usize)> {
        let n = self
            .count
            .get_untracked()
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BATCH).contains(n));
        let spec = self.input.read().and_then(|input| {
            let mut task = build_submission(
                &self.input.kind.get_untracked(),
                input,
                &self.priority.get_untracked(),
                &self.timeout_ms.get_untracked(),
                &self.max_attempts.get_untracked(),
            )?;
            for (name, value) in self.run.read()? {
                task.insert(name.to_owned(), value);
            }
            Ok(Value::Object(task))
        });
        match (spec, n) {
            (Ok(spec), Some(n)) => Some((spec, n)),
            (Err((field, msg)), _) => {
                self.show_error(field, msg);
                None
            }
            (_, None) => {
                self.show_error("count", format!("count must be an integer 1..={MAX_BATCH}"));
                None
            }
        }
    }

    /// Sends `n` copies of `spec`; accepted tasks join the list, a refusal
    /// goes next to its field, a key that named an existing task is said.
    fn send(self, live: Live, spec: Value, n: usize) {
        self.errors.set(Errors::new());
        self.named.set(Vec::new());
        self.busy.set(true);
        spawn_local(async move {
            let ack = if n == 1 {
                io::emit(events::TASK, &spec).await
            } else {
                let batch = vec![spec; n];
                io::emit(events::TASKS, &Batch { tasks: &batch }).await
            };
            self.busy.set(false);
            match ack {
                Ok(ack) => {
                    self.named.set(deduplicated(&ack));
                    for task in ack.task.into_iter().chain(ack.tasks.into_iter().flatten()) {
                        live.upsert(task);
                    }
                }
                Err(e) => {
                    let shown = self.input.shown();
                    self.errors.set(field_error(e, &shown, &SLOTS));
                }
            }
        });
    }
}

#[component]
pub fn SubmitPanel() -> impl IntoView {
    let live = Live::get();
    let form = Form::new();
    let form_ref = NodeRef::<leptos::html::Form>::new();

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if form.busy.get_untracked() {
            return;
        }
        let Some((spec, n)) = form.read() else {
            return;
        };
        // Not while offline: socket.io-client would hold the event until it
        // reconnects, after this form gave up on its ack, and the task would
        // exist unseen. (Checked last, so field errors show even offline.)
        if live.conn.get_untracked() != ConnState::Connected {
            form.show_error(
                "",
                "Not connected to the server: wait until the indicator says Live.",
            );
            return;
        }
        form.send(live, spec, n);
    };

    view! {
        <section class="panel submit-panel" aria-labelledby="submit-title">
            <h2 id="submit-title">"Submit a task"</h2>
            <form id="submit" method="post" action="/tasks" on:submit=submit novalidate node_ref=form_ref>
                <TaskInputFields input=form.input form_ref/>
                <Options form/>
                {move || form.input.hydrated.get().then(|| view! {
                    <WhenFields options=form.run errors=form.errors/>
                    <AfterPicker options=form.run errors=form.errors/>
                })}
                <FieldError id="error-form" message=move || form.errors.with(|e| e.get("").cloned())/>
                <Named named=form.named/>
                <button type="submit" id="submit-button" disabled=move || form.busy.get()>"Submit"</button>
            </form>
        </section>
    }
}

/// The submission's options, and (once hydrated) how many copies to send.
#[component]
fn Options(form: Form) -> impl IntoView {
    let errors = form.errors;
    view! {
        <div class="options">
            <NumberField name="priority" label="Priority" value=form.priority errors/>
            <NumberField name="timeout_ms" label="Timeout (ms)" value=form.timeout_ms errors placeholder="default"/>
            <NumberField name="max_attempts" label="Max attempts" value=form.max_attempts errors/>
            {move || form.input.hydrated.get().then(|| view! {
                <NumberField name="count" label="Copies" value=form.count errors/>
            })}
        </div>
    }
}

/// Says that the key of the last submission named tasks that exist: no new
/// task was made for it.
#[component]
fn Named(named: RwSignal<Vec<Task>>) -> impl IntoView {
    view! {
        <div id="submit-notice" role="status" aria-live="polite">
            {move || named.with(|tasks| tasks.iter().map(|t| {
                let key = t.key.clone().unwrap_or_default();
                view! {
                    <p class="notice dedup" data-task-id=t.id.to_string()>
                        "Key " <code class="key">{key}</code> " already names task " <TaskLink id=t.id/>
                        {format!(" ({}, {}): nothing new was submitted.", t.kind, status_label(t.status))}
                    </p>
                }
            }).collect_view())}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{TaskId, TaskSpec, Timestamp};

    #[test]
    fn submissions_carry_only_the_options_given() {
        let spec = build_submission("echo", json!(1), "2", "", " 3 ").unwrap();
        assert_eq!(
            Value::Object(spec),
            json!({"kind": "echo", "input": 1, "priority": 2, "max_attempts": 3})
        );
        assert_eq!(
            build_submission("echo", json!(1), "x", "", ""),
            Err(("priority".into(), "priority must be an integer".into()))
        );
    }

    #[test]
    fn deduplicated_tasks_come_from_the_ack_flags() {
        let at = Timestamp::now();
        let task = |n: u128| {
            let mut spec = TaskSpec::new("echo", json!(n as u64));
            spec.key = Some("k".into());
            Task::new(TaskId(uuid::Uuid::from_u128(n)), spec, at)
        };
        let mut ack = Ack::ok();
        ack.task = Some(task(1));
        ack.deduplicated = Some(Deduplicated::One(false));
        assert!(deduplicated(&ack).is_empty());
        ack.deduplicated = Some(Deduplicated::One(true));
        assert_eq!(deduplicated(&ack), [task(1)]);
        // A batch of copies with one key: the first made the task, the
        // others named that new task.
        let mut batch = Ack::ok();
        batch.tasks = Some(vec![task(2), task(2), task(2)]);
        batch.deduplicated = Some(Deduplicated::Each(vec![false, true, true]));
        assert!(deduplicated(&batch).is_empty());
        // The key was taken before: every copy names the old task.
        batch.deduplicated = Some(Deduplicated::Each(vec![true, true, true]));
        assert_eq!(deduplicated(&batch), [task(2)]);
        // A v1 server says nothing.
        batch.deduplicated = None;
        assert!(deduplicated(&batch).is_empty());
    }
}
