//! Decoding a `meas` message in its usual shape straight into a row, in one pass over its
//! text, without building the envelope's map of fields first: the ingest hot path.
//!
//! [`Wire`] is the envelope's fields plus the [`Reading`](mqttcal_messages::Reading)'s, with
//! the same names and types (a test holds it against every field of the type); it ends in
//! the same [`row_of`] as the general path. Anything unusual (a command, an `error` or `via` field, a field of an
//! unexpected type, a duplicate key, a field it does not know) makes [`parse_common`] give up, and the general path
//! ([`super::decode::measurement_row`]) decides. When both accept a message they give the
//! same row: the tests compare them.

use std::borrow::Cow;

use mqttcal_core::clock::Timestamp;
use mqttcal_messages::{Environment, Mode, Polarity};
use mqttcal_store::{JsonText, MeasurementRow};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::decode::{row_of, Fields, Sent};

/// The fields of a reading message, envelope and reading side by side. Any other field
/// leaves the message to the general path, which checks that its value is JSON it can read
/// back (a field `{"t": 1e999}` it cannot).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Present: leave the message to the general path.
    reply: Option<IgnoredAny>,
    // The reading's fields, typed as `Reading` types them; the JSON ones are kept as text
    // and checked against their type below.
    #[serde(rename = "DC-measurement")]
    value: Option<f64>,
    #[serde(borrow)]
    unit: Option<Cow<'a, str>>,
    #[serde(rename = "OriginUID", borrow)]
    origin_uid: Option<&'a RawValue>,
    #[serde(rename = "NPLC")]
    nplc: Option<f64>,
    #[serde(rename = "Ndigits")]
    ndigits: Option<u8>,
    range: Option<f64>,
    mode: Option<Mode>,
    pol: Option<Polarity>,
    #[serde(borrow)]
    src: Option<&'a RawValue>,
    #[serde(rename = "index")]
    _index: Option<u32>,
    acquired: Option<f64>,
    #[serde(borrow)]
    raw: Option<Cow<'a, str>>,
    #[serde(borrow)]
    environment: Option<&'a RawValue>,
    #[serde(borrow)]
    job: Option<Cow<'a, str>>,
}

/// `raw` as kept, once it reads as a `T`: `Some(None)` for an absent field or JSON
/// `null`, `None` when it does not read as a `T`.
fn checked<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<Option<JsonText>> {
    match raw {
        None => Some(None),
        Some(r) if r.get() == "null" => Some(None),
        Some(r) => serde_json::from_str::<T>(r.get())
            .ok()
            .map(|_| Some(JsonText::from(r))),
    }
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

/// The row of a reading message in its usual shape, decoded in one pass; `None` when the
/// message needs [`super::decode::measurement_row`] (which accepts or refuses it). Where
/// both accept a message, they give the same row.
pub fn parse_common(payload: &[u8]) -> Option<MeasurementRow> {
    let text = std::str::from_utf8(payload).ok()?;
    let w: Wire<'_> = serde_json::from_str(text).ok()?;
    if w.cmd.is_some()
        || w.error.is_some()
        || w.via.is_some()
        || w.reply.is_some()
        || w.to.is_none()
    {
        return None;
    }
    let from = w.from?;
    let timestamp = match w.timestamp {
        Some(s) if s.is_finite() && s >= 0.0 => {
            let t = Timestamp::from_secs_f64(s);
            Some((t.as_micros(), t.as_secs_f64()))
        }
        Some(_) => return None,
        None => None,
    };
    let (standard, src) = match w.src.filter(|r| r.get() != "null") {
        Some(raw) => (measured(raw)?, Some(JsonText::from(raw))),
        None => (None, None),
    };
    let origin_uid = checked::<Vec<AString>>(w.origin_uid)?;
    // A member the type does not name is kept: it must be JSON that reads back (no number
    // out of range, no nesting past the parser's limit), as the general path checks.
    let environment = match w.environment {
        Some(raw) if raw.get() != "null" => {
            if serde_json::from_str::<UsualEnvironment>(raw.get()).is_err() {
                let v: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
                Environment::deserialize(&v).ok()?;
            }
            Some(JsonText::from(raw))
        }
        _ => None,
    };
    let fields = Fields {
        value: w.value?,
        acquired: w.acquired,
        standard,
        src,
        unit: owned(w.unit),
        nplc: w.nplc,
        ndigits: w.ndigits,
        range: w.range,
        mode: w.mode,
        pol: w.pol,
        job: owned(w.job),
        raw: owned(w.raw),
        origin_uid,
        environment,
    };
    let sent = Sent {
        from: &from,
        epoch: w.epoch,
        seq: w.seq,
        timestamp,
    };
    row_of(sent, fields, text.to_owned()).ok()
}

/// An environment in its usual shape, the three quantities alone: checked in one step. Any
/// other shape is read as JSON first, then as [`Environment`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsualEnvironment {
    #[serde(rename = "temperature")]
    _temperature: f64,
    #[serde(rename = "humidity")]
    _humidity: f64,
    #[serde(rename = "pressure")]
    _pressure: f64,
}

/// A JSON string, checked and dropped: a list of them is checked without allocating.
struct AString;

impl<'de> Deserialize<'de> for AString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AString;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AString, E> {
                Ok(AString)
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// The measured standard of a `src` kept as `raw`, once `raw` reads as
/// [`Sources`](mqttcal_messages::Sources): one id, or a list whose first is measured.
fn measured(raw: &RawValue) -> Option<Option<String>> {
    let text = raw.get();
    if text.starts_with('[') {
        let ids: Vec<Cow<'_, str>> = serde_json::from_str(text).ok()?;
        Some(ids.into_iter().next().map(Cow::into_owned))
    } else {
        serde_json::from_str::<String>(text).ok().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use mqttcal_core::envelope::Envelope;
    use mqttcal_messages::{Reading, Sources};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::datad::decode::measurement_row;

    fn general(payload: &[u8]) -> Option<MeasurementRow> {
        let env = Envelope::decode(payload, usize::MAX).ok()?;
        measurement_row(&env, payload).ok()
    }

    fn labd_reading() -> Value {
        json!({
            "timestamp": 1764000000.123456, "from": "labd", "to": "*", "epoch": 1764000000000000u64,
            "seq": 42, "DC-measurement": 1.0181195, "unit": "V", "NPLC": 10.0, "Ndigits": 8,
            "range": 10.0, "mode": "differential", "pol": "+", "src": ["Z1", "Z2"], "index": 3,
            "acquired": 1764000000.1, "raw": "+1.01811950E+00",
            "OriginUID": ["SIM-DCV", "lab-1", "labd"],
            "environment": {"temperature": 23.02, "humidity": 45.1, "pressure": 1013.2},
            "job": "J-1"
        })
    }

    #[test]
    fn a_labd_reading_takes_the_fast_path_and_matches_the_general_one() {
        let p = serde_json::to_vec(&labd_reading()).unwrap();
        let fast = parse_common(&p).expect("fast path");
        assert_eq!(Some(fast), general(&p));
    }

    /// The fast path types every field of [`Reading`] as `Reading` does: a wrong type in
    /// any of them makes it give up. A field it did not know would be skipped instead, and
    /// this test would fail.
    #[test]
    fn the_fast_path_knows_every_field_of_the_reading_type() {
        for name in Reading::FIELDS {
            let mut msg = labd_reading();
            msg[name] = json!({"not": "this"});
            let p = serde_json::to_vec(&msg).unwrap();
            assert_eq!(
                parse_common(&p),
                None,
                "`{name}` of the wrong type was taken"
            );
            assert_eq!(general(&p), None, "`{name}` of the wrong type was stored");
        }
    }

    /// What the general path refuses, the fast path does not store either: a member of the
    /// environment that is no JSON number a parser reads back, a NUL in a text column.
    #[test]
    fn what_cannot_be_read_back_or_stored_is_refused_on_both_paths() {
        let cases = [
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"environment":{"temperature":1,"humidity":2,"pressure":3,"note":1e999}}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"raw":"1\u0000"}"#,
            r#"{"from":"a\u0000","to":"*","seq":1,"epoch":1,"DC-measurement":1}"#,
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"src":["Z\u00001"]}"#,
        ];
        for c in cases {
            assert_eq!(parse_common(c.as_bytes()), None, "{c}");
            assert_eq!(general(c.as_bytes()), None, "{c}");
        }
        // An extra member that reads back is kept, on both paths.
        let extra = r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"environment":{"temperature":1,"humidity":2,"pressure":3,"co2":412}}"#;
        let fast = parse_common(extra.as_bytes()).expect("fast path");
        assert_eq!(fast.environment.as_ref().unwrap().to_value()["co2"], 412);
        assert_eq!(Some(fast), general(extra.as_bytes()));
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
            assert_eq!(parse_common(c.as_bytes()), None, "{c}");
        }
    }

    #[test]
    fn nulls_and_escapes_agree_with_the_general_path() {
        let cases = [
            r#"{"from":"a\u0062","to":"*","seq":1,"epoch":1,"DC-measurement":1,"src":null,"OriginUID":null,"unit":null}"#,
            r#"{"from":"a","to":"*","timestamp":1.5,"DC-measurement":-2e-7,"src":"Z\"1","Ndigits":8}"#,
        ];
        for c in cases {
            let fast = parse_common(c.as_bytes());
            assert!(fast.is_some(), "{c}");
            assert_eq!(fast, general(c.as_bytes()), "{c}");
        }
    }

    /// A field the one-pass parser does not know may hold JSON that no reader takes back
    /// (`1e999`): such messages go to the general path, which checks (found by fuzzing).
    #[test]
    fn unknown_fields_are_left_to_the_general_path() {
        let kept = r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"extra":{"t":[1,{"x":null}]}}"#;
        assert_eq!(parse_common(kept.as_bytes()), None);
        assert!(general(kept.as_bytes()).is_some());
        let refused =
            r#"{"from":"a","to":"*","seq":1,"epoch":1,"DC-measurement":1,"extra":{"t":1e999}}"#;
        assert_eq!(parse_common(refused.as_bytes()), None);
        assert_eq!(general(refused.as_bytes()), None);
    }

    fn reading() -> impl Strategy<Value = Reading> {
        let text = "[A-Za-z0-9 \"\\+.-]{0,8}";
        (
            (
                -1e3f64..1e3,
                prop::option::of(text),
                prop::option::of(prop::collection::vec(text, 0..4)),
            ),
            (
                prop::option::of(0.001f64..1000.0),
                prop::option::of(3u8..9),
                prop::option::of(0.1f64..1000.0),
            ),
            (
                prop::option::of(prop_oneof![Just(Mode::Absolute), Just(Mode::Differential)]),
                prop::option::of(prop_oneof![
                    Just(Polarity::Positive),
                    Just(Polarity::Negative)
                ]),
                prop::option::of(prop_oneof![
                    text.prop_map(Sources::One),
                    prop::collection::vec(text, 0..3).prop_map(Sources::Many)
                ]),
            ),
            (
                prop::option::of(any::<u32>()),
                prop::option::of(1e9f64..2e9),
                prop::option::of(text),
            ),
            (
                prop::option::of((15.0f64..30.0, 20.0f64..80.0, 900.0f64..1100.0).prop_map(
                    |(temperature, humidity, pressure)| Environment {
                        temperature,
                        humidity,
                        pressure,
                    },
                )),
                prop::option::of(text),
            ),
        )
            .prop_map(
                |(
                    (value, unit, origin_uid),
                    (nplc, ndigits, range),
                    (mode, pol, src),
                    (index, acquired, raw),
                    (environment, job),
                )| Reading {
                    value,
                    unit,
                    origin_uid,
                    nplc,
                    ndigits,
                    range,
                    mode,
                    pol,
                    src,
                    index,
                    acquired,
                    raw,
                    environment,
                    job,
                },
            )
    }

    proptest! {
        /// Any reading that labd could publish takes the fast path and gives the row the
        /// general path gives.
        #[test]
        fn any_reading_takes_the_fast_path_and_agrees(r in reading(), seq in any::<u32>(), with_seq in any::<bool>()) {
            let mut env = Envelope::new("labd", "*");
            env.timestamp = Some(Timestamp::from_secs_f64(1_764_000_000.5));
            if with_seq {
                env.seq = Some(u64::from(seq));
                env.epoch = Some(1_764_000_000_000_000);
            }
            let Value::Object(fields) = serde_json::to_value(&r).unwrap() else { unreachable!() };
            env.fields = fields;
            let p = env.encode(usize::MAX).unwrap();
            let fast = parse_common(&p);
            prop_assert!(fast.is_some());
            prop_assert_eq!(fast, general(&p));
        }

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
            if let Some(fast) = parse_common(&p) {
                prop_assert_eq!(Some(fast), general(&p));
            }
        }
    }

    fn field() -> impl Strategy<Value = (String, Value)> {
        let key = prop::sample::select(
            [
                "timestamp",
                "UTC",
                "from",
                "to",
                "seq",
                "epoch",
                "request",
                "message",
            ]
            .into_iter()
            .chain(Reading::FIELDS)
            .collect::<Vec<_>>(),
        );
        let value = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e12).prop_map(Value::from),
            "[a-z\"\\\\+-]{0,4}".prop_map(Value::from),
            prop::collection::vec("[A-Z][0-9]", 0..3).prop_map(|v| json!(v)),
            Just(json!({"temperature": 1.5, "humidity": 2, "pressure": 3})),
        ];
        (key.prop_map(str::to_owned), value)
    }
}
