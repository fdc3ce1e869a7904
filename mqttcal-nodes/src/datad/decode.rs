//! A reading on `meas` turned into its stored row. Two ways in, one way out: the general
//! path decodes the envelope and then the [`Reading`]; the fast path
//! ([`super::decode_fast`]) reads both in one pass, typing each field as `Reading` does.
//! Both end in [`row_of`].

use mqttcal_core::envelope::Envelope;
use mqttcal_messages::{Mode, Polarity, Reading};
use mqttcal_store::{JsonText, MeasurementRow};
use serde_json::Value;

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

/// A reading's fields as stored: checked against [`Reading`]'s types, its JSON fields kept
/// as they came (a field the type does not name, inside `environment` say, is not lost).
#[derive(Debug)]
pub(super) struct Fields {
    pub(super) value: f64,
    pub(super) acquired: Option<f64>,
    /// The measured standard (the first of `src`).
    pub(super) standard: Option<String>,
    pub(super) src: Option<JsonText>,
    pub(super) unit: Option<String>,
    pub(super) nplc: Option<f64>,
    pub(super) ndigits: Option<u8>,
    pub(super) range: Option<f64>,
    pub(super) mode: Option<Mode>,
    pub(super) pol: Option<Polarity>,
    pub(super) job: Option<String>,
    pub(super) raw: Option<String>,
    pub(super) origin_uid: Option<JsonText>,
    pub(super) environment: Option<JsonText>,
}

/// The stored row of a reading with `fields`, sent as `sent` in the message `payload`.
pub(super) fn row_of(
    sent: Sent<'_>,
    f: Fields,
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
    // No database keeps a NUL character in a text column (PostgreSQL refuses it, SQLite
    // cuts at it in places): refused here, alike on every backend.
    let texts = [
        ("from", Some(sent.from)),
        ("src", f.standard.as_deref()),
        ("unit", f.unit.as_deref()),
        ("job", f.job.as_deref()),
        ("raw", f.raw.as_deref()),
    ];
    if let Some((name, _)) = texts
        .iter()
        .find(|(_, t)| t.is_some_and(|t| t.contains('\0')))
    {
        return Err(NotAReading(format!(
            "`{name}` holds a NUL character, which the database cannot keep"
        )));
    }
    // The database keeps integers up to 2^63 - 1; a larger one would lose the reading's
    // place in its stream.
    let to_i64 = |name: &str, v: Option<u64>| {
        v.map(i64::try_from).transpose().map_err(|_| {
            NotAReading(format!(
                "`{name}` is larger than 9223372036854775807, which the database cannot keep"
            ))
        })
    };
    let (epoch, seq) = (to_i64("epoch", sent.epoch)?, to_i64("seq", sent.seq)?);
    Ok(MeasurementRow {
        dedup_key,
        origin: sent.from.to_owned(),
        epoch,
        seq,
        sent_at: sent.timestamp.map_or(0.0, |(_, s)| s),
        acquired: f.acquired,
        standard: f.standard,
        src: f.src,
        value: f.value,
        unit: f.unit,
        nplc: f.nplc,
        ndigits: f.ndigits.map(i32::from),
        range: f.range,
        mode: f.mode.map(|m| m.as_str().to_owned()),
        pol: f.pol.map(|p| p.as_str().to_owned()),
        job: f.job,
        raw: f.raw,
        origin_uid: f.origin_uid,
        environment: f.environment,
        payload,
    })
}

/// The row of a decoded `meas` message whose exact bytes are `payload`: its fields read as
/// a [`Reading`] (which refuses what the type refuses), the JSON ones kept as they came.
pub fn measurement_row(env: &Envelope, payload: &[u8]) -> Result<MeasurementRow, NotAReading> {
    if !env.fields.contains_key("DC-measurement") {
        return Err(NotAReading("no `DC-measurement` field".into()));
    }
    let fields = Value::Object(env.fields.clone());
    let r: Reading = serde_json::from_value(fields).map_err(|e| NotAReading(e.to_string()))?;
    let payload = std::str::from_utf8(payload)
        .map_err(|_| NotAReading("the payload is not UTF-8".into()))?
        .to_owned();
    let json = |name: &str| {
        env.fields
            .get(name)
            .filter(|v| !v.is_null())
            .map(JsonText::from_value)
    };
    let sent = Sent {
        from: &env.from,
        epoch: env.epoch,
        seq: env.seq,
        timestamp: env.timestamp.map(|t| (t.as_micros(), t.as_secs_f64())),
    };
    let fields = Fields {
        value: r.value,
        acquired: r.acquired,
        standard: r.src.as_ref().and_then(|s| s.measured()).map(str::to_owned),
        src: json("src"),
        unit: r.unit,
        nplc: r.nplc,
        ndigits: r.ndigits,
        range: r.range,
        mode: r.mode,
        pol: r.pol,
        job: r.job,
        raw: r.raw,
        origin_uid: json("OriginUID"),
        environment: json("environment"),
    };
    row_of(sent, fields, payload)
}
