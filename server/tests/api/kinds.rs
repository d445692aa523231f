//! Each built-in kind's exact output, end to end.

use app::{ErrorCode, TaskStatus};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_builtin_kind_gives_its_exact_output() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let cases = [
        (
            "echo",
            json!({"z": 1, "a": [true, null, "x"], "m": {"k": 2.5}}),
            Some(json!({"z": 1, "a": [true, null, "x"], "m": {"k": 2.5}})),
        ),
        ("echo", json!("just a string"), Some(json!("just a string"))),
        ("sleep", json!({"ms": 30}), Some(json!({"slept_ms": 30}))),
        ("sleep", json!({"ms": 0}), Some(json!({"slept_ms": 0}))),
        ("primes", json!({"limit": 0}), Some(json!({"count": 0}))),
        ("primes", json!({"limit": 2}), Some(json!({"count": 1}))),
        (
            "primes",
            json!({"limit": 1_000_000}),
            Some(json!({"count": 78498})),
        ),
        (
            "primes",
            json!({"limit": 100_000_000}),
            Some(json!({"count": 5761455})),
        ),
        (
            "sha256",
            json!({"data": "abc", "rounds": 1}),
            Some(
                json!({"hex": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}),
            ),
        ),
        (
            // sha256(sha256("abc")) as bytes, computed independently.
            "sha256",
            json!({"data": "abc", "rounds": 2}),
            Some(
                json!({"hex": "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358"}),
            ),
        ),
        ("fail", json!({"message": "boom"}), None),
    ];
    for (kind, input, output) in cases {
        let task = c.submit(&spec(kind, input.clone())).await.expect("ack");
        assert_eq!(task.status, TaskStatus::Queued);
        let done = result_of(&mut c, task.id).await;
        assert_eq!(done.input, input);
        match output {
            Some(out) => {
                assert_eq!(done.status, TaskStatus::Succeeded, "{kind}: {done:?}");
                assert_eq!(
                    done.output.as_ref().map(app::Json::to_value),
                    Some(out),
                    "{kind}"
                );
                assert_eq!(done.error, None);
            }
            None => {
                assert_eq!(done.status, TaskStatus::Failed);
                let e = done.error.expect("error");
                assert_eq!(
                    (e.code, e.message.as_str()),
                    (ErrorCode::TaskFailed, "boom")
                );
                assert_eq!(done.attempt, 1, "a handler's own failure is final");
            }
        }
        assert!(done.finished_at.is_some() && done.started_at.is_some());
    }
}

#[tokio::test]
async fn echo_keeps_key_order_byte_for_byte() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    let order = r#"{"zeta":1,"alpha":2,"mid":{"y":1,"b":0}}"#;
    let input: serde_json::Value = serde_json::from_str(order).unwrap();
    let raw = c
        .request("task", json!({"kind": "echo", "input": input}))
        .await
        .unwrap();
    assert_eq!(serde_json::to_string(&raw["task"]["input"]).unwrap(), order);
    let id = raw["task"]["id"].as_str().unwrap().parse().unwrap();
    let done = result_of(&mut c, id).await;
    assert_eq!(serde_json::to_string(&done.output).unwrap(), order);
    // And over HTTP, as text.
    let text = reqwest::get(server.at(&format!("/tasks/{id}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!(r#""output":{order}"#)), "{text}");
}
