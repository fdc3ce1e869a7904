//! Export of measurements as CSV or JSON, one page at a time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use mqttcal_store::{MeasurementQuery, MeasurementRow};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Comma-separated values (RFC 4180), one header line.
    Csv,
    /// A JSON array of rows.
    Json,
}

/// What to export: a format, and the measurement query's filters and paging (an unknown
/// field is refused by the query).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ExportParams {
    /// `csv` or `json`.
    pub format: ExportFormat,
    /// Which measurements.
    #[serde(flatten)]
    pub query: MeasurementQuery,
}

/// One exported page.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Export {
    /// The format of `content`.
    pub format: ExportFormat,
    /// Rows in this page; fewer than the limit means the last page.
    pub rows: usize,
    /// The file's text.
    pub content: String,
}

const COLUMNS: [&str; 17] = [
    "origin",
    "epoch",
    "seq",
    "sent_at",
    "acquired",
    "standard",
    "src",
    "value",
    "unit",
    "nplc",
    "ndigits",
    "range",
    "mode",
    "pol",
    "job",
    "raw",
    "environment",
];

/// A CSV text field: neutralised when a spreadsheet would read it as a formula, then
/// quoted when it must be.
///
/// A cell starting with `=`, `@`, a tab or a carriage return, or with `+` or `-` without
/// being a number (`+1.0E+01` from a DMM is a number and stays as it is;
/// `+HYPERLINK(...)` is not; a lone `+` or `-` is a polarity), gets a leading `'`: spreadsheets show it as text and never
/// run it. Every reader of the export sees the same convention (docs/protocol.md, datad).
fn field(s: &str) -> String {
    let risky = match s.chars().next() {
        Some('=' | '@' | '\t' | '\r') => true,
        // A lone sign (a polarity) is text to a spreadsheet too.
        Some('+' | '-') => s.len() > 1 && s.trim().parse::<f64>().is_err(),
        _ => false,
    };
    let owned;
    let s = if risky {
        owned = format!("'{s}");
        owned.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The standards a reading was taken on, `Z1;Z2` for a differential one (measured, then
/// reference), as the reading's `src` lists them.
fn sources(src: Option<&mqttcal_store::JsonText>) -> String {
    let Some(src) = src else {
        return String::new();
    };
    match serde_json::from_str::<serde_json::Value>(src.get()) {
        Ok(serde_json::Value::Array(ids)) => ids
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(";"),
        Ok(serde_json::Value::String(one)) => one,
        _ => src.get().to_owned(),
    }
}

/// Numbers as Rust prints them: the shortest text that reads back to the same `f64`.
fn csv_row(r: &MeasurementRow) -> String {
    [
        field(&r.origin),
        opt(&r.epoch),
        opt(&r.seq),
        r.sent_at.to_string(),
        opt(&r.acquired),
        field(&opt(&r.standard)),
        field(&sources(r.src.as_ref())),
        r.value.to_string(),
        field(&opt(&r.unit)),
        opt(&r.nplc),
        opt(&r.ndigits),
        opt(&r.range),
        field(&opt(&r.mode)),
        field(&opt(&r.pol)),
        field(&opt(&r.job)),
        field(&opt(&r.raw)),
        field(
            r.environment
                .as_ref()
                .map(mqttcal_store::JsonText::get)
                .unwrap_or_default(),
        ),
    ]
    .join(",")
}

/// Renders `rows` in `format`.
pub(super) fn render(format: ExportFormat, rows: &[MeasurementRow]) -> Export {
    let content = match format {
        ExportFormat::Csv => {
            let mut out = COLUMNS.join(",");
            out.push_str("\r\n");
            for r in rows {
                out.push_str(&csv_row(r));
                out.push_str("\r\n");
            }
            out
        }
        ExportFormat::Json => serde_json::to_string(rows).unwrap_or_else(|_| "[]".into()),
    };
    Export {
        format,
        rows: rows.len(),
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standards_of_a_reading_are_one_column() {
        let text = |t: &str| mqttcal_store::JsonText::parse(t).unwrap();
        assert_eq!(sources(Some(&text(r#"["Z1","Z2"]"#))), "Z1;Z2");
        assert_eq!(sources(Some(&text(r#"["Z1"]"#))), "Z1");
        assert_eq!(sources(Some(&text(r#""Z3""#))), "Z3");
        assert_eq!(sources(None), "");
        assert!(COLUMNS.join(",").contains(",standard,src,value,"));
    }

    fn row(raw: &str) -> MeasurementRow {
        MeasurementRow {
            dedup_key: "k".into(),
            origin: "labd".into(),
            epoch: Some(1),
            seq: Some(2),
            sent_at: 1_764_000_000.25,
            acquired: None,
            standard: Some("Z1".into()),
            src: None,
            value: 10.000_012_345_678_9,
            unit: Some("V".into()),
            nplc: Some(100.0),
            ndigits: Some(8),
            range: Some(10.0),
            mode: Some("absolute".into()),
            pol: Some("+".into()),
            job: None,
            raw: Some(raw.into()),
            origin_uid: None,
            environment: Some(mqttcal_store::JsonText::from_value(
                &serde_json::json!({"temperature": 23.01}),
            )),
            payload: "{}".into(),
        }
    }

    #[test]
    fn csv_quotes_what_it_must_and_keeps_every_digit() {
        let e = render(ExportFormat::Csv, &[row("+1.0E+01,\"x\"")]);
        let lines: Vec<&str> = e.content.split("\r\n").collect();
        assert_eq!(lines[0].split(',').count(), COLUMNS.len());
        assert_eq!(
            lines[1],
            "labd,1,2,1764000000.25,,Z1,,10.0000123456789,V,100,8,10,absolute,+,,\"'+1.0E+01,\"\"x\"\"\",\"{\"\"temperature\"\":23.01}\""
        );
        let value: f64 = lines[1].split(',').nth(7).unwrap().parse().unwrap();
        assert_eq!(value, 10.000_012_345_678_9);
    }

    #[test]
    fn spreadsheet_formulas_are_neutralised_and_numbers_kept() {
        for (raw, cell) in [
            (
                "=HYPERLINK(\"http://x\")",
                "\"'=HYPERLINK(\"\"http://x\"\")\"",
            ),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("\tx", "'\tx"),
            ("+1.0E+01", "+1.0E+01"),
            ("-0.5", "-0.5"),
            ("10 V", "10 V"),
        ] {
            let e = render(ExportFormat::Csv, &[row(raw)]);
            let line = e.content.split("\r\n").nth(1).unwrap();
            assert!(line.contains(&format!(",,{cell},")), "{raw}: {line}");
        }
    }

    #[test]
    fn json_export_reads_back() {
        let e = render(ExportFormat::Json, &[row("x"), row("y")]);
        let back: serde_json::Value = serde_json::from_str(&e.content).unwrap();
        assert_eq!(back.as_array().unwrap().len(), 2);
        assert_eq!(back[1]["raw"], "y");
    }
}
