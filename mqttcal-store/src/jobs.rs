//! Calibration jobs and the measurement configurations they ran with.
//!
//! A configuration is stored once under its [`config_hash`](mqttcal_messages::config_hash),
//! the same hash that results carry (ISO/IEC 17025 §7.11): the exact settings behind a
//! result can always be shown.

use mqttcal_messages::JobRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BoxFuture, StoreError};

/// A stored measurement configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigRecord {
    /// [`config_hash`](mqttcal_messages::config_hash) of `body`.
    pub hash: String,
    /// The configuration.
    pub body: Value,
    /// When it was first stored, seconds since the Unix epoch.
    pub recorded_at: f64,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoredJob {
    /// The job.
    #[serde(flatten)]
    pub job: JobRecord,
    /// When it was first stored.
    pub created_at: f64,
    /// When it last changed.
    pub updated_at: f64,
}

/// Which jobs to list, oldest first.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs with this status.
    #[serde(default)]
    pub status: Option<String>,
    /// At most this many (1 to 10000, default 100).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Skip this many.
    #[serde(default)]
    pub offset: Option<u64>,
}

impl JobQuery {
    /// `limit` (default 100) and `offset`, checked.
    pub(crate) fn page(&self) -> Result<(i64, i64), StoreError> {
        crate::page::page(self.limit, self.offset, 100)
    }
}

/// Where jobs and measurement configurations are kept.
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Stores a measurement configuration under its hash (once); returns the hash.
    fn save_config<'a>(&'a self, body: &'a Value) -> BoxFuture<'a, Result<String, StoreError>>;

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
}

/// The refusal of a job naming a configuration that is not stored.
pub(crate) fn unknown_config(hash: &str) -> StoreError {
    StoreError::Invalid(format!(
        "no measurement configuration `{hash}`: store it first with `save_config`"
    ))
}
