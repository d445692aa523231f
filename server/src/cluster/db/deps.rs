//! Dependencies (v1.1): tasks `waiting` for the tasks they name in
//! `after`, released to `queued` once all of those succeeded, or failed
//! with `dependency_failed` as soon as one ended otherwise.
//!
//! Every decision about a waiting task reads the statuses of what it
//! names, and two decisions must not both miss the last of them ending.
//! So whatever could change a verdict queues a `dependency_checks` row in
//! its own transaction: a task with dependents ending (every statement
//! that ends tasks does, see `check_dependents!`), a scheduled task with
//! dependencies coming due. [`Db::resolve`] takes such rows in a statement
//! of its own, whose snapshot therefore holds the change it was queued
//! for; and a submission locks the tasks it names (setting their
//! `has_dependents`), so the statement that ends one of them waits for it
//! and then queues the check.

use std::collections::HashMap;

use app::ErrorBody;

use super::*;

/// What one [`Db::resolve`] did.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The tasks it changed, as they are now: `queued` (all they named
    /// succeeded) or `failed` (`dependency_failed`).
    pub tasks: Vec<Task>,
}

impl Db {
    /// Takes at most `limit` queued checks and looks again at the tasks
    /// they are about: the waiting (or scheduled) dependents of a task
    /// that ended, and a task that came due waiting. A failure queues the
    /// checks of its own dependents (call again while something changed).
    pub async fn resolve(&self, limit: u32) -> Result<Resolved> {
        let rows = sqlx::query(concat!(
            "WITH checked AS (
                 DELETE FROM dependency_checks d
                 WHERE d.id IN (
                     SELECT id FROM dependency_checks ORDER BY id LIMIT $1
                     FOR UPDATE SKIP LOCKED
                 )
                 RETURNING d.task
             ),
             candidates AS MATERIALIZED (
                 SELECT t.id FROM tasks t
                 WHERE t.id IN (
                     SELECT d.task FROM task_deps d WHERE d.dep IN (SELECT task FROM checked)
                     UNION SELECT task FROM checked
                 )
                 AND t.status IN ('waiting', 'scheduled')
                 ORDER BY t.id
                 FOR UPDATE
             ),
             ",
            verdicts!("candidates"),
            ",
             changed AS (
                 UPDATE tasks t
                 SET status = CASE WHEN v.failed_dep IS NULL THEN 'queued' ELSE 'failed' END,
                     ",
            failed_by_verdict!(),
            "
                 FROM verdicts v
                 WHERE t.id = v.id
                   AND (v.failed_dep IS NOT NULL OR (v.met AND t.status = 'waiting'))
                 RETURNING t.id, t.has_dependents, ",
            task_columns!(),
            "),
             ",
            count_finished!("changed"),
            ",
             ",
            check_dependents!("changed"),
            "
             SELECT * FROM changed"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = rows.iter().map(task).collect::<Result<Vec<_>>>()?;
        tasks.sort_by_key(|t| t.id);
        Ok(Resolved { tasks })
    }
}

/// What a submission's new tasks need stored besides themselves.
pub(super) struct Admitted {
    /// In the order of the new tasks: named by a new task that waits.
    pub has_dependents: Vec<bool>,
    /// Each new task that waits (or is scheduled), each task it names:
    /// (task, place in `after`, named task).
    deps: Vec<(TaskId, i32, TaskId)>,
    /// New tasks failed at once.
    failed: i64,
}

/// The error of a task whose dependency `dep` ended with `status` (as on
/// a single server, and as `failed_by_verdict!` writes it).
fn dependency_failed(dep: TaskId, status: TaskStatus) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::DependencyFailed,
        format!("task {dep} ended {status}, not succeeded"),
    )
}

/// Decides where each new task of a submission starts, from where the
/// tasks it names stand: `failed` at once if one of them ended otherwise
/// than succeeded, else `scheduled` if its time has not come, else
/// `waiting` if one has not ended yet, else `queued`. `new` holds the
/// submission's new tasks with their place in it, in order; each may name
/// stored tasks and earlier new ones. A named task that is neither is
/// `not_found` (the whole submission is refused; `batch`: the error names
/// the item).
///
/// The stored tasks named are locked (in id order) and marked as having
/// dependents before their status is read: a statement ending one of them
/// waits for this transaction, then queues the check of its dependents.
pub(super) async fn admit(
    conn: &mut PgConnection,
    new: &mut [(usize, Task)],
    batch: bool,
) -> Result<std::result::Result<Admitted, ErrorBody>> {
    let place: HashMap<TaskId, usize> = new
        .iter()
        .enumerate()
        .map(|(k, (_, t))| (t.id, k))
        .collect();
    let mut named: Vec<TaskId> = new
        .iter()
        .flat_map(|(_, t)| t.after.iter().copied())
        .filter(|dep| !place.contains_key(dep))
        .collect();
    named.sort_unstable();
    named.dedup();
    let stored = lock_named(conn, &named).await?;
    for (k, (i, task)) in new.iter().enumerate() {
        let missing = task
            .after
            .iter()
            .find(|dep| !stored.contains_key(dep) && place.get(dep).is_none_or(|&j| j >= k));
        if let Some(dep) = missing {
            let e = ErrorBody::new(ErrorCode::NotFound, format!("after names no task {dep}"))
                .with_field(app::Field::from_name("after"));
            return Ok(Err(if batch { e.in_batch_item(*i) } else { e }));
        }
    }
    let mut admitted = Admitted {
        has_dependents: vec![false; new.len()],
        deps: Vec::new(),
        failed: 0,
    };
    let now = Timestamp::now();
    for k in 0..new.len() {
        let (mut failed, mut unmet) = (None, false);
        for dep in &new[k].1.after {
            let status = match place.get(dep) {
                Some(&j) => new[j].1.status,
                None => stored[dep],
            };
            match status {
                TaskStatus::Succeeded => {}
                status if status.is_final() => {
                    failed = Some((*dep, status));
                    break;
                }
                _ => unmet = true,
            }
        }
        let task = &mut new[k].1;
        if let Some((dep, status)) = failed {
            task.status = TaskStatus::Failed;
            task.error = Some(Box::new(dependency_failed(dep, status)));
            task.finished_at = Some(now);
            admitted.failed += 1;
            continue;
        }
        if unmet && task.status == TaskStatus::Queued {
            task.status = TaskStatus::Waiting;
        }
        if task.status.is_pending() {
            for (n, dep) in task.after.iter().enumerate() {
                admitted
                    .deps
                    .push((task.id, i32::try_from(n).unwrap_or(i32::MAX), *dep));
                if let Some(&j) = place.get(dep) {
                    admitted.has_dependents[j] = true;
                }
            }
        }
    }
    Ok(Ok(admitted))
}

/// Locks the stored tasks `ids` (sorted), marks them as having dependents,
/// and reads their status as of now (the newest, once the lock is held).
async fn lock_named(
    conn: &mut PgConnection,
    ids: &[TaskId],
) -> Result<HashMap<TaskId, TaskStatus>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    let rows = sqlx::query(
        "UPDATE tasks SET has_dependents = true
         WHERE id IN (
             SELECT id FROM tasks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE
         )
         RETURNING id, status",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((TaskId(row.try_get("id")?), status(row.try_get("status")?)?)))
        .collect()
}

/// Stores what [`admit`] decided besides the tasks: who waits for whom,
/// and the count of the tasks failed at once.
pub(super) async fn record(conn: &mut PgConnection, admitted: &Admitted) -> Result<()> {
    if !admitted.deps.is_empty() {
        let tasks: Vec<uuid::Uuid> = admitted.deps.iter().map(|d| d.0.0).collect();
        let places: Vec<i32> = admitted.deps.iter().map(|d| d.1).collect();
        let named: Vec<uuid::Uuid> = admitted.deps.iter().map(|d| d.2.0).collect();
        sqlx::query(
            "INSERT INTO task_deps (task, n, dep)
             SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[])",
        )
        .bind(&tasks)
        .bind(&places)
        .bind(&named)
        .execute(&mut *conn)
        .await?;
    }
    if admitted.failed > 0 {
        sqlx::query(
            "INSERT INTO finished_counts (status, shard, n)
             VALUES ('failed', pg_backend_pid() % 16, $1)
             ON CONFLICT (status, shard) DO UPDATE SET n = finished_counts.n + excluded.n",
        )
        .bind(admitted.failed)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
