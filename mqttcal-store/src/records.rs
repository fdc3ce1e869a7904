//! The records of an ISO/IEC 17025 laboratory beside its measurements: the equipment
//! register with each item's calibration history, results with their uncertainty budget,
//! and certificate records with their rendered documents.

use mqttcal_messages::{CalibrationRecord, CertificateRecord, Equipment, ResultRecord};
use schemars::JsonSchema;
use serde::Serialize;

use crate::{BoxFuture, StoreError};

/// A stored result: its id and when it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StoredResult {
    /// Id, cited by a correction.
    pub id: i64,
    /// When it was stored.
    pub recorded_at: f64,
    /// The result.
    #[serde(flatten)]
    pub result: ResultRecord,
}

/// Where the register, histories, results and certificates are kept. Nothing is changed in
/// place: a correction is a new result citing the one it amends, an amended certificate a
/// new number citing the one it replaces.
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    /// Adds an item to the equipment register, or updates it (check-out, due date).
    fn register_equipment<'a>(&'a self, e: &'a Equipment) -> BoxFuture<'a, Result<(), StoreError>>;

    /// An item of the equipment register.
    fn equipment<'a>(&'a self, id: &'a str)
        -> BoxFuture<'a, Result<Option<Equipment>, StoreError>>;

    /// The equipment register, by id: at most `limit` items after the first `offset`.
    fn register<'a>(
        &'a self,
        limit: u32,
        offset: u64,
    ) -> BoxFuture<'a, Result<Vec<Equipment>, StoreError>>;

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

    /// The certificates issued from `since` up to `until` (seconds since the Unix epoch,
    /// both included), oldest first, at most `limit`, without their documents (read one
    /// with [`RecordStore::certificate`] for those).
    fn certificates<'a>(
        &'a self,
        since: f64,
        until: f64,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<CertificateRecord>, StoreError>>;

    /// The next number of certificate series `series` (1, 2, ...), taken atomically: never
    /// given twice, whoever asks and however often the store restarts. A number taken and
    /// not used leaves a gap.
    fn next_certificate_number<'a>(
        &'a self,
        series: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

/// A stored budget, read back as its entries.
pub(crate) fn budget_of(
    result: i64,
    v: serde_json::Value,
) -> Result<Vec<mqttcal_messages::BudgetEntry>, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
        what: format!("budget of result {result}"),
        source: Box::new(e),
    })
}

/// A stored list of the equipment a result relies on.
pub(crate) fn equipment_used_of(
    result: i64,
    v: serde_json::Value,
) -> Result<Vec<mqttcal_messages::EquipmentUsed>, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt {
        what: format!("equipment of result {result}"),
        source: Box::new(e),
    })
}
