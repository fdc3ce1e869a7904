//! datad: stores what the lab publishes on `meas`, exactly once, reports losses, and keeps the
//! lab's records (equipment register, calibration histories, results, certificates, jobs).
//!
//! Available with the `datad` feature; the `sqlite` and `postgres` features give it its
//! storage backends.
//!
//! Readings come through a durable intake ([`mqttcal_core::intake`], session
//! `<name>-ingest`): the broker keeps queued readings while datad is away, a reading is
//! acknowledged only after its row is committed, rows are written in batches (one
//! transaction each), a redelivered reading is never stored twice, and a reading the
//! database refuses for good is set aside without stalling the rest. Gaps in each sender's
//! `seq` are counted, also at the tail of a burst from the last `seq` that `bye`, heartbeats
//! and a periodic census announce, and reported to the logbook.
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport) -> Result<(), Box<dyn std::error::Error>> {
//! use mqttcal_nodes::datad::{self, DatadConfig};
//! let store = mqttcal_store::open("sqlite:lab.db").await?;
//! let node = datad::node("datad", &DatadConfig::default(), store).build().start(transport).await?;
//! # node.stop().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use mqttcal_core::NodeBuilder;
use mqttcal_store::Store;
use serde::Deserialize;

mod census;
mod decode;
mod decode_fast;
mod export;
mod gaps;
mod ingest;
mod jobs;
mod measurements;
mod records;
mod report;

pub use decode::{measurement_row, NotAReading};
pub use decode_fast::parse_common;
pub use export::{Export, ExportFormat, ExportParams};
pub use gaps::GapTracker;
pub use ingest::{IngestStats, StatsSnapshot};
pub use jobs::{ByHash, ConfigHash, JobId, SaveConfig};
pub use records::{ById, Issued, IssuedBetween, Numbered, Page, Series, Stored};
pub use report::{gap_report, GapQuery, GapReport, StreamReport, StreamState};

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
    /// Shares `meas` and `announce` with the other datad instances of this group (an MQTT 5
    /// shared subscription): the broker hands each reading to one of them. Give each
    /// instance its own name and the same database; `missing` in `stats` then comes from
    /// the database, as `gaps` does, since an instance sees only part of each stream.
    #[serde(default)]
    pub share: Option<String>,
    /// The central datad of several bridged labs (deploy/mosquitto/bridge.conf): also
    /// reads `<lab>/meas` and `<lab>/announce`, one topic level per lab, and keeps each
    /// reading's lab in its origin (`<lab>/<sender>`), so that two labs' `labd` are two
    /// streams and a reading's key holds its lab. For the shared topic layout.
    #[serde(default)]
    pub labs: bool,
}

fn default_database() -> String {
    "sqlite:mqttcal.db".into()
}

fn default_batch() -> usize {
    2000
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
            share: None,
            labs: false,
        }
    }
}

/// datad before it starts, for a caller that wants its ingest counters at hand (a bench,
/// an embedding application); [`node`] is the usual way in.
#[derive(Debug, Clone)]
pub struct Datad {
    config: DatadConfig,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
}

impl Datad {
    /// datad with `config`, keeping its data in `store`.
    pub fn new(config: &DatadConfig, store: Arc<dyn Store>) -> Self {
        Self {
            config: config.clone(),
            store,
            stats: Arc::default(),
        }
    }

    /// The ingest counters (what `stats` answers), to read while the node runs.
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }

    /// The node named `name`.
    pub fn node(self, name: &str) -> NodeBuilder {
        let intake = ingest::intake(&self.config, self.store.clone(), self.stats.clone());
        let census = intake.injector();
        NodeBuilder::new(name)
            .register(measurements::Measurements {
                store: self.store.clone(),
                stats: self.stats,
                shared: self.config.share.is_some(),
            })
            .register(records::Records {
                store: self.store.clone(),
            })
            .register(jobs::Jobs { store: self.store })
            .intake(intake)
            .background(move |ctx| census::run(ctx, census))
    }
}

/// The datad node named `name`, with `config`, keeping its data in `store`.
pub fn node(name: &str, config: &DatadConfig, store: Arc<dyn Store>) -> NodeBuilder {
    Datad::new(config, store).node(name)
}
