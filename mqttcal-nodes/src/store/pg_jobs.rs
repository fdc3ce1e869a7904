//! PostgreSQL: calibration jobs and measurement configurations.

use tokio_postgres::Row;

use super::jobs::{config_hash, unknown_config, ConfigRecord, JobQuery, JobRecord, StoredJob};
use super::pg_records::{now, plain};
use super::postgres::PostgresStore;
use super::StoreError;

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

impl PostgresStore {
    pub(super) async fn pg_save_config(
        &self,
        body: &serde_json::Value,
    ) -> Result<String, StoreError> {
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
    }

    pub(super) async fn pg_config(&self, hash: &str) -> Result<Option<ConfigRecord>, StoreError> {
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
    }

    pub(super) async fn pg_save_job(&self, j: &JobRecord) -> Result<StoredJob, StoreError> {
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
    }

    pub(super) async fn pg_job(&self, id: &str) -> Result<Option<StoredJob>, StoreError> {
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
    }

    pub(super) async fn pg_jobs(&self, q: &JobQuery) -> Result<Vec<StoredJob>, StoreError> {
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
    }
}
