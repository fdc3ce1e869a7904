//! Calibration jobs and the measurement configurations they ran with.
//!
//! A configuration is stored once under the SHA-256 of its canonical text (compact JSON,
//! keys sorted), the same `config_hash` that results carry (ISO/IEC 17025 §7.11): the exact
//! settings behind a result can always be shown.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::records::hex;
use super::StoreError;

/// The hash a configuration is stored under: SHA-256 (hex) of its compact JSON, keys sorted.
pub fn config_hash(body: &Value) -> String {
    let text = serde_json::to_vec(&sorted(body)).unwrap_or_default();
    hex(&Sha256::digest(&text))
}

/// `v` with every object's keys in sorted order (whatever order the map type keeps).
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A stored measurement configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigRecord {
    /// [`config_hash`] of `body`.
    pub hash: String,
    /// The configuration.
    pub body: Value,
    /// When it was first stored, seconds since the Unix epoch.
    pub recorded_at: f64,
}

/// A calibration job as its producer (ctrld, a person) describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    /// The job's id, e.g. `J-2026-001`.
    pub id: String,
    /// The procedure it follows.
    #[serde(default)]
    pub procedure: Option<String>,
    /// The item under calibration (an equipment id).
    #[serde(default)]
    pub item: Option<String>,
    /// The customer.
    #[serde(default)]
    pub customer: Option<String>,
    /// Where it stands, e.g. `planned`, `running`, `done`, `failed`, `cancelled`.
    pub status: String,
    /// The measurement configuration it runs with (stored first, with `save_config`).
    #[serde(default)]
    pub config_hash: Option<String>,
    /// Anything else the producer keeps (points, operator, notes).
    #[serde(default)]
    pub body: Option<Value>,
}

impl JobRecord {
    /// Refuses an empty id or status.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.id.trim().is_empty() {
            return Err(StoreError::Invalid("`id` must not be empty".into()));
        }
        if self.status.trim().is_empty() {
            return Err(StoreError::Invalid("`status` must not be empty".into()));
        }
        Ok(())
    }
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
        super::page(self.limit, self.offset, 100)
    }
}

/// The message for a job naming a configuration that is not stored.
pub(crate) fn unknown_config(hash: &str) -> StoreError {
    StoreError::Invalid(format!(
        "no measurement configuration `{hash}`: store it first with `save_config`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_configurations_hash_alike_whatever_the_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"nplc": 10, "range": 10, "points": [1, 2]}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"points": [1, 2], "range": 10, "nplc": 10}"#).unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&json!({"nplc": 100})));
        assert_eq!(config_hash(&a).len(), 64);
    }

    #[test]
    fn paging_is_checked() {
        let q = |limit, offset| {
            JobQuery {
                status: None,
                limit,
                offset,
            }
            .page()
        };
        assert_eq!(q(None, None).unwrap(), (100, 0));
        assert!(q(Some(0), None).is_err());
        assert!(q(Some(10_001), None).is_err());
        assert_eq!(q(Some(10), Some(20)).unwrap(), (10, 20));
    }
}
