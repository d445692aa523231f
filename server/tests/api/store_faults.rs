//! The durable store under faults: a full disk (a real tmpfs that fills up)
//! and a database file deleted or replaced while the server runs. An ack
//! that says `ok` is a stored task, a `result` is a stored final state,
//! health says degraded meanwhile, and work resumes once space returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use app::{ErrorCode, Task, TaskId, TaskStatus};
use serde_json::json;
use taskwire::client::{ClientError, Push};

use crate::helpers::*;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it). The test
    /// machines run as root; anywhere else this says why it cannot run.
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (or CAP_SYS_ADMIN): this test fills a real disk"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the file system `size` in all: space returns.
    fn resize(&self, size: &str) {
        let status = StdCommand::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount")
            .arg("-l")
            .arg(self.path())
            .status();
    }
}

async fn healthz(server: &TestServer) -> (u16, String) {
    let res = reqwest::get(server.at("/healthz")).await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// Polls `GET /healthz` until it answers `status`.
async fn wait_health(server: &TestServer, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (got, body) = healthz(server).await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz stayed {got} {body:?}, expected {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every task of `ids` to its final state: from `subscribe` if it has
/// ended, else from its `result` push. Results pushed before are in `seen`.
async fn finals(
    c: &mut taskwire::client::Client,
    ids: &[TaskId],
    seen: &mut HashMap<TaskId, Task>,
) -> HashMap<TaskId, Task> {
    let mut done = HashMap::new();
    for id in ids {
        if let Some(t) = seen.get(id) {
            done.insert(*id, t.clone());
            continue;
        }
        let snap = c.subscribe(*id).await.expect("every acked task is known");
        if snap.status.is_final() {
            done.insert(*id, snap);
        }
    }
    while done.len() < ids.len() {
        if let Push::Result(t) = c.next_push_within(WAIT).await.expect("results of the rest") {
            seen.insert(t.id, (*t).clone());
            if ids.contains(&t.id) {
                done.insert(t.id, *t);
            }
        }
    }
    done
}

#[tokio::test]
async fn a_full_disk_refuses_new_tasks_loses_no_acked_one_and_recovers_by_itself() {
    let disk = Tmpfs::mount("1m");
    let data = disk.path().join("data");
    let data = data.to_str().unwrap().to_owned();
    let flags = ["--data-dir", data.as_str(), "--workers", "1"];
    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let pad = "x".repeat(8 * 1024);

    // Submit until the disk is full: every `ok` ack is a stored task.
    let mut acked = Vec::new();
    let mut seen: HashMap<TaskId, Task> = HashMap::new();
    let refusal = loop {
        assert!(acked.len() < 1000, "a 1 MiB disk never filled up");
        match c
            .submit(&spec("sleep", json!({"ms": 20, "pad": pad})))
            .await
        {
            Ok(t) => acked.push(t.id),
            Err(ClientError::Server(e)) => break e,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(!acked.is_empty(), "the very first task was refused");
    assert_eq!(refusal.code, ErrorCode::Internal, "{refusal:?}");
    assert!(refusal.message.contains("cannot write"), "{refusal:?}");

    // Degraded: health says why, HTTP refuses with 503, and so does a cancel
    // (a cancel that cannot be stored would come undone at restart).
    let body = wait_health(&server, 503).await;
    assert!(
        body.starts_with("degraded: the task store cannot write"),
        "{body}"
    );
    let res = reqwest::Client::new()
        .post(server.at("/tasks"))
        .json(&json!({"kind": "echo", "input": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert_eq!(error_code(res).await, ErrorCode::Internal);

    // Space returns: the server writes again by itself, sends what it held,
    // and takes new work.
    disk.resize("64m");
    assert_eq!(wait_health(&server, 200).await, "ok\n");
    let before = finals(&mut c, &acked, &mut seen).await;
    for t in before.values() {
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    }
    let after_recovery = c.submit(&spec("echo", json!({"n": 1}))).await.unwrap();
    let echoed = result_of(&mut c, after_recovery.id).await;
    assert_eq!(echoed.output, Some(app::Json::from(json!({"n": 1}))));

    // Killed outright: every acked task, and every result pushed, is there
    // exactly as announced.
    assert!(signal(server.pid(), libc::SIGKILL));
    let _ = server.child.wait().await;
    drop(c);
    let server = TestServer::start(&flags).await;
    let c = server.client().await;
    for (id, announced) in seen.iter().filter(|(id, _)| acked.contains(id)) {
        let stored = c.subscribe(*id).await.expect("a pushed result is stored");
        assert_eq!(&stored, announced);
    }
    for id in &acked {
        let stored = c.subscribe(*id).await.expect("an acked task is stored");
        assert_eq!(stored.status, TaskStatus::Succeeded);
    }
    let stored = c.subscribe(after_recovery.id).await.unwrap();
    assert_eq!(stored.output, Some(app::Json::from(json!({"n": 1}))));
}

/// Starts a durable server in a fresh directory.
async fn durable() -> (tempfile::TempDir, TestServer, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let server = TestServer::start(&["--data-dir", data.as_str()]).await;
    let db = dir.path().join(taskwire::store::DB_FILE);
    (dir, server, db)
}

#[tokio::test]
async fn a_deleted_database_file_is_noticed_and_nothing_more_is_acked() {
    let (_dir, server, db) = durable().await;
    let c = server.client().await;
    c.submit(&spec("echo", json!(1))).await.unwrap();
    std::fs::remove_file(&db).unwrap();

    let body = wait_health(&server, 503).await;
    assert!(body.contains("was deleted"), "{body}");
    let refusal = refused(c.submit(&spec("echo", json!(2))).await);
    assert_eq!(refusal.code, ErrorCode::Internal);
    assert!(refusal.message.contains("was deleted"), "{refusal:?}");
}

#[tokio::test]
async fn a_replaced_database_file_is_noticed_and_nothing_more_is_acked() {
    let (dir, server, db) = durable().await;
    let c = server.client().await;
    c.submit(&spec("echo", json!(1))).await.unwrap();
    let other = dir.path().join("other");
    std::fs::write(&other, b"someone else's file").unwrap();
    std::fs::rename(&other, &db).unwrap();

    let body = wait_health(&server, 503).await;
    assert!(body.contains("was replaced"), "{body}");
    let refusal = refused(c.submit(&spec("echo", json!(2))).await);
    assert_eq!(refusal.code, ErrorCode::Internal);
}

fn refused(answer: Result<Task, ClientError>) -> app::ErrorBody {
    match answer {
        Err(ClientError::Server(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_small_disk_is_not_filled_by_the_write_ahead_log() {
    // 34 MB of zeros would fill it: the log is left to grow as it is used.
    let disk = Tmpfs::mount("64m");
    let data = disk.path().join("data");
    let flags = ["--data-dir", data.to_str().unwrap(), "--workers", "1"];
    let server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let t = c.submit(&spec("echo", json!("small"))).await.unwrap();
    assert_eq!(result_of(&mut c, t.id).await.status, TaskStatus::Succeeded);
    let wal = data.join(format!("{}-wal", taskwire::store::DB_FILE));
    let len = std::fs::metadata(&wal).unwrap().len();
    assert!(len < 1 << 20, "the log is {len} bytes on a 64 MB disk");
}
