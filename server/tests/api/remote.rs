//! Remote workers over the `/worker` namespace, run by `taskwire
//! remote-worker` against a server with no local workers.

use app::TaskStatus;
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

#[tokio::test]
async fn a_remote_worker_runs_jobs_respects_concurrency_and_cancel() {
    let server = TestServer::start(&["--workers", "0"]).await;
    let _rw = remote_worker(&server, "rw", "echo,sleep", 2, None);
    let workers = server.wait_workers(1).await;
    assert!(
        workers[0].remote && workers[0].id.0.starts_with("rw#"),
        "{workers:?}"
    );

    let mut c = server.client().await;
    let t = c
        .submit(&spec("echo", json!({"via": "remote"})))
        .await
        .unwrap();
    let done = result_of(&mut c, t.id).await;
    assert_eq!(done.output, Some(app::Json::from(json!({"via": "remote"}))));
    assert!(done.worker.unwrap().0.starts_with("rw#"));

    // Three sleeps, concurrency 2: the third starts after one has finished.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            c.submit(&spec("sleep", json!({"ms": 300})))
                .await
                .unwrap()
                .id,
        );
    }
    // In any order: the two first sleeps race each other.
    let mut results = std::collections::HashMap::new();
    while results.len() < ids.len() {
        let t = push_where(&mut c, |p| match p {
            Push::Result(t) if ids.contains(&t.id) => Some(t),
            _ => None,
        })
        .await;
        results.insert(t.id, *t);
    }
    let finished: Vec<_> = ids.iter().map(|id| results[id].clone()).collect();
    let third_start = finished[2].started_at.unwrap();
    let first_end = finished[..2]
        .iter()
        .map(|t| t.finished_at.unwrap())
        .min()
        .unwrap();
    assert!(third_start >= first_end, "more than 2 jobs at once");

    // Cancel a running remote job.
    let t = c
        .submit(&spec("sleep", json!({"ms": 600_000})))
        .await
        .unwrap();
    push_where(&mut c, |p| {
        matches!(p, Push::Status(ref s) if s.task_id == t.id && s.status == TaskStatus::Running)
            .then_some(())
    })
    .await;
    assert_eq!(c.cancel(t.id).await.unwrap().status, TaskStatus::Cancelled);
    // Its slot is free again: two more jobs run at once.
    let a = c.submit(&spec("echo", json!(1))).await.unwrap();
    assert_eq!(
        result_of(&mut c, a.id).await.output,
        Some(app::Json::from(json!(1)))
    );
}

#[tokio::test]
async fn a_lost_remote_worker_puts_its_job_back_in_the_queue() {
    let server = TestServer::start(&["--workers", "0"]).await;
    let mut first = remote_worker(&server, "first", "echo,sleep", 1, None);
    server.wait_workers(1).await;
    let mut c = server.client().await;
    let t = c.submit(&spec("sleep", json!({"ms": 500}))).await.unwrap();
    push_where(&mut c, |p| {
        matches!(p, Push::Status(ref s) if s.task_id == t.id && s.status == TaskStatus::Running)
            .then_some(())
    })
    .await;
    first.kill().await.unwrap();
    let back = push_where(&mut c, |p| match p {
        Push::Status(s) if s.task_id == t.id => Some(s),
        _ => None,
    })
    .await;
    assert_eq!((back.status, back.attempt), (TaskStatus::Queued, 1));
    let _second = remote_worker(&server, "second", "echo,sleep", 1, None);
    let done = result_of(&mut c, t.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.attempt, 2);
    assert!(done.worker.unwrap().0.starts_with("second#"));
}
