//! When a durable scheduler starts a commit and when it waits a moment
//! (`hold_commit`), on the paused clock: the policy alone, on a real store.

use super::*;
use crate::store::Store;

/// A scheduler on a new store, with `n` tasks changed since the last
/// commit: running ones, or final.
fn with_changes(dir: &std::path::Path, n: usize, finished: bool) -> Scheduler {
    let (tx, _pushes) = mpsc::unbounded_channel();
    let node = NodeInfo {
        id: crate::cluster::NodeId("test".into()),
        addr: "127.0.0.1:0".into(),
        started_at: Timestamp::now(),
    };
    let mut s = Scheduler::new(SchedulerConfig::default(), Arc::new(Recorder(tx)), node);
    s.outbox.store = Some(Store::open(dir).expect("the store opens").0);
    change(&mut s, n, finished);
    s
}

/// `n` new tasks changed since the last commit: running, or final.
fn change(s: &mut Scheduler, n: usize, finished: bool) {
    for _ in 0..n {
        let task = Task::new(
            TaskId::from(uuid::Uuid::now_v7()),
            TaskSpec::new("echo", json!(null)),
            Timestamp::now(),
        );
        let id = task.id;
        s.table.enqueue(task, Class::Io, None, false);
        s.table.start(id, WorkerId::from("w".to_owned()));
        if finished {
            s.table.settle(id, TaskStatus::Succeeded, None, None);
        }
        s.touch(id);
    }
}

/// Commits made on the scheduler's thread so far, as `/metrics` says.
fn commits_here(s: &Scheduler) -> u64 {
    let text = s.metrics.render(&s.stats());
    let line = text
        .lines()
        .find(|l| l.starts_with(crate::metrics::STORE_COMMITS_HERE))
        .unwrap_or("none 0");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Writes the changes, then waits until the commit is durable.
async fn commit(s: &mut Scheduler) {
    s.write_changes();
    let done = s.outbox.commits.next().await.expect("a commit started");
    s.committed(done).await;
}

#[tokio::test(start_paused = true)]
async fn a_finished_task_is_written_at_once_unless_the_last_commit_was_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_changes(dir.path(), 1, true);
    // Light load: its `result` waits for nothing but the disk.
    s.outbox.last_size = PACE_FROM - 1;
    assert!(!s.hold_commit());
    // Under load: the commit waits for more, at most COMMIT_HOLD.
    s.outbox.last_size = PACE_FROM;
    assert!(s.hold_commit());
    tokio::time::advance(COMMIT_HOLD / 2).await;
    assert!(s.hold_commit());
    tokio::time::advance(COMMIT_HOLD / 2).await;
    assert!(!s.hold_commit());
}

#[tokio::test(start_paused = true)]
async fn a_commit_large_enough_starts_at_once_under_load() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut s = with_changes(one.path(), PACE_GROUP, true);
    s.outbox.last_size = PACE_GROUP;
    assert!(!s.hold_commit());
    let mut s = with_changes(two.path(), PACE_GROUP - 1, true);
    s.outbox.last_size = PACE_GROUP;
    assert!(s.hold_commit());
}

#[tokio::test(start_paused = true)]
async fn tasks_that_just_started_are_held_for_at_light_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_changes(dir.path(), 3, false);
    assert!(s.hold_commit());
    tokio::time::advance(COMMIT_HOLD).await;
    assert!(!s.hold_commit());
}

#[tokio::test(start_paused = true)]
async fn small_commits_at_light_load_are_made_here_unless_one_here_was_slow() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_changes(dir.path(), 1, true);
    // Every commit is too slow: the next second's go to the writer thread.
    s.config.commit_here_slow = Duration::ZERO;
    // Light load, the writer thread idle: durable as soon as it is started.
    s.write_changes();
    assert_eq!(commits_here(&s), 1);
    let done = s.outbox.commits.next().now_or_never().flatten();
    s.committed(done.expect("already durable")).await;
    change(&mut s, 1, true);
    commit(&mut s).await;
    assert_eq!(commits_here(&s), 1);
    tokio::time::advance(HERE_PAUSE).await;
    change(&mut s, 1, true);
    commit(&mut s).await;
    assert_eq!(commits_here(&s), 2);
    // None counts as slow from here on: the disk's speed plays no part.
    s.config.commit_here_slow = Duration::MAX;
    tokio::time::advance(HERE_PAUSE).await;
    change(&mut s, 1, true);
    commit(&mut s).await;
    assert_eq!(commits_here(&s), 3);
    // A large commit goes to the writer thread, and so does the next
    // small one: the load may still be heavy.
    change(&mut s, COMMIT_HERE_AT_MOST + 1, true);
    commit(&mut s).await;
    change(&mut s, 1, true);
    commit(&mut s).await;
    assert_eq!(commits_here(&s), 3);
    change(&mut s, 1, true);
    commit(&mut s).await;
    assert_eq!(commits_here(&s), 4);
    drop(s);
    // Every task was stored, whichever thread wrote it.
    let (_, stored) = crate::store::tests::reopen(dir.path());
    assert_eq!(stored.len(), 4 + COMMIT_HERE_AT_MOST + 1 + 2);
}
