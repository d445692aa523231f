//! `/`: the submit panel and the live list of this page's tasks.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Map, Value, json};

use super::Kinds;
use super::book::Filter;
use super::live::Live;
use super::task_view::TaskRow;
use crate::protocol::builtin::{self, Field, FieldType};
use crate::protocol::{ErrorBody, MAX_BATCH, events};

/// Rows the list renders at most; the rest are counted.
pub const RENDERED_ROWS: usize = 200;

#[component]
pub fn Console() -> impl IntoView {
    view! {
        <div class="console">
            <SubmitPanel/>
            <TaskList/>
        </div>
    }
}

/// What the raw JSON editor starts with for a kind.
fn example_input(kind: &str) -> String {
    match builtin::fields(kind) {
        Some(fields) => builtin::input_from_fields(fields, |f| f.default.to_owned())
            .map(|v| v.to_string())
            .unwrap_or_else(|_| "{}".into()),
        None if kind == builtin::ECHO => r#"{"hello": "world"}"#.into(),
        None => "{}".into(),
    }
}

/// Field errors by field name (`""` for the form as a whole).
type Errors = HashMap<String, String>;

/// The task (or batch) the form describes, or the field that is wrong.
fn build_submission(
    kind: &str,
    input: Value,
    priority: &str,
    timeout_ms: &str,
    max_attempts: &str,
) -> Result<Value, (String, String)> {
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
    Ok(Value::Object(task))
}

#[component]
pub fn SubmitPanel() -> impl IntoView {
    let live = Live::get();
    let Kinds(kinds) = expect_context::<Kinds>();
    let kind = RwSignal::new(builtin::ECHO.to_owned());
    // Values of the per-kind fields, by "kind.field", kept across switches.
    let values = RwSignal::new(HashMap::<String, String>::new());
    let raw = RwSignal::new(example_input(builtin::ECHO));
    let raw_mode = RwSignal::new(false);
    let priority = RwSignal::new("0".to_owned());
    let timeout_ms = RwSignal::new(String::new());
    let max_attempts = RwSignal::new("3".to_owned());
    let count = RwSignal::new("1".to_owned());
    let errors = RwSignal::new(Errors::new());
    let form = NodeRef::<leptos::html::Form>::new();
    let busy = RwSignal::new(false);
    // Server-rendered, the form posts `kind` + raw `input` (works without
    // JavaScript); once hydrated, built-in kinds get their own fields.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let fields = move || {
        if !hydrated.get() || raw_mode.get() {
            return None;
        }
        builtin::fields(&kind.get())
    };
    let error_of = move |name: &'static str| move || errors.with(|e| e.get(name).cloned());
    let value_of = move |k: &str, f: &Field| {
        values
            .with(|v| v.get(&format!("{k}.{}", f.name)).cloned())
            .unwrap_or_else(|| f.default.to_owned())
    };

    let on_kind = move |ev| {
        let k = event_target_value(&ev);
        raw.set(example_input(&k));
        kind.set(k);
        errors.set(Errors::new());
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let k = kind.get_untracked();
        let input = match untrack(fields) {
            Some(fs) => builtin::input_from_fields(fs, |f| value_of(&k, f))
                .map_err(|(name, msg)| (name.to_owned(), msg)),
            None => serde_json::from_str::<Value>(&raw.get_untracked())
                .map_err(|e| ("input".to_owned(), format!("input is not JSON: {e}"))),
        };
        let n = count
            .get_untracked()
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BATCH).contains(n));
        let spec = input.and_then(|input| {
            build_submission(
                &k,
                input,
                &priority.get_untracked(),
                &timeout_ms.get_untracked(),
                &max_attempts.get_untracked(),
            )
        });
        let (spec, n) = match (spec, n) {
            (Ok(spec), Some(n)) => (spec, n),
            (Err((field, msg)), _) => {
                errors.set(Errors::from([(field, msg)]));
                return;
            }
            (_, None) => {
                errors.set(Errors::from([(
                    "count".into(),
                    format!("count must be an integer 1..={MAX_BATCH}"),
                )]));
                return;
            }
        };
        // Not while offline: socket.io-client would hold the event until it
        // reconnects, after this form gave up on its ack, and the task would
        // exist unseen. (Checked last, so field errors show even offline.)
        if live.conn.get_untracked() != super::io::ConnState::Connected {
            errors.set(Errors::from([(
                String::new(),
                "Not connected to the server: wait until the indicator says Live.".to_owned(),
            )]));
            return;
        }
        errors.set(Errors::new());
        busy.set(true);
        spawn_local(async move {
            let ack = if n == 1 {
                super::io::emit(events::TASK, &spec).await
            } else {
                let batch = vec![spec; n];
                super::io::emit(events::TASKS, &json!({ "tasks": batch })).await
            };
            busy.set(false);
            match ack {
                Ok(ack) => {
                    for task in ack.task.into_iter().chain(ack.tasks.into_iter().flatten()) {
                        live.upsert(task);
                    }
                }
                Err(e) => {
                    let shown =
                        untrack(fields).map(|fs| fs.iter().map(|f| f.name).collect::<Vec<_>>());
                    errors.set(field_error(e, shown.as_deref().unwrap_or(&[])));
                }
            }
        });
    };

    view! {
        <section class="panel submit-panel" aria-labelledby="submit-title">
            <h2 id="submit-title">"Submit a task"</h2>
            <form id="submit" method="post" action="/tasks" on:submit=submit novalidate node_ref=form>
                <div class="row">
                    <label for="kind">"Kind"</label>
                    <Transition fallback=|| ()>
                        <select id="kind" name="kind" on:change=on_kind prop:value=move || kind.get()
                            aria-describedby="error-kind">
                            {move || kinds.get().unwrap_or_default().into_iter().map(|k| {
                                let selected = k == kind.get_untracked();
                                view! { <option value=k.clone() selected=selected>{k.clone()}</option> }
                            }).collect_view()}
                        </select>
                    </Transition>
                    <FieldError id="error-kind" message=error_of("kind")/>
                </div>
                {move || match fields() {
                    Some(fs) => {
                        let k = kind.get();
                        fs.iter().map(|f| {
                            let f = *f;
                            let id = format!("field-{}", f.name);
                            let err_id = format!("error-{}", f.name);
                            let key = format!("{k}.{}", f.name);
                            let k2 = k.clone();
                            let (ty, min, max) = match f.ty {
                                FieldType::Integer { min, max } => ("number", Some(min.to_string()), Some(max.to_string())),
                                FieldType::Text => ("text", None, None),
                            };
                            view! {
                                <div class="row">
                                    <label for=id.clone()>{f.name}</label>
                                    <input id=id type=ty min=min max=max step=(ty == "number").then_some("1")
                                        inputmode=(ty == "number").then_some("numeric")
                                        prop:value=move || value_of(&k2, &f)
                                        on:input=move |ev| {
                                            let v = event_target_value(&ev);
                                            values.update(|m| { m.insert(key.clone(), v); });
                                        }
                                        aria-invalid=move || errors.with(|e| e.contains_key(f.name)).to_string()
                                        aria-describedby=format!("hint-{} {err_id}", f.name)/>
                                    <small id=format!("hint-{}", f.name) class="hint">{f.hint}</small>
                                    <FieldError id=err_id message=move || errors.with(|e| e.get(f.name).cloned())/>
                                </div>
                            }
                        }).collect_view().into_any()
                    }
                    None => view! {
                        <div class="row">
                            <label for="input">"Input (JSON)"</label>
                            <textarea id="input" name="input" rows="4" spellcheck="false"
                                prop:value=move || raw.get()
                                on:input=move |ev| raw.set(event_target_value(&ev))
                                // Enter makes a new line here; Ctrl/⌘+Enter submits.
                                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                                        ev.prevent_default();
                                        if let Some(form) = form.get_untracked() {
                                            let _ = form.request_submit();
                                        }
                                    }
                                }
                                aria-invalid=move || errors.with(|e| e.contains_key("input")).to_string()
                                aria-describedby="hint-input error-input">{raw.get_untracked()}</textarea>
                            <small id="hint-input" class="hint">"Ctrl+Enter submits."</small>
                            <FieldError id="error-input" message=error_of("input")/>
                        </div>
                    }.into_any(),
                }}
                {move || hydrated.get().then(|| view! {
                    <div class="row row-inline">
                        <input id="raw" type="checkbox" prop:checked=move || raw_mode.get()
                            on:change=move |ev| raw_mode.set(event_target_checked(&ev))/>
                        <label for="raw">"Edit the input as raw JSON"</label>
                    </div>
                })}
                <div class="options">
                    <NumberField name="priority" label="Priority" value=priority errors/>
                    <NumberField name="timeout_ms" label="Timeout (ms)" value=timeout_ms errors placeholder="default"/>
                    <NumberField name="max_attempts" label="Max attempts" value=max_attempts errors/>
                    {move || hydrated.get().then(|| view! {
                        <NumberField name="count" label="Copies" value=count errors/>
                    })}
                </div>
                <FieldError id="error-form" message=error_of("")/>
                <button type="submit" id="submit-button" disabled=move || busy.get()>"Submit"</button>
            </form>
        </section>
    }
}

/// Puts a refusal next to the field it is about, among the submission's own
/// fields and the input `fields` on screen; a refusal about a part of the
/// input edited as raw JSON goes under the JSON editor; the rest under the
/// form.
fn field_error(e: ErrorBody, fields: &[&str]) -> Errors {
    const ENVELOPE: [&str; 5] = ["kind", "input", "priority", "timeout_ms", "max_attempts"];
    let in_input = |f: &str| {
        builtin::KINDS
            .iter()
            .filter_map(|k| builtin::fields(k))
            .flatten()
            .any(|x| x.name == f)
    };
    let field = match e.field() {
        Some(f) if ENVELOPE.contains(&f) || fields.contains(&f) => f.to_owned(),
        Some(f) if in_input(f) => "input".to_owned(),
        _ => String::new(),
    };
    let message = if field.is_empty() {
        format!("{}: {}", e.code.as_str(), e.message)
    } else {
        e.message
    };
    Errors::from([(field, message)])
}

#[component]
fn FieldError(
    id: impl Into<String>,
    message: impl Fn() -> Option<String> + Send + Sync + 'static,
) -> impl IntoView {
    view! { <p class="field-error" id=id.into() role="alert">{message}</p> }
}

#[component]
fn NumberField(
    name: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    errors: RwSignal<Errors>,
    #[prop(optional)] placeholder: &'static str,
) -> impl IntoView {
    let id = format!("opt-{name}");
    let err_id = format!("error-{name}");
    view! {
        <div class="row">
            <label for=id.clone()>{label}</label>
            <input id=id name=name type="number" step="1" inputmode="numeric" placeholder=placeholder
                prop:value=move || value.get()
                value=value.get_untracked()
                on:input=move |ev| value.set(event_target_value(&ev))
                aria-invalid=move || errors.with(|e| e.contains_key(name)).to_string()
                aria-describedby=err_id.clone()/>
            <FieldError id=err_id message=move || errors.with(|e| e.get(name).cloned())/>
        </div>
    }
}

#[component]
pub fn TaskList() -> impl IntoView {
    let live = Live::get();
    let filter = RwSignal::new(Filter::All);
    let view_of = Memo::new(move |_| live.visible(filter.get(), RENDERED_ROWS));
    let counts = Memo::new(move |_| live.counts());
    view! {
        <section class="panel tasks" aria-labelledby="tasks-title">
            <h2 id="tasks-title">"Tasks"</h2>
            <div class="filters" role="group" aria-label="Show">
                {Filter::ALL.into_iter().map(|f| view! {
                    <button type="button" class="filter" data-filter=f.name()
                        aria-pressed=move || (filter.get() == f).to_string()
                        on:click=move |_| filter.set(f)>
                        {f.label()}" "
                        <span class="count">{move || counts.with(|c| c.get(&f).copied().unwrap_or(0))}</span>
                    </button>
                }).collect_view()}
            </div>
            <ol id="task-list" class="task-list">
                <For each=move || view_of.get().0 key=|id| *id let:id>
                    <TaskRow id/>
                </For>
            </ol>
            {move || {
                let (shown, total) = view_of.get();
                (total > shown.len()).then(|| view! {
                    <p class="more">{format!("Showing the newest {} of {total}.", shown.len())}</p>
                })
            }}
            {move || (view_of.with(|v| v.1) == 0).then(|| view! {
                <p class="empty">"No tasks here yet."</p>
            })}
            {move || {
                let dropped = live.dropped();
                (dropped > 0).then(|| view! {
                    <p class="more" id="dropped">{format!("{dropped} older finished tasks are no longer kept on this page.")}</p>
                })
            }}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    #[test]
    fn refusals_land_next_to_a_visible_field() {
        let rounds = ErrorBody::invalid("sha256: rounds must be an integer 1..=10000000");
        let at = |e: &ErrorBody, shown: &[&str]| {
            field_error(e.clone(), shown).into_keys().next().unwrap()
        };
        assert_eq!(at(&rounds, &["data", "rounds"]), "rounds");
        // Raw JSON editor: no `rounds` field on screen.
        assert_eq!(at(&rounds, &[]), "input");
        assert_eq!(
            at(
                &ErrorBody::invalid("priority must be a 32-bit integer"),
                &[]
            ),
            "priority"
        );
        assert_eq!(
            at(
                &ErrorBody::new(ErrorCode::UnknownKind, "unknown kind \"x\""),
                &[]
            ),
            "kind"
        );
        let full = field_error(
            ErrorBody::new(ErrorCode::QueueFull, "the queue is full"),
            &[],
        );
        assert_eq!(
            full.get(""),
            Some(&"queue_full: the queue is full".to_owned())
        );
    }

    #[test]
    fn submissions_carry_only_the_options_given() {
        let spec = build_submission("echo", json!(1), "2", "", " 3 ").unwrap();
        assert_eq!(
            spec,
            json!({"kind": "echo", "input": 1, "priority": 2, "max_attempts": 3})
        );
        assert_eq!(
            build_submission("echo", json!(1), "x", "", ""),
            Err(("priority".into(), "priority must be an integer".into()))
        );
    }
}
