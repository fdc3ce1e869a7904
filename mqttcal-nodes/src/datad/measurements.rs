//! datad's capabilities over the stored readings: counters, queries, exports.

use std::sync::Arc;

use mqttcal_core::{node, NodeError};
use mqttcal_store::{MeasurementQuery, MeasurementRow, Store};

use super::export::{self, Export, ExportParams};
use super::ingest::{IngestStats, StatsSnapshot};
use super::report::{gap_report, GapQuery, GapReport};
use crate::reply::store_error;

/// The measurement capabilities of datad.
#[derive(Debug)]
pub(super) struct Measurements {
    pub(super) store: Arc<dyn Store>,
    pub(super) stats: Arc<IngestStats>,
    /// One of several instances sharing the stream: `missing` comes from the database.
    pub(super) shared: bool,
}

#[node]
impl Measurements {
    /// Since this run started: rows stored, duplicates, rejected messages, gaps per sender, ingest rate
    #[capability]
    async fn stats(&self) -> Result<StatsSnapshot, NodeError> {
        let mut snapshot = self.stats.snapshot();
        if self.shared {
            // This instance saw only its share of each stream: what is missing is what
            // the database lacks, over the streams `gaps` looks at by default.
            let streams = self
                .store
                .stream_summaries(GapQuery::DEFAULT_DAYS, None)
                .await
                .map_err(store_error)?;
            let report = tokio::task::spawn_blocking(move || gap_report(&streams, usize::MAX))
                .await
                .map_err(|e| NodeError::internal(format!("gap report: {e}")))?;
            snapshot.missing.clear();
            for s in report.streams.iter().filter(|s| s.missing > 0) {
                *snapshot.missing.entry(s.origin.clone()).or_default() += s.missing;
            }
        }
        Ok(snapshot)
    }

    /// Readings missing per sender's epoch, from the stored readings and what each sender
    /// announced; a stream cut by a restart says after which `seq` its tail is unknown
    #[capability]
    async fn gaps(&self, q: GapQuery) -> Result<GapReport, NodeError> {
        let bad = |(field, message): (&str, String)| {
            NodeError::invalid_params(message).with_details(serde_json::json!({ "field": field }))
        };
        let days = q.days().map_err(bad)?;
        let limit = q.limit().map_err(bad)?;
        let streams = self
            .store
            .stream_summaries(days, q.origin.as_deref())
            .await
            .map_err(store_error)?;
        // Tens of thousands of streams take a moment: off the node's event loop.
        tokio::task::spawn_blocking(move || gap_report(&streams, limit))
            .await
            .map_err(|e| NodeError::internal(format!("gap report: {e}")))
    }

    /// Measurements by standard, origin, job and send-time range, paged (oldest first)
    #[capability]
    async fn query(&self, q: MeasurementQuery) -> Result<Vec<MeasurementRow>, NodeError> {
        self.store.query_measurements(&q).await.map_err(store_error)
    }

    /// Measurements as CSV or JSON (same filters and paging as `query`)
    #[capability]
    async fn export(&self, p: ExportParams) -> Result<Export, NodeError> {
        let rows = self
            .store
            .query_measurements(&p.query)
            .await
            .map_err(store_error)?;
        Ok(export::render(p.format, &rows))
    }
}
