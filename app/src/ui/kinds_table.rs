//! The dashboard's kinds: for each kind, its queue depth, how long its
//! tasks waited and ran (p50/p95/p99, from `stats.kinds`, pushed), and a
//! Pause/Resume button (`POST /kinds/{kind}/pause|resume`).

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::explore::encode;
use super::io;
use super::live::Live;
use super::task_view::duration;
use crate::protocol::{KindInfo, KindStats, Latency};

/// A latency as the table shows it: `–` before any task, `0.4 ms` under
/// 10 ms, then as [`duration`] writes it.
pub fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "–".to_owned(),
        Some(ms) if !ms.is_finite() => "–".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.1} ms"),
        Some(ms) => duration(ms.round() as i64),
    }
}

/// `p50 / p95 / p99` of one latency.
pub fn percentiles(l: &Latency) -> String {
    format!(
        "{} / {} / {}",
        latency(l.p50),
        latency(l.p95),
        latency(l.p99)
    )
}

/// Whether a kind shows as paused: what the operator just asked for until
/// a `stats` push says the same, then the push.
fn shown_paused(k: &KindStats, asked: &HashMap<String, bool>) -> bool {
    asked.get(&k.kind).copied().unwrap_or(k.paused)
}

#[component]
pub fn KindsTable() -> impl IntoView {
    let live = Live::get();
    // Pauses and resumes asked for, until a push agrees.
    let asked = RwSignal::new(HashMap::<String, bool>::new());
    Effect::new(move |_| {
        live.stats.with(|s| {
            let Some(s) = s else { return };
            let agreed: Vec<String> = asked.with_untracked(|a| {
                s.kinds
                    .iter()
                    .filter(|k| a.get(&k.kind) == Some(&k.paused))
                    .map(|k| k.kind.clone())
                    .collect()
            });
            if !agreed.is_empty() {
                asked.update(|a| a.retain(|k, _| !agreed.contains(k)));
            }
        })
    });
    let kinds = move || {
        live.stats
            .with(|s| s.as_ref().map(|s| s.kinds.clone()).unwrap_or_default())
    };
    view! {
        <table id="kinds" class="kinds">
            <thead>
                <tr>
                    <th scope="col">"Kind"</th>
                    <th scope="col" class="num">"Queued"</th>
                    <th scope="col" class="num">"Running"</th>
                    <th scope="col" class="num">"Wait p50 / p95 / p99"</th>
                    <th scope="col" class="num">"Run p50 / p95 / p99"</th>
                    <th scope="col" class="num">"Tasks run"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                <For each=kinds key=|k| k.kind.clone() let:k>
                    <KindRow kind=k.kind.clone() asked/>
                </For>
            </tbody>
        </table>
        {move || live.stats.with(|s| s.as_ref().is_some_and(|s| s.kinds.is_empty())).then(|| view! {
            <p class="empty">"No kind has had a task yet."</p>
        })}
    }
}

/// One kind; its cells follow the pushes, the button stays put.
#[component]
fn KindRow(kind: String, asked: RwSignal<HashMap<String, bool>>) -> impl IntoView {
    let live = Live::get();
    let name = kind.clone();
    let line = Memo::new(move |_| {
        live.stats.with(|s| {
            s.as_ref()
                .and_then(|s| s.kinds.iter().find(|k| k.kind == name).cloned())
        })
    });
    let cell = move |f: fn(&KindStats) -> String| move || line.with(|l| l.as_ref().map(f));
    let paused = Memo::new(move |_| {
        line.with(|l| {
            l.as_ref()
                .is_some_and(|l| asked.with(|a| shown_paused(l, a)))
        })
    });
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let target = kind.clone();
    let toggle = move |_| {
        let pause = !paused.get_untracked();
        let kind = target.clone();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let verb = if pause { "pause" } else { "resume" };
            let url = format!("/kinds/{}/{verb}", encode(&kind));
            match io::post_json::<KindInfo>(&url).await {
                Ok(info) => asked.update(|a| {
                    a.insert(info.kind, info.paused);
                }),
                Err(e) => error.set(Some(e)),
            }
            busy.set(false);
        });
    };
    view! {
        <tr data-kind=kind.clone() data-paused=move || paused.get().to_string()>
            <th scope="row">
                <span class="kind">{kind.clone()}</span>
                {move || paused.get().then(|| view! { <span class="tag paused">"paused"</span> })}
            </th>
            <td class="num queued">{cell(|k| k.queued.to_string())}</td>
            <td class="num running">{cell(|k| k.running.to_string())}</td>
            <td class="num wait">{cell(|k| percentiles(&k.wait_ms))}</td>
            <td class="num run">{cell(|k| percentiles(&k.run_ms))}</td>
            <td class="num count">{cell(|k| k.run_ms.count.to_string())}</td>
            <td class="actions">
                <button type="button" class="secondary toggle" on:click=toggle disabled=move || busy.get()>
                    {move || if paused.get() { "Resume" } else { "Pause" }}
                    <span class="visually-hidden">" "{kind.clone()}</span>
                </button>
                {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_well() {
        assert_eq!(latency(None), "–");
        assert_eq!(latency(Some(f64::NAN)), "–");
        assert_eq!(latency(Some(0.42)), "0.4 ms");
        assert_eq!(latency(Some(12.6)), "13 ms");
        assert_eq!(latency(Some(2_450.0)), "2.5 s");
        let l = Latency {
            count: 3,
            p50: Some(1.0),
            p95: Some(250.0),
            p99: None,
        };
        assert_eq!(percentiles(&l), "1.0 ms / 250 ms / –");
    }

    #[test]
    fn a_pause_shows_at_once_then_as_pushed() {
        let mut k = KindStats {
            kind: "echo".into(),
            paused: false,
            queued: 0,
            running: 0,
            wait_ms: Latency::default(),
            run_ms: Latency::default(),
        };
        let mut asked = HashMap::new();
        assert!(!shown_paused(&k, &asked));
        asked.insert("echo".to_owned(), true);
        assert!(shown_paused(&k, &asked));
        k.paused = true;
        asked.clear();
        assert!(shown_paused(&k, &asked));
    }
}
