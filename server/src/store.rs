//! The durable task store: SQLite in WAL mode in a data directory, written
//! by one thread with group commit (every task changed in a scheduler round
//! goes into one transaction, so one fsync covers many tasks). A small
//! commit while that thread is idle is made on its caller's thread
//! ([`Store::commit_here`]): at light load that is quicker.
//!
//! The scheduler stays the owner of task state in memory; the store is its
//! write-ahead copy. The schedules actor keeps its schedules in the same
//! database (table `schedules`), written by the same thread. Acks of new tasks and `result` pushes wait for the
//! commit that holds them (see `scheduler`), and on start the store hands
//! back every task it holds so the scheduler can recover.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread;

use app::{Attempt, Task, TaskId};
use rusqlite::{Connection, params};
use tokio::sync::oneshot;

mod columns;
mod identity;
mod lookup;
mod paused;
mod row;
mod schema;
mod wal;
mod writer;

use identity::FileIdentity;
pub use row::TaskState;
pub use schema::SchemaError;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create or open the data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the data directory {0} is in use by another taskwire server")]
    Locked(PathBuf),
    #[error(
        "the task database {path} cannot be used (corrupt, or not a Taskwire database?): {source}"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the task database {path} cannot be used: {source}")]
    Schema { path: PathBuf, source: SchemaError },
    #[error("task {id} in the database is unreadable: {source}")]
    Row { id: String, source: rusqlite::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store thread has stopped")]
    Stopped,
    #[error("writing tasks failed: {0}")]
    Write(String),
    #[error("reading a task failed: {0}")]
    Read(String),
}

/// A task as stored: its snapshot and its place in submission order.
#[derive(Debug, Clone)]
pub struct StoredTask {
    pub task: Task,
    pub seq: u64,
}

/// A recurring schedule as stored: its name and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchedule {
    pub name: String,
    pub body: String,
}

/// Where the store keeps a task: its row's key, the task's place in
/// submission order (every task has its own, never reused), and its id
/// (checked when the row is read, and the key of its attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub id: TaskId,
    pub seq: u64,
}

/// One write: a task's row, whole (its first write) or only its state
/// (every later one; see [`row`]), or its removal (its attempts with it);
/// an attempt that ended while its task went on; or a schedule's (see
/// [`crate::schedules`]).
#[derive(Debug)]
pub enum Write {
    Insert {
        task: Box<Task>,
        seq: u64,
    },
    /// The state of a task whose row an earlier write (in this commit or
    /// one before) inserted. A row that is not there is left alone: its
    /// insert failed with its commit, and the scheduler inserts the task
    /// whole again.
    Update(Box<TaskState>),
    Delete(Key),
    PutAttempt {
        id: TaskId,
        attempt: u32,
        body: String,
    },
    PutSchedule {
        name: String,
        body: String,
    },
    DeleteSchedule(String),
    /// A kind paused (kept in `paused_kinds`) or resumed (removed).
    Pause {
        kind: String,
        paused: bool,
    },
}

impl Write {
    /// The write of `task`, `seq` in submission order, as it is now: whole
    /// unless its row is already `stored`.
    pub fn task(task: &Task, seq: u64, stored: bool) -> Self {
        match stored {
            true => Self::Update(Box::new(TaskState::of(task, seq))),
            false => Self::Insert {
                task: Box::new(task.clone()),
                seq,
            },
        }
    }

    /// The write that stores an attempt of task `id` that ended.
    pub fn put_attempt(id: TaskId, attempt: &Attempt) -> Result<Self, serde_json::Error> {
        Ok(Self::PutAttempt {
            id,
            attempt: attempt.attempt,
            body: serde_json::to_string(attempt)?,
        })
    }
}

struct Job {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), String>>,
}

struct ReadJob {
    key: Key,
    done: oneshot::Sender<Result<Option<Task>, String>>,
}

/// Handle to the store's threads: one writer (group commit), one reader
/// (finished tasks whose payloads are no longer held in memory), and one
/// for lookups (`list`, attempts), so a long page never delays a read.
#[derive(Clone)]
pub struct Store {
    jobs: std_mpsc::Sender<Job>,
    writer: writer::Shared,
    reads: std_mpsc::Sender<ReadJob>,
    lookups: std_mpsc::Sender<lookup::Job>,
    file: FileIdentity,
}

/// The database file inside a data directory.
pub const DB_FILE: &str = "tasks.sqlite3";
const LOCK_FILE: &str = "lock";

impl Store {
    /// Opens (creating if needed) the store in `dir` and reads back every
    /// task it holds, in submission order.
    pub fn open(dir: &Path) -> Result<(Self, Vec<StoredTask>), StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        // One server per data directory: held for the process's lifetime.
        let lock = File::create(dir.join(LOCK_FILE)).map_err(dir_err)?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked(dir.to_owned()));
        }
        let path = dir.join(DB_FILE);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        conn.execute_batch(
            // WAL + FULL: a commit is on disk when it returns. Rarer
            // checkpoints keep the writer thread's CPU low (a checkpoint
            // rewrites pages into the main file). The page cache holds the
            // pages writes touch (the newest rows, the oldest being
            // pruned) and no more: a commit that split a page ends with a
            // walk of the cache's whole hash table (SQLite moves a page
            // through a number past the end of the file), so a larger
            // cache costs every such commit more.
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA cache_size = -8192;
             PRAGMA wal_autocheckpoint = 8192;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(open_err)?;
        schema::upgrade(&mut conn).map_err(|source| match source {
            SchemaError::Sqlite(source) => open_err(source),
            source => StoreError::Schema {
                path: path.clone(),
                source,
            },
        })?;
        let tasks = load(&conn)?;
        // The connection is idle: nothing writes the WAL while it grows.
        if let Err(e) = wal::prefill(&path) {
            tracing::warn!(error = %e, "cannot prepare the write-ahead log; commits sync more slowly until it is full size");
        }
        let file = FileIdentity::of(&path).map_err(dir_err)?;
        // WAL lets this connection read while the writer commits.
        let reader = Connection::open(&path).map_err(open_err)?;
        let looker = Connection::open(&path).map_err(open_err)?;
        let (jobs, rx) = std_mpsc::channel();
        let (reads, read_rx) = std_mpsc::channel();
        let (lookups, lookup_rx) = std_mpsc::channel();
        let writer = writer::Shared::new(writer::Writer::new(conn, lock, file.clone()));
        let for_thread = writer.clone();
        thread::Builder::new()
            .name("taskwire-store".into())
            .spawn(move || writer::run(for_thread, rx))
            .map_err(dir_err)?;
        thread::Builder::new()
            .name("taskwire-store-read".into())
            .spawn(move || read_loop(reader, read_rx))
            .map_err(dir_err)?;
        thread::Builder::new()
            .name("taskwire-store-lookup".into())
            .spawn(move || lookup::serve(looker, lookup_rx))
            .map_err(dir_err)?;
        let store = Self {
            jobs,
            writer,
            reads,
            lookups,
            file,
        };
        Ok((store, tasks))
    }

    /// Whether the database is still the file opened at start (see
    /// [`FileIdentity`]); `Err` says what happened to it.
    pub fn verify(&self) -> Result<(), String> {
        self.file.verify()
    }

    /// Every schedule the store holds, by name. It reads on a connection
    /// of its own, once, when the schedules actor starts (before it
    /// writes any).
    pub fn load_schedules(&self) -> Result<Vec<StoredSchedule>, StoreError> {
        let conn = self.read_only()?;
        let mut stmt = conn.prepare("SELECT name, body FROM schedules ORDER BY name")?;
        let rows = stmt.query_map([], |row| {
            Ok(StoredSchedule {
                name: row.get(0)?,
                body: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Reads one task as stored; `None` if the store does not hold it.
    pub fn read(
        &self,
        key: Key,
    ) -> impl Future<Output = Result<Option<Task>, StoreError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let queued = self.reads.send(ReadJob { key, done }).is_ok();
        answer(queued, rx, StoreError::Read)
    }

    /// Queues `writes` for one transaction; the future resolves once they
    /// are durable. Commits queued while the disk is busy are grouped into
    /// the next transaction.
    pub fn commit(
        &self,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        self.writer.job_sent();
        let queued = self.jobs.send(Job { writes, done }).is_ok();
        if !queued {
            self.writer.job_dropped();
        }
        answer(queued, rx, StoreError::Write)
    }

    /// Commits `writes` on the calling thread, blocking it until they are
    /// durable, if the writer thread has nothing to do; `None` if it has
    /// (then [`Store::commit`] keeps the order). It spares a small commit
    /// the two hand-offs between threads, which on an idle machine cost
    /// about as much as the disk sync, and far more in the tail.
    pub fn commit_here(&self, writes: &[Write]) -> Option<Result<(), StoreError>> {
        let mut writer = self.writer.idle()?;
        Some(writer.commit(writes.iter()).map_err(StoreError::Write))
    }
}

/// What a store thread answers to a job sent to it (`queued`): its result,
/// its error as `failed`, or `Stopped` if the thread is gone.
async fn answer<T>(
    queued: bool,
    rx: oneshot::Receiver<Result<T, String>>,
    failed: fn(String) -> StoreError,
) -> Result<T, StoreError> {
    if !queued {
        return Err(StoreError::Stopped);
    }
    rx.await.map_err(|_| StoreError::Stopped)?.map_err(failed)
}

fn load(conn: &Connection) -> Result<Vec<StoredTask>, StoreError> {
    // In submission order: the rowid's.
    let mut stmt = conn.prepare(&format!("SELECT {} FROM tasks ORDER BY seq", row::COLUMNS))?;
    let mut rows = stmt.query([])?;
    let mut tasks = Vec::new();
    while let Some(r) = rows.next()? {
        let (seq, task) = row::decode(r).map_err(|source| StoreError::Row {
            id: row::uuid(r, 1).map_or_else(|_| "?".into(), |id| id.to_string()),
            source,
        })?;
        tasks.push(StoredTask { task, seq });
    }
    Ok(tasks)
}

/// The reader thread: one task at a time, by id.
fn read_loop(conn: Connection, rx: std_mpsc::Receiver<ReadJob>) {
    while let Ok(job) = rx.recv() {
        let _ = job.done.send(read_one(&conn, job.key));
    }
}

fn read_one(conn: &Connection, key: Key) -> Result<Option<Task>, String> {
    row::read(conn, key).map_err(|e| format!("task {} in the database is unreadable: {e}", key.id))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use app::{TaskSpec, TaskStatus, Timestamp};
    use serde_json::json;

    /// The store in `dir`, once the last one there let go of it (its lock
    /// is released with its writer, when its writer thread has exited).
    pub(crate) fn reopen(dir: &Path) -> (Store, Vec<StoredTask>) {
        for _ in 0..100 {
            match Store::open(dir) {
                Err(StoreError::Locked(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => return other.unwrap(),
            }
        }
        panic!("the store stayed locked");
    }

    fn task(n: u128) -> Task {
        Task::new(
            uuid::Uuid::from_u128(n).into(),
            TaskSpec::new("echo", json!({"n": n as u64})),
            Timestamp::now(),
        )
    }

    #[tokio::test]
    async fn writes_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, tasks) = Store::open(dir.path()).unwrap();
            assert!(tasks.is_empty());
            let (a, mut b, c) = (task(1), task(2), task(3));
            store
                .commit(vec![
                    Write::task(&b, 2, false),
                    Write::task(&a, 1, false),
                    Write::task(&c, 3, false),
                ])
                .await
                .unwrap();
            b.status = TaskStatus::Succeeded;
            b.output = Some(json!({"n": 2}).into());
            store
                .commit(vec![
                    Write::task(&b, 2, true),
                    Write::Delete(Key { id: c.id, seq: 3 }),
                ])
                .await
                .unwrap();
        }
        let (_store, tasks) = reopen(dir.path());
        let got: Vec<(u64, TaskStatus)> = tasks.iter().map(|t| (t.seq, t.task.status)).collect();
        assert_eq!(
            got,
            vec![(1, TaskStatus::Queued), (2, TaskStatus::Succeeded)]
        );
        assert_eq!(tasks[1].task.output, Some(json!({"n": 2}).into()));
    }

    #[tokio::test]
    async fn a_commit_here_is_durable_on_return_and_never_overtakes_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let (a, mut b) = (task(1), task(2));
        // The writer thread is idle: written on this thread.
        store
            .commit_here(&[Write::task(&a, 1, false)])
            .expect("the writer thread is idle")
            .unwrap();
        // While a job waits for the thread, nothing is written here.
        store.writer.job_sent();
        assert!(store.commit_here(&[Write::task(&b, 2, false)]).is_none());
        store.writer.job_dropped();
        // A task's insert through the thread, then its final state: here
        // only once the insert is written, else through the thread after it.
        let insert = store.commit(vec![Write::task(&b, 2, false)]);
        b.status = TaskStatus::Succeeded;
        let update = Write::task(&b, 2, true);
        let here = store.commit_here(std::slice::from_ref(&update));
        let update = match here {
            Some(result) => result,
            None => store.commit(vec![update]).await,
        };
        insert.await.unwrap();
        update.unwrap();
        drop(store);
        let (_, tasks) = reopen(dir.path());
        let got: Vec<(TaskId, TaskStatus)> =
            tasks.iter().map(|t| (t.task.id, t.task.status)).collect();
        assert_eq!(
            got,
            vec![(a.id, TaskStatus::Queued), (b.id, TaskStatus::Succeeded)]
        );
    }

    /// The rows of `attempts`, as (task, attempt).
    fn attempt_rows(dir: &Path) -> Vec<(TaskId, u32)> {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        let mut stmt = conn
            .prepare("SELECT task, attempt FROM attempts ORDER BY task, attempt")
            .unwrap();
        stmt.query_map([], |r| Ok((TaskId(row::uuid(r, 0)?), r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_removed_task_takes_its_attempts_stored_in_any_run() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (task(1), task(2), task(3));
        let key = |t: &Task, seq| Key { id: t.id, seq };
        let attempt = |t: &Task, n| {
            let mut ran = t.clone();
            ran.attempt = n;
            ran.started_at = Some(Timestamp::now());
            let error = app::ErrorBody::new(app::ErrorCode::WorkerLost, "gone");
            let ended = crate::lookup::ended_attempt(&ran, app::AttemptOutcome::WorkerLost, error)
                .expect("it started");
            Write::put_attempt(t.id, &ended).unwrap()
        };
        {
            let (store, _) = Store::open(dir.path()).unwrap();
            let mut writes: Vec<Write> = [&a, &b, &c]
                .iter()
                .enumerate()
                .map(|(seq, t)| Write::task(t, seq as u64, false))
                .collect();
            writes.extend([attempt(&a, 1), attempt(&a, 2), attempt(&b, 1)]);
            store.commit(writes).await.unwrap();
        }
        assert_eq!(
            attempt_rows(dir.path()),
            vec![(a.id, 1), (a.id, 2), (b.id, 1)]
        );
        // Stored by the last run (a), and by this one (c), then removed.
        let (store, _) = reopen(dir.path());
        store.commit(vec![attempt(&c, 1)]).await.unwrap();
        store
            .commit(vec![Write::Delete(key(&a, 0)), Write::Delete(key(&c, 2))])
            .await
            .unwrap();
        assert_eq!(attempt_rows(dir.path()), vec![(b.id, 1)]);
        drop(store);
        let (_, left) = reopen(dir.path());
        let ids: Vec<TaskId> = left.iter().map(|t| t.task.id).collect();
        assert_eq!(ids, vec![b.id]);
    }

    #[tokio::test]
    async fn schedules_are_kept_with_the_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        assert!(store.load_schedules().unwrap().is_empty());
        let put = |name: &str, body: &str| Write::PutSchedule {
            name: name.into(),
            body: body.into(),
        };
        store
            .commit(vec![
                put("b", "1"),
                put("a", "2"),
                Write::task(&task(1), 1, false),
            ])
            .await
            .unwrap();
        store
            .commit(vec![put("b", "3"), Write::DeleteSchedule("a".into())])
            .await
            .unwrap();
        assert_eq!(
            store.load_schedules().unwrap(),
            vec![StoredSchedule {
                name: "b".into(),
                body: "3".into()
            }]
        );
    }

    #[tokio::test]
    async fn the_wal_is_full_size_from_the_start_and_its_zeros_are_no_frames() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(format!("{DB_FILE}-wal"));
        let (store, _) = Store::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&log).unwrap().len(), wal::WAL_BYTES);
        let (a, b) = (task(1), task(2));
        store.commit(vec![Write::task(&a, 1, false)]).await.unwrap();
        store.commit(vec![Write::task(&b, 2, false)]).await.unwrap();
        // The commits overwrote zeros: the file did not grow.
        assert_eq!(std::fs::metadata(&log).unwrap().len(), wal::WAL_BYTES);
        // Recovery from the WAL (as after a crash: no checkpoint) finds
        // both tasks and nothing else.
        let copy = tempfile::tempdir().unwrap();
        for name in [DB_FILE.to_owned(), format!("{DB_FILE}-wal")] {
            std::fs::copy(dir.path().join(&name), copy.path().join(&name)).unwrap();
        }
        drop(store);
        let (_, tasks) = reopen(copy.path());
        let got: Vec<TaskId> = tasks.iter().map(|t| t.task.id).collect();
        assert_eq!(got, vec![a.id, b.id]);
    }

    #[test]
    fn one_server_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Locked(_))
        ));
    }

    #[test]
    fn a_corrupt_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DB_FILE),
            b"this is not a database, just some bytes",
        )
        .unwrap();
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("cannot be used"), "{err}");
    }
}
