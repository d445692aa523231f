//! The schedules page's form: a new schedule (or a new version of one, by
//! name): its name, cron pattern and time zone, and the task each firing
//! submits, edited as the console edits one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};

use super::fields::{Errors, FieldError, TextField, field_error};
use super::io::ConnState;
use super::live::Live;
use super::task_input::{TaskInput, TaskInputFields};
use crate::protocol::{MAX_SCHEDULE_NAME, valid_schedule_name};

/// Fields of a schedule with a slot on the form (a refusal of its task's
/// `task.<field>` lands where the task's field would).
const SLOTS: [(&str, &str); 4] = [
    ("name", "name"),
    ("cron", "cron"),
    ("timezone", "timezone"),
    ("kind", "kind"),
];

/// Time zones the form suggests (any IANA name is accepted).
const ZONES: [&str; 10] = [
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// The payload of `schedule`, or the slot that is wrong and why. The
/// server checks the cron pattern and the time zone; the form only
/// refuses what cannot be sent.
pub fn schedule_payload(
    name: &str,
    cron: &str,
    timezone: &str,
    task: Value,
    paused: bool,
) -> Result<Value, (String, String)> {
    let name = name.trim();
    if !valid_schedule_name(name) {
        return Err((
            "name".into(),
            format!(
                "name must be 1 to {MAX_SCHEDULE_NAME} characters of A-Z, a-z, 0-9, _, . and -"
            ),
        ));
    }
    if cron.trim().is_empty() {
        return Err(("cron".into(), "cron must not be empty".into()));
    }
    let mut payload = json!({
        "name": name,
        "cron": cron.trim(),
        "task": task,
        "paused": paused,
    });
    if !timezone.trim().is_empty() {
        payload["timezone"] = json!(timezone.trim());
    }
    Ok(payload)
}

/// The browser's own time zone, to suggest it too.
fn browser_zone() -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        let format =
            js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
        let zone = js_sys::Reflect::get(&format.resolved_options(), &"timeZone".into()).ok()?;
        zone.as_string()
    }
    #[cfg(not(target_arch = "wasm32"))]
    None
}

#[component]
pub fn ScheduleForm() -> impl IntoView {
    let live = Live::get();
    let errors = RwSignal::new(Errors::new());
    let input = TaskInput::new("schedule-", errors);
    let name = RwSignal::new(String::new());
    let cron = RwSignal::new(String::new());
    let timezone = RwSignal::new("UTC".to_owned());
    let paused = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let saved = RwSignal::new(None::<String>);
    let zone = RwSignal::new(None::<String>);
    Effect::new(move |_| zone.set(browser_zone().filter(|z| !ZONES.contains(&z.as_str()))));
    let form_ref = NodeRef::<leptos::html::Form>::new();

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        saved.set(None);
        let payload = input.read().and_then(|task_input| {
            let task = json!({"kind": input.kind.get_untracked(), "input": task_input});
            schedule_payload(
                &name.get_untracked(),
                &cron.get_untracked(),
                &timezone.get_untracked(),
                task,
                paused.get_untracked(),
            )
        });
        let payload = match payload {
            Ok(p) => p,
            Err((slot, message)) => {
                errors.set(Errors::from([(slot, message)]));
                return;
            }
        };
        if live.conn.get_untracked() != ConnState::Connected {
            errors.set(Errors::from([(
                String::new(),
                "Not connected to the server: wait until the indicator says Live.".to_owned(),
            )]));
            return;
        }
        errors.set(Errors::new());
        busy.set(true);
        spawn_local(async move {
            let answer = live.put_schedule(payload).await;
            busy.set(false);
            match answer {
                Ok(s) => {
                    saved.set(Some(s.name));
                    name.set(String::new());
                }
                Err(e) => errors.set(field_error(e, &input.shown(), &SLOTS)),
            }
        });
    };

    view! {
        <section class="panel schedule-form" aria-labelledby="schedule-form-title">
            <h2 id="schedule-form-title">"New schedule"</h2>
            <form id="schedule-form" on:submit=submit novalidate node_ref=form_ref>
                <TextField id="schedule-name" field="name" label="Name" value=name errors
                    placeholder="nightly-report" hint="A-Z, a-z, 0-9, _, . and -; a schedule of the same name is replaced."/>
                <div class="options">
                    <TextField id="schedule-cron" field="cron" label="Cron" value=cron errors
                        placeholder="*/5 * * * *" hint="minute hour day month weekday, or seconds first and those five"/>
                    <TextField id="schedule-timezone" field="timezone" label="Time zone" value=timezone errors
                        list="timezones" hint="An IANA name."/>
                </div>
                <datalist id="timezones">
                    {ZONES.map(|z| view! { <option value=z></option> })}
                    {move || zone.get().map(|z| view! { <option value=z.clone()></option> })}
                </datalist>
                <TaskInputFields input form_ref/>
                <div class="row row-inline">
                    <input id="schedule-paused" type="checkbox" prop:checked=move || paused.get()
                        on:change=move |ev| paused.set(event_target_checked(&ev))/>
                    <label for="schedule-paused">"Start paused"</label>
                </div>
                <FieldError id="error-schedule-form" message=move || errors.with(|e| e.get("").cloned())/>
                <p id="schedule-notice" class="notice" role="status" aria-live="polite">
                    {move || saved.get().map(|n| format!("Saved schedule {n}."))}
                </p>
                <button type="submit" id="schedule-submit" class="primary" disabled=move || busy.get() || !input.hydrated.get()>
                    "Save schedule"
                </button>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_what_the_form_says() {
        let task = json!({"kind": "echo", "input": {"a": 1}});
        assert_eq!(
            schedule_payload(
                " nightly ",
                " 0 1 * * * ",
                "Europe/Paris",
                task.clone(),
                true
            ),
            Ok(json!({
                "name": "nightly",
                "cron": "0 1 * * *",
                "timezone": "Europe/Paris",
                "task": {"kind": "echo", "input": {"a": 1}},
                "paused": true,
            }))
        );
        // No time zone: the server's default (UTC).
        let p = schedule_payload("a", "* * * * *", " ", task.clone(), false).unwrap();
        assert_eq!(p.get("timezone"), None);
        assert_eq!(
            schedule_payload("no spaces", "* * * * *", "", task.clone(), false)
                .unwrap_err()
                .0,
            "name"
        );
        assert_eq!(
            schedule_payload("", "* * * * *", "", task.clone(), false)
                .unwrap_err()
                .0,
            "name"
        );
        assert_eq!(
            schedule_payload("a", "  ", "", task, false),
            Err(("cron".into(), "cron must not be empty".into()))
        );
    }
}
