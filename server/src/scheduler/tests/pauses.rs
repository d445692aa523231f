//! Pausing and resuming a kind, and `stats.kinds`, on the scheduler alone
//! and the paused clock.

use super::*;

/// A task of `kind`, changed by `tune`.
fn of_kind(kind: &str, tune: impl FnOnce(&mut Task)) -> Task {
    let mut task = Task::new(
        TaskId::from(uuid::Uuid::now_v7()),
        TaskSpec::new(kind, json!(null)),
        Timestamp::now(),
    );
    tune(&mut task);
    task
}

impl Harness {
    async fn pause(&self, kind: &str, paused: bool) -> app::KindInfo {
        self.dispatcher
            .set_paused(kind.into(), paused, true)
            .await
            .expect("paused or resumed")
    }

    async fn submit_kind(&self, kind: &str, tune: impl FnOnce(&mut Task)) -> TaskId {
        let task = of_kind(kind, tune);
        let id = task.id;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = TasksReply::new(move |r| drop(tx.send(r.map(|_| ()))));
        let cmd = Command::Submit {
            tasks: vec![(task, CPU)],
            client: None,
            reply,
        };
        self.dispatcher.send(cmd).await.unwrap();
        rx.await.unwrap().expect("accepted");
        id
    }

    async fn status(&self, id: TaskId) -> TaskStatus {
        self.dispatcher.get(id).await.unwrap().status
    }

    async fn kind_line(&self, kind: &str) -> app::KindStats {
        let stats = self.dispatcher.stats().await.unwrap();
        stats
            .kinds
            .into_iter()
            .find(|k| k.kind == kind)
            .unwrap_or_else(|| panic!("no line for {kind}"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_paused_kind_stays_queued_and_holds_back_no_other() {
    let mut h = Harness::start(SchedulerConfig::default());
    let info = h.pause("sleep", true).await;
    assert_eq!(
        info,
        app::KindInfo {
            kind: "sleep".into(),
            paused: true
        }
    );
    let held = h.submit_kind("sleep", |_| {}).await;
    let other = h.submit_kind("echo", |_| {}).await;
    h.worker("w", Slots::per_class(2, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(other));
    h.report("w", done(other)).await;
    assert_eq!(h.status(held).await, TaskStatus::Queued);
    h.no_more_calls();
    let line = h.kind_line("sleep").await;
    assert_eq!((line.paused, line.queued, line.running), (true, 1, 0));
    let kinds = h
        .dispatcher
        .kinds(vec!["echo".into(), "sleep".into()])
        .await
        .unwrap();
    assert_eq!(
        kinds.iter().map(|k| k.paused).collect::<Vec<_>>(),
        [false, true]
    );
    // A resume dispatches at once.
    assert!(!h.pause("sleep", false).await.paused);
    assert_eq!(h.next_call().await.1, Call::Run(held));
}

#[tokio::test(start_paused = true)]
async fn running_tasks_of_a_paused_kind_finish() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let first = h.submit_kind("echo", |_| {}).await;
    assert_eq!(h.next_call().await.1, Call::Run(first));
    let second = h.submit_kind("echo", |_| {}).await;
    h.pause("echo", true).await;
    h.report("w", done(first)).await;
    assert_eq!(h.status(first).await, TaskStatus::Succeeded);
    assert_eq!(h.status(second).await, TaskStatus::Queued);
    h.no_more_calls();
    h.pause("echo", false).await;
    assert_eq!(h.next_call().await.1, Call::Run(second));
}

#[tokio::test(start_paused = true)]
async fn delays_dependencies_and_concurrency_keys_wait_behind_a_pause() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(4, 0), Stopping::Confirmed)
        .await;
    h.pause("echo", true).await;
    let keyed = |t: &mut Task| {
        t.concurrency_key = Some("k".into());
        t.concurrency_limit = 1;
    };
    let k1 = h.submit_kind("echo", keyed).await;
    let k2 = h.submit_kind("echo", keyed).await;
    let later = h
        .submit_kind("echo", |t| {
            t.run_at = Some(Timestamp::now().plus_millis(1000));
        })
        .await;
    let dep = h.submit_kind("sha256", |_| {}).await;
    let after = h.submit_kind("echo", |t| t.after = vec![dep]).await;
    assert_eq!(h.next_call().await.1, Call::Run(dep));
    h.report("w", done(dep)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [k1, k2, later, after] {
        assert_eq!(h.status(id).await, TaskStatus::Queued, "{id}");
    }
    h.no_more_calls();
    h.pause("echo", false).await;
    // Three start (in submission order); k2 waits for its key.
    let mut started = Vec::new();
    for _ in 0..3 {
        started.push(h.next_call().await.1);
    }
    assert_eq!(
        started,
        vec![Call::Run(k1), Call::Run(later), Call::Run(after)]
    );
    h.no_more_calls();
    h.report("w", done(k1)).await;
    assert_eq!(h.next_call().await.1, Call::Run(k2));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kind_cannot_be_paused_but_a_paused_one_can_be_resumed() {
    let h = Harness::start(SchedulerConfig::default());
    let err = h
        .dispatcher
        .set_paused("nope".into(), true, false)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownKind);
    h.pause("remote-only", true).await;
    // Its workers left (not known any more): still listed, and resumable.
    let kinds = h.dispatcher.kinds(vec!["echo".into()]).await.unwrap();
    assert_eq!(
        kinds,
        vec![
            app::KindInfo {
                kind: "echo".into(),
                paused: false
            },
            app::KindInfo {
                kind: "remote-only".into(),
                paused: true
            }
        ]
    );
    let info = h
        .dispatcher
        .set_paused("remote-only".into(), false, false)
        .await
        .unwrap();
    assert!(!info.paused);
}

#[tokio::test(start_paused = true)]
async fn stats_kinds_show_waits_and_run_times_on_the_clock() {
    let mut h = Harness::start(SchedulerConfig::default());
    let a = h.submit_kind("echo", |_| {}).await;
    let b = h.submit_kind("echo", |_| {}).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(a));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let line = h.kind_line("echo").await;
    assert_eq!((line.queued, line.running), (1, 1));
    assert_eq!(line.wait_ms.count, 1);
    assert_eq!(line.run_ms, app::Latency::default());
    h.report("w", done(a)).await;
    assert_eq!(h.next_call().await.1, Call::Run(b));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    h.report("w", done(b)).await;
    h.pushes_until_result(b).await;
    let line = h.kind_line("echo").await;
    assert_eq!((line.queued, line.running), (0, 0));
    assert_eq!(line.wait_ms.count, 2);
    assert_eq!(line.run_ms.count, 2);
    let near = |got: Option<f64>, want: f64| {
        let got = got.expect("a figure");
        assert!((got - want).abs() <= want * 0.01 + 1.0, "{got} vs {want}");
    };
    // a waited 300 ms and ran 200; b waited 500 and ran 1000.
    near(line.wait_ms.p50, 300.0);
    near(line.wait_ms.p99, 500.0);
    near(line.run_ms.p50, 200.0);
    near(line.run_ms.p99, 1000.0);
    // Five minutes later the window is empty again, and so is the line.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let stats = h.dispatcher.stats().await.unwrap();
    assert!(stats.kinds.is_empty(), "{:?}", stats.kinds);
}
