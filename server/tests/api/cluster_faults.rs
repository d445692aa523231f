//! Cluster mode when its services fail, against the real ones: Redis
//! restarted mid-load (a private `redis-server`), and PostgreSQL cut off
//! from one node (through a forwarder the test cuts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use app::{ErrorCode, Task, TaskId, TaskStatus};
use serde_json::json;
use taskwire::client::{Client, ClientError, Push};
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, LEASE_MS, redis_url, submit_ids};
use crate::helpers::{PrivateRedis, TestServer, WAIT, result_of, spec};

/// The flags of a node of a cluster on the database at `db` and the Redis
/// at `redis` (tests that break one of them).
fn node_args<'a>(db: &'a str, redis: &'a str, prefix: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--cluster",
        "--database-url",
        db,
        "--redis-url",
        redis,
        "--redis-prefix",
        prefix,
        "--lease-ms",
        LEASE_MS,
    ];
    args.extend(extra);
    args
}

/// `GET /healthz`: its status code and body.
async fn health(server: &TestServer) -> (u16, String) {
    let res = reqwest::get(server.at("/healthz")).await.expect("healthz");
    let code = res.status().as_u16();
    (code, res.text().await.unwrap_or_default())
}

/// Waits until `/healthz` answers `code`; returns its body.
async fn health_becomes(server: &TestServer, code: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (now, body) = health(server).await;
        if now == code {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz stayed {now} ({body}), expected {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn refused_unavailable(r: Result<Task, ClientError>) {
    match r {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Unavailable, "{e}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redis_restart_mid_load_loses_nothing_and_pushes_resume() {
    let cluster = Cluster::new().await;
    let redis = PrivateRedis::start(None).await;
    let url = redis.url();
    let front = TestServer::start(&node_args(
        &cluster.db.url,
        &url,
        &cluster.prefix,
        &["--workers", "0"],
    ))
    .await;
    let back = TestServer::start(&node_args(
        &cluster.db.url,
        &url,
        &cluster.prefix,
        &["--workers", "1", "--io-slots", "8"],
    ))
    .await;
    let mut client = front.client().await;
    let specs: Vec<_> = (0..60).map(|_| spec("sleep", json!({"ms": 50}))).collect();
    let ids: Vec<TaskId> = submit_ids(&client, &specs).await;
    let mut results: HashMap<TaskId, Task> = HashMap::new();
    while results.len() < 10 {
        if let Some(Push::Result(t)) = client.next_push_within(WAIT).await {
            assert!(results.insert(t.id, *t).is_none(), "a second result");
        }
    }

    let port = redis.kill().await;
    let why = health_becomes(&front, 503).await;
    assert!(why.contains("Redis"), "{why}");
    refused_unavailable(client.submit(&spec("echo", json!(1))).await);

    let redis = PrivateRedis::start(Some(port)).await;
    health_becomes(&front, 200).await;
    health_becomes(&back, 200).await;
    // Everything acked ends, once each, with no node lost.
    let deadline = tokio::time::Instant::now() + WAIT;
    while front.stats().await.succeeded < ids.len() as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every task finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Pushes flow again; what was pushed during the outage is found by
    // subscribing.
    let fresh = client.submit(&spec("echo", json!("after"))).await.unwrap();
    loop {
        match client.next_push_within(WAIT).await.expect("pushes resume") {
            Push::Result(t) if t.id == fresh.id => break,
            Push::Result(t) => assert!(results.insert(t.id, *t).is_none(), "a second result"),
            _ => {}
        }
    }
    for id in &ids {
        let t = match results.get(id) {
            Some(t) => t.clone(),
            None => client.subscribe(*id).await.expect("subscribed"),
        };
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        assert_eq!(t.attempt, 1, "no task ran twice");
    }
    drop((client, front, back, redis));
    cluster.drop().await;
}

/// A TCP forwarder to PostgreSQL that a test can cut (every connection
/// closed, new ones refused) and restore: the database unreachable from
/// one node only.
struct Cuttable {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl Cuttable {
    async fn start(target: (&'static str, u16)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let generation = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (cut2, generation2, stop2) = (cut.clone(), generation.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    () = stop2.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => return,
                    },
                };
                if cut2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let token = generation2.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            generation,
            stop,
        }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
        if cut {
            let mut generation = self.generation.lock().unwrap();
            generation.cancel();
            *generation = CancellationToken::new();
        }
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.stop.cancel();
        self.generation.lock().unwrap().cancel();
    }
}

#[tokio::test]
async fn a_node_that_cannot_reach_the_database_refuses_new_work_and_loses_nothing() {
    let cluster = Cluster::new().await;
    let proxy = Cuttable::start(("127.0.0.1", 5432)).await;
    let mut via_proxy = url::Url::parse(&cluster.db.url).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let via_proxy = via_proxy.to_string();
    let redis = redis_url();
    let front = TestServer::start(&node_args(
        &via_proxy,
        &redis,
        &cluster.prefix,
        &["--workers", "0"],
    ))
    .await;
    let back = cluster.node(&["--workers", "1", "--io-slots", "8"]).await;
    let mut client = front.client().await;
    let specs: Vec<_> = (0..5).map(|_| spec("sleep", json!({"ms": 400}))).collect();
    let ids: Vec<TaskId> = submit_ids(&client, &specs).await;

    proxy.set_cut(true);
    let why = health_becomes(&front, 503).await;
    assert!(why.contains("cannot be reached"), "{why}");
    refused_unavailable(client.submit(&spec("echo", json!(1))).await);
    // The tasks it acked run on the other node, and their results reach
    // this node's client through Redis.
    let results = results_exactly_once_from(&mut client, &ids).await;
    assert!(results.values().all(|t| t.status == TaskStatus::Succeeded));
    assert_eq!(health(&back).await.0, 200);

    proxy.set_cut(false);
    health_becomes(&front, 200).await;
    let again = client
        .submit(&spec("echo", json!("back")))
        .await
        .expect("accepted again");
    assert_eq!(
        result_of(&mut client, again.id).await.output,
        Some(app::Json::from(json!("back")))
    );
    drop((client, front, back, proxy));
    cluster.drop().await;
}

/// [`results_exactly_once`] without the closing marker task (the node
/// the client is on may not accept one).
async fn results_exactly_once_from(client: &mut Client, ids: &[TaskId]) -> HashMap<TaskId, Task> {
    let mut results = HashMap::new();
    while results.len() < ids.len() {
        if let Push::Result(task) = client
            .next_push_within(WAIT)
            .await
            .expect("results in time")
        {
            assert!(
                results.insert(task.id, *task).is_none(),
                "a second result for one task"
            );
        }
    }
    results
}
