//! The optional access token (`--token`): Socket.IO `/` and `/worker`, HTTP,
//! the CLI and the remote worker.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::{ErrorCode, Task, TaskStatus, events};
use futures_util::FutureExt;
use reqwest::StatusCode;
use rust_socketio::asynchronous::ClientBuilder;
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use taskwire::client::{Client, ClientError};
use tokio::sync::oneshot;

use crate::helpers::*;

const TOKEN: &str = "s3cret";
/// A refused connection answers at once; this only bounds a broken server.
const REFUSAL_WAIT: Duration = Duration::from_secs(3);

/// Connects to `/` with `token`, expecting a refusal; returns its message.
async fn refused(server: &TestServer, token: Option<&str>) -> String {
    match Client::connect_with_token(&server.url, token, REFUSAL_WAIT).await {
        Err(ClientError::Refused(message)) => message,
        Err(e) => panic!("expected a connect_error with {token:?}, got {e}"),
        Ok(_) => panic!("connected with token {token:?}"),
    }
}

#[tokio::test]
async fn socket_connections_need_the_token() {
    let server = TestServer::start(&["--token", TOKEN]).await;

    // No auth, no token in it, a wrong token, a token of the wrong type.
    for token in [None, Some("wrong"), Some(""), Some("s3cret ")] {
        let message = refused(&server, token).await;
        assert!(message.starts_with("unauthorized"), "{token:?}: {message}");
    }
    let err = Client::connect_with(&server.url, REFUSAL_WAIT).await.err();
    assert!(
        matches!(err, Some(ClientError::Refused(ref m)) if m.starts_with("unauthorized")),
        "{err:?}"
    );

    // The right token: everything works, the dashboard included.
    let mut c = Client::connect_with_token(&server.url, Some(TOKEN), WAIT)
        .await
        .expect("connect with the token");
    let t = c.submit(&spec("echo", json!({"a": 1}))).await.unwrap();
    let done = result_of(&mut c, t.id).await;
    assert_eq!(
        (done.status, done.output),
        (
            TaskStatus::Succeeded,
            Some(app::Json::from(json!({"a": 1})))
        )
    );
    let stats = c.dashboard().await.expect("dashboard with the token");
    assert!(stats.succeeded >= 1);
    assert_eq!(c.subscribe(t.id).await.unwrap().id, t.id);
    let _ = c.disconnect().await;
}

#[tokio::test]
async fn http_needs_a_bearer_token_but_healthz() {
    let server = TestServer::start(&["--token", TOKEN]).await;
    let http = reqwest::Client::new();
    let body = json!({"kind": "echo", "input": {"b": 2}});

    let res = http
        .post(server.at("/tasks"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    assert_eq!(error_code(res).await, ErrorCode::Unauthorized);
    for auth in ["Bearer wrong", "Bearer ", "Basic czNjcmV0", "s3cret"] {
        let res = http
            .post(server.at("/tasks"))
            .header(reqwest::header::AUTHORIZATION, auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{auth}");
        assert_eq!(error_code(res).await, ErrorCode::Unauthorized, "{auth}");
    }

    let res = http
        .post(server.at("/tasks"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let task: Task = res.json().await.unwrap();

    // Reading, cancelling, kinds, metrics and schedules need it too (a
    // browser's `GET /schedules` as well, when there is no site to show).
    let path = format!("/tasks/{}", task.id);
    for req in [
        http.get(server.at(&path)),
        http.delete(server.at(&path)),
        http.get(server.at("/kinds")),
        http.get(server.at("/metrics")),
        http.get(server.at("/schedules")),
        http.get(server.at("/schedules"))
            .header(reqwest::header::ACCEPT, "text/html"),
        http.put(server.at("/schedules/x"))
            .json(&json!({"cron": "* * * * *", "task": {"kind": "echo"}})),
        http.delete(server.at("/schedules/x")),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{}", res.url());
    }
    let res = http
        .get(server.at(&path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .get(server.at("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .get(server.at("/schedules"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap(),
        json!({"schedules": []})
    );

    // Health checks stay open.
    let res = http.get(server.at("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// Where the outcome of a handshake goes: connected, or the connect_error.
type Outcome = Arc<Mutex<Option<oneshot::Sender<Result<(), String>>>>>;

fn fire(slot: &Outcome, v: Result<(), String>) {
    if let Some(tx) = slot.lock().unwrap().take() {
        let _ = tx.send(v);
    }
}

/// Connects to `/worker` with `auth`; the first connect or connect_error.
async fn worker_handshake(server: &TestServer, auth: Value) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    let slot: Outcome = Arc::new(Mutex::new(Some(tx)));
    let (up, err) = (slot.clone(), slot);
    let sio = ClientBuilder::new(server.url.as_str())
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
                fire(&err, Err(text.to_owned()));
            }
            async {}.boxed()
        })
        .connect()
        .await
        .expect("engine.io connect");
    let out = tokio::time::timeout(WAIT, rx)
        .await
        .expect("no connect nor connect_error")
        .expect("handshake dropped");
    let _ = sio.disconnect().await;
    out
}

#[tokio::test]
async fn remote_workers_need_the_token() {
    let server = TestServer::start(&["--token", TOKEN, "--workers", "0"]).await;
    let hello = |token: Option<&str>| {
        let mut auth = json!({"name": "w", "kinds": ["echo"], "concurrency": 1});
        if let Some(t) = token {
            auth["token"] = json!(t);
        }
        auth
    };
    for token in [None, Some("wrong")] {
        let err = worker_handshake(&server, hello(token))
            .await
            .expect_err("a worker without the token was accepted");
        assert!(
            err.contains(r#""message":"unauthorized"#),
            "{token:?}: {err}"
        );
    }
    // Without the token, a bad hello is refused as unauthorized too: no
    // probing of what else the server checks.
    let err = worker_handshake(&server, json!({"kinds": []}))
        .await
        .unwrap_err();
    assert!(err.contains(r#""message":"unauthorized"#), "{err}");
    worker_handshake(&server, hello(Some(TOKEN)))
        .await
        .expect("the right token is accepted");

    // `taskwire remote-worker` sends its token (here from TASKWIRE_TOKEN).
    let _rw = remote_worker(&server, "rw", "echo", 2, Some(TOKEN));
    let workers = server.wait_workers(1).await;
    assert!(workers[0].remote, "{workers:?}");
    let mut c = server.client().await;
    let t = c.submit(&spec("echo", json!("remote"))).await.unwrap();
    let done = result_of(&mut c, t.id).await;
    assert_eq!(done.output, Some(app::Json::from(json!("remote"))));
    assert!(done.worker.unwrap().0.starts_with("rw#"));
}

async fn cli(args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskwire"));
    cmd.args(args).env("RUST_BACKTRACE", "0");
    match token {
        Some(t) => cmd.env("TASKWIRE_TOKEN", t),
        None => cmd.env_remove("TASKWIRE_TOKEN"),
    };
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("cli in time")
        .expect("run cli")
}

#[tokio::test]
async fn the_cli_passes_the_token() {
    let server = TestServer::start(&["--token", TOKEN]).await;
    let url = server.url.as_str();
    let submit = ["submit", "--url", url, "--kind", "echo", "--input", "[1]"];

    let out = cli(
        &[&submit[..], &["--token", TOKEN, "--wait"][..]].concat(),
        None,
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .expect("id line")
        .to_owned();

    // From TASKWIRE_TOKEN.
    let out = cli(&["status", "--url", url, &id], Some(TOKEN)).await;
    assert!(out.status.success(), "{out:?}");
    let task: Task = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(task.output, Some(app::Json::from(json!([1]))));

    for token in [None, Some("wrong")] {
        let out = cli(&submit, token).await;
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unauthorized"), "{token:?}: {stderr}");
    }
}

#[tokio::test]
async fn without_a_token_configured_presented_ones_are_ignored() {
    let server = TestServer::start(&[]).await;
    let mut c = Client::connect_with_token(&server.url, Some("anything"), WAIT)
        .await
        .expect("connect");
    let t = c.submit(&spec("echo", json!(null))).await.unwrap();
    assert_eq!(result_of(&mut c, t.id).await.status, TaskStatus::Succeeded);
    let res = reqwest::Client::new()
        .get(server.at(&format!("/tasks/{}", t.id)))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
