//! v1.1 lookups: pages of `list` with every kind of key filter, including
//! a rare prefix behind more tasks than a walk reads, and attempts that
//! the database records when a task is requeued.

use super::*;
use app::{AttemptOutcome, ListQuery};

use crate::cluster::db::lookup::PREFIX_WALK;

async fn page(db: &Db, raw: serde_json::Value) -> (Vec<TaskId>, Option<app::Cursor>) {
    let page = db.list(&ListQuery::parse(raw).unwrap()).await.unwrap();
    (page.tasks.iter().map(|t| t.id).collect(), page.next)
}

fn keyed(key: Option<String>) -> Task {
    let mut t = new_task("echo", 0, 3);
    t.key = key;
    t
}

#[tokio::test]
async fn prefixes_common_and_rare_page_newest_first() {
    let (test, db) = setup().await;
    let rare: Vec<Task> = (0..3).map(|i| keyed(Some(format!("rare:{i}")))).collect();
    db.insert(&rare).await.unwrap();
    let many: Vec<Task> = (0..(PREFIX_WALK as usize + 100))
        .map(|i| keyed((i % 2 == 0).then(|| format!("common:{i}"))))
        .collect();
    for chunk in many.chunks(1000) {
        db.insert(chunk).await.unwrap();
    }
    let (got, next) = page(&db, json!({"key": "rare:*", "limit": 2})).await;
    assert_eq!(got, vec![rare[2].id, rare[1].id]);
    let (got, next) = page(
        &db,
        json!({"key": "rare:*", "before": next.unwrap().to_string()}),
    )
    .await;
    assert_eq!((got, next), (vec![rare[0].id], None));
    let newest_common: Vec<TaskId> = many
        .iter()
        .rev()
        .filter(|t| t.key.is_some())
        .take(3)
        .map(|t| t.id)
        .collect();
    assert_eq!(
        page(&db, json!({"key": "common:*", "limit": 3})).await.0,
        newest_common
    );
    assert_eq!(
        page(&db, json!({"key": "rare:1"})).await.0,
        vec![rare[1].id]
    );
    assert_eq!(
        page(&db, json!({"key": "*", "limit": 1})).await.0,
        vec![newest_common[0]]
    );
    drop(db);
    test.drop().await.unwrap();
}

/// Without a status filter, a page holds tasks of every status, newest
/// first, with or without a kind, across pages.
#[tokio::test]
async fn pages_without_a_status_hold_every_status_newest_first() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let tasks: Vec<Task> = (0..8)
        .map(|i| new_task(if i % 3 == 0 { "echo" } else { "sleep" }, 0, 3))
        .collect();
    // Running, queued and succeeded tasks interleaved in submission order.
    let refs: Vec<&Task> = tasks.iter().collect();
    let flags: Vec<bool> = (0..8).map(|i| i % 2 == 0).collect();
    let start = Start {
        node: &a,
        flags: &flags,
    };
    db.insert_all(&refs, Some(start)).await.unwrap();
    let mut done = get(&db, tasks[4].id).await;
    done.status = TaskStatus::Succeeded;
    done.finished_at = Some(Timestamp::now());
    db.commit(&a, &[Fenced::Put(done)]).await.unwrap();
    let mut statuses = Vec::new();
    for t in &tasks {
        statuses.push(get(&db, t.id).await.status);
    }
    assert!(statuses.contains(&TaskStatus::Queued));
    assert!(statuses.contains(&TaskStatus::Running));
    assert!(statuses.contains(&TaskStatus::Succeeded));

    let newest = |kind: Option<&str>| -> Vec<TaskId> {
        tasks
            .iter()
            .rev()
            .filter(|t| kind.is_none_or(|k| t.kind == k))
            .map(|t| t.id)
            .collect()
    };
    let (first, next) = page(&db, json!({"limit": 3})).await;
    assert_eq!(first, newest(None)[..3]);
    let (rest, end) = page(&db, json!({"before": next.unwrap().to_string()})).await;
    assert_eq!((rest, end), (newest(None)[3..].to_vec(), None));
    assert_eq!(
        page(&db, json!({"kind": "sleep"})).await.0,
        newest(Some("sleep"))
    );
    let (first, next) = page(&db, json!({"kind": "echo", "limit": 2})).await;
    assert_eq!(first, newest(Some("echo"))[..2]);
    let (rest, _) = page(
        &db,
        json!({"kind": "echo", "before": next.unwrap().to_string()}),
    )
    .await;
    assert_eq!(rest, newest(Some("echo"))[2..]);
    drop(db);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_requeued_attempt_is_recorded_by_the_database() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let task = new_task("echo", 0, 3);
    db.insert(std::slice::from_ref(&task)).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 1)], 1).await.unwrap();
    assert_eq!(ids(&claimed), vec![task.id]);
    db.commit(
        &a,
        &[Fenced::Requeue {
            id: task.id,
            attempt: 1,
        }],
    )
    .await
    .unwrap();
    let attempts = db.attempts(task.id).await.unwrap().expect("known").attempts;
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].attempt, attempts[0].outcome),
        (1, AttemptOutcome::WorkerLost)
    );
    assert_eq!(
        attempts[0].error.as_ref().unwrap().code,
        ErrorCode::WorkerLost
    );
    let stored = get(&db, task.id).await;
    assert_eq!(
        (stored.status, stored.worker, stored.error),
        (TaskStatus::Queued, None, None)
    );
    // Released (a drain's end): not an attempt.
    db.claim(&a, &[want("echo", 1)], 1).await.unwrap();
    db.commit(
        &a,
        &[Fenced::Release {
            id: task.id,
            attempt: 2,
        }],
    )
    .await
    .unwrap();
    assert_eq!(
        db.attempts(task.id).await.unwrap().unwrap().attempts.len(),
        1
    );
    assert!(
        db.attempts(uuid::Uuid::now_v7().into())
            .await
            .unwrap()
            .is_none()
    );
    drop(db);
    test.drop().await.unwrap();
}
