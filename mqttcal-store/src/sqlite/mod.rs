//! The SQLite backend (bundled library): the embedded default.
//!
//! One connection behind a mutex, used from blocking threads; WAL journal, foreign keys on.
//!
//! Available with the `sqlite` feature.

use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::{now, BoxFuture, Store, StoreError, SCHEMA_VERSION};

mod jobs;
mod logbook;
mod measurements;
mod records;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001.sql"),
    include_str!("migrations/0002.sql"),
    include_str!("migrations/0003.sql"),
    include_str!("migrations/0004.sql"),
    include_str!("migrations/0005.sql"),
    include_str!("migrations/0006.sql"),
    include_str!("migrations/0007.sql"),
    include_str!("migrations/0008.sql"),
];

/// A SQLite database file. Available with the `sqlite` feature.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

/// A failed statement: data the database refuses (a broken constraint, a value too big or
/// of the wrong type) is [`StoreError::Rejected`], anything else a query failure worth
/// another try.
pub(crate) fn plain(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ConstraintViolation | TooBig | TypeMismatch) =>
        {
            StoreError::Rejected(Box::new(e))
        }
        _ => StoreError::query(e),
    }
}

/// A JSON column, parsed.
pub(crate) fn json(text: String) -> rusqlite::Result<Value> {
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and applies pending migrations.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(StoreError::query)?
    }

    fn open_blocking(path: &str) -> Result<Self, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            target: path.to_owned(),
            source: Box::new(e),
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        // The wait first: nodes that open one new file together queue for its locks. The
        // switch to WAL takes an exclusive lock without waiting for it: tried again.
        conn.execute_batch("PRAGMA busy_timeout = 5000")
            .map_err(open_err)?;
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            ) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < until =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(open_err(e)),
            }
        }
        // The version is read and the migrations applied under one write lock, so two
        // nodes starting on the same database together (datad and logd) migrate it once.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(plain)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS mqttcal_schema (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
            .map_err(plain)?;
        let found: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM mqttcal_schema",
                [],
                |r| r.get(0),
            )
            .map_err(plain)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql).map_err(plain)?;
            tx.execute(
                "INSERT INTO mqttcal_schema (version, applied_at) VALUES (?1, ?2)",
                params![i as i64 + 1, now()],
            )
            .map_err(plain)?;
        }
        tx.commit().map_err(plain)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in a blocking thread.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        .map_err(StoreError::query)?
    }
}

impl Store for SqliteStore {
    fn schema_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.blocking(|c| {
            c.query_row("SELECT MAX(version) FROM mqttcal_schema", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map_err(plain)
            .map(|v| v.flatten().unwrap_or(0))
        }))
    }
}
