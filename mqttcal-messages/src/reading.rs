//! A reading on `meas`: the report's measurement result, plus what a calibration record
//! needs beside the value (acquisition time, raw response, environment).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::LabMessage;

/// Measurement mode of the Virtual DMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One standard against the DMM's own reference.
    Absolute,
    /// Two standards in series opposition: `src[0] - src[1]`.
    Differential,
}

impl Mode {
    /// As it travels and is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absolute => "absolute",
            Self::Differential => "differential",
        }
    }
}

/// Polarity of the reversing relays, ASCII `+` or `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Polarity {
    /// Positive.
    #[serde(rename = "+")]
    Positive,
    /// Negative (reversed).
    #[serde(rename = "-")]
    Negative,
}

impl Polarity {
    /// As it travels and is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "+",
            Self::Negative => "-",
        }
    }
}

/// Standard ids, as one id or a list (the report sends either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Sources {
    /// One standard.
    One(String),
    /// One or two standards (differential: measured, reference).
    Many(Vec<String>),
}

impl Sources {
    /// The ids, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }

    /// The measured standard: the first id.
    pub fn measured(&self) -> Option<&str> {
        match self {
            Self::One(s) => Some(s),
            Self::Many(v) => v.first().map(String::as_str),
        }
    }
}

/// Lab conditions at a measurement: a Zener standard moves by nanovolts per kelvin and per
/// hectopascal, so they are recorded with every reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// Air temperature, °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// Air pressure, hPa.
    pub pressure: f64,
}

/// One reading, published on `meas` by a measuring node (labd) and stored by datad.
///
/// These are the message's own fields; the runtime adds the envelope (`timestamp`, `UTC`,
/// `from`, `to`, and `seq`/`epoch` for gap detection). Only `DC-measurement` is required:
/// a report-style peer that sends the report's fields alone is understood. Fields this type
/// does not know are kept by datad in the stored message and otherwise ignored.
///
/// ```
/// use mqttcal_messages::{Reading, Polarity, Sources};
/// let r = Reading {
///     pol: Some(Polarity::Negative),
///     src: Some(Sources::Many(vec!["Z1".into()])),
///     ..Reading::new(10.000_012_3)
/// };
/// let json = serde_json::to_value(&r).unwrap();
/// assert_eq!(json, serde_json::json!({"DC-measurement": 10.000_012_3, "pol": "-", "src": ["Z1"]}));
/// assert_eq!(serde_json::from_value::<Reading>(json).unwrap(), r);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Reading")]
pub struct Reading {
    /// The measured value, in `unit` (volts when `unit` is absent). Never NaN: an overload
    /// or a failed reading is an error reply, not a reading.
    #[serde(rename = "DC-measurement")]
    pub value: f64,
    /// Unit of `DC-measurement`, e.g. `V`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Where it was measured: laboratory id, computer name, node name.
    #[serde(rename = "OriginUID", default, skip_serializing_if = "Option::is_none")]
    pub origin_uid: Option<Vec<String>>,
    /// Integration time used, in power-line cycles.
    #[serde(rename = "NPLC", default, skip_serializing_if = "Option::is_none")]
    pub nplc: Option<f64>,
    /// Digits of resolution used.
    #[serde(rename = "Ndigits", default, skip_serializing_if = "Option::is_none")]
    pub ndigits: Option<u8>,
    /// DMM range used, in `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<f64>,
    /// Absolute or differential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Polarity of the reversing relays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pol: Option<Polarity>,
    /// The measured standard (two for differential measurements: measured, reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Sources>,
    /// Index of the reading within its `measure` call, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Acquisition time, seconds since the Unix epoch (the envelope's `timestamp` is the
    /// send time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquired: Option<f64>,
    /// The instrument's raw response, kept beside the parsed value (ISO/IEC 17025 §7.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Lab conditions when the measurement started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    /// The calibration job the reading belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl Reading {
    /// The topic readings are published on.
    pub const TOPIC: &'static str = "meas";

    /// A reading of `value` with every other field absent.
    pub fn new(value: f64) -> Self {
        Self {
            value,
            unit: None,
            origin_uid: None,
            nplc: None,
            ndigits: None,
            range: None,
            mode: None,
            pol: None,
            src: None,
            index: None,
            acquired: None,
            raw: None,
            environment: None,
            job: None,
        }
    }

    /// The names of the fields as they travel, in declaration order: what a one-pass
    /// decoder of readings must know (datad's checks its own list against this one).
    pub const FIELDS: [&'static str; 14] = [
        "DC-measurement",
        "unit",
        "OriginUID",
        "NPLC",
        "Ndigits",
        "range",
        "mode",
        "pol",
        "src",
        "index",
        "acquired",
        "raw",
        "environment",
        "job",
    ];
}

impl LabMessage for Reading {
    const NAME: &'static str = "reading";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_list_matches_the_schema() {
        let schema = serde_json::to_value(schemars::schema_for!(Reading)).unwrap();
        let mut props: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = Reading::FIELDS.to_vec();
        props.sort_unstable();
        fields.sort_unstable();
        assert_eq!(props, fields);
    }

    #[test]
    fn a_report_style_reading_is_understood() {
        let r: Reading = serde_json::from_value(json!({
            "DC-measurement": 1.0181, "OriginUID": ["INRIM", "pc", "labd"], "NPLC": 10,
            "mode": "absolute", "pol": "+", "src": "Z1", "extra": true
        }))
        .unwrap();
        assert_eq!(r.src.as_ref().and_then(Sources::measured), Some("Z1"));
        assert_eq!(r.nplc, Some(10.0));
    }

    #[test]
    fn a_reading_without_a_value_or_with_a_bad_polarity_is_refused() {
        let err = serde_json::from_value::<Reading>(json!({"NPLC": 10})).unwrap_err();
        assert!(
            err.to_string().contains("missing field `DC-measurement`"),
            "{err}"
        );
        let err = serde_json::from_value::<Reading>(json!({"DC-measurement": 1.0, "pol": "plus"}))
            .unwrap_err();
        assert!(err.to_string().contains("unknown variant `plus`"), "{err}");
    }
}
