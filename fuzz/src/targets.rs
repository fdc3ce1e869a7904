//! The parsers under test, each with the invariants it must hold.

use std::path::Path;

use mqttcal_core::envelope::Envelope;

use crate::Target;

/// Every target, by corpus folder.
pub const TARGETS: &[Target] = &[
    Target {
        name: "envelope",
        check: envelope,
    },
    Target {
        name: "reading",
        check: reading,
    },
    Target {
        name: "scpi",
        check: scpi,
    },
    Target {
        name: "config",
        check: config,
    },
];

/// An envelope that decodes encodes, and decodes back to the same fields.
fn envelope(input: &[u8]) {
    let Ok(env) = Envelope::decode(input, 1 << 20) else {
        return;
    };
    let bytes = env.encode(usize::MAX).expect("a decoded envelope encodes");
    let back = Envelope::decode(&bytes, usize::MAX).expect("an encoded envelope decodes");
    assert_eq!(
        (&back.from, &back.to, &back.request, &back.requestid),
        (&env.from, &env.to, &env.request, &env.requestid)
    );
    // An error reply always carries `reply: null` on the wire, even when it came without.
    let reply = match (&env.reply, &env.error) {
        (None, Some(_)) => Some(serde_json::Value::Null),
        (r, _) => r.clone(),
    };
    assert_eq!(
        (&back.reply, &back.error, &back.cmd),
        (&reply, &env.error, &env.cmd)
    );
    assert_eq!(
        (back.seq, back.epoch, &back.via),
        (env.seq, env.epoch, &env.via)
    );
    assert_eq!(back.fields, env.fields);
}

/// datad's one-pass parser takes only what the general path takes, and makes the same row.
fn reading(input: &[u8]) {
    let fast = mqttcal_nodes::datad::parse_common(input);
    let general = Envelope::decode(input, usize::MAX)
        .ok()
        .and_then(|env| mqttcal_nodes::datad::measurement_row(&env, input).ok());
    if let Some(row) = fast {
        assert_eq!(
            Some(row),
            general,
            "the one-pass parser took what the general path refuses or reads otherwise"
        );
    }
}

/// SCPI responses and resource strings: any text gives a value or an error.
fn scpi(input: &[u8]) {
    use mqttcal_instruments::scpi;
    let _ = scpi::parse_block(input);
    let text = String::from_utf8_lossy(input);
    if let Ok(v) = scpi::parse_number(&text) {
        assert!(!v.is_nan(), "a number parsed as NaN from {text:?}");
    }
    let _ = scpi::parse_numbers(&text);
    let _ = scpi::parse_string(&text);
    let _ = scpi::parse_error_entry(&text);
    if let Ok(id) = scpi::Identity::parse(&text) {
        let again = scpi::Identity::parse(&id.to_string()).expect("an identity reads back");
        assert_eq!(again, id);
    }
    let _ = mqttcal_instruments::interface::Resource::parse(&text);
}

/// A configuration file: any text gives a configuration or an error naming the key.
fn config(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let _ = mqttcal_core::config::Config::from_yaml(&text, Path::new("fuzz.yaml"));
}
