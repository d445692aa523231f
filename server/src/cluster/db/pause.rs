//! What `stats` reads from the cluster's database: the counts by status
//! and (v1.1 `stats.kinds`) by kind; and paused kinds (v1.1).
//!
//! A pause and the claims are ordered by one advisory lock: every claim
//! holds it shared for its whole transaction, and reads `paused_kinds` in
//! a statement that starts after it took it; a pause or resume takes it
//! exclusively, so it waits for the claims in flight and every claim after
//! it sees it. When [`Db::set_paused`] returns, no node claims a task of a
//! paused kind any more: tasks claimed before are `running`, and finish.

use std::collections::BTreeMap;

use super::*;

/// The advisory lock of pauses (two keys: a space apart from the
/// one-key locks of concurrency keys).
pub(super) const PAUSE_LOCK: (i32, i32) = (0x7457, 1);

/// A kind's line of the cluster's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindCount {
    pub paused: bool,
    pub queued: u64,
    pub running: u64,
}

impl Db {
    /// Counts of tasks by status across the cluster. Finished ones come
    /// from `finished_counts` (kept by the statements that finish tasks, so
    /// 10^6 finished rows cost nothing here); the others are counted over
    /// the partial indexes that hold only them.
    pub async fn counts(&self) -> Result<Counts> {
        let rows = sqlx::query(
            "SELECT 'scheduled' AS status, count(*) AS n FROM tasks WHERE status = 'scheduled'
             UNION ALL
             SELECT 'waiting', count(*) FROM tasks WHERE status = 'waiting'
             UNION ALL
             SELECT 'queued', count(*) FROM tasks WHERE status = 'queued'
             UNION ALL
             -- The owner is set exactly while running (a check), and indexed
             -- so. The status is named too: without statistics (a database
             -- that autovacuum does not analyze), the planner takes `IS NOT
             -- NULL` for nearly every row and scans the whole table.
             SELECT 'running', count(*) FROM tasks
             WHERE owner IS NOT NULL AND status = 'running'
             UNION ALL
             SELECT status, sum(n)::bigint FROM finished_counts GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut counts = Counts::default();
        for row in &rows {
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default();
            let slot = match status(row.try_get("status")?)? {
                TaskStatus::Scheduled => &mut counts.scheduled,
                TaskStatus::Waiting => &mut counts.waiting,
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

    /// Pauses (`paused`) or resumes `kind` for every node, after the
    /// claims in flight ended.
    pub async fn set_paused(&self, kind: &str, paused: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(PAUSE_LOCK.0)
            .bind(PAUSE_LOCK.1)
            .execute(&mut *tx)
            .await?;
        let sql = match paused {
            true => "INSERT INTO paused_kinds (kind) VALUES ($1) ON CONFLICT (kind) DO NOTHING",
            false => "DELETE FROM paused_kinds WHERE kind = $1",
        };
        sqlx::query(sql).bind(kind).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The paused kinds, by name.
    pub async fn paused_kinds(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT kind FROM paused_kinds ORDER BY kind")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Per kind, cluster-wide: paused or not, queued and running tasks
    /// (only kinds with some, or paused).
    pub async fn kind_counts(&self) -> Result<BTreeMap<String, KindCount>> {
        let rows = sqlx::query(
            "SELECT kind, 'queued' AS what, count(*) AS n FROM tasks
             WHERE status = 'queued' GROUP BY kind
             UNION ALL
             SELECT kind, 'running', count(*) FROM tasks
             WHERE owner IS NOT NULL AND status = 'running' GROUP BY kind
             UNION ALL
             SELECT kind, 'paused', 0 FROM paused_kinds",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut kinds: BTreeMap<String, KindCount> = BTreeMap::new();
        for row in &rows {
            let line = kinds.entry(row.try_get("kind")?).or_default();
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default();
            match row.try_get::<&str, _>("what")? {
                "queued" => line.queued = n,
                "running" => line.running = n,
                _ => line.paused = true,
            }
        }
        Ok(kinds)
    }
}
