//! Every error code a client can cause, each answered by an error ack that
//! leaves the socket usable and touches no other task.

use std::time::Duration;

use app::{ErrorCode, TaskStatus};
use serde_json::{Value, json};
use taskwire::client::{Client, ClientError};

use crate::helpers::*;

async fn code_of(c: &Client, event: &str, payload: Value) -> String {
    let ack = c.request(event, payload).await.expect("an ack");
    assert_eq!(ack["ok"], json!(false), "{event}: {ack}");
    assert!(ack["error"]["message"].is_string(), "{ack}");
    ack["error"]["code"].as_str().expect("code").to_owned()
}

#[tokio::test]
async fn bad_payloads_get_error_acks_and_the_socket_stays_usable() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let unknown = "0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40";
    let cases: Vec<(&str, Value, &[&str])> = vec![
        ("task", json!("not an object"), &["invalid_payload"]),
        ("task", json!([1, 2]), &["invalid_payload"]),
        ("task", json!({}), &["invalid_payload"]),
        ("task", json!({"kind": 7}), &["invalid_payload"]),
        (
            "task",
            json!({"kind": "nope", "input": {}}),
            &["unknown_kind"],
        ),
        (
            "task",
            json!({"kind": "sleep", "input": {"ms": -1}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "sleep", "input": {"ms": 1.5}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "sleep", "input": {"ms": "10"}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "sleep", "input": {"ms": 3_600_001}}),
            &["invalid_payload"],
        ),
        ("task", json!({"kind": "sleep"}), &["invalid_payload"]),
        (
            "task",
            json!({"kind": "primes", "input": {"limit": 10_000_000_001u64}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "primes", "input": {"limit": -3}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "sha256", "input": {"data": "x", "rounds": 0}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "sha256", "input": {"data": "x", "rounds": 10_000_001}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "sha256", "input": {"data": 5, "rounds": 1}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "fail", "input": {}}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "echo", "priority": "high"}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "echo", "timeout_ms": 0}),
            &["invalid_payload"],
        ),
        (
            "task",
            json!({"kind": "echo", "max_attempts": 0}),
            &["invalid_payload"],
        ),
        ("tasks", json!({"tasks": "no"}), &["invalid_payload"]),
        ("tasks", json!([]), &["invalid_payload"]),
        (
            "tasks",
            json!({"tasks": vec![json!({"kind": "echo"}); 1001]}),
            &["invalid_payload"],
        ),
        (
            "tasks",
            json!({"tasks": [{"kind": "echo"}, {"kind": "nope"}]}),
            &["unknown_kind"],
        ),
        ("subscribe", json!({"task_id": 5}), &["invalid_payload"]),
        ("subscribe", json!({}), &["invalid_payload"]),
        (
            "subscribe",
            json!({"task_id": "not-a-uuid"}),
            &["invalid_payload", "not_found"],
        ),
        ("subscribe", json!({"task_id": unknown}), &["not_found"]),
        ("unsubscribe", json!({"task_id": unknown}), &["not_found"]),
        ("cancel", json!({"task_id": null}), &["invalid_payload"]),
        ("cancel", json!({"task_id": unknown}), &["not_found"]),
    ];
    for (event, payload, allowed) in cases {
        let code = code_of(&c, event, payload.clone()).await;
        assert!(
            allowed.contains(&code.as_str()),
            "{event} {payload}: got {code}"
        );
    }
    // Nothing was queued by any of it, and the socket still works.
    let stats = server.stats().await;
    assert_eq!((stats.queued, stats.running, stats.succeeded), (0, 0, 0));
    let task = c
        .submit(&spec("echo", json!({"still": "here"})))
        .await
        .unwrap();
    assert_eq!(
        result_of(&mut c, task.id).await.output,
        Some(app::Json::from(json!({"still": "here"})))
    );

    // Cancelling a finished task.
    assert_eq!(
        code_of(&c, "cancel", json!({"task_id": task.id})).await,
        "already_finished"
    );
}

#[tokio::test]
async fn a_full_queue_refuses_with_queue_full_and_loses_nothing() {
    let server =
        TestServer::start(&["--workers", "1", "--io-slots", "1", "--queue-capacity", "2"]).await;
    let mut c = server.client().await;
    let long = spec("sleep", json!({"ms": 60_000}));
    let running = c.submit(&long).await.unwrap();
    push_where(&mut c, |p| match p {
        taskwire::client::Push::Status(s)
            if s.task_id == running.id && s.status == TaskStatus::Running =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    let q1 = c.submit(&spec("echo", json!(1))).await.unwrap();
    let q2 = c.submit(&spec("echo", json!(2))).await.unwrap();
    match c.submit(&spec("echo", json!(3))).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::QueueFull),
        other => panic!("expected queue_full, got {other:?}"),
    }
    // A batch that does not fit is refused whole.
    let batch = c
        .request("tasks", json!({"tasks": [{"kind": "echo"}]}))
        .await
        .unwrap();
    assert_eq!(batch["error"]["code"], "queue_full");
    // Freeing the worker lets the queued ones run.
    assert_eq!(
        c.cancel(running.id).await.unwrap().status,
        TaskStatus::Cancelled
    );
    assert_eq!(
        result_of(&mut c, q1.id).await.output,
        Some(app::Json::from(json!(1)))
    );
    assert_eq!(
        result_of(&mut c, q2.id).await.output,
        Some(app::Json::from(json!(2)))
    );
}

#[tokio::test]
async fn an_oversized_message_affects_only_its_socket() {
    let server = TestServer::start(&["--max-message-bytes", "65536"]).await;
    let mut good = server.client().await;
    let big = Client::connect_with(&server.url, Duration::from_secs(3))
        .await
        .unwrap();
    let huge = "x".repeat(200_000);
    // Either an error ack, or that socket alone is disconnected (no ack).
    if let Ok(ack) = big
        .request("task", json!({"kind": "echo", "input": huge}))
        .await
    {
        assert_eq!(ack["error"]["code"], "payload_too_large");
    }
    let task = good.submit(&spec("echo", json!("fine"))).await.unwrap();
    assert_eq!(
        result_of(&mut good, task.id).await.output,
        Some(app::Json::from(json!("fine")))
    );
    // Just under the limit is accepted.
    let near = "y".repeat(60_000);
    let task = good.submit(&spec("echo", json!(near))).await.unwrap();
    assert_eq!(
        result_of(&mut good, task.id).await.output,
        Some(app::Json::from(json!(near)))
    );
}

#[tokio::test]
async fn a_socket_over_its_event_rate_gets_rate_limited_and_recovers() {
    let server = TestServer::start(&["--max-events-per-sec", "5"]).await;
    let c = server.client().await;
    let mut limited = 0;
    for _ in 0..40 {
        let ack = c.request("dashboard", json!({})).await.unwrap();
        if ack["ok"] == json!(false) {
            assert_eq!(ack["error"]["code"], "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 20, "only {limited} of 40 refused at 5/s");
    // Others are not affected.
    let other = server.client().await;
    assert!(other.dashboard().await.is_ok());
    // The budget refills at 5 events a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(c.dashboard().await.is_ok());
}

#[tokio::test]
async fn a_socket_with_too_many_unfinished_tasks_is_rate_limited() {
    let server = TestServer::start(&["--max-unfinished-per-socket", "3"]).await;
    let mut c = server.client().await;
    let long = spec("sleep", json!({"ms": 600_000}));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(c.submit(&long).await.unwrap().id);
    }
    match c.submit(&long).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::RateLimited),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    let batch = c
        .request("tasks", json!({"tasks": [{"kind": "echo"}]}))
        .await
        .unwrap();
    assert_eq!(batch["error"]["code"], "rate_limited");
    // Another socket has its own allowance.
    let other = server.client().await;
    other.submit(&spec("echo", json!(1))).await.unwrap();
    // A finished task frees a place.
    c.cancel(ids[0]).await.unwrap();
    result_of(&mut c, ids[0]).await;
    let t = c.submit(&spec("echo", json!("again"))).await.unwrap();
    assert_eq!(
        result_of(&mut c, t.id).await.output,
        Some(app::Json::from(json!("again")))
    );
}
