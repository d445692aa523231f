//! Tasks started as they are stored: a node that offers to run the tasks
//! it was just submitted gets them `running` at once where a claim could
//! take them now, and queued otherwise.

use super::*;

/// Inserts `tasks`, offering to start on `node` those `start` flags.
async fn insert_starting(
    db: &Db,
    node: &NodeId,
    tasks: &[Task],
    start: &[bool],
) -> Vec<(TaskId, i64)> {
    let tasks: Vec<&Task> = tasks.iter().collect();
    let start = Start { node, flags: start };
    db.insert_all(&tasks, Some(start)).await.unwrap()
}

#[tokio::test]
async fn offered_tasks_start_running_on_their_node_and_the_others_queue() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let tasks = [
        new_task("echo", 0, 3),
        new_task("echo", 0, 3),
        new_task("echo", 0, 3),
    ];
    let started = insert_starting(&db, &a, &tasks, &[true, false, true]).await;
    let started_ids: Vec<TaskId> = started.iter().map(|(id, _)| *id).collect();
    assert_eq!(started_ids, [tasks[0].id, tasks[2].id]);
    assert!(started[0].1 < started[1].1, "seq follows the order");
    for id in started_ids {
        let task = get(&db, id).await;
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.attempt, 1);
        assert!(task.started_at.is_some() && task.worker.is_none());
    }
    assert_eq!(get(&db, tasks[1].id).await.status, TaskStatus::Queued);
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.queued, counts.running), (1, 2));

    // A started task is this node's, as a claimed one: fenced writes by
    // its owner apply, and only those.
    let mut done = get(&db, tasks[0].id).await;
    done.status = TaskStatus::Succeeded;
    done.finished_at = Some(Timestamp::now());
    let b = node(&db, "b").await;
    let refused = db.commit(&b, &[Fenced::Put(done.clone())]).await.unwrap();
    assert_eq!(refused.fenced, [done.id]);
    let applied = db.commit(&a, &[Fenced::Put(done.clone())]).await.unwrap();
    assert!(applied.fenced.is_empty());
    assert_eq!(get(&db, done.id).await.status, TaskStatus::Succeeded);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn an_offered_task_overtakes_no_queued_task_of_its_kind() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let waiting = new_task("echo", 5, 3);
    db.insert(std::slice::from_ref(&waiting)).await.unwrap();

    let same = new_task("echo", 5, 3);
    let lower = new_task("echo", 1, 3);
    let higher = new_task("echo", 6, 3);
    let other_kind = new_task("sleep", 0, 3);
    let tasks = [
        same.clone(),
        lower.clone(),
        higher.clone(),
        other_kind.clone(),
    ];
    let started = insert_starting(&db, &a, &tasks, &[true; 4]).await;
    let started: HashSet<TaskId> = started.into_iter().map(|(id, _)| id).collect();
    assert_eq!(started, HashSet::from([higher.id, other_kind.id]));
    for id in [same.id, lower.id, waiting.id] {
        assert_eq!(get(&db, id).await.status, TaskStatus::Queued);
    }

    // The queued ones are claimed in their order, the oldest first.
    let claimed = db.claim(&a, &[want("echo", 5)], 5).await.unwrap();
    assert_eq!(ids(&claimed), [waiting.id, same.id, lower.id]);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn nothing_starts_for_a_paused_kind_or_a_node_the_cluster_dropped() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    db.set_paused("echo", true).await.unwrap();
    let paused = [new_task("echo", 0, 3), new_task("sleep", 0, 3)];
    let started = insert_starting(&db, &a, &paused, &[true, true]).await;
    assert_eq!(
        started.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [paused[1].id]
    );
    assert_eq!(get(&db, paused[0].id).await.status, TaskStatus::Queued);

    let ghost = NodeId("ghost".into());
    let orphan = [new_task("sleep", 0, 3)];
    let started = insert_starting(&db, &ghost, &orphan, &[true]).await;
    assert!(started.is_empty(), "stored, queued, owned by no one");
    let task = get(&db, orphan[0].id).await;
    assert_eq!((task.status, task.attempt), (TaskStatus::Queued, 0));
    test.drop().await.unwrap();
}
