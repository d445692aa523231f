//! The worker pool under failure: killed workers, a killed server.

use std::time::{Duration, Instant};

use app::{ErrorCode, TaskStatus};
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

#[tokio::test]
async fn a_killed_busy_worker_is_replaced_and_its_task_retried() {
    let server = TestServer::start(&["--workers", "1"]).await;
    let mut c = server.client().await;
    let old_pid = server.stats().await.workers[0].pid.unwrap();
    let task = c.submit(&spec("sleep", json!({"ms": 400}))).await.unwrap();
    push_where(&mut c, |p| match p {
        Push::Status(s) if s.task_id == task.id && s.status == TaskStatus::Running => Some(()),
        _ => None,
    })
    .await;
    let killed_at = Instant::now();
    assert!(signal(old_pid, libc::SIGKILL));
    // Back to queued (attempt kept), then running again on the new worker.
    let requeued = push_where(&mut c, |p| match p {
        Push::Status(s) if s.task_id == task.id => Some(s),
        _ => None,
    })
    .await;
    assert_eq!(
        (requeued.status, requeued.attempt, requeued.worker),
        (TaskStatus::Queued, 1, None)
    );
    let rerun = push_where(&mut c, |p| match p {
        Push::Status(s) if s.task_id == task.id => Some(s),
        _ => None,
    })
    .await;
    assert_eq!((rerun.status, rerun.attempt), (TaskStatus::Running, 2));
    let done = result_of(&mut c, task.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.attempt, 2);
    let workers = server.wait_workers(1).await;
    assert_eq!(workers.len(), 1, "pool back to size");
    assert_ne!(workers[0].pid, Some(old_pid));
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    let text = metrics_text(&server).await;
    for (series, want) in [
        ("taskwire_worker_restarts_total", 1.0),
        (
            "taskwire_task_retries_total{kind=\"sleep\",reason=\"worker_lost\"}",
            1.0,
        ),
        (
            "taskwire_tasks_finished_total{kind=\"sleep\",status=\"succeeded\"}",
            1.0,
        ),
        ("taskwire_task_run_seconds_count{kind=\"sleep\"}", 1.0),
        ("taskwire_task_wait_seconds_count{kind=\"sleep\"}", 2.0),
    ] {
        let got = crate::pauses::sample(&text, series);
        assert_eq!(got, Some(want), "{series} in\n{text}");
    }
}

#[tokio::test]
async fn a_worker_respawns_within_a_second() {
    let server = TestServer::start(&["--workers", "1"]).await;
    let old_pid = server.stats().await.workers[0].pid.unwrap();
    assert!(signal(old_pid, libc::SIGKILL));
    let killed_at = Instant::now();
    loop {
        let w = server.stats().await.workers;
        if w.len() == 1 && w[0].pid != Some(old_pid) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(1),
            "no new worker within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_task_that_keeps_losing_its_worker_fails_with_worker_lost() {
    let server = TestServer::start(&["--workers", "1"]).await;
    let mut c = server.client().await;
    let mut s = spec("sleep", json!({"ms": 600_000}));
    s.max_attempts = 2;
    let task = c.submit(&s).await.unwrap();
    for attempt in 1..=2 {
        let running = push_where(&mut c, |p| match p {
            Push::Status(s) if s.task_id == task.id && s.status == TaskStatus::Running => Some(s),
            _ => None,
        })
        .await;
        assert_eq!(running.attempt, attempt);
        let pid = server
            .stats()
            .await
            .workers
            .iter()
            .find(|w| Some(&w.id) == running.worker.as_ref())
            .and_then(|w| w.pid)
            .unwrap();
        assert!(signal(pid, libc::SIGKILL));
    }
    let done = result_of(&mut c, task.id).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.error.map(|e| e.code), Some(ErrorCode::WorkerLost));
    assert_eq!(done.attempt, 2);
}

#[tokio::test]
async fn workers_die_with_a_killed_server() {
    let mut server = TestServer::start_process(&["--workers", "2"]).await;
    let pids: Vec<u32> = server
        .stats()
        .await
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    assert!(signal(server.pid(), libc::SIGKILL));
    let _ = server.child.wait().await;
    eventually("workers to exit after the server was killed", || {
        !pids.iter().any(|p| alive(*p))
    })
    .await;
}

#[tokio::test]
async fn sigterm_stops_server_and_workers_cleanly() {
    let mut server = TestServer::start_process(&["--workers", "2"]).await;
    let pids: Vec<u32> = server
        .stats()
        .await
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .collect();
    assert!(signal(server.pid(), libc::SIGTERM));
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    eventually("workers to exit", || !pids.iter().any(|p| alive(*p))).await;
}
