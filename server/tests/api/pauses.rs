//! Pausing and resuming a kind (v1.1), `stats.kinds`, and `/metrics`,
//! on the in-memory and the durable store (cluster mode: see
//! `cluster_pauses`).

use app::{ErrorCode, KindInfo, KindStats, Task, TaskStatus};
use reqwest::StatusCode;
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

/// `POST /kinds/{kind}/{verb}`: the status and the body.
pub async fn set_kind(
    server: &TestServer,
    kind: &str,
    verb: &str,
) -> (StatusCode, serde_json::Value) {
    let mut req = reqwest::Client::new().post(server.at(&format!("/kinds/{kind}/{verb}")));
    if let Some(token) = &server.token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    (res.status(), res.json().await.unwrap())
}

/// `GET /kinds`.
pub async fn kinds(server: &TestServer) -> Vec<KindInfo> {
    reqwest::get(server.at("/kinds"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn get_task(server: &TestServer, id: app::TaskId) -> Task {
    reqwest::get(server.at(&format!("/tasks/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `stats` pushes on `c` (in the dashboard room) until one has a line
/// for `kind` that `pick` accepts.
pub async fn kind_line_where(
    c: &mut taskwire::client::Client,
    kind: &str,
    mut pick: impl FnMut(&KindStats) -> bool,
) -> KindStats {
    push_where(c, |p| match p {
        Push::Stats(s) => s.kinds.into_iter().find(|k| k.kind == kind && pick(k)),
        _ => None,
    })
    .await
}

/// Pause, submit, see it stay queued, resume, get its result: on `flags`'
/// store.
async fn pause_then_resume(flags: &[&str]) {
    let server = TestServer::start(flags).await;
    let mut c = server.client().await;
    c.dashboard().await.unwrap();
    let (status, body) = set_kind(&server, "sleep", "pause").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"kind": "sleep", "paused": true}));
    let held = c.submit(&spec("sleep", json!({"ms": 1}))).await.unwrap();
    let other = c.submit(&spec("echo", json!(1))).await.unwrap();
    assert_eq!(
        c.wait_result(other.id, |_| {}).await.unwrap().status,
        TaskStatus::Succeeded
    );
    assert_eq!(get_task(&server, held.id).await.status, TaskStatus::Queued);
    let line = kind_line_where(&mut c, "sleep", |k| k.queued == 1).await;
    assert!(line.paused);
    assert_eq!(line.running, 0);
    let listed = kinds(&server).await;
    let sleep = listed.iter().find(|k| k.kind == "sleep").unwrap();
    assert!(sleep.paused);
    assert!(
        listed
            .iter()
            .filter(|k| k.kind != "sleep")
            .all(|k| !k.paused)
    );
    // Pausing twice changes nothing.
    assert_eq!(set_kind(&server, "sleep", "pause").await.0, StatusCode::OK);
    let (status, body) = set_kind(&server, "sleep", "resume").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"kind": "sleep", "paused": false}));
    let done = c.wait_result(held.id, |_| {}).await.unwrap();
    assert_eq!(done.output, Some(app::Json::from(json!({"slept_ms": 1}))));
    let line = kind_line_where(&mut c, "sleep", |k| !k.paused && k.run_ms.count == 1).await;
    assert_eq!((line.queued, line.running, line.wait_ms.count), (0, 0, 1));
}

#[tokio::test]
async fn a_paused_kind_waits_until_resumed_in_memory() {
    pause_then_resume(&[]).await;
}

#[tokio::test]
async fn a_paused_kind_waits_until_resumed_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    pause_then_resume(&["--data-dir", dir.path().to_str().unwrap()]).await;
}

#[tokio::test]
async fn a_pause_survives_a_restart_of_the_durable_store() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--data-dir", dir.path().to_str().unwrap()];
    let mut first = TestServer::start_process(&flags).await;
    assert_eq!(set_kind(&first, "echo", "pause").await.0, StatusCode::OK);
    let c = first.client().await;
    let held = c.submit(&spec("echo", json!("later"))).await.unwrap();
    drop(c);
    first.child.kill().await.unwrap();

    let server = TestServer::start(&flags).await;
    let echo = kinds(&server)
        .await
        .into_iter()
        .find(|k| k.kind == "echo")
        .unwrap();
    assert!(echo.paused, "the pause was kept");
    assert_eq!(get_task(&server, held.id).await.status, TaskStatus::Queued);
    let mut c = server.client().await;
    c.subscribe(held.id).await.unwrap();
    assert_eq!(set_kind(&server, "echo", "resume").await.0, StatusCode::OK);
    let done = c.wait_result(held.id, |_| {}).await.unwrap();
    assert_eq!(done.output, Some(app::Json::from(json!("later"))));
}

#[tokio::test]
async fn an_unknown_kind_is_404_and_the_routes_need_the_token() {
    let server = TestServer::start(&["--token", "s3cret"]).await;
    let (status, body) = set_kind(&server, "nope", "pause").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], json!("unknown_kind"));
    let (status, _) = set_kind(&server, "nope", "resume").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for verb in ["pause", "resume"] {
        let res = reqwest::Client::new()
            .post(server.at(&format!("/kinds/echo/{verb}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(res).await, ErrorCode::Unauthorized);
    }
    assert_eq!(set_kind(&server, "echo", "pause").await.0, StatusCode::OK);
}

/// The line of `text` for `series` (name and labels), as a number.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn metrics_count_what_ran_by_kind() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    for i in 0..3 {
        let t = c.submit(&spec("echo", json!(i))).await.unwrap();
        c.wait_result(t.id, |_| {}).await.unwrap();
    }
    let mut failed = Vec::new();
    for _ in 0..2 {
        let t = c
            .submit(&spec("fail", json!({"message": "no"})))
            .await
            .unwrap();
        failed.push(c.wait_result(t.id, |_| {}).await.unwrap());
    }
    // A retry of a failed task, and two tasks held by a pause.
    let res = reqwest::Client::new()
        .post(server.at(&format!("/tasks/{}/retry", failed[0].id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let retry: Task = res.json().await.unwrap();
    final_of(&mut c, retry.id).await;
    assert_eq!(set_kind(&server, "sleep", "pause").await.0, StatusCode::OK);
    for _ in 0..2 {
        c.submit(&spec("sleep", json!({"ms": 1}))).await.unwrap();
    }
    let text = metrics_text(&server).await;
    let expect = [
        (
            "taskwire_tasks_finished_total{kind=\"echo\",status=\"succeeded\"}",
            3.0,
        ),
        (
            "taskwire_tasks_finished_total{kind=\"fail\",status=\"failed\"}",
            3.0,
        ),
        (
            "taskwire_task_retries_total{kind=\"fail\",reason=\"manual\"}",
            1.0,
        ),
        ("taskwire_task_wait_seconds_count{kind=\"echo\"}", 3.0),
        ("taskwire_task_run_seconds_count{kind=\"echo\"}", 3.0),
        ("taskwire_task_wait_seconds_count{kind=\"fail\"}", 3.0),
        ("taskwire_task_run_seconds_count{kind=\"fail\"}", 3.0),
        ("taskwire_queue_depth{kind=\"sleep\"}", 2.0),
        ("taskwire_kind_paused{kind=\"sleep\"}", 1.0),
        ("taskwire_tasks{status=\"succeeded\"}", 3.0),
        ("taskwire_tasks{status=\"failed\"}", 3.0),
        ("taskwire_tasks{status=\"queued\"}", 2.0),
        ("taskwire_workers", 2.0),
        ("taskwire_worker_restarts_total", 0.0),
    ];
    for (series, want) in expect {
        assert_eq!(sample(&text, series), Some(want), "{series} in\n{text}");
    }
    // Latencies are histograms with buckets, and the dashboard's counts
    // are the same observations.
    assert!(
        text.contains("taskwire_task_wait_seconds_bucket{kind=\"echo\",le=\"+Inf\"} 3"),
        "{text}"
    );
    let stats = server.stats().await;
    let echo = stats.kinds.iter().find(|k| k.kind == "echo").unwrap();
    assert_eq!((echo.wait_ms.count, echo.run_ms.count), (3, 3));
    assert!(
        text.contains("# TYPE taskwire_task_run_seconds histogram"),
        "{text}"
    );
}
