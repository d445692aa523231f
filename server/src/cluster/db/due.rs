//! Delays (v1.1): `scheduled` tasks whose `run_at` came become `queued`.
//! Any node may promote them; rows another node is promoting are skipped.

use super::*;

/// What one promotion did.
#[derive(Debug, Default)]
pub struct Promoted {
    /// The tasks that came due, as they are now (`queued`).
    pub tasks: Vec<Task>,
    /// When the next scheduled task is due (earliest `run_at` left), if
    /// any. At or before now when more were due than one promotion takes.
    pub next: Option<Timestamp>,
}

impl Db {
    /// Queues at most `limit` scheduled tasks whose `run_at` came, by the
    /// database's clock, earliest first; and tells when the next is due.
    pub async fn promote(&self, limit: u32) -> Result<Promoted> {
        let rows = sqlx::query(concat!(
            "WITH due AS MATERIALIZED (
                 SELECT id FROM tasks
                 WHERE status = 'scheduled' AND run_at <= now()
                 ORDER BY run_at, id
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE tasks t SET status = 'queued'
             FROM due WHERE t.id = due.id
             RETURNING ",
            task_columns!()
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
