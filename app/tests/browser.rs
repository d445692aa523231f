//! The page's state logic and components, in a real browser:
//! `wasm-pack test --headless --chrome app --features csr`
//! (Chromium and chromedriver from the OS; nothing is downloaded).

#![cfg(target_arch = "wasm32")]

use app::protocol::{
    KindStats, Latency, ProgressEvent, Schedule, Stats, StatusEvent, Task, TaskId, TaskSpec,
    TaskStatus, Timestamp, WorkerId,
};
use app::ui::book::{Book, Filter, KEEP_FINISHED};
use app::ui::console::{SubmitPanel, TaskList};
use app::ui::dashboard::Chart;
use app::ui::kinds_table::KindsTable;
use app::ui::schedules::ScheduleTable;
use app::ui::{Kinds, Live};
use leptos::prelude::*;
use serde_json::json;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

fn document() -> web_sys::Document {
    web_sys::window().unwrap().document().unwrap()
}

/// A fresh element to mount one component into.
fn host() -> HtmlElement {
    let el: HtmlElement = document().create_element("div").unwrap().unchecked_into();
    document().body().unwrap().append_child(&el).unwrap();
    el
}

/// Lets timers (the list's coalesced re-render) and microtasks run.
async fn tick(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

fn all(root: &Element, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().unchecked_into())
        .collect()
}

fn task(n: u128, kind: &str) -> Task {
    Task::new(
        TaskId(uuid::Uuid::from_u128(n)),
        TaskSpec::new(kind, json!({"n": n as u64})),
        Timestamp::now(),
    )
}

#[wasm_bindgen_test]
fn book_stays_bounded_in_the_browser() {
    let mut book = Book::default();
    for n in 0..10_000 {
        book.upsert(task(n, "echo"));
    }
    for n in 0..10_000 {
        let mut t = task(n, "echo");
        t.status = TaskStatus::Succeeded;
        t.output = Some(json!(n as u64).into());
        book.upsert(t);
    }
    assert_eq!(book.len(), KEEP_FINISHED);
    assert_eq!(book.visible(Filter::Active, 10).1, 0);
}

#[wasm_bindgen_test]
async fn list_is_keyed_newest_first_and_progress_touches_one_row() {
    let el = host();
    let live = Live::new();
    let _handle = leptos::mount::mount_to(el.clone(), move || {
        provide_context(live);
        view! { <TaskList/> }
    });
    let (a, b) = (task(1, "primes"), task(2, "echo"));
    live.upsert(a.clone());
    live.upsert(b.clone());
    tick(100).await;
    let rows = all(&el, "li.task");
    let ids: Vec<_> = rows
        .iter()
        .map(|r| r.get_attribute("data-task-id").unwrap())
        .collect();
    assert_eq!(ids, [b.id.to_string(), a.id.to_string()], "newest first");

    // `a` starts and reports progress: its row changes, the other row's
    // element is untouched and the list keeps the same nodes.
    let other_before = rows[0].inner_html();
    live.apply_status(StatusEvent {
        task_id: a.id,
        status: TaskStatus::Running,
        attempt: 1,
        worker: Some(WorkerId::from("local-1")),
    });
    live.apply_progress(ProgressEvent {
        task_id: a.id,
        done: 3,
        total: 4,
        message: None,
    });
    tick(100).await;
    let after = all(&el, "li.task");
    assert_eq!(after.len(), 2);
    assert_eq!(
        after[1].get_attribute("data-status").as_deref(),
        Some("running")
    );
    let bar = after[1]
        .query_selector("progress")
        .unwrap()
        .expect("a progress bar");
    assert_eq!(bar.get_attribute("value").as_deref(), Some("3"));
    assert_eq!(
        after[1]
            .query_selector(".progress-text")
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap(),
        "75%"
    );
    assert!(
        after[0].is_same_node(Some(&rows[0])),
        "the other row was not re-created"
    );
    assert_eq!(after[0].inner_html(), other_before);

    // The result: output pretty-printed, cancel button gone, filters count it.
    let mut done = a.clone();
    done.status = TaskStatus::Succeeded;
    done.attempt = 1;
    done.output = Some(json!({"count": 4}).into());
    done.finished_at = Some(Timestamp::now());
    live.upsert(done);
    tick(100).await;
    let row = &all(&el, "li.task")[1];
    assert_eq!(
        row.query_selector("pre.output")
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap(),
        "{\n  \"count\": 4\n}"
    );
    assert!(row.query_selector("button.cancel").unwrap().is_none());
    assert!(
        all(&el, "li.task")[0]
            .query_selector("button.cancel")
            .unwrap()
            .is_some()
    );
    let count = |f: &str| {
        el.query_selector(&format!("button.filter[data-filter={f}] .count"))
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap()
    };
    assert_eq!(
        (count("all"), count("active"), count("succeeded")),
        ("2".into(), "1".into(), "1".into())
    );

    // Filtering shows only matching rows.
    let succeeded: HtmlElement = el
        .query_selector("button.filter[data-filter=succeeded]")
        .unwrap()
        .unwrap()
        .unchecked_into();
    succeeded.click();
    tick(100).await;
    let rows = all(&el, "li.task");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get_attribute("data-task-id").unwrap(),
        a.id.to_string()
    );
    el.remove();
}

#[wasm_bindgen_test]
async fn submit_panel_shows_field_errors_and_per_kind_fields() {
    let el = host();
    let _handle = leptos::mount::mount_to(el.clone(), move || {
        provide_context(Live::new());
        provide_context(Kinds(Resource::new(
            || (),
            |_| async { vec!["echo".to_owned(), "primes".to_owned(), "sha256".to_owned()] },
        )));
        view! { <SubmitPanel/> }
    });
    tick(50).await;
    let options: Vec<_> = all(&el, "#kind option")
        .iter()
        .map(|o| o.text_content().unwrap())
        .collect();
    assert_eq!(
        options,
        ["echo", "primes", "sha256"],
        "kinds come from the server"
    );
    // echo: free JSON in the raw editor.
    assert!(el.query_selector("textarea#input").unwrap().is_some());

    // primes: a number field instead.
    let select: web_sys::HtmlSelectElement = el
        .query_selector("#kind")
        .unwrap()
        .unwrap()
        .unchecked_into();
    select.set_value("primes");
    select
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    tick(50).await;
    assert!(el.query_selector("textarea#input").unwrap().is_none());
    let limit: web_sys::HtmlInputElement = el
        .query_selector("#field-limit")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!(limit.type_(), "number");
    assert_eq!(limit.value(), "1000000");

    // A bad value is refused next to its field, before anything is sent.
    limit.set_value("12x");
    limit
        .dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    let form: web_sys::HtmlFormElement = el
        .query_selector("#submit")
        .unwrap()
        .unwrap()
        .unchecked_into();
    let init = web_sys::EventInit::new();
    init.set_cancelable(true);
    form.dispatch_event(&web_sys::Event::new_with_event_init_dict("submit", &init).unwrap())
        .unwrap();
    tick(50).await;
    let error = el
        .query_selector("#error-limit")
        .unwrap()
        .unwrap()
        .text_content()
        .unwrap();
    assert_eq!(error, "limit must be an integer 0..=10000000000");
    assert_eq!(limit.get_attribute("aria-invalid").as_deref(), Some("true"));
    el.remove();
}

#[wasm_bindgen_test]
async fn chart_draws_the_last_minute_of_stats() {
    let el = host();
    let live = Live::new();
    let _handle = leptos::mount::mount_to(el.clone(), move || {
        provide_context(live);
        view! { <Chart/> }
    });
    let t0 = Timestamp::now().millis();
    live.history.set(
        [(t0 - 30_000, 2.0), (t0 - 15_000, 8.0), (t0, 4.0)]
            .into_iter()
            .collect(),
    );
    tick(20).await;
    let points = el
        .query_selector("polyline")
        .unwrap()
        .unwrap()
        .get_attribute("points")
        .unwrap();
    // x: 30 s ago is the middle; y: 8/s is the top of a 0..10 axis.
    assert_eq!(points, "300.0,128.0 450.0,32.0 600.0,96.0");
    assert!(el.text_content().unwrap().contains("max 10 /s"));
    el.remove();
}

#[wasm_bindgen_test]
async fn pending_rows_count_down_and_name_what_they_wait_for() {
    let el = host();
    let live = Live::new();
    let _handle = leptos::mount::mount_to(el.clone(), move || {
        provide_context(live);
        view! { <TaskList/> }
    });
    let first = task(1, "sleep");
    let now = Timestamp::now();
    let mut later = task(2, "echo");
    later.status = TaskStatus::Scheduled;
    later.run_at = Some(now.plus_millis(3_500));
    let mut waits = task(3, "echo");
    waits.status = TaskStatus::Waiting;
    waits.after = vec![first.id, later.id];
    for t in [first.clone(), later.clone(), waits.clone()] {
        live.upsert(t);
    }
    tick(100).await;
    let row = |id: TaskId| {
        el.query_selector(&format!("li.task[data-task-id='{id}']"))
            .unwrap()
            .unwrap()
    };
    let text = |e: &Element, sel: &str| {
        e.query_selector(sel)
            .unwrap()
            .map(|n| n.text_content().unwrap())
    };
    assert_eq!(
        text(&row(later.id), ".countdown time").as_deref(),
        Some("in 4 s")
    );
    assert_eq!(text(&row(later.id), ".times"), None, "no queued time yet");
    // The page's clock ticks: the countdown follows, with no new data.
    live.now.set(now.millis() + 2_000);
    tick(20).await;
    assert_eq!(
        text(&row(later.id), ".countdown time").as_deref(),
        Some("in 2 s")
    );
    live.now.set(now.millis() + 4_000);
    tick(20).await;
    assert_eq!(
        text(&row(later.id), ".countdown time").as_deref(),
        Some("now")
    );

    let links: Vec<_> = all(&row(waits.id), ".waits a")
        .iter()
        .map(|a| a.get_attribute("href").unwrap())
        .collect();
    assert_eq!(
        links,
        [
            format!("/tasks/{}", first.id),
            format!("/tasks/{}", later.id)
        ]
    );
    assert_eq!(
        text(&row(waits.id), ".waits").unwrap(),
        format!(
            "waits for {} (queued), {} (scheduled)",
            &first.id.to_string()[28..],
            &later.id.to_string()[28..]
        )
    );
    let count = |f: &str| text(&el, &format!("button.filter[data-filter={f}] .count")).unwrap();
    assert_eq!(
        (count("active"), count("scheduled"), count("waiting")),
        ("3".into(), "1".into(), "1".into())
    );
    el.remove();
}

fn schedule(name: &str, paused: bool) -> Schedule {
    Schedule {
        name: name.into(),
        cron: "0 1 * * *".into(),
        timezone: "UTC".into(),
        task: TaskSpec::new("echo", json!({"n": 1})).to_json(),
        paused,
        next_run_at: Some(Timestamp::now().plus_millis(65_000)),
        last_run_at: None,
        last_task_id: None,
    }
}

#[wasm_bindgen_test]
async fn schedules_table_follows_the_live_list_and_confirms_deletes() {
    let el = host();
    let live = Live::new();
    let _handle = leptos::mount::mount_to(el.clone(), move || {
        provide_context(live);
        view! { <ScheduleTable first=Some(vec![schedule("a", false)])/> }
    });
    tick(20).await;
    let names = || {
        all(&el, "tbody tr")
            .iter()
            .map(|r| r.get_attribute("data-schedule").unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(), ["a"], "the server's list until the live one comes");
    let next = el
        .query_selector("tr[data-schedule=a] td.next .countdown")
        .unwrap()
        .unwrap()
        .text_content()
        .unwrap();
    assert_eq!(next, "in 1 m 05 s");

    live.schedules
        .set(Some(vec![schedule("a", false), schedule("b", false)]));
    tick(20).await;
    assert_eq!(names(), ["a", "b"]);
    let toggle = el
        .query_selector("tr[data-schedule=b] button.toggle")
        .unwrap()
        .unwrap();
    assert_eq!(toggle.text_content().unwrap(), "Pause b");

    // Paused by someone else: the row says so, its buttons stay the same.
    live.schedules
        .set(Some(vec![schedule("a", false), schedule("b", true)]));
    tick(20).await;
    let row_b = el.query_selector("tr[data-schedule=b]").unwrap().unwrap();
    assert_eq!(row_b.get_attribute("data-paused").as_deref(), Some("true"));
    let same = row_b.query_selector("button.toggle").unwrap().unwrap();
    assert!(same.is_same_node(Some(&toggle)));
    assert_eq!(same.text_content().unwrap(), "Resume b");
    assert!(row_b.query_selector(".countdown").unwrap().is_none());

    // Delete asks first; Keep takes it back.
    let click = |e: &Element, sel: &str| {
        e.query_selector(sel)
            .unwrap()
            .unwrap()
            .unchecked_into::<HtmlElement>()
            .click()
    };
    let confirm_shown = |e: &Element| {
        !e.query_selector(".confirm")
            .unwrap()
            .unwrap()
            .has_attribute("hidden")
    };
    assert!(!confirm_shown(&row_b));
    click(&row_b, "button.delete");
    tick(20).await;
    assert!(confirm_shown(&row_b));
    click(&row_b, "button.keep");
    tick(20).await;
    assert!(!confirm_shown(&row_b));

    live.schedules.set(Some(vec![schedule("a", false)]));
    tick(20).await;
    assert_eq!(names(), ["a"]);
    live.schedules.set(Some(Vec::new()));
    tick(20).await;
    assert!(names().is_empty());
    assert_eq!(
        el.query_selector("p.empty")
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap(),
        "No schedules yet."
    );
    el.remove();
}

/// The trimmed text of the first `selector` under `root`.
fn text(root: &Element, selector: &str) -> String {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no {selector}"))
        .text_content()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn stats(kinds: Vec<KindStats>) -> Stats {
    Stats {
        scheduled: 0,
        waiting: 0,
        queued: 0,
        running: 0,
        succeeded: 0,
        failed: 0,
        cancelled: 0,
        timed_out: 0,
        workers: Vec::new(),
        nodes: Vec::new(),
        throughput_per_s: 0.0,
        kinds,
        at: Timestamp::now(),
    }
}

fn kind(name: &str, paused: bool, queued: u64, run_p50: Option<f64>) -> KindStats {
    KindStats {
        kind: name.into(),
        paused,
        queued,
        running: 0,
        wait_ms: Latency {
            count: 2,
            p50: Some(0.4),
            p95: Some(12.0),
            p99: Some(1_500.0),
        },
        run_ms: Latency {
            count: u64::from(run_p50.is_some()),
            p50: run_p50,
            p95: run_p50,
            p99: run_p50,
        },
    }
}

#[wasm_bindgen_test]
async fn kinds_table_shows_each_kind_its_latencies_and_whether_it_is_paused() {
    let el = host();
    let live = Live::new();
    let _handle = leptos::mount::mount_to(el.clone(), move || {
        provide_context(live);
        view! { <KindsTable/> }
    });
    live.stats.set(Some(stats(vec![
        kind("echo", false, 3, Some(4.0)),
        kind("sleep", true, 7, None),
    ])));
    tick(50).await;
    assert_eq!(
        text(&el, r#"tr[data-kind="echo"] td.wait"#),
        "0.4 ms / 12 ms / 1.5 s"
    );
    assert_eq!(
        text(&el, r#"tr[data-kind="echo"] td.run"#),
        "4.0 ms / 4.0 ms / 4.0 ms"
    );
    assert_eq!(text(&el, r#"tr[data-kind="sleep"] td.run"#), "– / – / –");
    assert_eq!(text(&el, r#"tr[data-kind="sleep"] td.queued"#), "7");
    let sleep = el
        .query_selector(r#"tr[data-kind="sleep"]"#)
        .unwrap()
        .unwrap();
    assert_eq!(sleep.get_attribute("data-paused").as_deref(), Some("true"));
    assert!(text(&el, r#"tr[data-kind="sleep"] button.toggle"#).starts_with("Resume"));
    assert!(text(&el, r#"tr[data-kind="echo"] button.toggle"#).starts_with("Pause"));

    // A push that resumes `sleep` and bumps `echo`'s queue updates those
    // cells; the rows (and their buttons) stay the same elements.
    let button = el
        .query_selector(r#"tr[data-kind="sleep"] button.toggle"#)
        .unwrap()
        .unwrap();
    live.stats.set(Some(stats(vec![
        kind("echo", false, 5, Some(4.0)),
        kind("sleep", false, 7, None),
    ])));
    tick(50).await;
    assert_eq!(text(&el, r#"tr[data-kind="echo"] td.queued"#), "5");
    assert_eq!(sleep.get_attribute("data-paused").as_deref(), Some("false"));
    assert!(sleep.is_connected() && button.is_connected());
    assert!(text(&el, r#"tr[data-kind="sleep"] button.toggle"#).starts_with("Pause"));
    el.remove();
}
