//! PostgreSQL: calibration jobs and measurement configurations.

use mqttcal_messages::{config_hash, JobRecord};
use serde_json::Value;
use tokio_postgres::Row;

use super::{plain, PostgresStore};
use crate::jobs::unknown_config;
use crate::{now, BoxFuture, ConfigRecord, JobQuery, JobStore, StoreError, StoredJob};

const JOB_COLUMNS: &str =
    "id, procedure, item, customer, status, config_hash, body, created_at, updated_at";

fn job_of(r: &Row) -> StoredJob {
    StoredJob {
        job: JobRecord {
            id: r.get(0),
            procedure: r.get(1),
            item: r.get(2),
            customer: r.get(3),
            status: r.get(4),
            config_hash: r.get(5),
            body: r.get(6),
        },
        created_at: r.get(7),
        updated_at: r.get(8),
    }
}

impl JobStore for PostgresStore {
    fn save_config<'a>(&'a self, body: &'a Value) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            let hash = config_hash(body);
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            c.execute(
            "INSERT INTO measurement_configs (config_hash, body, recorded_at) VALUES ($1, $2, $3)
             ON CONFLICT (config_hash) DO NOTHING",
            &[&hash, body, &now()],
        )
        .await
        .map_err(plain)?;
            Ok(hash)
        })
    }

    fn config<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigRecord>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
            .query_opt(
                "SELECT config_hash, body, recorded_at FROM measurement_configs WHERE config_hash = $1",
                &[&hash],
            )
            .await
            .map_err(plain)?;
            Ok(row.map(|r| ConfigRecord {
                hash: r.get(0),
                body: r.get(1),
                recorded_at: r.get(2),
            }))
        })
    }

    fn save_job<'a>(&'a self, j: &'a JobRecord) -> BoxFuture<'a, Result<StoredJob, StoreError>> {
        Box::pin(async move {
            j.validate()?;
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            if let Some(hash) = &j.config_hash {
                let known = c
                    .query_opt(
                        "SELECT 1 FROM measurement_configs WHERE config_hash = $1",
                        &[hash],
                    )
                    .await
                    .map_err(plain)?;
                if known.is_none() {
                    return Err(unknown_config(hash));
                }
            }
            let row = c
            .query_one(
                &format!(
                    "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
                     ON CONFLICT (id) DO UPDATE SET procedure = $2, item = $3, customer = $4, status = $5, config_hash = $6, body = $7, updated_at = $8
                     RETURNING {JOB_COLUMNS}"
                ),
                &[&j.id, &j.procedure, &j.item, &j.customer, &j.status, &j.config_hash, &j.body, &now()],
            )
            .await
            .map_err(plain)?;
            Ok(job_of(&row))
        })
    }

    fn job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredJob>, StoreError>> {
        Box::pin(async move {
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let row = c
                .query_opt(
                    &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"),
                    &[&id],
                )
                .await
                .map_err(plain)?;
            Ok(row.as_ref().map(job_of))
        })
    }

    fn jobs<'a>(&'a self, q: &'a JobQuery) -> BoxFuture<'a, Result<Vec<StoredJob>, StoreError>> {
        Box::pin(async move {
            let (limit, offset) = q.page()?;
            let guard = self.client().await?;
            let c = guard.as_ref().expect("connected");
            let rows = c
                .query(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE ($1::text IS NULL OR status = $1)
                     ORDER BY created_at, id LIMIT $2 OFFSET $3"
                    ),
                    &[&q.status, &limit, &offset],
                )
                .await
                .map_err(plain)?;
            Ok(rows.iter().map(job_of).collect())
        })
    }
}
