//! Lookups (v1.1): pages of `list` over every task of the cluster, newest
//! first, and a task's attempts. Each reads committed rows only; migration
//! 0007 has the indexes that serve every filter in `seq` order, and the
//! trigger that records attempts.

use app::{Attempt, AttemptOutcome, Attempts, KeyMatch, ListPage, ListQuery, WorkerId};
use sqlx::Arguments as _;
use sqlx::postgres::PgArguments;

use super::*;
use crate::lookup::attempts_of;

/// A prefix filter first walks this many tasks newest first (along the
/// index of its other filters), then, if they held too few matches, reads
/// the keys with its prefix instead: a common prefix is found at once, a
/// rare one costs its own keys only. (Left to itself, the planner walks
/// every task for a rare prefix, or sorts every match of a common one.)
pub(super) const PREFIX_WALK: i64 = 4096;

type Found = Vec<(i64, Task)>;

impl Db {
    /// One page of `list`: the newest tasks before its cursor that pass
    /// its filters, and the cursor of the next page.
    pub async fn list(&self, q: &ListQuery) -> Result<ListPage> {
        let want = q.limit as usize + 1;
        let walked = match &q.key {
            Some(KeyMatch::Prefix(prefix)) => self.walk(q, prefix, want).await?,
            _ => None,
        };
        let found = match walked {
            Some(found) => found,
            None => {
                let (sql, args) = statement(q, Shape::Page(want as i64)).map_err(encode)?;
                self.tasks(sql, args).await?
            }
        };
        Ok(crate::lookup::page_of(found, want))
    }

    /// The first `want` tasks passing `q` among the [`PREFIX_WALK`] newest
    /// that pass its other filters; `None` if those held too few and there
    /// are older ones.
    async fn walk(&self, q: &ListQuery, prefix: &str, want: usize) -> Result<Option<Found>> {
        let others = ListQuery {
            key: None,
            ..q.clone()
        };
        let (sql, args) = statement(&others, Shape::Keys).map_err(encode)?;
        // Audited: fixed clauses only; the client's values are arguments.
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(&self.pool)
            .await?;
        let mut hits = Vec::with_capacity(want);
        for row in &rows {
            let key: Option<String> = row.try_get("key")?;
            if key.is_some_and(|k| k.starts_with(prefix)) {
                hits.push(row.try_get::<uuid::Uuid, _>("id")?);
                if hits.len() == want {
                    break;
                }
            }
        }
        if hits.len() < want && rows.len() as i64 == PREFIX_WALK {
            return Ok(None);
        }
        let rows = sqlx::query(concat!(
            "SELECT t.seq, ",
            task_columns!(),
            " FROM tasks t WHERE t.id = ANY($1) ORDER BY t.seq DESC"
        ))
        .bind(&hits)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, task(row)?)))
            .collect::<Result<_>>()
            .map(Some)
    }

    async fn tasks(&self, sql: String, args: PgArguments) -> Result<Found> {
        // Audited: fixed clauses only; the client's values are arguments.
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("seq")?, task(row)?)))
            .collect()
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

fn encode(e: BoxError) -> DbError {
    DbError::Query(sqlx::Error::Encode(e))
}

/// What a statement of [`statement`] reads.
#[derive(Clone, Copy)]
enum Shape {
    /// Up to this many whole tasks, newest first. With a key prefix, the
    /// matching keys are read first (then sorted), whatever the planner
    /// would guess.
    Page(i64),
    /// Ids and keys of the [`PREFIX_WALK`] newest, for [`Db::walk`].
    Keys,
}

/// The statement of the tasks passing `q` and its arguments: only the
/// filters given.
fn statement(q: &ListQuery, shape: Shape) -> std::result::Result<(String, PgArguments), BoxError> {
    let before = q
        .before
        .map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
    let mut sql = String::from(" FROM tasks t WHERE t.seq < $1");
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
    let mut prefixed = false;
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
            prefixed = true;
        }
    }
    let (limit, sql) = match shape {
        Shape::Keys => (
            PREFIX_WALK,
            format!("SELECT t.id, t.key{sql} ORDER BY t.seq DESC"),
        ),
        Shape::Page(limit) if prefixed => (
            limit,
            format!(
                "WITH k AS MATERIALIZED (SELECT t.id{sql}) SELECT t.seq, {} \
                 FROM k JOIN tasks t ON t.id = k.id ORDER BY t.seq DESC",
                task_columns!()
            ),
        ),
        Shape::Page(limit) => (
            limit,
            format!("SELECT t.seq, {}{sql} ORDER BY t.seq DESC", task_columns!()),
        ),
    };
    let sql = format!("{sql} LIMIT ${}", n + 1);
    args.add(limit)?;
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
