//! The task lifecycle over Socket.IO: events in order, rooms, subscribe,
//! cancel, timeout, priority, the dashboard.

use std::time::Duration;

use app::{ErrorCode, TaskStatus};
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

#[tokio::test]
async fn submitter_sees_running_then_result_and_ack_comes_first() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let task = c.submit(&spec("sleep", json!({"ms": 20}))).await.unwrap();
    assert_eq!(
        (task.status, task.attempt, task.worker.clone()),
        (TaskStatus::Queued, 0, None)
    );
    let mut seen = Vec::new();
    loop {
        match c.next_push_within(WAIT).await.expect("push") {
            Push::Status(s) if s.task_id == task.id => {
                assert_eq!(s.status, TaskStatus::Running);
                assert_eq!(s.attempt, 1);
                assert!(s.worker.is_some());
                seen.push("running");
            }
            Push::Progress(_) => {}
            Push::Result(t) if t.id == task.id => {
                assert_eq!(t.status, TaskStatus::Succeeded);
                assert_eq!(t.output, Some(app::Json::from(json!({"slept_ms": 20}))));
                seen.push("result");
                break;
            }
            other => panic!("unexpected push {other:?}"),
        }
    }
    assert_eq!(
        seen,
        ["running", "result"],
        "exactly one status and one result"
    );
    // The room is closed: nothing else arrives for it.
    assert_eq!(c.next_push_within(Duration::from_millis(200)).await, None);
}

#[tokio::test]
async fn only_subscribers_get_a_tasks_pushes() {
    let server = TestServer::start(&[]).await;
    let mut owner = server.client().await;
    let mut watcher = server.client().await;
    let mut stranger = server.client().await;
    let task = owner
        .submit(&spec("sleep", json!({"ms": 300})))
        .await
        .unwrap();
    let snap = watcher.subscribe(task.id).await.unwrap();
    assert!(!snap.status.is_final());
    let a = result_of(&mut owner, task.id).await;
    let b = result_of(&mut watcher, task.id).await;
    assert_eq!(a, b);
    assert_eq!(
        stranger.next_push_within(Duration::from_millis(300)).await,
        None
    );

    // Subscribing after the end: the snapshot, and no extra result.
    let late = stranger.subscribe(task.id).await.unwrap();
    assert_eq!(late, a);
    assert_eq!(
        stranger.next_push_within(Duration::from_millis(300)).await,
        None
    );

    // Unsubscribing stops the pushes.
    let t2 = owner
        .submit(&spec("sleep", json!({"ms": 200})))
        .await
        .unwrap();
    watcher.subscribe(t2.id).await.unwrap();
    watcher.unsubscribe(t2.id).await.unwrap();
    result_of(&mut owner, t2.id).await;
    assert_eq!(
        watcher.next_push_within(Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn cancel_a_running_sleep_stops_it_at_once() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let task = c
        .submit(&spec("sleep", json!({"ms": 600_000})))
        .await
        .unwrap();
    wait_running(&mut c, task.id).await;
    let cancelled = c.cancel(task.id).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(
        cancelled.error.as_ref().map(|e| e.code),
        Some(ErrorCode::Cancelled)
    );
    let result = result_of(&mut c, task.id).await;
    assert_eq!(result.status, TaskStatus::Cancelled);
    assert_eq!(result.output, None);
    // Cancelling again: it is finished.
    let again = c
        .request("cancel", json!({"task_id": task.id}))
        .await
        .unwrap();
    assert_eq!(again["error"]["code"], "already_finished");
}

#[tokio::test]
async fn cancel_a_running_primes_stops_the_workers_cpu() {
    let server = TestServer::start(&["--workers", "1"]).await;
    let mut c = server.client().await;
    let pid = server.stats().await.workers[0].pid.expect("pid");
    let task = c
        .submit(&spec("primes", json!({"limit": 10_000_000_000u64})))
        .await
        .unwrap();
    // Progress means it is computing.
    push_where(&mut c, |p| {
        matches!(p, Push::Progress(ref e) if e.task_id == task.id).then_some(())
    })
    .await;
    assert_eq!(
        c.cancel(task.id).await.unwrap().status,
        TaskStatus::Cancelled
    );
    // The worker goes idle (the task answered `stopped`), same process...
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let w = &server.stats().await.workers[0];
        if w.running == 0 {
            assert_eq!(w.pid, Some(pid), "stopped cooperatively, not killed");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "worker still busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...and burns no more CPU: less than 0.1 s over half a second.
    let before = cpu_ticks(pid).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = cpu_ticks(pid).unwrap();
    assert!(
        after - before < 10,
        "worker kept computing: {before} -> {after} ticks"
    );
    // And the worker takes new work.
    let t = c
        .submit(&spec("primes", json!({"limit": 100})))
        .await
        .unwrap();
    assert_eq!(
        result_of(&mut c, t.id).await.output,
        Some(app::Json::from(json!({"count": 25})))
    );
}

#[tokio::test]
async fn a_task_over_its_timeout_ends_timed_out() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let mut s = spec("sleep", json!({"ms": 60_000}));
    s.timeout_ms = Some(150);
    let task = c.submit(&s).await.unwrap();
    assert_eq!(task.timeout_ms, Some(150));
    let done = result_of(&mut c, task.id).await;
    assert_eq!(done.status, TaskStatus::TimedOut);
    assert_eq!(done.error.map(|e| e.code), Some(ErrorCode::TimedOut));
    assert_eq!(done.attempt, 1, "a timeout is not retried");

    let mut p = spec("primes", json!({"limit": 10_000_000_000u64}));
    p.timeout_ms = Some(300);
    let task = c.submit(&p).await.unwrap();
    assert_eq!(
        result_of(&mut c, task.id).await.status,
        TaskStatus::TimedOut
    );
}

#[tokio::test]
async fn higher_priority_starts_first_fifo_within_a_priority() {
    let server = TestServer::start(&["--workers", "1"]).await;
    let mut c = server.client().await;
    // Occupy the only CPU slot so the rest queue up.
    let blocker = c
        .submit(&spec("sha256", json!({"data": "b", "rounds": 10_000_000})))
        .await
        .unwrap();
    wait_running(&mut c, blocker.id).await;
    let mut ids = Vec::new();
    for (name, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 10), ("e", 5), ("f", -1)] {
        let mut s = spec("sha256", json!({"data": name, "rounds": 1}));
        s.priority = priority;
        ids.push((name, c.submit(&s).await.unwrap().id));
    }
    c.cancel(blocker.id).await.unwrap();
    let mut started = Vec::new();
    while started.len() < ids.len() {
        if let Push::Status(s) = c.next_push_within(WAIT).await.expect("push")
            && s.status == TaskStatus::Running
            && let Some((name, _)) = ids.iter().find(|(_, id)| *id == s.task_id)
        {
            started.push(*name);
        }
    }
    assert_eq!(started, ["d", "b", "e", "a", "c", "f"]);
}

#[tokio::test]
async fn the_dashboard_gets_stats_pushes() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let stats = c.dashboard().await.unwrap();
    assert_eq!(stats.workers.len(), 2);
    let t = c.submit(&spec("echo", json!(1))).await.unwrap();
    result_of(&mut c, t.id).await;
    let pushed = push_where(&mut c, |p| match p {
        Push::Stats(s) if s.succeeded >= 1 => Some(s),
        _ => None,
    })
    .await;
    assert_eq!((pushed.queued, pushed.running, pushed.failed), (0, 0, 0));
    assert_eq!(pushed.workers.iter().map(|w| w.tasks_done).sum::<u64>(), 1);
}

async fn wait_running(c: &mut taskwire::client::Client, id: app::TaskId) {
    push_where(c, |p| match p {
        Push::Status(s) if s.task_id == id && s.status == TaskStatus::Running => Some(()),
        _ => None,
    })
    .await;
}
