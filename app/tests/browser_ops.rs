//! Operating pages' components in a real browser (run with the others by
//! `wasm-pack test --headless --chrome app --features csr`): the
//! dashboard's kinds table drawn from `stats.kinds`.

#![cfg(target_arch = "wasm32")]

use app::protocol::{KindStats, Latency, Stats, Timestamp};
use app::ui::Live;
use app::ui::kinds_table::KindsTable;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

fn host() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let el: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&el).unwrap();
    el
}

async fn tick(ms: u64) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

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
}
