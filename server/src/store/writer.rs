//! The store's writer: the connection that writes, and the thread that
//! commits every job waiting as one transaction (group commit).

use std::collections::HashSet;
use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use app::TaskId;
use rusqlite::{Connection, params};

use super::{FileIdentity, Job, Write, paused, row};

/// The connection that writes, and what each commit needs besides. The
/// writer thread holds it while it commits a group of jobs; between
/// groups, [`super::Store::commit_here`] may commit on its caller's thread.
pub(super) struct Writer {
    conn: Connection,
    attempted: Attempted,
    file: FileIdentity,
    /// The data directory's lock, held as long as the connection is.
    _lock: File,
}

impl Writer {
    pub(super) fn new(conn: Connection, lock: File, file: FileIdentity) -> Self {
        let attempted = match Attempted::load(&conn) {
            Ok(a) => a,
            Err(e) => {
                // Every removal then deletes attempts too, as if each had some.
                tracing::error!(error = %e, "cannot read which tasks have earlier attempts");
                Attempted::unknown()
            }
        };
        Self {
            conn,
            attempted,
            file,
            _lock: lock,
        }
    }

    /// Applies `writes` in one transaction. One that fails (a full disk,
    /// say) changes nothing: the error is logged and returned, and the
    /// scheduler writes the tasks again later.
    pub(super) fn commit<'a>(
        &mut self,
        writes: impl Iterator<Item = &'a Write>,
    ) -> Result<(), String> {
        let result = self.file.verify().and_then(|()| {
            apply(&mut self.conn, &mut self.attempted, writes).map_err(|e| e.to_string())
        });
        if let Err(e) = &result {
            tracing::error!(error = %e, "task store write failed");
        }
        result
    }
}

/// The writer, shared by the writer thread and `commit_here`, and how many
/// jobs were sent to the thread and not yet answered.
#[derive(Clone)]
pub(super) struct Shared {
    writer: Arc<Mutex<Writer>>,
    busy: Arc<AtomicUsize>,
}

impl Shared {
    pub(super) fn new(writer: Writer) -> Self {
        Self {
            writer: Arc::new(Mutex::new(writer)),
            busy: Arc::default(),
        }
    }

    /// Before a job is sent to the thread.
    pub(super) fn job_sent(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// A job that could not be sent (the thread is gone).
    pub(super) fn job_dropped(&self) {
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }

    /// The writer, if the thread has no job to do and nobody else holds it.
    /// Jobs sent earlier are then all committed, so a commit made with it
    /// comes after them.
    pub(super) fn idle(&self) -> Option<MutexGuard<'_, Writer>> {
        if self.busy.load(Ordering::Acquire) != 0 {
            return None;
        }
        match self.writer.try_lock() {
            Ok(writer) => Some(writer),
            // A panic while committing left nothing half done: a
            // transaction that did not commit is rolled back.
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Applies each job (and every job already waiting) in one transaction,
/// then answers them all.
pub(super) fn run(shared: Shared, rx: std_mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let result = shared.lock().commit(jobs.iter().flat_map(|j| &j.writes));
        // Not busy before the answers: whoever gets one may commit next.
        shared.busy.fetch_sub(jobs.len(), Ordering::AcqRel);
        for job in jobs {
            let _ = job.done.send(result.clone());
        }
    }
}

/// The tasks that have rows in `attempts`, so that removing a task (almost
/// never one with earlier attempts) costs one statement, not two. It may
/// name a task that has none (a commit that stored its attempt failed),
/// never miss one that has.
struct Attempted {
    tasks: HashSet<TaskId>,
    /// Not read at start: every task may have some.
    all: bool,
}

impl Attempted {
    fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut stmt = conn.prepare("SELECT DISTINCT task FROM attempts")?;
        let tasks = stmt
            .query_map([], |r| row::uuid(r, 0).map(TaskId))?
            .collect::<Result<_, _>>()?;
        Ok(Self { tasks, all: false })
    }

    fn unknown() -> Self {
        Self {
            tasks: HashSet::new(),
            all: true,
        }
    }

    fn may_have(&self, id: &TaskId) -> bool {
        self.all || self.tasks.contains(id)
    }
}

fn apply<'a>(
    conn: &mut Connection,
    attempted: &mut Attempted,
    writes: impl Iterator<Item = &'a Write>,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    // Forgotten once the commit that deletes their attempts succeeds.
    let mut cleared = Vec::new();
    {
        let mut insert = tx.prepare_cached(row::INSERT)?;
        let mut update = tx.prepare_cached(row::UPDATE)?;
        let mut delete = tx.prepare_cached(row::DELETE)?;
        let mut delete_attempts = tx.prepare_cached("DELETE FROM attempts WHERE task = ?1")?;
        let mut put_attempt = tx.prepare_cached(
            "INSERT INTO attempts (task, attempt, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (task, attempt) DO UPDATE SET body = excluded.body",
        )?;
        let mut put_schedule = tx.prepare_cached(
            "INSERT INTO schedules (name, body) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        )?;
        let mut delete_schedule = tx.prepare_cached("DELETE FROM schedules WHERE name = ?1")?;
        for w in writes {
            match w {
                Write::Insert { task, seq } => row::insert(&mut insert, task, *seq)?,
                Write::Update(state) => {
                    row::update(&mut update, state)?;
                }
                Write::Delete(key) => {
                    delete.execute(params![row::key(key.seq)])?;
                    if attempted.may_have(&key.id) {
                        delete_attempts.execute(params![key.id.0.as_bytes().as_slice()])?;
                        cleared.push(key.id);
                    }
                }
                Write::PutAttempt { id, attempt, body } => {
                    attempted.tasks.insert(*id);
                    put_attempt.execute(params![id.0.as_bytes().as_slice(), attempt, body])?;
                }
                Write::PutSchedule { name, body } => {
                    put_schedule.execute(params![name, body])?;
                }
                Write::DeleteSchedule(name) => {
                    delete_schedule.execute(params![name])?;
                }
                Write::Pause { kind, paused } => paused::apply(&tx, kind, *paused)?,
            }
        }
    }
    tx.commit()?;
    for id in cleared {
        attempted.tasks.remove(&id);
    }
    Ok(())
}
