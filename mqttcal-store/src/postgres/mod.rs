//! The PostgreSQL backend (tokio-postgres): production.
//!
//! One connection, re-opened after it breaks; migrations under an advisory lock, so several
//! nodes may open the same database together. Readings are written with one binary `COPY`
//! per batch ([`write_copy`]).
//!
//! Available with the `postgres` feature.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use crate::{redact, BoxFuture, Store, StoreError, SCHEMA_VERSION};

mod copy;
mod jobs;
mod logbook;
mod measurements;
mod records;

pub use copy::{write_copy, COPY_COLUMNS};

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

/// A PostgreSQL database; the connection is re-opened after it breaks. Available with the
/// `postgres` feature.
#[derive(Debug)]
pub struct PostgresStore {
    url: String,
    client: Mutex<Option<Client>>,
}

/// A failed statement: refused data (SQLSTATE classes 22, data exception, and 23,
/// integrity constraint violation) is [`StoreError::Rejected`], anything else a query
/// failure worth another try.
pub(crate) fn plain(e: tokio_postgres::Error) -> StoreError {
    match e.code().map(|c| c.code().get(..2)) {
        Some(Some("22" | "23")) => StoreError::Rejected(Box::new(e)),
        _ => StoreError::query(e),
    }
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| StoreError::Open {
                target: redact(url),
                source: Box::new(e),
            })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Connects to `url` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut client = connect(url).await?;
        migrate(&mut client).await?;
        Ok(Self {
            url: url.to_owned(),
            client: Mutex::new(Some(client)),
        })
    }

    /// The client, reconnecting if the connection broke.
    pub(crate) async fn client(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.url).await?);
        }
        Ok(guard)
    }
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(plain)?;
    // One migrator at a time, even with several nodes starting together.
    tx.execute("SELECT pg_advisory_xact_lock(7428571)", &[])
        .await
        .map_err(plain)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mqttcal_schema (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(plain)?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM mqttcal_schema", &[])
        .await
        .map_err(plain)?
        .get(0);
    let found = i64::from(found);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await.map_err(plain)?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO mqttcal_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(plain)?;
    }
    tx.commit().await.map_err(plain)
}

impl Store for PostgresStore {
    fn schema_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let v: i32 = client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM mqttcal_schema", &[])
                .await
                .map_err(plain)?
                .get(0);
            Ok(i64::from(v))
        })
    }
}
