//! datad: stores what the lab publishes on `meas`, exactly once, and reports losses.
//!
//! Ingest runs on a connection of its own: a persistent session (the broker keeps queued
//! readings while datad is away) with manual acknowledgements, so a reading is acknowledged
//! only after its row is committed; rows are written in batches (one transaction each) and a
//! redelivered reading is never stored twice. Gaps in each sender's `seq` are counted, also
//! at the tail of a burst from the last `seq` that `bye` and heartbeats announce.

use crate::reply::store_error;
use std::sync::Arc;
use std::time::Duration;

use mqttcal_core::transport::Transport;
use mqttcal_core::{NoParams, NodeBuilder, NodeError};
use serde::Deserialize;

mod decode;
mod decode_fast;
mod export;
mod gaps;
mod ingest;
mod jobs;
mod records;

pub use decode::{measurement_row, NotAReading};
pub use decode_fast::parse_common;
pub use export::{Export, ExportFormat, ExportParams};
pub use gaps::GapTracker;
pub use ingest::{IngestStats, Ingestor, StatsSnapshot};

use mqttcal_store::{MeasurementQuery, MeasurementRow, Store};

/// The `datad` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DatadConfig {
    /// `postgres://...` or `sqlite:PATH` (default `sqlite:mqttcal.db`; `MQTTCAL_DATABASE_URL`
    /// overrides it).
    #[serde(default = "default_database")]
    pub database: String,
    /// Rows per transaction at most.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Longest wait, in milliseconds, before a partial batch is written.
    #[serde(default = "default_batch_ms")]
    pub batch_ms: u64,
}

fn default_database() -> String {
    "sqlite:mqttcal.db".into()
}

fn default_batch() -> usize {
    500
}

fn default_batch_ms() -> u64 {
    20
}

impl Default for DatadConfig {
    fn default() -> Self {
        Self {
            database: default_database(),
            batch: default_batch(),
            batch_ms: default_batch_ms(),
        }
    }
}

/// Starts ingesting on `transport` (topic prefix `prefix`) into `store`, and returns the
/// datad node (named `name`) that answers queries and statistics.
pub async fn start(
    name: &str,
    prefix: &str,
    config: &DatadConfig,
    store: Arc<dyn Store>,
    transport: &dyn Transport,
) -> Result<NodeBuilder, NodeError> {
    let ingestor = Ingestor::start(
        &format!("{name}-ingest"),
        prefix,
        store.clone(),
        transport,
        config.batch.max(1),
        Duration::from_millis(config.batch_ms),
    )
    .await
    .map_err(|e| NodeError::internal(mqttcal_core::error_chain(&e)))?;
    let stats = ingestor.stats();
    let query_store = store.clone();
    let export_store = store.clone();
    let stop = Arc::new(tokio::sync::Mutex::new(Some(ingestor)));
    let builder = jobs::register(records::register(NodeBuilder::new(name), &store), &store);
    Ok(builder
        .prefix(prefix)
        .capability(
            "stats",
            "Rows stored, duplicates, rejected messages, gaps per sender, ingest rate",
            move |_: NoParams, _| {
                let stats = stats.clone();
                async move { Ok::<_, NodeError>(stats.snapshot()) }
            },
        )
        .capability(
            "query",
            "Measurements by standard, origin, job and send-time range, paged (oldest first)",
            move |q: MeasurementQuery, _| {
                let store = query_store.clone();
                async move {
                    store
                        .query_measurements(&q)
                        .await
                        .map(|rows| rows.into_iter().map(row_json).collect::<Vec<_>>())
                        .map_err(store_error)
                }
            },
        )
        .capability(
            "export",
            "Measurements as CSV or JSON (same filters and paging as `query`)",
            move |p: ExportParams, _| {
                let store = export_store.clone();
                async move {
                    let rows = store
                        .query_measurements(&p.query)
                        .await
                        .map_err(store_error)?;
                    Ok::<_, NodeError>(export::render(p.format, &rows))
                }
            },
        )
        .on_stop(move |_| async move {
            if let Some(i) = stop.lock().await.take() {
                i.stop().await;
            }
        }))
}

fn row_json(r: MeasurementRow) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}
