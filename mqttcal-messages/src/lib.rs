//! # mqttcal-messages
//!
//! The lab's messages, one Rust type each: serialized by the node that produces them,
//! deserialized by the nodes that consume them, with a JSON Schema a Python node can be
//! written against (published in `docs/schemas/`). No I/O, no MQTT: usable from a script
//! or a notebook-style tool as well as from a node.
//!
//! | type | travels | producer | consumers |
//! |---|---|---|---|
//! | [`Reading`] | `meas` (data message) | labd | datad, cald |
//! | [`LogEntry`] | `log` (simple message) | datad, cald, any node | logd |
//! | [`JobRecord`] | `save_job` request | ctrld, cald, a person | datad |
//! | [`ResultRecord`] with [`BudgetEntry`] lines | `save_result` request | cald | datad, tpld |
//! | [`CertificateRecord`] with [`CertificateDocument`]s | `save_certificate` request | tpld | datad |
//! | [`Equipment`] | `register_equipment` request | a person, ctrld | datad, cald |
//! | [`CalibrationRecord`] | `add_calibration` request | a person | datad, cald |
//!
//! The runtime adds the envelope (`timestamp`, `UTC`, `from`, `to`, `seq`, `epoch`, ...)
//! around these fields; see `docs/protocol.md`.
//!
//! ```
//! use mqttcal_messages::{LabMessage, Reading};
//! let reading: Reading = serde_json::from_str(r#"{"DC-measurement": 1.0181195, "pol": "+"}"#).unwrap();
//! assert_eq!(Reading::TOPIC, "meas");
//! let schema = Reading::schema();
//! assert_eq!(schema["required"], serde_json::json!(["DC-measurement"]));
//! # let _ = reading;
//! ```

mod binary;
mod certificate;
mod digest;
pub mod import;
mod invalid;
mod job;
mod log_entry;
mod reading;
mod records;
mod result;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use binary::Base64;
pub use certificate::{CertificateDocument, CertificateRecord};
pub use digest::{hex, sha256_hex};
pub use invalid::{is_unsafe_char, Invalid};
pub use job::{canonical_json, config_hash, JobRecord};
pub use log_entry::{LogEntry, References};
pub use reading::{Environment, Mode, Polarity, Reading, Sources};
pub use records::{CalibrationRecord, Equipment, EquipmentKind};
pub use result::{BudgetEntry, EquipmentUsed, Evaluation, ResultRecord};

/// A message of the lab, with a name: its schema's file name in `docs/schemas/`. The
/// messages that travel on a topic of their own say which (`Reading::TOPIC`,
/// `LogEntry::TOPIC`).
pub trait LabMessage: Serialize + DeserializeOwned + JsonSchema {
    /// The message's name, e.g. `reading`.
    const NAME: &'static str;

    /// Its JSON Schema (2020-12), as a JSON value.
    fn schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Self)).unwrap_or_default()
    }
}

/// Every lab message: its name and JSON Schema, as published in `docs/schemas/`.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn one<T: LabMessage>() -> (&'static str, serde_json::Value) {
        (T::NAME, T::schema())
    }
    vec![
        one::<Reading>(),
        one::<LogEntry>(),
        one::<JobRecord>(),
        one::<ResultRecord>(),
        one::<CertificateRecord>(),
        one::<Equipment>(),
        one::<CalibrationRecord>(),
    ]
}
