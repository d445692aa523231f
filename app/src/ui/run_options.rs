//! The submit panel's v1.1 options: when a task may run (a delay in
//! seconds or minutes), its idempotency key, and the tasks it runs
//! `after` (picked from those this page lists).

use leptos::prelude::*;

use super::fields::{Errors, FieldError};
use super::live::{Live, short_id, status_label};
use crate::protocol::{MAX_AFTER, MAX_DELAY_MS, TaskId};

/// The unit of the delay field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayUnit {
    Seconds,
    Minutes,
}

impl DelayUnit {
    fn ms(self) -> f64 {
        match self {
            Self::Seconds => 1_000.0,
            Self::Minutes => 60_000.0,
        }
    }

    /// The `<option>` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Seconds => "s",
            Self::Minutes => "min",
        }
    }

    fn from_name(name: &str) -> Self {
        if name == "min" {
            Self::Minutes
        } else {
            Self::Seconds
        }
    }
}

/// `delay_ms` from the delay field: nothing when it is empty; else a
/// number of `unit`s (fractions allowed: 1.5 minutes) up to 365 days.
pub fn delay_ms(text: &str, unit: DelayUnit) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        let max = MAX_DELAY_MS as f64 / unit.ms();
        let unit = match unit {
            DelayUnit::Seconds => "seconds",
            DelayUnit::Minutes => "minutes",
        };
        format!("delay must be a number of {unit} from 0 to {max}")
    };
    let n = text.parse::<f64>().map_err(|_| bad())?;
    let ms = (n * unit.ms()).round();
    if !ms.is_finite() || !(0.0..=MAX_DELAY_MS as f64).contains(&ms) {
        return Err(bad());
    }
    // In range and whole: the conversion is exact.
    Ok(Some(ms as u64))
}

/// The options' state.
#[derive(Clone, Copy)]
pub struct RunOptions {
    pub delay: RwSignal<String>,
    pub unit: RwSignal<DelayUnit>,
    pub key: RwSignal<String>,
    pub after: RwSignal<Vec<TaskId>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RunOptions {
    pub fn new() -> Self {
        Self {
            delay: RwSignal::new(String::new()),
            unit: RwSignal::new(DelayUnit::Seconds),
            key: RwSignal::new(String::new()),
            after: RwSignal::new(Vec::new()),
        }
    }

    /// `delay_ms`, `key` and `after` as a submission carries them (left
    /// out when not set), or the slot that is wrong and why.
    pub fn read(self) -> Result<Vec<(&'static str, serde_json::Value)>, (String, String)> {
        let mut set = Vec::new();
        let delay = delay_ms(&self.delay.get_untracked(), self.unit.get_untracked())
            .map_err(|e| ("delay".to_owned(), e))?;
        if let Some(ms) = delay {
            set.push(("delay_ms", ms.into()));
        }
        let key = self.key.get_untracked();
        if !key.is_empty() {
            set.push(("key", key.into()));
        }
        let after = self.after.get_untracked();
        if after.len() > MAX_AFTER {
            return Err((
                "after".to_owned(),
                format!("pick at most {MAX_AFTER} tasks to run after"),
            ));
        }
        if !after.is_empty() {
            let ids = after.iter().map(|id| id.to_string().into()).collect();
            set.push(("after", serde_json::Value::Array(ids)));
        }
        Ok(set)
    }
}

/// The delay (a number and its unit) and the idempotency key.
#[component]
pub fn WhenFields(options: RunOptions, errors: RwSignal<Errors>) -> impl IntoView {
    let invalid =
        move |slot: &'static str| move || errors.with(|e| e.contains_key(slot)).to_string();
    view! {
        <div class="options when">
            <div class="row">
                <label for="opt-delay">"Delay"</label>
                <div class="with-unit">
                    <input id="opt-delay" type="number" min="0" step="any" inputmode="decimal" placeholder="none"
                        prop:value=move || options.delay.get()
                        on:input=move |ev| options.delay.set(event_target_value(&ev))
                        aria-invalid=invalid("delay")
                        aria-describedby="error-delay"/>
                    <select id="opt-delay-unit" aria-label="Delay unit"
                        prop:value=move || options.unit.get().name()
                        on:change=move |ev| options.unit.set(DelayUnit::from_name(&event_target_value(&ev)))>
                        <option value="s">"seconds"</option>
                        <option value="min">"minutes"</option>
                    </select>
                </div>
                <FieldError id="error-delay" message=move || errors.with(|e| e.get("delay").cloned())/>
            </div>
            <div class="row">
                <label for="opt-key">"Idempotency key"</label>
                <input id="opt-key" type="text" placeholder="none" autocomplete="off" spellcheck="false"
                    prop:value=move || options.key.get()
                    on:input=move |ev| options.key.set(event_target_value(&ev))
                    aria-invalid=invalid("key")
                    aria-describedby="error-key"/>
                <FieldError id="error-key" message=move || errors.with(|e| e.get("key").cloned())/>
            </div>
        </div>
    }
}

/// Tasks the picker offers at most (newest first), beside those picked.
pub const AFTER_CHOICES: usize = 12;

/// Ticks for the tasks the new one runs after: the newest tasks of this
/// page that may still succeed, and any picked already.
#[component]
pub fn AfterPicker(options: RunOptions, errors: RwSignal<Errors>) -> impl IntoView {
    let live = Live::get();
    let choices = Memo::new(move |_| {
        let mut ids = live.after_candidates(AFTER_CHOICES);
        for id in options.after.get() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    });
    let toggle = move |id: TaskId, on: bool| {
        options.after.update(|after| {
            after.retain(|a| *a != id);
            if on {
                after.push(id);
            }
        });
    };
    view! {
        <fieldset class="after-picker" id="after-picker" aria-describedby="hint-after error-after">
            <legend>"Run after"</legend>
            <small id="hint-after" class="hint">"Waits until every task ticked here has succeeded."</small>
            <ul class="after-choices">
                <For each=move || choices.get() key=|id| *id let:id>
                    <li>
                        <input type="checkbox" id=format!("after-{id}") value=id.to_string()
                            prop:checked=move || options.after.with(|a| a.contains(&id))
                            on:change=move |ev| toggle(id, event_target_checked(&ev))/>
                        <label for=format!("after-{id}")>
                            <code>{short_id(&id)}</code>
                            {move || live.row(id).map(|t| format!(" {} · {}", t.kind, status_label(t.status)))}
                        </label>
                    </li>
                </For>
            </ul>
            {move || choices.with(Vec::is_empty).then(|| view! {
                <p class="hint">"The tasks you submit here can be picked."</p>
            })}
            <FieldError id="error-after" message=move || errors.with(|e| e.get("after").cloned())/>
        </fieldset>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_in_seconds_or_minutes() {
        assert_eq!(delay_ms("", DelayUnit::Seconds), Ok(None));
        assert_eq!(delay_ms("  ", DelayUnit::Minutes), Ok(None));
        assert_eq!(delay_ms("5", DelayUnit::Seconds), Ok(Some(5_000)));
        assert_eq!(delay_ms(" 0 ", DelayUnit::Seconds), Ok(Some(0)));
        assert_eq!(delay_ms("1.5", DelayUnit::Minutes), Ok(Some(90_000)));
        assert_eq!(delay_ms("0.0004", DelayUnit::Seconds), Ok(Some(0)));
        assert_eq!(
            delay_ms("525600", DelayUnit::Minutes),
            Ok(Some(MAX_DELAY_MS))
        );
        for bad in ["-1", "x", "1e30", "NaN", "inf", "525601"] {
            assert_eq!(
                delay_ms(bad, DelayUnit::Minutes),
                Err("delay must be a number of minutes from 0 to 525600".into()),
                "{bad}"
            );
        }
        assert_eq!(
            delay_ms("31536001", DelayUnit::Seconds),
            Err("delay must be a number of seconds from 0 to 31536000".into())
        );
    }
}
