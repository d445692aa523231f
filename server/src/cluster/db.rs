//! The cluster's PostgreSQL store: every task, the nodes and their leases,
//! and the counts of finished tasks.
//!
//! Every method is one statement (or one short transaction), and every
//! decision two nodes could race on is made inside PostgreSQL: claims skip
//! rows another node has locked, writes are fenced by (owner, attempt),
//! reapers skip nodes another reaper has locked. Rows are locked in id order
//! wherever a statement locks several, so a reaper and a stalled owner
//! writing the same tasks never deadlock. Times that leases compare come
//! from the database's clock only.
//!
//! A task is its `body` (the JSON of the task as submitted, never updated)
//! overlaid with the columns that change (status, attempt, worker, progress,
//! output, error, times): a write touches only those, so a large input is
//! neither sent again nor rewritten. Times are kept to the millisecond, as
//! on the wire, so a task read back equals the task that was written.

use std::collections::HashSet;
use std::time::Duration;

use app::{ErrorCode, Task, TaskId, TaskStatus, Timestamp};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::types::Json;

use super::{CancelOutcome, Claimed, Counts, Fenced, NodeId, NodeInfo, NodeState, Reaped, Want};

mod rows;
mod schedules;
use rows::{WriteRow, cancelled_error, json_text, millis, status, task};

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The connection was refused or lost, the server is shutting down or
    /// starting, or no connection came free in time: worth retrying.
    #[error("cannot reach the database: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Query(#[source] sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] MigrateError),
    #[error("cannot encode a task for the database: {0}")]
    Encode(#[source] serde_json::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if unreachable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Query(e)
        }
    }
}

impl DbError {
    /// Whether the database could not be reached (rather than refusing
    /// what was asked): the caller reports `unavailable` and retries.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Query(_) => false,
            Self::Migrate(MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _)) => {
                unreachable(e)
            }
            Self::Migrate(_) | Self::Encode(_) => false,
        }
    }
}

fn unreachable(e: &sqlx::Error) -> bool {
    use sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        // Connection exceptions (class 08), the server shutting down or
        // starting up (57P01..57P03), too many connections (53300).
        E::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// What a [`Db::commit`] did not do as written.
#[derive(Debug, Default)]
pub struct Committed {
    /// Writes whose fence failed and that did nothing: the task is no
    /// longer this node's (it was taken back after its lease ran out).
    pub fenced: Vec<TaskId>,
    /// Tasks given back (`Release`, `Requeue`) while a cancel of theirs was
    /// pending: they are `cancelled` now instead of queued, and their
    /// `result` is this node's to push.
    pub cancelled: Vec<Task>,
    /// Some task that ended has dependents: they are to be looked at
    /// again ([`Db::resolve`]).
    pub checks: bool,
}

/// Connections per node: claims, commits, submissions, reads, heartbeats
/// and reaps run at once, each for a few milliseconds.
const POOL_SIZE: u32 = 8;
/// How long a call waits for a free connection before it is `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// A session idle inside a transaction this long is ended by the server,
/// so a node that stalls mid-transaction cannot hold its row locks (and
/// block reapers) for longer than that.
const IDLE_IN_TRANSACTION: &str = "5s";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The columns a task is read from, in a statement over `tasks t`.
macro_rules! task_columns {
    () => {
        "t.body, t.status, t.attempt, t.progress, t.output, t.error, t.worker, t.started_at, \
         t.finished_at, t.run_at"
    };
}

/// A CTE named `counted` adding the final statuses of `$rows` (a FROM item
/// with a `status` column; other statuses are left out) to
/// `finished_counts`, on this connection's shard.
/// Its rows are upserted in status order, so two statements never lock two
/// counters in opposite orders.
macro_rules! count_finished {
    ($rows:literal) => {
        concat!(
            "counted AS (INSERT INTO finished_counts (status, shard, n) SELECT status, \
             pg_backend_pid() % 16, count(*) FROM ",
            $rows,
            " WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
             GROUP BY status ORDER BY status \
             ON CONFLICT (status, shard) DO UPDATE SET n = finished_counts.n + excluded.n)"
        )
    };
}

/// A CTE named `checks` queueing a check of the dependents of each row of
/// `$rows` (a FROM item with `id`, `status` and `has_dependents`) that
/// ended while some task named it in `after`.
macro_rules! check_dependents {
    ($rows:literal) => {
        concat!(
            "checks AS (INSERT INTO dependency_checks (task) SELECT id FROM ",
            $rows,
            " WHERE has_dependents \
             AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
             ORDER BY id RETURNING task)"
        )
    };
}

/// A CTE named `verdicts`: for each task of `$tasks` (a FROM item with
/// `id`) that names others in `after`, whether all of them succeeded
/// (`met`; one no longer stored ended long ago, and successfully), and
/// the first that ended otherwise (`failed_dep`, `failed_status`).
macro_rules! verdicts {
    ($tasks:literal) => {
        concat!(
            "verdicts AS (
                 SELECT d.task AS id,
                        bool_and(dt.status IS NULL OR dt.status = 'succeeded') AS met,
                        (array_agg(d.dep ORDER BY d.n) FILTER (WHERE dt.status IN
                            ('failed', 'cancelled', 'timed_out')))[1] AS failed_dep,
                        (array_agg(dt.status ORDER BY d.n) FILTER (WHERE dt.status IN
                            ('failed', 'cancelled', 'timed_out')))[1] AS failed_status
                 FROM ",
            $tasks,
            " c JOIN task_deps d ON d.task = c.id LEFT JOIN tasks dt ON dt.id = d.dep
                 GROUP BY d.task
             )"
        )
    };
}

/// The error and end time a task `t` gets from its verdict `v` when a
/// task it names ended otherwise than succeeded (as on a single server).
macro_rules! failed_by_verdict {
    () => {
        "error = CASE WHEN v.failed_dep IS NULL THEN t.error
                      ELSE json_build_object('code', 'dependency_failed', 'message',
                          format('task %s ended %s, not succeeded', v.failed_dep, v.failed_status))
                 END,
         finished_at = CASE WHEN v.failed_dep IS NULL THEN t.finished_at
                            ELSE date_trunc('milliseconds', now()) END"
    };
}

// After the macros, which they use.
mod claim;
mod deps;
mod due;
mod lookup;
pub mod pause;
mod submit;
pub use deps::Resolved;
pub use due::Promoted;
pub use submit::{Outcome, Start, Stored, decides_in_database};

/// Handle to the cluster's database: a small pool, cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects and brings the schema up to date. Nodes starting together
    /// are safe: sqlx's migrator holds a PostgreSQL advisory lock (keyed on
    /// the database's name) from before it creates its bookkeeping table
    /// until all migrations ran, each in its own transaction with its
    /// bookkeeping row, so the others wait, then find them applied.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = url
            .parse::<PgConnectOptions>()?
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx already pings every connection as it goes back to the
            // pool (and drops it if broken); a second ping on the way out
            // would add a round trip to every call. A connection that died
            // idle (a server restart) fails one call as `Unavailable`.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Adds this node to the cluster, its heartbeat as of now.
    pub async fn register(&self, info: &NodeInfo) -> Result<()> {
        sqlx::query(
            "INSERT INTO nodes (id, addr, started_at, heartbeat) VALUES ($1, $2, $3, now())",
        )
        .bind(&info.id.0)
        .bind(&info.addr)
        .bind(millis(info.started_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Applies `node`'s writes in one statement, each only while its task
    /// is still `running` with owner `node` and the write's attempt. A
    /// batch may hold several writes of one task: the last one wins.
    ///
    /// A `Put` stores the snapshot's status, worker, progress, output,
    /// error and times (a final one clears the owner; a `scheduled` one, a
    /// retry waiting for its backoff, gives the task back with its new
    /// `run_at`); `Release` queues the task again as if it never started
    /// (attempt - 1); `Requeue` queues it again with its attempt counted. A
    /// task given back while a cancel of it is pending ends `cancelled`
    /// instead (see [`Committed`]).
    pub async fn commit(&self, node: &NodeId, writes: &[Fenced]) -> Result<Committed> {
        let mut seen = HashSet::new();
        let rows: Vec<WriteRow> = writes
            .iter()
            .rev()
            .map(WriteRow::of)
            .filter(|w| seen.insert(w.id))
            .collect();
        if rows.is_empty() {
            return Ok(Committed::default());
        }
        let result = sqlx::query(concat!(
            "WITH w AS (
                 SELECT * FROM json_to_recordset($2::json) AS w(
                     id uuid, attempt int, next_attempt int, status text, progress json,
                     output json, error json, worker text, started_at timestamptz,
                     finished_at timestamptz, run_at timestamptz)
             ),
             -- Each write's task looked up by its id (the lateral subquery
             -- with its lock is never flattened): joined the other way, over
             -- the index of owners, it would read every task this node runs
             -- for each commit, which is what a planner without statistics
             -- picks. Locked in id order.
             mine AS MATERIALIZED (
                 SELECT m.id, m.cancel_requested AND w.status IN ('queued', 'scheduled') AS cancel
                 FROM (SELECT * FROM w ORDER BY id) w
                 CROSS JOIN LATERAL (
                     SELECT t.id, t.cancel_requested FROM tasks t
                     WHERE t.id = w.id AND t.status = 'running' AND t.owner = $1
                       AND t.attempt = w.attempt
                     FOR UPDATE OF t
                 ) m
             ),
             written AS (
                 UPDATE tasks t
                 SET status = w.status, attempt = w.next_attempt,
                     owner = CASE WHEN w.status = 'running' THEN t.owner END,
                     worker = w.worker, progress = w.progress, output = w.output,
                     error = w.error, started_at = w.started_at, finished_at = w.finished_at,
                     run_at = CASE WHEN w.status = 'scheduled' THEN w.run_at ELSE t.run_at END
                 FROM w JOIN mine ON mine.id = w.id
                 WHERE t.id = w.id AND NOT mine.cancel
                 RETURNING t.id, t.status, t.has_dependents
             ),
             cancelled AS (
                 UPDATE tasks t
                 SET status = 'cancelled', owner = NULL, error = $3::json,
                     finished_at = date_trunc('milliseconds', now())
                 FROM mine WHERE t.id = mine.id AND mine.cancel
                 RETURNING t.id, t.has_dependents, ",
            task_columns!(),
            "),
             ended AS (
                 SELECT id, status, has_dependents FROM written
                 UNION ALL SELECT id, status, has_dependents FROM cancelled
             ),
             ",
            count_finished!("ended"),
            ",
             ",
            check_dependents!("ended"),
            "
             SELECT f.write, f.was_cancelled, f.checks, c.*
             FROM (
                 SELECT w.id AS write, c.id IS NOT NULL AS was_cancelled, false AS checks,
                        c.id AS cancelled_id
                 FROM w LEFT JOIN mine ON mine.id = w.id LEFT JOIN cancelled c ON c.id = w.id
                 WHERE mine.id IS NULL OR c.id IS NOT NULL
                 UNION ALL
                 (SELECT NULL, false, true, NULL FROM checks LIMIT 1)
             ) f LEFT JOIN cancelled c ON c.id = f.cancelled_id"
        ))
        .bind(&node.0)
        .bind(json_text(&rows)?)
        .bind(json_text(&cancelled_error())?)
        .fetch_all(&self.pool)
        .await?;
        let mut committed = Committed::default();
        for row in &result {
            if row.try_get("checks")? {
                committed.checks = true;
            } else if row.try_get("was_cancelled")? {
                committed.cancelled.push(task(row)?);
            } else {
                committed.fenced.push(TaskId(row.try_get("write")?));
            }
        }
        Ok(committed)
    }

    /// The task as stored, if there is one with this id.
    pub async fn get(&self, id: TaskId) -> Result<Option<Task>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks t WHERE t.id = $1"
        ))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(task).transpose()
    }

    /// Cancels a task: one not started yet (scheduled, waiting or queued)
    /// is `cancelled` at once (its dependents to be checked); a running one
    /// is flagged, and its owner is named so it can be told to stop it. The
    /// row is locked first, so a claim racing this either took the task
    /// before (it is running) or skips it (it is cancelled).
    pub async fn cancel(&self, id: TaskId) -> Result<CancelOutcome> {
        let mut tx = self.pool.begin().await?;
        let outcome = cancel_locked(&mut tx, id).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// `node`'s running tasks whose cancel is pending: how a node learns of
    /// a cancel whose signal it missed.
    pub async fn cancel_requests(&self, node: &NodeId) -> Result<Vec<TaskId>> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE owner = $1 AND status = 'running' AND cancel_requested",
        )
        .bind(&node.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(TaskId).collect())
    }

    /// Renews this node's lease and publishes its workers. `false` if the
    /// cluster declared it dead (its row is gone, its tasks were taken
    /// back): it must drop the tasks it runs.
    pub async fn heartbeat(&self, state: &NodeState) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE nodes SET heartbeat = now(), workers = $2, running = $3, latencies = $4
             WHERE id = $1",
        )
        .bind(&state.info.id.0)
        .bind(Json(&state.workers))
        .bind(i64::try_from(state.running).unwrap_or(i64::MAX))
        .bind(Json(&state.latencies))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes back the running tasks of every node silent for longer than
    /// `lease` (by the database's clock), and removes those nodes. Each task
    /// is `cancelled` if a cancel was pending, `failed` with `worker_lost`
    /// at its last attempt, else queued again with its attempt counted.
    /// A node another reaper is taking back, or one of whose claims is in
    /// flight, is skipped until the next call.
    pub async fn reap(&self, lease: Duration) -> Result<Vec<Reaped>> {
        let mut tx = self.pool.begin().await?;
        // The dead nodes are locked in a statement of their own: they can
        // claim nothing more (a claim holds its node row), and the next
        // statement's snapshot holds every claim they made.
        let dead: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM nodes WHERE heartbeat < now() - $1 * interval '1 millisecond'
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        let reaped = if dead.is_empty() {
            Vec::new()
        } else {
            take_back(&mut tx, &dead).await?
        };
        tx.commit().await?;
        Ok(reaped)
    }

    /// Every registered node, oldest first, as of its last heartbeat. A
    /// node that stopped heartbeating is listed until a reaper removes it
    /// (within a lease of its last heartbeat, as every node reaps).
    pub async fn nodes(&self) -> Result<Vec<NodeState>> {
        let rows = sqlx::query(
            "SELECT id, addr, started_at, workers, running, latencies FROM nodes
             ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeState {
                    info: NodeInfo {
                        id: NodeId(row.try_get("id")?),
                        addr: row.try_get("addr")?,
                        started_at: Timestamp(row.try_get("started_at")?),
                    },
                    workers: row.try_get::<Json<_>, _>("workers")?.0,
                    running: u64::try_from(row.try_get::<i64, _>("running")?).unwrap_or_default(),
                    latencies: row.try_get::<Json<_>, _>("latencies")?.0,
                })
            })
            .collect()
    }

    /// Removes this node from the cluster (graceful shutdown). Its tasks
    /// must have been given back: while it owns a running task the schema
    /// refuses (a foreign key), so none is ever left without an owner.
    pub async fn leave(&self, node: &NodeId) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(&node.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// [`Db::cancel`] inside its transaction.
async fn cancel_locked(conn: &mut PgConnection, id: TaskId) -> Result<CancelOutcome> {
    let row = sqlx::query(concat!(
        "SELECT t.owner, ",
        task_columns!(),
        " FROM tasks t WHERE t.id = $1 FOR UPDATE"
    ))
    .bind(id.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(CancelOutcome::NotFound);
    };
    let found = task(&row)?;
    Ok(match found.status {
        TaskStatus::Scheduled | TaskStatus::Waiting | TaskStatus::Queued => {
            let row = sqlx::query(concat!(
                "WITH c AS (
                     UPDATE tasks t
                     SET status = 'cancelled', error = $2::json,
                         finished_at = date_trunc('milliseconds', now())
                     WHERE t.id = $1
                     RETURNING t.id, t.has_dependents, ",
                task_columns!(),
                "),
                 ",
                count_finished!("c"),
                ",
                 ",
                check_dependents!("c"),
                " SELECT * FROM c"
            ))
            .bind(id.0)
            .bind(json_text(&cancelled_error())?)
            .fetch_one(&mut *conn)
            .await?;
            CancelOutcome::Cancelled(task(&row)?)
        }
        TaskStatus::Running => {
            sqlx::query("UPDATE tasks SET cancel_requested = true WHERE id = $1")
                .bind(id.0)
                .execute(&mut *conn)
                .await?;
            CancelOutcome::Running {
                owner: NodeId(row.try_get("owner")?),
                task: found,
            }
        }
        _ => CancelOutcome::AlreadyFinished(found),
    })
}

/// [`Db::reap`]'s work once the `dead` nodes are locked: their running
/// tasks taken back, their rows deleted.
async fn take_back(conn: &mut PgConnection, dead: &[String]) -> Result<Vec<Reaped>> {
    let rows = sqlx::query(concat!(
        "WITH lost AS MATERIALIZED (
             SELECT t.id, t.owner, t.cancel_requested AS cancel,
                    t.attempt >= t.max_attempts AS last
             FROM tasks t
             WHERE t.owner = ANY($1)
             ORDER BY t.id
             FOR UPDATE
         ),
         reaped AS (
             UPDATE tasks t
             SET status = CASE WHEN l.cancel THEN 'cancelled'
                               WHEN l.last THEN 'failed' ELSE 'queued' END,
                 error = CASE WHEN l.cancel THEN $2::json
                              WHEN l.last THEN json_build_object('code', $3::text,
                                  'message', format('node %s was lost on attempt %s',
                                                    l.owner, t.attempt)) END,
                 finished_at = CASE WHEN l.cancel OR l.last
                                    THEN date_trunc('milliseconds', now()) END,
                 owner = NULL,
                 worker = CASE WHEN l.cancel OR l.last THEN t.worker END,
                 started_at = CASE WHEN l.cancel OR l.last THEN t.started_at END,
                 progress = CASE WHEN l.cancel OR l.last THEN t.progress END
             FROM lost l WHERE t.id = l.id
             RETURNING l.owner AS from_node, t.id, t.has_dependents, ",
        task_columns!(),
        "),
         ",
        count_finished!("reaped"),
        ",
         ",
        check_dependents!("reaped"),
        ",
         gone AS (DELETE FROM nodes WHERE id = ANY($1))
         SELECT * FROM reaped"
    ))
    .bind(dead)
    .bind(json_text(&cancelled_error())?)
    .bind(ErrorCode::WorkerLost.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Reaped {
                task: task(row)?,
                from: NodeId(row.try_get("from_node")?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
