//! What a remote worker may not do (security review, issue 8): offer kinds
//! that are markup or the server's own, offer too many, flood the server
//! with progress, hide its remote kinds behind no token, or keep tasks by
//! freezing; and the `taskwire remote-worker` SDK under a burst.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::{ErrorCode, TaskStatus, events};
use futures_util::FutureExt;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use taskwire::client::Push;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::helpers::*;

/// A kind name that closes the page's `<title>` and runs script.
const INJECTED: &str = "</title><img src=x onerror=alert(1)>";

type Outcome = Arc<Mutex<Option<oneshot::Sender<Result<(), String>>>>>;

fn fire(slot: &Outcome, v: Result<(), String>) {
    if let Some(tx) = slot.lock().unwrap().take() {
        let _ = tx.send(v);
    }
}

/// Connects to `/worker` with `auth`: the connected socket, or the message
/// of its `connect_error`.
async fn worker(server: &TestServer, auth: Value) -> Result<SioClient, String> {
    worker_at(&server.url, auth).await
}

async fn worker_at(url: &str, auth: Value) -> Result<SioClient, String> {
    let (tx, rx) = oneshot::channel();
    let slot: Outcome = Arc::new(Mutex::new(Some(tx)));
    let (up, err) = (slot.clone(), slot);
    let sio = ClientBuilder::new(url)
        .namespace(events::WORKER_NS)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .auth(auth)
        .on(Event::Connect, move |_, _| {
            fire(&up, Ok(()));
            async {}.boxed()
        })
        .on(Event::Error, move |payload, _| {
            if let Payload::Text(values) = payload {
                let text = values.first().and_then(Value::as_str).unwrap_or_default();
                // "Received an ConnectError frame: {"message": "..."}"
                let message = text
                    .split_once(": ")
                    .and_then(|(_, data)| serde_json::from_str::<Value>(data).ok())
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| text.to_owned());
                fire(&err, Err(message));
            }
            async {}.boxed()
        })
        .connect()
        .await
        .expect("engine.io connect");
    tokio::time::timeout(WAIT, rx)
        .await
        .expect("no connect nor connect_error")
        .expect("handshake dropped")
        .map(|()| sio)
}

fn hello(kinds: &[&str]) -> Value {
    json!({"name": "w", "kinds": kinds, "concurrency": 1})
}

async fn refusal(server: &TestServer, auth: Value) -> String {
    match worker(server, auth.clone()).await {
        Err(message) => message,
        Ok(_) => panic!("a worker with {auth} was accepted"),
    }
}

#[tokio::test]
async fn a_worker_offering_markup_or_the_servers_own_kinds_is_refused() {
    let server = TestServer::start(&["--workers", "1"]).await;
    let err = refusal(&server, hello(&["shout", INJECTED])).await;
    assert!(err.starts_with("invalid_payload: kind "), "{err}");
    assert!(err.contains("[A-Za-z0-9_.:-]"), "{err}");
    for own in ["echo", "sha256"] {
        let err = refusal(&server, hello(&["shout", own])).await;
        assert!(err.starts_with("invalid_payload: "), "{err}");
        assert!(err.contains(&format!("kind \"{own}\"")), "{err}");
    }
    let many: Vec<String> = (0..65).map(|i| format!("k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = refusal(&server, hello(&many)).await;
    assert!(
        err.starts_with("invalid_payload: a worker may offer at most 64 kinds"),
        "{err}"
    );

    // Nothing refused was registered: the markup kind stays unknown, so no
    // task (and no page) can have it; echo still runs locally.
    let mut c = server.client().await;
    let e = c.submit(&spec(INJECTED, json!(1))).await.unwrap_err();
    assert!(
        matches!(e, taskwire::client::ClientError::Server(ref b) if b.code == ErrorCode::UnknownKind),
        "{e}"
    );
    let t = c.submit(&spec("echo", json!("local"))).await.unwrap();
    let done = result_of(&mut c, t.id).await;
    assert!(
        !done.worker.unwrap().0.contains('#'),
        "a local worker ran it"
    );

    // A safe kind of its own is fine.
    worker(&server, hello(&["shout", "report.v2:pdf-x_1"]))
        .await
        .expect("safe kinds are accepted");

    // Without local workers, remote workers are how the built-in kinds run.
    let remote_only = TestServer::start(&["--workers", "0"]).await;
    worker(&remote_only, hello(&["echo"]))
        .await
        .expect("echo may be remote on a server without workers");
}

#[tokio::test]
async fn remote_kinds_are_capped_in_total() {
    let server = TestServer::start(&["--workers", "0"]).await;
    let mut held = Vec::new();
    for w in 0..16 {
        let kinds: Vec<String> = (0..64).map(|i| format!("w{w}k{i}")).collect();
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        held.push(
            worker(&server, hello(&kinds))
                .await
                .expect("within the cap"),
        );
    }
    let err = refusal(&server, hello(&["one-more"])).await;
    assert!(
        err.starts_with("invalid_payload: remote workers may offer at most 1024 kinds in all"),
        "{err}"
    );
    // Kinds already offered take no room.
    held.push(worker(&server, hello(&["w0k0"])).await.expect("known kind"));
    let kinds: Vec<app::KindInfo> = reqwest::get(server.at("/kinds"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!kinds.iter().any(|k| k.kind == "one-more"));
    // A worker leaving makes room.
    let gone = held.remove(0);
    gone.disconnect().await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match worker(&server, hello(&["one-more"])).await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "never made room: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TOKEN: &str = "s3cret";

#[tokio::test]
async fn pages_list_remote_kinds_only_to_a_viewer_with_the_token() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/taskwire.js"), "").unwrap();
    let root = site.path().to_str().unwrap();
    let server =
        TestServer::start(&["--site-root", root, "--token", TOKEN, "--workers", "0"]).await;
    let auth = json!({"token": TOKEN, "name": "w", "kinds": ["private-report"], "concurrency": 1});
    let _w = worker(&server, auth).await.expect("worker with the token");

    let http = reqwest::Client::new();
    let page = |req: reqwest::RequestBuilder| async move {
        let res = req.header(ACCEPT, "text/html").send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        res.text().await.unwrap()
    };
    let anonymous = page(http.get(server.at("/"))).await;
    assert!(anonymous.contains(r#"<option value="echo""#), "{anonymous}");
    assert!(!anonymous.contains("private-report"), "{anonymous}");
    let dashboard = page(http.get(server.at("/dashboard"))).await;
    assert!(!dashboard.contains("private-report"));
    let wrong = page(http.get(server.at("/?token=nope"))).await;
    assert!(!wrong.contains("private-report"));

    let bearer = page(
        http.get(server.at("/"))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}")),
    )
    .await;
    assert!(
        bearer.contains(r#"<option value="private-report""#),
        "{bearer}"
    );
    let query = page(http.get(server.at(&format!("/?token={TOKEN}")))).await;
    assert!(query.contains(r#"<option value="private-report""#));
}

/// Engine.IO heartbeat of the server in the freeze test: a frozen
/// `taskwire remote-worker` is found out within `2 × PING_INTERVAL +
/// PING_TIMEOUT` (rust_socketio sends a pong unasked at connect, so the
/// server's heartbeat is one pong behind; see docs/protocol-notes.md).
/// Short, but not so short that the test's own client, on a loaded
/// machine, misses a pong.
const PING_INTERVAL: Duration = Duration::from_millis(500);
const PING_TIMEOUT: Duration = Duration::from_millis(1000);

// Two threads: the client's socket answers pings while the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_remote_worker_loses_its_tasks_within_the_heartbeat_bound() {
    let interval = PING_INTERVAL.as_millis().to_string();
    let timeout = PING_TIMEOUT.as_millis().to_string();
    let server = TestServer::start(&[
        "--workers",
        "0",
        "--ping-interval-ms",
        &interval,
        "--ping-timeout-ms",
        &timeout,
    ])
    .await;
    let frozen = remote_worker(&server, "frozen", "sleep", 2, None);
    let frozen_pid = frozen.id().expect("worker pid");
    server.wait_workers(1).await;
    let mut c = server.client().await;
    let mut again = spec("sleep", json!({"ms": 3000}));
    again.max_attempts = 2;
    let mut last = spec("sleep", json!({"ms": 600_000}));
    last.max_attempts = 1;
    let again = c.submit(&again).await.unwrap();
    let last = c.submit(&last).await.unwrap();
    let mut running = 0;
    while running < 2 {
        push_where(&mut c, |p| {
            matches!(p, Push::Status(ref s) if s.status == TaskStatus::Running).then_some(())
        })
        .await;
        running += 1;
    }

    // SIGSTOP: the process keeps its TCP connection open but answers nothing.
    assert!(signal(frozen_pid, libc::SIGSTOP));
    let stopped_at = Instant::now();
    // Both pushes come from one disconnect, in either order.
    let (mut back, mut lost, mut noticed) = (None, None, None);
    while back.is_none() || lost.is_none() {
        match push_where(&mut c, Some).await {
            Push::Status(s) if s.task_id == again.id => {
                noticed.get_or_insert_with(|| stopped_at.elapsed());
                back = Some(s);
            }
            Push::Result(t) if t.id == last.id => {
                noticed.get_or_insert_with(|| stopped_at.elapsed());
                lost = Some(t);
            }
            _ => {}
        }
    }
    let (back, lost, noticed) = (back.unwrap(), lost.unwrap(), noticed.unwrap());
    assert_eq!(
        (back.status, back.attempt, back.worker),
        (TaskStatus::Queued, 1, None)
    );
    // The bound, plus scheduling slack for a loaded 2-core test machine
    // (still far below the 45 s of the default heartbeat).
    let bound = 2 * PING_INTERVAL + PING_TIMEOUT;
    assert!(
        noticed <= bound + Duration::from_millis(3000),
        "took {noticed:?} (bound {bound:?})"
    );
    assert_eq!(lost.status, TaskStatus::Failed);
    assert_eq!(lost.error.unwrap().code, ErrorCode::WorkerLost);

    let _second = remote_worker(&server, "second", "sleep", 1, None);
    let done = result_of(&mut c, again.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(done.attempt, 2);
    assert!(done.worker.unwrap().0.starts_with("second#"));
    signal(frozen_pid, libc::SIGCONT);
    drop(frozen);
}

/// `taskwire remote-worker` with its stderr kept, to look for panics.
fn remote_worker_logged(server: &TestServer, concurrency: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args([
            "remote-worker",
            "--url",
            &server.url,
            "--name",
            "burst",
            "--kinds",
            "echo",
        ])
        .args(["--concurrency", &concurrency.to_string()])
        .env("TASKWIRE_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn remote worker")
}

#[tokio::test]
async fn the_remote_worker_binary_runs_a_burst_at_concurrency_200() {
    let server = TestServer::start(&["--workers", "0"]).await;
    let mut rw = remote_worker_logged(&server, 200);
    server.wait_workers(1).await;
    let mut c = server.client().await;
    let mut pending = std::collections::HashSet::new();
    for batch in 0..3 {
        let specs: Vec<_> = (0..1000)
            .map(|i| spec("echo", json!({"b": batch, "i": i})))
            .collect();
        for t in c.submit_batch(&specs).await.unwrap() {
            pending.insert(t.id);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.next_push_within(left).await {
            Some(Push::Result(t)) => {
                assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
                pending.remove(&t.id);
            }
            Some(_) => {}
            None => panic!("{} tasks never finished", pending.len()),
        }
    }
    assert!(rw.try_wait().unwrap().is_none(), "the worker exited");
    rw.start_kill().unwrap();
    let mut stderr = String::new();
    let mut pipe = rw.stderr.take().unwrap();
    tokio::time::timeout(WAIT, pipe.read_to_string(&mut stderr))
        .await
        .unwrap()
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn a_worker_name_cannot_forge_log_lines() {
    let log = server_stderr(&[("TASKWIRE_LOG", "info")], &[], |url| async move {
        let name = "w\nFORGED admin logged in";
        let auth = json!({"name": name, "kinds": ["shout"], "concurrency": 1});
        let sio = worker_at(&url, auth)
            .await
            .expect("a worker with any name connects");
        let _ = sio.disconnect().await;
    })
    .await;
    assert!(log.contains("remote worker connected"), "{log}");
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED")),
        "a forged line in the log: {log}"
    );
}
