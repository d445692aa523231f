//! The HTTP routes.

use app::{ErrorCode, Task, TaskStatus};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn post_get_delete_and_errors() {
    let server = TestServer::start(&[]).await;
    let http = no_redirects();
    let mut ws = server.client().await;

    // POST JSON -> 202 + the task; a socket can follow it.
    let res = http
        .post(server.at("/tasks"))
        .json(&json!({"kind": "sleep", "input": {"ms": 600_000}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let task: Task = res.json().await.unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    ws.subscribe(task.id).await.unwrap();

    // GET -> the task.
    let got: Task = http
        .get(server.at(&format!("/tasks/{}", task.id)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got.id, task.id);

    // DELETE -> cancelled, pushed to the subscriber.
    let res = http
        .delete(server.at(&format!("/tasks/{}", task.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Task>().await.unwrap().status,
        TaskStatus::Cancelled
    );
    assert_eq!(
        result_of(&mut ws, task.id).await.status,
        TaskStatus::Cancelled
    );
    let res = http
        .delete(server.at(&format!("/tasks/{}", task.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(res).await, ErrorCode::AlreadyFinished);

    // Unknown and malformed ids.
    for id in ["0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40", "nope"] {
        let res = http
            .get(server.at(&format!("/tasks/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(res).await, ErrorCode::NotFound);
    }

    // Bad bodies.
    let res = http
        .post(server.at("/tasks"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(res).await, ErrorCode::InvalidPayload);
    let res = http
        .post(server.at("/tasks"))
        .json(&json!({"kind": "primes", "input": {"limit": -1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = http
        .post(server.at("/tasks"))
        .json(&json!({"kind": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(res).await, ErrorCode::UnknownKind);
    let huge = json!({"kind": "echo", "input": "x".repeat(2 << 20)});
    let res = http
        .post(server.at("/tasks"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(res).await, ErrorCode::PayloadTooLarge);
}

#[tokio::test]
async fn the_no_js_form_redirects_to_the_task_page() {
    let server = TestServer::start(&[]).await;
    let http = no_redirects();
    let res = http
        .post(server.at("/tasks"))
        .form(&[
            ("kind", "echo"),
            ("input", r#"{"from":"form"}"#),
            ("priority", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let id = location.strip_prefix("/tasks/").expect("task page");
    let task: Task = http
        .get(server.at(&location))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task.id.to_string(), id);
    assert_eq!(
        (task.input, task.priority),
        (app::Json::from(json!({"from": "form"})), 2)
    );

    let res = http
        .post(server.at("/tasks"))
        .form(&[("kind", "echo"), ("input", "{bad")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_metrics_and_kinds() {
    let server = TestServer::start(&[]).await;
    let res = reqwest::get(server.at("/healthz")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut c = server.client().await;
    let t = c.submit(&spec("echo", json!(null))).await.unwrap();
    result_of(&mut c, t.id).await;
    let text = metrics_text(&server).await;
    assert!(
        text.contains("taskwire_tasks{status=\"succeeded\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("taskwire_workers 2\n"), "{text}");
    let kinds: Vec<app::KindInfo> = reqwest::get(server.at("/kinds"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(names, ["echo", "fail", "primes", "sha256", "sleep"]);
    assert!(kinds.iter().all(|k| !k.paused));
}
