//! datad's capabilities over calibration jobs and measurement configurations. A job whose
//! status changes is also reported to the logbook (`log` topic, `kind: "job"`).

use crate::reply::store_error;
use std::sync::Arc;

use mqttcal_core::{Context, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use super::records::to_value;
use mqttcal_messages::{JobRecord, LogEntry, References};
use mqttcal_store::{JobQuery, Store, StoredJob};

/// A measurement configuration to store.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SaveConfig {
    /// The configuration (any JSON object: instrument settings, points, timings).
    body: Value,
}

/// Selects a configuration by its hash.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ByHash {
    /// The configuration's hash, as `save_config` returned it.
    hash: String,
}

/// Selects a job by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobId {
    /// The job's id.
    id: String,
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

async fn save_job(s: Arc<dyn Store>, j: JobRecord, ctx: Context) -> Result<StoredJob, NodeError> {
    let before = s.job(&j.id).await.map_err(store_error)?;
    let stored = s.save_job(&j).await.map_err(store_error)?;
    if let Some(entry) = job_event(before.as_ref(), &stored) {
        if let Err(e) = ctx.send(super::ingest::LOG_TOPIC, "*", &entry).await {
            tracing::warn!(
                "datad: cannot report job {} to the logbook: {e}",
                stored.job.id
            );
        }
    }
    Ok(stored)
}

/// Adds the job and configuration capabilities to `b`.
pub(super) fn register(b: NodeBuilder, store: &Arc<dyn Store>) -> NodeBuilder {
    let s = store.clone();
    let b = b.capability(
        "save_config",
        "Stores a measurement configuration once, under the SHA-256 of its canonical JSON; returns the hash",
        move |p: SaveConfig, _| {
            let s = s.clone();
            async move {
                if !p.body.is_object() {
                    return Err(NodeError::invalid_params("`body` must be an object"));
                }
                let hash = s.save_config(&p.body).await.map_err(store_error)?;
                Ok(json!({"hash": hash}))
            }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "config",
        "A stored measurement configuration, by hash",
        move |p: ByHash, _| {
            let s = s.clone();
            async move {
                match s.config(&p.hash).await.map_err(store_error)? {
                    Some(c) => to_value(c),
                    None => Err(NodeError::invalid_params(format!(
                        "no measurement configuration `{}`",
                        p.hash
                    ))),
                }
            }
        },
    );
    let s = store.clone();
    let b = b.capability(
        "save_job",
        "Adds a calibration job or updates it (status, configuration); a status change goes to the logbook",
        move |j: JobRecord, ctx| save_job(s.clone(), j, ctx),
    );
    let s = store.clone();
    let b = b.capability("job", "A calibration job", move |p: JobId, _| {
        let s = s.clone();
        async move {
            match s.job(&p.id).await.map_err(store_error)? {
                Some(j) => to_value(j),
                None => Err(NodeError::invalid_params(format!(
                    "there is no job `{}`",
                    p.id
                ))),
            }
        }
    });
    let s = store.clone();
    b.capability(
        "jobs",
        "Calibration jobs, oldest first, optionally by status (paged)",
        move |q: JobQuery, _| {
            let s = s.clone();
            async move { to_value(s.jobs(&q).await.map_err(store_error)?) }
        },
    )
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
