//! A task's kind and input as a form edits them, shared by the console's
//! submit panel and the schedules page: the kind picker, one field per key
//! of a built-in kind's input, or a raw JSON editor (the only editor before
//! hydration, and for kinds without fields).

use std::collections::HashMap;

use leptos::prelude::*;
use serde_json::Value;

use super::Kinds;
use super::fields::{Errors, FieldError};
use super::kind_form::{self, FieldType, FormField};
use crate::protocol::builtin;

/// What the raw JSON editor starts with for a kind.
pub fn example_input(kind: &str) -> String {
    match kind_form::fields(kind) {
        Some(fields) => kind_form::input_from_fields(fields, |f| f.default.to_owned())
            .map(|v| v.to_string())
            .unwrap_or_else(|_| "{}".into()),
        None if kind == builtin::ECHO => r#"{"hello": "world"}"#.into(),
        None => "{}".into(),
    }
}

/// The kind and input of one form; `Copy`, so every part of the form holds
/// the same signals. Element ids start with `prefix` (`""` on the console,
/// so its ids stay `kind`, `input`, `field-<key>`); error slots do not.
#[derive(Clone, Copy)]
pub struct TaskInput {
    prefix: &'static str,
    pub kind: RwSignal<String>,
    /// Values of the per-kind fields, by "kind.field", kept across switches.
    values: RwSignal<HashMap<String, String>>,
    pub raw: RwSignal<String>,
    pub raw_mode: RwSignal<bool>,
    /// Server-rendered, a form only has the raw editor (it posts `kind` +
    /// raw `input` without JavaScript); once hydrated, built-in kinds get
    /// their own fields.
    pub hydrated: RwSignal<bool>,
    pub errors: RwSignal<Errors>,
}

impl TaskInput {
    pub fn new(prefix: &'static str, errors: RwSignal<Errors>) -> Self {
        let this = Self {
            prefix,
            kind: RwSignal::new(builtin::ECHO.to_owned()),
            values: RwSignal::new(HashMap::new()),
            raw: RwSignal::new(example_input(builtin::ECHO)),
            raw_mode: RwSignal::new(false),
            hydrated: RwSignal::new(false),
            errors,
        };
        Effect::new(move |_| this.hydrated.set(true));
        this
    }

    fn id(self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The id of an element about the control `name`: `error-<id>`, `hint-<id>`.
    fn about(self, what: &str, name: &str) -> String {
        format!("{what}-{}{name}", self.prefix)
    }

    /// The input fields on screen, or `None` when the input is raw JSON.
    pub fn fields(self) -> Option<&'static [FormField]> {
        if !self.hydrated.get() || self.raw_mode.get() {
            return None;
        }
        kind_form::fields(&self.kind.get())
    }

    /// Names of the input fields on screen (where a refusal of one goes).
    pub fn shown(self) -> Vec<&'static str> {
        untrack(move || self.fields())
            .map(|fs| fs.iter().map(|f| f.name).collect())
            .unwrap_or_default()
    }

    fn value_of(self, kind: &str, f: &FormField) -> String {
        self.values
            .with(|v| v.get(&format!("{kind}.{}", f.name)).cloned())
            .unwrap_or_else(|| f.default.to_owned())
    }

    /// The input, or the slot of the field that is wrong and why.
    pub fn read(self) -> Result<Value, (String, String)> {
        let k = self.kind.get_untracked();
        match untrack(move || self.fields()) {
            Some(fs) => kind_form::input_from_fields(fs, |f| self.value_of(&k, f))
                .map_err(|(name, msg)| (name.to_owned(), msg)),
            None => serde_json::from_str::<Value>(&self.raw.get_untracked())
                .map_err(|e| ("input".to_owned(), format!("input is not JSON: {e}"))),
        }
    }

    fn error_of(self, slot: &'static str) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        move || self.errors.with(|e| e.get(slot).cloned())
    }
}

/// The kind picker, the input's editor and (once hydrated) the switch to
/// raw JSON. Ctrl+Enter in the raw editor submits `form_ref`.
#[component]
pub fn TaskInputFields(input: TaskInput, form_ref: NodeRef<leptos::html::Form>) -> impl IntoView {
    view! {
        <KindSelect input/>
        {move || match input.fields() {
            Some(fields) => view! { <KindFields input fields/> }.into_any(),
            None => view! { <RawInput input form_ref/> }.into_any(),
        }}
        {move || input.hydrated.get().then(|| {
            let id = input.id("raw");
            view! {
                <div class="row row-inline">
                    <input id=id.clone() type="checkbox" prop:checked=move || input.raw_mode.get()
                        on:change=move |ev| input.raw_mode.set(event_target_checked(&ev))/>
                    <label for=id>"Edit the input as raw JSON"</label>
                </div>
            }
        })}
    }
}

/// The kind picker; a new kind starts its raw input over.
#[component]
fn KindSelect(input: TaskInput) -> impl IntoView {
    let Kinds(kinds) = expect_context::<Kinds>();
    let on_kind = move |ev| {
        let k = event_target_value(&ev);
        input.raw.set(example_input(&k));
        input.kind.set(k);
        input.errors.set(Errors::new());
    };
    let id = input.id("kind");
    let err_id = input.about("error", "kind");
    let described = err_id.clone();
    view! {
        <div class="row">
            <label for=id.clone()>"Kind"</label>
            <Transition fallback=|| ()>
                <select id=id.clone() name="kind" on:change=on_kind prop:value=move || input.kind.get()
                    aria-describedby=described.clone()>
                    {move || kinds.get().unwrap_or_default().into_iter().map(|k| {
                        let selected = k == input.kind.get_untracked();
                        view! { <option value=k.clone() selected=selected>{k.clone()}</option> }
                    }).collect_view()}
                </select>
            </Transition>
            <FieldError id=err_id message=input.error_of("kind")/>
        </div>
    }
}

/// One row per field of a built-in kind's input.
#[component]
fn KindFields(input: TaskInput, fields: &'static [FormField]) -> impl IntoView {
    // The form renders these again when the kind changes.
    let k = input.kind.get_untracked();
    fields
        .iter()
        .map(|f| view! { <KindField input kind=k.clone() field=*f/> })
        .collect_view()
}

#[component]
fn KindField(input: TaskInput, kind: String, field: FormField) -> impl IntoView {
    let f = field;
    let id = input.id(&format!("field-{}", f.name));
    let hint_id = input.about("hint", f.name);
    let err_id = input.about("error", f.name);
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
                prop:value=move || input.value_of(&kind, &f)
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    input.values.update(|m| { m.insert(key.clone(), v); });
                }
                aria-invalid=move || input.errors.with(|e| e.contains_key(f.name)).to_string()
                aria-describedby=format!("{hint_id} {err_id}")/>
            <small id=hint_id class="hint">{f.hint}</small>
            <FieldError id=err_id message=move || input.errors.with(|e| e.get(f.name).cloned())/>
        </div>
    }
}

/// The input as raw JSON (the only input editor before hydration).
#[component]
fn RawInput(input: TaskInput, form_ref: NodeRef<leptos::html::Form>) -> impl IntoView {
    let id = input.id("input");
    let hint_id = input.about("hint", "input");
    let err_id = input.about("error", "input");
    view! {
        <div class="row">
            <label for=id.clone()>"Input (JSON)"</label>
            <textarea id=id name="input" rows="4" spellcheck="false"
                prop:value=move || input.raw.get()
                on:input=move |ev| input.raw.set(event_target_value(&ev))
                // Enter makes a new line here; Ctrl/⌘+Enter submits.
                on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        if let Some(el) = form_ref.get_untracked() {
                            let _ = el.request_submit();
                        }
                    }
                }
                aria-invalid=move || input.errors.with(|e| e.contains_key("input")).to_string()
                aria-describedby=format!("{hint_id} {err_id}")>{input.raw.get_untracked()}</textarea>
            <small id=hint_id class="hint">"Ctrl+Enter submits."</small>
            <FieldError id=err_id message=input.error_of("input")/>
        </div>
    }
}
