//! v1.1 on the scheduler alone, on the paused clock: delays, retries with
//! backoff, idempotency keys, dependencies and concurrency keys.

use super::*;

/// A task of kind `echo` as `Task::new` makes it, changed by `tune`.
fn task(tune: impl FnOnce(&mut Task)) -> Task {
    let mut task = Task::new(
        TaskId::from(uuid::Uuid::now_v7()),
        TaskSpec::new("echo", json!(null)),
        Timestamp::now(),
    );
    tune(&mut task);
    task
}

fn failed(id: TaskId) -> Report {
    Report::Failed {
        id,
        message: "flaky".into(),
    }
}

impl Harness {
    /// Submits `tasks` as one batch: each acked task and whether it was
    /// deduplicated, or the refusal.
    async fn submit_tasks(&self, tasks: Vec<Task>) -> Result<Vec<(Task, bool)>, ErrorBody> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = TasksReply::new(move |r| {
            let _ = tx.send(r.map(|s| {
                s.tasks
                    .iter()
                    .map(|t| (*t).clone())
                    .zip(s.deduplicated.iter().copied())
                    .collect::<Vec<_>>()
            }));
        });
        let cmd = Command::Submit {
            tasks: tasks.into_iter().map(|t| (t, CPU)).collect(),
            client: None,
            reply,
        };
        self.dispatcher.send(cmd).await.unwrap();
        rx.await.unwrap()
    }

    /// Submits one task; its ack.
    async fn submit_one(&self, task: Task) -> Task {
        let mut acked = self.submit_tasks(vec![task]).await.expect("accepted");
        assert_eq!(acked.len(), 1);
        let (task, deduplicated) = acked.remove(0);
        assert!(!deduplicated);
        task
    }
}

#[tokio::test(start_paused = true)]
async fn a_delayed_task_is_scheduled_then_queued_at_its_time() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let start = tokio::time::Instant::now();
    let run_at = Timestamp::now().plus_millis(600_000);
    let acked = h.submit_one(task(|t| t.run_at = Some(run_at))).await;
    assert_eq!(acked.status, TaskStatus::Scheduled);
    assert_eq!(acked.run_at, Some(run_at));
    assert_eq!(h.dispatcher.stats().await.unwrap().scheduled, 1);
    assert_eq!(h.next_call().await.1, Call::Run(acked.id));
    // Ten minutes, to the millisecond (virtual time; the wall clock moved
    // by the few microseconds the test took).
    let waited = start.elapsed().as_millis();
    assert!((599_990..=600_001).contains(&waited), "{waited}");
    assert_eq!(
        h.next_push().await,
        Push::Status(acked.id, TaskStatus::Queued, 0)
    );
    assert_eq!(
        h.next_push().await,
        Push::Status(acked.id, TaskStatus::Running, 1)
    );
    let task = h.dispatcher.get(acked.id).await.unwrap();
    assert_eq!(task.run_at, Some(run_at), "run_at is kept after it came");
}

#[tokio::test(start_paused = true)]
async fn a_run_at_years_away_waits_beyond_the_timers_reach() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    // The timer wheel reaches about two years: further is set again daily.
    let far = Timestamp::from_millis(253_402_300_799_999).unwrap(); // 9999-12-31
    let acked = h.submit_one(task(|t| t.run_at = Some(far))).await;
    assert_eq!(acked.status, TaskStatus::Scheduled);
    tokio::time::sleep(crate::scheduler::pending::MAX_TIMER * 3 + Duration::from_secs(1)).await;
    let stats = h.dispatcher.stats().await.expect("the scheduler runs");
    assert_eq!((stats.scheduled, stats.queued), (1, 0));
    let now = h.submit_one(task(|_| {})).await;
    assert_eq!(h.next_call().await.1, Call::Run(now.id));
    let cancelled = h.dispatcher.cancel(acked.id).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_is_retried_after_a_doubling_backoff_then_fails() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let id = h
        .submit_one(task(|t| {
            t.retry_on_failure = true;
            t.backoff_ms = 10_000;
            t.max_attempts = 3;
        }))
        .await
        .id;
    let mut waits = Vec::new();
    for attempt in 1..=3 {
        assert_eq!(h.next_call().await.1, Call::Run(id));
        assert_eq!(
            h.next_push().await,
            Push::Status(id, TaskStatus::Running, attempt)
        );
        let failed_at = tokio::time::Instant::now();
        h.report("w", failed(id)).await;
        if attempt == 3 {
            break;
        }
        assert_eq!(
            h.next_push().await,
            Push::Status(id, TaskStatus::Scheduled, attempt)
        );
        let scheduled = h.dispatcher.get(id).await.unwrap();
        assert_eq!(scheduled.status, TaskStatus::Scheduled);
        assert!(scheduled.run_at.is_some());
        assert_eq!(
            h.next_push().await,
            Push::Status(id, TaskStatus::Queued, attempt)
        );
        waits.push(failed_at.elapsed().as_millis());
    }
    // 10 s then 20 s, each ±20 %.
    assert!((8_000..=12_000).contains(&waits[0]), "{waits:?}");
    assert!((16_000..=24_000).contains(&waits[1]), "{waits:?}");
    assert_eq!(
        h.next_push().await,
        Push::Result(id, TaskStatus::Failed, Some(ErrorCode::TaskFailed))
    );
    assert_eq!(h.dispatcher.get(id).await.unwrap().attempt, 3);
}

#[tokio::test(start_paused = true)]
async fn without_retry_on_failure_a_handler_error_is_final() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let id = h.submit_one(task(|t| t.max_attempts = 5)).await.id;
    assert_eq!(h.next_call().await.1, Call::Run(id));
    h.report("w", failed(id)).await;
    let pushes = h.pushes_until_result(id).await;
    assert_eq!(
        pushes,
        vec![
            Push::Status(id, TaskStatus::Running, 1),
            Push::Result(id, TaskStatus::Failed, Some(ErrorCode::TaskFailed)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_retried_when_asked() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Released)
        .await;
    let id = h
        .submit_one(task(|t| {
            t.retry_on_failure = true;
            t.backoff_ms = 0;
            t.max_attempts = 2;
            t.timeout_ms = Some(1000);
        }))
        .await
        .id;
    assert_eq!(h.next_call().await.1, Call::Run(id));
    assert_eq!(h.next_call().await.1, Call::Stop(id));
    assert_eq!(h.next_call().await.1, Call::Run(id));
    assert_eq!(h.next_call().await.1, Call::Stop(id));
    let pushes = h.pushes_until_result(id).await;
    assert_eq!(
        pushes,
        vec![
            Push::Status(id, TaskStatus::Running, 1),
            Push::Status(id, TaskStatus::Scheduled, 1),
            Push::Status(id, TaskStatus::Queued, 1),
            Push::Status(id, TaskStatus::Running, 2),
            Push::Result(id, TaskStatus::TimedOut, Some(ErrorCode::TimedOut)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_names_one_task_and_a_second_submit_gets_it() {
    let h = Harness::start(SchedulerConfig::default());
    let first = h
        .submit_one(task(|t| t.key = Some("charge-42".into())))
        .await;
    let again = h
        .submit_tasks(vec![task(|t| {
            t.key = Some("charge-42".into());
            t.kind = "sleep".into();
        })])
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].0.id, first.id);
    assert_eq!(
        again[0].0.kind, "echo",
        "the existing task, whatever the spec"
    );
    assert!(again[0].1);
    // In one batch: the second item is the first; a third key is new.
    let batch = h
        .submit_tasks(vec![
            task(|t| t.key = Some("k2".into())),
            task(|t| t.key = Some("k2".into())),
            task(|t| t.key = Some("charge-42".into())),
        ])
        .await
        .unwrap();
    let flags: Vec<bool> = batch.iter().map(|(_, d)| *d).collect();
    assert_eq!(flags, vec![false, true, true]);
    assert_eq!(batch[1].0.id, batch[0].0.id);
    assert_eq!(batch[2].0.id, first.id);
    assert_eq!(h.dispatcher.stats().await.unwrap().queued, 2);
}

#[tokio::test(start_paused = true)]
async fn a_finished_task_keeps_its_key_for_the_dedup_window_only() {
    let mut h = Harness::start(SchedulerConfig::default());
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let first = h.submit_one(task(|t| t.key = Some("k".into()))).await;
    assert_eq!(h.next_call().await.1, Call::Run(first.id));
    h.report("w", done(first.id)).await;
    h.pushes_until_result(first.id).await;
    let again = h
        .submit_tasks(vec![task(|t| t.key = Some("k".into()))])
        .await
        .unwrap();
    assert_eq!(
        (again[0].0.id, again[0].0.status),
        (first.id, TaskStatus::Succeeded)
    );
    assert!(again[0].1);

    // With no window, a finished task's key is free at once.
    let mut h = Harness::start(SchedulerConfig {
        dedup_window: Duration::ZERO,
        ..SchedulerConfig::default()
    });
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    let first = h.submit_one(task(|t| t.key = Some("k".into()))).await;
    assert_eq!(h.next_call().await.1, Call::Run(first.id));
    // Unfinished: still deduplicated.
    let running = h
        .submit_tasks(vec![task(|t| t.key = Some("k".into()))])
        .await
        .unwrap();
    assert_eq!(running[0].0.id, first.id);
    h.report("w", done(first.id)).await;
    h.pushes_until_result(first.id).await;
    // Keys compare wall-clock times (they survive restarts): let the wall
    // clock pass the millisecond the task finished in.
    std::thread::sleep(Duration::from_millis(2));
    let second = h.submit_one(task(|t| t.key = Some("k".into()))).await;
    assert_ne!(second.id, first.id);
}

#[tokio::test(start_paused = true)]
async fn a_chain_runs_in_order_and_a_failure_fails_what_waits() {
    let mut h = Harness::start(SchedulerConfig::default());
    let a = h.submit_one(task(|_| {})).await;
    let b = h.submit_one(task(|t| t.after = vec![a.id])).await;
    let c = h.submit_one(task(|t| t.after = vec![b.id])).await;
    assert_eq!(
        (b.status, c.status),
        (TaskStatus::Waiting, TaskStatus::Waiting)
    );
    let stats = h.dispatcher.stats().await.unwrap();
    assert_eq!((stats.queued, stats.waiting), (1, 2));
    h.worker("w", Slots::per_class(2, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(a.id));
    h.dispatcher.stats().await.unwrap();
    h.no_more_calls();
    h.report("w", done(a.id)).await;
    assert_eq!(h.next_call().await.1, Call::Run(b.id));
    h.report("w", failed(b.id)).await;
    let pushes = h.pushes_until_result(c.id).await;
    assert_eq!(
        pushes,
        vec![
            Push::Status(a.id, TaskStatus::Running, 1),
            Push::Result(a.id, TaskStatus::Succeeded, None),
            Push::Status(b.id, TaskStatus::Queued, 0),
            Push::Status(b.id, TaskStatus::Running, 1),
            Push::Result(b.id, TaskStatus::Failed, Some(ErrorCode::TaskFailed)),
            Push::Result(c.id, TaskStatus::Failed, Some(ErrorCode::DependencyFailed)),
        ]
    );
    let c = h.dispatcher.get(c.id).await.unwrap();
    assert_eq!(c.attempt, 0, "it never ran");
    assert!(c.error.unwrap().message.contains(&b.id.to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_diamond_runs_its_join_once_both_sides_succeeded() {
    let mut h = Harness::start(SchedulerConfig::default());
    // One batch: the sides and the join name earlier items by index.
    let mut items = vec![task(|_| {})];
    let top = items[0].id;
    items.push(task(|t| t.after = vec![top]));
    items.push(task(|t| t.after = vec![top]));
    let (left, right) = (items[1].id, items[2].id);
    items.push(task(|t| t.after = vec![left, right]));
    let join = items[3].id;
    let acked = h.submit_tasks(items).await.unwrap();
    let statuses: Vec<TaskStatus> = acked.iter().map(|(t, _)| t.status).collect();
    assert_eq!(
        statuses,
        vec![
            TaskStatus::Queued,
            TaskStatus::Waiting,
            TaskStatus::Waiting,
            TaskStatus::Waiting
        ]
    );
    h.worker("w", Slots::per_class(3, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(top));
    h.report("w", done(top)).await;
    let mut sides = vec![h.next_call().await.1, h.next_call().await.1];
    sides.sort_by_key(|c| format!("{c:?}"));
    let mut expected = vec![Call::Run(left), Call::Run(right)];
    expected.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(sides, expected);
    h.report("w", done(left)).await;
    h.dispatcher.stats().await.unwrap();
    h.no_more_calls();
    h.report("w", done(right)).await;
    assert_eq!(h.next_call().await.1, Call::Run(join));
    h.report("w", done(join)).await;
    let pushes = h.pushes_until_result(join).await;
    let results = pushes
        .iter()
        .filter(|p| matches!(p, Push::Result(..)))
        .count();
    assert_eq!(results, 4);
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_already_failed_fails_the_task_at_submit() {
    let mut h = Harness::start(SchedulerConfig::default());
    let a = h.submit_one(task(|_| {})).await;
    h.dispatcher.cancel(a.id).await.unwrap();
    assert_eq!(
        h.next_push().await,
        Push::Result(a.id, TaskStatus::Cancelled, Some(ErrorCode::Cancelled))
    );
    let b = h.submit_one(task(|t| t.after = vec![a.id])).await;
    assert_eq!(b.status, TaskStatus::Failed);
    assert_eq!(b.error.unwrap().code, ErrorCode::DependencyFailed);
    assert_eq!(
        h.next_push().await,
        Push::Result(b.id, TaskStatus::Failed, Some(ErrorCode::DependencyFailed))
    );
    // An unknown id is refused, and nothing is created.
    let unknown = TaskId::from(uuid::Uuid::now_v7());
    let refused = h
        .submit_tasks(vec![task(|_| {}), task(|t| t.after = vec![unknown])])
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotFound);
    assert!(
        refused.message.starts_with("tasks[1]: "),
        "{}",
        refused.message
    );
    assert_eq!(h.dispatcher.stats().await.unwrap().queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_key_caps_its_tasks_and_holds_back_no_other() {
    let h = Harness::start(SchedulerConfig::default());
    let keyed = |limit: u32| {
        task(move |t| {
            t.concurrency_key = Some("customer-7".into());
            t.concurrency_limit = limit;
        })
    };
    let k1 = h.submit_one(keyed(1)).await.id;
    let k2 = h.submit_one(keyed(1)).await.id;
    let other = h.submit_one(task(|_| {})).await.id;
    let mut h = h;
    h.worker("w", Slots::per_class(3, 0), Stopping::Confirmed)
        .await;
    assert_eq!(h.next_call().await.1, Call::Run(k1));
    assert_eq!(h.next_call().await.1, Call::Run(other));
    h.dispatcher.stats().await.unwrap();
    h.no_more_calls();
    let running = h.dispatcher.stats().await.unwrap().running;
    assert_eq!(running, 2, "k2 stays queued with a slot free");
    assert_eq!(
        h.dispatcher.get(k2).await.unwrap().status,
        TaskStatus::Queued
    );
    h.report("w", done(k1)).await;
    assert_eq!(h.next_call().await.1, Call::Run(k2));
}

#[tokio::test(start_paused = true)]
async fn scheduled_and_waiting_tasks_can_be_cancelled() {
    let mut h = Harness::start(SchedulerConfig::default());
    let later = h
        .submit_one(task(|t| {
            t.run_at = Some(Timestamp::now().plus_millis(60_000))
        }))
        .await;
    let waits = h.submit_one(task(|t| t.after = vec![later.id])).await;
    let cancelled = h.dispatcher.cancel(later.id).await.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    let pushes = h.pushes_until_result(waits.id).await;
    assert_eq!(
        pushes,
        vec![
            Push::Result(later.id, TaskStatus::Cancelled, Some(ErrorCode::Cancelled)),
            Push::Result(
                waits.id,
                TaskStatus::Failed,
                Some(ErrorCode::DependencyFailed)
            ),
        ]
    );
    let stats = h.dispatcher.stats().await.unwrap();
    assert_eq!((stats.scheduled, stats.waiting), (0, 0));
    // Its timer is gone: nothing runs when the time comes.
    h.worker("w", Slots::per_class(1, 0), Stopping::Confirmed)
        .await;
    tokio::time::advance(Duration::from_secs(120)).await;
    h.dispatcher.stats().await.unwrap();
    h.no_more_calls();
}
