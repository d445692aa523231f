//! v1.1 scheduling in cluster mode, across real nodes (see `cluster` for
//! the services they need): delays and retries wait in the database and
//! any node runs them at their time.

use std::collections::HashMap;
use std::time::Duration;

use app::{ErrorCode, StatusEvent, Task, TaskId, TaskSpec, TaskStatus, Timestamp};
use serde_json::json;
use taskwire::client::Push;

use crate::cluster::{Cluster, node_id};
use crate::helpers::{WAIT, result_of, signal, spec};

/// `spec` run no earlier than `ms` from now.
fn delayed(spec: TaskSpec, ms: u64) -> TaskSpec {
    TaskSpec {
        delay_ms: Some(ms),
        ..spec
    }
}

/// Milliseconds from `from` to `to`.
fn ms_between(from: Timestamp, to: Timestamp) -> i64 {
    to.millis() - from.millis()
}

/// Every push about `ids` until each has its `result`: the `status`
/// pushes with when they came, and the results.
async fn follow(
    client: &mut taskwire::client::Client,
    ids: &[TaskId],
) -> (Vec<(StatusEvent, Timestamp)>, HashMap<TaskId, Task>) {
    let (mut statuses, mut results) = (Vec::new(), HashMap::new());
    while results.len() < ids.len() {
        match client.next_push_within(WAIT).await.expect("pushes in time") {
            Push::Status(ev) if ids.contains(&ev.task_id) => {
                statuses.push((ev, Timestamp::now()));
            }
            Push::Result(task) if ids.contains(&task.id) => {
                assert!(results.insert(task.id, *task).is_none(), "a second result");
            }
            _ => {}
        }
    }
    (statuses, results)
}

#[tokio::test]
async fn delayed_tasks_submitted_on_one_node_run_on_another_at_their_time() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let back_id = node_id(&back).await;
    let mut client = front.client().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let task = client
            .submit(&delayed(spec("echo", json!(i)), 800 + 150 * i))
            .await
            .expect("acked");
        assert_eq!(task.status, TaskStatus::Scheduled);
        assert_eq!(
            ms_between(task.created_at, task.run_at.unwrap()),
            800 + 150 * i as i64
        );
        ids.push(task.id);
    }
    let stats = back.stats().await;
    assert_eq!((stats.scheduled, stats.queued), (5, 0), "{stats:?}");

    let (statuses, results) = follow(&mut client, &ids).await;
    for id in &ids {
        let task = &results[id];
        assert_eq!(task.status, TaskStatus::Succeeded);
        let worker = task.worker.as_ref().unwrap().to_string();
        assert!(worker.starts_with(&format!("{back_id}/")), "{worker}");
        let run_at = task.run_at.expect("run_at is kept");
        let mine: Vec<_> = statuses
            .iter()
            .filter(|(ev, _)| ev.task_id == *id)
            .collect();
        let order: Vec<TaskStatus> = mine.iter().map(|(ev, _)| ev.status).collect();
        assert_eq!(order, [TaskStatus::Queued, TaskStatus::Running]);
        assert!(mine[0].1 >= run_at, "queued before its time");
        // Promoted by a timer, not by the 200 ms poll: started (by the
        // database's clock, on the other node) within 100 ms of its time.
        let late = ms_between(run_at, task.started_at.unwrap());
        assert!((0..=100).contains(&late), "started {late} ms after run_at");
    }
    let stats = front.stats().await;
    assert_eq!((stats.scheduled, stats.succeeded), (0, 5), "{stats:?}");
    drop((client, front, back));
    cluster.drop().await;
}

#[tokio::test]
async fn a_failing_attempt_is_retried_after_its_backoff_until_the_last() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let mut client = front.client().await;
    let task = client
        .submit(&TaskSpec {
            retry_on_failure: true,
            backoff_ms: 300,
            max_attempts: 3,
            ..spec("fail", json!({"message": "flaky"}))
        })
        .await
        .expect("acked");
    let mut pushes = Vec::new();
    let mut first_retry_at = None;
    let result = loop {
        match client.next_push_within(WAIT).await.expect("pushes in time") {
            Push::Status(ev) => {
                pushes.push((ev.status, ev.attempt, Timestamp::now()));
                if ev.status == TaskStatus::Scheduled && ev.attempt == 1 {
                    // Waiting in the database, as any node reads it.
                    let read = read_on(&back.url, task.id).await;
                    assert_eq!((read.status, read.attempt), (TaskStatus::Scheduled, 1));
                    assert_eq!(read.worker, None);
                    let wait = ms_between(Timestamp::now(), read.run_at.unwrap());
                    assert!(wait <= 360, "backoff 300 ms ±20 %, {wait} ms left");
                    first_retry_at = read.run_at;
                }
            }
            Push::Result(done) => break *done,
            _ => {}
        }
    };
    let order: Vec<(TaskStatus, u32)> = pushes.iter().map(|(s, a, _)| (*s, *a)).collect();
    use TaskStatus::{Queued, Running, Scheduled};
    assert_eq!(
        order,
        [
            (Running, 1),
            (Scheduled, 1),
            (Queued, 1),
            (Running, 2),
            (Scheduled, 2),
            (Queued, 2),
            (Running, 3)
        ]
    );
    // Queued at its time, by a timer.
    let late = ms_between(first_retry_at.unwrap(), pushes[2].2);
    assert!((0..=150).contains(&late), "queued {late} ms after run_at");
    // The second backoff doubled: 600 ms -20 % at least (less what a push
    // takes).
    let waited = ms_between(pushes[4].2, pushes[5].2);
    assert!(waited >= 440, "second backoff {waited} ms");
    assert_eq!(result.run_at.map(|at| at <= pushes[5].2), Some(true));
    assert_eq!((result.status, result.attempt), (TaskStatus::Failed, 3));
    assert_eq!(result.error.map(|e| e.code), Some(ErrorCode::TaskFailed));
    let stats = back.stats().await;
    assert_eq!((stats.scheduled, stats.failed), (0, 1), "{stats:?}");
    drop((client, front, back));
    cluster.drop().await;
}

/// `GET /tasks/{id}` on the node at `url`.
async fn read_on(url: &str, id: TaskId) -> Task {
    reqwest::get(format!("{url}/tasks/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_task_that_came_due_while_no_node_was_up_runs_when_one_starts() {
    let cluster = Cluster::new().await;
    let mut gone = cluster.node_process(&["--workers", "0"]).await;
    let task = gone
        .client()
        .await
        .submit(&delayed(spec("echo", json!("late")), 300))
        .await
        .expect("acked");
    assert_eq!(task.status, TaskStatus::Scheduled);
    assert!(signal(gone.pid(), libc::SIGKILL));
    let _ = gone.child.wait().await;
    let run_at = task.run_at.unwrap();
    while ms_between(run_at, Timestamp::now()) < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Timestamp::now();
    let node = cluster.node(&["--workers", "1"]).await;
    let mut client = node.client().await;
    let now = client.subscribe(task.id).await.expect("subscribed");
    let done = match now.status.is_final() {
        true => now,
        false => result_of(&mut client, task.id).await,
    };
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.output, Some(json!("late")));
    assert!(
        done.started_at.unwrap() >= started,
        "ran only once a node was up"
    );
    drop((client, node, gone));
    cluster.drop().await;
}

#[tokio::test]
async fn a_scheduled_task_is_counted_and_cancelled_from_any_node() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let mut submitter = front.client().await;
    let task = submitter
        .submit(&delayed(spec("echo", json!(1)), 60_000))
        .await
        .expect("acked");
    assert_eq!(back.stats().await.scheduled, 1);

    let other = back.client().await;
    let cancelled = other.cancel(task.id).await.expect("cancel acked");
    assert_eq!(
        (cancelled.status, cancelled.attempt),
        (TaskStatus::Cancelled, 0)
    );
    let pushed = result_of(&mut submitter, task.id).await;
    assert_eq!(pushed, cancelled, "the submitter's room gets the result");
    let stats = front.stats().await;
    assert_eq!((stats.scheduled, stats.cancelled), (0, 1), "{stats:?}");
    drop((submitter, other, front, back));
    cluster.drop().await;
}
