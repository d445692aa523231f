//! The durable store: a server killed with SIGKILL loses no acked task and
//! runs no finished task again; workers killed under load lose nothing; a
//! corrupt data directory is a clear error.

use std::collections::HashMap;
use std::time::Duration;

use app::{Task, TaskId, TaskStatus};
use serde_json::json;
use taskwire::client::Push;

use crate::helpers::*;

#[tokio::test]
async fn sigkill_mid_run_then_restart_every_acked_task_ends_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = [
        "--data-dir",
        data.as_str(),
        "--workers",
        "1",
        "--io-slots",
        "16",
    ];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let total = 2000;
    let mut acked: Vec<TaskId> = Vec::new();
    for chunk in 0..(total / 500) {
        let specs: Vec<_> = (0..500)
            .map(|i| spec("sleep", json!({"ms": 3 + (chunk * 500 + i) % 5})))
            .collect();
        acked.extend(c.submit_batch(&specs).await.unwrap().iter().map(|t| t.id));
    }
    // Let part of them finish, then kill the server outright.
    let mut before: HashMap<TaskId, Task> = HashMap::new();
    while before.len() < 300 {
        if let Some(Push::Result(t)) = c.next_push_within(WAIT).await {
            before.insert(t.id, *t);
        }
    }
    assert!(signal(server.pid(), libc::SIGKILL));
    let _ = server.child.wait().await;
    drop(c);

    let restarted_at = app::Timestamp::now();
    let server = TestServer::start(&flags).await;
    let mut c = server.client().await;
    let mut after: HashMap<TaskId, Task> = HashMap::new();
    for id in &acked {
        let snap = c
            .subscribe(*id)
            .await
            .expect("every acked task is known after restart");
        if snap.status.is_final() {
            after.insert(*id, snap);
        }
    }
    while after.len() < acked.len() {
        match c.next_push_within(WAIT).await.expect("results of the rest") {
            Push::Result(t) => {
                assert!(
                    after.insert(t.id, *t).is_none(),
                    "a second result for one task"
                );
            }
            _ => continue,
        }
    }
    let ran_after_restart = after
        .values()
        .filter(|t| t.finished_at.is_some_and(|f| f > restarted_at))
        .count();
    assert!(
        ran_after_restart > 0,
        "the kill came after everything had finished: proves nothing"
    );
    for id in &acked {
        let t = &after[id];
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        assert_eq!(
            t.output.as_ref().unwrap().to_value()["slept_ms"],
            t.input.to_value()["ms"]
        );
        if let Some(old) = before.get(id) {
            // Finished before the kill: the same final task, not run again.
            assert_eq!(old, t);
        }
    }
    // Nothing more arrives: every task ended exactly once.
    assert!(
        c.next_push_within(Duration::from_millis(300))
            .await
            .is_none_or(|p| matches!(p, Push::Stats(_)))
    );
}

#[tokio::test]
async fn workers_killed_under_load_lose_nothing_and_rerun_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let server = TestServer::start(&[
        "--data-dir",
        data.as_str(),
        "--workers",
        "2",
        "--io-slots",
        "8",
    ])
    .await;
    let mut c = server.client().await;
    let specs: Vec<_> = (0..400)
        .map(|i| {
            let mut s = spec("sleep", json!({"ms": 5 + i % 7}));
            s.max_attempts = 20;
            s
        })
        .collect();
    let ids: Vec<TaskId> = c
        .submit_batch(&specs)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let mut results: HashMap<TaskId, Task> = HashMap::new();
    // Every 50 results, kill a busy worker. A worker already killed may
    // still be listed (busy) until its supervisor has seen it exit: it is
    // skipped, and the kill waits for the next result.
    let mut killed: Vec<u32> = Vec::new();
    while results.len() < ids.len() {
        match c.next_push_within(WAIT).await.expect("results in time") {
            Push::Result(t) => {
                assert!(
                    results.insert(t.id, *t).is_none(),
                    "a second result for one task"
                );
                if results.len() >= 50 * (killed.len() + 1)
                    && killed.len() < 6
                    && let Some(pid) = server
                        .stats()
                        .await
                        .workers
                        .iter()
                        .filter(|w| w.running > 0)
                        .filter_map(|w| w.pid)
                        .find(|pid| !killed.contains(pid))
                    && signal(pid, libc::SIGKILL)
                {
                    killed.push(pid);
                }
            }
            _ => continue,
        }
    }
    let kills = killed.len();
    assert!(kills >= 3, "too few kills to mean anything ({kills})");
    let retried = results.values().filter(|t| t.attempt > 1).count();
    assert!(retried > 0, "no task was retried");
    for t in results.values() {
        assert_eq!(t.status, TaskStatus::Succeeded);
    }
    // The store agrees with what was pushed: nothing changed after it was final.
    let http = reqwest::Client::new();
    for id in ids.iter().step_by(20) {
        let stored: Task = http
            .get(server.at(&format!("/tasks/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(&stored, &results[id]);
    }
}

#[tokio::test]
async fn a_corrupt_or_unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(taskwire::store::DB_FILE),
        b"garbage, not sqlite",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0")
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A data dir path that is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--data-dir",
        ])
        .arg(&file)
        .env("RUST_BACKTRACE", "0")
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("data directory"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn sigterm_finishes_running_work_refuses_new_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = [
        "--data-dir",
        data.as_str(),
        "--workers",
        "1",
        "--io-slots",
        "1",
    ];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let running = c.submit(&spec("sleep", json!({"ms": 400}))).await.unwrap();
    push_where(&mut c, |p| {
        matches!(p, Push::Status(ref s) if s.task_id == running.id && s.status == TaskStatus::Running)
            .then_some(())
    })
    .await;
    let queued = c.submit(&spec("echo", json!("later"))).await.unwrap();
    // The echo waits behind the sleep: one I/O slot.
    assert!(signal(server.pid(), libc::SIGTERM));
    // New work is refused once draining has begun.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut accepted = vec![queued.id];
    loop {
        match c.submit(&spec("echo", json!("refused?"))).await {
            Ok(t) => accepted.push(t.id),
            Err(taskwire::client::ClientError::Server(e)) => {
                assert_eq!(e.code, app::ErrorCode::QueueFull);
                assert!(e.message.contains("shutting down"), "{e}");
                break;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The running task finishes and its result still reaches us.
    assert_eq!(
        result_of(&mut c, running.id).await.status,
        TaskStatus::Succeeded
    );
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    // The queued ones were kept and run after a restart.
    let server = TestServer::start(&flags).await;
    let mut c = server.client().await;
    for id in accepted {
        let snap = c.subscribe(id).await.unwrap();
        let done = if snap.status.is_final() {
            snap
        } else {
            result_of(&mut c, id).await
        };
        assert_eq!(done.status, TaskStatus::Succeeded);
        assert_eq!(done.attempt, 1);
    }
}

#[tokio::test]
async fn sigterm_past_the_grace_period_requeues_without_counting_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = [
        "--data-dir",
        data.as_str(),
        "--workers",
        "1",
        "--shutdown-grace-ms",
        "200",
    ];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let mut s = spec("sleep", json!({"ms": 1500}));
    s.max_attempts = 1;
    let long = c.submit(&s).await.unwrap();
    push_where(&mut c, |p| {
        matches!(p, Push::Status(ref s) if s.task_id == long.id && s.status == TaskStatus::Running)
            .then_some(())
    })
    .await;
    assert!(signal(server.pid(), libc::SIGTERM));
    let back = push_where(&mut c, |p| match p {
        Push::Status(s) if s.task_id == long.id => Some(s),
        _ => None,
    })
    .await;
    assert_eq!((back.status, back.attempt), (TaskStatus::Queued, 0));
    let status = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");

    // Its only attempt was not used up: it runs and succeeds after restart.
    let server = TestServer::start(&flags).await;
    let mut c = server.client().await;
    let snap = c.subscribe(long.id).await.unwrap();
    let done = if snap.status.is_final() {
        snap
    } else {
        result_of(&mut c, long.id).await
    };
    assert_eq!((done.status, done.attempt), (TaskStatus::Succeeded, 1));
}

#[tokio::test]
async fn finished_tasks_past_the_retention_age_are_dropped_from_memory_and_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = ["--data-dir", data.as_str(), "--retain-secs", "1"];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let t = c.submit(&spec("echo", json!("short-lived"))).await.unwrap();
    result_of(&mut c, t.id).await;
    let url = server.at(&format!("/tasks/{}", t.id));
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while http.get(&url).send().await.unwrap().status() != reqwest::StatusCode::NOT_FOUND {
        assert!(tokio::time::Instant::now() < deadline, "never pruned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Gone from the store as well: not back after a restart. SIGTERM lets
    // the pruning commit land first.
    assert!(signal(server.pid(), libc::SIGTERM));
    let _ = tokio::time::timeout(WAIT, server.child.wait())
        .await
        .unwrap();
    let server = TestServer::start(&flags).await;
    let res = reqwest::get(server.at(&format!("/tasks/{}", t.id)))
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn servers_on_port_0_with_default_storage_run_side_by_side() {
    // No --memory, no --data-dir: each port-0 server gets its own temporary
    // store, so several can run at once and none writes to the data home.
    let home = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    for _ in 0..2 {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1"])
            .env("XDG_DATA_HOME", home.path())
            .env("TASKWIRE_SITE_ROOT", "/nonexistent")
            .env("TASKWIRE_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let url = line
            .strip_prefix("taskwire listening on ")
            .unwrap()
            .to_owned();
        let mut c = taskwire::client::Client::connect_with(&url, WAIT)
            .await
            .unwrap();
        let t = c
            .submit(&spec("echo", json!("side by side")))
            .await
            .unwrap();
        assert_eq!(
            result_of(&mut c, t.id).await.output,
            Some(app::Json::from(json!("side by side")))
        );
        children.push(child);
    }
    for mut child in children {
        assert!(signal(child.id().unwrap(), libc::SIGTERM));
        let status = tokio::time::timeout(WAIT, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
    }
    assert!(
        !home.path().join("taskwire").exists(),
        "port-0 servers wrote to the data home"
    );
}

#[tokio::test]
async fn a_task_is_stored_whole_once_then_only_its_state() {
    use crate::pauses::{sample, set_kind};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let server = TestServer::start(&["--data-dir", data.as_str()]).await;
    let writes = || async {
        let text = metrics_text(&server).await;
        let count = |series: &str| sample(&text, series).unwrap_or(0.0) as u64;
        (
            count("taskwire_store_task_writes_total{write=\"insert\"}"),
            count("taskwire_store_task_writes_total{write=\"update\"}"),
            count("taskwire_store_commits_total"),
        )
    };
    // Held queued by a pause: each is acked once its row is stored.
    assert_eq!(set_kind(&server, "sleep", "pause").await.0, 200);
    let mut c = server.client().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(c.submit(&spec("sleep", json!({"ms": 1}))).await.unwrap().id);
    }
    let (inserts, updates, commits) = writes().await;
    assert_eq!((inserts, updates), (3, 0));
    assert!((1..=3).contains(&commits), "{commits} commits");
    // Running and then final: their state only, never the task again.
    assert_eq!(set_kind(&server, "sleep", "resume").await.0, 200);
    for id in &ids {
        assert_eq!(result_of(&mut c, *id).await.status, TaskStatus::Succeeded);
    }
    let (inserts, updates, _) = writes().await;
    assert_eq!(inserts, 3);
    assert!((3..=6).contains(&updates), "{updates} updates");
}
