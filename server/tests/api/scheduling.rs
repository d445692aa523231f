//! v1.1 scheduling through a real server: a restart (SIGKILL) keeps
//! scheduled, waiting and keyed tasks; a task that came due while the
//! server was down runs at start.

use std::time::Duration;

use app::{Deduplicated, TaskStatus, events};
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

#[tokio::test]
async fn a_restart_keeps_delays_dependencies_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = ["--data-dir", data.as_str(), "--workers", "1"];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    // Finished before the kill, with a key.
    let done = c
        .ack(
            events::TASK,
            json!({"kind": "echo", "input": "once", "key": "k-done"}),
        )
        .await
        .unwrap()
        .task
        .unwrap();
    result_of(&mut c, done.id).await;
    // Comes due while the server is down.
    let due = c
        .submit(&app::TaskSpec {
            delay_ms: Some(300),
            ..spec("echo", json!("due"))
        })
        .await
        .unwrap();
    // Due well after the restart, keyed; and one waiting for it.
    let later = c
        .ack(
            events::TASK,
            json!({"kind": "echo", "input": "later", "delay_ms": 4000, "key": "k-later"}),
        )
        .await
        .unwrap()
        .task
        .unwrap();
    let waits = c
        .ack(
            events::TASK,
            json!({"kind": "echo", "input": "after", "after": [later.id]}),
        )
        .await
        .unwrap()
        .task
        .unwrap();
    assert_eq!(
        (due.status, later.status, waits.status),
        (
            TaskStatus::Scheduled,
            TaskStatus::Scheduled,
            TaskStatus::Waiting
        )
    );
    assert!(signal(server.pid(), libc::SIGKILL));
    let _ = server.child.wait().await;
    drop(c);
    // Restart only once `due` came due, so it did so while nothing ran.
    let due_at = due.run_at.expect("a delayed task has run_at");
    while app::Timestamp::now() <= due_at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let server = TestServer::start(&flags).await;
    let mut c = server.client().await;
    let stats = c.dashboard().await.unwrap();
    assert_eq!((stats.scheduled, stats.waiting), (1, 1), "{stats:?}");
    // Keys came back: both submits get the existing tasks.
    for (key, id, status) in [
        ("k-done", done.id, TaskStatus::Succeeded),
        ("k-later", later.id, TaskStatus::Scheduled),
    ] {
        let ack = c
            .ack(
                events::TASK,
                json!({"kind": "echo", "input": 0, "key": key}),
            )
            .await
            .unwrap();
        let task = ack.task.unwrap();
        assert_eq!((task.id, task.status), (id, status), "{key}");
        assert_eq!(ack.deduplicated, Some(Deduplicated::One(true)));
    }
    // The one that came due meanwhile runs at start.
    let snap = c.subscribe(due.id).await.unwrap();
    let due_done = match snap.status.is_final() {
        true => snap,
        false => result_of(&mut c, due.id).await,
    };
    assert_eq!(due_done.status, TaskStatus::Succeeded);
    assert_eq!(due_done.output, Some(app::Json::from(json!("due"))));
    // The later one keeps its time; what waits for it runs after it.
    c.subscribe(later.id).await.unwrap();
    c.subscribe(waits.id).await.unwrap();
    let later_done = result_of(&mut c, later.id).await;
    assert_eq!(later_done.run_at, later.run_at);
    assert!(later_done.started_at.unwrap() >= later.run_at.unwrap());
    let waits_done = result_of(&mut c, waits.id).await;
    assert_eq!(waits_done.status, TaskStatus::Succeeded);
    assert!(waits_done.started_at.unwrap() >= later_done.finished_at.unwrap());
    // Each ran once.
    assert_eq!((later_done.attempt, waits_done.attempt), (1, 1));
    assert!(
        c.next_push_within(Duration::from_millis(300))
            .await
            .is_none_or(|p| matches!(p, Push::Stats(_)))
    );
}
