//! Periodic reports. `calibrations`: the certificates issued in a month (or any range),
//! with customer, item and results. `standard`: a reference standard's calibration history
//! with its drift line (the same weighted fit cald predicts the reference with), as a table
//! and a plot.
//!
//! The plot is computed here, in numbers between 0 and 1 and labels we write ourselves,
//! so each template only draws it: as SVG in `standard.html`, with Typst's shapes in
//! `standard.typ`.

use mqttcal_certificates::CertificateData;
use mqttcal_core::clock::Timestamp;
use mqttcal_core::{Context, NodeError};
use mqttcal_messages::{
    Base64, CalibrationRecord, CertificateDocument, CertificateRecord, Equipment,
};
use mqttcal_metrology::{DriftFit, Reported};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::gather::{ask, ask_within, date};
use super::Tpld;
use crate::history::{history_points, DAY};

/// Days per year, for the drift per year.
const YEAR: f64 = 365.25;

/// Which report.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// `calibrations` (the certificates issued in `month`, or from `since` to `until`) or
    /// `standard` (the history of standard `id` with its drift line).
    pub kind: ReportKind,
    /// For `standard`: the standard (an id of the equipment register).
    #[serde(default)]
    pub id: Option<String>,
    /// For `calibrations`: the month, `YYYY-MM` (UTC); without it and without `since`,
    /// this month.
    #[serde(default)]
    pub month: Option<String>,
    /// For `calibrations`: from this time (seconds since the Unix epoch), in place of `month`.
    #[serde(default)]
    pub since: Option<f64>,
    /// For `calibrations`: up to this time (default: now).
    #[serde(default)]
    pub until: Option<f64>,
}

/// The kinds of report.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// The certificates issued in a month or range, with customer, item and results.
    Calibrations,
    /// A standard's calibration history with its drift line and plot.
    Standard,
}

/// The most certificates one report lists (and one reply carries).
const MOST: u32 = 2_000;
/// How long datad may take to list a month's certificates.
const LISTING: std::time::Duration = std::time::Duration::from_secs(30);

/// A report as rendered.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReportDocument {
    /// The name `mqttcal call --out` gives its files (`standard-Z2`, `calibrations-2026-11`).
    pub name: String,
    /// Calibrations (or certificates) in it.
    pub calibrations: usize,
    /// For `standard`: the drift per year, in the standard's unit (none with fewer than two
    /// calibrations).
    pub drift_per_year: Option<f64>,
    /// The documents: `html`, and `pdf` when tpld is built with the `pdf` feature; base64.
    pub documents: Vec<CertificateDocument>,
}

/// A point of the plot: where (0 to 1 across and up) and its error bar (± U).
#[derive(Debug, Serialize)]
struct PlotPoint {
    x: f64,
    y: f64,
    low: f64,
    high: f64,
}

/// A tick: where along its axis (0 to 1) and its label.
#[derive(Debug, Serialize)]
struct Tick {
    at: f64,
    label: String,
}

/// What the templates draw: points, the drift line (two ends), the line's prediction at
/// the due date, ticks and the axis title.
#[derive(Debug, Serialize)]
struct Plot {
    points: Vec<PlotPoint>,
    line: Option<[[f64; 2]; 2]>,
    due: Option<PlotPoint>,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    y_title: String,
}

pub(super) async fn report(
    ctx: &Context,
    tpld: &Tpld,
    p: ReportRequest,
) -> Result<ReportDocument, NodeError> {
    let kind = match p.kind {
        ReportKind::Calibrations => "calibrations",
        ReportKind::Standard => "standard",
    };
    let unused = |fields: &[(&str, bool)]| match fields.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(NodeError::invalid_params(format!(
            "{name}: not a field of a `{kind}` report"
        ))),
        None => Ok(()),
    };
    match p.kind {
        ReportKind::Standard => {
            unused(&[
                ("month", p.month.is_some()),
                ("since", p.since.is_some()),
                ("until", p.until.is_some()),
            ])?;
            let Some(id) = p.id else {
                return Err(NodeError::invalid_params(
                    "id: a `standard` report names the standard (`id`)",
                ));
            };
            standard_report(ctx, tpld, &id).await
        }
        ReportKind::Calibrations => {
            unused(&[("id", p.id.is_some())])?;
            let (since, until, name) = range(&p)?;
            calibrations_report(ctx, tpld, since, until, name).await
        }
    }
}

/// The range of a `calibrations` report and its name: `month`, or `since` to `until`.
fn range(p: &ReportRequest) -> Result<(f64, f64, String), NodeError> {
    let bad = |m: String| NodeError::invalid_params(m);
    // Neither a month nor a range: this month (UTC).
    let month = match (&p.month, p.since, p.until) {
        (None, None, None) => Some(Timestamp::now().utc_string()[..7].to_owned()),
        _ => p.month.clone(),
    };
    match (&month, p.since) {
        (Some(_), Some(_)) => Err(bad("month or since, not both".into())),
        (Some(month), None) => {
            if p.until.is_some() {
                return Err(bad(
                    "until: a month has its own end; give since and until instead".into(),
                ));
            }
            let parsed = month
                .split_once('-')
                .filter(|(y, m)| {
                    y.len() == 4
                        && m.len() == 2
                        && y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
                })
                .and_then(|(y, m)| Some((y.parse::<i64>().ok()?, m.parse::<u32>().ok()?)))
                .filter(|(y, m)| (1970..=9998).contains(y) && (1..=12).contains(m));
            let Some((year, m)) = parsed else {
                return Err(bad(format!(
                    "month: `{month}` is not a month YYYY-MM from 1970-01 to 9998-12 (e.g. 2026-11)"
                )));
            };
            let start = days_from_civil(year, m) as f64 * DAY;
            let (ny, nm) = if m == 12 {
                (year + 1, 1)
            } else {
                (year, m + 1)
            };
            // A millisecond before the next month: still apart from it at these magnitudes.
            let end = days_from_civil(ny, nm) as f64 * DAY - 1e-3;
            Ok((start, end, format!("calibrations-{month}")))
        }
        (None, Some(since)) => {
            let until = p.until.unwrap_or_else(|| Timestamp::now().as_secs_f64());
            let in_range = |t: f64| (0.0..=LAST_SECOND).contains(&t);
            if !(in_range(since) && in_range(until)) || since > until {
                return Err(bad(format!(
                    "since ({since}) must be a time before until ({until})"
                )));
            }
            Ok((
                since,
                until,
                format!("calibrations-{}-to-{}", date(since), date(until)),
            ))
        }
        (None, None) => Err(bad(
            "until: give since too, or a month (YYYY-MM; without any, this month)".into(),
        )),
    }
}

/// The last second of 9999-12-31 UTC: no date of a report lies later.
const LAST_SECOND: f64 = 253_402_300_799.0;

/// Days from 1970-01-01 to the first day of `month` of `year` (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32) -> i64 {
    // Count years from March, so the leap day is the last day of the counted year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * i64::from(m) + 2) / 5; // the first of the month
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The certificates issued from `since` to `until`, one line each.
async fn calibrations_report(
    ctx: &Context,
    tpld: &Tpld,
    since: f64,
    until: f64,
    name: String,
) -> Result<ReportDocument, NodeError> {
    let datad = tpld.config.datad.as_str();
    let issued: Vec<CertificateRecord> = ask_within(
        ctx,
        datad,
        "certificates",
        json!({ "since": since, "until": until, "limit": MOST }),
        LISTING,
    )
    .await?;
    if issued.len() >= MOST as usize {
        return Err(NodeError::invalid_params(format!(
            "{MOST} certificates or more in this range: narrow it"
        )));
    }
    let mut unreadable = 0;
    let mut rows = Vec::new();
    for c in &issued {
        match serde_json::from_value::<CertificateData>(c.data.clone()) {
            Ok(d) => rows.push(json!({
                "number": c.number,
                "issued": date(c.issued_at),
                "job": c.job,
                "authorised_by": c.authorised_by,
                "replaces": c.replaces,
                "replaced_by": c.replaced_by,
                "customer": d.customer.name,
                "item": d.item,
                "results": d.results,
            })),
            Err(e) => {
                if unreadable == 0 {
                    tracing::warn!(number = %c.number, "tpld: a stored certificate's data does not read: {e}");
                }
                unreadable += 1;
            }
        }
    }
    let now = Timestamp::now().as_secs_f64();
    let data = json!({
        "laboratory": tpld.config.laboratory,
        "from": date(since),
        "to": date(until),
        "certificates": rows,
        "amendments": issued.iter().filter(|c| c.replaces.is_some()).count(),
        "unreadable": unreadable,
        "generated": date(now),
        "software": format!("mqttcal {}", env!("CARGO_PKG_VERSION")),
    });
    let documents = render_off_thread(tpld, data, "calibrations", &name).await?;
    Ok(ReportDocument {
        name,
        calibrations: issued.len(),
        drift_per_year: None,
        documents,
    })
}

/// A standard's calibration history with its drift line.
async fn standard_report(
    ctx: &Context,
    tpld: &Tpld,
    id: &str,
) -> Result<ReportDocument, NodeError> {
    let datad = tpld.config.datad.as_str();
    let standard: Equipment = ask(ctx, datad, "equipment", json!({ "id": id })).await?;
    let history: Vec<CalibrationRecord> = ask(ctx, datad, "history", json!({ "id": id })).await?;
    let unit = standard
        .unit
        .clone()
        .or_else(|| history.first().map(|c| c.unit.clone()))
        .unwrap_or_default();
    // A history that cannot carry a line (mixed units, a point without uncertainty, all on
    // one date) is still listed, with the reason in place of the line.
    let mixed = history.iter().find(|c| c.unit != unit).map(|other| {
        format!(
            "the history mixes units (`{unit}` and `{}`): no drift line across them",
            other.unit
        )
    });
    let (fit, no_line) = match mixed {
        Some(why) => (None, Some(why)),
        None => match fit(&history) {
            Ok(fit) => (fit, None),
            Err(e) => (None, Some(e.message)),
        },
    };
    let now = Timestamp::now().as_secs_f64();
    let rows: Vec<_> = history
        .iter()
        .map(|c| {
            let (value, expanded) = reported(c.value, c.uncertainty);
            json!({
                "date": date(c.calibrated_at),
                "value": value,
                "expanded_uncertainty": expanded,
                "coverage_factor": format!("{:.2}", c.coverage_factor),
                "certificate": c.certificate,
                "laboratory": c.laboratory,
            })
        })
        .collect();
    let drift = match &fit {
        Some(f) => Some(drift_summary(f, now, standard.calibration_due)?),
        None => None,
    };
    let data = json!({
        "laboratory": tpld.config.laboratory,
        "standard": standard,
        "due": standard.calibration_due.map(date),
        "unit": unit,
        "calibrations": rows,
        "drift": drift,
        "no_line": no_line,
        "plot": if no_line.is_some() { None } else { plot(&history, fit.as_ref(), standard.nominal_value, &unit, standard.calibration_due) },
        "generated": date(now),
        "software": format!("mqttcal {}", env!("CARGO_PKG_VERSION")),
    });
    let name = format!("standard-{id}");
    let documents = render_off_thread(tpld, data, "standard", &name).await?;
    Ok(ReportDocument {
        name,
        calibrations: history.len(),
        drift_per_year: fit.map(|f| f.slope * YEAR),
        documents,
    })
}

/// The report's documents from its data and its templates (`<template>.html`, `.typ`),
/// typeset off the async threads, a few at a time.
async fn render_off_thread(
    tpld: &Tpld,
    data: serde_json::Value,
    template: &'static str,
    name: &str,
) -> Result<Vec<CertificateDocument>, NodeError> {
    let templates = std::sync::Arc::clone(&tpld.templates);
    let name = name.to_owned();
    tpld.typesetter
        .run(&format!("report {name}"), move || {
            render(&templates, &data, template, &name)
        })
        .await
}

/// The report's documents from its data.
#[cfg_attr(not(feature = "pdf"), allow(unused_variables))]
fn render(
    templates: &mqttcal_certificates::Templates,
    data: &serde_json::Value,
    template: &str,
    name: &str,
) -> Result<Vec<CertificateDocument>, NodeError> {
    let failed = |e: mqttcal_certificates::TemplateError| NodeError::internal(e.to_string());
    let html = templates
        .render_with(&format!("{template}.html"), data)
        .map_err(failed)?;
    #[allow(unused_mut)] // without the `pdf` feature
    let mut documents = vec![CertificateDocument {
        kind: "html".into(),
        media_type: "text/html".into(),
        content: Base64(html.into_bytes()),
    }];
    #[cfg(feature = "pdf")]
    {
        let today = data["generated"].as_str().unwrap_or("1970-01-01");
        let pdf = templates
            .render_pdf_with(&format!("{template}.typ"), data, name, today)
            .map_err(failed)?;
        documents.push(CertificateDocument {
            kind: "pdf".into(),
            media_type: "application/pdf".into(),
            content: Base64(pdf),
        });
    }
    Ok(documents)
}

/// The value and U as reported (U to two significant digits); as found if U is not
/// positive.
fn reported(value: f64, expanded: f64) -> (String, String) {
    match Reported::new(value, expanded, mqttcal_metrology::Rounding::default()) {
        Ok(r) => (r.value_text(), r.expanded_text()),
        Err(_) => (value.to_string(), expanded.to_string()),
    }
}

/// The drift line through the history (days), or none with fewer than two calibrations.
fn fit(history: &[CalibrationRecord]) -> Result<Option<DriftFit>, NodeError> {
    if history.len() < 2 {
        return Ok(None);
    }
    let points = history_points(history);
    DriftFit::fit(&points, 0.0)
        .map(Some)
        .map_err(|e| NodeError::invalid_params(format!("the drift line: {e}")))
}

/// The drift per year and the line's prediction today and at the due date (U, k = 2).
fn drift_summary(
    fit: &DriftFit,
    now: f64,
    due: Option<f64>,
) -> Result<serde_json::Value, NodeError> {
    let bad = |e: mqttcal_metrology::MetrologyError| NodeError::internal(e.to_string());
    let at = |t: f64| -> Result<serde_json::Value, NodeError> {
        let p = fit.predict_new(t / DAY).map_err(bad)?;
        let (value, expanded) = reported(p.value, 2.0 * p.u);
        Ok(json!({ "date": date(t), "value": value, "expanded_uncertainty": expanded }))
    };
    let per_year = fit.slope * YEAR;
    let u_per_year = fit.var_slope.sqrt() * YEAR;
    let (slope, slope_u) = reported(per_year, 2.0 * u_per_year);
    Ok(json!({
        "per_year": slope,
        "per_year_expanded_uncertainty": slope_u,
        "points": fit.n,
        "birge_ratio": fit.birge_ratio.map(|b| format!("{b:.2}")),
        "today": at(now)?,
        "at_due": due.map(at).transpose()?,
    }))
}

/// The plot in numbers from 0 to 1: deviations from the nominal value (else the first
/// value) in a unit with a prefix that suits their size.
fn plot(
    history: &[CalibrationRecord],
    fit: Option<&DriftFit>,
    nominal: Option<f64>,
    unit: &str,
    due: Option<f64>,
) -> Option<Plot> {
    let first = history.first()?;
    let base = nominal.unwrap_or(first.value);
    let t0 = history
        .iter()
        .map(|c| c.calibrated_at)
        .fold(f64::INFINITY, f64::min);
    // The prediction at the due date, when the line gives one (and the date is ahead).
    let predicted = fit.zip(due).and_then(|(f, due)| {
        let p = f.predict_new(due / DAY).ok()?;
        (due > t0 && p.u.is_finite()).then_some((due, p.value - base, 2.0 * p.u))
    });
    let t1 = history
        .iter()
        .map(|c| c.calibrated_at)
        .chain(predicted.map(|p| p.0))
        .fold(f64::NEG_INFINITY, f64::max);
    let span_t = (t1 - t0).max(DAY);
    let (tmin, tmax) = (t0 - 0.05 * span_t, t1 + 0.05 * span_t);
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for c in history {
        lo = lo.min(c.value - c.uncertainty - base);
        hi = hi.max(c.value + c.uncertainty - base);
    }
    let line = fit.map(|f| {
        let at = |t: f64| f.intercept + f.slope * (t / DAY - f.t_mean) - base;
        (at(tmin), at(tmax))
    });
    if let Some((a, b)) = line {
        lo = lo.min(a.min(b));
        hi = hi.max(a.max(b));
    }
    if let Some((_, v, u)) = predicted {
        lo = lo.min(v - u);
        hi = hi.max(v + u);
    }
    let margin = ((hi - lo) * 0.08)
        .max(hi.abs().max(lo.abs()) * 1e-3)
        .max(f64::MIN_POSITIVE);
    let (lo, hi) = (lo - margin, hi + margin);
    let (step, scale, prefix) = nice_step(hi - lo);
    let x = |t: f64| (t - tmin) / (tmax - tmin);
    let y = |v: f64| (v - lo) / (hi - lo);
    let mut y_ticks = Vec::new();
    let decimals = decimals_for(step / scale);
    let mut k = (lo / step).ceil();
    while k * step <= hi && y_ticks.len() < 12 {
        let tick = k * step;
        // -0 is 0; a minus sign, not a hyphen.
        let label = format!("{:.*}", decimals, if k == 0.0 { 0.0 } else { tick / scale });
        y_ticks.push(Tick {
            at: y(tick),
            label: label.replace('-', "−"),
        });
        k += 1.0;
    }
    let x_ticks = history
        .iter()
        .enumerate()
        .filter(|(i, _)| history.len() <= 6 || i % history.len().div_ceil(6) == 0)
        .map(|(_, c)| Tick {
            at: x(c.calibrated_at),
            label: date(c.calibrated_at),
        })
        .collect();
    Some(Plot {
        points: history
            .iter()
            .map(|c| PlotPoint {
                x: x(c.calibrated_at),
                y: y(c.value - base),
                low: y(c.value - c.uncertainty - base),
                high: y(c.value + c.uncertainty - base),
            })
            .collect(),
        line: line.map(|(a, b)| [[0.0, y(a)], [1.0, y(b)]]),
        due: predicted.map(|(t, v, u)| PlotPoint {
            x: x(t),
            y: y(v),
            low: y(v - u),
            high: y(v + u),
        }),
        x_ticks,
        y_ticks,
        y_title: format!("deviation from {base} {unit}, in {prefix}{unit}"),
    })
}

/// A step of 1, 2 or 5 times a power of ten giving about five ticks over `span`, the
/// scale of the SI prefix to label them in, and the prefix.
fn nice_step(span: f64) -> (f64, f64, &'static str) {
    let raw = span / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    let (scale, prefix) = [
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
        (1e-12, "p"),
    ]
    .into_iter()
    .find(|(s, _)| step >= *s * 0.099)
    .unwrap_or((1e-12, "p"));
    (step, scale, prefix)
}

/// Decimals that show a step of `step` (in the labels' unit).
fn decimals_for(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs()
    }

    #[test]
    fn months_start_on_the_right_day() {
        assert_eq!(days_from_civil(1970, 1), 0);
        assert_eq!(days_from_civil(2000, 3), 11_017);
        // 2026-12-01T00:00:00Z is 1 796 083 200 s.
        assert_eq!(days_from_civil(2026, 12) * 86_400, 1_796_083_200);
        assert_eq!(days_from_civil(2024, 3) - days_from_civil(2024, 2), 29);
        assert_eq!(days_from_civil(2100, 3) - days_from_civil(2100, 2), 28);
    }

    #[test]
    fn ticks_are_one_two_or_five_with_a_prefix_that_suits() {
        let (step, scale, prefix) = nice_step(5e-6);
        assert!(
            close(step, 1e-6) && scale == 1e-6 && prefix == "µ",
            "{step} {prefix}"
        );
        let (step, scale, prefix) = nice_step(0.9e-6);
        assert!(
            close(step, 0.2e-6) && scale == 1e-6 && prefix == "µ",
            "{step} {prefix}"
        );
        let (step, _, prefix) = nice_step(0.2e-6);
        assert!(close(step, 50e-9) && prefix == "n", "{step} {prefix}");
        let (step, scale, prefix) = nice_step(20.0);
        assert!(close(step, 5.0) && scale == 1.0 && prefix.is_empty());
        assert_eq!(decimals_for(0.2), 1);
        assert_eq!(decimals_for(0.05), 2);
        assert_eq!(decimals_for(5.0), 0);
    }
}
