//! Writing an envelope as JSON, byte for byte as serde_json writes it, without going
//! through a serializer: every request and every reply is written once, and on a round
//! trip of a few tens of microseconds the serializer's machinery and its byte-at-a-time
//! escaping showed. Strings are scanned eight bytes at a time for what needs escaping.

use serde_json::Value;

use super::{is_reserved, Envelope};
use crate::clock::Timestamp;

/// Appends the JSON of `env` to `out` (the same bytes as `serde_json::to_writer`).
pub(super) fn envelope(env: &Envelope, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let ts = env.timestamp.unwrap_or_else(Timestamp::now);
    out.extend_from_slice(b"{\"timestamp\":");
    out.extend_from_slice(
        ryu::Buffer::new()
            .format_finite(ts.as_secs_f64())
            .as_bytes(),
    );
    out.extend_from_slice(b",\"UTC\":");
    ts.with_utc(|utc| string(out, utc));
    entry(out, "from", &env.from);
    entry(out, "to", &env.to);
    if let Some(v) = &env.request {
        entry(out, "request", v);
    }
    if let Some(v) = &env.requestid {
        entry(out, "requestid", v);
    }
    if env.reply.is_some() || env.error.is_some() {
        out.extend_from_slice(b",\"reply\":");
        value(out, env.reply.as_ref().unwrap_or(&Value::Null))?;
    }
    if let Some(e) = &env.error {
        out.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut *out, e)?;
    }
    if let Some(v) = &env.cmd {
        entry(out, "cmd", v);
    }
    if let Some(v) = &env.message {
        entry(out, "message", v);
    }
    if let Some(v) = env.seq {
        out.extend_from_slice(b",\"seq\":");
        digits(out, v);
    }
    if let Some(v) = env.epoch {
        out.extend_from_slice(b",\"epoch\":");
        digits(out, v);
    }
    if !env.via.is_empty() {
        out.extend_from_slice(b",\"via\":[");
        for (i, hop) in env.via.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, hop);
        }
        out.push(b']');
    }
    if env.direct {
        out.extend_from_slice(b",\"direct\":true");
    }
    for (k, v) in &env.fields {
        if !is_reserved(k) {
            out.push(b',');
            string(out, k);
            out.push(b':');
            value(out, v)?;
        }
    }
    out.push(b'}');
    Ok(())
}

fn entry(out: &mut Vec<u8>, name: &str, text: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    string(out, text);
}

/// Appends the decimal digits of `n`.
fn digits(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

/// Appends the JSON of `v`.
fn value(out: &mut Vec<u8>, v: &Value) -> Result<(), serde_json::Error> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => serde_json::to_writer(&mut *out, n)?,
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, k);
                out.push(b':');
                value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub(super) fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs escaping.
        if i + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i..i + 8]);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `w` is a control character, `"` or `\`.
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20: (b - 0x20) borrows into its high bit, unless b itself has it.
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    (control | quote | backslash) & HIGH != 0
}

/// The high bit of each zero byte of `w` is set in the result (and no other high bit is set
/// unless an earlier byte is zero, which is enough to answer "any").
fn has_zero(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    w.wrapping_sub(ONES) & !w & 0x8080_8080_8080_8080
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it() {
        for b in 0u8..=127 {
            let c = char::from(b);
            for s in [
                c.to_string(),
                format!("abcdefgh{c}ijklmnop"),
                format!("{c}bcdefghijklmno{c}"),
                format!("0123456{c}"),
            ] {
                assert_eq!(ours(&s), serde_json::to_string(&s).unwrap(), "byte {b:#x}");
            }
        }
        let s = "é ü ∑ 😀 \u{7f} \u{2028} \"quoted\" back\\slash";
        assert_eq!(ours(s), serde_json::to_string(s).unwrap());
    }
}
