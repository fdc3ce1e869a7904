//! SQLite: calibration jobs and measurement configurations.

use mqttcal_messages::{config_hash, JobRecord};
use rusqlite::{params, OptionalExtension, Row};
use serde_json::Value;

use super::{json, plain, SqliteStore};
use crate::jobs::unknown_config;
use crate::{now, BoxFuture, ConfigRecord, JobQuery, JobStore, StoreError, StoredJob};

const JOB_COLUMNS: &str =
    "id, procedure, item, customer, status, config_hash, body, created_at, updated_at";

fn job_of(r: &Row) -> rusqlite::Result<StoredJob> {
    Ok(StoredJob {
        job: JobRecord {
            id: r.get(0)?,
            procedure: r.get(1)?,
            item: r.get(2)?,
            customer: r.get(3)?,
            status: r.get(4)?,
            config_hash: r.get(5)?,
            body: r.get::<_, Option<String>>(6)?.map(json).transpose()?,
        },
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

impl JobStore for SqliteStore {
    fn save_config<'a>(&'a self, body: &'a Value) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            let hash = config_hash(body);
            let text = body.to_string();
            let h = hash.clone();
            self.blocking(move |c| {
            c.execute(
                "INSERT INTO measurement_configs (config_hash, body, recorded_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (config_hash) DO NOTHING",
                params![h, text, now()],
            )
            .map_err(plain)?;
            Ok(())
        })
        .await?;
            Ok(hash)
        })
    }

    fn config<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigRecord>, StoreError>> {
        Box::pin(async move {
            let hash = hash.to_owned();
            self.blocking(move |c| {
            c.query_row(
                "SELECT config_hash, body, recorded_at FROM measurement_configs WHERE config_hash = ?1",
                [&hash],
                |r| {
                    Ok(ConfigRecord {
                        hash: r.get(0)?,
                        body: json(r.get(1)?)?,
                        recorded_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(plain)
        })
        .await
        })
    }

    fn save_job<'a>(&'a self, j: &'a JobRecord) -> BoxFuture<'a, Result<StoredJob, StoreError>> {
        Box::pin(async move {
            j.validate()?;
            let j = j.clone();
            self.blocking(move |c| {
            let tx = c.transaction().map_err(plain)?;
            if let Some(hash) = &j.config_hash {
                let known = tx
                    .query_row(
                        "SELECT 1 FROM measurement_configs WHERE config_hash = ?1",
                        [hash],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(plain)?;
                if known.is_none() {
                    return Err(unknown_config(hash));
                }
            }
            let body = j.body.as_ref().map(Value::to_string);
            let stored = tx
                .query_row(
                    &format!(
                        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                         ON CONFLICT (id) DO UPDATE SET procedure = ?2, item = ?3, customer = ?4, status = ?5, config_hash = ?6, body = ?7, updated_at = ?8
                         RETURNING {JOB_COLUMNS}"
                    ),
                    params![j.id, j.procedure, j.item, j.customer, j.status, j.config_hash, body, now()],
                    job_of,
                )
                .map_err(plain)?;
            tx.commit().map_err(plain)?;
            Ok(stored)
        })
        .await
        })
    }

    fn job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredJob>, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.blocking(move |c| {
                c.query_row(
                    &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                    [&id],
                    job_of,
                )
                .optional()
                .map_err(plain)
            })
            .await
        })
    }

    fn jobs<'a>(&'a self, q: &'a JobQuery) -> BoxFuture<'a, Result<Vec<StoredJob>, StoreError>> {
        Box::pin(async move {
            let (limit, offset) = q.page()?;
            let status = q.status.clone();
            self.blocking(move |c| {
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR status = ?1)
                     ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
                    ))
                    .map_err(plain)?;
                let rows = stmt
                    .query_map(params![status, limit, offset], job_of)
                    .map_err(plain)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(plain)?;
                Ok(rows)
            })
            .await
        })
    }
}
