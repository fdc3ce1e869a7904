//! An entry for the lab's logbook, sent by any node as a simple message on `log`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::invalid::{not_empty, Invalid};
use crate::LabMessage;

/// What a logbook entry refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct References {
    /// A standard (an equipment id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard: Option<String>,
    /// A calibration job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// A certificate number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// An entry a node sends to the logbook (logd) on `log`: datad's gap reports, job events,
/// a controller's decisions. logd records it with the sender as `node`.
///
/// ```
/// use mqttcal_messages::{LogEntry, References};
/// let e = LogEntry {
///     refs: References { job: Some("J-1".into()), ..Default::default() },
///     ..LogEntry::new("job", "job J-1 created (planned)")
/// };
/// let json = serde_json::to_value(&e).unwrap();
/// assert_eq!(json["refs"]["job"], "J-1");
/// assert_eq!(serde_json::from_value::<LogEntry>(json).unwrap(), e);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "LogEntry")]
pub struct LogEntry {
    /// What it records, e.g. `gap`, `job`, `note` (the default).
    #[serde(default = "note")]
    pub kind: String,
    /// The text; never empty.
    pub text: String,
    /// Tags to search by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What the entry refers to.
    #[serde(default, skip_serializing_if = "is_default")]
    pub refs: References,
}

fn note() -> String {
    "note".into()
}

fn is_default(r: &References) -> bool {
    *r == References::default()
}

impl LogEntry {
    /// The topic logbook entries are sent on.
    pub const TOPIC: &'static str = "log";

    /// An entry of `kind` saying `text`, without tags or references.
    pub fn new(kind: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            text: text.into(),
            tags: Vec::new(),
            refs: References::default(),
        }
    }

    /// Refuses an empty text or kind.
    pub fn validate(&self) -> Result<(), Invalid> {
        not_empty("kind", &self.kind)?;
        not_empty("text", &self.text)
    }
}

impl LabMessage for LogEntry {
    const NAME: &'static str = "log_entry";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kind_defaults_to_note_and_bad_refs_are_named() {
        let e: LogEntry = serde_json::from_value(json!({"text": "hello"})).unwrap();
        assert_eq!(e.kind, "note");
        let err = serde_json::from_value::<LogEntry>(json!({"text": "x", "refs": {"std": "Z1"}}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown field `std`"), "{err}");
        assert_eq!(
            LogEntry::new("note", " ").validate().unwrap_err().0,
            "`text` must not be empty"
        );
    }
}
