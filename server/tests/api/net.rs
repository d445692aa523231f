//! Connections and limits, attacked the way a hostile client would: raw TCP
//! slowloris and idle connections, a trickled body, a flood past the
//! connection cap, an oversized `Content-Length` with `Expect:
//! 100-continue`, a websocket client that stops reading, unknown events,
//! and what the log lets through.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use taskwire::client::Client;

use crate::helpers::*;

/// `host:port` of a test server.
fn addr(server: &TestServer) -> String {
    server
        .url
        .strip_prefix("http://")
        .expect("http url")
        .to_owned()
}

/// Reads until the peer closes the connection (EOF or reset); everything
/// read, or `None` if it stayed open for `limit`.
async fn read_until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(all)
}

/// Sends `request` and reads one response head and `body_len` body bytes.
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    timeout(WAIT, async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if got.len() >= end + 4 + len {
                    return;
                }
            }
        }
    })
    .await
    .expect("no response in time");
    String::from_utf8_lossy(&got).into_owned()
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

#[tokio::test]
async fn slowloris_connections_are_closed_at_the_header_timeout() {
    let server = TestServer::start(&["--header-timeout-ms", "1000"]).await;
    let started = Instant::now();
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let addr = addr(&server);
        attackers.spawn(async move {
            let (mut rx, mut tx) = TcpStream::connect(addr).await.unwrap().into_split();
            tx.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .await
                .unwrap();
            // One more header byte every 200 ms, for as long as the server
            // lets the connection live.
            let trickle = async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if tx.write_all(b"a").await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = trickle => unreachable!(),
                closed = read_until_closed(&mut rx, Duration::from_secs(10)) => closed.is_some(),
            }
        });
    }
    let mut closed = 0;
    while let Some(done) = attackers.join_next().await {
        closed += usize::from(done.unwrap());
    }
    assert_eq!(closed, 100, "slowloris connections still open after 10 s");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed before the timeout: {took:?}"
    );
    // And the server still answers.
    let mut ok = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(exchange(&mut ok, HEALTHZ).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let server = TestServer::start(&["--header-timeout-ms", "1000"]).await;
    // A keep-alive connection after its request, and one that never sends.
    let mut kept = TcpStream::connect(addr(&server)).await.unwrap();
    let res = exchange(&mut kept, HEALTHZ).await;
    assert!(res.starts_with("HTTP/1.1 200"), "{res}");
    assert!(
        !res.to_ascii_lowercase().contains("connection: close"),
        "{res}"
    );
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    let started = Instant::now();
    let limit = Duration::from_secs(5);
    assert!(
        read_until_closed(&mut kept, limit).await.is_some(),
        "idle keep-alive connection kept open"
    );
    assert!(
        read_until_closed(&mut silent, limit).await.is_some(),
        "silent connection kept open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_at_the_body_timeout() {
    let server = TestServer::start(&["--body-timeout-ms", "1000"]).await;
    let (mut rx, mut tx) = TcpStream::connect(addr(&server))
        .await
        .unwrap()
        .into_split();
    tx.write_all(
        b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"kind\": ",
    )
    .await
    .unwrap();
    let trickle = async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if tx.write_all(b" ").await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let started = Instant::now();
    let got = tokio::select! {
        () = trickle => unreachable!(),
        got = read_until_closed(&mut rx, Duration::from_secs(10)) => got,
    };
    let got =
        String::from_utf8_lossy(&got.expect("trickled body kept the connection open")).into_owned();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(
        got.contains("request body not received within 1000 ms"),
        "{got}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn an_oversized_content_length_is_refused_before_100_continue() {
    let server = TestServer::start(&["--max-message-bytes", "1000"]).await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let res = exchange(
        &mut s,
        "POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let first = res.lines().next().unwrap_or_default();
    assert_eq!(first, "HTTP/1.1 413 Payload Too Large", "{res}");
    assert!(res.contains(r#""code":"payload_too_large""#), "{res}");
    // At the limit, the request goes through as usual.
    let body = format!(r#"{{"kind":"echo","input":"{}"}}"#, "x".repeat(1000 - 26));
    assert_eq!(body.len(), 1000);
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let res = exchange(
        &mut s,
        &format!("POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{body}"),
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 202"), "{res}");
}

#[tokio::test]
async fn at_the_connection_cap_healthz_answers_and_sockets_keep_working() {
    let server =
        TestServer::start(&["--max-connections", "8", "--header-timeout-ms", "30000"]).await;
    let mut client = server.client().await;
    // Keep-alive connections until one is answered past the cap: that one
    // is told `Connection: close`.
    let mut held = Vec::new();
    let mut past_cap = false;
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr(&server)).await.unwrap();
        let res = exchange(&mut s, HEALTHZ).await.to_ascii_lowercase();
        assert!(res.starts_with("http/1.1 200"), "{res}");
        if res.contains("connection: close") {
            past_cap = true;
            break;
        }
        held.push(s);
    }
    assert!(
        past_cap,
        "no connection cap: {} connections held",
        held.len()
    );
    assert!(
        held.len() < 8,
        "{} connections held under a cap of 8",
        held.len()
    );
    // Past the cap: health checks answer, new Socket.IO sessions wait.
    let mut health = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(
        exchange(&mut health, HEALTHZ)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut session = TcpStream::connect(addr(&server)).await.unwrap();
    let res = exchange(
        &mut session,
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 503"), "{res}");
    // The socket connected before the cap still gets its results.
    let t = client
        .submit(&spec("echo", json!("still here")))
        .await
        .unwrap();
    assert_eq!(
        result_of(&mut client, t.id).await.output,
        Some(app::Json::from(json!("still here")))
    );
    // Once the held connections go, new sockets get in again: as soon as
    // the server has seen enough of them close (each in its own time).
    drop((held, health, session));
    let deadline = Instant::now() + WAIT;
    let other = loop {
        match Client::connect_with_token(&server.url, None, WAIT).await {
            Ok(other) => break other,
            Err(e) => assert!(Instant::now() < deadline, "the cap never freed up: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(other.dashboard().await.is_ok());
}

type Ws = WebSocketStream<TcpStream>;

/// A raw Engine.IO v4 websocket to the server, with a small receive buffer
/// (so that a client that stops reading backs up quickly).
async fn raw_ws(server: &TestServer) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let tcp = socket.connect(addr(server).parse().unwrap()).await.unwrap();
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", addr(server));
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    let open = next_text(&mut ws).await.expect("open packet");
    assert!(open.starts_with('0'), "{open}");
    ws
}

/// The next text message, answering Engine.IO pings on the way.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match timeout(WAIT, ws.next())
            .await
            .expect("no message in time")?
        {
            Ok(Message::Text(t)) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Joins namespace `ns` (`""` for `/`) with `auth`.
async fn join(ws: &mut Ws, ns: &str, auth: &Value) {
    let sep = if ns.is_empty() { "" } else { "," };
    ws.send(Message::text(format!("40{ns}{sep}{auth}")))
        .await
        .unwrap();
    let reply = next_text(ws).await.expect("connect reply");
    assert!(reply.starts_with(&format!("40{ns}")), "{reply}");
}

/// Emits `event` with an ack id on `ns` and returns the ack's payload.
async fn ack(ws: &mut Ws, ns: &str, event: &str, data: &Value) -> Value {
    let sep = if ns.is_empty() { "" } else { "," };
    ws.send(Message::text(format!(
        "42{ns}{sep}7{}",
        json!([event, data])
    )))
    .await
    .unwrap();
    let prefix = format!("43{ns}{sep}7");
    loop {
        let msg = next_text(ws)
            .await
            .expect("connection closed before the ack");
        if let Some(rest) = msg.strip_prefix(&prefix) {
            let args: Value = serde_json::from_str(rest).unwrap();
            return args[0].clone();
        }
    }
}

#[tokio::test]
async fn unknown_events_get_an_error_ack_on_both_namespaces() {
    let server = TestServer::start(&[]).await;
    let mut ws = raw_ws(&server).await;
    join(&mut ws, "", &json!({})).await;
    let a = ack(&mut ws, "", "tsak", &json!({"kind": "echo"})).await;
    assert_eq!(a["ok"], json!(false), "{a}");
    assert_eq!(a["error"]["code"], json!("invalid_payload"), "{a}");
    assert_eq!(
        a["error"]["message"],
        json!("unknown event \"tsak\""),
        "{a}"
    );
    // The socket carries on.
    let a = ack(&mut ws, "", "task", &json!({"kind": "echo", "input": 1})).await;
    assert_eq!(a["ok"], json!(true), "{a}");

    let mut worker = raw_ws(&server).await;
    join(
        &mut worker,
        "/worker",
        // Not a kind of this server's own: those are refused to remote
        // workers of a server with local workers.
        &json!({"name": "w", "kinds": ["shout"], "concurrency": 1}),
    )
    .await;
    let a = ack(&mut worker, "/worker", "dnoe", &json!({})).await;
    assert_eq!(a["error"]["code"], json!("invalid_payload"), "{a}");
    assert_eq!(
        a["error"]["message"],
        json!("unknown event \"dnoe\""),
        "{a}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_and_memory_stays_bounded() {
    let server =
        TestServer::start_process(&["--max-queued-bytes", "4194304", "--retain-finished", "10"])
            .await;
    // Warm up the allocator with the same traffic read by a normal client.
    let pad = "p".repeat(500_000);
    let mut reader = server.client().await;
    for _ in 0..5 {
        let t = reader.submit(&spec("echo", json!(pad))).await.unwrap();
        result_of(&mut reader, t.id).await;
    }
    let before = rss_kib(server.pid());

    // 200 echo tasks of 500 KB from a socket that never reads: 300 MB of
    // acks and results are pushed at it.
    let mut ws = raw_ws(&server).await;
    join(&mut ws, "", &json!({})).await;
    let mut cut_after = None;
    for i in 0..200 {
        let msg = format!("42{i}{}", json!(["task", {"kind": "echo", "input": pad}]));
        if ws.send(Message::text(msg)).await.is_err() {
            cut_after = Some(i);
            break;
        }
    }
    // Cut off: whatever is still buffered, the stream ends.
    let closed = timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(
        cut_after.is_some() || closed.is_ok(),
        "the slow reader is still connected"
    );
    assert!(closed.is_ok(), "the slow reader is still connected");
    let grown_mib = rss_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 100,
        "server grew by {grown_mib} MiB (cut after {cut_after:?} tasks)"
    );

    // Everyone else carries on.
    let t = reader.submit(&spec("echo", json!("after"))).await.unwrap();
    assert_eq!(
        result_of(&mut reader, t.id).await.output,
        Some(app::Json::from(json!("after")))
    );
}

#[tokio::test]
async fn the_log_has_no_colours_when_stderr_is_not_a_terminal() {
    let log = server_stderr(&[("TASKWIRE_LOG", "info")], &[], |url| async move {
        let res = reqwest::get(format!("{url}/healthz")).await.unwrap();
        assert_eq!(res.status(), 200);
    })
    .await;
    assert!(log.contains("listening"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in the log: {log:?}");
}

#[tokio::test]
async fn debug_logging_does_not_print_the_access_token() {
    const TOKEN: &str = "tok-3f9a1c77e2d4b6a8";
    let log = server_stderr(
        &[("TASKWIRE_LOG", "debug")],
        &["--token", TOKEN],
        |url| async move {
            let mut c = taskwire::client::Client::connect_with_token(&url, Some(TOKEN), WAIT)
                .await
                .unwrap();
            let t = c.submit(&spec("echo", json!(1))).await.unwrap();
            result_of(&mut c, t.id).await;
            let _ = c.disconnect().await;
        },
    )
    .await;
    assert!(log.contains("DEBUG"), "no debug log at all: {log}");
    assert!(!log.contains(TOKEN), "the token is in the log: {log}");
}
