//! The database layer against a real PostgreSQL, a fresh database per test:
//! claims, fenced writes, cancels (here), leases, reaps, counts ([`leases`])
//! and v1.1: delays and retries ([`due`]), idempotency keys ([`keys`]),
//! dependencies ([`deps`]), concurrency keys ([`limits`]).

use super::*;
use crate::cluster::testdb::{TestDatabase, fresh_database, server_url};
use app::{ErrorBody, Progress, TaskSpec};
use serde_json::json;

async fn setup() -> (TestDatabase, Db) {
    let test = fresh_database(&server_url())
        .await
        .expect("create a test database");
    let db = Db::connect(&test.url).await.expect("connect");
    (test, db)
}

fn new_task(kind: &str, priority: i32, max_attempts: u32) -> Task {
    let mut spec = TaskSpec::new(kind, json!({"kind": kind, "priority": priority}));
    spec.priority = priority;
    spec.max_attempts = max_attempts;
    Task::new(uuid::Uuid::now_v7().into(), spec, Timestamp::now())
}

async fn node(db: &Db, name: &str) -> NodeId {
    let id = NodeId(name.to_owned());
    let info = NodeInfo {
        id: id.clone(),
        addr: format!("{name}.test:3000"),
        started_at: Timestamp::now(),
    };
    db.register(&info).await.expect("register");
    id
}

fn want(kind: &str, slots: u32) -> Want {
    Want {
        kind: kind.to_owned(),
        slots,
    }
}

fn ids(claimed: &[Claimed]) -> Vec<TaskId> {
    claimed.iter().map(|c| c.task.id).collect()
}

/// The task as a client would see it (times to the millisecond).
fn on_the_wire(task: &Task) -> Task {
    serde_json::from_value(serde_json::to_value(task).unwrap()).unwrap()
}

async fn get(db: &Db, id: TaskId) -> Task {
    db.get(id).await.unwrap().expect("the task is stored")
}

/// Makes `node`'s last heartbeat an hour old: it looks dead to reapers.
async fn silence(db: &Db, node: &NodeId) {
    sqlx::query("UPDATE nodes SET heartbeat = now() - interval '1 hour' WHERE id = $1")
        .bind(&node.0)
        .execute(&db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn migrations_run_once_however_many_nodes_start_together() {
    let test = fresh_database(&server_url()).await.unwrap();
    let starts = (0..4).map(|_| Db::connect(&test.url));
    let dbs = futures_util::future::join_all(starts).await;
    assert!(dbs.iter().all(Result::is_ok), "{dbs:?}");
    let again = Db::connect(&test.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&again.pool)
        .await
        .unwrap();
    assert_eq!(applied, MIGRATOR.iter().count() as i64);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn claims_go_by_priority_then_submission_within_each_kinds_slots() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let tasks = [
        new_task("x", 0, 3),
        new_task("x", 5, 3),
        new_task("y", 0, 3),
        new_task("x", 5, 3),
        new_task("y", 9, 3),
        new_task("z", 9, 3),
    ];
    let [x0, x5a, y0, x5b, y9, z9] = tasks.clone().map(|t| t.id);
    db.insert(&tasks).await.unwrap();

    let none = db.claim(&NodeId("ghost".into()), &[want("x", 5)], 5).await;
    assert!(
        none.unwrap().is_empty(),
        "an unregistered node claims nothing"
    );

    let claimed = db
        .claim(&a, &[want("x", 2), want("y", 5)], 3)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [y9, x5a, x5b]);
    for c in &claimed {
        assert_eq!(c.task.status, TaskStatus::Running);
        assert_eq!(c.task.attempt, 1);
        assert!(c.task.started_at.is_some() && c.task.worker.is_none());
        assert_eq!(get(&db, c.task.id).await, c.task);
    }
    assert!(claimed.windows(2).all(|w| w[0].seq != w[1].seq));

    let claimed = db
        .claim(&a, &[want("x", 1), want("y", 0)], 5)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [x0]);
    let claimed = db
        .claim(&a, &[want("x", 5), want("y", 5)], 5)
        .await
        .unwrap();
    assert_eq!(ids(&claimed), [y0]);
    assert_eq!(get(&db, z9).await.status, TaskStatus::Queued);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn two_claimers_never_share_a_task_and_take_them_all() {
    let (test, one) = setup().await;
    let two = Db::connect(&test.url).await.unwrap();
    let tasks: Vec<Task> = (0..200).map(|i| new_task("echo", i % 3, 3)).collect();
    one.insert(&tasks).await.unwrap();
    let (a, b) = (node(&one, "a").await, node(&one, "b").await);
    let drain = |db: Db, node: NodeId| async move {
        let mut mine = Vec::new();
        loop {
            let got = db.claim(&node, &[want("echo", 7)], 7).await.unwrap();
            if got.is_empty() {
                return mine;
            }
            assert!(got.iter().all(|c| c.task.worker.is_none()));
            mine.extend(ids(&got));
        }
    };
    let (got_a, got_b) = tokio::join!(drain(one.clone(), a), drain(two, b));
    let all: HashSet<TaskId> = got_a.iter().chain(&got_b).copied().collect();
    assert_eq!(got_a.len() + got_b.len(), 200, "no task claimed twice");
    assert_eq!(all, tasks.iter().map(|t| t.id).collect());
    assert!(!got_a.is_empty() && !got_b.is_empty());
    let counts = one.counts().await.unwrap();
    assert_eq!((counts.queued, counts.running), (0, 200));
    test.drop().await.unwrap();
}

#[tokio::test]
async fn writes_apply_only_for_the_owner_and_the_attempt() {
    let (test, db) = setup().await;
    let (a, b) = (node(&db, "a").await, node(&db, "b").await);
    db.insert(&(0..5).map(|_| new_task("echo", 0, 3)).collect::<Vec<_>>())
        .await
        .unwrap();
    let claimed = db.claim(&a, &[want("echo", 5)], 5).await.unwrap();
    let [t1, t2, t3, t4, t5] = <[_; 5]>::try_from(claimed).unwrap().map(|c| c.task);

    let mut on_worker = t1.clone();
    on_worker.worker = Some("local-1".into());
    on_worker.progress = Some(Box::new(Progress {
        done: 1,
        total: 2,
        message: Some("half".into()),
    }));
    let done = db
        .commit(&a, &[Fenced::Put(on_worker.clone())])
        .await
        .unwrap();
    assert!(done.fenced.is_empty() && done.cancelled.is_empty());
    assert_eq!(get(&db, t1.id).await, on_worker);

    let mut stale = on_worker.clone();
    stale.attempt = 2;
    stale.status = TaskStatus::Succeeded;
    let done = db.commit(&a, &[Fenced::Put(stale)]).await.unwrap();
    assert_eq!(done.fenced, [t1.id], "wrong attempt");
    let mut finished = t2.clone();
    finished.status = TaskStatus::Succeeded;
    finished.output = Some(json!({"ok": true}).into());
    finished.finished_at = Some(Timestamp::now());
    let done = db
        .commit(&b, &[Fenced::Put(finished.clone())])
        .await
        .unwrap();
    assert_eq!(done.fenced, [t2.id], "wrong owner");
    assert_eq!(get(&db, t1.id).await, on_worker);
    assert_eq!(get(&db, t2.id).await, t2);

    // Several writes of one task in a batch: the last one wins.
    let mut t5_done = t5.clone();
    t5_done.status = TaskStatus::Failed;
    t5_done.error = Some(Box::new(ErrorBody::new(ErrorCode::TaskFailed, "boom")));
    t5_done.finished_at = Some(Timestamp::now());
    let writes = [
        Fenced::Put(finished.clone()),
        Fenced::Release {
            id: t3.id,
            attempt: t3.attempt,
        },
        Fenced::Requeue {
            id: t4.id,
            attempt: t4.attempt,
        },
        Fenced::Put(on_worker.clone()),
        Fenced::Put(t5_done.clone()),
    ];
    let done = db.commit(&a, &writes).await.unwrap();
    assert!(done.fenced.is_empty() && done.cancelled.is_empty());
    assert_eq!(get(&db, t2.id).await, on_the_wire(&finished));
    assert_eq!(get(&db, t5.id).await, on_the_wire(&t5_done));
    let released = get(&db, t3.id).await;
    assert_eq!((released.status, released.attempt), (TaskStatus::Queued, 0));
    assert!(released.started_at.is_none() && released.worker.is_none());
    let requeued = get(&db, t4.id).await;
    assert_eq!((requeued.status, requeued.attempt), (TaskStatus::Queued, 1));
    assert!(requeued.started_at.is_none() && requeued.worker.is_none());

    // A final task, or one given back, is nobody's to write any more.
    let done = db
        .commit(&a, &[Fenced::Put(finished), Fenced::Put(t4.clone())])
        .await;
    assert_eq!(done.unwrap().fenced.len(), 2);
    let again = db.claim(&a, &[want("echo", 5)], 5).await.unwrap();
    let attempts: Vec<(TaskId, u32)> = again.iter().map(|c| (c.task.id, c.task.attempt)).collect();
    assert_eq!(attempts, [(t3.id, 1), (t4.id, 2)]);
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.running, counts.succeeded, counts.failed), (3, 1, 1));
    test.drop().await.unwrap();
}

#[tokio::test]
async fn cancel_depends_on_where_the_task_is() {
    let (test, db) = setup().await;
    let a = node(&db, "a").await;
    let tasks: Vec<Task> = (0..4).map(|_| new_task("echo", 0, 3)).collect();
    db.insert(&tasks).await.unwrap();
    let queued = tasks[3].id;
    let claimed = db.claim(&a, &[want("echo", 3)], 3).await.unwrap();
    let [running, other, finished] = <[_; 3]>::try_from(claimed).unwrap().map(|c| c.task);

    let CancelOutcome::Cancelled(task) = db.cancel(queued).await.unwrap() else {
        panic!("a queued task is cancelled at once");
    };
    assert_eq!(task.status, TaskStatus::Cancelled);
    assert_eq!(
        task.error.as_ref().map(|e| e.code),
        Some(ErrorCode::Cancelled)
    );
    assert!(task.finished_at.is_some());
    assert_eq!(get(&db, queued).await, task);
    assert!(matches!(
        db.cancel(queued).await.unwrap(),
        CancelOutcome::AlreadyFinished(_)
    ));

    let CancelOutcome::Running { owner, task } = db.cancel(running.id).await.unwrap() else {
        panic!("a running task is flagged");
    };
    assert_eq!((owner, task), (a.clone(), running.clone()));
    assert_eq!(db.cancel_requests(&a).await.unwrap(), [running.id]);

    let mut done = finished.clone();
    done.status = TaskStatus::Succeeded;
    done.finished_at = Some(Timestamp::now());
    db.commit(&a, &[Fenced::Put(done)]).await.unwrap();
    let outcome = db.cancel(finished.id).await.unwrap();
    assert!(
        matches!(outcome, CancelOutcome::AlreadyFinished(t) if t.status == TaskStatus::Succeeded)
    );
    let unknown = TaskId(uuid::Uuid::now_v7());
    assert!(matches!(
        db.cancel(unknown).await.unwrap(),
        CancelOutcome::NotFound
    ));

    // Given back while its cancel is pending: cancelled, not queued.
    let writes = [
        Fenced::Requeue {
            id: running.id,
            attempt: 1,
        },
        Fenced::Release {
            id: other.id,
            attempt: 1,
        },
    ];
    let done = db.commit(&a, &writes).await.unwrap();
    assert!(done.fenced.is_empty());
    assert_eq!(done.cancelled.len(), 1);
    let cancelled = &done.cancelled[0];
    assert_eq!(
        (cancelled.id, cancelled.status),
        (running.id, TaskStatus::Cancelled)
    );
    assert_eq!(cancelled.error.as_deref(), Some(&cancelled_error()));
    assert_eq!(get(&db, running.id).await, *cancelled);
    assert_eq!(get(&db, other.id).await.status, TaskStatus::Queued);
    assert!(db.cancel_requests(&a).await.unwrap().is_empty());
    let counts = db.counts().await.unwrap();
    assert_eq!(
        (
            counts.queued,
            counts.running,
            counts.succeeded,
            counts.cancelled
        ),
        (1, 0, 1, 2)
    );
    test.drop().await.unwrap();
}

mod deps;
mod due;
mod keys;
mod leases;
mod limits;
mod lookup;
mod start;
