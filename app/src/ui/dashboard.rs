//! `/dashboard`: counters, the last minute's throughput, each kind's queue,
//! latencies and pause button, the nodes (one on a single server, every
//! node of a cluster) and the workers, all from `stats` pushes (the page
//! joins the `dashboard` room).

use std::collections::VecDeque;

use leptos::prelude::*;
use leptos_meta::Title;

use super::kinds_table::KindsTable;
use super::live::{CHART_SECONDS, Live, short_id};
use crate::protocol::Stats;

const CHART_W: f64 = 600.0;
const CHART_H: f64 = 160.0;

#[component]
pub fn Dashboard() -> impl IntoView {
    let live = Live::get();
    Effect::new(move |_| live.join_dashboard());
    view! {
        <Title text="Dashboard · Taskwire"/>
        <div class="dashboard">
            <section class="panel" aria-labelledby="counters-title">
                <h2 id="counters-title">"Tasks"</h2>
                <Counters/>
            </section>
            <section class="panel" aria-labelledby="chart-title">
                <h2 id="chart-title">"Throughput, last minute"</h2>
                <Chart/>
            </section>
            <section class="panel kinds-panel" aria-labelledby="kinds-title">
                <h2 id="kinds-title">"Kinds"</h2>
                <KindsTable/>
            </section>
            <section class="panel" aria-labelledby="nodes-title">
                <h2 id="nodes-title">"Nodes"</h2>
                <Nodes/>
            </section>
            <section class="panel" aria-labelledby="workers-title">
                <h2 id="workers-title">"Workers"</h2>
                <Workers/>
            </section>
        </div>
    }
}

#[component]
pub fn Counters() -> impl IntoView {
    let live = Live::get();
    let counter = move |name: &'static str, label: &'static str, pick: fn(&Stats) -> u64| {
        view! {
            <div class=format!("counter counter-{name}") data-counter=name>
                <dt>{label}</dt>
                <dd>{move || live.stats.with(|s| s.as_ref().map(|s| pick(s).to_string()).unwrap_or_else(|| "–".into()))}</dd>
            </div>
        }
    };
    view! {
        <dl class="counters">
            {counter("scheduled", "Scheduled", |s| s.scheduled)}
            {counter("waiting", "Waiting", |s| s.waiting)}
            {counter("queued", "Queued", |s| s.queued)}
            {counter("running", "Running", |s| s.running)}
            {counter("succeeded", "Succeeded", |s| s.succeeded)}
            {counter("failed", "Failed", |s| s.failed)}
            {counter("cancelled", "Cancelled", |s| s.cancelled)}
            {counter("timed_out", "Timed out", |s| s.timed_out)}
        </dl>
    }
}

/// The largest of 1, 2, 5 × 10ⁿ at or above `v` (a readable axis top).
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 1.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

/// SVG polyline points for `(at ms, rate)` samples over the minute ending
/// at the newest sample, and the axis top.
pub fn chart_points(history: &VecDeque<(i64, f64)>) -> (String, f64) {
    let Some(&(newest, _)) = history.back() else {
        return (String::new(), 1.0);
    };
    let top = nice_ceiling(history.iter().map(|(_, r)| *r).fold(0.0, f64::max));
    let span = (CHART_SECONDS * 1000) as f64;
    let points = history
        .iter()
        .map(|&(at, rate)| {
            let x = CHART_W - (newest - at) as f64 / span * CHART_W;
            let y = CHART_H - rate / top * CHART_H;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ");
    (points, top)
}

#[component]
pub fn Chart() -> impl IntoView {
    let live = Live::get();
    let chart = Memo::new(move |_| live.history.with(chart_points));
    let now_rate = move || {
        live.stats
            .with(|s| {
                s.as_ref()
                    .map(|s| format!("{:.1} tasks/s", s.throughput_per_s))
            })
            .unwrap_or_else(|| "waiting for stats…".into())
    };
    view! {
        <figure class="chart">
            <svg id="throughput" viewBox=format!("0 0 {CHART_W} {CHART_H}") preserveAspectRatio="none"
                role="img" aria-label=move || format!("Throughput over the last minute; now {}", now_rate())>
                <line class="grid" x1="0" y1="0.5" x2=CHART_W y2="0.5"/>
                <line class="grid" x1="0" y1=CHART_H / 2.0 x2=CHART_W y2=CHART_H / 2.0/>
                <line class="axis" x1="0" y1=CHART_H - 0.5 x2=CHART_W y2=CHART_H - 0.5/>
                <polyline class="line" points=move || chart.with(|c| c.0.clone())/>
            </svg>
            <figcaption>
                <span class="axis-top">{move || chart.with(|c| format!("max {} /s", c.1))}</span>
                <span class="axis-range">"60 s ago → now"</span>
                <strong class="rate">{now_rate}</strong>
            </figcaption>
        </figure>
    }
}

#[component]
pub fn Workers() -> impl IntoView {
    let live = Live::get();
    let workers = move || {
        live.stats
            .with(|s| s.as_ref().map(|s| s.workers.clone()).unwrap_or_default())
    };
    view! {
        <table id="workers" class="workers">
            <thead>
                <tr>
                    <th scope="col">"Worker"</th>
                    <th scope="col">"State"</th>
                    <th scope="col">"Current task"</th>
                    <th scope="col" class="num">"Running"</th>
                    <th scope="col" class="num">"Tasks done"</th>
                    <th scope="col">"Node"</th>
                </tr>
            </thead>
            <tbody>
                <For each=workers key=|w| (w.id.clone(), w.state.as_str(), w.current_task, w.running, w.tasks_done, w.node.clone()) let:w>
                    <tr data-worker-id=w.id.to_string()>
                        <td>
                            {w.id.to_string()}
                            {w.remote.then(|| view! { <span class="tag">"remote"</span> })}
                            {w.pid.map(|p| view! { <span class="pid">{format!(" pid {p}")}</span> })}
                        </td>
                        <td><span class=format!("state state-{}", w.state.as_str())>{w.state.as_str()}</span></td>
                        <td>{w.current_task.map(|t| view! {
                            <a href=format!("/tasks/{t}")><code>{short_id(&t)}</code></a>
                        })}</td>
                        <td class="num">{w.running}</td>
                        <td class="num">{w.tasks_done}</td>
                        <td><code>{w.node.clone()}</code></td>
                    </tr>
                </For>
            </tbody>
        </table>
        {move || live.stats.with(|s| s.is_none()).then(|| view! { <p class="empty">"Waiting for the first stats…"</p> })}
    }
}

/// Every node of the cluster (the server itself on a single server).
#[component]
pub fn Nodes() -> impl IntoView {
    let live = Live::get();
    let nodes = move || {
        live.stats
            .with(|s| s.as_ref().map(|s| s.nodes.clone()).unwrap_or_default())
    };
    view! {
        <table id="nodes" class="nodes">
            <thead>
                <tr>
                    <th scope="col">"Node"</th>
                    <th scope="col">"Address"</th>
                    <th scope="col">"Started"</th>
                    <th scope="col" class="num">"Workers"</th>
                    <th scope="col" class="num">"Running"</th>
                </tr>
            </thead>
            <tbody>
                <For each=nodes key=|n| (n.id.clone(), n.workers, n.running) let:n>
                    <tr data-node-id=n.id.clone()>
                        <td><code>{n.id.clone()}</code></td>
                        <td>{n.addr.clone()}</td>
                        <td>{n.started_at.to_string()}</td>
                        <td class="num">{n.workers}</td>
                        <td class="num">{n.running}</td>
                    </tr>
                </For>
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(8.0), 10.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
    }

    #[test]
    fn chart_spans_the_minute_before_the_newest_sample() {
        assert_eq!(chart_points(&VecDeque::new()), (String::new(), 1.0));
        let h: VecDeque<_> = [(0, 0.0), (60_000, 5.0)].into_iter().collect();
        assert_eq!(chart_points(&h), ("0.0,160.0 600.0,0.0".to_owned(), 5.0));
    }
}
