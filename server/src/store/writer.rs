//! The store's writer thread: group commit of every job waiting.

use std::collections::HashSet;
use std::fs::File;
use std::sync::mpsc as std_mpsc;

use app::TaskId;
use rusqlite::{Connection, params};

use super::{FileIdentity, Job, Write, paused, row};

/// Applies each job (and every job already waiting) in one transaction,
/// then answers them all. A transaction that fails (a full disk, say)
/// changes nothing: its jobs get the error and the scheduler writes their
/// tasks again later.
pub(super) fn run(
    mut conn: Connection,
    rx: std_mpsc::Receiver<Job>,
    _lock: File,
    file: FileIdentity,
) {
    let mut attempted = match Attempted::load(&conn) {
        Ok(a) => a,
        Err(e) => {
            // Every removal then deletes attempts too, as if each had some.
            tracing::error!(error = %e, "cannot read which tasks have earlier attempts");
            Attempted::unknown()
        }
    };
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let result = file.verify().and_then(|()| {
            apply(
                &mut conn,
                &mut attempted,
                jobs.iter().flat_map(|j| &j.writes),
            )
            .map_err(|e| e.to_string())
        });
        if let Err(e) = &result {
            tracing::error!(error = %e, "task store write failed");
        }
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
