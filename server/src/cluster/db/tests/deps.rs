//! Dependencies (v1.1): waiting tasks are released or failed once what
//! they name ended, whichever statement ended it and however it raced
//! with their submission.

use std::time::Duration;

use super::*;

/// A task of kind `echo` waiting for `after`.
fn after(deps: &[TaskId]) -> Task {
    let mut task = new_task("echo", 0, 3);
    task.after = deps.to_vec();
    task
}

/// Submits `tasks` as one submission (they name others, so it takes the
/// transaction); its tasks as acked, or the refusal.
async fn submit(db: &Db, tasks: &[Task]) -> std::result::Result<Vec<Task>, ErrorBody> {
    db.submit(tasks, Duration::from_secs(3600))
        .await
        .expect("the database answers")
        .map(|s| s.tasks)
}

/// Ends claimed `task` with `status` (as its node would commit it).
async fn end(db: &Db, node: &NodeId, task: &Task, status: TaskStatus) -> Committed {
    let mut task = task.clone();
    task.status = status;
    task.finished_at = Some(Timestamp::now());
    let done = db.commit(node, &[Fenced::Put(task)]).await.unwrap();
    assert!(done.fenced.is_empty());
    done
}

/// Resolves until nothing changes, as a node does: every task changed.
async fn resolve_all(db: &Db) -> Vec<Task> {
    let mut changed = Vec::new();
    loop {
        let got = db.resolve(1000).await.unwrap().tasks;
        if got.is_empty() {
            return changed;
        }
        changed.extend(got);
    }
}

fn statuses(tasks: &[Task]) -> Vec<(TaskId, TaskStatus)> {
    tasks.iter().map(|t| (t.id, t.status)).collect()
}

#[tokio::test]
async fn a_waiting_task_is_queued_once_all_it_names_succeeded() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let deps = [new_task("echo", 0, 3), new_task("echo", 0, 3)];
    db.insert(&deps).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 2)], 2).await.unwrap();
    let [one, two] = <[_; 2]>::try_from(claimed).unwrap().map(|c| c.task);
    let waits = after(&[one.id, two.id]);
    let acked = submit(&db, std::slice::from_ref(&waits)).await.unwrap();
    assert_eq!(acked[0].status, TaskStatus::Waiting);
    assert_eq!(get(&db, waits.id).await, on_the_wire(&acked[0]));
    assert_eq!(db.counts().await.unwrap().waiting, 1);
    assert!(
        db.claim(&a, &[want("echo", 5)], 5)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(end(&db, &a, &one, TaskStatus::Succeeded).await.checks);
    assert!(resolve_all(&db).await.is_empty(), "one still runs");
    assert!(end(&db, &a, &two, TaskStatus::Succeeded).await.checks);
    let released = resolve_all(&db).await;
    assert_eq!(statuses(&released), [(waits.id, TaskStatus::Queued)]);
    assert_eq!(released[0].error, None);
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.queued), (0, 1));
    // A task without dependents queues no check when it ends.
    let claimed = db.claim(&a, &[want("echo", 1)], 1).await.unwrap();
    assert!(
        !end(&db, &a, &claimed[0].task, TaskStatus::Succeeded)
            .await
            .checks
    );
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_failure_fails_what_waits_for_it_and_on_down_the_chain() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let first = new_task("echo", 0, 3);
    db.insert(std::slice::from_ref(&first)).await.unwrap();
    let running = db.claim(&a, &[want("echo", 1)], 1).await.unwrap()[0]
        .task
        .clone();
    // A chain in one batch: the second names the first new one.
    let w1 = after(&[first.id]);
    let w2 = after(&[w1.id]);
    let acked = submit(&db, &[w1.clone(), w2.clone()]).await.unwrap();
    assert_eq!(
        statuses(&acked),
        [(w1.id, TaskStatus::Waiting), (w2.id, TaskStatus::Waiting)]
    );

    assert!(end(&db, &a, &running, TaskStatus::TimedOut).await.checks);
    let failed = resolve_all(&db).await;
    assert_eq!(
        statuses(&failed),
        [(w1.id, TaskStatus::Failed), (w2.id, TaskStatus::Failed)]
    );
    for (task, dep, status) in [
        (&failed[0], first.id, "timed_out"),
        (&failed[1], w1.id, "failed"),
    ] {
        assert_eq!(
            task.error.as_deref().cloned(),
            Some(ErrorBody::new(
                ErrorCode::DependencyFailed,
                format!("task {dep} ended {status}, not succeeded")
            ))
        );
        assert!(task.finished_at.is_some() && task.started_at.is_none());
        assert_eq!(task.attempt, 0);
        assert_eq!(get(&db, task.id).await, *task);
    }
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.waiting, counts.failed, counts.timed_out), (0, 2, 1));
    test.drop().await.unwrap();
}

#[tokio::test]
async fn what_a_submission_names_must_exist_and_may_have_ended_already() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let (ok, bad) = (new_task("echo", 0, 3), new_task("echo", 0, 3));
    db.insert(&[ok.clone(), bad.clone()]).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 2)], 2).await.unwrap();
    end(&db, &a, &claimed[0].task, TaskStatus::Succeeded).await;
    end(&db, &a, &claimed[1].task, TaskStatus::Failed).await;

    // An unknown id refuses the whole batch, its keys too.
    let unknown = TaskId(uuid::Uuid::now_v7());
    let mut keyed = after(&[ok.id]);
    keyed.key = Some("k".into());
    let refused = submit(&db, &[keyed.clone(), after(&[unknown])]).await;
    let error = refused.expect_err("not_found");
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(
        error.message,
        format!("tasks[1]: after names no task {unknown}")
    );
    assert_eq!(db.get(keyed.id).await.unwrap(), None);
    let acked = submit(&db, std::slice::from_ref(&keyed)).await.unwrap();
    assert_eq!(acked[0].id, keyed.id, "the key was not taken");
    assert_eq!(
        acked[0].status,
        TaskStatus::Queued,
        "what it names succeeded"
    );

    // Naming a failed task: failed at once, and counted.
    let doomed = after(&[ok.id, bad.id]);
    let acked = submit(&db, std::slice::from_ref(&doomed)).await.unwrap();
    assert_eq!(acked[0].status, TaskStatus::Failed);
    assert_eq!(
        acked[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::DependencyFailed)
    );
    assert_eq!(get(&db, doomed.id).await, on_the_wire(&acked[0]));
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.queued, counts.failed), (1, 2));
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_dependency_ending_while_its_dependent_is_submitted_is_never_missed() {
    let (test, db) = setup().await;
    let other = Db::connect(&test.url).await.unwrap();
    let a = node(&db, "a").await;
    let deps: Vec<Task> = (0..60).map(|_| new_task("echo", 0, 3)).collect();
    db.insert(&deps).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 60)], 60).await.unwrap();
    let mut waiting = Vec::new();
    for (i, c) in claimed.iter().enumerate() {
        let status = match i % 3 {
            0 => TaskStatus::Failed,
            _ => TaskStatus::Succeeded,
        };
        let ending = async {
            end(&db, &a, &c.task, status).await;
            resolve_all(&db).await
        };
        let dependent = after(&[c.task.id]);
        let (_, acked) = tokio::join!(ending, submit(&other, std::slice::from_ref(&dependent)));
        waiting.push((dependent.id, status, acked.unwrap()[0].status));
    }
    resolve_all(&db).await;
    for (id, ended, acked) in waiting {
        let now = get(&db, id).await.status;
        let expected = match ended {
            TaskStatus::Failed => TaskStatus::Failed,
            _ => TaskStatus::Queued,
        };
        assert_eq!(now, expected, "acked {acked}");
    }
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_dependent_that_comes_due_waits_for_what_it_names_or_fails() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let deps = [
        new_task("echo", 0, 3),
        new_task("echo", 0, 3),
        new_task("echo", 0, 3),
    ];
    db.insert(&deps).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 3)], 3).await.unwrap();
    let [one, two, three] = <[_; 3]>::try_from(claimed).unwrap().map(|c| c.task);
    let due_soon = |dep: TaskId| {
        let mut task = after(&[dep]);
        task.status = TaskStatus::Scheduled;
        task.run_at = Some(Timestamp::now().plus_millis(50));
        task
    };
    let (waits, fails) = (due_soon(one.id), due_soon(two.id));
    let acked = submit(&db, &[waits.clone(), fails.clone()]).await.unwrap();
    assert!(acked.iter().all(|t| t.status == TaskStatus::Scheduled));
    end(&db, &a, &two, TaskStatus::Cancelled).await;
    // Not due yet: it waits for its time, failed or not.
    let early = resolve_all(&db).await;
    assert_eq!(
        statuses(&early),
        [(fails.id, TaskStatus::Failed)],
        "fails at once"
    );
    tokio::time::sleep(Duration::from_millis(60)).await;
    let promoted = db.promote(10).await.unwrap();
    assert_eq!(statuses(&promoted.tasks), [(waits.id, TaskStatus::Waiting)]);
    assert!(resolve_all(&db).await.is_empty());
    end(&db, &a, &one, TaskStatus::Succeeded).await;
    assert_eq!(
        statuses(&resolve_all(&db).await),
        [(waits.id, TaskStatus::Queued)]
    );

    // Due once what it names ended, its check not taken yet: queued or
    // failed at once.
    let (now_ok, now_failed) = (due_soon(one.id), due_soon(three.id));
    submit(&db, &[now_ok.clone(), now_failed.clone()])
        .await
        .unwrap();
    assert!(end(&db, &a, &three, TaskStatus::Failed).await.checks);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let promoted = db.promote(10).await.unwrap();
    let mut got = statuses(&promoted.tasks);
    got.sort_by_key(|(id, _)| *id);
    let mut expected = [
        (now_ok.id, TaskStatus::Queued),
        (now_failed.id, TaskStatus::Failed),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(got, expected);
    assert!(resolve_all(&db).await.is_empty(), "nothing left to do");
    test.drop().await.unwrap();
}
