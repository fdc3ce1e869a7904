//! datad's capabilities over calibration jobs and measurement configurations. A job whose
//! status changes is also reported to the logbook (`log` topic, a [`LogEntry`] of kind `job`).

use std::sync::Arc;

use mqttcal_core::{node, Context, NodeError};
use mqttcal_messages::{JobRecord, LogEntry, References};
use mqttcal_store::{ConfigRecord, JobQuery, Store, StoredJob};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::reply::store_error;

/// A measurement configuration to store.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveConfig {
    /// The configuration (any JSON object: instrument settings, points, timings).
    pub body: Value,
}

/// Selects a configuration by its hash.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByHash {
    /// The configuration's hash, as `save_config` returned it.
    pub hash: String,
}

/// The hash a configuration is stored under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigHash {
    /// SHA-256 (hex) of the configuration's canonical JSON.
    pub hash: String,
}

/// Selects a job by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobId {
    /// The job's id.
    pub id: String,
}

/// The logbook entry for a job that is new or changed status, if it did.
fn job_event(before: Option<&StoredJob>, now: &StoredJob) -> Option<LogEntry> {
    let status = &now.job.status;
    let text = match before {
        None => format!("job {} created ({status})", now.job.id),
        Some(b) if b.job.status != *status => {
            format!("job {}: {} -> {status}", now.job.id, b.job.status)
        }
        Some(_) => return None,
    };
    Some(LogEntry {
        tags: vec!["job".into(), status.clone()],
        refs: References {
            job: Some(now.job.id.clone()),
            ..References::default()
        },
        ..LogEntry::new("job", text)
    })
}

/// The job and configuration capabilities of datad.
#[derive(Debug)]
pub(super) struct Jobs {
    pub(super) store: Arc<dyn Store>,
}

#[node]
impl Jobs {
    /// Stores a measurement configuration once, under the SHA-256 of its canonical JSON; returns the hash
    #[capability]
    async fn save_config(&self, p: SaveConfig) -> Result<ConfigHash, NodeError> {
        if !p.body.is_object() {
            return Err(NodeError::invalid_params("`body` must be an object"));
        }
        let hash = self.store.save_config(&p.body).await.map_err(store_error)?;
        Ok(ConfigHash { hash })
    }

    /// A stored measurement configuration, by hash
    #[capability]
    async fn config(&self, p: ByHash) -> Result<ConfigRecord, NodeError> {
        match self.store.config(&p.hash).await.map_err(store_error)? {
            Some(c) => Ok(c),
            None => Err(NodeError::invalid_params(format!(
                "no measurement configuration `{}`",
                p.hash
            ))),
        }
    }

    /// Adds a calibration job or updates it (status, configuration); a status change goes to the logbook
    #[capability]
    async fn save_job(&self, j: JobRecord, ctx: &Context) -> Result<StoredJob, NodeError> {
        let before = self.store.job(&j.id).await.map_err(store_error)?;
        let stored = self.store.save_job(&j).await.map_err(store_error)?;
        if let Some(entry) = job_event(before.as_ref(), &stored) {
            if let Err(e) = ctx.send(LogEntry::TOPIC, "*", &entry).await {
                tracing::warn!(
                    "datad: cannot report job {} to the logbook: {e}",
                    stored.job.id
                );
            }
        }
        Ok(stored)
    }

    /// A calibration job
    #[capability]
    async fn job(&self, p: JobId) -> Result<StoredJob, NodeError> {
        match self.store.job(&p.id).await.map_err(store_error)? {
            Some(j) => Ok(j),
            None => Err(
                NodeError::invalid_params(format!("there is no job `{}`", p.id))
                    .with_details(serde_json::json!({"reason": "not_found"})),
            ),
        }
    }

    /// Calibration jobs, oldest first, optionally by status (paged)
    #[capability]
    async fn jobs(&self, q: JobQuery) -> Result<Vec<StoredJob>, NodeError> {
        self.store.jobs(&q).await.map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: &str) -> StoredJob {
        StoredJob {
            job: JobRecord {
                id: "J-1".into(),
                procedure: None,
                item: None,
                customer: None,
                status: status.into(),
                config_hash: None,
                body: None,
            },
            created_at: 1.0,
            updated_at: 1.0,
        }
    }

    #[test]
    fn only_new_jobs_and_status_changes_reach_the_logbook() {
        let e = job_event(None, &stored("planned")).unwrap();
        assert_eq!(e.text, "job J-1 created (planned)");
        assert_eq!(e.refs.job.as_deref(), Some("J-1"));
        let e = job_event(Some(&stored("planned")), &stored("running")).unwrap();
        assert_eq!(e.text, "job J-1: planned -> running");
        assert_eq!(
            job_event(Some(&stored("running")), &stored("running")),
            None
        );
    }
}
