//! A calibration job, and the hash that names the measurement configuration it ran with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::sha256_hex;
use crate::invalid::{not_empty, Invalid};
use crate::LabMessage;

/// `v` as compact JSON with every object's keys sorted, whatever order the map type keeps:
/// the canonical text that content hashes cover.
pub fn canonical_json(v: &Value) -> String {
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
    sorted(v).to_string()
}

/// The hash a measurement configuration is stored under, and that jobs and results cite
/// (ISO/IEC 17025 §7.11): SHA-256 (hex) of its [`canonical_json`].
///
/// ```
/// let a = serde_json::json!({"NPLC": 100, "points": [10, 1.018]});
/// let b: serde_json::Value = serde_json::from_str(r#"{"points": [10, 1.018], "NPLC": 100}"#).unwrap();
/// assert_eq!(mqttcal_messages::config_hash(&a), mqttcal_messages::config_hash(&b));
/// ```
pub fn config_hash(body: &Value) -> String {
    sha256_hex(canonical_json(body).as_bytes())
}

/// A calibration job as its producer (ctrld, cald, a person) describes it.
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
    pub fn validate(&self) -> Result<(), Invalid> {
        not_empty("id", &self.id)?;
        not_empty("status", &self.status)
    }
}

impl LabMessage for JobRecord {
    const NAME: &'static str = "job";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_configurations_hash_alike_whatever_the_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"nplc": 10, "range": 10, "points": [1, {"b": 1, "a": 2}]}"#)
                .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"points": [1, {"a": 2, "b": 1}], "range": 10, "nplc": 10}"#)
                .unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&json!({"nplc": 100})));
        assert_eq!(
            canonical_json(&a),
            r#"{"nplc":10,"points":[1,{"a":2,"b":1}],"range":10}"#
        );
    }
}
