//! Lookups in the store (`list`, a task's attempts), on a connection and
//! thread of their own: WAL lets them read the last commit while the
//! writer goes on, and a long page never delays the scheduler's reads.
//! Every filter of `list` has an index that yields its tasks newest first
//! (see `schema`).

use std::sync::mpsc as std_mpsc;

use app::{Attempt, Attempts, KeyMatch, ListPage, ListQuery, Task, TaskId};
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};
use tokio::sync::oneshot;

use super::{Store, StoreError, row};
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

/// A prefix filter first walks this many tasks newest first (along the
/// index of its other filters), then, if they held too few matches, reads
/// the keys with its prefix instead: a common prefix is found at once, a
/// rare one costs its own keys only.
const PREFIX_WALK: i64 = 4096;

/// The statement of `limit` tasks passing `q`, newest first, and its
/// parameters: only the filters given, so each shape has its own plan (and
/// its own cached statement). Columns: [`row::COLUMNS`].
fn statement(q: &ListQuery, limit: i64) -> (String, Vec<Value>) {
    let before = q
        .before
        .map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
    let mut sql = format!("SELECT {} FROM tasks WHERE seq < ?1", row::COLUMNS);
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
        Value::Integer(limit),
    );
    (sql, args)
}

type Found = Vec<(i64, Task)>;

fn list(conn: &Connection, q: &ListQuery) -> Result<ListPage, LookupError> {
    let want = q.limit as usize + 1;
    let walked = match &q.key {
        Some(KeyMatch::Prefix(prefix)) => walk(conn, q, prefix, want)?,
        _ => None,
    };
    let found = match walked {
        Some(found) => found,
        None => read(conn, q, want)?,
    };
    Ok(crate::lookup::page_of(found, want))
}

/// The first `want` tasks passing `q`.
fn read(conn: &Connection, q: &ListQuery, want: usize) -> Result<Found, LookupError> {
    let (sql, args) = statement(q, want as i64);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut found = Vec::with_capacity(want);
    while let Some(r) = rows.next()? {
        found.push(row::decode(r)?);
    }
    Ok(found)
}

/// The first `want` tasks passing `q` among the [`PREFIX_WALK`] newest
/// that pass its other filters; `None` if those held too few and there are
/// older ones.
fn walk(
    conn: &Connection,
    q: &ListQuery,
    prefix: &str,
    want: usize,
) -> Result<Option<Found>, LookupError> {
    let others = ListQuery {
        key: None,
        ..q.clone()
    };
    let (sql, args) = statement(&others, PREFIX_WALK);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let (mut walked, mut found) = (0, Vec::with_capacity(want));
    while let Some(r) = rows.next()? {
        walked += 1;
        // Only a match is decoded.
        if r.get_ref(row::KEY)?
            .as_str_or_null()
            .map_err(rusqlite::Error::from)?
            .is_some_and(|key| key.starts_with(prefix))
        {
            found.push(row::decode(r)?);
            if found.len() == want {
                return Ok(Some(found));
            }
        }
    }
    Ok((walked < PREFIX_WALK).then_some(found))
}

fn attempts(conn: &Connection, id: TaskId) -> Result<Option<Attempts>, LookupError> {
    let key = id.0.as_bytes().as_slice();
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {} FROM tasks WHERE id = ?1", row::COLUMNS))?;
    let mut rows = stmt.query(params![key])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let (_, task) = row::decode(r)?;
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
    use crate::store::Write;
    use app::{TaskSpec, Timestamp};

    #[tokio::test]
    async fn prefixes_common_and_rare_page_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let task = |key: Option<String>| {
            let spec = TaskSpec {
                key,
                ..TaskSpec::new("echo", serde_json::json!(1))
            };
            Task::new(uuid::Uuid::now_v7().into(), spec, Timestamp::now())
        };
        let rare: Vec<Task> = (0..3).map(|i| task(Some(format!("rare:{i}")))).collect();
        let many: Vec<Task> = (0..PREFIX_WALK + 100)
            .map(|i| task((i % 2 == 0).then(|| format!("common:{i}"))))
            .collect();
        let writes = rare
            .iter()
            .chain(&many)
            .enumerate()
            .map(|(seq, t)| Write::task(t, seq as u64, false))
            .collect();
        store.commit(writes).await.unwrap();
        let page = |raw: serde_json::Value| {
            let store = store.clone();
            async move {
                let page = store.list(ListQuery::parse(raw).unwrap()).await.unwrap();
                (
                    page.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
                    page.next,
                )
            }
        };
        let (got, next) = page(serde_json::json!({"key": "rare:*", "limit": 2})).await;
        assert_eq!(got, vec![rare[2].id, rare[1].id]);
        let before = next.unwrap().to_string();
        let (got, next) = page(serde_json::json!({"key": "rare:*", "before": before})).await;
        assert_eq!((got, next), (vec![rare[0].id], None));
        let newest: Vec<TaskId> = many
            .iter()
            .rev()
            .filter(|t| t.key.is_some())
            .take(3)
            .map(|t| t.id)
            .collect();
        let (got, _) = page(serde_json::json!({"key": "common:*", "limit": 3})).await;
        assert_eq!(got, newest);
    }

    #[test]
    fn statements_bind_only_the_filters_given() {
        let q = ListQuery::parse(serde_json::json!({"status": "failed", "key": "a:*"})).unwrap();
        let (sql, args) = statement(&q, 51);
        assert_eq!(
            sql,
            format!(
                "SELECT {} FROM tasks WHERE seq < ?1 AND status = ?2 AND key >= ?3 \
                 AND key < ?4 ORDER BY seq DESC LIMIT ?5",
                row::COLUMNS
            )
        );
        assert_eq!(args.len(), 5);
        assert_eq!(args[4], Value::Integer(51));
    }
}
