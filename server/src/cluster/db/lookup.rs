//! Lookups (v1.1): pages of `list` over every task of the cluster, newest
//! first, and a task's attempts. Each reads committed rows only; migration
//! 0007 has the indexes that serve every filter in `seq` order, and the
//! trigger that records attempts.

use app::{Attempt, AttemptOutcome, Attempts, Cursor, KeyMatch, ListPage, ListQuery, WorkerId};
use sqlx::Arguments as _;
use sqlx::postgres::PgArguments;

use super::*;
use crate::lookup::attempts_of;

impl Db {
    /// One page of `list`: the newest tasks before its cursor that pass
    /// its filters, and the cursor of the next page.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage> {
        let (sql, args) = statement(q).map_err(|e| DbError::Query(sqlx::Error::Encode(e)))?;
        // Audited: the text is made of fixed clauses only; every value
        // the client gave is a bound argument.
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(&self.pool)
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            found.push((row.try_get::<i64, _>("seq")?, task(row)?));
        }
        let next = (found.len() > q.limit as usize).then(|| {
            found.pop();
            found
                .last()
                .map(|&(seq, _)| Cursor(u64::try_from(seq).unwrap_or_default()))
        });
        Ok(ListPage::new(
            found.into_iter().map(|(_, t)| t).collect(),
            next.flatten(),
        ))
    }

    /// Every attempt of task `id`, oldest first; `None` if there is no
    /// such task.
    pub async fn attempts(&self, id: TaskId) -> Result<Option<Attempts>> {
        let Some(task) = self.get(id).await? else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT attempt, worker, started_at, finished_at, outcome, error
             FROM task_attempts WHERE task = $1 ORDER BY attempt",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let earlier = rows.iter().map(attempt).collect::<Result<Vec<_>>>()?;
        Ok(Some(attempts_of(&task, earlier)))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The statement of a page and its arguments: only the filters given.
fn statement(q: &ListQuery) -> std::result::Result<(String, PgArguments), BoxError> {
    let before = q
        .before
        .map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
    let mut sql = format!(
        "SELECT t.seq, {} FROM tasks t WHERE t.seq < $1",
        task_columns!()
    );
    let mut args = PgArguments::default();
    args.add(before)?;
    let mut n = 1;
    let mut arg = |sql: &mut String, clause: &str, value: String| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
        args.add(value)
    };
    if let Some(status) = q.status {
        arg(&mut sql, " AND t.status = ?", status.as_str().to_owned())?;
    }
    if let Some(kind) = &q.kind {
        arg(&mut sql, " AND t.kind = ?", kind.clone())?;
    }
    match &q.key {
        None => {}
        Some(KeyMatch::Exact(key)) => {
            arg(&mut sql, " AND t.key COLLATE \"C\" = ?", key.clone())?;
        }
        Some(KeyMatch::Prefix(prefix)) => {
            // Every key that starts with the prefix sorts, byte by byte,
            // from it to it followed by the last character.
            arg(&mut sql, " AND t.key COLLATE \"C\" >= ?", prefix.clone())?;
            let end = format!("{prefix}{}", char::MAX);
            arg(&mut sql, " AND t.key COLLATE \"C\" < ?", end)?;
        }
    }
    n += 1;
    sql.push_str(&format!(" ORDER BY t.seq DESC LIMIT ${n}"));
    args.add(i64::from(q.limit) + 1)?;
    Ok((sql, args))
}

fn attempt(row: &sqlx::postgres::PgRow) -> Result<Attempt> {
    let outcome: String = row.try_get("outcome")?;
    let outcome: AttemptOutcome = serde_json::from_value(serde_json::Value::String(outcome))
        .map_err(|e| DbError::Query(sqlx::Error::Decode(e.into())))?;
    Ok(Attempt {
        attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or_default(),
        worker: row
            .try_get::<Option<String>, _>("worker")?
            .map(WorkerId::from),
        started_at: Timestamp(row.try_get("started_at")?),
        finished_at: Some(Timestamp(row.try_get("finished_at")?)),
        outcome,
        error: row.try_get::<Option<Json<_>>, _>("error")?.map(|j| j.0),
    })
}
