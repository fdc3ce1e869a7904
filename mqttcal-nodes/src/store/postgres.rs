//! PostgreSQL backend (tokio-postgres): production.

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::logbook::{Checkpoint, LogQuery, LogRow};
use super::pg_copy::{copy_rows, Copied};
use super::records::{CalibrationRecord, CertificateRecord, Equipment, ResultRecord, StoredResult};
use super::{
    redact, BoxFuture, MeasurementQuery, MeasurementRow, Store, StoreError, StreamHead,
    SCHEMA_VERSION,
};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres_0001.sql"),
    include_str!("migrations/postgres_0002.sql"),
    include_str!("migrations/postgres_0003.sql"),
];

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
    pub(super) async fn client(
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

const INSERT_BATCH: &str = "INSERT INTO measurements (dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload, stored_at)
     SELECT u.*, $21 FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::float8[], $6::float8[], $7::text[], $8::json[], $9::float8[], $10::text[], $11::float8[], $12::int4[], $13::float8[], $14::text[], $15::text[], $16::text[], $17::text[], $18::json[], $19::json[], $20::text[]) AS u
     ON CONFLICT (dedup_key) DO NOTHING";

/// A batch of rows, column by column.
#[derive(Default)]
struct Columns<'a> {
    dedup_key: Vec<&'a str>,
    origin: Vec<&'a str>,
    epoch: Vec<Option<i64>>,
    seq: Vec<Option<i64>>,
    sent_at: Vec<f64>,
    acquired: Vec<Option<f64>>,
    standard: Vec<Option<&'a str>>,
    src: Vec<Option<&'a super::JsonText>>,
    value: Vec<f64>,
    unit: Vec<Option<&'a str>>,
    nplc: Vec<Option<f64>>,
    ndigits: Vec<Option<i32>>,
    range: Vec<Option<f64>>,
    mode: Vec<Option<&'a str>>,
    pol: Vec<Option<&'a str>>,
    job: Vec<Option<&'a str>>,
    raw: Vec<Option<&'a str>>,
    origin_uid: Vec<Option<&'a super::JsonText>>,
    environment: Vec<Option<&'a super::JsonText>>,
    payload: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [MeasurementRow]) -> Self {
        let mut c = Self::default();
        for r in rows {
            c.dedup_key.push(&r.dedup_key);
            c.origin.push(&r.origin);
            c.epoch.push(r.epoch);
            c.seq.push(r.seq);
            c.sent_at.push(r.sent_at);
            c.acquired.push(r.acquired);
            c.standard.push(r.standard.as_deref());
            c.src.push(r.src.as_ref());
            c.value.push(r.value);
            c.unit.push(r.unit.as_deref());
            c.nplc.push(r.nplc);
            c.ndigits.push(r.ndigits);
            c.range.push(r.range);
            c.mode.push(r.mode.as_deref());
            c.pol.push(r.pol.as_deref());
            c.job.push(r.job.as_deref());
            c.raw.push(r.raw.as_deref());
            c.origin_uid.push(r.origin_uid.as_ref());
            c.environment.push(r.environment.as_ref());
            c.payload.push(&r.payload);
        }
        c
    }
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
            let stored_at = now();
            // Fast path: one binary COPY, as fast as PostgreSQL takes rows.
            if let Copied::All(n) = copy_rows(client, rows, stored_at).await.map_err(q)? {
                return Ok(n);
            }
            // A redelivered reading is in the batch: one statement that skips stored keys.
            // The columns travel as arrays and `unnest` turns them back into rows.
            let c = Columns::of(rows);
            let tx = client.transaction().await.map_err(q)?;
            let inserted = tx
                .execute(
                    INSERT_BATCH,
                    &[
                        &c.dedup_key,
                        &c.origin,
                        &c.epoch,
                        &c.seq,
                        &c.sent_at,
                        &c.acquired,
                        &c.standard,
                        &c.src,
                        &c.value,
                        &c.unit,
                        &c.nplc,
                        &c.ndigits,
                        &c.range,
                        &c.mode,
                        &c.pol,
                        &c.job,
                        &c.raw,
                        &c.origin_uid,
                        &c.environment,
                        &c.payload,
                        &stored_at,
                    ],
                )
                .await
                .map_err(q)?;
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
            let (limit, offset) = query.page()?;
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

    fn stream_heads(&self, days: f64) -> BoxFuture<'_, Result<Vec<StreamHead>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let client = guard.as_ref().expect("connected");
            let since = now() - days * 86_400.0;
            let rows = client
                .query(
                    "SELECT origin, epoch, MAX(seq) FROM measurements
                     WHERE sent_at >= $1 AND epoch IS NOT NULL AND seq IS NOT NULL
                     GROUP BY origin, epoch",
                    &[&since],
                )
                .await
                .map_err(q)?;
            Ok(rows
                .iter()
                .map(|r| StreamHead {
                    origin: r.get(0),
                    epoch: r.get::<_, i64>(1) as u64,
                    seq: r.get::<_, i64>(2) as u64,
                })
                .collect())
        })
    }

    fn save_config<'a>(
        &'a self,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(self.pg_save_config(body))
    }

    fn config<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::ConfigRecord>, StoreError>> {
        Box::pin(self.pg_config(hash))
    }

    fn save_job<'a>(
        &'a self,
        j: &'a super::JobRecord,
    ) -> BoxFuture<'a, Result<super::StoredJob, StoreError>> {
        Box::pin(self.pg_save_job(j))
    }

    fn job<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::StoredJob>, StoreError>> {
        Box::pin(self.pg_job(id))
    }

    fn jobs<'a>(
        &'a self,
        q: &'a super::JobQuery,
    ) -> BoxFuture<'a, Result<Vec<super::StoredJob>, StoreError>> {
        Box::pin(self.pg_jobs(q))
    }

    fn register_equipment<'a>(&'a self, e: &'a Equipment) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.pg_register_equipment(e))
    }

    fn equipment<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Equipment>, StoreError>> {
        Box::pin(self.pg_equipment(id))
    }

    fn add_calibration<'a>(
        &'a self,
        c: &'a CalibrationRecord,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(self.pg_add_calibration(c))
    }

    fn history<'a>(
        &'a self,
        equipment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CalibrationRecord>, StoreError>> {
        Box::pin(self.pg_history(equipment))
    }

    fn save_result<'a>(
        &'a self,
        r: &'a ResultRecord,
    ) -> BoxFuture<'a, Result<StoredResult, StoreError>> {
        Box::pin(self.pg_save_result(r))
    }

    fn results<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Vec<StoredResult>, StoreError>> {
        Box::pin(self.pg_results(job))
    }

    fn save_certificate<'a>(
        &'a self,
        c: &'a CertificateRecord,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(self.pg_save_certificate(c))
    }

    fn certificate<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Option<CertificateRecord>, StoreError>> {
        Box::pin(self.pg_certificate(number))
    }

    fn log_head(&self) -> BoxFuture<'_, Result<Option<(i64, String)>, StoreError>> {
        Box::pin(self.pg_log_head())
    }

    fn append_log<'a>(&'a self, e: &'a LogRow) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.pg_append_log(e))
    }

    fn search_log<'a>(&'a self, q: &'a LogQuery) -> BoxFuture<'a, Result<Vec<LogRow>, StoreError>> {
        Box::pin(self.pg_search_log(q))
    }

    fn log_page(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<LogRow>, StoreError>> {
        Box::pin(self.pg_log_page(after, limit))
    }

    fn add_checkpoint<'a>(&'a self, c: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.pg_add_checkpoint(c))
    }

    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        Box::pin(self.pg_checkpoints())
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
