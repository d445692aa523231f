//! v1.1 scheduling in cluster mode, across real nodes (see `cluster` for
//! the services they need): delays and retries wait in the database and
//! any node runs them at their time; a key names one task cluster-wide; a
//! task waits for others wherever they run; a concurrency key limits its
//! tasks across every node.

use std::collections::HashMap;
use std::time::Duration;

use app::{
    Deduplicated, ErrorCode, StatusEvent, Task, TaskId, TaskSpec, TaskStatus, Timestamp, events,
};
use serde_json::json;
use taskwire::client::Push;

use crate::cluster::{Cluster, node_id, submit_ids};
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
    let mut lateness = Vec::new();
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
        lateness.push(ms_between(run_at, task.started_at.unwrap()));
    }
    // Promoted by a timer, not by the 200 ms poll: started (by the
    // database's clock, on the other node) within 100 ms of its time. One
    // of the five may be later when the whole suite loads both cores (a
    // claim is a few database round trips), but none by a poll's period.
    lateness.sort_unstable();
    assert!(lateness[0] >= 0, "started before run_at: {lateness:?}");
    assert!(
        lateness[3] <= 100,
        "more than one started late: {lateness:?}"
    );
    assert!(lateness[4] <= 300, "one started far too late: {lateness:?}");
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
    assert_eq!(done.output, Some(app::Json::from(json!("late"))));
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
    // Beyond what a node's timer reaches (about two years): it waits too.
    let far = submitter
        .ack(
            events::TASK,
            json!({"kind": "echo", "run_at": "9999-12-31T23:59:59.999Z"}),
        )
        .await
        .expect("acked")
        .task
        .unwrap();
    assert_eq!(far.status, TaskStatus::Scheduled);
    assert_eq!(back.stats().await.scheduled, 2);
    let read = read_on(&back.url, far.id).await;
    assert_eq!(read, far, "stored as acked");

    let other = back.client().await;
    let cancelled = other.cancel(task.id).await.expect("cancel acked");
    assert_eq!(
        (cancelled.status, cancelled.attempt),
        (TaskStatus::Cancelled, 0)
    );
    let pushed = result_of(&mut submitter, task.id).await;
    assert_eq!(pushed, cancelled, "the submitter's room gets the result");
    let stats = front.stats().await;
    assert_eq!((stats.scheduled, stats.cancelled), (1, 1), "{stats:?}");
    let still = submitter
        .submit(&spec("echo", json!("the nodes run")))
        .await
        .expect("acked");
    assert_eq!(
        result_of(&mut submitter, still.id).await.status,
        TaskStatus::Succeeded
    );
    drop((submitter, other, front, back));
    cluster.drop().await;
}

#[tokio::test]
async fn two_nodes_racing_with_one_key_create_one_task_both_sockets_follow() {
    let cluster = Cluster::new().await;
    let a = cluster.node(&["--workers", "1"]).await;
    let b = cluster.node(&["--workers", "1"]).await;
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    let (mut ids, mut unfinished_a, mut unfinished_b) = (Vec::new(), Vec::new(), Vec::new());
    let mut followed_by_deduplicated = 0;
    for i in 0..20 {
        let key = format!("charge-{i}");
        let (from_a, from_b) = tokio::join!(
            on_a.ack(
                events::TASK,
                json!({"kind": "sleep", "input": {"ms": 300}, "key": key})
            ),
            on_b.ack(
                events::TASK,
                json!({"kind": "sleep", "input": {"ms": 400}, "key": key})
            ),
        );
        let (from_a, from_b) = (from_a.expect("acked"), from_b.expect("acked"));
        let (task_a, task_b) = (from_a.task.unwrap(), from_b.task.unwrap());
        assert_eq!(task_a.id, task_b.id, "one task per key");
        assert_eq!(task_a.input, task_b.input, "the spec of the one created");
        let mut flags = [from_a.deduplicated.clone(), from_b.deduplicated.clone()];
        flags.sort_by_key(|f| f == &Some(Deduplicated::One(true)));
        assert_eq!(
            flags,
            [
                Some(Deduplicated::One(false)),
                Some(Deduplicated::One(true))
            ]
        );
        ids.push(task_a.id);
        // An ack that shows the task finished holds its result: no push.
        let acks = [
            (task_a, from_a.deduplicated, &mut unfinished_a),
            (task_b, from_b.deduplicated, &mut unfinished_b),
        ];
        for (task, deduplicated, unfinished) in acks {
            if !task.status.is_final() {
                unfinished.push(task.id);
                if deduplicated == Some(Deduplicated::One(true)) {
                    followed_by_deduplicated += 1;
                }
            }
        }
    }
    // Both sockets are in each task's room, whichever node created it.
    let (_, mut on_a_results) = follow(&mut on_a, &unfinished_a).await;
    let (_, on_b_results) = follow(&mut on_b, &unfinished_b).await;
    assert!(followed_by_deduplicated > 0, "they run 300 ms at least");
    for (id, task) in &on_b_results {
        assert_eq!(on_a_results.get(id).unwrap_or(task), task);
    }
    on_a_results.extend(on_b_results);
    assert_eq!(on_a_results.len(), 20);
    let stats = b.stats().await;
    assert_eq!(stats.succeeded, 20, "{stats:?}");

    // Finished, within the window: still that task, over HTTP too (200),
    // and a socket asking again is not put in its closed room.
    let http = reqwest::Client::new();
    let again = http
        .post(a.at("/tasks"))
        .json(&json!({"kind": "echo", "key": "charge-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Task>().await.unwrap(), on_a_results[&ids[3]]);
    let fresh = http
        .post(b.at("/tasks"))
        .json(&json!({"kind": "echo", "key": "charge-new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 202);
    let batch = on_b
        .ack(
            events::TASKS,
            json!({"tasks": [{"kind": "echo", "key": "charge-5"}, {"kind": "echo", "input": 1}]}),
        )
        .await
        .expect("acked");
    assert_eq!(
        batch.deduplicated,
        Some(Deduplicated::Each(vec![true, false]))
    );
    let tasks = batch.tasks.unwrap();
    assert_eq!(tasks[0], on_a_results[&ids[5]]);
    // Only the new item's result comes: the finished one is in the ack.
    let (_, results) = follow(&mut on_b, &[tasks[1].id]).await;
    assert_eq!(results.len(), 1);
    assert!(
        on_b.next_push_within(Duration::from_millis(300))
            .await
            .is_none_or(|p| matches!(p, Push::Stats(_)))
    );
    drop((on_a, on_b, a, b));
    cluster.drop().await;
}

#[tokio::test]
async fn a_dependency_finishing_on_another_node_releases_or_fails_what_waits() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let back_id = node_id(&back).await;
    let mut client = front.client().await;
    let first = client
        .submit(&spec("sleep", json!({"ms": 300})))
        .await
        .expect("acked");
    let second = client
        .submit(&TaskSpec {
            after: vec![app::After::Id(first.id)],
            ..spec("echo", json!(2))
        })
        .await
        .expect("acked");
    assert_eq!(second.status, TaskStatus::Waiting);
    assert_eq!(back.stats().await.waiting, 1);
    let (statuses, results) = follow(&mut client, &[first.id, second.id]).await;
    let (first, second) = (&results[&first.id], &results[&second.id]);
    assert_eq!(second.status, TaskStatus::Succeeded);
    assert!(second.started_at.unwrap() >= first.finished_at.unwrap());
    let order: Vec<TaskStatus> = statuses
        .iter()
        .filter(|(ev, _)| ev.task_id == second.id)
        .map(|(ev, _)| ev.status)
        .collect();
    assert_eq!(order, [TaskStatus::Queued, TaskStatus::Running]);
    assert!(
        first
            .worker
            .as_ref()
            .unwrap()
            .to_string()
            .starts_with(&back_id)
    );

    // A failure on the back node fails what waits, down a chain submitted
    // as one batch on the front node; each result reaches the submitter.
    let batch = client
        .ack(
            events::TASKS,
            json!({"tasks": [
                {"kind": "fail", "input": {"message": "no"}},
                {"kind": "echo", "after": ["#0"]},
                {"kind": "echo", "after": ["#1"]},
            ]}),
        )
        .await
        .expect("acked")
        .tasks
        .unwrap();
    let ids: Vec<TaskId> = batch.iter().map(|t| t.id).collect();
    let statuses: Vec<TaskStatus> = batch.iter().map(|t| t.status).collect();
    use TaskStatus::{Failed, Queued, Waiting};
    assert_eq!(statuses, [Queued, Waiting, Waiting]);
    let (_, results) = follow(&mut client, &ids).await;
    for (i, id) in ids.iter().enumerate().skip(1) {
        let task = &results[id];
        assert_eq!((task.status, task.attempt), (Failed, 0));
        let error = task.error.as_ref().unwrap();
        assert_eq!(error.code, ErrorCode::DependencyFailed);
        assert!(error.message.contains(&ids[i - 1].to_string()), "{error:?}");
    }
    // Naming it now: failed at once, in the ack, and its result follows.
    let late = client
        .submit(&TaskSpec {
            after: vec![app::After::Id(ids[0])],
            ..spec("echo", json!(3))
        })
        .await
        .expect("acked");
    assert_eq!(late.status, Failed);
    let pushed = result_of(&mut client, late.id).await;
    assert_eq!(pushed, late);
    let unknown = TaskId(uuid::Uuid::now_v7());
    let refused = client
        .submit(&TaskSpec {
            after: vec![app::After::Id(unknown)],
            ..spec("echo", json!(4))
        })
        .await;
    assert!(
        matches!(&refused, Err(taskwire::client::ClientError::Server(e)) if e.code == ErrorCode::NotFound),
        "{refused:?}"
    );
    let stats = front.stats().await;
    assert_eq!(
        (stats.waiting, stats.failed, stats.succeeded),
        (0, 4, 2),
        "{stats:?}"
    );
    drop((client, front, back));
    cluster.drop().await;
}

#[tokio::test]
async fn a_concurrency_key_limits_its_tasks_across_nodes_and_holds_back_no_other() {
    let cluster = Cluster::new().await;
    // One slot each: three at once are possible, on three nodes.
    let flags = ["--workers", "1", "--io-slots", "1"];
    let (a, b, c) = (
        cluster.node(&flags).await,
        cluster.node(&flags).await,
        cluster.node(&flags).await,
    );
    let mut client = a.client().await;
    let keyed = TaskSpec {
        concurrency_key: Some("customer-7".into()),
        concurrency_limit: 2,
        ..spec("sleep", json!({"ms": 150}))
    };
    let mut ids = submit_ids(&client, &vec![keyed; 8]).await;
    let other = client
        .submit(&spec("sleep", json!({"ms": 10})))
        .await
        .expect("acked");
    ids.push(other.id);
    let (_, results) = follow(&mut client, &ids).await;
    let other = &results[&other.id];
    let mut runs: Vec<&Task> = ids[..8].iter().map(|id| &results[id]).collect();
    runs.sort_by_key(|t| t.started_at);
    // Two at a time, over the three nodes: each run starts once the run
    // two before it ended.
    for (i, run) in runs.iter().enumerate().skip(2) {
        assert!(
            run.started_at.unwrap() >= runs[i - 2].finished_at.unwrap(),
            "three ran at once: {:?}",
            runs.iter()
                .map(|t| (t.started_at, t.finished_at))
                .collect::<Vec<_>>()
        );
    }
    let nodes: std::collections::HashSet<String> = runs
        .iter()
        .map(|t| {
            t.worker
                .as_ref()
                .unwrap()
                .to_string()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(nodes.len() >= 2, "ran on {nodes:?}");
    assert!(
        other.finished_at.unwrap() < runs[4].started_at.unwrap(),
        "the unkeyed task waited for the keyed ones"
    );
    drop((client, a, b, c));
    cluster.drop().await;
}
