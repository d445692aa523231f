//! Idempotency keys (v1.1): a key names at most one task within the dedup
//! window, across submitters racing with it.

use std::time::Duration;

use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn keyed(key: &str) -> Task {
    let mut task = new_task("echo", 0, 3);
    task.key = Some(key.to_owned());
    task
}

/// Submits `tasks` as one submission: its tasks' ids and dedup flags.
async fn submit(db: &Db, tasks: &[Task], window: Duration) -> Stored {
    db.submit(tasks, window)
        .await
        .expect("stored")
        .expect("accepted")
}

#[tokio::test]
async fn a_key_names_one_task_until_its_holder_is_out_of_the_window() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let first = keyed("charge-1");
    let stored = submit(&db, std::slice::from_ref(&first), DAY).await;
    assert_eq!(stored, Stored::new(vec![first.clone()]));

    // Another spec, the same key: that task, nothing new.
    let mut other = keyed("charge-1");
    other.kind = "sleep".into();
    let stored = submit(&db, &[other.clone()], DAY).await;
    assert_eq!(stored.tasks, [on_the_wire(&first)]);
    assert_eq!(stored.deduplicated, [true]);
    assert_eq!(db.get(other.id).await.unwrap(), None);

    // In one batch: a key twice, and the first item's task stands for both.
    let batch = [keyed("charge-2"), keyed("charge-2"), new_task("echo", 0, 3)];
    let stored = submit(&db, &batch, DAY).await;
    assert_eq!(
        stored.tasks,
        [batch[0].clone(), batch[0].clone(), batch[2].clone()]
    );
    assert_eq!(stored.deduplicated, [false, true, false]);
    assert_eq!(db.get(batch[1].id).await.unwrap(), None);

    // Finished: still held within the window.
    let claimed = db.claim(&a, &[want("echo", 1)], 1).await.unwrap();
    let mut done = claimed[0].task.clone();
    assert_eq!(done.id, first.id);
    done.status = TaskStatus::Succeeded;
    done.finished_at = Some(Timestamp::now());
    db.commit(&a, &[Fenced::Put(done.clone())]).await.unwrap();
    let stored = submit(&db, &[keyed("charge-1")], DAY).await;
    assert_eq!(stored.tasks, [on_the_wire(&done)]);
    assert_eq!(stored.deduplicated, [true]);
    // Out of its window: the key passes to a new task, which holds it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let next = keyed("charge-1");
    let stored = submit(&db, std::slice::from_ref(&next), Duration::ZERO).await;
    assert_eq!(stored.deduplicated, [false]);
    let stored = submit(&db, &[keyed("charge-1")], Duration::ZERO).await;
    assert_eq!(
        (stored.tasks[0].id, stored.deduplicated[0]),
        (next.id, true)
    );
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.queued, counts.succeeded), (3, 1));
    test.drop().await.unwrap();
}

#[tokio::test]
async fn submitters_racing_with_one_key_create_one_task() {
    let (test, one) = setup().await;
    let two = Db::connect(&test.url).await.unwrap();
    let keys: Vec<String> = (0..50).map(|i| format!("race-{i}")).collect();
    let race = |db: Db, keys: Vec<String>| async move {
        let mut got = Vec::new();
        for key in &keys {
            // Each submission also claims a key of its own.
            let tasks = [
                keyed(key),
                keyed(&format!("{key}-{}", uuid::Uuid::now_v7())),
            ];
            let stored = submit(&db, &tasks, DAY).await;
            got.push((stored.tasks[0].id, stored.deduplicated[0]));
        }
        got
    };
    let (got_one, got_two) = tokio::join!(race(one.clone(), keys.clone()), race(two, keys));
    for (a, b) in got_one.iter().zip(&got_two) {
        assert_eq!(a.0, b.0, "one task per key");
        assert!(
            a.1 != b.1,
            "exactly one submitter deduplicated: {a:?} {b:?}"
        );
    }
    let counts = one.counts().await.unwrap();
    assert_eq!(
        counts.queued,
        50 + 100,
        "one per raced key, and each own key"
    );
    test.drop().await.unwrap();
}
