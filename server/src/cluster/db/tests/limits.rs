//! Concurrency keys (v1.1): a claim never makes more tasks of one key
//! running than their limit, cluster-wide, and a capped key holds back no
//! other task.

use super::*;

/// A task of kind `echo` with concurrency key `key` (limit `limit`).
fn limited(key: &str, limit: u32, priority: i32) -> Task {
    let mut task = new_task("echo", priority, 3);
    task.concurrency_key = Some(key.to_owned());
    task.concurrency_limit = limit;
    task
}

/// How many tasks of `key` run now.
async fn running_of(db: &Db, key: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM tasks WHERE concurrency_key = $1 AND owner IS NOT NULL",
    )
    .bind(key)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

fn keys_of(claimed: &[Claimed]) -> Vec<Option<String>> {
    claimed
        .iter()
        .map(|c| c.task.concurrency_key.clone())
        .collect()
}

#[tokio::test]
async fn a_key_runs_at_most_its_limit_and_holds_back_no_other_task() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    // The keyed tasks come first in line.
    let mut tasks: Vec<Task> = (0..3).map(|_| limited("one", 1, 5)).collect();
    tasks.extend((0..3).map(|_| limited("two", 2, 5)));
    tasks.extend((0..2).map(|_| new_task("echo", 0, 3)));
    db.insert(&tasks).await.unwrap();
    assert_eq!(get(&db, tasks[3].id).await, on_the_wire(&tasks[3]));

    let claimed = db.claim(&a, &[want("echo", 8)], 8).await.unwrap();
    let one = Some("one".to_owned());
    let two = Some("two".to_owned());
    assert_eq!(
        keys_of(&claimed),
        [one.clone(), two.clone(), two.clone(), None, None]
    );
    assert_eq!(ids(&claimed)[..3], [tasks[0].id, tasks[3].id, tasks[4].id]);
    assert!(
        db.claim(&a, &[want("echo", 8)], 8)
            .await
            .unwrap()
            .is_empty()
    );

    // A place is freed by whatever ends the run: a final write, a give-back.
    end_as(&db, &a, &claimed[0].task, TaskStatus::Succeeded).await;
    let release = Fenced::Release {
        id: claimed[1].task.id,
        attempt: 1,
    };
    db.commit(&a, &[release]).await.unwrap();
    let again = db.claim(&a, &[want("echo", 8)], 8).await.unwrap();
    assert_eq!(ids(&again), [tasks[1].id, tasks[3].id]);
    assert_eq!(
        (running_of(&db, "one").await, running_of(&db, "two").await),
        (1, 2)
    );
    // A dead node's runs are freed when it is reaped.
    silence(&db, &a).await;
    db.reap(Duration::from_secs(1)).await.unwrap();
    let b = node(&db, "b").await;
    let after_reap = db.claim(&b, &[want("echo", 8)], 8).await.unwrap();
    assert_eq!(keys_of(&after_reap), [one, two.clone(), two, None, None]);
    test.drop().await.unwrap();
}

/// Ends claimed `task` with `status`.
async fn end_as(db: &Db, node: &NodeId, task: &Task, status: TaskStatus) {
    let mut task = task.clone();
    task.status = status;
    task.finished_at = Some(Timestamp::now());
    assert!(
        db.commit(node, &[Fenced::Put(task)])
            .await
            .unwrap()
            .fenced
            .is_empty()
    );
}

#[tokio::test]
async fn claimers_racing_for_one_key_never_run_more_than_its_limit() {
    let (test, one) = setup().await;
    let two = Db::connect(&test.url).await.unwrap();
    let tasks: Vec<Task> = (0..60).map(|_| limited("shared", 3, 0)).collect();
    one.insert(&tasks).await.unwrap();
    let (a, b) = (node(&one, "a").await, node(&one, "b").await);
    let work = |db: Db, node: NodeId| async move {
        let mut done = 0;
        let mut idle = 0;
        while idle < 50 {
            let got = db.claim(&node, &[want("echo", 3)], 3).await.unwrap();
            let running = running_of(&db, "shared").await;
            assert!(running <= 3, "{running} running");
            if got.is_empty() {
                idle += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            idle = 0;
            for c in &got {
                end_as(&db, &node, &c.task, TaskStatus::Succeeded).await;
                done += 1;
            }
        }
        done
    };
    let (by_a, by_b) = tokio::join!(work(one.clone(), a), work(two, b));
    assert_eq!(by_a + by_b, 60);
    assert!(by_a > 0 && by_b > 0, "both claimed: {by_a} {by_b}");
    assert_eq!(one.counts().await.unwrap().succeeded, 60);
    test.drop().await.unwrap();
}
