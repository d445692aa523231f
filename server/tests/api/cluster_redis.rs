//! Rooms and signals shared through the real Redis (127.0.0.1:6379, or
//! `TASKWIRE_TEST_REDIS_URL`): two servers built with [`Rooms::Redis`] on
//! one prefix, a real client on one of them, pushes from the other; the
//! node bus; both after their connections to Redis were killed. Each test
//! has a prefix of its own, so runs never hear each other.
//!
//! "Exactly once" and "not delivered" are checked without waiting for
//! silence: after the pushes under test, the sending node pushes a sentinel
//! to a room the client is in. A node's pushes travel one Redis connection
//! and one channel, and reach the other node in order, so anything that was
//! coming has arrived by the time the sentinel has.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use app::{ProgressEvent, Stats, StatusEvent, Task, TaskId, TaskStatus, WorkerId};
use fred::interfaces::ClientLike;
use fred::types::CustomCommand;
use serde_json::json;
use taskwire::client::{Client, Push};
use taskwire::cluster::Signal;
use taskwire::cluster::bus::Bus;
use taskwire::cluster::redis::{self, RedisHealth};
use taskwire::scheduler::Publisher;
use taskwire::startup::Rooms;
use taskwire::{Application, Registry, Settings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::helpers::{PrivateRedis, WAIT, spec};

fn redis_url() -> String {
    std::env::var("TASKWIRE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A prefix no other run uses.
fn fresh_prefix() -> String {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    format!("twtest-{}", &uuid[uuid.len() - 12..])
}

/// A server built with its rooms in Redis, running in this test's runtime
/// until dropped.
struct Node {
    url: String,
    publisher: Arc<dyn Publisher>,
    health: RedisHealth,
    stop: CancellationToken,
}

impl Node {
    /// `workers` local worker processes (0: tasks stay queued), rooms in
    /// the shared Redis under `prefix`.
    async fn start(prefix: &str, workers: usize) -> Self {
        let rooms = Rooms::Redis {
            url: redis_url(),
            prefix: prefix.to_owned(),
        };
        Self::start_with(rooms, workers).await
    }

    async fn start_with(rooms: Rooms, workers: usize) -> Self {
        let settings = Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: Some(workers),
            memory: true,
            site_root: Some("/nonexistent".into()),
            worker_exe: Some(env!("CARGO_BIN_EXE_taskwire").into()),
            ..Settings::default()
        };
        let app = Application::build_with(settings, Registry::builtin(), rooms)
            .await
            .expect("a server with its rooms in Redis");
        let node = Self {
            url: format!("http://{}", app.local_addr().unwrap()),
            publisher: app.publisher(),
            health: app.redis_health().expect("rooms in Redis"),
            stop: app.shutdown_token(),
        };
        tokio::spawn(app.run_until_stopped());
        node
    }

    async fn client(&self) -> Client {
        Client::connect_with(&self.url, WAIT)
            .await
            .expect("connect")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A task that stays queued on a node without workers: submitting it puts
/// the client in its room.
async fn queued_task(client: &Client) -> Task {
    client
        .submit(&spec("sleep", json!({"ms": 60_000})))
        .await
        .expect("submit")
}

/// A `status` no scheduler sends: `attempt` tells them apart.
fn marker(id: TaskId, attempt: u32) -> StatusEvent {
    StatusEvent {
        task_id: id,
        status: TaskStatus::Running,
        attempt,
        worker: Some(WorkerId::from("on-the-other-node")),
    }
}

fn is_marker(push: &Push, id: TaskId, attempt: u32) -> bool {
    matches!(push, Push::Status(s) if s.task_id == id && s.attempt == attempt)
}

/// Every push until the first that `last` picks, that one included.
async fn pushes_until(client: &mut Client, last: impl Fn(&Push) -> bool) -> Vec<Push> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let push = client
            .next_push_within(left)
            .await
            .unwrap_or_else(|| panic!("the awaited push never came; got {seen:#?}"));
        let done = last(&push);
        seen.push(push);
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_from_one_node_reaches_a_socket_on_another_exactly_once() {
    let prefix = fresh_prefix();
    let (a, b) = (Node::start(&prefix, 0).await, Node::start(&prefix, 0).await);
    let mut client = a.client().await;
    let (t1, t2) = (queued_task(&client).await, queued_task(&client).await);

    b.publisher.status(&marker(t1.id, 7)).await;
    let sentinel = ProgressEvent {
        task_id: t2.id,
        done: 1,
        total: 2,
        message: Some("sentinel".into()),
    };
    b.publisher.progress(&sentinel).await;
    let seen = pushes_until(
        &mut client,
        |p| matches!(p, Push::Progress(p) if *p == sentinel),
    )
    .await;
    let copies = seen.iter().filter(|p| is_marker(p, t1.id, 7)).count();
    assert_eq!(copies, 1, "{seen:#?}");

    // The result closes the room on every node: node A's socket leaves it.
    let finished = Task {
        status: TaskStatus::Succeeded,
        attempt: 1,
        worker: Some(WorkerId::from("on-the-other-node")),
        output: Some(app::Json::from(json!("done elsewhere"))),
        ..t1.clone()
    };
    b.publisher.result(&finished).await;
    b.publisher.status(&marker(t1.id, 8)).await;
    b.publisher.status(&marker(t2.id, 9)).await;
    let seen = pushes_until(&mut client, |p| is_marker(p, t2.id, 9)).await;
    let results: Vec<_> = seen
        .iter()
        .filter_map(|p| match p {
            Push::Result(task) if task.id == t1.id => Some(task),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 1, "{seen:#?}");
    assert_eq!(**results[0], finished);
    assert!(
        !seen.iter().any(|p| is_marker(p, t1.id, 8)),
        "a push to a closed room arrived: {seen:#?}"
    );
}

/// Every node pushes its own `stats` to its own dashboards: one node's must
/// not reach another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_stay_on_their_node() {
    let prefix = fresh_prefix();
    let (a, b) = (Node::start(&prefix, 0).await, Node::start(&prefix, 0).await);
    let mut client = a.client().await;
    client.dashboard().await.expect("dashboard");
    let task = queued_task(&client).await;

    let from_b = Stats {
        scheduled: 0,
        waiting: 0,
        queued: 424_242,
        running: 0,
        succeeded: 0,
        failed: 0,
        cancelled: 0,
        timed_out: 0,
        workers: Vec::new(),
        nodes: Vec::new(),
        throughput_per_s: 0.0,
        kinds: Vec::new(),
        at: app::Timestamp::now(),
    };
    b.publisher.stats(&from_b).await;
    b.publisher.status(&marker(task.id, 5)).await;
    let seen = pushes_until(&mut client, |p| is_marker(p, task.id, 5)).await;
    assert!(
        !seen
            .iter()
            .any(|p| matches!(p, Push::Stats(s) if s.queued == from_b.queued)),
        "another node's stats reached this node's dashboard: {seen:#?}"
    );
}

/// A node's own pushes reach its own sockets once, not once more through
/// Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_own_result_arrives_once() {
    let prefix = fresh_prefix();
    let (a, b) = (Node::start(&prefix, 1).await, Node::start(&prefix, 0).await);
    let mut client = a.client().await;
    let echo = client
        .submit(&spec("echo", json!({"say": "once"})))
        .await
        .expect("submit");
    let seen = pushes_until(
        &mut client,
        |p| matches!(p, Push::Result(t) if t.id == echo.id),
    )
    .await;
    assert_eq!(
        seen.iter().filter(|p| matches!(p, Push::Result(_))).count(),
        1
    );
    // A copy through Redis was published before the result reached the
    // client, so before this sentinel: it would be among these.
    let other = queued_task(&client).await;
    b.publisher.status(&marker(other.id, 3)).await;
    let seen = pushes_until(&mut client, |p| is_marker(p, other.id, 3)).await;
    assert!(
        !seen.iter().any(|p| matches!(p, Push::Result(_))),
        "a second result: {seen:#?}"
    );
}

/// The next signal from `rx`.
async fn next_signal(rx: &mut mpsc::Receiver<Signal>) -> Signal {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no signal in time")
        .expect("the bus closed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_carries_signals_between_nodes() {
    let prefix = fresh_prefix();
    let (one, mut one_rx) = Bus::connect(&redis_url(), &prefix).await.unwrap();
    let (_two, mut two_rx) = Bus::connect(&redis_url(), &prefix).await.unwrap();
    let (elsewhere, mut elsewhere_rx) = Bus::connect(&redis_url(), &fresh_prefix()).await.unwrap();

    let wake = Signal::Wake {
        kinds: vec!["echo".into()],
    };
    one.publish(&wake).await.expect("publish");
    assert_eq!(next_signal(&mut two_rx).await, wake);
    assert_eq!(next_signal(&mut one_rx).await, wake, "its own signals too");

    // Another prefix is another cluster: its first signal is its own.
    let finished = Signal::Finished {
        id: TaskId::from(uuid::Uuid::now_v7()),
    };
    elsewhere.publish(&finished).await.unwrap();
    assert_eq!(next_signal(&mut elsewhere_rx).await, finished);
}

/// Kills these connections in Redis (`CLIENT KILL ID`), as a Redis
/// restart or a network cut would drop them.
async fn kill_connections(ids: &[i64]) {
    let config = fred::prelude::Config::from_url(&redis_url()).unwrap();
    let admin = fred::prelude::Builder::from_config(config).build().unwrap();
    admin.init().await.expect("connect to Redis");
    for id in ids {
        let killed: i64 = admin
            .custom(
                CustomCommand::new_static("CLIENT", None, false),
                vec!["KILL".to_owned(), "ID".to_owned(), id.to_string()],
            )
            .await
            .expect("CLIENT KILL");
        assert_eq!(killed, 1, "connection {id}");
    }
    let _ = admin.quit().await;
}

/// Waits until `health` has made `connections` connections and is up.
async fn reconnected(health: &RedisHealth, connections: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while health.connections() < connections || !health.is_up() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reconnected: {} connections, {:?}",
            health.connections(),
            health.problem()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// socket.io #4845: after a reconnect, a node that did not subscribe again
/// looks healthy and hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_signals_survive_dropped_connections() {
    let prefix = fresh_prefix();
    let (a, b) = (Node::start(&prefix, 0).await, Node::start(&prefix, 0).await);
    let (one, _one_rx) = Bus::connect(&redis_url(), &prefix).await.unwrap();
    let (two, mut two_rx) = Bus::connect(&redis_url(), &prefix).await.unwrap();
    let mut client = a.client().await;
    let task = queued_task(&client).await;
    let all = a.health.and(&b.health).and(one.health()).and(two.health());
    assert!(all.is_up(), "{:?}", all.problem());
    let before = all.connections();
    assert_eq!(before, 4);

    let ids = all.connection_ids();
    assert_eq!(ids.len(), 4, "{ids:?}");
    kill_connections(&ids).await;
    reconnected(&all, before + 4).await;
    let after = all.connection_ids();
    assert!(
        after.iter().all(|id| !ids.contains(id)),
        "new connections: {ids:?} then {after:?}"
    );

    b.publisher.status(&marker(task.id, 11)).await;
    let seen = pushes_until(&mut client, |p| is_marker(p, task.id, 11)).await;
    assert_eq!(seen.iter().filter(|p| is_marker(p, task.id, 11)).count(), 1);

    let cancel = Signal::Cancel {
        id: task.id,
        owner: taskwire::cluster::NodeId::fresh(),
    };
    one.publish(&cancel)
        .await
        .expect("publish after the reconnect");
    assert_eq!(next_signal(&mut two_rx).await, cancel);
}

#[tokio::test]
async fn a_node_that_cannot_reach_redis_does_not_start() {
    let refused = redis::adapter("redis://127.0.0.1:1", &fresh_prefix()).await;
    let e = refused.err().expect("no Redis listens on port 1");
    assert!(
        e.to_string()
            .starts_with("cannot connect to Redis at redis://127.0.0.1:1"),
        "{e}"
    );
    let e = Bus::connect("redis://127.0.0.1:6379", "bad#prefix")
        .await
        .err()
        .expect("a prefix with '#'");
    assert!(matches!(e, redis::RedisError::Prefix(_)), "{e}");
}

/// Waits until `health` reports a problem, and returns it.
async fn down(health: &RedisHealth) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(problem) = health.problem() {
            return problem;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis still counts as reachable"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Redis crashes and comes back: meanwhile Redis counts as unreachable,
/// pushes still reach this node's sockets without stalling the publisher,
/// signals are refused at once; afterwards, pushes and signals go between
/// nodes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_outlive_a_redis_restart() {
    let redis = PrivateRedis::start(None).await;
    let prefix = fresh_prefix();
    let rooms = |prefix: &str| Rooms::Redis {
        url: redis.url(),
        prefix: prefix.to_owned(),
    };
    let (a, b) = (
        Node::start_with(rooms(&prefix), 0).await,
        Node::start_with(rooms(&prefix), 0).await,
    );
    let (one, _one_rx) = Bus::connect(&redis.url(), &prefix).await.unwrap();
    let (two, mut two_rx) = Bus::connect(&redis.url(), &prefix).await.unwrap();
    let mut client = a.client().await;
    let task = queued_task(&client).await;
    let all = a.health.and(&b.health).and(one.health()).and(two.health());
    assert!(all.is_up(), "{:?}", all.problem());
    let connections = all.connections();

    let port = redis.kill().await;
    let problem = down(&a.health).await;
    assert!(
        problem.starts_with("Redis unreachable (rooms)"),
        "{problem}"
    );
    down(&b.health).await;
    let problem = down(one.health()).await;
    assert!(
        problem.starts_with("Redis unreachable (signals)"),
        "{problem}"
    );

    let started = tokio::time::Instant::now();
    b.publisher.status(&marker(task.id, 1)).await;
    a.publisher.status(&marker(task.id, 2)).await;
    assert!(
        started.elapsed() < redis::COMMAND_TIMEOUT,
        "pushes waited for Redis: {:?}",
        started.elapsed()
    );
    let seen = pushes_until(&mut client, |p| is_marker(p, task.id, 2)).await;
    assert!(!seen.iter().any(|p| is_marker(p, task.id, 1)), "{seen:#?}");
    let refused = one.publish(&Signal::Wake { kinds: vec![] }).await;
    assert!(
        matches!(refused, Err(redis::RedisError::Unavailable(_))),
        "{refused:?}"
    );

    let _redis = PrivateRedis::start(Some(port)).await;
    reconnected(&all, connections + 4).await;
    b.publisher.status(&marker(task.id, 3)).await;
    let seen = pushes_until(&mut client, |p| is_marker(p, task.id, 3)).await;
    assert_eq!(seen.iter().filter(|p| is_marker(p, task.id, 3)).count(), 1);
    let wake = Signal::Wake {
        kinds: vec!["sleep".into()],
    };
    one.publish(&wake)
        .await
        .expect("publish once Redis is back");
    assert_eq!(next_signal(&mut two_rx).await, wake);
}
