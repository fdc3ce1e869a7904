//! The top-level scalar fields of a JSON object that a full parse refuses (nested deeper
//! than the parser allows, say), so a malformed request can still be answered: its sender
//! and request id are read without descending into the rest.

use serde_json::{Map, Value};

/// The top-level fields of the object in `payload` whose values are strings, numbers,
/// booleans or null; nested values are skipped, never parsed. `None` if `payload` is not an
/// object in its outline (unbalanced, a key that is not a string, trailing bytes) or names
/// a scalar field twice.
pub(crate) fn scalar_fields(payload: &[u8]) -> Option<Map<String, Value>> {
    let mut p = Scan { s: payload, i: 0 };
    let mut out = Map::new();
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if p.peek()? == b'}' {
        p.i += 1;
        return p.end().then_some(out);
    }
    loop {
        p.ws();
        let key = p.string()?;
        let key: String = serde_json::from_slice(key).ok()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match p.peek()? {
            b'{' | b'[' => p.skip_nested()?,
            _ => {
                let raw = p.scalar()?;
                let value: Value = serde_json::from_slice(raw).ok()?;
                if out.insert(key, value).is_some() {
                    return None;
                }
            }
        }
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            b'}' => {
                p.i += 1;
                return p.end().then_some(out);
            }
            _ => return None,
        }
    }
}

struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn end(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }

    /// A string token, quotes included.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(&self.s[start..self.i]);
                }
                _ => self.i += 1,
            }
        }
    }

    /// A string, number, boolean or null token.
    fn scalar(&mut self) -> Option<&'a [u8]> {
        if self.peek()? == b'"' {
            return self.string();
        }
        let start = self.i;
        while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// An object or array, however deep, by counting brackets outside strings.
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.i += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scalars_past_a_value_nested_beyond_any_parser() {
        let deep = format!(
            r#"{{"from": "x", "body": {}{}, "requestid": 7, "to": "d\"q", "ok": true}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        let m = scalar_fields(deep.as_bytes()).unwrap();
        assert_eq!(m["from"], "x");
        assert_eq!(m["requestid"], 7);
        assert_eq!(m["to"], "d\"q");
        assert_eq!(m["ok"], true);
        assert!(!m.contains_key("body"));
    }

    #[test]
    fn refuses_what_is_not_an_object_or_names_a_field_twice() {
        for bad in [
            &br#"[1]"#[..],
            br#"{"a": 1"#,
            br#"{"a": 1} x"#,
            br#"{a: 1}"#,
            br#"{"a": [}"#,
            br#"{"a": "x", "a": "y"}"#,
            br#"{"a": ]]}"#,
            b"",
        ] {
            assert!(
                scalar_fields(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(scalar_fields(b" { } ").unwrap().len(), 0);
    }
}
