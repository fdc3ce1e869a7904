//! Decoding a `meas` message in its usual shape straight into a row, without building the
//! envelope's map of fields first: the ingest hot path.
//!
//! Anything unusual (a command, an `error` or `via` field, a field of an unexpected type, a
//! duplicate key) makes [`MeasurementRow::parse_common`] give up, and the general path
//! ([`MeasurementRow::from_message`]) decides. When both accept a message they give the same
//! row: the tests compare them.

use std::borrow::Cow;

use mqttcal_core::clock::Timestamp;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::row::standard_of;
use super::{JsonText, MeasurementRow};

/// The fields of a measurement message, borrowed from its text where possible.
#[derive(Deserialize)]
struct Wire<'a> {
    // Envelope fields: typed as the envelope types them, so a message the envelope refuses
    // is never taken here.
    timestamp: Option<f64>,
    #[serde(rename = "UTC", borrow)]
    _utc: Option<Cow<'a, str>>,
    #[serde(borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    to: Option<Cow<'a, str>>,
    #[serde(rename = "request", borrow)]
    _request: Option<Cow<'a, str>>,
    #[serde(rename = "requestid", borrow)]
    _requestid: Option<Cow<'a, str>>,
    #[serde(rename = "message", borrow)]
    _message: Option<Cow<'a, str>>,
    seq: Option<u64>,
    epoch: Option<u64>,
    /// Present: leave the message to the general path.
    cmd: Option<IgnoredAny>,
    /// Present: leave the message to the general path.
    error: Option<IgnoredAny>,
    /// Present: leave the message to the general path.
    via: Option<IgnoredAny>,
    // Measurement fields.
    #[serde(rename = "DC-measurement")]
    value: Option<f64>,
    acquired: Option<f64>,
    #[serde(default, borrow, deserialize_with = "present")]
    src: Option<&'a RawValue>,
    #[serde(borrow)]
    unit: Option<Cow<'a, str>>,
    #[serde(rename = "NPLC")]
    nplc: Option<f64>,
    #[serde(rename = "Ndigits")]
    ndigits: Option<i64>,
    range: Option<f64>,
    #[serde(borrow)]
    mode: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pol: Option<Cow<'a, str>>,
    #[serde(borrow)]
    job: Option<Cow<'a, str>>,
    #[serde(borrow)]
    raw: Option<Cow<'a, str>>,
    #[serde(rename = "OriginUID", default, borrow, deserialize_with = "present")]
    origin_uid: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    environment: Option<&'a RawValue>,
}

/// A field that is present, `null` included (as the envelope keeps it).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

impl MeasurementRow {
    /// The row of a measurement message in its usual shape, decoded in one pass; `None`
    /// when the message needs [`MeasurementRow::from_message`] (which accepts or refuses
    /// it). Where both accept a message, they give the same row.
    pub fn parse_common(payload: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(payload).ok()?;
        let w: Wire<'_> = serde_json::from_str(text).ok()?;
        if w.cmd.is_some() || w.error.is_some() || w.via.is_some() || w.to.is_none() {
            return None;
        }
        let from = w.from?;
        let value = w.value?;
        let timestamp = match w.timestamp {
            Some(s) if s.is_finite() && s >= 0.0 => Some(Timestamp::from_secs_f64(s)),
            Some(_) => return None,
            None => None,
        };
        let dedup_key = match (w.epoch, w.seq) {
            (Some(e), Some(s)) => format!("{from}\u{1f}{e}\u{1f}{s}"),
            _ => format!("{from}\u{1f}t{}", timestamp?.as_micros()),
        };
        let standard = match w.src {
            Some(raw) => standard_of(&serde_json::from_str(raw.get()).ok()?),
            None => None,
        };
        let to_i64 = |v: Option<u64>| v.and_then(|x| i64::try_from(x).ok());
        Some(Self {
            dedup_key,
            origin: from.into_owned(),
            epoch: to_i64(w.epoch),
            seq: to_i64(w.seq),
            sent_at: timestamp.map_or(0.0, |t| t.as_secs_f64()),
            acquired: w.acquired,
            standard,
            src: w.src.map(JsonText::from),
            value,
            unit: owned(w.unit),
            nplc: w.nplc,
            ndigits: w.ndigits.and_then(|x| i32::try_from(x).ok()),
            range: w.range,
            mode: owned(w.mode),
            pol: owned(w.pol),
            job: owned(w.job),
            raw: owned(w.raw),
            origin_uid: w.origin_uid.map(JsonText::from),
            environment: w.environment.map(JsonText::from),
            payload: text.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use mqttcal_core::Envelope;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn general(payload: &[u8]) -> Option<MeasurementRow> {
        let env = Envelope::decode(payload, usize::MAX).ok()?;
        MeasurementRow::from_message(&env, payload).ok()
    }

    fn labd_reading() -> Value {
        json!({
            "timestamp": 1764000000.123456, "from": "labd", "to": "*", "epoch": 1764000000000000u64,
            "seq": 42, "DC-measurement": 1.0181195, "unit": "V", "NPLC": 10.0, "Ndigits": 8,
            "range": 10.0, "mode": "DCV", "pol": "+", "src": ["Z1", "Z2"], "index": 3,
            "acquired": 1764000000.1, "raw": "+1.01811950E+00",
            "OriginUID": {"host": "lab-1", "dmm": "3458A"},
            "environment": {"temperature": 23.02}
        })
    }

    #[test]
    fn a_labd_reading_takes_the_fast_path_and_matches_the_general_one() {
        let p = serde_json::to_vec(&labd_reading()).unwrap();
        let fast = MeasurementRow::parse_common(&p).expect("fast path");
        assert_eq!(Some(fast), general(&p));
    }

    #[test]
    fn unusual_messages_are_left_to_the_general_path() {
        let cases = [
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"cmd":"go"}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"via":["b"]}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"error":null,"error":1}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":"1"}"#,
            r#"{"from":"a","to":"*","seq":-1,"epoch":1,"DC-measurement":1}"#,
            r#"{"from":"a","to":"*","seq":1,"seq":2,"epoch":1,"DC-measurement":1}"#,
            r#"{"from":"a","to":"*","timestamp":-1,"DC-measurement":1}"#,
            r#"{"from":"a","to":"*","DC-measurement":1}"#,
            r#"{"to":"*","seq":1,"epoch":1,"DC-measurement":1}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"unit":5}"#,
            r#"[1,2]"#,
        ];
        for c in cases {
            assert_eq!(MeasurementRow::parse_common(c.as_bytes()), None, "{c}");
        }
    }

    #[test]
    fn nulls_and_escapes_agree_with_the_general_path() {
        let cases = [
            r#"{"from":"a\u0062","to":"*","seq":1,"epoch":1,"DC-measurement":1,"src":null,"OriginUID":null,"unit":null}"#,
            r#"{"from":"a","to":"*","timestamp":1.5,"DC-measurement":-2e-7,"src":"Z\"1","Ndigits":99999999999}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"environment":{"t":[1,{"x":null}]},"job":"J-1"}"#,
        ];
        for c in cases {
            let fast = MeasurementRow::parse_common(c.as_bytes());
            assert!(fast.is_some(), "{c}");
            assert_eq!(fast, general(c.as_bytes()), "{c}");
        }
    }

    fn field() -> impl Strategy<Value = (String, Value)> {
        let key = prop::sample::select(vec![
            "timestamp",
            "UTC",
            "from",
            "to",
            "seq",
            "epoch",
            "DC-measurement",
            "acquired",
            "src",
            "unit",
            "NPLC",
            "Ndigits",
            "range",
            "mode",
            "pol",
            "job",
            "raw",
            "OriginUID",
            "environment",
            "index",
            "request",
            "message",
        ]);
        let value = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e12).prop_map(Value::from),
            "[a-z\"\\\\]{0,4}".prop_map(Value::from),
            prop::collection::vec("[A-Z][0-9]", 0..3).prop_map(|v| json!(v)),
            Just(json!({"k": [1.5, "x"]})),
        ];
        (key.prop_map(str::to_owned), value)
    }

    proptest! {
        #[test]
        fn where_both_accept_they_agree(
            fields in prop::collection::vec(field(), 0..12),
            base in any::<bool>(),
        ) {
            let mut msg = if base { labd_reading() } else { json!({"from": "n", "to": "*"}) };
            for (k, v) in fields {
                msg[k] = v;
            }
            let p = serde_json::to_vec(&msg).unwrap();
            if let Some(fast) = MeasurementRow::parse_common(&p) {
                prop_assert_eq!(Some(fast), general(&p));
            }
        }
    }
}
