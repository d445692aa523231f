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

use app::{ErrorBody, ErrorCode, Progress, Task, TaskId, TaskStatus, Timestamp, WorkerId};
use chrono::{DateTime, SubsecRound as _, Utc};
use serde::{Deserialize as _, Serialize};
use serde_json::Value;
use sqlx::Row as _;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;

use super::{CancelOutcome, Claimed, Counts, Fenced, NodeId, NodeInfo, NodeState, Reaped, Want};

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
         t.finished_at"
    };
}

/// A CTE named `counted` adding the final statuses of `$rows` (a FROM item
/// with a `status` column) to `finished_counts`, on this connection's shard.
/// Its rows are upserted in status order, so two statements never lock two
/// counters in opposite orders.
macro_rules! count_finished {
    ($rows:literal) => {
        concat!(
            "counted AS (INSERT INTO finished_counts (status, shard, n) SELECT status, \
             pg_backend_pid() % 16, count(*) FROM ",
            $rows,
            " WHERE status NOT IN ('queued', 'running') GROUP BY status ORDER BY status \
             ON CONFLICT (status, shard) DO UPDATE SET n = finished_counts.n + excluded.n)"
        )
    };
}

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

    /// Stores new tasks as `queued`, in one statement; their `seq` follows
    /// the order of `tasks`.
    pub async fn insert(&self, tasks: &[Task]) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO tasks (id, kind, priority, max_attempts, status, body)
             SELECT (b->>'id')::uuid, b->>'kind', (b->>'priority')::int,
                    (b->>'max_attempts')::int, 'queued', b
             FROM json_array_elements($1::json) WITH ORDINALITY AS e(b, n)
             ORDER BY n",
        )
        .bind(json_text(tasks)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims at most `limit` queued tasks for `node`, at most `slots` of
    /// each wanted kind (one `Want` per kind), highest priority first, then
    /// oldest. They come back `running` (owner `node`, attempt counted,
    /// `started_at` now, no worker yet), in that order.
    ///
    /// Rows another claimer has locked are skipped, so two nodes claiming
    /// at once never take the same task. Each kind's candidates are locked
    /// before the best `limit` of all kinds are kept: the others stay
    /// queued, only skipped by other claimers for these few milliseconds.
    /// A node the cluster declared dead (its row is gone) claims nothing.
    pub async fn claim(&self, node: &NodeId, wants: &[Want], limit: u32) -> Result<Vec<Claimed>> {
        if limit == 0 || wants.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<&str> = wants.iter().map(|w| w.kind.as_str()).collect();
        let slots: Vec<i64> = wants.iter().map(|w| i64::from(w.slots)).collect();
        let rows = sqlx::query(concat!(
            // Holding the node row (key share) keeps a reaper from deleting
            // it, or makes this wait for the reaper and find it gone.
            "WITH node AS (SELECT id FROM nodes WHERE id = $1 FOR KEY SHARE),
             picked AS (
                 SELECT c.id
                 FROM node, unnest($2::text[], $3::bigint[]) AS w(kind, slots)
                 CROSS JOIN LATERAL (
                     SELECT q.id, q.priority, q.seq FROM tasks q
                     WHERE q.status = 'queued' AND q.kind = w.kind
                     ORDER BY q.priority DESC, q.seq
                     LIMIT w.slots
                     FOR UPDATE SKIP LOCKED
                 ) c
                 ORDER BY c.priority DESC, c.seq
                 LIMIT $4
             )
             UPDATE tasks t
             SET status = 'running', owner = $1, attempt = t.attempt + 1,
                 started_at = date_trunc('milliseconds', now()), worker = NULL
             FROM picked WHERE t.id = picked.id
             RETURNING t.seq, ",
            task_columns!()
        ))
        .bind(&node.0)
        .bind(&kinds)
        .bind(&slots)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    task: task(row)?,
                    seq: row.try_get("seq")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|c| (std::cmp::Reverse(c.task.priority), c.seq));
        Ok(claimed)
    }

    /// Applies `node`'s writes in one statement, each only while its task
    /// is still `running` with owner `node` and the write's attempt. A
    /// batch may hold several writes of one task: the last one wins.
    ///
    /// A `Put` stores the snapshot's status, worker, progress, output,
    /// error and times (a final one clears the owner); `Release` queues the
    /// task again as if it never started (attempt - 1); `Requeue` queues it
    /// again with its attempt counted. A task given back while a cancel of
    /// it is pending ends `cancelled` instead (see [`Committed`]).
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
                     finished_at timestamptz)
             ),
             mine AS MATERIALIZED (
                 SELECT t.id, t.cancel_requested AND w.status = 'queued' AS cancel
                 FROM tasks t JOIN w ON w.id = t.id
                 WHERE t.status = 'running' AND t.owner = $1 AND t.attempt = w.attempt
                 ORDER BY t.id
                 FOR UPDATE OF t
             ),
             written AS (
                 UPDATE tasks t
                 SET status = w.status, attempt = w.next_attempt,
                     owner = CASE WHEN w.status = 'running' THEN t.owner END,
                     worker = w.worker, progress = w.progress, output = w.output,
                     error = w.error, started_at = w.started_at, finished_at = w.finished_at
                 FROM w JOIN mine ON mine.id = w.id
                 WHERE t.id = w.id AND NOT mine.cancel
                 RETURNING t.status
             ),
             cancelled AS (
                 UPDATE tasks t
                 SET status = 'cancelled', owner = NULL, error = $3::json,
                     finished_at = date_trunc('milliseconds', now())
                 FROM mine WHERE t.id = mine.id AND mine.cancel
                 RETURNING t.id, ",
            task_columns!(),
            "),
             ",
            count_finished!(
                "(SELECT status FROM written UNION ALL SELECT status FROM cancelled) f"
            ),
            "
             SELECT w.id AS write, c.id IS NOT NULL AS was_cancelled, c.*
             FROM w LEFT JOIN mine ON mine.id = w.id LEFT JOIN cancelled c ON c.id = w.id
             WHERE mine.id IS NULL OR c.id IS NOT NULL"
        ))
        .bind(&node.0)
        .bind(json_text(&rows)?)
        .bind(json_text(&cancelled_error())?)
        .fetch_all(&self.pool)
        .await?;
        let mut committed = Committed::default();
        for row in &result {
            if row.try_get("was_cancelled")? {
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

    /// Cancels a task: a queued one is `cancelled` at once; a running one
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
            "UPDATE nodes SET heartbeat = now(), workers = $2, running = $3 WHERE id = $1",
        )
        .bind(&state.info.id.0)
        .bind(Json(&state.workers))
        .bind(i64::try_from(state.running).unwrap_or(i64::MAX))
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

    /// Counts of tasks by status across the cluster. Finished ones come
    /// from `finished_counts` (kept by the statements that finish tasks, so
    /// 10^6 finished rows cost nothing here); queued and running ones are
    /// counted over the partial indexes that hold only them.
    pub async fn counts(&self) -> Result<Counts> {
        let rows = sqlx::query(
            "SELECT 'queued' AS status, count(*) AS n FROM tasks WHERE status = 'queued'
             UNION ALL
             -- The owner is set exactly while running (a check), and indexed so.
             SELECT 'running', count(*) FROM tasks WHERE owner IS NOT NULL
             UNION ALL
             SELECT status, sum(n)::bigint FROM finished_counts GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = Counts::default();
        for row in &rows {
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default();
            let slot = match status(row.try_get("status")?)? {
                TaskStatus::Queued => &mut counts.queued,
                TaskStatus::Running => &mut counts.running,
                TaskStatus::Succeeded => &mut counts.succeeded,
                TaskStatus::Failed => &mut counts.failed,
                TaskStatus::Cancelled => &mut counts.cancelled,
                TaskStatus::TimedOut => &mut counts.timed_out,
            };
            *slot = n;
        }
        Ok(counts)
    }

    /// Every registered node, oldest first, as of its last heartbeat. A
    /// node that stopped heartbeating is listed until a reaper removes it
    /// (within a lease of its last heartbeat, as every node reaps).
    pub async fn nodes(&self) -> Result<Vec<NodeState>> {
        let rows = sqlx::query(
            "SELECT id, addr, started_at, workers, running FROM nodes ORDER BY started_at, id",
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
        TaskStatus::Queued => {
            let row = sqlx::query(concat!(
                "WITH c AS (
                     UPDATE tasks t
                     SET status = 'cancelled', error = $2::json,
                         finished_at = date_trunc('milliseconds', now())
                     WHERE t.id = $1
                     RETURNING ",
                task_columns!(),
                "),
                 ",
                count_finished!("c"),
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
             RETURNING l.owner AS from_node, ",
        task_columns!(),
        "),
         ",
        count_finished!("reaped"),
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

/// One write of a commit as `json_to_recordset` reads it: the fence
/// (`attempt`) and the values the write sets.
#[derive(Serialize)]
struct WriteRow<'a> {
    id: TaskId,
    attempt: u32,
    next_attempt: u32,
    status: TaskStatus,
    progress: Option<&'a Progress>,
    output: Option<&'a Value>,
    error: Option<&'a ErrorBody>,
    worker: Option<&'a WorkerId>,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
}

impl<'a> WriteRow<'a> {
    fn of(write: &'a Fenced) -> Self {
        match write {
            Fenced::Put(task) => Self {
                id: task.id,
                attempt: task.attempt,
                next_attempt: task.attempt,
                status: task.status,
                progress: task.progress.as_ref(),
                output: task.output.as_ref(),
                error: task.error.as_ref(),
                worker: task.worker.as_ref(),
                started_at: task.started_at,
                finished_at: task.finished_at,
            },
            Fenced::Release { id, attempt } => {
                Self::queued(*id, *attempt, attempt.saturating_sub(1))
            }
            Fenced::Requeue { id, attempt } => Self::queued(*id, *attempt, *attempt),
        }
    }

    /// Back in the queue, with nothing of the attempt it was in.
    fn queued(id: TaskId, attempt: u32, next_attempt: u32) -> Self {
        Self {
            id,
            attempt,
            next_attempt,
            status: TaskStatus::Queued,
            progress: None,
            output: None,
            error: None,
            worker: None,
            started_at: None,
            finished_at: None,
        }
    }
}

/// `value` as JSON text, bound as `$n::json`: a `jsonb` parameter would
/// lose the order of its keys.
fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(DbError::Encode)
}

fn cancelled_error() -> ErrorBody {
    ErrorBody::new(ErrorCode::Cancelled, "cancelled by request")
}

/// A time as the database keeps it: to the millisecond, as on the wire.
fn millis(at: Timestamp) -> DateTime<Utc> {
    at.0.trunc_subsecs(3)
}

fn status(name: &str) -> Result<TaskStatus, sqlx::Error> {
    use serde::de::{IntoDeserializer as _, value};
    let name: value::StrDeserializer<'_, value::Error> = name.into_deserializer();
    TaskStatus::deserialize(name).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// Reads a task from a row holding [`task_columns!`].
fn task(row: &PgRow) -> Result<Task> {
    let Json(mut task) = row.try_get::<Json<Task>, _>("body")?;
    task.status = status(row.try_get("status")?)?;
    task.attempt = u32::try_from(row.try_get::<i32, _>("attempt")?)
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    task.progress = row.try_get::<Option<Json<_>>, _>("progress")?.map(|j| j.0);
    task.output = row.try_get::<Option<Json<_>>, _>("output")?.map(|j| j.0);
    task.error = row.try_get::<Option<Json<_>>, _>("error")?.map(|j| j.0);
    task.worker = row
        .try_get::<Option<String>, _>("worker")?
        .map(WorkerId::from);
    task.started_at = row
        .try_get::<Option<DateTime<Utc>>, _>("started_at")?
        .map(Timestamp);
    task.finished_at = row
        .try_get::<Option<DateTime<Utc>>, _>("finished_at")?
        .map(Timestamp);
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testdb::{TestDatabase, fresh_database, server_url};
    use app::TaskSpec;
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
        on_worker.progress = Some(Progress {
            done: 1,
            total: 2,
            message: Some("half".into()),
        });
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
        finished.output = Some(json!({"ok": true}));
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
        t5_done.error = Some(ErrorBody::new(ErrorCode::TaskFailed, "boom"));
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
        let attempts: Vec<(TaskId, u32)> =
            again.iter().map(|c| (c.task.id, c.task.attempt)).collect();
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
        assert_eq!(cancelled.error, Some(cancelled_error()));
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
            failed.error,
            Some(ErrorBody::new(
                ErrorCode::WorkerLost,
                "node a was lost on attempt 1"
            ))
        );
        assert!(failed.finished_at.is_some());
        let cancelled = by_id(to_cancel.id);
        assert_eq!(
            (cancelled.status, cancelled.error.clone()),
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
            queued: 3,
            running: 1,
            succeeded: 2,
            failed: 1,
            cancelled: 2,
            timed_out: 1,
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
        };
        assert!(db.heartbeat(&state).await.unwrap());
        let nodes = db.nodes().await.unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].info.id, older.id);
        assert_eq!(nodes[0].workers, state.workers);
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
}
