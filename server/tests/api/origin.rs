//! Cross-site use: the `Origin` check on Socket.IO and state-changing HTTP
//! requests, `--allowed-origin`, the `Host` check of a loopback server, the
//! JSON content-type rule and the security headers of every response.

use std::process::Stdio;

use app::{ErrorCode, Task, TaskStatus};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, ORIGIN};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::*;

const EVIL: &str = "http://evil.example";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `host:port` of the server.
fn authority(server: &TestServer) -> &str {
    server.url.strip_prefix("http://").unwrap()
}

/// Tasks the server has, in any state.
async fn task_count(server: &TestServer) -> u64 {
    let s = server.stats().await;
    s.queued + s.running + s.succeeded + s.failed + s.cancelled + s.timed_out
}

async fn post_echo(server: &TestServer, origin: Option<&str>) -> reqwest::Response {
    let mut req = http()
        .post(server.at("/tasks"))
        .json(&json!({"kind": "echo", "input": "hi"}));
    if let Some(origin) = origin {
        req = req.header(ORIGIN, origin);
    }
    req.send().await.unwrap()
}

/// A refusal: `403` `unauthorized`, naming the origin.
async fn assert_refused(res: reqwest::Response, origin: &str) {
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: app::HttpError = res.json().await.expect("error body");
    assert_eq!(body.error.code, ErrorCode::Unauthorized);
    assert!(
        body.error
            .message
            .starts_with(&format!("origin {origin} is not allowed")),
        "{}",
        body.error.message
    );
}

#[tokio::test]
async fn post_from_another_origin_is_refused_and_creates_nothing() {
    let server = TestServer::start(&[]).await;
    let port = server.url.rsplit(':').next().unwrap();
    for origin in [
        EVIL,
        "null",
        "http://127.0.0.1:1",
        &format!("http://localhost:{port}"),
        &format!("http://[::1]:{port}"),
    ] {
        assert_refused(post_echo(&server, Some(origin)).await, origin).await;
        // The no-JS form is what a hostile page would post.
        let res = http()
            .post(server.at("/tasks"))
            .header(ORIGIN, origin)
            .form(&[("kind", "echo"), ("input", "1")])
            .send()
            .await
            .unwrap();
        assert_refused(res, origin).await;
    }
    assert_eq!(task_count(&server).await, 0);

    // Without Origin (CLI, curl, Node) or from its own pages: accepted.
    let own = server.url.clone();
    for origin in [
        None,
        Some(own.as_str()),
        Some(&own.replace("http:", "https:")),
    ] {
        let res = post_echo(&server, origin).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED, "{origin:?}");
    }
    let res = http()
        .post(server.at("/tasks"))
        .header(ORIGIN, &own)
        .form(&[("kind", "echo"), ("input", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(task_count(&server).await, 4);
}

#[tokio::test]
async fn delete_from_another_origin_cancels_nothing() {
    let server = TestServer::start(&[]).await;
    let res = http()
        .post(server.at("/tasks"))
        .json(&json!({"kind": "sleep", "input": {"ms": 600_000}}))
        .send()
        .await
        .unwrap();
    let task: Task = res.json().await.unwrap();
    let at = server.at(&format!("/tasks/{}", task.id));
    let res = http()
        .delete(&at)
        .header(ORIGIN, EVIL)
        .send()
        .await
        .unwrap();
    assert_refused(res, EVIL).await;
    let now: Task = http().get(&at).send().await.unwrap().json().await.unwrap();
    assert!(!now.status.is_final(), "{:?}", now.status);
    let res = http()
        .delete(&at)
        .header(ORIGIN, &server.url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let now: Task = res.json().await.unwrap();
    assert_eq!(now.status, TaskStatus::Cancelled);
}

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";

async fn polling_handshake(server: &TestServer, origin: Option<&str>) -> reqwest::Response {
    let mut req = http().get(server.at(HANDSHAKE));
    if let Some(origin) = origin {
        req = req.header(ORIGIN, origin);
    }
    req.send().await.unwrap()
}

/// The `sid` of an Engine.IO open packet (`0{"sid": ...}`).
async fn sid_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let open: serde_json::Value =
        serde_json::from_str(text.strip_prefix('0').expect("open packet")).unwrap();
    open["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn engine_io_polling_from_another_origin_is_refused() {
    let server = TestServer::start(&[]).await;
    assert_refused(polling_handshake(&server, Some(EVIL)).await, EVIL).await;
    sid_of(polling_handshake(&server, Some(&server.url)).await).await;

    // A session opened without Origin cannot be driven by a page either:
    // joining `/worker` (a namespace connect) with a foreign Origin.
    let sid = sid_of(polling_handshake(&server, None).await).await;
    let session = server.at(&format!("{HANDSHAKE}&sid={sid}"));
    let hello = r#"40/worker,{"name":"evil","kinds":["echo"],"concurrency":1}"#;
    let res = http()
        .post(&session)
        .header(ORIGIN, EVIL)
        .body(hello)
        .send()
        .await
        .unwrap();
    assert_refused(res, EVIL).await;
    let workers = server.stats().await.workers;
    assert!(workers.iter().all(|w| !w.remote), "{workers:?}");
}

/// A websocket upgrade of Engine.IO over raw TCP; returns the status line.
async fn websocket_upgrade(server: &TestServer, host: &str, origin: Option<&str>) -> String {
    let mut tcp = TcpStream::connect(authority(server)).await.unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(tcp);
    let mut status = String::new();
    tokio::time::timeout(WAIT, lines.read_line(&mut status))
        .await
        .expect("no answer to the upgrade")
        .unwrap();
    status.trim_end().to_owned()
}

#[tokio::test]
async fn websocket_upgrade_from_another_origin_is_refused() {
    let server = TestServer::start(&[]).await;
    let host = authority(&server).to_owned();
    assert_eq!(
        websocket_upgrade(&server, &host, Some(EVIL)).await,
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        websocket_upgrade(&server, &host, Some("null")).await,
        "HTTP/1.1 403 Forbidden"
    );
    let own = server.url.clone();
    assert_eq!(
        websocket_upgrade(&server, &host, Some(&own)).await,
        "HTTP/1.1 101 Switching Protocols"
    );
    assert_eq!(
        websocket_upgrade(&server, &host, None).await,
        "HTTP/1.1 101 Switching Protocols"
    );
}

#[tokio::test]
async fn a_loopback_server_refuses_other_host_names() {
    // DNS rebinding: a page of evil.example re-pointed at 127.0.0.1 is
    // same-origin with `http://evil.example:<port>`, so it sends no
    // foreign Origin; its Host gives it away.
    let server = TestServer::start(&[]).await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let rebound = format!("evil.example:{port}");
    let res = http()
        .get(server.at("/kinds"))
        .header("host", &rebound)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: app::HttpError = res.json().await.unwrap();
    assert_eq!(body.error.code, ErrorCode::Unauthorized);
    assert!(
        body.error
            .message
            .starts_with(&format!("host {rebound} is not allowed"))
    );
    assert_eq!(
        websocket_upgrade(&server, &rebound, None).await,
        "HTTP/1.1 403 Forbidden"
    );
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let res = http()
            .get(server.at("/kinds"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn allowed_origins_may_use_the_server_with_cors() {
    let dev = "http://127.0.0.1:8080";
    let server = TestServer::start(&[
        "--allowed-origin",
        dev,
        "--allowed-origin",
        "https://ui.example",
    ])
    .await;
    for origin in [dev, "https://ui.example"] {
        let res = post_echo(&server, Some(origin)).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED, "{origin}");
        assert_eq!(res.headers()["access-control-allow-origin"], origin);
    }
    assert_refused(post_echo(&server, Some(EVIL)).await, EVIL).await;
    let res = polling_handshake(&server, Some(dev)).await;
    assert_eq!(res.headers()["access-control-allow-origin"], dev);
    sid_of(res).await;
    assert_refused(polling_handshake(&server, Some(EVIL)).await, EVIL).await;
    // A preflight (JSON POST from the page) is answered for it only.
    let preflight = |origin: &str| {
        http()
            .request(reqwest::Method::OPTIONS, server.at("/tasks"))
            .header(ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let res = preflight(dev).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], dev);
    let res = preflight(EVIL).await.unwrap();
    assert!(!res.headers().contains_key("access-control-allow-origin"));
    // Its host name is accepted as Host too (a proxy that keeps it).
    let res = http()
        .get(server.at("/kinds"))
        .header("host", "ui.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let any = TestServer::start(&["--allowed-origin", "*"]).await;
    for origin in [EVIL, "null"] {
        assert_eq!(
            post_echo(&any, Some(origin)).await.status(),
            StatusCode::ACCEPTED
        );
    }
}

/// Starts `taskwire serve` with `env`, returns its first stdout line (or
/// its exit and stderr when it refuses to start).
async fn serve_with_env(
    env: &[(&str, &str)],
    args: &[&str],
) -> (tokio::process::Child, Result<String, String>) {
    let mut cmd = serve_command(env, args);
    cmd.env("TASKWIRE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(WAIT, stdout.read_line(&mut line))
        .await
        .expect("no first line")
        .unwrap();
    if line.is_empty() {
        let mut err = String::new();
        let mut stderr = child.stderr.take().unwrap();
        let _ = tokio::time::timeout(WAIT, stderr.read_to_string(&mut err)).await;
        return (child, Err(err));
    }
    let url = line
        .trim()
        .strip_prefix("taskwire listening on ")
        .unwrap()
        .to_owned();
    (child, Ok(url))
}

#[tokio::test]
async fn allowed_origins_from_the_environment_and_bad_values() {
    let (_child, url) = serve_with_env(
        &[(
            "TASKWIRE_ALLOWED_ORIGINS",
            "http://a.example:1,https://b.example",
        )],
        &[],
    )
    .await;
    let url = url.expect("server started");
    let post = |origin: &'static str| {
        http()
            .post(format!("{url}/tasks"))
            .header(ORIGIN, origin)
            .json(&json!({"kind": "echo"}))
            .send()
    };
    assert_eq!(
        post("http://a.example:1").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post("https://b.example").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post("http://c.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    for bad in ["http://a.example/path", "ftp://a.example", "a.example"] {
        let (_child, res) = serve_with_env(&[], &["--allowed-origin", bad]).await;
        let err = res.expect_err("a bad origin is refused at start");
        assert!(err.contains("--allowed-origin"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn json_bodies_must_say_so() {
    let server = TestServer::start(&[]).await;
    let body = r#"{"kind":"echo","input":1}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        Some("json"),
    ] {
        let mut req = http().post(server.at("/tasks")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(error_code(res).await, ErrorCode::InvalidPayload);
    }
    assert_eq!(task_count(&server).await, 0);
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.taskwire+json",
    ] {
        let res = http()
            .post(server.at("/tasks"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED, "{ct}");
    }
}

fn assert_security_headers(h: &HeaderMap, what: &str) {
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "same-origin", "{what}");
    assert_eq!(h["cross-origin-resource-policy"], "same-origin", "{what}");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
}

#[tokio::test]
async fn every_response_has_the_security_headers() {
    let server = TestServer::start(&[]).await;
    let res = http().get(server.at("/healthz")).send().await.unwrap();
    assert_security_headers(res.headers(), "healthz");
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let res = post_echo(&server, Some(EVIL)).await;
    assert_security_headers(res.headers(), "refusal");
    let res = post_echo(&server, None).await;
    assert_security_headers(res.headers(), "202");
    let res = polling_handshake(&server, None).await;
    assert_security_headers(res.headers(), "engine.io");
    let res = http().get(server.at("/")).send().await.unwrap();
    assert_security_headers(res.headers(), "site not built");
}

#[tokio::test]
async fn pages_carry_a_csp_with_the_nonce_of_their_scripts() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/taskwire.js"), "").unwrap();
    let server = TestServer::start(&["--site-root", site.path().to_str().unwrap()]).await;
    let mut nonces = Vec::new();
    for path in ["/", "/dashboard", "/no-such-page"] {
        let res = http()
            .get(server.at(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_security_headers(res.headers(), path);
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = res.text().await.unwrap();
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{path}: no nonce in {csp}"))
            .to_owned();
        assert!(nonce.len() >= 22, "{nonce}");
        assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        assert!(
            html.contains(&format!(r#"<script type="module" nonce="{nonce}">"#)),
            "{path}: the hydration script has another nonce than {nonce}"
        );
        nonces.push(nonce);
    }
    // The task page, rendered by the API route.
    let task: Task = post_echo(&server, None).await.json().await.unwrap();
    let res = http()
        .get(server.at(&format!("/tasks/{}", task.id)))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = res.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    assert!(html.contains(&format!(r#"nonce="{nonce}""#)), "task page");
    nonces.push(nonce);
    // A new nonce every response.
    let mut unique = nonces.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), nonces.len(), "{nonces:?}");
}
