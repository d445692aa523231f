//! Bounds under abuse: a flood of submissions from many sockets is refused
//! once the queue is full, and the server's memory stops growing.

use app::ErrorCode;
use serde_json::json;
use taskwire::client::ClientError;

use crate::helpers::*;

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_flood_from_many_sockets_is_refused_and_memory_stays_bounded() {
    let server = TestServer::start(&[
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
        assert_eq!(result_of(&mut c, t.id).await.output, Some(json!(i)));
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
