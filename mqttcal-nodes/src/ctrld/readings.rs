//! The last reading of each standard, as heard on `meas`, for the lab's status.

use std::collections::BTreeMap;
use std::sync::Mutex;

use mqttcal_core::envelope::Envelope;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The most standards ctrld keeps a last reading of (anyone may publish on `meas`).
const MOST_STANDARDS: usize = 1000;

/// A standard's last reading.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LastReading {
    /// The standard (the first of the reading's `src`).
    pub standard: String,
    /// The value (`DC-measurement`).
    pub value: f64,
    /// Its unit, when the reading says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// When it was taken (the message's timestamp, seconds since the Unix epoch).
    pub at: f64,
    /// Who published it.
    pub from: String,
}

/// Last readings by standard.
#[derive(Debug, Default)]
pub(super) struct LastReadings(Mutex<BTreeMap<String, LastReading>>);

impl LastReadings {
    /// Takes in one message on `meas`; a trigger or a message without a value is ignored.
    pub(super) fn heard(&self, env: &Envelope) {
        if env.cmd.is_some() {
            return;
        }
        let Some(value) = env.fields.get("DC-measurement").and_then(Value::as_f64) else {
            return;
        };
        let standard = match env.fields.get("src") {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Array(a)) => match a.first().and_then(Value::as_str) {
                Some(s) => s,
                None => return,
            },
            _ => return,
        };
        if standard.is_empty() || standard.len() > 100 {
            return;
        }
        let at = env.timestamp.map_or(0.0, |t| t.as_secs_f64());
        let reading = LastReading {
            standard: standard.to_owned(),
            value,
            unit: env
                .fields
                .get("unit")
                .and_then(Value::as_str)
                .map(|u| u.chars().take(20).collect()),
            at,
            from: env.from.clone(),
        };
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = m.len() < MOST_STANDARDS;
        match m.get_mut(standard) {
            Some(old) if old.at <= at => *old = reading,
            Some(_) => {}
            None if room => {
                m.insert(standard.to_owned(), reading);
            }
            None => {}
        }
    }

    /// Every standard's last reading, by standard.
    pub(super) fn all(&self) -> Vec<LastReading> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttcal_core::clock::Timestamp;
    use serde_json::json;

    fn reading(src: Value, value: f64, at: f64) -> Envelope {
        let mut e = Envelope::new("labd", "*");
        e.timestamp = Some(Timestamp::from_secs_f64(at));
        e.fields.insert("DC-measurement".into(), json!(value));
        e.fields.insert("src".into(), src);
        e
    }

    #[test]
    fn the_latest_reading_of_each_standard_is_kept() {
        let r = LastReadings::default();
        r.heard(&reading(json!(["Z1", "Z2"]), 1.0, 10.0));
        r.heard(&reading(json!("Z1"), 2.0, 12.0));
        r.heard(&reading(json!("Z1"), 3.0, 11.0)); // late: older than what is kept
        r.heard(&reading(json!("Z3"), 4.0, 5.0));
        let mut trigger = reading(json!("Z4"), 5.0, 5.0);
        trigger.cmd = Some("measure".into());
        r.heard(&trigger);
        let all = r.all();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[0].standard.as_str(), all[0].value), ("Z1", 2.0));
        assert_eq!((all[1].standard.as_str(), all[1].value), ("Z3", 4.0));
    }
}
