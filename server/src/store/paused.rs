//! Paused kinds (v1.1) in the embedded store: table `paused_kinds`, one
//! row per paused kind, written by the store thread like every task.

use super::*;

/// Pauses (`paused`) or resumes `kind` in the transaction `tx`.
pub(super) fn apply(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    paused: bool,
) -> rusqlite::Result<()> {
    let sql = match paused {
        true => "INSERT INTO paused_kinds (kind) VALUES (?1) ON CONFLICT (kind) DO NOTHING",
        false => "DELETE FROM paused_kinds WHERE kind = ?1",
    };
    tx.prepare_cached(sql)?.execute(params![kind])?;
    Ok(())
}

impl Store {
    /// A connection of its own that only reads (the writer thread goes on).
    pub(super) fn read_only(&self) -> rusqlite::Result<Connection> {
        Connection::open_with_flags(
            &self.file.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }

    /// The paused kinds, by name. Read on a connection of its own, once,
    /// when the server starts (before any pause is written).
    pub fn load_paused(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.read_only()?;
        let mut stmt = conn.prepare("SELECT kind FROM paused_kinds ORDER BY kind")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pauses_are_kept_and_resumes_remove_them() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        assert!(store.load_paused().unwrap().is_empty());
        let pause = |kind: &str, paused| Write::Pause {
            kind: kind.into(),
            paused,
        };
        store
            .commit(vec![
                pause("sleep", true),
                pause("echo", true),
                pause("echo", true),
            ])
            .await
            .unwrap();
        assert_eq!(store.load_paused().unwrap(), vec!["echo", "sleep"]);
        store.commit(vec![pause("sleep", false)]).await.unwrap();
        assert_eq!(store.load_paused().unwrap(), vec!["echo"]);
    }
}
