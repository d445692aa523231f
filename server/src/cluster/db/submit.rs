//! Submissions: new tasks stored, each submission whole or not at all.
//!
//! Plain ones (no idempotency key, no dependency) go in one statement,
//! however many came together (group commit). One with keys or `after`
//! (v1.1) takes a transaction of its own, in which PostgreSQL decides who
//! holds each key: `task_keys`'s primary key makes a second submitter of a
//! key wait for the first, then find the key held. A key passes to a new
//! task only once its holder finished longer ago than the dedup window.
//! Where the tasks it names stand is read under their row locks (see
//! `deps`).

use std::collections::HashMap;

use app::ErrorBody;

use super::*;

/// A submission as stored and acked: its tasks in order, each a new task
/// or the existing task its key named (`deduplicated`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub tasks: Vec<Task>,
    pub deduplicated: Vec<bool>,
}

impl Stored {
    /// New tasks only.
    pub fn new(tasks: Vec<Task>) -> Self {
        let deduplicated = vec![false; tasks.len()];
        Self {
            tasks,
            deduplicated,
        }
    }
}

/// What became of one submission: stored, or refused (the error it is
/// answered with).
pub type Outcome = std::result::Result<Stored, ErrorBody>;

/// Whether a submission needs a transaction of its own ([`Db::submit`]);
/// else it may be stored with others ([`Db::insert`]).
pub fn decides_in_database(tasks: &[Task]) -> bool {
    tasks.iter().any(|t| t.key.is_some() || !t.after.is_empty())
}

/// The tasks of an insert that its node offers to start at once, on
/// itself: `flags[i]` for the insert's `i`th task.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub node: &'a NodeId,
    pub flags: &'a [bool],
}

impl Db {
    /// Stores new tasks, each with the status it says (`queued` or
    /// `scheduled`), in one statement; their `seq` follows their order.
    pub async fn insert(&self, tasks: &[Task]) -> Result<()> {
        let tasks: Vec<&Task> = tasks.iter().collect();
        self.insert_all(&tasks, None).await.map(drop)
    }

    /// [`Db::insert`] of tasks from several submissions, in one statement.
    /// The tasks `start` flags (plain queued ones, without a concurrency
    /// key) are stored `running` on its node instead, as if it had claimed
    /// them at once (attempt 1, `started_at` now, no worker yet), where a
    /// claim could take them now: the node is alive, their kind is not
    /// paused, and no queued task of their kind with the same or a higher
    /// priority waits (they overtake none). Returns those started, with
    /// their `seq`; the others are queued for any node to claim.
    ///
    /// A node that submits to itself and has free slots so writes each task
    /// twice (inserted, finished) instead of three times, with no claim.
    pub async fn insert_all(
        &self,
        tasks: &[&Task],
        start: Option<Start<'_>>,
    ) -> Result<Vec<(TaskId, i64)>> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        insert_tasks(&mut conn, tasks, &[], start).await
    }

    /// The tasks with these ids that exist, in no particular order.
    pub async fn get_many(&self, ids: &[TaskId]) -> Result<Vec<Task>> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks t WHERE t.id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task).collect()
    }

    /// Stores one submission with keys or dependencies, in a transaction
    /// of its own, and answers for it. A key held by a task unfinished or
    /// finished less than `window` ago makes that task the answer instead
    /// of a new one. A new task that names others in `after` is `waiting`
    /// until they all succeeded, or `failed` at once if one ended
    /// otherwise; naming a task that does not exist refuses the whole
    /// submission (`not_found`).
    pub async fn submit(&self, tasks: &[Task], window: Duration) -> Result<Outcome> {
        let mut tx = self.pool.begin().await?;
        // The first item of the batch with a key claims it; a later one
        // with the same key stands for that item's task.
        let mut first_with: HashMap<&str, usize> = HashMap::new();
        for (i, task) in tasks.iter().enumerate() {
            if let Some(key) = &task.key {
                first_with.entry(key.as_str()).or_insert(i);
            }
        }
        let mut claims: Vec<(&str, TaskId)> = first_with
            .iter()
            .map(|(key, &i)| (*key, tasks[i].id))
            .collect();
        claims.sort_unstable();
        let held = claim_keys(&mut tx, &claims, window).await?;
        let mut stored = Stored {
            tasks: Vec::with_capacity(tasks.len()),
            deduplicated: vec![false; tasks.len()],
        };
        // A deduplicated item's id stands for the task it is answered with.
        let mut stands_for: HashMap<TaskId, TaskId> = HashMap::new();
        let mut new: Vec<(usize, Task)> = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let first = task.key.as_deref().and_then(|key| first_with.get(key));
            let existing = match task.key.as_deref().and_then(|key| held.get(key)) {
                Some(holder) => Some(holder.clone()),
                None => first
                    .filter(|&&first| first < i)
                    .map(|&first| stored.tasks[first].clone()),
            };
            match existing {
                Some(existing) => {
                    stands_for.insert(task.id, existing.id);
                    stored.tasks.push(existing);
                    stored.deduplicated[i] = true;
                }
                None => {
                    let mut task = task.clone();
                    for dep in &mut task.after {
                        *dep = stands_for.get(dep).copied().unwrap_or(*dep);
                    }
                    stored.tasks.push(task.clone());
                    new.push((i, task));
                }
            }
        }
        let admitted = match deps::admit(&mut tx, &mut new, tasks.len() > 1).await? {
            Ok(admitted) => admitted,
            // Nothing of it is stored: the transaction rolls back.
            Err(refused) => return Ok(Err(refused)),
        };
        for (i, task) in &new {
            stored.tasks[*i] = task.clone();
        }
        let new: Vec<&Task> = new.iter().map(|(_, task)| task).collect();
        insert_tasks(&mut tx, &new, &admitted.has_dependents, None).await?;
        deps::record(&mut tx, &admitted).await?;
        tx.commit().await?;
        Ok(Ok(stored))
    }
}

/// Inserts `tasks` in one statement, in their order; `has_dependents`:
/// which are named by a waiting task of the same submission (all false
/// if shorter); `start`: see [`Db::insert_all`], whose answer this is.
async fn insert_tasks(
    conn: &mut PgConnection,
    tasks: &[&Task],
    has_dependents: &[bool],
    start: Option<Start<'_>>,
) -> Result<Vec<(TaskId, i64)>> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    // Times go apart, in binary: as text, PostgreSQL would refuse the
    // year 0000 that RFC 3339 allows.
    let run_at: Vec<Option<DateTime<Utc>>> = tasks.iter().map(|t| t.run_at.map(millis)).collect();
    // Only a task failed at once (its dependency had) is final.
    let finished_at: Vec<Option<DateTime<Utc>>> =
        tasks.iter().map(|t| t.finished_at.map(millis)).collect();
    let mut has_dependents = has_dependents.to_vec();
    has_dependents.resize(tasks.len(), false);
    let (node, flags) = match start {
        Some(Start { node, flags }) => (Some(node.0.as_str()), flags),
        None => (None, &[][..]),
    };
    let mut offered: Vec<&str> = tasks
        .iter()
        .zip(flags)
        .filter(|(_, flag)| **flag)
        .map(|(t, _)| t.kind.as_str())
        .collect();
    offered.sort_unstable();
    offered.dedup();
    let rows = sqlx::query(
        "WITH node AS (SELECT id FROM nodes WHERE id = $6 FOR KEY SHARE),
         open AS MATERIALIZED (SELECT unnest(tasks_startable_kinds($7::text[], $8, $9)) AS kind),
         -- Whether each task starts is decided once (a lateral subquery
         -- named several times in the insert would be run for each).
         new AS MATERIALIZED (
             SELECT b, n, r.*,
                    coalesce(($5::bool[])[n], false)
                    AND EXISTS (SELECT 1 FROM node)
                    AND r.kind IN (SELECT kind FROM open)
                    AND NOT EXISTS (
                        SELECT 1 FROM tasks q
                        WHERE q.status = 'queued' AND q.kind = r.kind
                          AND q.priority >= r.priority
                    ) AS go
             FROM json_array_elements($1::json) WITH ORDINALITY AS e(b, n)
             -- Each task's fields read in one pass over its text (each
             -- `->>` of a json value would parse it again).
             CROSS JOIN LATERAL json_to_record(b) AS r(
                 id uuid, kind text, priority int, max_attempts int, status text,
                 error json, concurrency_key text, concurrency_limit int, key text)
         ),
         inserted AS (
             INSERT INTO tasks (id, kind, priority, max_attempts, status, owner, attempt,
                                started_at, run_at, finished_at, error, has_dependents,
                                concurrency_key, concurrency_limit, key, body)
             SELECT id, kind, priority, max_attempts,
                    CASE WHEN go THEN 'running' ELSE status END,
                    CASE WHEN go THEN $6 END,
                    CASE WHEN go THEN 1 ELSE 0 END,
                    CASE WHEN go THEN date_trunc('milliseconds', now()) END,
                    ($2::timestamptz[])[n], ($3::timestamptz[])[n],
                    CASE WHEN json_typeof(error) = 'object' THEN error END,
                    ($4::bool[])[n], concurrency_key, concurrency_limit, key, b
             FROM new
             ORDER BY n
             RETURNING id, seq, owner
         )
         SELECT id, seq FROM inserted WHERE owner IS NOT NULL",
    )
    .bind(json_text(tasks)?)
    .bind(&run_at)
    .bind(&finished_at)
    .bind(&has_dependents)
    .bind(flags)
    .bind(node)
    .bind(&offered)
    .bind(pause::PAUSE_LOCK.0)
    .bind(pause::PAUSE_LOCK.1)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((TaskId(row.try_get("id")?), row.try_get("seq")?)))
        .collect()
}

/// Claims each key of `claims` (sorted by key, so that two transactions
/// never wait for each other's keys in opposite orders) for its task,
/// unless another task holds it: those holders, by key.
///
/// A key in use waits for the transaction that took it to end; it is
/// taken over only if its holder finished before the window. A holder
/// that just committed is not in this statement's snapshot, hence never
/// out of its window; the next statement reads it.
async fn claim_keys(
    conn: &mut PgConnection,
    claims: &[(&str, TaskId)],
    window: Duration,
) -> Result<HashMap<String, Task>> {
    if claims.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<&str> = claims.iter().map(|(key, _)| *key).collect();
    let ids: Vec<uuid::Uuid> = claims.iter().map(|(_, id)| id.0).collect();
    let claimed: Vec<String> = sqlx::query_scalar(
        "INSERT INTO task_keys (key, task)
         SELECT k, t FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS c(k, t, n)
         ORDER BY n
         ON CONFLICT (key) DO UPDATE SET task = excluded.task
         WHERE EXISTS (
             SELECT 1 FROM tasks h
             WHERE h.id = task_keys.task
               AND h.finished_at < now() - $3 * interval '1 millisecond'
         )
         RETURNING key",
    )
    .bind(&keys)
    .bind(&ids)
    .bind(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    let taken: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|key| !claimed.iter().any(|c| c == key))
        .collect();
    if taken.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(concat!(
        "SELECT k.key, ",
        task_columns!(),
        " FROM task_keys k JOIN tasks t ON t.id = k.task WHERE k.key = ANY($1)"
    ))
    .bind(&taken)
    .fetch_all(&mut *conn)
    .await?;
    let mut holders = HashMap::with_capacity(rows.len());
    for row in &rows {
        holders.insert(row.try_get("key")?, task(row)?);
    }
    if holders.len() != taken.len() {
        return Err(DbError::Query(sqlx::Error::Protocol(format!(
            "keys {taken:?} are held by tasks that cannot be read"
        ))));
    }
    Ok(holders)
}
