//! Delays (v1.1): `scheduled` tasks whose `run_at` came become `queued`
//! (or, with dependencies, `waiting` or `failed` as those stand). Any node
//! may promote them; rows another node is promoting are skipped.

use super::*;

/// What one promotion did.
#[derive(Debug, Default)]
pub struct Promoted {
    /// The tasks that came due, as they are now: `queued`; or, if they
    /// name others in `after`, `waiting` for those (and checked again, see
    /// [`Db::resolve`]) or `failed` (one of those ended otherwise).
    pub tasks: Vec<Task>,
    /// When the next scheduled task is due (earliest `run_at` left), if
    /// any. At or before now when more were due than one promotion takes.
    pub next: Option<Timestamp>,
}

impl Db {
    /// Promotes at most `limit` scheduled tasks whose `run_at` came, by
    /// the database's clock, earliest first; and tells when the next is
    /// due. One that must wait (this statement's view of what it names may
    /// be behind) is checked again by [`Db::resolve`].
    pub async fn promote(&self, limit: u32) -> Result<Promoted> {
        let rows = sqlx::query(concat!(
            "WITH due AS MATERIALIZED (
                 SELECT id FROM tasks
                 WHERE status = 'scheduled' AND run_at <= now()
                 ORDER BY run_at, id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             ),
             ",
            verdicts!("due"),
            ",
             moved AS (
                 UPDATE tasks t
                 SET status = CASE WHEN v.failed_dep IS NOT NULL THEN 'failed'
                                   WHEN NOT v.met THEN 'waiting' ELSE 'queued' END,
                     ",
            failed_by_verdict!(),
            "
                 FROM due LEFT JOIN verdicts v ON v.id = due.id
                 WHERE t.id = due.id
                 RETURNING t.id, t.has_dependents, ",
            task_columns!(),
            "),
             ",
            count_finished!("moved"),
            ",
             ",
            check_dependents!("moved"),
            ",
             recheck AS (
                 INSERT INTO dependency_checks (task)
                 SELECT id FROM moved WHERE status = 'waiting' ORDER BY id
             )
             SELECT * FROM moved"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut tasks = rows.iter().map(task).collect::<Result<Vec<_>>>()?;
        tasks.sort_by_key(|t| (t.run_at, t.id));
        // A statement of its own: it sees the promoted tasks queued.
        let next: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT min(run_at) FROM tasks WHERE status = 'scheduled'")
                .fetch_one(&self.pool)
                .await?;
        Ok(Promoted {
            tasks,
            next: next.map(Timestamp),
        })
    }
}
