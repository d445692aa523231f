//! Recurring schedules against a real server: validation, create / list /
//! replace / delete over Socket.IO and HTTP, the `schedules` push, real
//! firings (6-field every-second crons) whose tasks carry their key and
//! run, paused schedules, a restart with the durable store that catches a
//! missed firing up exactly once, the `taskwire schedule` commands, and a
//! cluster of two nodes sharing schedules and firing each firing once
//! (with PostgreSQL and Redis, as `cluster`'s tests).

use std::collections::{HashMap, HashSet};

use app::{ErrorCode, Schedule, TaskId, TaskStatus, Timestamp, events};
use chrono::{Datelike, DurationRound, TimeDelta, Timelike, Utc};
use serde_json::{Value, json};
use taskwire::client::{Client, ClientError, Push};

use crate::cluster::Cluster;
use crate::helpers::*;

fn schedule(name: &str, cron: &str) -> Value {
    json!({"name": name, "cron": cron, "task": {"kind": "echo", "input": {"from": name}}})
}

/// The error code (and field) of a refused `event`.
async fn refused(c: &Client, event: &str, payload: Value) -> (ErrorCode, Option<String>) {
    match c.ack(event, payload.clone()).await {
        Err(ClientError::Server(e)) => (e.code, e.field.map(|f| f.to_string())),
        other => panic!("{event} {payload} was not refused: {other:?}"),
    }
}

async fn put(c: &Client, payload: Value) -> Schedule {
    c.ack(events::SCHEDULE, payload)
        .await
        .expect("schedule accepted")
        .schedule
        .expect("ack with schedule")
}

/// The schedules of the next `schedules` push matching `pick`.
async fn pushed(c: &mut Client, pick: impl Fn(&[Schedule]) -> bool) -> Vec<Schedule> {
    push_where(c, |p| match p {
        Push::Schedules(all) if pick(&all) => Some(all),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn bad_schedules_are_refused_with_their_codes() {
    let server = TestServer::start(&[]).await;
    let c = server.client().await;
    let invalid = |field: &str| (ErrorCode::InvalidPayload, Some(field.to_owned()));
    let cases = [
        (schedule("bad name", "* * * * *"), invalid("name")),
        (schedule(&"n".repeat(129), "* * * * *"), invalid("name")),
        (
            json!({"cron": "* * * * *", "task": {"kind": "echo"}}),
            invalid("name"),
        ),
        (schedule("x", "* * * *"), invalid("cron")),
        (schedule("x", "0 0 0 * * * 2027"), invalid("cron")),
        (schedule("x", "61 * * * *"), invalid("cron")),
        (schedule("x", "0 0 31 2 *"), invalid("cron")),
        (
            json!({"name": "x", "cron": "* * * * *", "timezone": "Europe/Atlantis", "task": {"kind": "echo"}}),
            invalid("timezone"),
        ),
        (json!({"name": "x", "cron": "* * * * *"}), invalid("task")),
        (
            json!({"name": "x", "cron": "* * * * *", "task": {"kind": "nope"}}),
            invalid("task.kind"),
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "task": {"kind": "primes", "input": {"limit": -1}}}),
            invalid("task.input.limit"),
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "task": {"kind": "echo", "key": "mine"}}),
            invalid("task.key"),
        ),
        (
            json!({"name": "x", "cron": "* * * * *", "task": {"kind": "echo", "run_at": "2026-12-05T01:00:00.000Z"}}),
            invalid("task.run_at"),
        ),
        (json!("nightly"), (ErrorCode::InvalidPayload, None)),
    ];
    for (payload, expected) in cases {
        assert_eq!(
            refused(&c, events::SCHEDULE, payload.clone()).await,
            expected,
            "{payload}"
        );
    }
    assert_eq!(
        refused(&c, events::UNSCHEDULE, json!({"name": "nothing"})).await,
        (ErrorCode::NotFound, None)
    );
    assert_eq!(
        refused(&c, events::UNSCHEDULE, json!({"name": 5})).await,
        invalid("name")
    );
    assert!(
        c.schedules().await.unwrap().is_empty(),
        "nothing was created"
    );

    let http = reqwest::Client::new();
    let res = http
        .put(server.at("/schedules/x"))
        .json(&json!({"cron": "* * *", "task": {"kind": "echo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(error_code(res).await, ErrorCode::InvalidPayload);
    let res = http
        .put(server.at("/schedules/x"))
        .header("content-type", "text/plain")
        .body(r#"{"cron": "* * * * *", "task": {"kind": "echo"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = http.delete(server.at("/schedules/x")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(error_code(res).await, ErrorCode::NotFound);
}

#[tokio::test]
async fn create_list_replace_delete_over_socket_and_http_pushed_to_the_dashboard() {
    let server = TestServer::start(&[]).await;
    let c = server.client().await;
    let mut dash = server.client().await;
    dash.dashboard().await.unwrap();
    let http = reqwest::Client::new();

    let b = put(&c, schedule("b", "0 1 * * *")).await;
    assert_eq!(
        (
            b.name.as_str(),
            b.cron.as_str(),
            b.timezone.as_str(),
            b.paused
        ),
        ("b", "0 1 * * *", "UTC", false)
    );
    assert_eq!(
        b.task,
        json!({"kind": "echo", "input": {"from": "b"}, "priority": 0, "max_attempts": 3})
    );
    let next = b.next_run_at.expect("next_run_at");
    assert!(next > Timestamp::now() && next.0 <= Utc::now() + TimeDelta::days(1));
    assert_eq!((next.0.hour(), next.0.minute(), next.0.second()), (1, 0, 0));
    assert_eq!((b.last_run_at, b.last_task_id), (None, None));
    assert_eq!(pushed(&mut dash, |_| true).await, vec![b.clone()]);

    let res = http
        .put(server.at("/schedules/a"))
        .json(&json!({"cron": "30 2 * * 1-5", "timezone": "Europe/Paris", "task": {"kind": "sha256", "input": {"data": "x", "rounds": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let a: Schedule = res.json().await.unwrap();
    assert_eq!(
        (a.name.as_str(), a.timezone.as_str()),
        ("a", "Europe/Paris")
    );
    let all = pushed(&mut dash, |all| all.len() == 2).await;
    assert_eq!(all, vec![a.clone(), b.clone()], "sorted by name");
    assert_eq!(c.schedules().await.unwrap(), all);
    let listed: Value = http
        .get(server.at("/schedules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!({"schedules": all}));

    // Replace b: paused now, another time.
    let res = http
        .put(server.at("/schedules/b"))
        .json(&json!({"name": "b", "cron": "0 3 * * *", "paused": true, "task": {"kind": "echo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let replaced: Schedule = res.json().await.unwrap();
    assert!(replaced.paused);
    assert_eq!(replaced.cron, "0 3 * * *");
    assert_eq!(replaced.next_run_at.map(|t| t.0.hour()), Some(3));
    pushed(&mut dash, |all| all.len() == 2 && all[1].paused).await;

    let res = http.delete(server.at("/schedules/b")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(pushed(&mut dash, |all| all.len() == 1).await, vec![a]);
    c.unschedule("a").await.unwrap();
    assert!(pushed(&mut dash, |all| all.is_empty()).await.is_empty());
    assert!(c.schedules().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_every_second_schedule_fires_tasks_with_its_key_that_run() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    c.dashboard().await.unwrap();
    let mut paused = schedule("quiet", "* * * * * *");
    paused["paused"] = json!(true);
    put(&c, paused).await;
    put(&c, schedule("tick", "* * * * * *")).await;

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let all = pushed(&mut c, |all| {
            all.iter()
                .any(|s| s.name == "tick" && s.last_task_id.is_some())
        })
        .await;
        let tick = all.iter().find(|s| s.name == "tick").unwrap().clone();
        let quiet = all.iter().find(|s| s.name == "quiet").unwrap();
        assert_eq!(
            (quiet.last_run_at, quiet.last_task_id),
            (None, None),
            "a paused schedule fired"
        );
        if seen
            .last()
            .is_none_or(|s: &Schedule| s.last_run_at != tick.last_run_at)
        {
            seen.push(tick);
        }
    }
    c.unschedule("tick").await.unwrap();
    for pair in seen.windows(2) {
        let (a, b) = (pair[0].last_run_at.unwrap(), pair[1].last_run_at.unwrap());
        assert!(b > a, "firings in order");
        assert_eq!(b.millis() % 1000, 0, "a firing time is a whole second");
    }
    for s in &seen {
        let at = s.last_run_at.unwrap();
        assert!(s.next_run_at.unwrap() > at, "next is after the last");
        let id = s.last_task_id.unwrap();
        let task = c.subscribe(id).await.unwrap();
        assert_eq!(task.key, Some(format!("schedule:tick:{at}")));
        assert!(at.to_string().ends_with(".000Z"), "{at}");
        assert_eq!(task.kind, "echo");
        let done = if task.status.is_final() {
            task
        } else {
            result_of(&mut c, id).await
        };
        assert_eq!(done.status, TaskStatus::Succeeded);
        assert_eq!(done.output, Some(app::Json::from(json!({"from": "tick"}))));
    }
}

/// `n` consecutive whole seconds, the first at least `lead` seconds from
/// now, all in one minute.
fn seconds_ahead(lead: i64, n: i64) -> Vec<Timestamp> {
    let mut t = (Utc::now() + TimeDelta::seconds(lead))
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap();
    if i64::from(t.second()) + n > 60 {
        t = t.duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::seconds(60);
    }
    (0..n)
        .map(|i| Timestamp(t + TimeDelta::seconds(i)))
        .collect()
}

/// A 6-field cron that fires at `times` (one minute of this year) only.
fn cron_at(times: &[Timestamp]) -> String {
    let seconds: Vec<String> = times.iter().map(|t| t.0.second().to_string()).collect();
    let t = times[0].0;
    format!(
        "{} {} {} {} {} *",
        seconds.join(","),
        t.minute(),
        t.hour(),
        t.day(),
        t.month()
    )
}

/// Sleeps until the wall clock has passed `t` by `ms` milliseconds.
async fn sleep_past(t: Timestamp, ms: i64) {
    let left = (t.0 + TimeDelta::milliseconds(ms) - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(left).await;
}

#[tokio::test]
async fn a_durable_server_keeps_its_schedules_and_catches_a_missed_firing_up_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let flags = ["--data-dir", data.as_str(), "--workers", "1"];

    let mut server = TestServer::start_process(&flags).await;
    let c = server.client().await;
    // Fires at t1 and t2 this year only; the server is down at both.
    let times = seconds_ahead(4, 2);
    let (t1, t2) = (times[0], times[1]);
    let created = put(&c, schedule("once", &cron_at(&times))).await;
    assert_eq!(created.next_run_at, Some(t1));
    let mut paused = schedule("asleep", "0 0 * * *");
    paused["paused"] = json!(true);
    put(&c, paused).await;
    let before = c.schedules().await.unwrap();
    assert_eq!(before[1].last_run_at, None, "fired before the stop");
    assert!(signal(server.pid(), libc::SIGKILL));
    let _ = server.child.wait().await;
    drop(c);

    // Down until both times have passed.
    sleep_past(t2, 1500).await;

    let mut server = TestServer::start_process(&flags).await;
    let mut c = server.client().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let once = loop {
        let all = c.schedules().await.unwrap();
        assert_eq!(all.len(), 2);
        assert!(all[0].paused, "paused is kept");
        if all[1].last_task_id.is_some() {
            break all[1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no catch-up at start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        once.last_run_at,
        Some(t2),
        "caught up for the latest missed time"
    );
    let next_year = t1.0.with_year(t1.0.year() + 1).unwrap();
    assert_eq!(once.next_run_at, Some(Timestamp(next_year)));
    let id = once.last_task_id.unwrap();
    let task = c.subscribe(id).await.unwrap();
    assert_eq!(task.key, Some(format!("schedule:once:{t2}")));
    let done = if task.status.is_final() {
        task
    } else {
        result_of(&mut c, id).await
    };
    assert_eq!(done.status, TaskStatus::Succeeded);
    let stats = server.stats().await;
    assert_eq!(
        (stats.succeeded, stats.queued, stats.running),
        (1, 0, 0),
        "exactly one run for the missed firings"
    );
    assert!(signal(server.pid(), libc::SIGTERM));
    let _ = server.child.wait().await;
    drop(c);

    // Up again: that firing is not run a second time.
    let server = TestServer::start(&flags).await;
    let c = server.client().await;
    let all = c.schedules().await.unwrap();
    assert_eq!(all[1], once);
    let stats = server.stats().await;
    assert_eq!((stats.queued, stats.running), (0, 0));
}

#[tokio::test]
async fn a_firing_whose_key_is_taken_runs_no_second_task() {
    let server = TestServer::start(&[]).await;
    let mut c = server.client().await;
    c.dashboard().await.unwrap();
    // What a server that stopped after submitting this firing, before
    // recording it, would find at its next start.
    let times = seconds_ahead(3, 1);
    let mut earlier = spec("echo", json!({"from": "before"}));
    earlier.key = Some(format!("schedule:dup:{}", times[0]));
    let earlier = c.submit(&earlier).await.unwrap();
    put(&c, schedule("dup", &cron_at(&times))).await;
    let all = pushed(&mut c, |all| all[0].last_task_id.is_some()).await;
    assert_eq!(all[0].last_run_at, Some(times[0]));
    assert_eq!(
        all[0].last_task_id,
        Some(earlier.id),
        "the firing is that task"
    );
    let stats = server.stats().await;
    assert_eq!(stats.succeeded + stats.queued + stats.running, 1);
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_schedule_commands() {
    let server = TestServer::start(&[]).await;
    let url = server.url.as_str();
    let out = taskwire(&[
        "schedule",
        "add",
        "nightly",
        "--url",
        url,
        "--cron",
        "0 1 * * *",
        "--timezone",
        "Europe/Paris",
        "--kind",
        "echo",
        "--input",
        r#"{"a":1}"#,
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let added: Schedule = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (added.name.as_str(), added.timezone.as_str()),
        ("nightly", "Europe/Paris")
    );
    assert_eq!(added.task["input"], json!({"a": 1}));
    let out = taskwire(&[
        "schedule",
        "add",
        "idle",
        "--url",
        url,
        "--cron",
        "*/10 * * * * *",
        "--kind",
        "echo",
        "--paused",
    ])
    .await;
    assert!(out.status.success(), "{out:?}");

    let out = taskwire(&["schedule", "list", "--url", url]).await;
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("NAME "), "{lines:?}");
    assert!(
        lines[1].starts_with("idle ") && lines[1].ends_with("paused"),
        "{lines:?}"
    );
    let next = added.next_run_at.unwrap().to_string();
    assert!(
        lines[2].starts_with("nightly ") && lines[2].contains(&next),
        "{lines:?}"
    );
    let out = taskwire(&["schedule", "list", "--url", url, "--json"]).await;
    let listed: Vec<Schedule> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);

    let out = taskwire(&["schedule", "rm", "nightly", "--url", url]).await;
    assert!(out.status.success(), "{out:?}");
    for args in [
        &["schedule", "rm", "nightly", "--url", url][..],
        &[
            "schedule", "add", "x", "--url", url, "--cron", "* *", "--kind", "echo",
        ][..],
    ] {
        let out = taskwire(args).await;
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        let code = if args[1] == "rm" {
            "not_found"
        } else {
            "invalid_payload"
        };
        assert!(err.contains(code), "{err}");
    }
    let out = taskwire(&["schedule", "list", "--url", url, "--json"]).await;
    let listed: Vec<Schedule> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["idle"]
    );
}

#[tokio::test]
async fn a_cluster_shares_its_schedules_and_fires_each_firing_on_one_node() {
    let cluster = Cluster::new().await;
    let a = cluster.node(&[]).await;
    let b = cluster.node(&[]).await;
    let ca = a.client().await;
    let cb = b.client().await;
    let mut dash = b.client().await;
    dash.dashboard().await.unwrap();

    // Three firings, far enough ahead that both nodes have read it.
    let times = seconds_ahead(5, 3);
    let created = put(&ca, schedule("shared", &cron_at(&times))).await;
    assert_eq!(created.next_run_at, Some(times[0]));
    assert_eq!(
        cb.schedules().await.unwrap(),
        vec![created.clone()],
        "the other node sees it"
    );

    // Every firing's push reaches the dashboard on node b, whichever node
    // fired: one task per firing time.
    let mut fired: HashMap<Timestamp, HashSet<TaskId>> = HashMap::new();
    while !fired.contains_key(&times[2]) {
        let all = pushed(&mut dash, |all| {
            all.first().is_some_and(|s| s.last_run_at.is_some())
        })
        .await;
        let s = &all[0];
        fired
            .entry(s.last_run_at.unwrap())
            .or_default()
            .insert(s.last_task_id.unwrap());
    }
    // Past the last firing, a second claim of any of them would have run.
    sleep_past(times[2], 1000).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let stats = loop {
        let stats = b.stats().await;
        if stats.queued + stats.running == 0 {
            break stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tasks still unfinished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(stats.succeeded, 3, "one task per firing: {fired:?}");
    let mut firing_times: Vec<Timestamp> = fired.keys().copied().collect();
    firing_times.sort();
    assert_eq!(firing_times, times);
    for (at, ids) in &fired {
        assert_eq!(ids.len(), 1, "{at} fired by two nodes");
        let id = *ids.iter().next().unwrap();
        let task = ca.subscribe(id).await.unwrap();
        assert_eq!(task.status, TaskStatus::Succeeded);
        // The claim keeps each firing to one node; the key to one task.
        assert_eq!(task.key, Some(Schedule::firing_key("shared", *at)));
    }
    // A schedule's task may use the v1.1 options in a cluster too.
    let mut delayed = schedule("later", "0 1 * * *");
    delayed["task"]["delay_ms"] = json!(10);
    delayed["task"]["retry_on_failure"] = json!(true);
    delayed["task"]["concurrency_key"] = json!("nightly");
    put(&cb, delayed).await;
    cb.unschedule("later").await.unwrap();

    // Deleted on one node, gone on the other.
    cb.unschedule("shared").await.unwrap();
    assert!(ca.schedules().await.unwrap().is_empty());
    assert_eq!(
        refused(&ca, events::UNSCHEDULE, json!({"name": "shared"})).await,
        (ErrorCode::NotFound, None)
    );
    drop((a, b));
    cluster.drop().await;
}
