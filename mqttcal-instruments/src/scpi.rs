//! I/O-free SCPI / IEEE 488.2: command formatting and response parsing.
//!
//! Numbers in the NR1 (`42`), NR2 (`-0.5`) and NR3 (`+1.000012E+01`) forms, quoted strings,
//! definite-length arbitrary blocks (`#<n><length><bytes>`), `*IDN?` answers and error-queue
//! entries (`-113,"Undefined header"`).

use std::fmt;

/// A response that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not a number in NR1, NR2 or NR3 form.
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// The instrument reported an overload (9.9E37 or larger).
    #[error("overload reading `{0}`")]
    Overload(String),
    /// Not a quoted string.
    #[error("`{0}` is not a quoted string")]
    NotAString(String),
    /// A malformed arbitrary block.
    #[error("malformed arbitrary block: {0}")]
    Block(&'static str),
    /// A malformed error-queue entry.
    #[error("`{0}` is not an error-queue entry (`<code>,\"<message>\"`)")]
    ErrorEntry(String),
    /// A malformed identification.
    #[error("`{0}` is not an identification (`maker,model,serial,firmware`)")]
    Idn(String),
}

/// Readings at or above this magnitude are the IEEE 488.2 / SCPI overload marker (9.9E37).
pub const OVERLOAD: f64 = 9.9e37;

/// Parses an NR1, NR2 or NR3 number (leading and trailing blanks allowed).
///
/// ```
/// use mqttcal_instruments::scpi::parse_number;
/// assert_eq!(parse_number(" +1.00001234E+01\r\n").unwrap(), 10.0001234);
/// assert!(parse_number("+9.90000000E+37").is_err());
/// ```
pub fn parse_number(text: &str) -> Result<f64, ParseError> {
    let t = text.trim();
    let valid = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && t.bytes().any(|b| b.is_ascii_digit());
    let v: f64 = if valid { t.parse().ok() } else { None }
        .ok_or_else(|| ParseError::NotANumber(t.to_owned()))?;
    if !v.is_finite() || v.abs() >= OVERLOAD {
        return Err(ParseError::Overload(t.to_owned()));
    }
    Ok(v)
}

/// Parses a comma-separated list of numbers.
pub fn parse_numbers(text: &str) -> Result<Vec<f64>, ParseError> {
    text.trim().split(',').map(parse_number).collect()
}

/// Parses a quoted string (`"..."` or `'...'`, a doubled quote standing for one).
pub fn parse_string(text: &str) -> Result<String, ParseError> {
    let t = text.trim();
    let bad = || ParseError::NotAString(t.to_owned());
    let q = t
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')
        .ok_or_else(bad)?;
    if t.len() < 2 || !t.ends_with(q) {
        return Err(bad());
    }
    let inner = &t[1..t.len() - 1];
    let doubled: String = [q, q].iter().collect();
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(i) = rest.find(q) {
        if !rest[i..].starts_with(&doubled) {
            return Err(bad());
        }
        out.push_str(&rest[..=i]);
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a definite-length arbitrary block at the start of `data`; returns its bytes and
/// how many bytes of `data` it took (header included).
///
/// ```
/// use mqttcal_instruments::scpi::parse_block;
/// let (bytes, used) = parse_block(b"#15hello\n").unwrap();
/// assert_eq!((bytes, used), (&b"hello"[..], 8));
/// ```
pub fn parse_block(data: &[u8]) -> Result<(&[u8], usize), ParseError> {
    if data.first() != Some(&b'#') {
        return Err(ParseError::Block("does not start with `#`"));
    }
    let n = match data.get(1) {
        Some(d @ b'1'..=b'9') => usize::from(d - b'0'),
        Some(b'0') => {
            return Err(ParseError::Block(
                "indefinite-length blocks (#0) are not supported",
            ))
        }
        _ => return Err(ParseError::Block("no digit count after `#`")),
    };
    let digits = data
        .get(2..2 + n)
        .ok_or(ParseError::Block("truncated length"))?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Block("length is not decimal"));
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::Block("length is not decimal"))?;
    let start = 2 + n;
    let body = data
        .get(start..start + len)
        .ok_or(ParseError::Block("fewer bytes than the length says"))?;
    Ok((body, start + len))
}

/// Formats `data` as a definite-length arbitrary block.
pub fn format_block(data: &[u8]) -> Vec<u8> {
    let len = data.len().to_string();
    let mut out = Vec::with_capacity(data.len() + len.len() + 2);
    out.push(b'#');
    out.extend_from_slice(len.len().to_string().as_bytes());
    out.extend_from_slice(len.as_bytes());
    out.extend_from_slice(data);
    out
}

/// An error the instrument reported (an entry of its error queue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instrument error {code}: {message}")]
pub struct DeviceError {
    /// The instrument's code (SCPI: negative standard codes, positive device codes).
    pub code: i32,
    /// Its message.
    pub message: String,
}

/// Parses an error-queue entry; `None` for "no error" (code 0).
///
/// ```
/// use mqttcal_instruments::scpi::parse_error_entry;
/// let e = parse_error_entry("-113,\"Undefined header\"").unwrap().unwrap();
/// assert_eq!(e.code, -113);
/// assert_eq!(parse_error_entry("+0,\"No error\"").unwrap(), None);
/// ```
pub fn parse_error_entry(text: &str) -> Result<Option<DeviceError>, ParseError> {
    let t = text.trim();
    let bad = || ParseError::ErrorEntry(t.to_owned());
    let (code, message) = t.split_once(',').ok_or_else(bad)?;
    let code: i32 = code.trim().parse().map_err(|_| bad())?;
    let message = parse_string(message).unwrap_or_else(|_| message.trim().to_owned());
    Ok((code != 0).then_some(DeviceError { code, message }))
}

/// The answer to `*IDN?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware version.
    pub firmware: String,
}

impl Identity {
    /// Parses `maker,model,serial,firmware`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let t = text.trim();
        let parts: Vec<&str> = t.splitn(4, ',').map(str::trim).collect();
        match parts.as_slice() {
            [m, model, s, f] => Ok(Self {
                manufacturer: (*m).to_owned(),
                model: (*model).to_owned(),
                serial: (*s).to_owned(),
                firmware: (*f).to_owned(),
            }),
            _ => Err(ParseError::Idn(t.to_owned())),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.manufacturer, self.model, self.serial, self.firmware
        )
    }
}

/// Formats a number as SCPI accepts it (shortest text that reads back the same).
pub fn format_number(v: f64) -> String {
    let s = format!("{v:?}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

/// Common IEEE 488.2 commands.
pub mod common {
    /// Identification query.
    pub const IDN: &str = "*IDN?";
    /// Reset.
    pub const RST: &str = "*RST";
    /// Clear status (and the error queue).
    pub const CLS: &str = "*CLS";
    /// Operation complete query: answers `1` when pending operations are done.
    pub const OPC: &str = "*OPC?";
    /// Next entry of the error queue.
    pub const SYST_ERR: &str = "SYST:ERR?";
}

#[cfg(test)]
mod tests;
