//! Measurements: one row per reading, stored exactly once, queried by standard, sender, job
//! and time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{BoxFuture, JsonText, StoreError};

/// One stored reading: the fields of a reading as columns, plus the message exactly as it
/// arrived (`payload`), so nothing a sender wrote is lost.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MeasurementRow {
    /// Unique per reading: (`from`, `epoch`, `seq`), or (`from`, `timestamp`) for senders
    /// without `seq`; a redelivered message has the same key and is stored once.
    pub dedup_key: String,
    /// The sending node.
    pub origin: String,
    /// The sender's epoch.
    pub epoch: Option<i64>,
    /// The sender's sequence number on `meas`.
    pub seq: Option<i64>,
    /// Send time, seconds since the Unix epoch.
    pub sent_at: f64,
    /// Acquisition time, if the sender gave it.
    pub acquired: Option<f64>,
    /// The measured standard (the first of `src`).
    pub standard: Option<String>,
    /// All standards (`src`), as JSON.
    pub src: Option<JsonText>,
    /// `DC-measurement`.
    pub value: f64,
    /// Unit.
    pub unit: Option<String>,
    /// NPLC.
    pub nplc: Option<f64>,
    /// Ndigits.
    pub ndigits: Option<i32>,
    /// DMM range.
    pub range: Option<f64>,
    /// Mode.
    pub mode: Option<String>,
    /// Polarity.
    pub pol: Option<String>,
    /// Calibration job, if any.
    pub job: Option<String>,
    /// The instrument's raw response.
    pub raw: Option<String>,
    /// `OriginUID`, as JSON.
    pub origin_uid: Option<JsonText>,
    /// Environment snapshot, as JSON.
    pub environment: Option<JsonText>,
    /// The message exactly as received.
    pub payload: String,
}

/// What to select from the measurements.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasurementQuery {
    /// The measured standard.
    #[serde(default)]
    pub standard: Option<String>,
    /// The sending node.
    #[serde(default)]
    pub origin: Option<String>,
    /// The calibration job.
    #[serde(default)]
    pub job: Option<String>,
    /// From this send time (s since the Unix epoch, inclusive).
    #[serde(default)]
    pub since: Option<f64>,
    /// Up to this send time (exclusive).
    #[serde(default)]
    pub until: Option<f64>,
    /// At most this many rows (default 1000, at most 10000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Skip this many rows (paging).
    #[serde(default)]
    pub offset: Option<u64>,
}

impl MeasurementQuery {
    /// `limit` (default 1000) and `offset`, checked.
    pub(crate) fn page(&self) -> Result<(i64, i64), StoreError> {
        crate::page::page(self.limit, self.offset, 1000)
    }
}

/// The newest stored reading of one sender's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHead {
    /// The sending node.
    pub origin: String,
    /// Its epoch.
    pub epoch: u64,
    /// The highest `seq` stored.
    pub seq: u64,
}

/// Where readings are kept.
pub trait MeasurementStore: Send + Sync + std::fmt::Debug {
    /// Inserts rows in one transaction; a row whose `dedup_key` is stored already is
    /// skipped. Returns how many rows were new. A row the database refuses (a NUL byte in a
    /// text, say) fails the whole batch with [`StoreError::Rejected`].
    fn insert_measurements<'a>(
        &'a self,
        rows: &'a [&'a MeasurementRow],
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// How many measurements are stored.
    fn count_measurements(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Measurements matching `q`, oldest first.
    fn query_measurements<'a>(
        &'a self,
        q: &'a MeasurementQuery,
    ) -> BoxFuture<'a, Result<Vec<MeasurementRow>, StoreError>>;

    /// The highest `seq` stored for each sender's epoch, for readings sent in the last
    /// `days` days: where a restarted datad takes up each stream.
    fn stream_heads(&self, days: f64) -> BoxFuture<'_, Result<Vec<StreamHead>, StoreError>>;
}

/// The columns of a measurement row, in the order the backends select them.
pub(crate) const COLUMNS: &str = "dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload";
