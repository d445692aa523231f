//! The submit panel: a form for one task (or copies of it), with fields for
//! a built-in kind's input or a raw JSON editor, and refusals shown next to
//! the field they name.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Map, Value, json};

use super::Kinds;
use super::io::{self, ConnState};
use super::kind_form::{self, FieldType, FormField};
use super::live::Live;
use crate::protocol::{Batch, ErrorBody, Field, MAX_BATCH, builtin, events};

/// What the raw JSON editor starts with for a kind.
fn example_input(kind: &str) -> String {
    match kind_form::fields(kind) {
        Some(fields) => kind_form::input_from_fields(fields, |f| f.default.to_owned())
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

/// The form's state, one signal per control; `Copy`, so every part of the
/// panel holds the same signals.
#[derive(Clone, Copy)]
struct Form {
    kind: RwSignal<String>,
    /// Values of the per-kind fields, by "kind.field", kept across switches.
    values: RwSignal<HashMap<String, String>>,
    raw: RwSignal<String>,
    raw_mode: RwSignal<bool>,
    priority: RwSignal<String>,
    timeout_ms: RwSignal<String>,
    max_attempts: RwSignal<String>,
    count: RwSignal<String>,
    errors: RwSignal<Errors>,
    busy: RwSignal<bool>,
    /// Server-rendered, the form posts `kind` + raw `input` (works without
    /// JavaScript); once hydrated, built-in kinds get their own fields.
    hydrated: RwSignal<bool>,
}

impl Form {
    fn new() -> Self {
        Self {
            kind: RwSignal::new(builtin::ECHO.to_owned()),
            values: RwSignal::new(HashMap::new()),
            raw: RwSignal::new(example_input(builtin::ECHO)),
            raw_mode: RwSignal::new(false),
            priority: RwSignal::new("0".to_owned()),
            timeout_ms: RwSignal::new(String::new()),
            max_attempts: RwSignal::new("3".to_owned()),
            count: RwSignal::new("1".to_owned()),
            errors: RwSignal::new(Errors::new()),
            busy: RwSignal::new(false),
            hydrated: RwSignal::new(false),
        }
    }

    /// The input fields on screen, or `None` when the input is raw JSON.
    fn fields(self) -> Option<&'static [FormField]> {
        if !self.hydrated.get() || self.raw_mode.get() {
            return None;
        }
        kind_form::fields(&self.kind.get())
    }

    fn value_of(self, kind: &str, f: &FormField) -> String {
        self.values
            .with(|v| v.get(&format!("{kind}.{}", f.name)).cloned())
            .unwrap_or_else(|| f.default.to_owned())
    }

    fn error_of(self, name: &'static str) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        move || self.errors.with(|e| e.get(name).cloned())
    }

    fn show_error(self, field: impl Into<String>, message: impl Into<String>) {
        self.errors
            .set(Errors::from([(field.into(), message.into())]));
    }

    /// The submission and how many copies of it, or the first field that
    /// is wrong (shown, nothing sent).
    fn read(self) -> Option<(Value, usize)> {
        let k = self.kind.get_untracked();
        let input = match untrack(move || self.fields()) {
            Some(fs) => kind_form::input_from_fields(fs, |f| self.value_of(&k, f))
                .map_err(|(name, msg)| (name.to_owned(), msg)),
            None => serde_json::from_str::<Value>(&self.raw.get_untracked())
                .map_err(|e| ("input".to_owned(), format!("input is not JSON: {e}"))),
        };
        let n = self
            .count
            .get_untracked()
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BATCH).contains(n));
        let spec = input.and_then(|input| {
            build_submission(
                &k,
                input,
                &self.priority.get_untracked(),
                &self.timeout_ms.get_untracked(),
                &self.max_attempts.get_untracked(),
            )
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
    /// goes next to its field.
    fn send(self, live: Live, spec: Value, n: usize) {
        self.errors.set(Errors::new());
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
                    for task in ack.task.into_iter().chain(ack.tasks.into_iter().flatten()) {
                        live.upsert(task);
                    }
                }
                Err(e) => {
                    let shown = untrack(move || self.fields())
                        .map(|fs| fs.iter().map(|f| f.name).collect::<Vec<_>>());
                    self.errors
                        .set(field_error(e, shown.as_deref().unwrap_or(&[])));
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
    Effect::new(move |_| form.hydrated.set(true));

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
                <KindSelect form/>
                {move || match form.fields() {
                    Some(fields) => view! { <KindFields form fields/> }.into_any(),
                    None => view! { <RawInput form form_ref/> }.into_any(),
                }}
                {move || form.hydrated.get().then(|| view! {
                    <div class="row row-inline">
                        <input id="raw" type="checkbox" prop:checked=move || form.raw_mode.get()
                            on:change=move |ev| form.raw_mode.set(event_target_checked(&ev))/>
                        <label for="raw">"Edit the input as raw JSON"</label>
                    </div>
                })}
                <Options form/>
                <FieldError id="error-form" message=form.error_of("")/>
                <button type="submit" id="submit-button" disabled=move || form.busy.get()>"Submit"</button>
            </form>
        </section>
    }
}

/// The kind picker; a new kind starts its raw input over.
#[component]
fn KindSelect(form: Form) -> impl IntoView {
    let Kinds(kinds) = expect_context::<Kinds>();
    let on_kind = move |ev| {
        let k = event_target_value(&ev);
        form.raw.set(example_input(&k));
        form.kind.set(k);
        form.errors.set(Errors::new());
    };
    view! {
        <div class="row">
            <label for="kind">"Kind"</label>
            <Transition fallback=|| ()>
                <select id="kind" name="kind" on:change=on_kind prop:value=move || form.kind.get()
                    aria-describedby="error-kind">
                    {move || kinds.get().unwrap_or_default().into_iter().map(|k| {
                        let selected = k == form.kind.get_untracked();
                        view! { <option value=k.clone() selected=selected>{k.clone()}</option> }
                    }).collect_view()}
                </select>
            </Transition>
            <FieldError id="error-kind" message=form.error_of("kind")/>
        </div>
    }
}

/// One row per field of a built-in kind's input.
#[component]
fn KindFields(form: Form, fields: &'static [FormField]) -> impl IntoView {
    // The panel renders these again when the kind changes.
    let k = form.kind.get_untracked();
    fields
        .iter()
        .map(|f| view! { <KindField form kind=k.clone() field=*f/> })
        .collect_view()
}

#[component]
fn KindField(form: Form, kind: String, field: FormField) -> impl IntoView {
    let f = field;
    let id = format!("field-{}", f.name);
    let err_id = format!("error-{}", f.name);
    let key = format!("{kind}.{}", f.name);
    let (ty, min, max) = match f.ty {
        FieldType::Integer { min, max } => ("number", Some(min.to_string()), Some(max.to_string())),
        FieldType::Text => ("text", None, None),
    };
    view! {
        <div class="row">
            <label for=id.clone()>{f.name}</label>
            <input id=id type=ty min=min max=max step=(ty == "number").then_some("1")
                inputmode=(ty == "number").then_some("numeric")
                prop:value=move || form.value_of(&kind, &f)
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    form.values.update(|m| { m.insert(key.clone(), v); });
                }
                aria-invalid=move || form.errors.with(|e| e.contains_key(f.name)).to_string()
                aria-describedby=format!("hint-{} {err_id}", f.name)/>
            <small id=format!("hint-{}", f.name) class="hint">{f.hint}</small>
            <FieldError id=err_id message=move || form.errors.with(|e| e.get(f.name).cloned())/>
        </div>
    }
}

/// The input as raw JSON (the only input editor before hydration).
#[component]
fn RawInput(form: Form, form_ref: NodeRef<leptos::html::Form>) -> impl IntoView {
    view! {
        <div class="row">
            <label for="input">"Input (JSON)"</label>
            <textarea id="input" name="input" rows="4" spellcheck="false"
                prop:value=move || form.raw.get()
                on:input=move |ev| form.raw.set(event_target_value(&ev))
                // Enter makes a new line here; Ctrl/⌘+Enter submits.
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        if let Some(el) = form_ref.get_untracked() {
                            let _ = el.request_submit();
                        }
                    }
                }
                aria-invalid=move || form.errors.with(|e| e.contains_key("input")).to_string()
                aria-describedby="hint-input error-input">{form.raw.get_untracked()}</textarea>
            <small id="hint-input" class="hint">"Ctrl+Enter submits."</small>
            <FieldError id="error-input" message=form.error_of("input")/>
        </div>
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
            {move || form.hydrated.get().then(|| view! {
                <NumberField name="count" label="Copies" value=form.count errors/>
            })}
        </div>
    }
}

/// Puts a refusal next to the field it names: a submission's own field, an
/// input field on screen (`fields`), or the JSON editor for the rest of the
/// input; anything else goes under the form, with its code.
fn field_error(e: ErrorBody, fields: &[&str]) -> Errors {
    let field = match &e.field {
        Some(Field::InputKey(key)) if fields.contains(&key.as_str()) => key.clone(),
        Some(Field::InputKey(_) | Field::Input) => "input".to_owned(),
        Some(f @ (Field::Kind | Field::Priority | Field::TimeoutMs | Field::MaxAttempts)) => {
            f.to_string()
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::builtin::{PrimesInput, Sha256Input};
    use crate::protocol::{ErrorCode, TaskSpec};

    #[test]
    fn refusals_land_next_to_a_visible_field() {
        let rounds = Sha256Input::parse(&json!({"data": "a", "rounds": 0}))
            .unwrap_err()
            .into_refusal(builtin::SHA256);
        let at = |e: &ErrorBody, shown: &[&str]| {
            field_error(e.clone(), shown).into_keys().next().unwrap()
        };
        assert_eq!(at(&rounds, &["data", "rounds"]), "rounds");
        // Raw JSON editor: no `rounds` field on screen.
        assert_eq!(at(&rounds, &[]), "input");
        let priority = TaskSpec::parse(json!({"kind": "echo", "priority": "x"})).unwrap_err();
        assert_eq!(at(&priority, &[]), "priority");
        assert_eq!(
            at(
                &ErrorBody::new(ErrorCode::UnknownKind, "unknown kind \"x\"")
                    .with_field(Field::Kind),
                &[]
            ),
            "kind"
        );
        let whole = PrimesInput::parse(&json!(5))
            .unwrap_err()
            .into_refusal(builtin::PRIMES);
        assert_eq!(at(&whole, &["limit"]), "input");
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
