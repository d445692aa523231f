//! The `taskwire` CLI against a real server.

use std::process::Output;

use app::{Task, TaskStatus};
use serde_json::json;

use crate::helpers::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The task JSON printed after the id line.
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
        (TaskStatus::Succeeded, Some(json!({"count": 168})))
    );

    let out = taskwire(&[
        "submit",
        "--url",
        url,
        "--kind",
        "fail",
        "--input",
        r#"{"message":"no"}"#,
        "--wait",
    ])
    .await;
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
