//! Cancels racing claims, leases and reaps, counts and nodes.

use super::*;

#[tokio::test]
async fn a_cancel_racing_a_claim_wins_or_loses_whole() {
    let (test, db) = setup().await;
    let claimer = Db::connect(&test.url).await.unwrap();
    let a = node(&db, "a").await;
    let tasks: Vec<Task> = (0..100).map(|_| new_task("echo", 0, 3)).collect();
    db.insert(&tasks).await.unwrap();
    // Claims go from the oldest, cancels from the newest: they meet.
    let cancels = async {
        let mut outcomes = Vec::new();
        for t in tasks.iter().rev() {
            outcomes.push((t.id, db.cancel(t.id).await.unwrap()));
        }
        outcomes
    };
    let claims = async {
        let mut claimed = HashSet::new();
        loop {
            let got = claimer.claim(&a, &[want("echo", 3)], 3).await.unwrap();
            if got.is_empty() {
                return claimed;
            }
            claimed.extend(ids(&got));
        }
    };
    let (outcomes, claimed) = tokio::join!(cancels, claims);
    for (id, outcome) in outcomes {
        let stored = get(&db, id).await;
        match outcome {
            CancelOutcome::Cancelled(_) => {
                assert!(!claimed.contains(&id));
                assert_eq!(stored.status, TaskStatus::Cancelled);
            }
            CancelOutcome::Running { .. } => {
                assert!(claimed.contains(&id));
                assert_eq!(stored.status, TaskStatus::Running);
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    let counts = db.counts().await.unwrap();
    assert_eq!(counts.queued, 0);
    assert_eq!(counts.running + counts.cancelled, 100);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_silent_nodes_tasks_are_taken_back() {
    let (test, db) = setup().await;
    let (a, b) = (node(&db, "a").await, node(&db, "b").await);
    let (last, to_cancel, retry) = (
        new_task("echo", 2, 1),
        new_task("echo", 1, 3),
        new_task("echo", 0, 3),
    );
    db.insert(&[last.clone(), to_cancel.clone(), retry.clone()])
        .await
        .unwrap();
    let claimed = db.claim(&a, &[want("echo", 3)], 3).await.unwrap();
    assert_eq!(ids(&claimed), [last.id, to_cancel.id, retry.id]);
    let mut on_worker = claimed[2].task.clone();
    on_worker.worker = Some("a-1".into());
    db.commit(&a, &[Fenced::Put(on_worker.clone())])
        .await
        .unwrap();
    db.cancel(to_cancel.id).await.unwrap();
    assert!(db.reap(Duration::from_secs(10)).await.unwrap().is_empty());

    silence(&db, &a).await;
    let reaped = db.reap(Duration::from_secs(10)).await.unwrap();
    assert!(reaped.iter().all(|r| r.from == a));
    let by_id = |id| &reaped.iter().find(|r| r.task.id == id).unwrap().task;
    assert_eq!(reaped.len(), 3);
    let failed = by_id(last.id);
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(
        failed.error.as_deref().cloned(),
        Some(ErrorBody::new(
            ErrorCode::WorkerLost,
            "node a was lost on attempt 1"
        ))
    );
    assert!(failed.finished_at.is_some());
    let cancelled = by_id(to_cancel.id);
    assert_eq!(
        (cancelled.status, cancelled.error.as_deref().cloned()),
        (TaskStatus::Cancelled, Some(cancelled_error()))
    );
    let requeued = by_id(retry.id);
    assert_eq!((requeued.status, requeued.attempt), (TaskStatus::Queued, 1));
    assert!(requeued.worker.is_none() && requeued.started_at.is_none());
    for r in &reaped {
        assert_eq!(get(&db, r.task.id).await, r.task);
    }

    // The silent node comes back: it is out of the cluster.
    let state = NodeState {
        info: NodeInfo {
            id: a.clone(),
            addr: "a.test:3000".into(),
            started_at: Timestamp::now(),
        },
        workers: Vec::new(),
        running: 3,
        latencies: Default::default(),
    };
    assert!(!db.heartbeat(&state).await.unwrap());
    assert!(
        db.claim(&a, &[want("echo", 3)], 3)
            .await
            .unwrap()
            .is_empty()
    );
    let done = db.commit(&a, &[Fenced::Put(on_worker)]).await.unwrap();
    assert_eq!(done.fenced, [retry.id]);
    let nodes: Vec<NodeId> = db
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.info.id)
        .collect();
    assert_eq!(nodes, std::slice::from_ref(&b));
    assert!(db.reap(Duration::from_secs(10)).await.unwrap().is_empty());

    let again = db.claim(&b, &[want("echo", 3)], 3).await.unwrap();
    assert_eq!(ids(&again), [retry.id]);
    assert_eq!(again[0].task.attempt, 2);
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.running, counts.failed, counts.cancelled), (1, 1, 1));
    test.drop().await.unwrap();
}

#[tokio::test]
async fn two_reapers_take_each_dead_node_once() {
    let (test, db) = setup().await;
    let other = Db::connect(&test.url).await.unwrap();
    let tasks: Vec<Task> = (0..15).map(|_| new_task("echo", 0, 3)).collect();
    db.insert(&tasks).await.unwrap();
    for name in ["a", "b", "c"] {
        let n = node(&db, name).await;
        assert_eq!(db.claim(&n, &[want("echo", 5)], 5).await.unwrap().len(), 5);
        silence(&db, &n).await;
    }
    let lease = Duration::from_secs(10);
    let (one, two) = tokio::join!(db.reap(lease), other.reap(lease));
    let reaped: Vec<Reaped> = one.unwrap().into_iter().chain(two.unwrap()).collect();
    let unique: HashSet<TaskId> = reaped.iter().map(|r| r.task.id).collect();
    assert_eq!((reaped.len(), unique.len()), (15, 15));
    for name in ["a", "b", "c"] {
        assert_eq!(reaped.iter().filter(|r| r.from.0 == name).count(), 5);
    }
    assert!(reaped.iter().all(|r| r.task.status == TaskStatus::Queued));
    assert!(db.nodes().await.unwrap().is_empty());
    assert_eq!(db.counts().await.unwrap().queued, 15);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn a_dead_node_claiming_while_it_is_reaped_strands_nothing() {
    let (test, db) = setup().await;
    let zombie = Db::connect(&test.url).await.unwrap();
    let tasks: Vec<Task> = (0..100).map(|_| new_task("echo", 0, 100)).collect();
    db.insert(&tasks).await.unwrap();
    for round in 0..10 {
        let a = node(&db, &format!("a{round}")).await;
        silence(&db, &a).await;
        let claims = async {
            let mut claimed = HashSet::new();
            loop {
                let got = zombie.claim(&a, &[want("echo", 2)], 2).await.unwrap();
                if got.is_empty() {
                    return claimed;
                }
                claimed.extend(ids(&got));
            }
        };
        let lease = Duration::from_secs(10);
        let (claimed, reaped) = tokio::join!(claims, db.reap(lease));
        // A reaper skips a node while one of its claims holds its row.
        let later = db.reap(lease).await.unwrap();
        let reaped: HashSet<TaskId> = reaped
            .unwrap()
            .iter()
            .chain(&later)
            .map(|r| r.task.id)
            .collect();
        assert_eq!(reaped, claimed, "round {round}");
        assert_eq!(db.counts().await.unwrap().running, 0, "round {round}");
    }
    test.drop().await.unwrap();
}

#[tokio::test]
async fn counts_follow_every_path_to_a_final_status() {
    let (test, db) = setup().await;
    let second = Db::connect(&test.url).await.unwrap();
    let a = node(&db, "a").await;
    let tasks: Vec<Task> = (0..10).map(|_| new_task("echo", 0, 3)).collect();
    db.insert(&tasks).await.unwrap();
    let claimed = db.claim(&a, &[want("echo", 6)], 6).await.unwrap();
    let ending = [
        TaskStatus::Succeeded,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::TimedOut,
    ];
    for (c, status) in claimed.iter().zip(ending) {
        let mut t = c.task.clone();
        t.status = status;
        t.finished_at = Some(Timestamp::now());
        // Two pools: the counts land on different shards.
        let db = if status == TaskStatus::Succeeded {
            &second
        } else {
            &db
        };
        assert!(
            db.commit(&a, &[Fenced::Put(t)])
                .await
                .unwrap()
                .fenced
                .is_empty()
        );
    }
    let release = Fenced::Release {
        id: claimed[4].task.id,
        attempt: 1,
    };
    db.commit(&a, &[release]).await.unwrap();
    db.cancel(tasks[8].id).await.unwrap();
    db.cancel(tasks[9].id).await.unwrap();
    let counts = db.counts().await.unwrap();
    let expected = Counts {
        scheduled: 0,
        waiting: 0,
        queued: 3,
        running: 1,
        succeeded: 2,
        failed: 1,
        cancelled: 2,
        timed_out: 1,
        // Per kind only in `overview` (`kind_counts`).
        kinds: Default::default(),
    };
    assert_eq!(counts, expected);
    test.drop().await.unwrap();
}

#[tokio::test]
async fn nodes_are_listed_oldest_first_and_leave_once_their_tasks_are_back() {
    let (test, db) = setup().await;
    let older = NodeInfo {
        id: NodeId("old".into()),
        addr: "old.test:3000".into(),
        started_at: Timestamp::now(),
    };
    let young = node(&db, "young").await;
    db.register(&older).await.unwrap();
    let state = NodeState {
        info: older.clone(),
        workers: vec![app::WorkerInfo {
            id: "old-1".into(),
            state: app::WorkerState::Busy,
            current_task: None,
            running: 1,
            tasks_done: 7,
            remote: false,
            pid: Some(42),
            node: "older".into(),
        }],
        running: 1,
        latencies: [(
            "echo".to_owned(),
            crate::cluster::KindLatencies {
                wait: vec![(1000, 2)],
                run: vec![(5000, 1), (9000, 1)],
            },
        )]
        .into(),
    };
    assert!(db.heartbeat(&state).await.unwrap());
    let nodes = db.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].info.id, older.id);
    assert_eq!(nodes[0].workers, state.workers);
    assert_eq!(nodes[0].latencies, state.latencies);
    assert!(nodes[1].latencies.is_empty());
    assert_eq!((nodes[0].running, nodes[1].running), (1, 0));
    assert_eq!(nodes[1].info.id, young);

    db.insert(&[new_task("echo", 0, 3)]).await.unwrap();
    let claimed = db.claim(&young, &[want("echo", 1)], 1).await.unwrap();
    let refused = db.leave(&young).await.unwrap_err();
    assert!(!refused.is_unavailable(), "{refused}");
    let release = Fenced::Release {
        id: claimed[0].task.id,
        attempt: 1,
    };
    db.commit(&young, &[release]).await.unwrap();
    db.leave(&young).await.unwrap();
    db.leave(&older.id).await.unwrap();
    assert!(db.nodes().await.unwrap().is_empty());
    test.drop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Nothing listens on port 1.
    let e = Db::connect("postgres://postgres@127.0.0.1:1/x")
        .await
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    assert!(
        e.to_string().starts_with("cannot reach the database"),
        "{e}"
    );
}
