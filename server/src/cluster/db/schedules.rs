//! Recurring schedules in the cluster's database (see
//! [`crate::schedules`]): the database holds them, every node's actor is
//! a cache of it, and a firing is claimed by a compare-and-set on
//! `next_run_at`, so one node only fires it.

use app::{Schedule, TaskId, Timestamp};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::rows::millis;
use super::{Db, Result};

/// The columns a schedule is read from.
macro_rules! columns {
    () => {
        "name, cron, timezone, task, paused, next_run_at, last_run_at, last_task_id"
    };
}

impl Db {
    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM schedules ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(schedule).collect::<Result<_, _>>()?)
    }

    /// Creates or replaces a schedule; a replaced one keeps the history
    /// the database holds. Answers the schedule as stored.
    pub async fn put_schedule(&self, s: &Schedule) -> Result<Schedule> {
        let row = sqlx::query(concat!(
            "INSERT INTO schedules (name, cron, timezone, task, paused, next_run_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET
                 cron = excluded.cron, timezone = excluded.timezone, task = excluded.task,
                 paused = excluded.paused, next_run_at = excluded.next_run_at
             RETURNING ",
            columns!()
        ))
        .bind(&s.name)
        .bind(&s.cron)
        .bind(&s.timezone)
        .bind(Json(&s.task))
        .bind(s.paused)
        .bind(s.next_run_at.map(millis))
        .fetch_one(&self.pool)
        .await?;
        Ok(schedule(&row)?)
    }

    /// Deletes a schedule; whether there was one.
    pub async fn delete_schedule(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM schedules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims the firing of `name` due at `expected`: moves `next_run_at`
    /// on to `next` if it still is `expected` and the schedule is not
    /// paused. `false`: another node claimed it, or the schedule changed.
    pub async fn claim_firing(
        &self,
        name: &str,
        expected: Timestamp,
        next: Option<Timestamp>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE schedules SET next_run_at = $3
             WHERE name = $1 AND next_run_at = $2 AND NOT paused",
        )
        .bind(name)
        .bind(millis(expected))
        .bind(next.map(millis))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a claimed firing's time and task (unless a later one is
    /// recorded already).
    pub async fn record_firing(&self, name: &str, at: Timestamp, task: TaskId) -> Result<()> {
        sqlx::query(
            "UPDATE schedules SET last_run_at = $2, last_task_id = $3
             WHERE name = $1 AND (last_run_at IS NULL OR last_run_at <= $2)",
        )
        .bind(name)
        .bind(millis(at))
        .bind(task.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn schedule(row: &PgRow) -> Result<Schedule, sqlx::Error> {
    let time = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
        Ok(row
            .try_get::<Option<DateTime<Utc>>, _>(column)?
            .map(Timestamp))
    };
    Ok(Schedule {
        name: row.try_get("name")?,
        cron: row.try_get("cron")?,
        timezone: row.try_get("timezone")?,
        task: row.try_get::<Json<Value>, _>("task")?.0,
        paused: row.try_get("paused")?,
        next_run_at: time("next_run_at")?,
        last_run_at: time("last_run_at")?,
        last_task_id: row
            .try_get::<Option<uuid::Uuid>, _>("last_task_id")?
            .map(TaskId::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testdb::{fresh_database, server_url};
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        Timestamp(s.parse().unwrap())
    }

    fn nightly(next: &str) -> Schedule {
        Schedule {
            name: "nightly".into(),
            cron: "0 1 * * *".into(),
            timezone: "Europe/Paris".into(),
            task: json!({"kind": "echo", "input": {"z": 1, "a": 2}}),
            paused: false,
            next_run_at: Some(at(next)),
            last_run_at: None,
            last_task_id: None,
        }
    }

    #[tokio::test]
    async fn one_claim_per_firing_and_the_history_survives_a_replace() {
        let test = fresh_database(&server_url())
            .await
            .expect("a test database (is PostgreSQL running?)");
        let db = Db::connect(&test.url).await.expect("connect");
        let s = nightly("2026-12-05T00:00:00Z");
        assert_eq!(db.put_schedule(&s).await.unwrap(), s);
        assert_eq!(db.schedules().await.unwrap(), vec![s.clone()]);

        // Two nodes claim the same firing: one wins.
        let (due, next) = (at("2026-12-05T00:00:00Z"), Some(at("2026-12-06T00:00:00Z")));
        assert!(db.claim_firing("nightly", due, next).await.unwrap());
        assert!(!db.claim_firing("nightly", due, next).await.unwrap());
        let id = TaskId::from(uuid::Uuid::now_v7());
        db.record_firing("nightly", due, id).await.unwrap();
        // An older firing recorded late does not go back.
        let older = TaskId::from(uuid::Uuid::now_v7());
        db.record_firing("nightly", at("2026-12-04T00:00:00Z"), older)
            .await
            .unwrap();
        let stored = db.schedules().await.unwrap().remove(0);
        assert_eq!(
            (stored.next_run_at, stored.last_run_at, stored.last_task_id),
            (next, Some(due), Some(id))
        );

        // A replace keeps the history; a paused schedule is not claimed.
        let mut replaced = nightly("2026-12-07T00:00:00Z");
        replaced.paused = true;
        let answered = db.put_schedule(&replaced).await.unwrap();
        assert_eq!(
            (answered.last_run_at, answered.last_task_id),
            (Some(due), Some(id))
        );
        assert!(answered.paused);
        let due = at("2026-12-07T00:00:00Z");
        assert!(!db.claim_firing("nightly", due, None).await.unwrap());

        assert!(db.delete_schedule("nightly").await.unwrap());
        assert!(!db.delete_schedule("nightly").await.unwrap());
        assert!(db.schedules().await.unwrap().is_empty());
        drop(db);
        test.drop().await.expect("drop the test database");
    }
}
