//! A measurement as stored: the fields of a `meas` message, plus its exact bytes.

use mqttcal_core::Envelope;
use serde::Serialize;
use serde_json::Value;

use super::JsonText;

/// One measurement row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasurementRow {
    /// Unique per reading: (`from`, `epoch`, `seq`), or (`from`, `timestamp`) for senders
    /// without `seq`; a redelivered message has the same key and is stored once.
    pub dedup_key: String,
    /// The sending node.
    pub origin: String,
    /// The sender's epoch.
    pub epoch: Option<i64>,
    /// The sender's sequence number on `meas`.
    pub seq: Option<i64>,
    /// Send time, seconds since the Unix epoch.
    pub sent_at: f64,
    /// Acquisition time, if the sender gave it.
    pub acquired: Option<f64>,
    /// The measured standard (`src[0]`).
    pub standard: Option<String>,
    /// All standards (`src`), as JSON.
    pub src: Option<JsonText>,
    /// `DC-measurement`.
    pub value: f64,
    /// Unit.
    pub unit: Option<String>,
    /// NPLC.
    pub nplc: Option<f64>,
    /// Ndigits.
    pub ndigits: Option<i32>,
    /// DMM range, V.
    pub range: Option<f64>,
    /// Mode.
    pub mode: Option<String>,
    /// Polarity.
    pub pol: Option<String>,
    /// Calibration job, if any.
    pub job: Option<String>,
    /// The instrument's raw response.
    pub raw: Option<String>,
    /// `OriginUID`, as JSON.
    pub origin_uid: Option<JsonText>,
    /// Environment snapshot, as JSON.
    pub environment: Option<JsonText>,
    /// The message exactly as received.
    pub payload: String,
}

/// Why a `meas` message is not a measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a measurement: {0}")]
pub struct NotAMeasurement(pub String);

fn text(env: &Envelope, key: &str) -> Option<String> {
    env.fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The measured standard of a reading: the first of `src`, or `src` itself when it is one name.
pub(super) fn standard_of(src: &Value) -> Option<String> {
    match src {
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn number(env: &Envelope, key: &str) -> Option<f64> {
    env.fields.get(key).and_then(Value::as_f64)
}

impl MeasurementRow {
    /// The row of a decoded `meas` message whose exact bytes are `payload`.
    pub fn from_message(env: &Envelope, payload: &[u8]) -> Result<Self, NotAMeasurement> {
        let value = match env.fields.get("DC-measurement") {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| NotAMeasurement("`DC-measurement` is not a finite number".into()))?,
            Some(_) => return Err(NotAMeasurement("`DC-measurement` is not a number".into())),
            None => return Err(NotAMeasurement("no `DC-measurement` field".into())),
        };
        let payload = std::str::from_utf8(payload)
            .map_err(|_| NotAMeasurement("the payload is not UTF-8".into()))?
            .to_owned();
        let sent_at = env.timestamp.map_or(0.0, |t| t.as_secs_f64());
        let dedup_key = match (env.epoch, env.seq) {
            (Some(e), Some(s)) => format!("{}\u{1f}{e}\u{1f}{s}", env.from),
            _ => match env.timestamp {
                Some(t) => format!("{}\u{1f}t{}", env.from, t.as_micros()),
                None => {
                    return Err(NotAMeasurement(
                        "neither `seq` nor `timestamp`: it cannot be stored exactly once".into(),
                    ))
                }
            },
        };
        let src = env.fields.get("src");
        let standard = src.and_then(standard_of);
        let src = src.map(JsonText::from_value);
        let to_i64 = |v: Option<u64>| v.and_then(|x| i64::try_from(x).ok());
        Ok(Self {
            dedup_key,
            origin: env.from.clone(),
            epoch: to_i64(env.epoch),
            seq: to_i64(env.seq),
            sent_at,
            acquired: number(env, "acquired"),
            standard,
            src,
            value,
            unit: text(env, "unit"),
            nplc: number(env, "NPLC"),
            ndigits: env
                .fields
                .get("Ndigits")
                .and_then(Value::as_i64)
                .and_then(|x| i32::try_from(x).ok()),
            range: number(env, "range"),
            mode: text(env, "mode"),
            pol: text(env, "pol"),
            job: text(env, "job"),
            raw: text(env, "raw"),
            origin_uid: env.fields.get("OriginUID").map(JsonText::from_value),
            environment: env.fields.get("environment").map(JsonText::from_value),
            payload,
        })
    }
}
