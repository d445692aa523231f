//! Dispatch skips what no free worker can take: a queued task of a kind
//! only a busy (or gone) remote worker offers holds back nothing behind it,
//! before and after a restart.

use app::{TaskStatus, events};
use futures_util::FutureExt as _;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

/// A remote worker that takes jobs of `kind` and never finishes them.
async fn busy_remote_worker(server: &TestServer, kind: &str) -> SioClient {
    ClientBuilder::new(server.url.clone())
        .namespace(events::WORKER_NS)
        .auth(json!({"name": "busy", "kinds": [kind], "concurrency": 1}))
        .on(events::JOB, |_, _| async {}.boxed())
        .connect()
        .await
        .expect("connect the remote worker")
}

#[tokio::test]
async fn a_task_no_free_worker_can_take_does_not_block_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = ["--data-dir", data.as_str(), "--workers", "1"];
    let mut server = TestServer::start_process(&flags).await;
    let remote = busy_remote_worker(&server, "report.remote").await;
    server.wait_workers(2).await;
    let mut c = server.client().await;

    // The remote worker's one slot is taken; the next task of its kind
    // waits at the head of the queue with the highest priority.
    let mut first = spec("report.remote", json!({"n": 1}));
    first.priority = 9;
    let first = c.submit(&first).await.unwrap();
    push_where(&mut c, |p| {
        matches!(p, Push::Status(ref s) if s.task_id == first.id && s.status == TaskStatus::Running)
            .then_some(())
    })
    .await;
    let mut second = spec("report.remote", json!({"n": 2}));
    second.priority = 9;
    let second = c.submit(&second).await.unwrap();

    // Work of other kinds still runs on the idle local worker.
    let primes = c
        .submit(&spec("primes", json!({"limit": 1000})))
        .await
        .unwrap();
    let done = result_of(&mut c, primes.id).await;
    assert_eq!(done.output, Some(app::Json::from(json!({"count": 168}))));
    assert_eq!(
        c.subscribe(second.id).await.unwrap().status,
        TaskStatus::Queued
    );

    // After a restart with no remote worker at all, the same holds.
    let _ = remote.disconnect().await;
    drop(c);
    assert!(signal(server.pid(), libc::SIGKILL));
    let _ = server.child.wait().await;
    let server = TestServer::start(&flags).await;
    let mut c = server.client().await;
    for id in [first.id, second.id] {
        assert_eq!(c.subscribe(id).await.unwrap().status, TaskStatus::Queued);
    }
    let sha = c
        .submit(&spec("sha256", json!({"data": "abc", "rounds": 1})))
        .await
        .unwrap();
    let done = result_of(&mut c, sha.id).await;
    assert_eq!(
        done.output,
        Some(app::Json::from(
            json!({"hex": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})
        ))
    );
}
