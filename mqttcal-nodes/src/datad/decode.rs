//! A reading on `meas` turned into its stored row. Two ways in, one way out: the general
//! path decodes the envelope and then the [`Reading`]; the fast path
//! ([`super::decode_fast`]) reads both in one pass. Both end in [`row_of`].

use mqttcal_core::envelope::Envelope;
use mqttcal_messages::Reading;
use mqttcal_store::{JsonText, MeasurementRow};
use serde::Serialize;

/// Why a message on `meas` is not stored as a reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a reading: {0}")]
pub struct NotAReading(pub String);

/// What the envelope tells about a reading: who sent it, when, its place in the stream.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sent<'a> {
    pub(super) from: &'a str,
    pub(super) epoch: Option<u64>,
    pub(super) seq: Option<u64>,
    /// Send time in microseconds since the Unix epoch, and in seconds.
    pub(super) timestamp: Option<(u64, f64)>,
}

fn json_text<T: Serialize>(v: &T) -> JsonText {
    JsonText::from_value(&serde_json::to_value(v).unwrap_or_default())
}

/// The stored row of `reading`, sent as `sent` in the message `payload`.
pub(super) fn row_of(
    sent: Sent<'_>,
    r: Reading,
    payload: String,
) -> Result<MeasurementRow, NotAReading> {
    let dedup_key = match (sent.epoch.zip(sent.seq), sent.timestamp) {
        (Some((e, s)), _) => format!("{}\u{1f}{e}\u{1f}{s}", sent.from),
        (None, Some((micros, _))) => format!("{}\u{1f}t{micros}", sent.from),
        (None, None) => {
            return Err(NotAReading(
                "neither `seq` nor `timestamp`: it cannot be stored exactly once".into(),
            ))
        }
    };
    let to_i64 = |v: Option<u64>| v.and_then(|x| i64::try_from(x).ok());
    Ok(MeasurementRow {
        dedup_key,
        origin: sent.from.to_owned(),
        epoch: to_i64(sent.epoch),
        seq: to_i64(sent.seq),
        sent_at: sent.timestamp.map_or(0.0, |(_, s)| s),
        acquired: r.acquired,
        standard: r.src.as_ref().and_then(|s| s.measured()).map(str::to_owned),
        src: r.src.as_ref().map(json_text),
        value: r.value,
        unit: r.unit,
        nplc: r.nplc,
        ndigits: r.ndigits.map(i32::from),
        range: r.range,
        mode: r.mode.map(|m| m.as_str().to_owned()),
        pol: r.pol.map(|p| p.as_str().to_owned()),
        job: r.job,
        raw: r.raw,
        origin_uid: r.origin_uid.as_ref().map(json_text),
        environment: r.environment.as_ref().map(json_text),
        payload,
    })
}

/// The row of a decoded `meas` message whose exact bytes are `payload`.
pub fn measurement_row(env: &Envelope, payload: &[u8]) -> Result<MeasurementRow, NotAReading> {
    if !env.fields.contains_key("DC-measurement") {
        return Err(NotAReading("no `DC-measurement` field".into()));
    }
    let fields = serde_json::Value::Object(env.fields.clone());
    let reading: Reading =
        serde_json::from_value(fields).map_err(|e| NotAReading(e.to_string()))?;
    let payload = std::str::from_utf8(payload)
        .map_err(|_| NotAReading("the payload is not UTF-8".into()))?
        .to_owned();
    let sent = Sent {
        from: &env.from,
        epoch: env.epoch,
        seq: env.seq,
        timestamp: env.timestamp.map(|t| (t.as_micros(), t.as_secs_f64())),
    };
    row_of(sent, reading, payload)
}
