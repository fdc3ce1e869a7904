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

/// What a sender announced of one of its streams: the last `seq` it sent on `meas` (from
/// `bye`, a heartbeat or a census; none from `hello`, which only says the run began), and
/// whether it said `bye` (nothing follows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEnd {
    /// The sending node.
    pub origin: String,
    /// Its epoch.
    pub epoch: u64,
    /// The last `seq` it announced as sent, if it told one.
    pub announced: Option<u64>,
    /// Whether the announcement was its `bye`.
    pub closed: bool,
}

/// One sender's stream as the database knows it: the readings stored and what the sender
/// announced.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    /// The sending node.
    pub origin: String,
    /// Its epoch.
    pub epoch: u64,
    /// Distinct `seq`s stored.
    pub stored: u64,
    /// The highest `seq` stored, if any.
    pub head: Option<u64>,
    /// The highest `seq` announced as sent, if any announcement was kept.
    pub announced: Option<u64>,
    /// Whether the sender said `bye` for this epoch.
    pub closed: bool,
    /// The newest send time known of the stream (a reading's, else an announcement's
    /// arrival), seconds since the Unix epoch.
    pub last_seen: f64,
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

    /// Keeps what senders announced of their streams, in one transaction: the highest
    /// announced `seq` of each stream wins, and a stream once closed stays closed. A `seq`
    /// past `i64::MAX` is kept as `i64::MAX`; an epoch past it is not kept (no reading of
    /// it can be stored either).
    fn note_stream_ends<'a>(
        &'a self,
        ends: &'a [StreamEnd],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// For each of `streams` (sender, epoch), the highest `seq` stored or announced (as kept
    /// by [`MeasurementStore::note_stream_ends`]), in one query; streams of which nothing is
    /// known are left out. Where a gap counter that does not know a stream (anymore) takes
    /// it up.
    fn streams_known_last<'a>(
        &'a self,
        streams: &'a [(String, u64)],
    ) -> BoxFuture<'a, Result<Vec<StreamHead>, StoreError>>;

    /// Every stream with a reading sent, or an announcement kept, in the last `days` days,
    /// whole (its older readings counted too), ordered by sender and epoch.
    /// `origin` narrows it to one sender (cheaper on a large database).
    fn stream_summaries<'a>(
        &'a self,
        days: f64,
        origin: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<StreamSummary>, StoreError>>;
}

/// Joins per-stream counts of the readings (origin, epoch, distinct seqs, highest seq, newest
/// send time) with the kept announcements (origin, epoch, announced, closed, updated_at).
pub(crate) fn join_streams(
    counted: Vec<(String, i64, i64, i64, f64)>,
    ends: Vec<(String, i64, Option<i64>, bool, f64)>,
) -> Vec<StreamSummary> {
    let mut all: std::collections::BTreeMap<(String, u64), StreamSummary> = counted
        .into_iter()
        .map(|(origin, epoch, stored, head, sent)| {
            let epoch = epoch.max(0) as u64;
            let s = StreamSummary {
                origin: origin.clone(),
                epoch,
                stored: stored.max(0) as u64,
                head: u64::try_from(head).ok(),
                announced: None,
                closed: false,
                last_seen: sent,
            };
            ((origin, epoch), s)
        })
        .collect();
    for (origin, epoch, announced, closed, at) in ends {
        let epoch = epoch.max(0) as u64;
        let s = all
            .entry((origin.clone(), epoch))
            .or_insert_with(|| StreamSummary {
                origin,
                epoch,
                stored: 0,
                head: None,
                announced: None,
                closed: false,
                last_seen: at,
            });
        s.announced = announced.and_then(|a| u64::try_from(a).ok());
        s.closed = closed;
        s.last_seen = s.last_seen.max(at);
    }
    all.into_values().collect()
}

/// `v` as a database integer: past `i64::MAX` it is `i64::MAX`.
pub(crate) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `ends` with one entry per stream (the highest announcement, closed if any was), epochs
/// past `i64::MAX` left out.
pub(crate) fn merge_ends(ends: &[StreamEnd]) -> Vec<StreamEnd> {
    let mut by: std::collections::BTreeMap<(&str, u64), StreamEnd> = Default::default();
    for e in ends.iter().filter(|e| i64::try_from(e.epoch).is_ok()) {
        by.entry((&e.origin, e.epoch))
            .and_modify(|m| {
                m.announced = m.announced.max(e.announced);
                m.closed |= e.closed;
            })
            .or_insert_with(|| e.clone());
    }
    by.into_values().collect()
}

/// The columns of a measurement row, in the order the backends select them.
pub(crate) const COLUMNS: &str = "dedup_key, origin, epoch, seq, sent_at, acquired, standard, src, value, unit, nplc, ndigits, range_v, mode, pol, job, raw, origin_uid, environment, payload";
