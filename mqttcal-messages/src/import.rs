//! A laboratory's existing records, brought in: the equipment register and calibration
//! histories from CSV or JSON. Every row is checked on its own; the rows that pass are
//! returned with the line they came from, the others are reported with the reason, so one
//! bad row never stops the rest.
//!
//! CSV: a header row naming the columns (the fields of [`Equipment`] or
//! [`CalibrationRecord`], in any order; unknown or missing required columns refuse the
//! file), comma- or semicolon-separated (with a semicolon, a decimal comma is read as a
//! decimal point), quotes as in RFC 4180, an empty cell for an absent value. Dates are ISO
//! 8601 (`2024-03-15`, `2024-03-15T10:30:00Z`, `2024-03-15 10:30:00+01:00`) or seconds
//! since 1970. JSON: an array of objects as the messages' schemas give them (dates in
//! seconds).
//!
//! ```
//! use mqttcal_messages::import::history_from_csv;
//! let csv = "equipment,calibrated_at,value,unit,uncertainty,coverage_factor,certificate\n\
//!            Z1,2023-03-01,10.0000112,V,0.00000020,2,INRIM-23-001\n\
//!            Z1,2024-03-04,10.0000118,V,-1,2,INRIM-24-017\n";
//! let import = history_from_csv(csv).unwrap();
//! assert_eq!(import.accepted.len(), 1);
//! assert_eq!(import.refused[0].line, 3);
//! assert!(import.refused[0].reason.contains("uncertainty"));
//! ```

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::invalid::{invalid, Invalid};
use crate::records::{CalibrationRecord, Equipment};

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its line in the CSV file (the header is line 1), or its position in the JSON array
    /// (from 1).
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// What an import found: the rows that passed every check, with their line, and those
/// refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Import<T> {
    /// The rows to store, in file order.
    pub accepted: Vec<(usize, T)>,
    /// The rows refused, in file order.
    pub refused: Vec<Refused>,
}

/// Why a whole file was refused (before any row was looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The header names a column that is not a field.
    #[error("unknown column `{column}`; the columns are: {known}")]
    UnknownColumn {
        /// The column.
        column: String,
        /// The known ones.
        known: String,
    },
    /// A required column is absent.
    #[error("the column `{0}` is missing")]
    MissingColumn(String),
    /// A column appears twice.
    #[error("the column `{0}` appears twice")]
    DuplicateColumn(String),
    /// The file cannot be read as CSV or JSON at all.
    #[error("{0}")]
    Unreadable(String),
}

/// How the cells of a column are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Text,
    Number,
    Date,
}

struct Columns {
    all: &'static [(&'static str, Cell)],
    required: &'static [&'static str],
    /// The column whose value must be unique in the file, if any.
    key: Option<&'static str>,
}

const EQUIPMENT: Columns = Columns {
    all: &[
        ("id", Cell::Text),
        ("kind", Cell::Text),
        ("description", Cell::Text),
        ("manufacturer", Cell::Text),
        ("model", Cell::Text),
        ("serial", Cell::Text),
        ("owner", Cell::Text),
        ("nominal_value", Cell::Number),
        ("unit", Cell::Text),
        ("location", Cell::Text),
        ("calibration_due", Cell::Date),
        ("checked_in", Cell::Date),
        ("checked_out", Cell::Date),
    ],
    required: &["id", "kind"],
    key: Some("id"),
};

const HISTORY: Columns = Columns {
    all: &[
        ("equipment", Cell::Text),
        ("calibrated_at", Cell::Date),
        ("value", Cell::Number),
        ("unit", Cell::Text),
        ("uncertainty", Cell::Number),
        ("coverage_factor", Cell::Number),
        ("certificate", Cell::Text),
        ("laboratory", Cell::Text),
    ],
    required: &[
        "equipment",
        "calibrated_at",
        "value",
        "unit",
        "uncertainty",
        "coverage_factor",
    ],
    key: None,
};

/// The equipment register from CSV.
pub fn equipment_from_csv(text: &str) -> Result<Import<Equipment>, ImportError> {
    from_csv(text, &EQUIPMENT, Equipment::validate, |e| {
        Some(e.id.clone())
    })
}

/// Calibration histories from CSV.
pub fn history_from_csv(text: &str) -> Result<Import<CalibrationRecord>, ImportError> {
    from_csv(text, &HISTORY, CalibrationRecord::validate, |_| None)
}

/// The equipment register from a JSON array.
pub fn equipment_from_json(text: &str) -> Result<Import<Equipment>, ImportError> {
    from_json(text, Equipment::validate, |e| Some(e.id.clone()))
}

/// Calibration histories from a JSON array.
pub fn history_from_json(text: &str) -> Result<Import<CalibrationRecord>, ImportError> {
    from_json(text, CalibrationRecord::validate, |_| None)
}

/// Seconds since 1970 from an ISO 8601 date (`2024-03-15`, midnight UTC), date and time
/// (`2024-03-15T10:30:00Z`, a space instead of `T`, fractional seconds, an offset such as
/// `+01:00`; no offset means UTC) or a plain number of seconds.
///
/// ```
/// use mqttcal_messages::import::parse_date;
/// assert_eq!(parse_date("1970-01-02").unwrap(), 86_400.0);
/// assert_eq!(parse_date("2000-03-01T00:00:00+01:00").unwrap(), 951_865_200.0);
/// assert!(parse_date("2023-02-29").is_err());
/// ```
pub fn parse_date(s: &str) -> Result<f64, Invalid> {
    let s = s.trim();
    if let Ok(x) = s.parse::<f64>() {
        // Seconds since 1970, between 1973 and 2286: a bare year (`2024`) or a compact date
        // (`20240315`) must not pass for a moment of 1970.
        if (1e8..1e10).contains(&x) {
            return Ok(x);
        }
        return Err(invalid(format!(
            "`{s}` is not a date: write YYYY-MM-DD, or seconds since 1970 (from 100000000)"
        )));
    }
    let bad = || {
        invalid(format!(
            "`{s}` is not a date (YYYY-MM-DD, optionally with a time)"
        ))
    };
    let (date, time) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Err(bad());
    }
    let mut seconds = days_from_civil(y, m, d) as f64 * 86_400.0;
    if let Some(time) = time {
        let (clock, offset) = split_offset(time).ok_or_else(bad)?;
        let mut hms = clock.splitn(3, ':');
        let h: u32 = hms.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let mi: u32 = hms.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let sec: f64 = match hms.next() {
            Some(x) => x.parse().map_err(|_| bad())?,
            None => 0.0,
        };
        if h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
            return Err(bad());
        }
        seconds += f64::from(h * 3600 + mi * 60) + sec - offset;
    }
    Ok(seconds)
}

/// The clock part and the offset in seconds (`Z`, `+hh:mm`, `-hh:mm`, `+hhmm`, or none).
fn split_offset(time: &str) -> Option<(&str, f64)> {
    if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        return Some((clock, 0.0));
    }
    let Some(i) = time.rfind(['+', '-']) else {
        return Some((time, 0.0));
    };
    let (clock, off) = time.split_at(i);
    let sign = if off.starts_with('-') { -1.0 } else { 1.0 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    if !matches!(digits.len(), 2 | 4) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: f64 = digits[..2].parse().ok()?;
    let m: f64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0.0
    };
    if h > 14.0 || m > 59.0 {
        return None;
    }
    Some((clock, sign * (h * 3600.0 + m * 60.0)))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn from_csv<T: DeserializeOwned>(
    text: &str,
    columns: &Columns,
    validate: fn(&T) -> Result<(), Invalid>,
    key: fn(&T) -> Option<String>,
) -> Result<Import<T>, ImportError> {
    let text = text.trim_start_matches('\u{feff}');
    // Old Mac files end lines with CR alone.
    let normalised;
    let text = if text.contains('\r') && !text.contains('\n') {
        normalised = text.replace('\r', "\n");
        normalised.as_str()
    } else {
        text
    };
    if text.trim().is_empty() {
        return Err(ImportError::Unreadable(
            "the file is empty: it needs a header row naming the columns".into(),
        ));
    }
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let semicolons = first.contains(';') && !first.contains(',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if semicolons { b';' } else { b',' })
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::Unreadable(format!("the header row: {e}")))?
        .iter()
        .map(|h| h.to_lowercase())
        .collect();
    let mut kinds = Vec::with_capacity(header.len());
    let mut seen = HashSet::new();
    for h in &header {
        let Some((_, kind)) = columns.all.iter().find(|(name, _)| name == h) else {
            let column = if h.is_empty() {
                "(empty: a separator too many?)".to_owned()
            } else {
                h.chars().take(60).collect()
            };
            return Err(ImportError::UnknownColumn {
                column,
                known: columns
                    .all
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if !seen.insert(h.as_str()) {
            return Err(ImportError::DuplicateColumn(h.clone()));
        }
        kinds.push(*kind);
    }
    if let Some(missing) = columns.required.iter().find(|r| !seen.contains(**r)) {
        return Err(ImportError::MissingColumn((*missing).to_owned()));
    }
    let mut out = Import {
        accepted: Vec::new(),
        refused: Vec::new(),
    };
    let mut keys = HashMap::new();
    // Lines counted from the bytes (the CSV reader's own count skips blank lines).
    let mut lines = LineCounter::new(text);
    for record in reader.records() {
        let (line, row) = match record {
            Ok(r) => (r.position().map_or(0, |p| lines.at(p.byte())), r),
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.at(p.byte()));
                out.refused.push(Refused {
                    line,
                    reason: format!("not readable as CSV: {e}"),
                });
                continue;
            }
        };
        if row.iter().all(str::is_empty) {
            continue; // a blank line
        }
        if row.iter().any(|c| c.contains(['\n', '\r'])) {
            out.refused.push(Refused {
                line,
                reason: "a cell runs over several lines: an unbalanced quote? (the lines it \
                         swallowed are part of this refusal)"
                    .into(),
            });
            continue;
        }
        if row.len() != header.len() {
            out.refused.push(Refused {
                line,
                reason: format!(
                    "{} cells where the header has {} columns",
                    row.len(),
                    header.len()
                ),
            });
            continue;
        }
        let cells = header.iter().zip(&kinds).zip(row.iter());
        let parsed: Result<Map<String, Value>, String> = cells
            .filter(|(_, cell)| !cell.is_empty())
            .map(|((name, kind), cell)| {
                cell_value(*kind, cell, semicolons)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| format!("`{name}`: {e}"))
            })
            .collect();
        match parsed.and_then(|map| check(Value::Object(map), validate)) {
            Ok(item) => accept(&mut out, &mut keys, line, item, key, columns.key),
            Err(reason) => out.refused.push(Refused { line, reason }),
        }
    }
    Ok(out)
}

/// The line of a byte offset, for offsets that only grow.
struct LineCounter<'a> {
    text: &'a [u8],
    byte: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            byte: 0,
            line: 1,
        }
    }

    fn at(&mut self, byte: u64) -> usize {
        let mut byte = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        // A record's position may point at the blank lines skipped before it.
        while byte < self.text.len() && matches!(self.text[byte], b'\n' | b'\r') {
            byte += 1;
        }
        if byte > self.byte {
            self.line += self.text[self.byte..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.byte = byte;
        }
        self.line
    }
}

fn cell_value(kind: Cell, cell: &str, decimal_comma: bool) -> Result<Value, String> {
    match kind {
        Cell::Text => Ok(Value::String(cell.to_owned())),
        Cell::Number => {
            let text = if decimal_comma {
                cell.replace(',', ".")
            } else {
                cell.to_owned()
            };
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Value::from(x)),
                Ok(_) => Err(format!("`{cell}` is out of the range of numbers")),
                Err(_) => Err(format!("`{cell}` is not a number")),
            }
        }
        Cell::Date => parse_date(cell).map(Value::from).map_err(|e| e.0),
    }
}

fn check<T: DeserializeOwned>(
    value: Value,
    validate: fn(&T) -> Result<(), Invalid>,
) -> Result<T, String> {
    let item: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        }
    })?;
    validate(&item).map_err(|e| e.0)?;
    Ok(item)
}

fn accept<T>(
    out: &mut Import<T>,
    keys: &mut HashMap<String, usize>,
    line: usize,
    item: T,
    key: fn(&T) -> Option<String>,
    key_name: Option<&str>,
) {
    if let Some(k) = key(&item) {
        if let Some(first) = keys.get(&k) {
            out.refused.push(Refused {
                line,
                reason: format!(
                    "`{}` {k} appears earlier in the file, at {first}",
                    key_name.unwrap_or("key")
                ),
            });
            return;
        }
        keys.insert(k, line);
    }
    out.accepted.push((line, item));
}

fn from_json<T: DeserializeOwned>(
    text: &str,
    validate: fn(&T) -> Result<(), Invalid>,
    key: fn(&T) -> Option<String>,
) -> Result<Import<T>, ImportError> {
    let rows: Vec<Value> = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| ImportError::Unreadable(format!("not a JSON array: {e}")))?;
    let mut out = Import {
        accepted: Vec::new(),
        refused: Vec::new(),
    };
    let mut keys = HashMap::new();
    for (i, row) in rows.into_iter().enumerate() {
        match check(row, validate) {
            Ok(item) => accept(&mut out, &mut keys, i + 1, item, key, Some("id")),
            Err(reason) => out.refused.push(Refused {
                line: i + 1,
                reason,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(parse_date("1970-01-01").unwrap(), 0.0);
        assert_eq!(parse_date("2000-02-29").unwrap(), 951_782_400.0);
        assert_eq!(parse_date("2024-03-15T10:30:00Z").unwrap(), 1_710_498_600.0);
        assert_eq!(
            parse_date("2024-03-15 11:30:00+01:00").unwrap(),
            1_710_498_600.0
        );
        assert_eq!(
            parse_date("2024-03-15T05:30:00-0500").unwrap(),
            1_710_498_600.0
        );
        assert_eq!(parse_date("1710498600").unwrap(), 1_710_498_600.0);
        assert_eq!(parse_date("1969-12-31").unwrap(), -86_400.0);
        assert_eq!(
            parse_date("2024-03-15T12:30:00+02").unwrap(),
            1_710_498_600.0
        );
        for bad in [
            "2024",
            "20240315",
            "1e300",
            "2024-03-15T10:30:00+99:99",
            "2024-03-15T10:30:00+15:00",
            "2023-02-29",
            "2024-13-01",
            "15/03/2024",
            "2024-03-15T25:00",
            "",
            "NaN",
            "2024-3-5",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
