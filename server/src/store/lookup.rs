//! Lookups in the store (`list`, a task's attempts), on a connection and
//! thread of their own: WAL lets them read the last commit while the
//! writer goes on, and a long page never delays the scheduler's reads.
//! Every filter of `list` has an index that yields its tasks newest first
//! (see `schema`).

use std::sync::mpsc as std_mpsc;

use app::{Attempt, Attempts, Cursor, KeyMatch, ListPage, ListQuery, Task, TaskId};
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};
use tokio::sync::oneshot;

use super::{Store, StoreError};
use crate::lookup::attempts_of;

pub(super) enum Job {
    List(ListQuery, oneshot::Sender<Result<ListPage, String>>),
    Attempts(TaskId, oneshot::Sender<Result<Option<Attempts>, String>>),
}

impl Store {
    /// One page of `list` as last committed.
    pub async fn list(&self, query: ListQuery) -> Result<ListPage, StoreError> {
        let (done, rx) = oneshot::channel();
        self.lookups
            .send(Job::List(query, done))
            .map_err(|_| StoreError::Stopped)?;
        rx.await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Read)
    }

    /// Every attempt of task `id` as last committed; `None` if the store
    /// does not hold the task.
    pub async fn attempts(&self, id: TaskId) -> Result<Option<Attempts>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.lookups
            .send(Job::Attempts(id, done))
            .map_err(|_| StoreError::Stopped)?;
        rx.await
            .map_err(|_| StoreError::Stopped)?
            .map_err(StoreError::Read)
    }
}

/// The lookup thread: one job at a time.
pub(super) fn serve(conn: Connection, rx: std_mpsc::Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::List(q, done) => {
                let _ = done.send(list(&conn, &q).map_err(|e| e.to_string()));
            }
            Job::Attempts(id, done) => {
                let _ = done.send(attempts(&conn, id).map_err(|e| e.to_string()));
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("a task or attempt in the database is unreadable: {0}")]
    Row(#[from] serde_json::Error),
}

/// The statement of a page and its parameters: only the filters given,
/// so each shape has its own plan (and its own cached statement).
fn statement(q: &ListQuery) -> (String, Vec<Value>) {
    let before = q
        .before
        .map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
    let mut sql = String::from("SELECT seq, body FROM tasks WHERE seq < ?1");
    let mut args = vec![Value::Integer(before)];
    let mut arg = |sql: &mut String, clause: &str, value: Value| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(status) = q.status {
        arg(
            &mut sql,
            " AND status = ?",
            Value::Text(status.as_str().into()),
        );
    }
    if let Some(kind) = &q.kind {
        arg(&mut sql, " AND kind = ?", Value::Text(kind.clone()));
    }
    match &q.key {
        None => {}
        Some(KeyMatch::Exact(key)) => arg(&mut sql, " AND key = ?", Value::Text(key.clone())),
        Some(KeyMatch::Prefix(prefix)) => {
            // Keys compare byte by byte: every key that starts with the
            // prefix sorts from it to it followed by the last character.
            arg(&mut sql, " AND key >= ?", Value::Text(prefix.clone()));
            arg(
                &mut sql,
                " AND key < ?",
                Value::Text(format!("{prefix}{}", char::MAX)),
            );
        }
    }
    arg(
        &mut sql,
        " ORDER BY seq DESC LIMIT ?",
        Value::Integer(i64::from(q.limit) + 1),
    );
    (sql, args)
}

fn list(conn: &Connection, q: &ListQuery) -> Result<ListPage, LookupError> {
    let (sql, args) = statement(q);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut found: Vec<(i64, Task)> = Vec::with_capacity(q.limit as usize + 1);
    while let Some(row) = rows.next()? {
        let body: String = row.get(1)?;
        found.push((row.get(0)?, serde_json::from_str(&body)?));
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

fn attempts(conn: &Connection, id: TaskId) -> Result<Option<Attempts>, LookupError> {
    let key = id.0.as_bytes().as_slice();
    let mut stmt = conn.prepare_cached("SELECT body FROM tasks WHERE id = ?1")?;
    let mut rows = stmt.query(params![key])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let task: Task = serde_json::from_str(&row.get::<_, String>(0)?)?;
    let mut stmt =
        conn.prepare_cached("SELECT body FROM attempts WHERE task = ?1 ORDER BY attempt")?;
    let bodies = stmt
        .query_map(params![key], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let earlier = bodies
        .iter()
        .map(|b| serde_json::from_str::<Attempt>(b))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(attempts_of(&task, earlier)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_only_the_filters_given() {
        let q = ListQuery::parse(serde_json::json!({"status": "failed", "key": "a:*"})).unwrap();
        let (sql, args) = statement(&q);
        assert_eq!(
            sql,
            "SELECT seq, body FROM tasks WHERE seq < ?1 AND status = ?2 AND key >= ?3 \
             AND key < ?4 ORDER BY seq DESC LIMIT ?5"
        );
        assert_eq!(args.len(), 5);
        assert_eq!(args[4], Value::Integer(51));
    }
}
