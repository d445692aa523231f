//! Schedules alone: validation, cron times across daylight-saving changes,
//! and the actor on tokio's paused clock with a fake submitter (which
//! records each firing's task) and a fake announcer. Time moves only when
//! everything waits, so every firing time is exact.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use app::{Field, Schedule, Timestamp};
use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::*;
use crate::store::Store;

fn at(s: &str) -> Timestamp {
    Timestamp(s.parse().expect("a test time"))
}

fn refusal(raw: Value) -> (ErrorCode, Option<String>) {
    let e = ScheduleSpec::parse(raw).expect_err("refused");
    (e.code, e.field.map(|f| f.to_string()))
}

fn schedule(name: &str, cron: &str) -> Value {
    json!({"name": name, "cron": cron, "task": {"kind": "echo", "input": {"n": 1}}})
}

#[test]
fn a_valid_schedule_is_read_with_its_defaults() {
    let spec = ScheduleSpec::parse(schedule("nightly.v2_a-b", " 0 1 * * * ")).unwrap();
    assert_eq!(spec.name, "nightly.v2_a-b");
    assert_eq!(spec.cron, "0 1 * * *");
    assert_eq!(spec.timezone, "UTC");
    assert!(!spec.paused);
    assert_eq!(spec.task.kind, "echo");
    assert_eq!(
        spec.task.to_json(),
        json!({"kind": "echo", "input": {"n": 1}, "priority": 0, "max_attempts": 3})
    );
    let spec = ScheduleSpec::parse(json!({
        "name": "s", "cron": "*/5 * * * * *", "timezone": "Europe/Paris", "paused": true,
        "task": {"kind": "sleep", "input": {"ms": 1}, "delay_ms": 10},
    }))
    .unwrap();
    assert_eq!(
        (spec.timezone.as_str(), spec.paused),
        ("Europe/Paris", true)
    );
    assert_eq!(spec.task.delay_ms, Some(10));
}

#[test]
fn bad_values_are_invalid_payload_about_their_field() {
    let invalid = |field: &str| (ErrorCode::InvalidPayload, Some(field.to_owned()));
    for name in [
        json!(""),
        json!("a b"),
        json!("é"),
        json!("x".repeat(129)),
        json!(7),
    ] {
        let mut raw = schedule("x", "* * * * *");
        raw["name"] = name.clone();
        assert_eq!(refusal(raw), invalid("name"), "{name}");
    }
    assert_eq!(refusal(json!({"cron": "* * * * *"})), invalid("name"));
    for cron in [
        "* * * *",
        "* * * * * * *",
        "@daily",
        "61 * * * *",
        "* * 32 * *",
        "a b c d e",
        "0 0 30 2 *",
        "",
    ] {
        assert_eq!(refusal(schedule("x", cron)), invalid("cron"), "{cron:?}");
    }
    let mut raw = schedule("x", "* * * * *");
    raw["cron"] = json!(5);
    assert_eq!(refusal(raw), invalid("cron"));
    for tz in [json!("Mars/Olympus"), json!("utc+1"), json!(""), json!(1)] {
        let mut raw = schedule("x", "* * * * *");
        raw["timezone"] = tz.clone();
        assert_eq!(refusal(raw), invalid("timezone"), "{tz}");
    }
    let mut raw = schedule("x", "* * * * *");
    raw["paused"] = json!("yes");
    assert_eq!(refusal(raw), invalid("paused"));
}

#[test]
fn the_task_is_checked_and_may_not_set_key_after_or_run_at() {
    let with_task = |task: Value| json!({"name": "x", "cron": "* * * * *", "task": task});
    let invalid = |field: &str| (ErrorCode::InvalidPayload, Some(field.to_owned()));
    assert_eq!(
        refusal(json!({"name": "x", "cron": "* * * * *"})),
        invalid("task")
    );
    assert_eq!(refusal(with_task(json!("echo"))), invalid("task"));
    assert_eq!(
        refusal(with_task(json!({"input": 1}))),
        invalid("task.kind")
    );
    assert_eq!(
        refusal(with_task(json!({"kind": "echo", "priority": "high"}))),
        invalid("task.priority")
    );
    for (field, value) in [
        ("key", json!("k")),
        ("after", json!(["0193f1c2-7d3a-7c1e-9a51-3b0e6f1d2a40"])),
        ("run_at", json!("2026-12-05T01:00:00.000Z")),
    ] {
        let mut task = json!({"kind": "echo"});
        task[field] = value;
        let e = ScheduleSpec::parse(with_task(task)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidPayload);
        assert_eq!(e.field, Some(Field::from_name(&format!("task.{field}"))));
        assert!(
            e.message.contains("cannot be set in a schedule"),
            "{}",
            e.message
        );
    }
    // A kind's refusal, as the API maps it.
    let e = in_task(ErrorBody::new(ErrorCode::UnknownKind, "unknown kind nope"));
    assert_eq!(e.code, ErrorCode::InvalidPayload);
    assert_eq!(e.message, "task: unknown kind nope");
    assert_eq!(e.field.map(|f| f.to_string()).as_deref(), Some("task"));
}

#[test]
fn the_body_of_a_put_takes_its_name_from_the_path() {
    let body = json!({"cron": "* * * * *", "task": {"kind": "echo"}});
    assert_eq!(
        ScheduleSpec::parse_named("p", body.clone()).unwrap().name,
        "p"
    );
    let mut same = body.clone();
    same["name"] = json!("p");
    assert!(ScheduleSpec::parse_named("p", same).is_ok());
    let mut other = body;
    other["name"] = json!("q");
    let e = ScheduleSpec::parse_named("p", other).unwrap_err();
    assert_eq!(e.field, Some(Field::from_name("name")));
    let e = ScheduleSpec::parse_named("bad name", json!({"cron": "* * * * *"})).unwrap_err();
    assert_eq!(e.field, Some(Field::from_name("name")));
}

/// The firings of `when` after `from`, as the wire shows them.
fn firings(when: &When, from: &str, n: usize) -> Vec<String> {
    let mut t = at(from);
    (0..n)
        .map(|_| {
            t = when.next_after(t).expect("a next firing");
            t.to_string()
        })
        .collect()
}

#[test]
fn half_past_two_in_paris_across_both_daylight_saving_changes() {
    let when = When::parse("30 2 * * *", "Europe/Paris").unwrap();
    // 29 March 2026: 02:00 CET jumps to 03:00 CEST, so 02:30 does not
    // exist: that day's firing is the first instant after the gap.
    assert_eq!(
        firings(&when, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00.000Z", // 02:30 CET
            "2026-03-29T01:00:00.000Z", // 03:00 CEST
            "2026-03-30T00:30:00.000Z", // 02:30 CEST
        ]
    );
    // 25 October 2026: 03:00 CEST goes back to 02:00 CET, so 02:30
    // happens twice: it fires once, on the first pass.
    assert_eq!(
        firings(&when, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00.000Z", // 02:30 CEST
            "2026-10-25T00:30:00.000Z", // 02:30 CEST, first pass
            "2026-10-26T01:30:00.000Z", // 02:30 CET
        ]
    );
    // Searching from between the two passes finds the next day's.
    assert_eq!(
        firings(&when, "2026-10-25T00:45:00Z", 1),
        ["2026-10-26T01:30:00.000Z"]
    );
    // The latest firing at or before a time, across the gap.
    assert_eq!(
        when.latest_until(at("2026-03-29T12:00:00Z")),
        Some(at("2026-03-29T01:00:00Z"))
    );
}

#[test]
fn next_is_strictly_after_and_latest_is_at_or_before() {
    let every_second = When::parse("* * * * * *", "UTC").unwrap();
    let t = |s: &str| every_second.next_after(at(s)).map(|t| t.to_string());
    assert_eq!(
        t("2026-12-05T01:00:00Z").as_deref(),
        Some("2026-12-05T01:00:01.000Z")
    );
    assert_eq!(
        t("2026-12-05T01:00:00.500Z").as_deref(),
        Some("2026-12-05T01:00:01.000Z")
    );
    assert_eq!(
        every_second.latest_until(at("2026-12-05T01:00:00.500Z")),
        Some(at("2026-12-05T01:00:00Z"))
    );
    assert_eq!(
        every_second.latest_until(at("2026-12-05T01:00:00Z")),
        Some(at("2026-12-05T01:00:00Z"))
    );
    let five = When::parse("15 3 * * 1", "America/New_York").unwrap();
    // Monday 7 December 2026, 03:15 EST.
    assert_eq!(
        firings(&five, "2026-12-05T00:00:00Z", 1),
        ["2026-12-07T08:15:00.000Z"]
    );
}

/// Records each firing's task; refuses with the queued errors first.
#[derive(Default)]
struct FakeSubmit {
    fired: Mutex<Option<mpsc::UnboundedSender<(TaskSpec, TaskId)>>>,
    refusals: Mutex<VecDeque<ErrorBody>>,
}

impl Submit for FakeSubmit {
    fn submit(&self, spec: TaskSpec) -> BoxFuture<'static, Result<TaskId, ErrorBody>> {
        let refused = self.refusals.lock().unwrap().pop_front();
        let answer = match refused {
            Some(e) => Err(e),
            None => {
                let id = TaskId::from(uuid::Uuid::now_v7());
                if let Some(tx) = &*self.fired.lock().unwrap() {
                    let _ = tx.send((spec, id));
                }
                Ok(id)
            }
        };
        async move { answer }.boxed()
    }
}

struct FakeAnnounce(mpsc::UnboundedSender<Vec<Schedule>>);

impl Announce for FakeAnnounce {
    fn schedules<'a>(&'a self, all: &'a SchedulesEvent) -> BoxFuture<'a, ()> {
        let _ = self.0.send(all.schedules.clone());
        async {}.boxed()
    }
}

/// One actor on the paused clock, reading `base` at start.
struct Harness {
    handle: Schedules,
    clock: Clock,
    fired: mpsc::UnboundedReceiver<(TaskSpec, TaskId)>,
    pushes: mpsc::UnboundedReceiver<Vec<Schedule>>,
    submit: Arc<FakeSubmit>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(base: &str, keep: Keep) -> Self {
        let (fired_tx, fired) = mpsc::unbounded_channel();
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let submit = Arc::new(FakeSubmit::default());
        *submit.fired.lock().unwrap() = Some(fired_tx);
        let clock = Clock::starting_at(at(base));
        let (handle, mailbox) = channel();
        let stop = CancellationToken::new();
        let setup = Setup {
            keep,
            submit: submit.clone(),
            announce: Arc::new(FakeAnnounce(push_tx)),
            clock,
        };
        let task = spawn(mailbox, setup, stop.clone())
            .await
            .expect("schedules start");
        Self {
            handle,
            clock,
            fired,
            pushes,
            submit,
            stop,
            task,
        }
    }

    async fn put(&self, raw: Value) -> Schedule {
        let spec = ScheduleSpec::parse(raw).expect("valid schedule");
        self.handle.put(spec).await.expect("put")
    }

    /// The next firing's key and task id, and the time it happened at.
    async fn next_firing(&mut self) -> (String, TaskId, Timestamp) {
        let (spec, id) = self.fired.recv().await.expect("a firing");
        (spec.key.expect("a firing's key"), id, self.clock.now())
    }

    /// Lets `secs` seconds pass, then says whether anything fired.
    async fn fired_within(&mut self, secs: u64) -> bool {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.fired.try_recv().is_ok()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("actor ended cleanly");
    }
}

#[tokio::test(start_paused = true)]
async fn a_schedule_fires_at_its_times_with_its_key() {
    let mut h = Harness::start("2026-12-05T00:59:58.250Z", Keep::Memory).await;
    let created = h.put(schedule("nightly", "0 1 * * *")).await;
    assert_eq!(created.next_run_at, Some(at("2026-12-05T01:00:00Z")));
    assert_eq!((created.last_run_at, created.last_task_id), (None, None));
    assert_eq!(h.pushes.recv().await.unwrap(), vec![created.clone()]);

    let (key, id, now) = h.next_firing().await;
    assert_eq!(key, "schedule:nightly:2026-12-05T01:00:00.000Z");
    assert_eq!(now, at("2026-12-05T01:00:00Z"), "fired on time");
    let pushed = h.pushes.recv().await.unwrap();
    assert_eq!(pushed[0].last_run_at, Some(at("2026-12-05T01:00:00Z")));
    assert_eq!(pushed[0].last_task_id, Some(id));
    assert_eq!(pushed[0].next_run_at, Some(at("2026-12-06T01:00:00Z")));
    assert_eq!(h.handle.list().await.unwrap(), pushed);

    let (key, _, now) = h.next_firing().await;
    assert_eq!(key, "schedule:nightly:2026-12-06T01:00:00.000Z");
    assert_eq!(now, at("2026-12-06T01:00:00Z"));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn every_second_with_six_fields_and_the_task_as_given() {
    let mut h = Harness::start("2026-12-05T10:00:00Z", Keep::Memory).await;
    h.put(json!({
        "name": "tick", "cron": "* * * * * *",
        "task": {"kind": "sleep", "input": {"ms": 5}, "priority": 7},
    }))
    .await;
    for second in 1..=3 {
        let (spec, _) = h.fired.recv().await.unwrap();
        assert_eq!(
            spec.key.as_deref(),
            Some(format!("schedule:tick:2026-12-05T10:00:0{second}.000Z").as_str())
        );
        assert_eq!((spec.kind.as_str(), spec.priority), ("sleep", 7));
        assert_eq!(spec.input, json!({"ms": 5}));
    }
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_paused_schedule_does_not_fire_until_replaced_unpaused() {
    let mut h = Harness::start("2026-12-05T10:00:00Z", Keep::Memory).await;
    let mut raw = schedule("p", "* * * * * *");
    raw["paused"] = json!(true);
    let paused = h.put(raw.clone()).await;
    assert_eq!(paused.next_run_at, Some(at("2026-12-05T10:00:01Z")));
    assert!(!h.fired_within(10).await, "a paused schedule fired");
    // Its next time is counted from now.
    let listed = h.handle.list().await.unwrap();
    assert_eq!(listed[0].next_run_at, Some(at("2026-12-05T10:00:11Z")));
    raw["paused"] = json!(false);
    h.put(raw).await;
    let (key, _, _) = h.next_firing().await;
    assert_eq!(key, "schedule:p:2026-12-05T10:00:11.000Z");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn replace_keeps_the_history_and_delete_stops_it() {
    let mut h = Harness::start("2026-12-05T10:00:00Z", Keep::Memory).await;
    h.put(schedule("b", "* * * * * *")).await;
    let (_, id, _) = h.next_firing().await;
    let replaced = h.put(schedule("b", "0 12 * * *")).await;
    assert_eq!(replaced.last_run_at, Some(at("2026-12-05T10:00:01Z")));
    assert_eq!(replaced.last_task_id, Some(id));
    assert_eq!(replaced.next_run_at, Some(at("2026-12-05T12:00:00Z")));
    h.put(schedule("a", "0 13 * * *")).await;
    let names: Vec<String> = h
        .handle
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    h.handle.delete("b".into()).await.unwrap();
    let e = h.handle.delete("b".into()).await.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::NotFound, "no schedule b")
    );
    assert!(
        !h.fired_within(2 * 3600 + 1800).await,
        "a deleted schedule fired"
    );
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_firing_refused_for_now_is_tried_again_with_the_same_key() {
    let mut h = Harness::start("2026-12-05T00:59:00Z", Keep::Memory).await;
    h.submit
        .refusals
        .lock()
        .unwrap()
        .push_back(ErrorBody::new(ErrorCode::QueueFull, "full"));
    h.put(schedule("n", "0 * * * *")).await;
    let (key, _, now) = h.next_firing().await;
    assert_eq!(key, "schedule:n:2026-12-05T01:00:00.000Z");
    assert_eq!(now, at("2026-12-05T01:00:01Z"), "one retry, a second later");
    // A refusal that will not pass skips that firing.
    h.submit
        .refusals
        .lock()
        .unwrap()
        .push_back(ErrorBody::new(ErrorCode::UnknownKind, "gone"));
    let (key, _, _) = h.next_firing().await;
    assert_eq!(key, "schedule:n:2026-12-05T03:00:00.000Z");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_restart_missed_firings_run_once_for_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();

    let h = Harness::start("2026-12-05T00:30:00Z", Keep::Store(store.clone())).await;
    h.put(schedule("hourly", "0 * * * *")).await;
    let mut raw = schedule("asleep", "0 * * * *");
    raw["paused"] = json!(true);
    h.put(raw).await;
    h.stop().await;

    // Down from 00:30 to 04:20: 01:00, 02:00, 03:00 and 04:00 were missed.
    let mut h = Harness::start("2026-12-05T04:20:00Z", Keep::Store(store.clone())).await;
    let (key, id, now) = h.next_firing().await;
    assert_eq!(key, "schedule:hourly:2026-12-05T04:00:00.000Z");
    assert_eq!(now, at("2026-12-05T04:20:00Z"), "caught up at start");
    let listed = h.handle.list().await.unwrap();
    assert_eq!(listed[1].name, "hourly");
    assert_eq!(listed[1].last_run_at, Some(at("2026-12-05T04:00:00Z")));
    assert_eq!(listed[1].last_task_id, Some(id));
    assert_eq!(listed[1].next_run_at, Some(at("2026-12-05T05:00:00Z")));
    assert!(!h.fired_within(39 * 60).await, "fired again before 05:00");
    let (key, _, _) = h.next_firing().await;
    assert_eq!(key, "schedule:hourly:2026-12-05T05:00:00.000Z");
    h.stop().await;

    // Up again before the next time: nothing to catch up.
    let mut h = Harness::start("2026-12-05T05:30:00Z", Keep::Store(store)).await;
    assert_eq!(h.handle.list().await.unwrap().len(), 2);
    assert!(!h.fired_within(60).await, "caught up a firing that ran");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_holds_at_most_so_many_schedules() {
    let h = Harness::start("2026-12-05T10:00:00Z", Keep::Memory).await;
    for i in 0..MAX_SCHEDULES {
        h.put(schedule(&format!("s{i}"), "0 0 1 1 *")).await;
    }
    let spec = ScheduleSpec::parse(schedule("one-more", "0 0 1 1 *")).unwrap();
    let e = h.handle.put(spec).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPayload);
    assert!(e.message.contains("1000 schedules"), "{}", e.message);
    // Replacing one is still fine.
    h.put(schedule("s0", "0 0 2 1 *")).await;
    h.stop().await;
}

#[tokio::test]
async fn unsupported_schedules_refuse_everything() {
    let h = Schedules::unsupported();
    let e = h.list().await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidPayload);
    assert_eq!(e.message, "this server has no schedules");
}
