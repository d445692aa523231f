//! Claims: queued tasks taken into a node's free slots, and v1.1
//! concurrency keys (a key's tasks never run more than their limit at
//! once, cluster-wide).
//!
//! A claim is one transaction that holds the pause lock shared (so a
//! paused kind is never claimed once its pause returned, see `pause`). A
//! task without a key is claimed by one statement. One with a key is only
//! picked by it: it is claimed by a later statement that first takes the
//! key's advisory lock, so claims of one key follow each other, each
//! counting the key's running tasks after the one before committed. A
//! key's running tasks are counted from the tasks themselves, so every
//! way out of `running` frees its place without keeping a counter.
//!
//! A claim still walks past the queued tasks of a capped key (unlike a
//! single server, which parks them aside): 20 000 queued under one capped
//! key ahead of the rest cost each claim some 20 ms of PostgreSQL's time.

use super::*;

impl Db {
    /// Claims at most `limit` queued tasks for `node`, at most `slots` of
    /// each wanted kind (one `Want` per kind), highest priority first, then
    /// oldest. They come back `running` (owner `node`, attempt counted,
    /// `started_at` now, no worker yet), in that order.
    ///
    /// Rows another claimer has locked are skipped, so two nodes claiming
    /// at once never take the same task. Each kind's candidates are locked
    /// before the best `limit` of all kinds are kept: the others stay
    /// queued, only skipped by other claimers for these few milliseconds.
    /// A task whose concurrency key already has its limit running is
    /// passed over (it holds back no other task); see `claim_keyed` for
    /// the others. A node the cluster declared dead (its row is gone)
    /// claims nothing.
    pub async fn claim(&self, node: &NodeId, wants: &[Want], limit: u32) -> Result<Vec<Claimed>> {
        if limit == 0 || wants.is_empty() {
            return Ok(Vec::new());
        }
        let kinds: Vec<&str> = wants.iter().map(|w| w.kind.as_str()).collect();
        let slots: Vec<i64> = wants.iter().map(|w| i64::from(w.slots)).collect();
        // Held shared until the claim commits: a pause waits for it, and
        // the statement below sees every pause made before (v1.1, see
        // `pause`).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
            .bind(pause::PAUSE_LOCK.0)
            .bind(pause::PAUSE_LOCK.1)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(concat!(
            // Holding the node row (key share) keeps a reaper from deleting
            // it, or makes this wait for the reaper and find it gone.
            "WITH node AS (SELECT id FROM nodes WHERE id = $1 FOR KEY SHARE),
             picked AS MATERIALIZED (
                 SELECT c.id, c.keyed
                 FROM node, unnest($2::text[], $3::bigint[]) AS w(kind, slots)
                 CROSS JOIN LATERAL (
                     SELECT q.id, q.priority, q.seq, q.concurrency_key IS NOT NULL AS keyed
                     FROM tasks q
                     WHERE q.status = 'queued' AND q.kind = w.kind
                       AND NOT EXISTS (SELECT 1 FROM paused_kinds p WHERE p.kind = w.kind)
                       -- Counted for a keyed candidate only, over the
                       -- partial index of running keyed tasks.
                       AND (q.concurrency_key IS NULL OR (
                           SELECT count(*) FROM tasks r
                           WHERE r.concurrency_key = q.concurrency_key AND r.owner IS NOT NULL
                       ) < q.concurrency_limit)
                     ORDER BY q.priority DESC, q.seq
                     LIMIT w.slots
                     FOR UPDATE SKIP LOCKED
                 ) c
                 ORDER BY c.priority DESC, c.seq
                 LIMIT $4
             ),
             claimed AS (
                 UPDATE tasks t
                 SET status = 'running', owner = $1, attempt = t.attempt + 1,
                     started_at = date_trunc('milliseconds', now()), worker = NULL
                 FROM picked WHERE t.id = picked.id AND NOT picked.keyed
                 RETURNING t.id, t.seq, ",
            task_columns!(),
            ")
             SELECT p.id AS picked, p.keyed, c.* FROM picked p LEFT JOIN claimed c ON c.id = p.id"
        ))
        .bind(&node.0)
        .bind(&kinds)
        .bind(&slots)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut keyed = Vec::new();
        for row in &rows {
            if row.try_get("keyed")? {
                keyed.push(TaskId(row.try_get("picked")?));
            } else {
                claimed.push(Claimed {
                    task: task(row)?,
                    seq: row.try_get("seq")?,
                });
            }
        }
        if !keyed.is_empty() {
            claimed.extend(claim_keyed(&mut tx, node, &keyed).await?);
        }
        tx.commit().await?;
        claimed.sort_by_key(|c| (std::cmp::Reverse(c.task.priority), c.seq));
        Ok(claimed)
    }
}

/// Claims for `node` those of the picked tasks `ids` (all with a
/// concurrency key) that their keys' limits leave room for, best first
/// within each key. Takes the keys' advisory locks first (in one order,
/// so two claimers never wait for each other's), then counts each key's
/// running tasks in a statement of its own: its snapshot holds every
/// claim of those keys made before.
async fn claim_keyed(
    conn: &mut PgConnection,
    node: &NodeId,
    ids: &[TaskId],
) -> Result<Vec<Claimed>> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM (
             SELECT DISTINCT hashtextextended(concurrency_key, 0) AS h
             FROM tasks WHERE id = ANY($1) AND concurrency_key IS NOT NULL
             ORDER BY h
         ) keys",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query(concat!(
        "WITH node AS (SELECT id FROM nodes WHERE id = $1 FOR KEY SHARE),
         candidates AS MATERIALIZED (
             SELECT q.id, q.priority, q.seq, q.concurrency_key AS key,
                    q.concurrency_limit AS lim
             FROM node, tasks q
             WHERE q.id = ANY($2) AND q.status = 'queued'
             ORDER BY q.id
             FOR UPDATE OF q SKIP LOCKED
         ),
         ranked AS (
             SELECT c.id, c.lim,
                    row_number() OVER (PARTITION BY c.key ORDER BY c.priority DESC, c.seq) AS n,
                    (SELECT count(*) FROM tasks r
                     WHERE r.concurrency_key = c.key AND r.owner IS NOT NULL) AS running
             FROM candidates c
         )
         UPDATE tasks t
         SET status = 'running', owner = $1, attempt = t.attempt + 1,
             started_at = date_trunc('milliseconds', now()), worker = NULL
         FROM ranked WHERE t.id = ranked.id AND ranked.running + ranked.n <= ranked.lim
         RETURNING t.seq, ",
        task_columns!()
    ))
    .bind(&node.0)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                task: task(row)?,
                seq: row.try_get("seq")?,
            })
        })
        .collect()
}
