//! The store's schema and its versions (`PRAGMA user_version`): a database
//! written by an older Taskwire is upgraded when it is opened, in one
//! transaction; one written by a newer Taskwire is refused.
//!
//! - 0: `tasks` (id, seq, status, finished_at, and the task as a JSON
//!   `body`) and `schedules`;
//! - 1: `tasks` gains `kind` and `key`, indexes that serve every filter of
//!   `list` newest first, and `attempts` (the attempts that ended while
//!   their task went on), and `paused_kinds`;
//! - 2: `tasks` holds the task in columns (see `row`) instead of a JSON
//!   body, so that a change writes the task's state and not all of it;
//! - 3: `tasks` has no index but its key: the server's table indexes every
//!   task the store holds, and answers `list` (each index here cost every
//!   write of a task an update, two when its status changed);
//! - 4: a task's row is keyed by its `seq` (the rowid) and holds its id
//!   and two blobs, its submission and its state (see `row`): rows are
//!   appended in key order and pruned from the start, and a write binds 4
//!   values instead of 24.

use rusqlite::{Connection, params};

use super::{columns, row};

/// The version this build writes.
pub const VERSION: i64 = 4;

const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS schedules (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS paused_kinds (
        kind TEXT PRIMARY KEY
    ) WITHOUT ROWID;
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
    #[error("task {id} of schema version {version} is unreadable: {source}")]
    OldRow {
        version: i64,
        id: String,
        source: serde_json::Error,
    },
    #[error("task {id} of schema version 2 or 3 is unreadable: {source}")]
    OldColumns { id: String, source: rusqlite::Error },
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
        // Rewritten row by row; the old table's indexes go with it.
        tx.execute_batch("ALTER TABLE tasks RENAME TO tasks_old;")?;
        tx.execute_batch(row::TABLE)?;
        let moved = match version {
            0 | 1 => move_bodies(&tx, version)?,
            _ => move_columns(&tx)?,
        };
        tx.execute_batch("DROP TABLE tasks_old;")?;
        tracing::info!(
            from = version,
            to = VERSION,
            tasks = moved,
            "upgraded the task database"
        );
    } else {
        tx.execute_batch(row::TABLE)?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Copies every task of `tasks_old` (versions 2 and 3: in columns) into
/// `tasks`.
fn move_columns(tx: &rusqlite::Transaction<'_>) -> Result<usize, SchemaError> {
    let mut read = tx.prepare(&format!(
        "SELECT {} FROM tasks_old ORDER BY seq",
        columns::COLUMNS
    ))?;
    let mut insert = tx.prepare(row::INSERT)?;
    let mut rows = read.query(params![])?;
    let mut seqs = Seqs::default();
    while let Some(r) = rows.next()? {
        let (seq, task) = columns::decode(r).map_err(|source| SchemaError::OldColumns {
            id: columns::uuid(r, 1).map_or_else(|_| "?".into(), |id| id.to_string()),
            source,
        })?;
        row::insert(&mut insert, &task, seqs.next(seq))?;
    }
    Ok(seqs.moved)
}

/// Copies every task of `tasks_old` (versions 0 and 1: a JSON body per
/// task) into `tasks`.
fn move_bodies(tx: &rusqlite::Transaction<'_>, version: i64) -> Result<usize, SchemaError> {
    let mut read = tx.prepare("SELECT hex(id), seq, body FROM tasks_old ORDER BY seq")?;
    let mut insert = tx.prepare(row::INSERT)?;
    let mut rows = read.query(params![])?;
    let mut seqs = Seqs::default();
    while let Some(r) = rows.next()? {
        let body: String = r.get(2)?;
        let task: app::Task =
            serde_json::from_str(&body).map_err(|source| SchemaError::OldRow {
                version,
                id: r.get(0).unwrap_or_default(),
                source,
            })?;
        row::insert(&mut insert, &task, seqs.next(r.get(1)?))?;
    }
    Ok(seqs.moved)
}

/// The keys of the rows moved, read in submission order: each its old
/// `seq`, which was unique; were two the same, the later would be moved
/// one past the earlier (never onto another task's row).
#[derive(Default)]
struct Seqs {
    last: Option<u64>,
    moved: usize,
}

impl Seqs {
    fn next(&mut self, old: i64) -> u64 {
        let old = u64::try_from(old).unwrap_or_default();
        let seq = self.last.map_or(old, |last| old.max(last + 1));
        self.last = Some(seq);
        self.moved += 1;
        seq
    }
}

#[cfg(test)]
mod tests {
    use app::{Task, TaskId, TaskSpec, Timestamp};
    use rusqlite::params;
    use serde_json::json;

    use super::*;
    use crate::store::{DB_FILE, Key, Store, StoreError};

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
        let got: Vec<(u64, TaskId, &str, Option<&str>)> = recovered
            .iter()
            .map(|t| {
                (
                    t.seq,
                    t.task.id,
                    t.task.kind.as_str(),
                    t.task.key.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, tasks[0].id, "echo", Some("r:1")),
                (1, tasks[1].id, "sleep", None),
                (2, tasks[2].id, "echo", Some("r:2")),
            ]
        );
        let attempts = store
            .attempts(Key {
                id: tasks[1].id,
                seq: 1,
            })
            .await
            .unwrap()
            .expect("known");
        assert!(attempts.attempts.is_empty());
        drop(store);
        // Stamped with the version it was brought to.
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
    }

    /// A database as Taskwire wrote it with tasks as JSON bodies, list
    /// indexes and attempts (schema version 1).
    fn v1_database(dir: &std::path::Path, tasks: &[Task]) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(
            "CREATE TABLE tasks (
                 id BLOB PRIMARY KEY, seq INTEGER NOT NULL, status TEXT NOT NULL,
                 finished_at INTEGER, body TEXT NOT NULL, kind TEXT NOT NULL DEFAULT '', key TEXT
             ) WITHOUT ROWID;
             CREATE INDEX tasks_seq ON tasks (seq);
             CREATE INDEX tasks_status_seq ON tasks (status, seq);
             CREATE INDEX tasks_kind_seq ON tasks (kind, seq);
             CREATE INDEX tasks_kind_status_seq ON tasks (kind, status, seq);
             CREATE INDEX tasks_key_seq ON tasks (key, seq) WHERE key IS NOT NULL;
             CREATE TABLE schedules (name TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
             CREATE TABLE paused_kinds (kind TEXT PRIMARY KEY) WITHOUT ROWID;
             CREATE TABLE attempts (task BLOB NOT NULL, attempt INTEGER NOT NULL,
                 body TEXT NOT NULL, PRIMARY KEY (task, attempt)) WITHOUT ROWID;
             PRAGMA user_version = 1;",
        )
        .unwrap();
        for (seq, t) in tasks.iter().enumerate() {
            conn.execute(
                "INSERT INTO tasks (id, seq, status, finished_at, body, kind, key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.id.0.as_bytes().as_slice(),
                    seq as i64,
                    t.status.as_str(),
                    t.finished_at.map(|f| f.millis()),
                    serde_json::to_string(t).unwrap(),
                    t.kind,
                    t.key
                ],
            )
            .unwrap();
        }
    }

    #[tokio::test]
    async fn a_database_of_json_bodies_is_moved_into_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let at = |ms| Timestamp::from_millis(ms).unwrap();
        let mut done = task("echo", Some("r:1"));
        done.created_at = at(1_000);
        done.status = app::TaskStatus::Succeeded;
        done.attempt = 1;
        done.started_at = Some(at(2_000));
        done.finished_at = Some(at(3_000));
        done.output = Some(json!({"ok": [1, 2]}).into());
        let mut queued = task("sleep", None);
        queued.created_at = at(4_000);
        v1_database(dir.path(), &[done.clone(), queued.clone()]);
        let (store, recovered) = Store::open(dir.path()).unwrap();
        let got: Vec<(u64, &Task)> = recovered.iter().map(|t| (t.seq, &t.task)).collect();
        assert_eq!(got, vec![(0, &done), (1, &queued)]);
        let found = store
            .read_many(vec![Key {
                id: done.id,
                seq: 0,
            }])
            .await
            .unwrap();
        assert_eq!(found[&done.id], done);
        drop(store);
        assert_eq!(indexes(dir.path()), Vec::<String>::new());
    }

    /// The indexes made by `CREATE INDEX` on `tasks`, by name.
    fn indexes(dir: &std::path::Path) -> Vec<String> {
        names(
            dir,
            "SELECT name FROM pragma_index_list('tasks') WHERE origin = 'c' ORDER BY name",
        )
    }

    /// The columns of `tasks`, in order.
    fn table_columns(dir: &std::path::Path) -> Vec<String> {
        names(
            dir,
            "SELECT name FROM pragma_table_info('tasks') ORDER BY cid",
        )
    }

    /// The `name`s `sql` lists from the database in `dir`.
    fn names(dir: &std::path::Path, sql: &str) -> Vec<String> {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_database_in_columns_is_moved_into_blobs_and_loses_its_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let full = row::tests::full();
        let bare = task("sleep", None);
        // Milliseconds, as the store keeps times.
        let bare = Task {
            created_at: Timestamp::from_millis(1_000).unwrap(),
            ..bare
        };
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(TABLES).unwrap();
            conn.execute_batch(columns::TABLE).unwrap();
            conn.execute_batch(
                "CREATE INDEX tasks_seq ON tasks (seq);
                 CREATE INDEX tasks_status_seq ON tasks (status, seq);
                 CREATE INDEX tasks_kind_seq ON tasks (kind, seq);
                 CREATE INDEX tasks_kind_status_seq ON tasks (kind, status, seq);
                 CREATE INDEX tasks_key_seq ON tasks (key, seq) WHERE key IS NOT NULL;
                 PRAGMA user_version = 2;",
            )
            .unwrap();
            // Stored out of submission order: recovery sorts them.
            columns::write(&conn, &bare, 7).unwrap();
            columns::write(&conn, &full, 3).unwrap();
        }
        assert_eq!(indexes(dir.path()).len(), 5);
        let (store, recovered) = Store::open(dir.path()).unwrap();
        let got: Vec<(u64, &Task)> = recovered.iter().map(|t| (t.seq, &t.task)).collect();
        assert_eq!(got, vec![(3, &full), (7, &bare)]);
        let found = store
            .read_many(vec![
                Key {
                    id: full.id,
                    seq: 3,
                },
                Key {
                    id: bare.id,
                    seq: 7,
                },
            ])
            .await
            .unwrap();
        assert_eq!((&found[&full.id], &found[&bare.id]), (&full, &bare));
        drop(store);
        assert_eq!(indexes(dir.path()), Vec::<String>::new());
        assert_eq!(
            table_columns(dir.path()),
            ["seq", "id", "submission", "state"].map(String::from)
        );
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
