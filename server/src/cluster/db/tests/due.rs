//! Delays and retries (v1.1): scheduled tasks wait until they are due and
//! are promoted once; a retry goes back scheduled with its new `run_at`.

use super::*;

/// A task of `kind` scheduled for `at`.
fn scheduled(kind: &str, at: Timestamp) -> Task {
    let mut task = new_task(kind, 0, 3);
    task.run_at = Some(at);
    task.status = TaskStatus::Scheduled;
    task
}

/// `ms` milliseconds ago.
fn ago(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() - ms).unwrap()
}

/// The time as stored (to the millisecond).
fn stored(at: Timestamp) -> Timestamp {
    Timestamp(millis(at))
}

#[tokio::test]
async fn scheduled_tasks_wait_for_their_time_and_are_promoted_earliest_first() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let later = scheduled("echo", Timestamp::now().plus_millis(3_600_000));
    let due_second = scheduled("echo", ago(1000));
    let due_first = scheduled("echo", ago(2000));
    // Queued with a run_at long past, at the very start of what RFC 3339
    // allows (a year PostgreSQL's text input refuses).
    let mut ancient = new_task("echo", 0, 3);
    ancient.run_at = Some(Timestamp(
        DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    ));
    let tasks = [
        later.clone(),
        due_second.clone(),
        due_first.clone(),
        ancient.clone(),
    ];
    db.insert(&tasks).await.unwrap();
    assert_eq!(get(&db, ancient.id).await, on_the_wire(&ancient));
    assert_eq!(get(&db, later.id).await, on_the_wire(&later));
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.scheduled, counts.queued), (3, 1));

    let claimed = db.claim(&a, &[want("echo", 10)], 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        [ancient.id],
        "scheduled tasks are not claimed"
    );

    let one = db.promote(1).await.unwrap();
    assert_eq!(one.tasks.len(), 1);
    let promoted = &one.tasks[0];
    assert_eq!(promoted.id, due_first.id);
    assert_eq!(promoted.status, TaskStatus::Queued);
    assert_eq!(
        promoted.run_at,
        due_first.run_at.map(stored),
        "run_at is kept"
    );
    assert_eq!(
        one.next,
        due_second.run_at.map(stored),
        "one more is due now"
    );
    let rest = db.promote(10).await.unwrap();
    let promoted: Vec<TaskId> = rest.tasks.iter().map(|t| t.id).collect();
    assert_eq!(promoted, [due_second.id]);
    assert_eq!(rest.next, later.run_at.map(stored));
    let none = db.promote(10).await.unwrap();
    assert!(none.tasks.is_empty());
    assert_eq!(none.next, later.run_at.map(stored));

    let claimed = db.claim(&a, &[want("echo", 10)], 10).await.unwrap();
    assert_eq!(
        ids(&claimed),
        [due_second.id, due_first.id],
        "submission order"
    );
    // A scheduled task is cancelled at once, and counted so.
    let CancelOutcome::Cancelled(cancelled) = db.cancel(later.id).await.unwrap() else {
        panic!("a scheduled task is cancelled at once");
    };
    assert_eq!(
        (cancelled.status, cancelled.attempt),
        (TaskStatus::Cancelled, 0)
    );
    assert!(db.promote(10).await.unwrap().next.is_none());
    let counts = db.counts().await.unwrap();
    assert_eq!(
        (
            counts.scheduled,
            counts.queued,
            counts.running,
            counts.cancelled
        ),
        (0, 0, 3, 1)
    );
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_retry_goes_back_scheduled_fenced_and_runs_again_once_due() {
    let (test, db) = setup().await;
    let (a, b) = (node(&db, "a").await, node(&db, "b").await);
    let tasks = [new_task("echo", 0, 3), new_task("echo", 0, 3)];
    db.insert(&tasks).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 2)], 2).await.unwrap();
    let [first, second] = <[_; 2]>::try_from(claimed).unwrap().map(|c| c.task);

    // The first fails and is retried in an hour; the second at once.
    let retry = |task: &Task, run_at: Timestamp| {
        let mut task = task.clone();
        task.status = TaskStatus::Scheduled;
        task.run_at = Some(run_at);
        task.started_at = None;
        task.worker = None;
        task
    };
    let in_an_hour = retry(&first, Timestamp::now().plus_millis(3_600_000));
    let now = retry(&second, ago(1));
    assert_eq!(
        db.commit(&b, &[Fenced::Put(in_an_hour.clone())])
            .await
            .unwrap()
            .fenced,
        [first.id],
        "only its owner gives it back"
    );
    let done = db
        .commit(
            &a,
            &[Fenced::Put(in_an_hour.clone()), Fenced::Put(now.clone())],
        )
        .await
        .unwrap();
    assert!(done.fenced.is_empty() && done.cancelled.is_empty());
    assert_eq!(get(&db, first.id).await, on_the_wire(&in_an_hour));
    let counts = db.counts().await.unwrap();
    assert_eq!(
        (counts.scheduled, counts.running, counts.failed),
        (2, 0, 0),
        "a retry is not a finished task"
    );
    // Nobody's any more: a second write of that attempt does nothing.
    assert_eq!(
        db.commit(&a, &[Fenced::Put(now.clone())])
            .await
            .unwrap()
            .fenced,
        [second.id]
    );

    let promoted = db.promote(10).await.unwrap();
    assert_eq!(promoted.tasks.len(), 1);
    assert_eq!(promoted.tasks[0].id, second.id);
    assert_eq!(promoted.next, in_an_hour.run_at.map(stored));
    let again = db.claim(&b, &[want("echo", 2)], 2).await.unwrap();
    assert_eq!(ids(&again), [second.id]);
    assert_eq!(again[0].task.attempt, 2, "the retry is the next attempt");

    // A retry of a task whose cancel is pending ends it cancelled.
    let CancelOutcome::Running { .. } = db.cancel(second.id).await.unwrap() else {
        panic!("running on b");
    };
    let retried = retry(&again[0].task, ago(1));
    let done = db.commit(&b, &[Fenced::Put(retried)]).await.unwrap();
    assert_eq!(done.cancelled.len(), 1);
    assert_eq!(done.cancelled[0].status, TaskStatus::Cancelled);
    assert!(db.promote(10).await.unwrap().tasks.is_empty());
    test.drop().await.unwrap();
}

#[tokio::test]
async fn two_promoters_queue_each_due_task_once() {
    let (test, one) = setup().await;
    let two = Db::connect(&test.url).await.unwrap();
    let tasks: Vec<Task> = (0..300).map(|i| scheduled("echo", ago(i))).collect();
    one.insert(&tasks).await.unwrap();
    let drain = |db: Db| async move {
        let mut mine = Vec::new();
        loop {
            let got = db.promote(7).await.unwrap();
            if got.tasks.is_empty() {
                return mine;
            }
            assert!(got.tasks.iter().all(|t| t.status == TaskStatus::Queued));
            mine.extend(got.tasks.iter().map(|t| t.id));
        }
    };
    let (got_one, got_two) = tokio::join!(drain(one.clone()), drain(two));
    let all: HashSet<TaskId> = got_one.iter().chain(&got_two).copied().collect();
    assert_eq!(got_one.len() + got_two.len(), 300, "none promoted twice");
    assert_eq!(all, tasks.iter().map(|t| t.id).collect());
    let counts = one.counts().await.unwrap();
    assert_eq!((counts.scheduled, counts.queued), (0, 300));
    test.drop().await.unwrap();
}
