//! `taskwire bench` (the real binary) against a real server: every result
//! verified and counted, batches, error acks by code, a time-bound run.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// Runs `taskwire bench --url <server> <args>`.
async fn bench(server: &TestServer, args: &[&str]) -> Output {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["bench", "--url", &server.url])
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("TASKWIRE_TOKEN")
        .output();
    tokio::time::timeout(WAIT, out)
        .await
        .expect("bench in time")
        .expect("run bench")
}

/// The JSON object on the last line of stdout.
fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output: {out:?}"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last:?} {out:?}"))
}

/// Asserts that all `tasks` came back ok.
fn assert_all_ok(out: &Output, tasks: u64) -> Value {
    let r = report(out);
    assert!(out.status.success(), "{r} {out:?}");
    assert_eq!(r["tasks"], tasks, "{r}");
    assert_eq!(r["ok"], tasks, "{r}");
    for zero in ["wrong", "errors", "lost", "unsent", "stray"] {
        assert_eq!(r[zero], 0, "{zero}: {r}");
    }
    r
}

#[tokio::test]
async fn every_echo_is_verified_and_timed() {
    let server = TestServer::start(&[]).await;
    let out = bench(
        &server,
        &[
            "--clients",
            "4",
            "--inflight",
            "5",
            "--tasks",
            "200",
            "--kind",
            "echo",
            "--json",
        ],
    )
    .await;
    let r = assert_all_ok(&out, 200);
    assert_eq!(
        (r["clients"].clone(), r["connected"].clone()),
        (4.into(), 4.into())
    );
    assert!(r["throughput_per_s"].as_f64().unwrap() > 0.0, "{r}");
    for key in ["ack", "result"] {
        let p50 = r[format!("{key}_p50_ms")].as_f64().unwrap();
        let p99 = r[format!("{key}_p99_ms")].as_f64().unwrap();
        let max = r[format!("{key}_max_ms")].as_f64().unwrap();
        assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{r}");
    }
    assert_eq!(server.stats().await.succeeded, 200);
}

#[tokio::test]
async fn batches_over_several_source_addresses() {
    let server = TestServer::start(&[]).await;
    let out = bench(
        &server,
        &[
            "--clients",
            "6",
            "--inflight",
            "5",
            "--batch",
            "10",
            "--tasks",
            "200",
            "--source-addrs",
            "3",
            "--json",
        ],
    )
    .await;
    let r = assert_all_ok(&out, 200);
    assert_eq!(
        (r["batch"].clone(), r["source_addrs"].clone()),
        (10.into(), 3.into())
    );
}

#[tokio::test]
async fn computed_kinds_are_checked_with_the_servers_code() {
    let server = TestServer::start(&[]).await;
    for (kind, input) in [
        ("primes", r#"{"limit":10000}"#),
        ("sha256", r#"{"data":"bench","rounds":100}"#),
        ("fail", r#"{"message":"expected"}"#),
    ] {
        let out = bench(
            &server,
            &[
                "--clients",
                "2",
                "--inflight",
                "3",
                "--tasks",
                "12",
                "--kind",
                kind,
                "--input",
                input,
                "--json",
            ],
        )
        .await;
        assert_all_ok(&out, 12);
    }
}

#[tokio::test]
async fn error_acks_are_counted_by_code() {
    let server = TestServer::start(&[]).await;
    let out = bench(
        &server,
        &[
            "--clients",
            "2",
            "--tasks",
            "20",
            "--kind",
            "nope",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    assert!(!out.status.success(), "not every task was ok");
    assert_eq!(
        (r["tasks"].clone(), r["ok"].clone(), r["errors"].clone()),
        (20.into(), 0.into(), 20.into())
    );
    assert_eq!(r["error_codes"]["unknown_kind"], 20, "{r}");
}

#[tokio::test]
async fn a_duration_run_ends_on_time() {
    let server = TestServer::start(&[]).await;
    let started = Instant::now();
    let out = bench(
        &server,
        &[
            "--clients",
            "2",
            "--inflight",
            "4",
            "--duration-s",
            "1",
            "--json",
        ],
    )
    .await;
    let took = started.elapsed();
    let r = report(&out);
    let tasks = r["tasks"].as_u64().unwrap();
    assert!(tasks > 0, "{r}");
    assert_all_ok(&out, tasks);
    // Sending stops at 1 s; echo tasks in flight then settle in milliseconds.
    let secs = r["duration_s"].as_f64().unwrap();
    assert!((1.0..3.0).contains(&secs), "{r}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn a_token_is_sent_like_the_other_commands() {
    let server = TestServer::start(&["--token", "s3cret"]).await;
    let out = bench(
        &server,
        &[
            "--clients",
            "2",
            "--tasks",
            "10",
            "--token",
            "s3cret",
            "--json",
        ],
    )
    .await;
    assert_all_ok(&out, 10);

    let out = bench(&server, &["--clients", "2", "--tasks", "10"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unauthorized"), "{stderr}");
}

#[tokio::test]
async fn a_durable_server_and_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = TestServer::start(&["--data-dir", data]).await;
    let out = bench(
        &server,
        &["--clients", "3", "--inflight", "4", "--tasks", "60"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ok 60  wrong 0  errors 0  lost 0"), "{text}");
    assert!(text.contains("p99"), "{text}");
}

#[tokio::test]
async fn a_rate_paces_the_tasks_and_times_them_from_their_schedule() {
    let server = TestServer::start(&[]).await;
    // 25 tasks at 50/s: the last is due 24/50 = 0.48 s after the first,
    // so the run cannot end sooner, however fast the server answers.
    let out = bench(
        &server,
        &[
            "--clients",
            "3",
            "--inflight",
            "4",
            "--tasks",
            "25",
            "--rate",
            "50",
            "--json",
        ],
    )
    .await;
    let r = assert_all_ok(&out, 25);
    assert_eq!(r["rate_per_s"], 50.0, "{r}");
    assert!(r["duration_s"].as_f64().unwrap() >= 0.48, "{r}");
    assert!(
        r["throughput_per_s"].as_f64().unwrap() <= 25.0 / 0.48,
        "{r}"
    );
    let lag = r["send_lag_p50_ms"].as_f64().unwrap();
    assert!(lag <= r["send_lag_max_ms"].as_f64().unwrap(), "{r}");

    // A time-bound run at 40/s for 1 s: a closed loop with these windows
    // sends thousands; on schedule, at most the 41 tasks due in [0, 1 s]
    // (fewer if a socket is still behind when the stop comes).
    let out = bench(
        &server,
        &[
            "--clients",
            "2",
            "--inflight",
            "4",
            "--duration-s",
            "1",
            "--rate",
            "40",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    let tasks = r["tasks"].as_u64().unwrap();
    assert_all_ok(&out, tasks);
    assert!((1..=41).contains(&tasks), "{r}");
    // The closed-loop report is unchanged: no open-loop fields.
    let out = bench(&server, &["--clients", "1", "--tasks", "5", "--json"]).await;
    let r = assert_all_ok(&out, 5);
    assert!(
        r.get("rate_per_s").is_none() && r.get("send_lag_p50_ms").is_none(),
        "{r}"
    );
}

#[tokio::test]
async fn a_burst_of_results_longer_than_a_read_turn_loses_none() {
    let server = TestServer::start(&[]).await;
    // Batches of 1000 on one socket: results come back hundreds at a
    // time, more than a socket reads in one turn (256). The packet after a
    // full turn used to be dropped: a few tasks lost in every such run.
    let out = bench(
        &server,
        &[
            "--clients",
            "1",
            "--inflight",
            "2000",
            "--batch",
            "1000",
            "--tasks",
            "4000",
            "--deadline-ms",
            "20000",
            "--json",
        ],
    )
    .await;
    assert_all_ok(&out, 4000);
}
