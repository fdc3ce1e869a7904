//! PostgreSQL backend (tokio-postgres): production.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{
    redact, BoxFuture, MeasurementQuery, MeasurementRow, Store, StoreError, SCHEMA_VERSION,
};

const MIGRATIONS: &[&str] = &[include_str!("migrations/postgres_0001.sql")];

/// A PostgreSQL database; the connection is re-opened after it breaks.
#[derive(Debug)]
pub struct PostgresStore {
    url: String,
    client: Mutex<Option<Client>>,
}

fn q(e: tokio_postgres::Error) -> StoreError {
    StoreError::Query(mqttcal_core::error_chain(&e))
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| StoreError::Open {
                target: redact(url),
                reason: mqttcal_core::error_chain(&e),
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
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.url).await?);
        }
        Ok(guard)
    }
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(q)?;
    // One migrator at a time, even with several datad starting together.
    tx.execute("SELECT pg_advisory_xact_lock(7428571)", &[])
        .await
        .map_err(q)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mqttcal_schema (version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(q)?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM mqttcal_schema", &[])
        .await
        .map_err(q)?
        .get(0);
    let found = i64::from(found);
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await.map_err(q)?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO mqttcal_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(q)?;
    }
    tx.commit().await.map_err(q)
}

fn now() -> f64 {
    mqttcal_core::clock::Timestamp::now().as_secs_f64()
}

impl Store for PostgresStore {
    fn insert_measurements<'a>(
        &'a self,
        rows: &'a [MeasurementRow],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut guard = self.client().await?;
            let client = guard.as_mut().expect("connected");
            let tx = client.transaction().await.map_err(q)?;
            let stmt = tx
                .prepare(
                    "INSERT INTO measurements (dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload, stored_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
                     ON CONFLICT (dedup_key) DO NOTHING",
                )
                .await
                .map_err(q)?;
            let stored_at = now();
            let mut inserted = 0;
            for r in rows {
                inserted += tx
                    .execute(
                        &stmt,
                        &[
                            &r.dedup_key,
                            &r.origin,
                            &r.epoch,
                            &r.seq,
                            &r.sent_at,
                            &r.acquired,
                            &r.standard,
                            &r.src,
                            &r.value,
                            &r.unit,
                            &r.nplc,
                            &r.ndigits,
                            &r.range,
                            &r.mode,
                            &r.pol,
                            &r.job,
                            &r.raw,
                            &r.origin_uid,
                            &r.environment,
                            &r.payload,
                            &stored_at,
                        ],
                    )
                    .await
                    .map_err(q)?;
            }
            tx.commit().await.map_err(q)?;
            Ok(inserted)
        })
    }

    fn count_measurements(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let n: i64 = client
                .query_one("SELECT COUNT(*) FROM measurements", &[])
                .await
                .map_err(q)?
                .get(0);
            Ok(n as u64)
        })
    }

    fn query_measurements<'a>(
        &'a self,
        query: &'a MeasurementQuery,
    ) -> BoxFuture<'a, Result<Vec<MeasurementRow>, StoreError>> {
        Box::pin(async move {
            let limit = query.checked_limit()?;
            let offset = i64::try_from(query.offset.unwrap_or(0))
                .map_err(|_| StoreError::Invalid("`offset` is too large".into()))?;
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let rows = client
                .query(
                    "SELECT dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload
                     FROM measurements
                     WHERE ($1::text IS NULL OR standard = $1) AND ($2::text IS NULL OR origin = $2) AND ($3::text IS NULL OR job = $3)
                       AND ($4::float8 IS NULL OR sent_at >= $4) AND ($5::float8 IS NULL OR sent_at < $5)
                     ORDER BY sent_at, id LIMIT $6 OFFSET $7",
                    &[&query.standard, &query.origin, &query.job, &query.since, &query.until, &limit, &offset],
                )
                .await
                .map_err(q)?;
            Ok(rows
                .iter()
                .map(|r| MeasurementRow {
                    dedup_key: r.get(0),
                    origin: r.get(1),
                    epoch: r.get(2),
                    seq: r.get(3),
                    sent_at: r.get(4),
                    acquired: r.get(5),
                    standard: r.get(6),
                    src: r.get(7),
                    value: r.get(8),
                    unit: r.get(9),
                    nplc: r.get(10),
                    ndigits: r.get(11),
                    range: r.get(12),
                    mode: r.get(13),
                    pol: r.get(14),
                    job: r.get(15),
                    raw: r.get(16),
                    origin_uid: r.get(17),
                    environment: r.get(18),
                    payload: r.get(19),
                })
                .collect())
        })
    }

    fn schema_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let v: i32 = client
                .query_one("SELECT COALESCE(MAX(version), 0) FROM mqttcal_schema", &[])
                .await
                .map_err(q)?
                .get(0);
            Ok(i64::from(v))
        })
    }
}
