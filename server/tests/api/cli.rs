//! The `taskwire` CLI against a real server.

use std::process::Output;

use app::{Task, TaskStatus};
use serde_json::json;

use crate::helpers::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The task JSON printed after the id line.
/// `taskwire submit --wait` of a `fail` task with message "no".
async fn submit_failing(url: &str) -> Output {
    taskwire(&[
        "submit",
        "--url",
        url,
        "--kind",
        "fail",
        "--input",
        r#"{"message":"no"}"#,
        "--wait",
    ])
    .await
}

fn printed_task(out: &Output) -> Task {
    let text = stdout(out);
    let json = text.split_once('\n').expect("id line").1;
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn submit_wait_status_cancel() {
    let server = TestServer::start(&[]).await;
    let url = server.url.as_str();

    let out = taskwire(&[
        "submit",
        "--url",
        url,
        "--kind",
        "primes",
        "--input",
        r#"{"limit":1000}"#,
        "--wait",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let task = printed_task(&out);
    assert_eq!(
        (task.status, task.output),
        (
            TaskStatus::Succeeded,
            Some(app::Json::from(json!({"count": 168})))
        )
    );

    let out = submit_failing(url).await;
    assert!(!out.status.success(), "a failed task exits non-zero");
    assert_eq!(printed_task(&out).status, TaskStatus::Failed);

    let out = taskwire(&[
        "submit",
        "--url",
        url,
        "--kind",
        "sleep",
        "--input",
        r#"{"ms":600000}"#,
        "--priority",
        "-2",
    ])
    .await;
    assert!(out.status.success());
    let id = stdout(&out).trim().to_owned();
    assert!(id.parse::<app::TaskId>().is_ok(), "{id}");

    let out = taskwire(&["status", "--url", url, &id]).await;
    let task: Task = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task.priority, -2);
    assert!(!task.status.is_final());

    let out = taskwire(&["cancel", "--url", url, &id]).await;
    let task: Task = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task.status, TaskStatus::Cancelled);

    let out = taskwire(&["submit", "--url", url, "--kind", "nope"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown_kind"),
        "{out:?}"
    );
    let out = taskwire(&["submit", "--url", url, "--kind", "echo", "--input", "{bad"]).await;
    assert!(!out.status.success());
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn retry_runs_a_failed_task_again() {
    let server = TestServer::start(&[]).await;
    let url = server.url.as_str();
    let out = submit_failing(url).await;
    let failed = printed_task(&out);
    assert_eq!(failed.status, TaskStatus::Failed);
    let id = failed.id.to_string();
    let out = taskwire(&["retry", "--url", url, &id]).await;
    assert!(out.status.success(), "{out:?}");
    let again: Task = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again.retry_of, Some(failed.id));
    assert_eq!(
        (again.kind.as_str(), again.input),
        ("fail", app::Json::from(json!({"message": "no"})))
    );
    let mut c = server.client().await;
    assert_eq!(final_of(&mut c, again.id).await.status, TaskStatus::Failed);

    // Only a failed, cancelled or timed-out task: one line on stderr.
    let ok = c.submit(&spec("echo", json!(1))).await.unwrap();
    result_of(&mut c, ok.id).await;
    let out = taskwire(&["retry", "--url", url, &ok.id.to_string()]).await;
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        format!(
            "taskwire: invalid_payload: only a failed, cancelled or timed-out task can be retried; \
             task {} is succeeded\n",
            ok.id
        )
    );
}

#[tokio::test]
async fn errors_are_one_line_each() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let id = uuid::Uuid::now_v7().to_string();
    let out = taskwire(&["status", "--url", &url, &id]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("taskwire: cannot connect to {url}: ")),
        "{err}"
    );
    let out = taskwire(&["submit", "--url", &url, "--kind", "echo", "--input", "{bad"]).await;
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("taskwire: --input is not valid JSON: "),
        "{err}"
    );
    assert!(
        !err.contains("Caused by") && !err.contains("Error:"),
        "{err}"
    );
}

#[tokio::test]
async fn watch_prints_a_line_per_push_when_not_a_terminal() {
    let server = TestServer::start(&[]).await;
    let url = server.url.as_str();
    let res = reqwest::Client::new()
        .post(server.at("/kinds/sleep/pause"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let c = server.client().await;
    c.submit(&spec("sleep", json!({"ms": 1}))).await.unwrap();
    let out = taskwire(&["watch", "--url", url, "--count", "3"]).await;
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in lines {
        assert!(line.contains(" queued=1 running=0 "), "{line}");
        assert!(line.contains(" workers=2 "), "{line}");
        assert!(
            line.ends_with(" | sleep (paused) queued=1 running=0 wait_ms=-/- run_ms=-/-"),
            "{line}"
        );
        assert!(!line.contains('\x1b'), "no terminal codes: {line}");
    }
}
