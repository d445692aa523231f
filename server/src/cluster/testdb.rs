//! Throwaway PostgreSQL databases for tests: each test makes its own and
//! drops it afterwards, also when it fails.

use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use super::db::DbError;

/// The server tests make their databases on: `TASKWIRE_TEST_DATABASE_URL`,
/// else the local one (trust auth).
pub fn server_url() -> String {
    std::env::var("TASKWIRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A database made for one test. Drop it with [`TestDatabase::drop`]; if
/// the test panics first, `Drop` does it (blocking, on its own thread).
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    pub name: String,
    server_url: String,
    dropped: bool,
}

/// Creates a database with a fresh random name on the server at
/// `server_url` (a `postgres://` URL; its own database part is ignored).
pub async fn fresh_database(server_url: &str) -> Result<TestDatabase, DbError> {
    let name = format!("taskwire_test_{}", uuid::Uuid::now_v7().simple());
    let mut url = url::Url::parse(server_url).map_err(|e| sqlx::Error::Configuration(e.into()))?;
    url.set_path(&name);
    let mut conn = PgConnection::connect(server_url).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(TestDatabase {
        url: url.into(),
        name,
        server_url: server_url.to_owned(),
        dropped: false,
    })
}

impl TestDatabase {
    /// Drops the database, closing whatever connections it still has.
    pub async fn drop(mut self) -> Result<(), DbError> {
        self.dropped = true;
        drop_database(&self.server_url, &self.name).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        // This may run inside a runtime (a test that panicked), where one
        // cannot block on a future: a thread with its own runtime can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| DbError::from(sqlx::Error::Io(e)))?;
            runtime.block_on(drop_database(&server_url, &name))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!(database = %self.name, "could not drop a test database");
        }
    }
}

async fn drop_database(server_url: &str, name: &str) -> Result<(), DbError> {
    let mut conn = PgConnection::connect(server_url).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt as _;

    use super::*;

    async fn exists(name: &str) -> bool {
        let mut conn = PgConnection::connect(&server_url()).await.unwrap();
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_test_database_is_dropped_even_when_its_test_panics() {
        let test = fresh_database(&server_url()).await.unwrap();
        let name = test.name.clone();
        let mut conn = PgConnection::connect(&test.url).await.unwrap();
        assert!(exists(&name).await);
        test.drop().await.unwrap();
        assert!(!exists(&name).await);
        assert!(conn.ping().await.is_err(), "its connections are closed");

        let test = fresh_database(&server_url()).await.unwrap();
        let name = test.name.clone();
        let failing = async move {
            let _test = test;
            panic!("a failing test");
        };
        assert!(AssertUnwindSafe(failing).catch_unwind().await.is_err());
        assert!(!exists(&name).await);
    }
}
