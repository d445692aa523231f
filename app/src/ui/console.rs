//! `/`: the submit panel and the live list of this page's tasks.

use leptos::prelude::*;

use super::book::Filter;
use super::live::Live;
pub use super::submit::SubmitPanel;
use super::task_view::TaskRow;

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
