//! Form pieces the console's submit panel and the schedules page share:
//! the error slot next to a field, number and text fields that show their
//! own error, and where a server's refusal goes.

use std::collections::HashMap;

use leptos::prelude::*;

use crate::protocol::{ErrorBody, Field};

/// Field errors by slot name (`""` for the form as a whole).
pub type Errors = HashMap<String, String>;

/// Where a server's refusal of a task (a submission, or a schedule's
/// `task`) goes: the slot of the field it names, or `""` (under the form,
/// with its code).
///
/// - an input key with a field on screen (`shown`) goes there; any other
///   part of the input goes to the raw JSON editor's slot, `input`;
/// - a field the form has a slot for (`slots`, by wire name) goes there,
///   to the slot named by the second of the pair;
/// - a schedule's refusals name the task's fields as `task.<field>`, which
///   land where the same field of a task would.
pub fn field_error(e: ErrorBody, shown: &[&str], slots: &[(&str, &str)]) -> Errors {
    let slot = e.field.as_ref().and_then(|f| slot_of(f, shown, slots));
    let (slot, message) = match slot {
        Some(slot) => (slot, e.message),
        None => (String::new(), format!("{}: {}", e.code.as_str(), e.message)),
    };
    Errors::from([(slot, message)])
}

fn slot_of(field: &Field, shown: &[&str], slots: &[(&str, &str)]) -> Option<String> {
    let wire = field.to_string();
    if let Some(slot) = slots.iter().find(|(name, _)| *name == wire) {
        return Some(slot.1.to_owned());
    }
    if let Some(inner) = wire.strip_prefix("task.") {
        return slot_of(&Field::from_name(inner), shown, slots);
    }
    match field {
        Field::InputKey(key) if shown.contains(&key.as_str()) => Some(key.clone()),
        Field::InputKey(_) | Field::Input => Some("input".to_owned()),
        _ => None,
    }
}

/// The error slot of one field (or of the form, `id="error-form"`): empty
/// until there is something to say.
#[component]
pub fn FieldError(
    id: impl Into<String>,
    message: impl Fn() -> Option<String> + Send + Sync + 'static,
) -> impl IntoView {
    view! { <p class="field-error" id=id.into() role="alert">{message}</p> }
}

/// An integer option: `<input type=number>` with its label and error slot
/// (`opt-<name>` / `error-<name>`, `name` also the slot).
#[component]
pub fn NumberField(
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

/// A line of text with its label, an optional hint and the error of its
/// slot, `field` (elements `<id>`, `hint-<id>`, `error-<id>`).
#[component]
pub fn TextField(
    id: &'static str,
    field: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    errors: RwSignal<Errors>,
    #[prop(optional)] placeholder: &'static str,
    #[prop(optional)] hint: &'static str,
    #[prop(optional)] list: Option<&'static str>,
) -> impl IntoView {
    let err_id = format!("error-{id}");
    let hint_id = format!("hint-{id}");
    let described = if hint.is_empty() {
        err_id.clone()
    } else {
        format!("{hint_id} {err_id}")
    };
    view! {
        <div class="row">
            <label for=id>{label}</label>
            <input id=id type="text" placeholder=placeholder autocomplete="off" spellcheck="false" list=list
                prop:value=move || value.get()
                value=value.get_untracked()
                on:input=move |ev| value.set(event_target_value(&ev))
                aria-invalid=move || errors.with(|e| e.contains_key(field)).to_string()
                aria-describedby=described/>
            {(!hint.is_empty()).then(|| view! { <small id=hint_id class="hint">{hint}</small> })}
            <FieldError id=err_id message=move || errors.with(|e| e.get(field).cloned())/>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::builtin::{self, PrimesInput, Sha256Input};
    use crate::protocol::{ErrorCode, TaskSpec};
    use serde_json::json;

    const TASK_SLOTS: [(&str, &str); 3] = [
        ("kind", "kind"),
        ("priority", "priority"),
        ("delay_ms", "delay"),
    ];

    fn at(e: &ErrorBody, shown: &[&str]) -> String {
        field_error(e.clone(), shown, &TASK_SLOTS)
            .into_keys()
            .next()
            .unwrap()
    }

    #[test]
    fn refusals_land_next_to_a_visible_field() {
        let rounds = Sha256Input::parse(&json!({"data": "a", "rounds": 0}))
            .unwrap_err()
            .into_refusal(builtin::SHA256);
        assert_eq!(at(&rounds, &["data", "rounds"]), "rounds");
        // Raw JSON editor: no `rounds` field on screen.
        assert_eq!(at(&rounds, &[]), "input");
        let priority = TaskSpec::parse(json!({"kind": "echo", "priority": "x"})).unwrap_err();
        assert_eq!(at(&priority, &[]), "priority");
        let unknown =
            ErrorBody::new(ErrorCode::UnknownKind, "unknown kind \"x\"").with_field(Field::Kind);
        assert_eq!(at(&unknown, &[]), "kind");
        let whole = PrimesInput::parse(&json!(5))
            .unwrap_err()
            .into_refusal(builtin::PRIMES);
        assert_eq!(at(&whole, &["limit"]), "input");
        let full = field_error(
            ErrorBody::new(ErrorCode::QueueFull, "the queue is full"),
            &[],
            &TASK_SLOTS,
        );
        assert_eq!(
            full.get(""),
            Some(&"queue_full: the queue is full".to_owned())
        );
    }

    #[test]
    fn v1_1_fields_and_a_schedules_task_fields_have_their_slots() {
        let delay = TaskSpec::parse(json!({"kind": "echo", "delay_ms": -1})).unwrap_err();
        assert_eq!(at(&delay, &[]), "delay");
        // A field the form has no slot for goes under the form, with its code.
        let backoff = TaskSpec::parse(json!({"kind": "echo", "backoff_ms": -1})).unwrap_err();
        assert_eq!(at(&backoff, &[]), "");
        // A schedule's refusal of its task: `task.input.limit`, `task.kind`.
        let in_task = |f: &str| ErrorBody::invalid("task: no").with_field(Field::from_name(f));
        assert_eq!(at(&in_task("task.input.limit"), &["limit"]), "limit");
        assert_eq!(at(&in_task("task.input.limit"), &[]), "input");
        assert_eq!(at(&in_task("task.kind"), &[]), "kind");
        assert_eq!(at(&in_task("task"), &[]), "");
    }
}
