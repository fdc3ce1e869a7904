//! datad's capabilities over the lab's records: the equipment register and each item's
//! calibration history, results, certificate records.

use std::sync::Arc;

use mqttcal_core::{node, NodeError};
use mqttcal_messages::{CalibrationRecord, CertificateRecord, Equipment, ResultRecord};
use mqttcal_store::{Store, StoredResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::reply::store_error;

/// Selects one item by its id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ById {
    /// The id (equipment id, job or certificate number).
    pub id: String,
}

/// The id of what was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stored<T> {
    /// Its id.
    pub id: T,
}

/// A certificate as stored: its number and the hash of its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Issued {
    /// The certificate number.
    pub number: String,
    /// SHA-256 over its data and documents (see `docs/protocol.md`).
    pub content_hash: String,
}

/// A series of certificate numbers (e.g. `CAL-2026`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// The series: 1 to 64 letters, digits and `-`, `_`, `.`, `/`.
    pub series: String,
}

/// A number taken from a series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Numbered {
    /// The series.
    pub series: String,
    /// The number: 1 for the first, never given twice.
    pub number: u64,
}

/// The records capabilities of datad.
#[derive(Debug)]
pub(super) struct Records {
    pub(super) store: Arc<dyn Store>,
}

/// `v`, or `invalid_params` saying there is no `what`, with `details.reason` `not_found`
/// so a program can tell it from a malformed id.
fn found<T>(v: Option<T>, what: impl FnOnce() -> String) -> Result<T, NodeError> {
    v.ok_or_else(|| {
        NodeError::invalid_params(what()).with_details(serde_json::json!({"reason": "not_found"}))
    })
}

#[node]
impl Records {
    /// Adds an item (standard or instrument) to the equipment register, or updates it
    #[capability]
    async fn register_equipment(&self, e: Equipment) -> Result<Stored<String>, NodeError> {
        self.store
            .register_equipment(&e)
            .await
            .map_err(store_error)?;
        Ok(Stored { id: e.id })
    }

    /// An item of the equipment register
    #[capability]
    async fn equipment(&self, p: ById) -> Result<Equipment, NodeError> {
        let e = self.store.equipment(&p.id).await.map_err(store_error)?;
        found(e, || format!("`{}` is not in the equipment register", p.id))
    }

    /// The equipment register, by id, a page at a time
    #[capability]
    async fn register(&self, p: Page) -> Result<Vec<Equipment>, NodeError> {
        let limit = checked_limit(p.limit, 1000)?;
        self.store
            .register(limit, p.offset.unwrap_or(0))
            .await
            .map_err(store_error)
    }

    /// Adds a calibration (value, expanded uncertainty, date, certificate) to an item's history
    #[capability]
    async fn add_calibration(&self, c: CalibrationRecord) -> Result<Stored<i64>, NodeError> {
        // A history is one quantity in one unit: what the register states, else the first.
        let registered = self
            .store
            .equipment(&c.equipment)
            .await
            .map_err(store_error)?
            .and_then(|e| e.unit);
        let first = match &registered {
            Some(_) => None,
            None => self
                .store
                .history(&c.equipment)
                .await
                .map_err(store_error)?
                .into_iter()
                .next()
                .map(|h| h.unit),
        };
        if let Some(unit) = registered.or(first) {
            if unit != c.unit {
                return Err(NodeError::invalid_params(format!(
                    "unit: `{}` is not the unit of `{}`'s history (`{unit}`)",
                    c.unit, c.equipment
                )));
            }
        }
        let id = self.store.add_calibration(&c).await.map_err(store_error)?;
        Ok(Stored { id })
    }

    /// The calibration history of a standard or instrument, oldest first (for drift fits)
    #[capability]
    async fn history(&self, p: ById) -> Result<Vec<CalibrationRecord>, NodeError> {
        self.store.history(&p.id).await.map_err(store_error)
    }

    /// Stores a result with its uncertainty budget; a correction names the result it amends and why
    #[capability]
    async fn save_result(&self, r: ResultRecord) -> Result<StoredResult, NodeError> {
        r.validate()
            .map_err(|e| NodeError::invalid_params(e.to_string()))?;
        // Results are never replaced: a second one for a job is a correction, citing the
        // first (a replayed or forged save must not sit beside the original).
        if r.amends.is_none() {
            let earlier = self.store.results(&r.job).await.map_err(store_error)?;
            if let Some(first) = earlier.first() {
                return Err(NodeError::refused(format!(
                    "job `{}` has result {} already; a correction cites it in `amends`, with a `reason`",
                    r.job, first.id
                ))
                .with_details(serde_json::json!({"reason": "result_exists", "result": first.id})));
            }
        }
        self.store.save_result(&r).await.map_err(store_error)
    }

    /// The results of a job, in the order they were stored
    #[capability]
    async fn results(&self, p: ById) -> Result<Vec<StoredResult>, NodeError> {
        self.store.results(&p.id).await.map_err(store_error)
    }

    /// Stores a certificate record with its rendered documents; returns its content hash
    #[capability]
    async fn save_certificate(&self, c: CertificateRecord) -> Result<Issued, NodeError> {
        let content_hash = self.store.save_certificate(&c).await.map_err(store_error)?;
        Ok(Issued {
            number: c.number,
            content_hash,
        })
    }

    /// Takes the next number of a series of certificate numbers: never given twice, also across restarts
    #[capability]
    async fn next_certificate_number(&self, p: Series) -> Result<Numbered, NodeError> {
        let ok = (1..=64).contains(&p.series.len())
            && p.series
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
        if !ok {
            return Err(NodeError::invalid_params(format!(
                "`series`: {:?} is not 1 to 64 letters, digits and `-`, `_`, `.`, `/`",
                p.series
            )));
        }
        let number = self
            .store
            .next_certificate_number(&p.series)
            .await
            .map_err(store_error)?;
        Ok(Numbered {
            series: p.series,
            number,
        })
    }

    /// A certificate record with its documents and content hash
    #[capability]
    async fn certificate(&self, p: ById) -> Result<CertificateRecord, NodeError> {
        let c = self.store.certificate(&p.id).await.map_err(store_error)?;
        found(c, || format!("there is no certificate `{}`", p.id))
    }

    /// The certificates issued in a time range, oldest first, without their documents
    #[capability]
    async fn certificates(&self, p: IssuedBetween) -> Result<Vec<CertificateRecord>, NodeError> {
        let limit = checked_limit(p.limit, 1000)?;
        if !(p.since.is_finite() && p.until.is_finite()) || p.since > p.until {
            return Err(NodeError::invalid_params(format!(
                "since ({}) must be a time before until ({})",
                p.since, p.until
            )));
        }
        self.store
            .certificates(p.since, p.until, limit)
            .await
            .map_err(store_error)
    }
}

/// `limit` (default `default`), when it is from 1 to 10000.
fn checked_limit(limit: Option<u32>, default: u32) -> Result<u32, NodeError> {
    let limit = limit.unwrap_or(default);
    if !(1..=10_000).contains(&limit) {
        return Err(
            NodeError::invalid_params(format!("limit: {limit} is not from 1 to 10000"))
                .with_details(serde_json::json!({"field": "limit"})),
        );
    }
    Ok(limit)
}

/// A page of a list.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// At most this many (1 to 10000, default 1000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Skip this many first.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// A time range of issue dates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuedBetween {
    /// From this time (seconds since the Unix epoch, included).
    pub since: f64,
    /// Up to this time (included).
    pub until: f64,
    /// At most this many (1 to 10000, default 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}
