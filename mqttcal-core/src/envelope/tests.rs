use super::*;
use proptest::prelude::*;
use serde_json::json;

const LIMIT: usize = DEFAULT_MAX_MESSAGE_SIZE;

#[test]
fn accepts_the_report_stop_example_without_timestamp() {
    let p = br#"{"to": "some_node", "from": "some_controller", "cmd": "stop"}"#;
    let e = Envelope::decode(p, LIMIT).unwrap();
    assert_eq!(e.timestamp, None);
    assert_eq!(e.cmd.as_deref(), Some("stop"));
    assert_eq!(e.kind(), Kind::Simple);
    assert!(e.is_for("some_node"));
    assert!(!e.is_for("other"));
}

#[test]
fn decodes_the_report_bye_and_keeps_unknown_fields() {
    let p = br#"{"message": "bye", "timestamp": 1645788432.493238,
        "UTC": "2022-02-25 11:27:12.493238", "from": "some_node", "to": "*", "extra": [1,2]}"#;
    let e = Envelope::decode(p, LIMIT).unwrap();
    assert_eq!(e.kind(), Kind::Announce);
    assert_eq!(e.fields["extra"], json!([1, 2]));
    let out: Value = serde_json::from_slice(&e.encode(LIMIT).unwrap()).unwrap();
    assert_eq!(out["UTC"], "2022-02-25 11:27:12.493238");
    assert_eq!(out["timestamp"], json!(1645788432.493238));
    assert_eq!(out["extra"], json!([1, 2]));
}

#[test]
fn output_always_has_the_mandatory_fields() {
    let e = Envelope::new("a", "*");
    let out: Value = serde_json::from_slice(&e.encode(LIMIT).unwrap()).unwrap();
    for k in ["timestamp", "UTC", "from", "to"] {
        assert!(out.get(k).is_some(), "missing {k}");
    }
}

#[test]
fn a_null_reply_is_still_a_reply() {
    let p = br#"{"from":"a","to":"b","requestid":"b-1.0","reply":null}"#;
    let e = Envelope::decode(p, LIMIT).unwrap();
    assert_eq!(e.kind(), Kind::Reply);
    let out: Value = serde_json::from_slice(&e.encode(LIMIT).unwrap()).unwrap();
    assert!(out.as_object().unwrap().contains_key("reply"));
}

#[test]
fn an_error_reply_carries_null_and_the_error_object() {
    let mut e = Envelope::new("n", "c");
    e.requestid = Some("c-1.5".into());
    e.error = Some(NodeError::invalid_params("parameter `x` is missing"));
    let out: Value = serde_json::from_slice(&e.encode(LIMIT).unwrap()).unwrap();
    assert_eq!(out["reply"], Value::Null);
    assert_eq!(out["error"]["code"], "invalid_params");
}

#[test]
fn rejects_what_is_not_json() {
    let err = Envelope::decode(b"stop now", LIMIT).unwrap_err();
    assert!(matches!(err, DecodeError::NotJson(_)), "{err}");
    assert_eq!(err.to_string(), "payload is not valid JSON");
}

#[test]
fn rejects_json_that_is_not_an_object() {
    for p in [&b"[1,2]"[..], b"\"x\"", b"42", b"null"] {
        assert!(matches!(
            Envelope::decode(p, LIMIT),
            Err(DecodeError::NotObject)
        ));
    }
}

#[test]
fn names_the_field_of_the_wrong_type() {
    let cases: [(&[u8], &str); 6] = [
        (br#"{"from":1,"to":"*"}"#, "from"),
        (br#"{"from":"a","to":["*"]}"#, "to"),
        (br#"{"from":"a","to":"*","timestamp":"now"}"#, "timestamp"),
        (br#"{"from":"a","to":"*","seq":-1}"#, "seq"),
        (br#"{"from":"a","to":"*","via":"b"}"#, "via"),
        (br#"{"from":"a","to":"*","error":"bad"}"#, "error"),
    ];
    for (p, field) in cases {
        match Envelope::decode(p, LIMIT) {
            Err(DecodeError::WrongType { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn names_a_missing_mandatory_field() {
    let err = Envelope::decode(br#"{"to":"*"}"#, LIMIT).unwrap_err();
    assert_eq!(err.to_string(), "missing mandatory field `from`");
}

#[test]
fn a_10_mb_payload_is_refused_by_size_before_parsing() {
    let big = vec![b'x'; 10 * 1024 * 1024];
    let err = Envelope::decode(&big, 1024 * 1024).unwrap_err();
    assert_eq!(
        err.to_string(),
        "message of 10485760 bytes exceeds the limit of 1048576 bytes"
    );
    // Under a larger limit the same garbage is a clear JSON error, not a panic.
    assert!(matches!(
        Envelope::decode(&big, LIMIT),
        Err(DecodeError::NotJson(_))
    ));
}

#[test]
fn encoding_refuses_a_message_over_the_limit() {
    let mut e = Envelope::new("a", "*");
    e.fields
        .insert("blob".into(), Value::String("y".repeat(2000)));
    assert!(matches!(
        e.encode(1000),
        Err(EncodeError::TooLarge { limit: 1000, .. })
    ));
}

#[test]
fn reserved_names_in_fields_are_never_written_twice() {
    let mut e = Envelope::new("a", "*");
    e.fields.insert("from".into(), json!("mallory"));
    let text = String::from_utf8(e.encode(LIMIT).unwrap()).unwrap();
    assert_eq!(text.matches("\"from\"").count(), 1);
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 _+-]{0,12}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let name = "[a-z][a-z0-9_-]{0,10}";
    (
        (
            0u64..4_000_000_000_000_000,
            name,
            prop_oneof![Just("*".to_string()), name.prop_map(String::from)],
        ),
        (
            proptest::option::of(name),
            proptest::option::of(json_value()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            prop::collection::vec(name, 0..3),
            any::<bool>(),
        ),
        prop::collection::btree_map("[A-Za-z][A-Za-z0-9-]{0,8}", json_value(), 0..5),
    )
        .prop_map(
            |((micros, from, to), (request, reply, seq, epoch, via, direct), fields)| {
                let ts = Timestamp::from_micros(micros);
                Envelope {
                    timestamp: Some(ts),
                    utc: Some(ts.utc_string()),
                    requestid: request
                        .as_ref()
                        .map(|_| crate::clock::request_id(&from, ts)),
                    from,
                    to,
                    request,
                    reply,
                    error: None,
                    cmd: None,
                    message: None,
                    seq,
                    epoch,
                    via,
                    direct,
                    fields: fields
                        .into_iter()
                        .filter(|(k, _)| !is_reserved(k))
                        .collect(),
                }
            },
        )
}

proptest! {
    #[test]
    fn encode_then_decode_gives_back_the_same_envelope(e in envelope()) {
        let bytes = e.encode(LIMIT).unwrap();
        let back = Envelope::decode(&bytes, LIMIT).unwrap();
        prop_assert_eq!(back, e);
    }

    #[test]
    fn encode_writes_byte_for_byte_what_serde_json_writes(
        e in envelope(),
        text in any::<String>(),
        key in any::<String>(),
        number in any::<f64>(),
    ) {
        let mut e = e;
        e.from = text.clone();
        e.fields.insert(key, json!([text.clone(), number, {"k": text.clone()}]));
        if number.is_sign_negative() {
            e.error = Some(crate::error::NodeError::invalid_params(text));
        }
        let ours = e.encode(LIMIT).unwrap();
        let theirs = serde_json::to_vec(&e).unwrap();
        prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Envelope::decode(&bytes, LIMIT);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json_objects(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = Envelope::decode(&bytes, LIMIT);
    }
}

#[test]
fn a_repeated_top_level_name_is_refused() {
    let smuggled = br#"{"from":"a","to":"logd","request":"verify","to":"*","requestid":"a-1"}"#;
    assert!(matches!(
        Envelope::decode(smuggled, 1 << 20),
        Err(DecodeError::DuplicateKey(k)) if k == "to"
    ));
    // Repeats inside a value are the value's business, not the envelope's.
    let nested = br#"{"from":"a","to":"b","p":{"x":1,"x":2}}"#;
    assert!(Envelope::decode(nested, 1 << 20).is_ok());
    // The JSON is still checked whole after a repeat.
    assert!(matches!(
        Envelope::decode(br#"{"to":"a","to":"b","x":}"#, 1 << 20),
        Err(DecodeError::NotJson(_))
    ));
    for other in [&b"[1,2]"[..], b"true", b"1", b"\"s\"", b"null", b"1.5"] {
        assert!(matches!(
            Envelope::decode(other, 1 << 20),
            Err(DecodeError::NotObject)
        ));
    }
}
