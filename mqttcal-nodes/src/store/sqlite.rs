//! SQLite backend (bundled library): the embedded default.

use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::logbook::{Checkpoint, LogQuery, LogRow};
use super::records::{CalibrationRecord, CertificateRecord, Equipment, ResultRecord, StoredResult};
use super::{
    BoxFuture, MeasurementQuery, MeasurementRow, Store, StoreError, StreamHead, SCHEMA_VERSION,
};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite_0001.sql"),
    include_str!("migrations/sqlite_0002.sql"),
    include_str!("migrations/sqlite_0003.sql"),
];

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn q(e: rusqlite::Error) -> StoreError {
    StoreError::Query(e.to_string())
}

fn now() -> f64 {
    mqttcal_core::clock::Timestamp::now().as_secs_f64()
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and applies pending migrations.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Query(e.to_string()))?
    }

    fn open_blocking(path: &str) -> Result<Self, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            target: path.to_owned(),
            reason,
        };
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| open_err(e.to_string()))?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS mqttcal_schema (version INTEGER NOT NULL, applied_at REAL NOT NULL)")
            .map_err(q)?;
        let found: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM mqttcal_schema",
                [],
                |r| r.get(0),
            )
            .map_err(q)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = conn.transaction().map_err(q)?;
            tx.execute_batch(sql).map_err(q)?;
            tx.execute(
                "INSERT INTO mqttcal_schema (version, applied_at) VALUES (?1, ?2)",
                params![i as i64 + 1, now()],
            )
            .map_err(q)?;
            tx.commit().map_err(q)?;
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Query(e.to_string()))?
    }
}

impl Store for SqliteStore {
    fn insert_measurements<'a>(
        &'a self,
        rows: &'a [MeasurementRow],
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let rows = rows.to_vec();
        Box::pin(self.blocking(move |c| {
            let tx = c.transaction().map_err(q)?;
            let mut inserted = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO measurements (dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload, stored_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
                         ON CONFLICT (dedup_key) DO NOTHING",
                    )
                    .map_err(q)?;
                let stored_at = now();
                for r in &rows {
                    inserted += stmt
                        .execute(params![
                            r.dedup_key, r.origin, r.epoch, r.seq, r.sent_at, r.acquired, r.standard,
                            r.src, r.value, r.unit, r.nplc, r.ndigits, r.range, r.mode, r.pol,
                            r.job, r.raw, r.origin_uid, r.environment, r.payload, stored_at
                        ])
                        .map_err(q)? as u64;
                }
            }
            tx.commit().map_err(q)?;
            Ok(inserted)
        }))
    }

    fn count_measurements(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.blocking(|c| {
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM measurements", [], |r| r.get(0))
                .map_err(q)?;
            Ok(n as u64)
        }))
    }

    fn stream_heads(&self, days: f64) -> BoxFuture<'_, Result<Vec<StreamHead>, StoreError>> {
        let since = now() - days * 86_400.0;
        Box::pin(self.blocking(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT origin, epoch, MAX(seq) FROM measurements
                     WHERE sent_at >= ?1 AND epoch IS NOT NULL AND seq IS NOT NULL
                     GROUP BY origin, epoch",
                )
                .map_err(q)?;
            let heads = stmt
                .query_map([since], |r| {
                    Ok(StreamHead {
                        origin: r.get(0)?,
                        epoch: r.get::<_, i64>(1)? as u64,
                        seq: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(q)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(q)?;
            Ok(heads)
        }))
    }

    fn save_config<'a>(
        &'a self,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(self.lite_save_config(body))
    }

    fn config<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::ConfigRecord>, StoreError>> {
        Box::pin(self.lite_config(hash))
    }

    fn save_job<'a>(
        &'a self,
        j: &'a super::JobRecord,
    ) -> BoxFuture<'a, Result<super::StoredJob, StoreError>> {
        Box::pin(self.lite_save_job(j))
    }

    fn job<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::StoredJob>, StoreError>> {
        Box::pin(self.lite_job(id))
    }

    fn jobs<'a>(
        &'a self,
        q: &'a super::JobQuery,
    ) -> BoxFuture<'a, Result<Vec<super::StoredJob>, StoreError>> {
        Box::pin(self.lite_jobs(q))
    }

    fn register_equipment<'a>(&'a self, e: &'a Equipment) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.lite_register_equipment(e))
    }

    fn equipment<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Equipment>, StoreError>> {
        Box::pin(self.lite_equipment(id))
    }

    fn add_calibration<'a>(
        &'a self,
        c: &'a CalibrationRecord,
    ) -> BoxFuture<'a, Result<i64, StoreError>> {
        Box::pin(self.lite_add_calibration(c))
    }

    fn history<'a>(
        &'a self,
        equipment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CalibrationRecord>, StoreError>> {
        Box::pin(self.lite_history(equipment))
    }

    fn save_result<'a>(
        &'a self,
        r: &'a ResultRecord,
    ) -> BoxFuture<'a, Result<StoredResult, StoreError>> {
        Box::pin(self.lite_save_result(r))
    }

    fn results<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Vec<StoredResult>, StoreError>> {
        Box::pin(self.lite_results(job))
    }

    fn save_certificate<'a>(
        &'a self,
        c: &'a CertificateRecord,
    ) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(self.lite_save_certificate(c))
    }

    fn certificate<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Option<CertificateRecord>, StoreError>> {
        Box::pin(self.lite_certificate(number))
    }

    fn query_measurements<'a>(
        &'a self,
        query: &'a MeasurementQuery,
    ) -> BoxFuture<'a, Result<Vec<MeasurementRow>, StoreError>> {
        let query = query.clone();
        Box::pin(async move {
            let (limit, offset) = query.page()?;
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload
                         FROM measurements
                         WHERE (?1 IS NULL OR standard = ?1) AND (?2 IS NULL OR origin = ?2) AND (?3 IS NULL OR job = ?3)
                           AND (?4 IS NULL OR sent_at >= ?4) AND (?5 IS NULL OR sent_at < ?5)
                         ORDER BY sent_at, id LIMIT ?6 OFFSET ?7",
                    )
                    .map_err(q)?;
                let rows = stmt
                    .query_map(
                        params![query.standard, query.origin, query.job, query.since, query.until, limit, offset],
                        |r| {
                            Ok(MeasurementRow {
                                dedup_key: r.get(0)?,
                                origin: r.get(1)?,
                                epoch: r.get(2)?,
                                seq: r.get(3)?,
                                sent_at: r.get(4)?,
                                acquired: r.get(5)?,
                                standard: r.get(6)?,
                                src: r.get(7)?,
                                value: r.get(8)?,
                                unit: r.get(9)?,
                                nplc: r.get(10)?,
                                ndigits: r.get(11)?,
                                range: r.get(12)?,
                                mode: r.get(13)?,
                                pol: r.get(14)?,
                                job: r.get(15)?,
                                raw: r.get(16)?,
                                origin_uid: r.get(17)?,
                                environment: r.get(18)?,
                                payload: r.get(19)?,
                            })
                        },
                    )
                    .map_err(q)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(q)
            })
            .await
        })
    }

    fn log_head(&self) -> BoxFuture<'_, Result<Option<(i64, String)>, StoreError>> {
        Box::pin(self.lite_log_head())
    }

    fn append_log<'a>(&'a self, e: &'a LogRow) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.lite_append_log(e))
    }

    fn search_log<'a>(&'a self, q: &'a LogQuery) -> BoxFuture<'a, Result<Vec<LogRow>, StoreError>> {
        Box::pin(self.lite_search_log(q))
    }

    fn log_page(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<LogRow>, StoreError>> {
        Box::pin(self.lite_log_page(after, limit))
    }

    fn add_checkpoint<'a>(&'a self, c: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.lite_add_checkpoint(c))
    }

    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>> {
        Box::pin(self.lite_checkpoints())
    }

    fn schema_version(&self) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.blocking(|c| {
            c.query_row("SELECT MAX(version) FROM mqttcal_schema", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()
            .map_err(q)
            .map(|v| v.flatten().unwrap_or(0))
        }))
    }
}
