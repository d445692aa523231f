//! The store's schema and its versions (`PRAGMA user_version`): a database
//! written by an older Taskwire is upgraded when it is opened, in one
//! transaction; one written by a newer Taskwire is refused.
//!
//! - 0: `tasks` (id, seq, status, finished_at, body) and `schedules`;
//! - 1: `tasks` gains `kind` and `key` (filled from the bodies), indexes
//!   that serve every filter of `list` newest first, and `attempts` (the
//!   attempts that ended while their task went on), and `paused_kinds`.

use rusqlite::Connection;

/// The version this build writes.
pub const VERSION: i64 = 1;

const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS tasks (
        id          BLOB PRIMARY KEY,
        seq         INTEGER NOT NULL,
        status      TEXT NOT NULL,
        finished_at INTEGER,
        body        TEXT NOT NULL,
        kind        TEXT NOT NULL DEFAULT '',
        key         TEXT
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS tasks_seq ON tasks (seq);
    CREATE TABLE IF NOT EXISTS schedules (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS paused_kinds (
        kind TEXT PRIMARY KEY
    ) WITHOUT ROWID;";

/// Version 1's additions to version 0 (after its columns exist).
const LOOKUPS: &str = "
    CREATE INDEX IF NOT EXISTS tasks_status_seq ON tasks (status, seq);
    CREATE INDEX IF NOT EXISTS tasks_kind_seq ON tasks (kind, seq);
    CREATE INDEX IF NOT EXISTS tasks_kind_status_seq ON tasks (kind, status, seq);
    CREATE INDEX IF NOT EXISTS tasks_key_seq ON tasks (key, seq) WHERE key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS attempts (
        task    BLOB NOT NULL,
        attempt INTEGER NOT NULL,
        body    TEXT NOT NULL,
        PRIMARY KEY (task, attempt)
    ) WITHOUT ROWID;";

/// Why the schema cannot be brought to [`VERSION`].
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("written by a newer Taskwire (schema version {0}, this one knows up to {VERSION})")]
    Newer(i64),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Creates the schema, or upgrades an older one, to [`VERSION`].
pub fn upgrade(conn: &mut Connection) -> Result<(), SchemaError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == VERSION {
        return Ok(());
    }
    if version > VERSION {
        return Err(SchemaError::Newer(version));
    }
    let tx = conn.transaction()?;
    let had_tasks: bool = tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'tasks'",
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch(TABLES)?;
    if had_tasks {
        // Version 0: the columns version 1 added, filled from the bodies.
        let columns: Vec<String> = tx
            .prepare("SELECT name FROM pragma_table_info('tasks')")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !columns.iter().any(|c| c == "kind") {
            tx.execute_batch(
                "ALTER TABLE tasks ADD COLUMN kind TEXT NOT NULL DEFAULT '';
                 ALTER TABLE tasks ADD COLUMN key TEXT;
                 UPDATE tasks SET kind = coalesce(json_extract(body, '$.kind'), ''),
                                  key = json_extract(body, '$.key');",
            )?;
        }
        tracing::info!(from = version, to = VERSION, "upgraded the task database");
    }
    tx.execute_batch(LOOKUPS)?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use app::{ListQuery, Task, TaskSpec, Timestamp};
    use rusqlite::params;
    use serde_json::json;

    use super::*;
    use crate::store::{DB_FILE, Store, StoreError};

    /// A database as Taskwire wrote it before lookups (schema version 0).
    fn old_database(dir: &std::path::Path, tasks: &[Task]) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE tasks (
                 id BLOB PRIMARY KEY, seq INTEGER NOT NULL, status TEXT NOT NULL,
                 finished_at INTEGER, body TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX tasks_seq ON tasks (seq);
             CREATE TABLE schedules (name TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;",
        )
        .unwrap();
        for (seq, t) in tasks.iter().enumerate() {
            conn.execute(
                "INSERT INTO tasks (id, seq, status, finished_at, body) VALUES (?1, ?2, ?3, NULL, ?4)",
                params![
                    t.id.0.as_bytes().as_slice(),
                    seq as i64,
                    t.status.as_str(),
                    serde_json::to_string(t).unwrap()
                ],
            )
            .unwrap();
        }
    }

    fn task(kind: &str, key: Option<&str>) -> Task {
        let spec = TaskSpec {
            key: key.map(str::to_owned),
            ..TaskSpec::new(kind, json!(null))
        };
        Task::new(uuid::Uuid::now_v7().into(), spec, Timestamp::now())
    }

    #[tokio::test]
    async fn an_old_database_is_upgraded_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let tasks = [
            task("echo", Some("r:1")),
            task("sleep", None),
            task("echo", Some("r:2")),
        ];
        old_database(dir.path(), &tasks);
        let (store, recovered) = Store::open(dir.path()).unwrap();
        assert_eq!(recovered.len(), 3);
        let list = |raw| {
            let store = store.clone();
            async move {
                let page = store.list(ListQuery::parse(raw).unwrap()).await.unwrap();
                page.tasks.iter().map(|t| t.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(json!({"kind": "echo"})).await,
            vec![tasks[2].id, tasks[0].id]
        );
        assert_eq!(
            list(json!({"key": "r:*"})).await,
            vec![tasks[2].id, tasks[0].id]
        );
        assert_eq!(list(json!({"key": "r:1"})).await, vec![tasks[0].id]);
        assert_eq!(
            list(json!({"kind": "sleep", "status": "queued"})).await,
            vec![tasks[1].id]
        );
        let attempts = store.attempts(tasks[1].id).await.unwrap().expect("known");
        assert!(attempts.attempts.is_empty());
        drop(store);
        // Stamped with the version it was brought to.
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        drop(conn);
        match Store::open(dir.path()) {
            Err(e @ StoreError::Schema { .. }) => {
                assert!(e.to_string().contains("newer Taskwire"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened"),
        }
    }
}
