//! Looking up tasks (v1.1): `list` / `GET /tasks` pages and filters, and
//! `GET /tasks/{id}/attempts`, on each store: memory, the durable store
//! (across a restart too) and a cluster (listed from another node).

use app::{AttemptOutcome, Attempts, ErrorCode, ListPage, Task, TaskId, TaskSpec, TaskStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use taskwire::client::{Client, ClientError, Push};

use crate::cluster::Cluster;
use crate::helpers::*;

/// Ten keyed `echo` tasks (`grp:a:0..4`, `grp:b:5..9`) and one `fail`,
/// all finished: their ids, oldest first.
async fn fill(c: &mut Client) -> Vec<TaskId> {
    let mut ids = Vec::new();
    for i in 0..10 {
        let group = if i < 5 { "a" } else { "b" };
        let t = c
            .submit(&TaskSpec {
                key: Some(format!("grp:{group}:{i}")),
                ..spec("echo", json!(i))
            })
            .await
            .unwrap();
        ids.push(t.id);
    }
    ids.push(
        c.submit(&spec("fail", json!({"message": "no"})))
            .await
            .unwrap()
            .id,
    );
    // Results come in any order: wait for all of them.
    let mut left: std::collections::HashSet<TaskId> = ids.iter().copied().collect();
    while !left.is_empty() {
        let id = push_where(c, |p| match p {
            Push::Result(t) => Some(t.id),
            _ => None,
        })
        .await;
        left.remove(&id);
    }
    ids
}

/// Every page of `query` over the socket, `limit` at a time.
async fn all_pages(c: &Client, query: Value, limit: u32) -> Vec<TaskId> {
    let mut seen = Vec::new();
    let mut q = query;
    q["limit"] = json!(limit);
    loop {
        let page = c.list(q.clone()).await.unwrap();
        assert!(page.ok);
        assert!(page.tasks.len() <= limit as usize);
        seen.extend(page.tasks.iter().map(|t| t.id));
        match page.next {
            Some(next) => q["before"] = json!(next.to_string()),
            None => return seen,
        }
    }
}

fn newest_first(ids: &[TaskId]) -> Vec<TaskId> {
    ids.iter().rev().copied().collect()
}

async fn get_page(server: &TestServer, query: &str) -> ListPage {
    let res = reqwest::get(server.at(&format!("/tasks?{query}")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    res.json().await.unwrap()
}

/// The lookups one server answers about tasks `fill` made (on it, or on
/// another node of its cluster).
async fn lists_and_filters(server: &TestServer, ids: &[TaskId]) {
    let c = server.client().await;
    assert_eq!(all_pages(&c, json!({}), 4).await, newest_first(ids));
    assert_eq!(
        all_pages(&c, json!({"status": "failed"}), 4).await,
        vec![ids[10]]
    );
    assert_eq!(
        all_pages(&c, json!({"kind": "echo"}), 3).await,
        newest_first(&ids[..10])
    );
    assert_eq!(
        all_pages(
            &c,
            json!({"kind": "echo", "status": "succeeded", "key": "grp:a:3"}),
            3
        )
        .await,
        vec![ids[3]]
    );
    assert_eq!(
        all_pages(&c, json!({"key": "grp:b:*"}), 2).await,
        newest_first(&ids[5..10])
    );
    assert_eq!(
        all_pages(&c, json!({"key": "grp:*", "status": "failed"}), 2).await,
        vec![]
    );
    assert_eq!(all_pages(&c, json!({"kind": "sleep"}), 2).await, vec![]);

    // HTTP: the same page as the body; empty parameters filter nothing.
    let page = get_page(
        server,
        "status=succeeded&kind=echo&key=grp%3Aa%3A*&limit=2&before=",
    )
    .await;
    assert_eq!(
        page.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let next = page.next.expect("more pages").to_string();
    let page = get_page(server, &format!("key=grp:a:*&limit=2&before={next}")).await;
    assert_eq!(
        page.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let page = get_page(
        server,
        &format!("key=grp:a:*&limit=2&before={}", page.next.unwrap()),
    )
    .await;
    assert_eq!(
        page.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(page.next, None);
    let page = get_page(server, "").await;
    assert_eq!(page.tasks.len(), 11);
    assert_eq!(page.tasks[0].status, TaskStatus::Failed);
    assert_eq!(page.tasks[1].output, Some(app::Json::from(json!(9))));

    // Bad queries name their field, on both.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("status=bogus", "status"),
        ("before=nope", "before"),
    ] {
        let res = reqwest::get(server.at(&format!("/tasks?{query}")))
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{query}: {}", res.status());
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_payload", "{query}");
        assert_eq!(body["error"]["field"], field, "{query}");
    }
    let raw = c
        .request(app::events::LIST, json!({"limit": 501}))
        .await
        .unwrap();
    assert_eq!(raw["ok"], false);
    assert_eq!(raw["error"]["code"], "invalid_payload");
    assert_eq!(raw["error"]["field"], "limit");
    match c.list(json!({"kind": 3})).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::InvalidPayload),
        other => panic!("{other:?}"),
    }
}

/// A `fail` task retried twice: three failed attempts, oldest first.
async fn retried(c: &mut Client) -> TaskId {
    let t = c
        .submit(&TaskSpec {
            retry_on_failure: true,
            backoff_ms: 0,
            max_attempts: 3,
            ..spec("fail", json!({"message": "again"}))
        })
        .await
        .unwrap();
    let done = result_of(c, t.id).await;
    assert_eq!((done.status, done.attempt), (TaskStatus::Failed, 3));
    t.id
}

async fn attempts_of(server: &TestServer, id: TaskId) -> Attempts {
    let res = reqwest::get(server.at(&format!("/tasks/{id}/attempts")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

fn check_retried(attempts: &Attempts) {
    let got: Vec<_> = attempts
        .attempts
        .iter()
        .map(|a| (a.attempt, a.outcome))
        .collect();
    assert_eq!(
        got,
        (1..=3)
            .map(|n| (n, AttemptOutcome::Failed))
            .collect::<Vec<_>>()
    );
    for a in &attempts.attempts {
        assert!(a.worker.is_some(), "{a:?}");
        let finished = a.finished_at.expect("finished");
        assert!(finished >= a.started_at, "{a:?}");
        let e = a.error.as_ref().expect("an error");
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::TaskFailed, "again")
        );
    }
}

/// Attempts of a retried task, of a task that ran once, and of none.
async fn attempts_everywhere(server: &TestServer, submit_to: &TestServer) {
    let mut c = submit_to.client().await;
    let id = retried(&mut c).await;
    check_retried(&attempts_of(server, id).await);
    let once = c.submit(&spec("echo", json!(1))).await.unwrap();
    result_of(&mut c, once.id).await;
    let got = attempts_of(server, once.id).await.attempts;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].attempt, got[0].outcome),
        (1, AttemptOutcome::Succeeded)
    );
    assert_eq!(got[0].error, None);
    let queued: Task = c
        .submit(&TaskSpec {
            delay_ms: Some(3_600_000),
            ..spec("echo", json!(2))
        })
        .await
        .unwrap();
    assert!(attempts_of(server, queued.id).await.attempts.is_empty());
    let res = reqwest::get(server.at(&format!("/tasks/{}/attempts", uuid::Uuid::now_v7())))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(res).await, ErrorCode::NotFound);
}

#[tokio::test]
async fn memory_lists_and_attempts() {
    let server = TestServer::start(&[]).await;
    let ids = fill(&mut server.client().await).await;
    lists_and_filters(&server, &ids).await;
    attempts_everywhere(&server, &server).await;
}

#[tokio::test]
async fn durable_lists_and_attempts_and_keeps_them_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = ["--data-dir", data.as_str()];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let ids = fill(&mut c).await;
    lists_and_filters(&server, &ids).await;
    attempts_everywhere(&server, &server).await;
    let id = retried(&mut c).await;
    drop(c);
    assert!(signal(server.pid(), libc::SIGTERM));
    let _ = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap();

    let server = TestServer::start(&flags).await;
    check_retried(&attempts_of(&server, id).await);
    let page = get_page(&server, "kind=fail&limit=1").await;
    assert_eq!(page.tasks[0].id, id);
}

#[tokio::test]
async fn a_cluster_node_lists_and_reads_attempts_of_tasks_another_took() {
    let cluster = Cluster::new().await;
    let a = cluster.node(&[]).await;
    let b = cluster.node(&["--workers", "0"]).await;
    let ids = fill(&mut a.client().await).await;
    lists_and_filters(&b, &ids).await;
    attempts_everywhere(&b, &a).await;
    drop((a, b));
    cluster.drop().await;
}

#[tokio::test]
async fn taskwire_list_pages_filters_and_prints_json() {
    let server = TestServer::start(&[]).await;
    let ids = fill(&mut server.client().await).await;
    let url = server.url.as_str();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();

    let out = taskwire(&["list", "--url", url, "--kind", "echo", "--limit", "3"]).await;
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("ID "), "{lines:?}");
    assert!(lines[1].starts_with(&ids[9].to_string()), "{lines:?}");
    assert!(lines[1].contains("grp:b:9") && lines[1].contains("succeeded"));
    let more = text(&out.stderr);
    let cursor = more
        .trim()
        .strip_prefix("more: --before ")
        .unwrap_or_else(|| panic!("{more:?}"))
        .to_owned();
    let out = taskwire(&["list", "--url", url, "--kind", "echo", "--before", &cursor]).await;
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert!(lines[1].starts_with(&ids[6].to_string()), "{lines:?}");
    assert!(out.stderr.is_empty(), "the last page: {out:?}");

    let out = taskwire(&[
        "list", "--url", url, "--key", "grp:a:*", "--limit", "2", "--all", "--json",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<TaskId> = serde_json::from_value::<Vec<Task>>(body["tasks"].clone())
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, newest_first(&ids[..5]));
    assert_eq!(body["next"], Value::Null);

    let out = taskwire(&["list", "--url", url, "--status", "bogus"]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("invalid_payload") && err.contains("status"),
        "{err}"
    );
}
