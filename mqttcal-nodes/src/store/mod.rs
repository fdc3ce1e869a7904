//! Storage for datad and logd: a [`Store`] trait with PostgreSQL (production) and SQLite
//! (the embedded default) backends, versioned migrations applied at open.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mqttcal_nodes::store::StoreError> {
//! use mqttcal_nodes::store::{open, MeasurementQuery};
//! let store = open("sqlite:lab.db").await?; // or "postgres://user@host/db"
//! let rows = store.query_measurements(&MeasurementQuery { standard: Some("Z1".into()), ..Default::default() }).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;

use schemars::JsonSchema;
use serde::Deserialize;

mod jobs;
mod json_text;
mod logbook;
mod pg_copy;
mod pg_jobs;
mod pg_logbook;
mod pg_records;
mod postgres;
mod records;
mod row;
mod row_fast;
mod sqlite;
mod sqlite_jobs;
mod sqlite_logbook;
mod sqlite_records;

pub use jobs::{config_hash, ConfigRecord, JobQuery, JobRecord, StoredJob};
pub use json_text::JsonText;
pub use logbook::{Checkpoint, LogQuery, LogRow};
pub use pg_copy::{write_copy, COPY_COLUMNS};
pub use postgres::PostgresStore;
pub(crate) use records::hex;
pub use records::{
    CalibrationRecord, CertificateDocument, CertificateRecord, Equipment, EquipmentKind,
    ResultRecord, StoredResult,
};
pub use row::{MeasurementRow, NotAMeasurement};
pub use sqlite::SqliteStore;

/// A boxed future, so [`Store`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The schema version this build knows.
pub const SCHEMA_VERSION: i64 = 3;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or reached.
    #[error("cannot open the database `{target}`: {reason}")]
    Open {
        /// Where (the URL without password).
        target: String,
        /// Why.
        reason: String,
    },
    /// The database was written by a newer mqttcal.
    #[error("the database schema is version {found}, newer than this mqttcal knows ({known}): upgrade mqttcal before opening it")]
    NewerSchema {
        /// Version found.
        found: i64,
        /// Version this build knows.
        known: i64,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(String),
    /// A bad query parameter.
    #[error("{0}")]
    Invalid(String),
}

/// As a reply: bad input is `invalid_params`, the rest `internal`.
impl From<StoreError> for mqttcal_core::NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => Self::invalid_params(m),
            other => Self::internal(other.to_string()),
        }
    }
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

/// The `limit` (`default` when not given; 1 to 10000) and `offset` of a paged query, as
/// SQL takes them.
pub(crate) fn page(
    limit: Option<u32>,
    offset: Option<u64>,
    default: u32,
) -> Result<(i64, i64), StoreError> {
    let limit = match limit.unwrap_or(default) {
        n @ 1..=10_000 => i64::from(n),
        _ => return Err(StoreError::Invalid("`limit` must be 1 to 10000".into())),
    };
    let offset = i64::try_from(offset.unwrap_or(0))
        .map_err(|_| StoreError::Invalid("`offset` is too large".into()))?;
    Ok((limit, offset))
}

impl MeasurementQuery {
    /// `limit` (default 1000) and `offset`, checked.
    pub(crate) fn page(&self) -> Result<(i64, i64), StoreError> {
        page(self.limit, self.offset, 1000)
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

/// Persistent storage of a lab's records.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Inserts rows in one transaction; a row whose `dedup_key` is stored already is
    /// skipped. Returns how many rows were new.
    fn insert_measurements<'a>(
        &'a self,
        rows: &'a [MeasurementRow],
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// How many measurements are stored.
    fn count_measurements(&self) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Measurements matching `q`, oldest first.
    fn query_measurements<'a>(
        &'a self,
        q: &'a MeasurementQuery,
    ) -> BoxFuture<'a, Result<Vec<MeasurementRow>, StoreError>>;

    /// The highest `seq` stored for each sender's epoch (`origin`, `epoch`, `seq`), for
    /// readings sent in the last `days` days: where a restarted datad takes up each stream.
    fn stream_heads(&self, days: f64) -> BoxFuture<'_, Result<Vec<StreamHead>, StoreError>>;

    /// Adds an item to the equipment register, or updates it (check-out, due date).
    fn register_equipment<'a>(&'a self, e: &'a Equipment) -> BoxFuture<'a, Result<(), StoreError>>;

    /// An item of the equipment register.
    fn equipment<'a>(&'a self, id: &'a str)
        -> BoxFuture<'a, Result<Option<Equipment>, StoreError>>;

    /// Adds a calibration to an item's history; returns its id.
    fn add_calibration<'a>(
        &'a self,
        c: &'a CalibrationRecord,
    ) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// The calibration history of an item, oldest first.
    fn history<'a>(
        &'a self,
        equipment: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CalibrationRecord>, StoreError>>;

    /// Stores a result (a correction cites the one it amends); returns it as stored.
    fn save_result<'a>(
        &'a self,
        r: &'a ResultRecord,
    ) -> BoxFuture<'a, Result<StoredResult, StoreError>>;

    /// The results of a job, in the order they were stored.
    fn results<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Vec<StoredResult>, StoreError>>;

    /// Stores a certificate record with its documents; returns its content hash. A number
    /// is issued once: an amendment takes a new number and names the one it `replaces`.
    fn save_certificate<'a>(
        &'a self,
        c: &'a CertificateRecord,
    ) -> BoxFuture<'a, Result<String, StoreError>>;

    /// A certificate record with its documents and content hash.
    fn certificate<'a>(
        &'a self,
        number: &'a str,
    ) -> BoxFuture<'a, Result<Option<CertificateRecord>, StoreError>>;

    /// Stores a measurement configuration under its [`config_hash`] (once); returns the hash.
    fn save_config<'a>(
        &'a self,
        body: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<String, StoreError>>;

    /// A stored measurement configuration.
    fn config<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigRecord>, StoreError>>;

    /// Adds a calibration job or updates it (status, configuration); a configuration it
    /// names must be stored already. Returns the job as stored.
    fn save_job<'a>(&'a self, j: &'a JobRecord) -> BoxFuture<'a, Result<StoredJob, StoreError>>;

    /// A calibration job.
    fn job<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<StoredJob>, StoreError>>;

    /// Calibration jobs matching `q`, oldest first.
    fn jobs<'a>(&'a self, q: &'a JobQuery) -> BoxFuture<'a, Result<Vec<StoredJob>, StoreError>>;

    /// The newest logbook entry: its `seq` and hash.
    fn log_head(&self) -> BoxFuture<'_, Result<Option<(i64, String)>, StoreError>>;

    /// Appends a logbook entry (its `seq` must be new: one writer).
    fn append_log<'a>(&'a self, e: &'a LogRow) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Logbook entries matching `q`, oldest first.
    fn search_log<'a>(&'a self, q: &'a LogQuery) -> BoxFuture<'a, Result<Vec<LogRow>, StoreError>>;

    /// Up to `limit` logbook entries after `seq`, in order (for walking the chain).
    fn log_page(&self, after: i64, limit: i64) -> BoxFuture<'_, Result<Vec<LogRow>, StoreError>>;

    /// Stores a signed checkpoint of the logbook.
    fn add_checkpoint<'a>(&'a self, c: &'a Checkpoint) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Every checkpoint, by entry.
    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, StoreError>>;

    /// The schema version of the database.
    fn schema_version(&self) -> BoxFuture<'_, Result<i64, StoreError>>;
}

/// Opens `target`: `postgres://...` (PostgreSQL) or `sqlite:PATH` / a plain path (SQLite),
/// applying pending migrations.
pub async fn open(target: &str) -> Result<Box<dyn Store>, StoreError> {
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        Ok(Box::new(PostgresStore::connect(target).await?))
    } else {
        let path = target.strip_prefix("sqlite:").unwrap_or(target);
        Ok(Box::new(SqliteStore::open(path).await?))
    }
}

/// `target` with any password removed, for messages.
pub(crate) fn redact(target: &str) -> String {
    match (target.find("://"), target.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &target[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &target[..s + 3], &target[at..]),
                None => target.to_owned(),
            }
        }
        _ => target.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("lab.db"), "lab.db");
    }
}
