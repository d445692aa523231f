//! Cluster mode against the real services: PostgreSQL at 127.0.0.1:5432
//! (or `TASKWIRE_TEST_DATABASE_URL`) and Redis at 127.0.0.1:6379 (or
//! `TASKWIRE_TEST_REDIS_URL`). Each test makes its own database, dropped
//! afterwards, and its own Redis prefix, and starts real nodes on them.
//!
//! "Exactly once" is checked without waiting for silence: after the tasks
//! under test, the same client waits for the result of one more task run
//! on the same node. A node's pushes reach the other nodes in order, so a
//! second `result` of an earlier task would have come before it.
//!
//! `cluster_faults` breaks the services under such a cluster.

use std::collections::HashMap;
use std::time::Duration;

use app::{ErrorCode, Task, TaskId, TaskSpec, TaskStatus};
use serde_json::json;
use taskwire::client::{Client, ClientError, Push};
use taskwire::cluster::testdb::{TestDatabase, fresh_database, server_url};

use crate::helpers::{ServerProcess, TestServer, WAIT, result_of, signal, spec};

/// The lease the nodes of these tests share: short, so that a killed
/// node's tasks come back quickly.
pub const LEASE_MS: &str = "1000";

pub fn redis_url() -> String {
    std::env::var("TASKWIRE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A database and a Redis prefix of one test's own: the nodes started on
/// them form one cluster.
pub struct Cluster {
    pub db: TestDatabase,
    pub prefix: String,
}

impl Cluster {
    pub async fn new() -> Self {
        let db = fresh_database(&server_url())
            .await
            .expect("a fresh database (is PostgreSQL running?)");
        let uuid = uuid::Uuid::now_v7().simple().to_string();
        let prefix = format!("twcluster-{}", &uuid[uuid.len() - 12..]);
        Self { db, prefix }
    }

    /// The flags of a node of this cluster, then `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--cluster",
            "--database-url",
            &self.db.url,
            "--redis-url",
            &redis_url(),
            "--redis-prefix",
            &self.prefix,
            "--lease-ms",
            LEASE_MS,
        ]
        .map(str::to_owned)
        .into();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// A node in this process.
    pub async fn node(&self, extra: &[&str]) -> TestServer {
        let args = self.args(extra);
        TestServer::start(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }

    /// A node in a process of its own (it can be killed).
    pub async fn node_process(&self, extra: &[&str]) -> ServerProcess {
        let args = self.args(extra);
        TestServer::start_process(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }

    pub async fn drop(self) {
        self.db.drop().await.expect("drop the test database");
    }
}

/// The id of the node listening at `url`, from its own `stats`.
pub async fn node_id(server: &TestServer) -> String {
    let addr = server.url.trim_start_matches("http://");
    let stats = server.stats().await;
    stats
        .nodes
        .iter()
        .find(|n| n.addr == addr)
        .unwrap_or_else(|| panic!("node {addr} not in {:?}", stats.nodes))
        .id
        .clone()
}

/// Submits `specs` in one batch; their ids, in order.
pub async fn submit_ids(client: &Client, specs: &[TaskSpec]) -> Vec<TaskId> {
    let tasks = client.submit_batch(specs).await.expect("batch acked");
    tasks.iter().map(|t| t.id).collect()
}

/// Collects `result` pushes on `client` until every id in `ids` has one,
/// then one more task's (run like the others) to show no second result
/// was on its way; fails on a second result of any task.
async fn results_exactly_once(client: &mut Client, ids: &[TaskId]) -> HashMap<TaskId, Task> {
    let mut results = HashMap::new();
    while results.len() < ids.len() {
        let push = client
            .next_push_within(WAIT)
            .await
            .expect("results in time");
        if let Push::Result(task) = push {
            assert!(ids.contains(&task.id), "a result of an unknown task");
            assert!(
                results.insert(task.id, *task).is_none(),
                "a second result for one task"
            );
        }
    }
    let marker = client
        .submit(&spec("echo", json!("marker")))
        .await
        .expect("marker submitted");
    loop {
        let push = client.next_push_within(WAIT).await.expect("marker in time");
        if let Push::Result(task) = push {
            assert_eq!(task.id, marker.id, "a second result for one task");
            break;
        }
    }
    results
}

#[tokio::test]
async fn a_task_submitted_on_one_node_runs_on_another_and_its_pushes_reach_the_submitter() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let back_id = node_id(&back).await;

    let mut client = front.client().await;
    let specs: Vec<_> = (0..20)
        .map(|i| spec("sha256", json!({"data": format!("d{i}"), "rounds": 1 + i})))
        .collect();
    let tasks = client.submit_batch(&specs).await.expect("batch acked");
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Queued));
    let ids: Vec<TaskId> = tasks.iter().map(|t| t.id).collect();
    let results = results_exactly_once(&mut client, &ids).await;
    for (i, id) in ids.iter().enumerate() {
        let t = &results[id];
        assert_eq!(t.status, TaskStatus::Succeeded);
        assert_eq!(t.attempt, 1);
        let worker = t.worker.as_ref().expect("a worker").to_string();
        assert!(
            worker.starts_with(&format!("{back_id}/local-")),
            "{worker} is not a worker of node {back_id}"
        );
        let expected = (0..=i).fold(format!("d{i}").into_bytes(), |data, _| {
            use sha2::Digest;
            sha2::Sha256::digest(&data).to_vec()
        });
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(t.output, Some(app::Json::from(json!({"hex": hex}))));
    }

    // Both nodes see the whole cluster: two nodes, the back node's worker.
    let stats = front.stats().await;
    assert_eq!(stats.nodes.len(), 2, "{:?}", stats.nodes);
    assert_eq!(stats.succeeded, 21);
    assert!(stats.workers.iter().all(|w| w.node == back_id));
    let read = reqwest::get(front.at(&format!("/tasks/{}", ids[3])))
        .await
        .unwrap()
        .json::<Task>()
        .await
        .unwrap();
    assert_eq!(
        read, results[&ids[3]],
        "a lookup on any node reads the stored task"
    );
    drop((client, front, back));
    cluster.drop().await;
}

#[tokio::test]
async fn subscribing_on_another_node_gets_the_snapshot_then_the_result_or_only_the_result() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1"]).await;
    let submitter = front.client().await;
    let task = submitter
        .submit(&spec("sleep", json!({"ms": 600})))
        .await
        .unwrap();

    // While it runs: the snapshot, then the result in the room.
    let mut follower = back.client().await;
    let snapshot = loop {
        let t = follower.subscribe(task.id).await.expect("subscribed");
        if t.status == TaskStatus::Running {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(snapshot.output, None);
    let done = result_of(&mut follower, task.id).await;
    assert_eq!(done.output, Some(app::Json::from(json!({"slept_ms": 600}))));

    // Once finished, from the node that did not run it: only the ack.
    let mut late = front.client().await;
    let read = late.subscribe(task.id).await.expect("subscribed");
    assert_eq!(read, done);
    let results = results_exactly_once(&mut late, &[]).await;
    assert!(results.is_empty());
    drop((submitter, follower, late, front, back));
    cluster.drop().await;
}

#[tokio::test]
async fn a_cancel_sent_to_one_node_stops_the_work_on_another() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let back = cluster.node(&["--workers", "1", "--io-slots", "1"]).await;
    let mut client = front.client().await;
    let long = client
        .submit(&spec("sleep", json!({"ms": 600_000})))
        .await
        .unwrap();
    loop {
        match client
            .next_push_within(WAIT)
            .await
            .expect("running in time")
        {
            Push::Status(s) if s.task_id == long.id && s.status == TaskStatus::Running => break,
            _ => {}
        }
    }
    let cancelled = client.cancel(long.id).await.expect("cancel acked");
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert_eq!(
        cancelled.error.as_ref().map(|e| e.code),
        Some(ErrorCode::Cancelled)
    );
    let pushed = result_of(&mut client, long.id).await;
    assert_eq!(pushed.status, TaskStatus::Cancelled);

    // The only slot is free again: the work really stopped.
    let next = client
        .submit(&spec("sleep", json!({"ms": 1})))
        .await
        .unwrap();
    let next = result_of(&mut client, next.id).await;
    assert_eq!(next.status, TaskStatus::Succeeded);
    match client.cancel(long.id).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::AlreadyFinished),
        other => panic!("expected already_finished, got {other:?}"),
    }
    // A queued task is cancelled in the database at once.
    let blocker = client
        .submit(&spec("sleep", json!({"ms": 600_000})))
        .await
        .unwrap();
    let queued = client
        .submit(&spec("sleep", json!({"ms": 1})))
        .await
        .unwrap();
    let c = client.cancel(queued.id).await.expect("cancel acked");
    assert_eq!(c.status, TaskStatus::Cancelled);
    client.cancel(blocker.id).await.expect("cancel acked");
    drop((client, front, back));
    cluster.drop().await;
}

#[tokio::test]
async fn two_nodes_racing_for_the_same_tasks_run_each_once() {
    let cluster = Cluster::new().await;
    let a = cluster.node(&["--workers", "1", "--io-slots", "4"]).await;
    let b = cluster.node(&["--workers", "1", "--io-slots", "4"]).await;
    let (a_id, b_id) = (node_id(&a).await, node_id(&b).await);
    let mut on_a = a.client().await;
    let mut on_b = b.client().await;
    let specs: Vec<_> = (0..40)
        .map(|i| spec("sleep", json!({"ms": 10 + i % 5})))
        .collect();
    let from_a: Vec<TaskId> = submit_ids(&on_a, &specs).await;
    let from_b: Vec<TaskId> = submit_ids(&on_b, &specs).await;
    let mut ran_on = HashMap::<String, usize>::new();
    for (client, ids) in [(&mut on_a, &from_a), (&mut on_b, &from_b)] {
        for t in results_exactly_once(client, ids).await.values() {
            assert_eq!(t.status, TaskStatus::Succeeded);
            assert_eq!(t.attempt, 1, "task {} ran more than once", t.id);
            let worker = t.worker.as_ref().unwrap().to_string();
            let node = worker.split('/').next().unwrap().to_owned();
            *ran_on.entry(node).or_default() += 1;
        }
    }
    // Four slots each and 80 tasks: both nodes ran some.
    assert!(ran_on.get(&a_id).is_some_and(|&n| n > 0), "{ran_on:?}");
    assert!(ran_on.get(&b_id).is_some_and(|&n| n > 0), "{ran_on:?}");
    assert_eq!(ran_on.values().sum::<usize>(), 80);
    drop((on_a, on_b, a, b));
    cluster.drop().await;
}

#[tokio::test]
async fn a_node_killed_mid_load_loses_nothing_and_finishes_nothing_twice() {
    let cluster = Cluster::new().await;
    let front = cluster.node(&["--workers", "0"]).await;
    let doomed = cluster
        .node_process(&["--workers", "1", "--io-slots", "16"])
        .await;
    let mut client = front.client().await;
    // Long enough that the node runs 16 at once when it is killed.
    let specs: Vec<_> = (0..120)
        .map(|i| spec("sleep", json!({"ms": 200 + (i % 5) * 50})))
        .collect();
    let ids: Vec<TaskId> = submit_ids(&client, &specs).await;

    // Kill the node that runs them once some results are in, then start
    // another: it takes the killed node's tasks back within the lease.
    let mut results: HashMap<TaskId, Task> = HashMap::new();
    while results.len() < 32 {
        if let Some(Push::Result(t)) = client.next_push_within(WAIT).await {
            assert!(results.insert(t.id, *t).is_none(), "a second result");
        }
    }
    assert!(signal(doomed.pid(), libc::SIGKILL), "the node was killed");
    let killed_at = tokio::time::Instant::now();
    let survivor = cluster.node(&["--workers", "1", "--io-slots", "16"]).await;
    let mut requeued = 0;
    let mut first_requeue = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match client.next_push_within(Duration::from_millis(200)).await {
            Some(Push::Result(t)) => {
                assert!(results.insert(t.id, *t).is_none(), "a second result");
            }
            Some(Push::Status(s)) if s.status == TaskStatus::Queued => {
                requeued += 1;
                first_requeue.get_or_insert_with(|| killed_at.elapsed());
            }
            Some(_) => {}
            None => {
                let stats = front.stats().await;
                if stats.succeeded == ids.len() as u64 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "not every task finished: {stats:?}"
                );
            }
        }
    }
    // Results stored before the count above may still be on their way:
    // they come before one more task's, and none of them twice.
    let marker = client.submit(&spec("echo", json!("marker"))).await.unwrap();
    loop {
        match client.next_push_within(WAIT).await.expect("marker in time") {
            Push::Result(t) if t.id == marker.id => break,
            Push::Result(t) => assert!(results.insert(t.id, *t).is_none(), "a second result"),
            _ => {}
        }
    }
    // A result committed by the killed node but not yet pushed when it died
    // is not pushed again: the client finds it with `subscribe`.
    let mut by_subscribe = 0;
    for id in &ids {
        if !results.contains_key(id) {
            let t = client.subscribe(*id).await.expect("subscribed");
            assert!(t.status.is_final(), "{t:?}");
            results.insert(*id, t);
            by_subscribe += 1;
        }
    }
    let lost = ids.iter().filter(|id| !results.contains_key(id)).count();
    assert_eq!(lost, 0);
    assert!(requeued > 0, "the killed node was running tasks");
    let within = first_requeue.expect("a requeue");
    assert!(
        within < Duration::from_millis(3 * 1000),
        "taken back after {within:?}, lease {LEASE_MS} ms"
    );
    let again = results.values().filter(|t| t.attempt == 2).count();
    assert_eq!(again, requeued, "each task taken back ran once more");
    assert!(by_subscribe <= 16, "at most what the killed node ran");
    assert!(
        results
            .values()
            .all(|t| t.status == TaskStatus::Succeeded && t.attempt <= 2)
    );
    eprintln!(
        "acked {}, finished {}, taken back {requeued} (first after {within:?}), duplicates 0, lost {lost}, results found by subscribe {by_subscribe}",
        ids.len(),
        results.len()
    );
    drop((client, front, survivor, doomed));
    cluster.drop().await;
}
