//! Bounds under abuse: a flood of submissions from many sockets is refused
//! once the queue is full, and the server's memory stops growing.

use app::ErrorCode;
use serde_json::json;
use taskwire::client::ClientError;

use crate::helpers::*;

#[tokio::test]
async fn a_flood_from_many_sockets_is_refused_and_memory_stays_bounded() {
    let server = TestServer::start_process(&[
        "--workers",
        "1",
        "--io-slots",
        "1",
        "--queue-capacity",
        "2000",
    ])
    .await;
    let big = "x".repeat(2000);
    let flood = |round: usize| {
        let url = server.url.clone();
        let big = big.clone();
        async move {
            let mut handles = Vec::new();
            for s in 0..10 {
                let url = url.clone();
                let big = big.clone();
                handles.push(tokio::spawn(async move {
                    let c = taskwire::client::Client::connect_with(&url, WAIT)
                        .await
                        .unwrap();
                    let (mut ok, mut full) = (0, 0);
                    for i in 0..50 {
                        let specs: Vec<_> = (0..20)
                            .map(|j| {
                                spec(
                                    "sleep",
                                    json!({"ms": 600_000, "pad": big, "n": [round, s, i, j]}),
                                )
                            })
                            .collect();
                        match c.submit_batch(&specs).await {
                            Ok(t) => ok += t.len(),
                            Err(ClientError::Server(e)) => {
                                assert_eq!(e.code, ErrorCode::QueueFull);
                                full += 1;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    let _ = c.disconnect().await;
                    (ok, full)
                }));
            }
            let mut totals = (0, 0);
            for h in handles {
                let (ok, full) = h.await.unwrap();
                totals.0 += ok;
                totals.1 += full;
            }
            totals
        }
    };
    // 10 sockets × 1000 tasks: the queue takes 2000 (+1 running), the rest is refused.
    let (accepted, refused) = flood(0).await;
    assert!(accepted <= 2001 + 20, "accepted {accepted}");
    assert!(refused > 0);
    let after_first = rss_kib(server.pid());
    for round in 1..4 {
        let (more, refused) = flood(round).await;
        assert_eq!(more, 0, "the queue is still full");
        assert_eq!(refused, 500);
    }
    let after_more = rss_kib(server.pid());
    // Three more floods of 10,000 refused tasks (20 MB of payload) leave
    // memory where it was, give or take allocator noise.
    assert!(
        after_more < after_first + 16 * 1024,
        "RSS grew from {after_first} KiB to {after_more} KiB"
    );
    let stats = server.stats().await;
    assert_eq!(stats.queued + stats.running, accepted as u64);
    assert!(stats.queued <= 2000);
}

#[tokio::test]
async fn a_stalled_client_does_not_hold_up_others() {
    use futures_util::FutureExt;
    use rust_socketio::asynchronous::ClientBuilder;
    use rust_socketio::{Event, TransportType};

    let server = TestServer::start(&[]).await;
    // A client that stops reading: its `result` handler never returns, so
    // rust_socketio stops draining the connection and TCP backs up.
    let (up_tx, up_rx) = tokio::sync::oneshot::channel::<()>();
    let up = std::sync::Mutex::new(Some(up_tx));
    let stalled = ClientBuilder::new(server.url.as_str())
        .transport_type(TransportType::Websocket)
        .on(Event::Connect, move |_, _| {
            if let Some(tx) = up.lock().unwrap().take() {
                let _ = tx.send(());
            }
            async {}.boxed()
        })
        .on("result", |_, _| std::future::pending::<()>().boxed())
        .connect()
        .await
        .unwrap();
    tokio::time::timeout(WAIT, up_rx).await.unwrap().unwrap();
    let pad = "p".repeat(20_000);
    // 25 batches of 40 tasks (each message under the 1 MiB limit): 20 MB of
    // results that the stalled client will never read.
    let batch: Vec<_> = (0..40)
        .map(|i| json!({"kind": "echo", "input": {"i": i, "pad": pad}}))
        .collect();
    for _ in 0..25 {
        stalled
            .emit("tasks", json!({ "tasks": batch }))
            .await
            .unwrap();
    }
    // Meanwhile another client is served as usual.
    let mut c = server.client().await;
    for i in 0..50 {
        let t = c.submit(&spec("echo", json!(i))).await.unwrap();
        assert_eq!(
            result_of(&mut c, t.id).await.output,
            Some(app::Json::from(json!(i)))
        );
    }
    // And the stalled client's tasks all ran to the end all the same.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = server.stats().await;
        if stats.succeeded == 1050 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(stalled);
}

/// Numbers in each large input: 0.3 MB of JSON, about 5 MB once parsed.
const LARGE: usize = 150_000;
/// Large tasks per test; the first few bring the allocator (and the
/// store's page cache) to a steady state, the rest would hold over 100 MB
/// if finished tasks kept their payloads.
const LARGE_TASKS: usize = 16;
const WARM_UP: usize = 4;

/// Runs echo tasks of a large input one after the other; returns the
/// server's RSS growth in KiB after the warm-up, and the ids.
async fn large_echoes(server: &ServerProcess) -> (u64, Vec<app::TaskId>) {
    let mut c = server.client().await;
    let big = vec![7; LARGE];
    let mut ids = Vec::new();
    let mut before = 0;
    for i in 0..LARGE_TASKS {
        if i == WARM_UP {
            before = rss_kib(server.pid());
        }
        let t = c
            .submit(&spec("echo", json!({"i": i, "big": big})))
            .await
            .unwrap();
        let done = result_of(&mut c, t.id).await;
        assert_eq!(
            done.output.map(|o| o.to_value()["i"].clone()),
            Some(json!(i))
        );
        ids.push(t.id);
    }
    (rss_kib(server.pid()).saturating_sub(before), ids)
}

#[tokio::test]
async fn finished_tasks_payloads_leave_memory_and_are_read_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let server = TestServer::start_process(&["--data-dir", data.as_str(), "--workers", "1"]).await;
    let (grew, ids) = large_echoes(&server).await;
    // Held in memory, their inputs and outputs would take over 100 MB.
    assert!(grew < 40 * 1024, "RSS grew by {grew} KiB");
    // Every one is still readable whole, from the store.
    let c = server.client().await;
    for (i, id) in ids.iter().enumerate() {
        let t = c.subscribe(*id).await.unwrap();
        assert_eq!(
            t.output,
            Some(app::Json::from(json!({"i": i, "big": vec![7; LARGE]})))
        );
        assert_eq!(t.input, t.output.unwrap());
    }
    let res = reqwest::get(server.at(&format!("/tasks/{}", ids[0])))
        .await
        .unwrap();
    let t: app::Task = res.json().await.unwrap();
    assert_eq!(t.output.map(|o| o.to_value()["i"].clone()), Some(json!(0)));
}

#[tokio::test]
async fn in_memory_finished_tasks_are_kept_within_a_byte_budget() {
    // Each task holds its input and output as JSON text, two bytes per
    // number ("7,") in each: 4 bytes per number. A budget of 10 keeps the
    // last two tasks.
    let budget = (10 * LARGE).to_string();
    let server = TestServer::start_process(&["--workers", "1", "--retain-bytes", &budget]).await;
    let (grew, ids) = large_echoes(&server).await;
    assert!(grew < 40 * 1024, "RSS grew by {grew} KiB");
    let c = server.client().await;
    let last = ids.last().copied().unwrap();
    assert_eq!(
        c.subscribe(last)
            .await
            .unwrap()
            .output
            .map(|o| o.to_value()["i"].clone()),
        Some(json!(LARGE_TASKS - 1))
    );
    for id in &ids[..LARGE_TASKS - 2] {
        match c.subscribe(*id).await {
            Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::NotFound),
            other => panic!("expected not_found, got {other:?}"),
        }
    }
}
