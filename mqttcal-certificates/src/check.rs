//! What a certificate's data must satisfy before any format is rendered: every check names
//! the field, so a bad input is an error that says where, never a document that a
//! validator (or a reader) would reject.

use crate::model::{CertificateData, Status};
use crate::units::si_unit;

/// Certificate data that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {problem}")]
pub struct CertificateError {
    /// The field, as a path (`results[0].value`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

/// The most entries each list of a certificate holds, and the longest text: beyond them a
/// request is a flood, not a certificate (and a PDF string holds 32,767 bytes at most).
pub(crate) const MOST: &[(&str, usize)] = &[
    ("persons", 50),
    ("results", 1000),
    ("equipment", 200),
    ("conditions", 100),
    ("norms", 50),
];
/// The longest text of one field, in characters.
pub(crate) const LONGEST_TEXT: usize = 4000;

fn bad(field: impl Into<String>, problem: impl Into<String>) -> CertificateError {
    CertificateError {
        field: field.into(),
        problem: problem.into(),
    }
}

impl CertificateData {
    /// Checks everything the formats rely on; the first problem found.
    pub fn check(&self) -> Result<(), CertificateError> {
        text("number", &self.number)?;
        letters("language", &self.language, |c| c.is_ascii_lowercase())?;
        letters("country", &self.country, |c| c.is_ascii_uppercase())?;
        let begin = date("begin", &self.begin)?;
        let end = date("end", &self.end)?;
        if end < begin {
            return Err(bad(
                "end",
                format!("{} is before `begin` {}", self.end, self.begin),
            ));
        }
        if let Some(d) = &self.received {
            date("received", d)?;
        }
        match (&self.issued, self.status) {
            (Some(d), _) => {
                date("issued", d)?;
            }
            (None, Status::Issued) => {
                return Err(bad("issued", "an issued certificate needs its issue date"))
            }
            (None, _) => {}
        }
        for (name, party) in [
            ("laboratory", &self.laboratory),
            ("customer", &self.customer),
        ] {
            text(&format!("{name}.name"), &party.name)?;
            text(&format!("{name}.email"), &party.email)?;
            text(&format!("{name}.address.city"), &party.address.city)?;
            letters(
                &format!("{name}.address.country"),
                &party.address.country,
                |c| c.is_ascii_uppercase(),
            )?;
        }
        text("item.name", &self.item.name)?;
        text("item.manufacturer", &self.item.manufacturer)?;
        text("item.serial", &self.item.serial)?;
        if self.persons.is_empty() {
            return Err(bad("persons", "name at least the person who authorises"));
        }
        for (i, p) in self.persons.iter().enumerate() {
            text(&format!("persons[{i}].name"), &p.name)?;
            text(&format!("persons[{i}].role"), &p.role)?;
        }
        if self.status == Status::Issued && !self.persons.iter().any(|p| p.main_signer) {
            return Err(bad(
                "persons",
                "an issued certificate names its signer (`main_signer`)",
            ));
        }
        text("method.name", &self.method.name)?;
        for (i, e) in self.equipment.iter().enumerate() {
            text(&format!("equipment[{i}].name"), &e.name)?;
            if let Some(d) = &e.calibration_due {
                date(&format!("equipment[{i}].calibration_due"), d)?;
            }
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let at = |f: &str| format!("conditions[{i}].{f}");
            text(&at("name"), &c.name)?;
            decimal(&at("value"), &c.value, true)?;
            unit(&at("unit"), &c.unit)?;
            if let Some(h) = &c.half_width {
                decimal(&at("half_width"), h, false)?;
            }
        }
        if self.results.is_empty() {
            return Err(bad("results", "a certificate states at least one result"));
        }
        for (i, r) in self.results.iter().enumerate() {
            let at = |f: &str| format!("results[{i}].{f}");
            text(&at("name"), &r.name)?;
            decimal(&at("value"), &r.value, true)?;
            unit(&at("unit"), &r.unit)?;
            decimal(&at("expanded_uncertainty"), &r.expanded_uncertainty, false)?;
            coverage_factor(&at("coverage_factor"), &r.coverage_factor)?;
            probability(&at("coverage_probability"), &r.coverage_probability)?;
        }
        text("traceability", &self.traceability)?;
        if let Some(a) = &self.amends {
            text("amends.replaces", &a.replaces)?;
            text("amends.reason", &a.reason)?;
            if a.content_hash.len() != 64 || !a.content_hash.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(bad("amends.content_hash", "a SHA-256 in hex (64 digits)"));
            }
        }
        text("software.name", &self.software.name)?;
        text("software.version", &self.software.version)?;
        self.limits()
    }
}

fn text(field: &str, s: &str) -> Result<(), CertificateError> {
    if s.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    Ok(())
}

/// Two letters, each passing `ok` (ISO 639-1 lower case, ISO 3166-1 upper case).
fn letters(field: &str, s: &str, ok: fn(char) -> bool) -> Result<(), CertificateError> {
    if s.chars().count() == 2 && s.chars().all(ok) {
        return Ok(());
    }
    let case = if ok('a') { "lower" } else { "upper" };
    Err(bad(
        field,
        format!("`{s}` is not a two-letter {case}-case code"),
    ))
}

/// A `YYYY-MM-DD` date; its year, month and day, to compare.
pub(crate) fn date(field: &str, s: &str) -> Result<(i32, u32, u32), CertificateError> {
    let wrong = || bad(field, format!("`{s}` is not a date written YYYY-MM-DD"));
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(wrong());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, CertificateError> {
        let part = &s[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(wrong());
        }
        part.parse().map_err(|_| wrong())
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(wrong()),
    };
    if d == 0 || d > days {
        return Err(wrong());
    }
    Ok((y as i32, m, d))
}

/// A decimal as D-SI writes it (`[-+]?digits[.digits][e±digits]`): signed if `signed`.
fn decimal(field: &str, s: &str, signed: bool) -> Result<(), CertificateError> {
    let wrong = || {
        let what = if signed {
            "a decimal number"
        } else {
            "a decimal number without sign"
        };
        bad(
            field,
            format!("`{s}` is not {what} (e.g. 10.000012 or 1.2e-6)"),
        )
    };
    let mut rest = s;
    if let Some(r) = rest.strip_prefix(['+', '-']) {
        if !signed && rest.starts_with('-') {
            return Err(wrong());
        }
        rest = r;
    }
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits(int) || !digits(frac) {
        return Err(wrong());
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return Err(wrong());
        }
    }
    Ok(())
}

/// A coverage factor as D-SI writes it: at least 1 (`2`, `2.00`, `2.28`).
fn coverage_factor(field: &str, s: &str) -> Result<(), CertificateError> {
    let body = s.strip_prefix('+').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let ok = !int.is_empty()
        && !int.starts_with('0')
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit());
    if ok {
        return Ok(());
    }
    Err(bad(
        field,
        format!("`{s}` is not a coverage factor (a decimal of at least 1, e.g. 2.00)"),
    ))
}

/// A probability as D-SI writes it (`0.9545`, `1`).
fn probability(field: &str, s: &str) -> Result<(), CertificateError> {
    let body = s.strip_prefix('+').unwrap_or(s);
    let ok = match body.split_once('.') {
        None => body == "0" || body == "1",
        Some(("0", frac)) => frac.bytes().all(|c| c.is_ascii_digit()),
        Some(("1", frac)) => frac.bytes().all(|c| c == b'0'),
        Some(_) => false,
    };
    if ok {
        return Ok(());
    }
    Err(bad(
        field,
        format!("`{s}` is not a probability between 0 and 1 (e.g. 0.9545)"),
    ))
}

fn unit(field: &str, s: &str) -> Result<(), CertificateError> {
    if si_unit(s).is_some() {
        return Ok(());
    }
    Err(bad(field, format!("`{s}` is not a unit known to D-SI here (e.g. V, mV, °C, hPa, %RH, or a D-SI string such as \\micro\\volt)")))
}

impl CertificateData {
    /// List sizes, text lengths and characters, over every field.
    fn limits(&self) -> Result<(), CertificateError> {
        crate::limits::check_limits(self)
    }
}

/// Text a reader sees as stored: not too long, no control characters, and no bidirectional
/// controls that would show it in another order than it is stored.
pub(crate) fn plain_text(path: &str, s: &str) -> Result<(), CertificateError> {
    let count = s.chars().count();
    if count > LONGEST_TEXT {
        return Err(bad(
            path,
            format!("{count} characters; at most {LONGEST_TEXT}"),
        ));
    }
    if let Some(c) = s.chars().find(|c| {
        c.is_control() || matches!(*c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
    }) {
        return Err(bad(
            path,
            format!("holds the control character U+{:04X}, which no certificate prints", c as u32),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_the_d_si_pattern() {
        for ok in [
            "1",
            "-1",
            "+1.",
            ".5",
            "10.00001234",
            "1.2e-6",
            "3E+4",
            "0.0",
        ] {
            assert!(decimal("f", ok, true).is_ok(), "{ok}");
        }
        for no in [
            "", ".", "-", "1..2", "1e", "e5", "1.2.3", "NaN", "inf", "1,5", " 1", "0x10",
        ] {
            assert!(decimal("f", no, true).is_err(), "{no:?}");
        }
        assert!(decimal("f", "-1", false).is_err());
        assert!(decimal("f", "+1", false).is_ok());
    }

    #[test]
    fn coverage_factors_probabilities_and_dates() {
        for ok in ["2", "2.00", "+2.28", "1."] {
            assert!(coverage_factor("k", ok).is_ok(), "{ok}");
        }
        for no in ["0.5", "02", "", "-2", "2e0"] {
            assert!(coverage_factor("k", no).is_err(), "{no:?}");
        }
        for ok in ["0.9545", "1", "1.000", "0", "0."] {
            assert!(probability("p", ok).is_ok(), "{ok}");
        }
        for no in ["1.01", "95.45", "", ".95", "-0.5"] {
            assert!(probability("p", no).is_err(), "{no:?}");
        }
        assert_eq!(date("d", "2024-02-29").unwrap(), (2024, 2, 29));
        for no in [
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "24-01-01",
            "2024-01-00",
            "2024-01-32",
        ] {
            assert!(date("d", no).is_err(), "{no}");
        }
    }
}
