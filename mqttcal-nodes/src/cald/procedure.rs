//! A calibration procedure as data: what cald measures and how it evaluates it. It is
//! stored in datad as a measurement configuration, and every job and result cites its hash.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use mqttcal_core::NodeError;

/// What to do with readings taken outside the procedure's environmental limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Finish the job and flag the result (`environment_ok: false`).
    #[default]
    Flag,
    /// Abort the job: no result.
    Abort,
}

/// The lab conditions a procedure accepts, each an inclusive `[min, max]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<[f64; 2]>,
    /// Relative humidity, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub humidity: Option<[f64; 2]>,
    /// Pressure, hPa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<[f64; 2]>,
    /// Flag the result (default) or abort the job.
    #[serde(default)]
    pub on_violation: OnViolation,
}

/// The Type B terms of the budget, each a standard uncertainty (docs/metrology.md says
/// where the numbers come from); each one left out takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Terms {
    /// The DMM's gain on the difference, relative (it multiplies the mean difference).
    pub dmm_gain: f64,
    /// Thermal EMFs left after the reversal (relay asymmetry, before the reversal point), V.
    pub emf: f64,
    /// Temperature coefficient of the difference of the two standards, V/K: applied to the
    /// largest deviation from 23 °C seen during the job, as a rectangular half-width.
    pub temperature_coefficient: f64,
    /// Pressure coefficient of the reference, V/hPa: applied to the largest deviation from
    /// 1013.25 hPa seen during the job, as a rectangular half-width.
    #[serde(default = "default_pressure_coefficient")]
    pub pressure_coefficient: f64,
    /// Short-term wander of the reference about its drift line (its flicker noise, as a
    /// standard deviation), V.
    #[serde(default = "default_stability")]
    pub reference_stability: f64,
    /// The part of the reference's history uncertainty common to every calibration (the
    /// calibrating laboratory's own reference), V.
    #[serde(default)]
    pub reference_common: f64,
}

impl Default for Terms {
    fn default() -> Self {
        Self {
            // HP 3458A 100 mV range, 24 h: 2.5 ppm of reading → rectangular, as u.
            dmm_gain: 2.5e-6 / 3f64.sqrt(),
            emf: 5e-9,
            temperature_coefficient: 5e-8,
            pressure_coefficient: default_pressure_coefficient(),
            reference_stability: default_stability(),
            reference_common: 0.0,
        }
    }
}

fn default_pressure_coefficient() -> f64 {
    // 10 V Zener references: 1 to 20 nV/hPa.
    1.5e-8
}

fn default_stability() -> f64 {
    // A 10 V Zener wanders about its drift line by about 3 ppb within a day (its flicker
    // noise: a flat Allan deviation near 1 ppb, band-limited, has a standard deviation
    // about three times that); longer wander shows in the history's scatter.
    3e-8
}

/// A calibration procedure of a DC voltage standard by series opposition against a
/// reference: `groups` groups of + − − + reversals, `readings` readings at each polarity.
///
/// ```
/// let p: mqttcal_nodes::cald::Procedure = serde_json::from_value(serde_json::json!({
///     "name": "DCV-10V-DIFF", "reference": "Z2", "groups": 4, "readings": 5
/// })).unwrap();
/// p.validate().unwrap();
/// assert_eq!(p.steps(), 16);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    /// Its name, e.g. `DCV-10V-DIFF`.
    pub name: String,
    /// The reference standard: its equipment id, also its channel in labd.
    pub reference: String,
    /// Reversal groups (+ − − +), 2 to 1000.
    pub groups: u32,
    /// Readings at each polarity, 1 to 1000.
    pub readings: u32,
    /// Integration time in power-line cycles.
    #[serde(default = "default_nplc", rename = "NPLC")]
    pub nplc: f64,
    /// Digits of resolution.
    #[serde(default = "default_ndigits", rename = "Ndigits")]
    pub ndigits: u8,
    /// DMM range for the difference, V.
    #[serde(default = "default_range")]
    pub range: f64,
    /// Wait after each reversal before reading, s (0 to 600).
    #[serde(default)]
    pub settle_s: f64,
    /// Environmental limits.
    #[serde(default)]
    pub limits: Limits,
    /// The Type B terms of the budget.
    #[serde(default)]
    pub terms: Terms,
}

fn default_nplc() -> f64 {
    10.0
}
fn default_ndigits() -> u8 {
    8
}
fn default_range() -> f64 {
    0.1
}

impl Procedure {
    /// `measure` calls a job makes: four per group.
    pub fn steps(&self) -> u32 {
        self.groups * 4
    }

    /// Seconds a job following it measures, roughly (integration, overhead, settling).
    pub fn expected_seconds(&self) -> f64 {
        let per_reading = self.nplc / 50.0 + 0.1;
        f64::from(self.steps()) * (per_reading * f64::from(self.readings) + self.settle_s)
    }

    /// Refuses values no job could run with, naming the field (`details.field`).
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |field: &str, m: &str| {
            Err(
                NodeError::invalid_params(format!("procedure: `{field}` {m}"))
                    .with_details(serde_json::json!({ "field": format!("procedure.{field}") })),
            )
        };
        if self.name.trim().is_empty()
            || self.name.chars().count() > 128
            || self.name.chars().any(mqttcal_messages::is_unsafe_char)
        {
            return bad(
                "name",
                "must be 1 to 128 characters, without control or bidirectional-override characters",
            );
        }
        let id_ok = |id: &str| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !id_ok(&self.reference) {
            return bad(
                "reference",
                "must name a standard: 1 to 64 letters, digits, `-`, `_` or `.`",
            );
        }
        if !(2..=1000).contains(&self.groups) {
            return bad(
                "groups",
                "must be 2 to 1000 (a Type A evaluation needs two)",
            );
        }
        if !(1..=1000).contains(&self.readings) {
            return bad("readings", "must be 1 to 1000");
        }
        if !(0.001..=1000.0).contains(&self.nplc) {
            return bad("NPLC", "must be 0.001 to 1000");
        }
        if !(3..=8).contains(&self.ndigits) {
            return bad("Ndigits", "must be 3 to 8");
        }
        if !(self.range > 0.0 && self.range <= 1000.0) {
            return bad("range", "must be above 0 V and at most 1000 V");
        }
        if !(0.0..=600.0).contains(&self.settle_s) {
            return bad("settle_s", "must be 0 to 600");
        }
        let t = &self.terms;
        for (name, v) in [
            ("terms.dmm_gain", t.dmm_gain),
            ("terms.emf", t.emf),
            ("terms.temperature_coefficient", t.temperature_coefficient),
            ("terms.pressure_coefficient", t.pressure_coefficient),
            ("terms.reference_stability", t.reference_stability),
            ("terms.reference_common", t.reference_common),
        ] {
            // Relative terms, volts and volts per kelvin or hectopascal: all far below 1
            // for any standard worth calibrating.
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(name, "must be a number from 0 to 1");
            }
        }
        let l = &self.limits;
        for (name, r) in [
            ("temperature", l.temperature),
            ("humidity", l.humidity),
            ("pressure", l.pressure),
        ] {
            if let Some([lo, hi]) = r {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return bad(
                        &format!("limits.{name}"),
                        "must be [min, max] with min ≤ max",
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({"name": "P", "reference": "Z2", "groups": 3, "readings": 2})
    }

    #[test]
    fn terms_left_out_take_their_defaults() {
        let mut v = base();
        v["terms"] = json!({"emf": 1e-8});
        let p: Procedure = serde_json::from_value(v).unwrap();
        assert_eq!(p.terms.emf, 1e-8);
        assert_eq!(p.terms.dmm_gain, Terms::default().dmm_gain);
        assert_eq!(
            p.terms.reference_stability,
            Terms::default().reference_stability
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (key, value, word) in [
            ("groups", json!(1), "groups"),
            ("readings", json!(0), "readings"),
            ("NPLC", json!(-1), "NPLC"),
            ("settle_s", json!(1e9), "settle_s"),
            (
                "limits",
                json!({"temperature": [24, 22]}),
                "limits.temperature",
            ),
            (
                "terms",
                json!({"dmm_gain": -1, "emf": 0, "temperature_coefficient": 0}),
                "terms.dmm_gain",
            ),
            (
                "terms",
                json!({"dmm_gain": 1e300, "emf": 0, "temperature_coefficient": 0}),
                "terms.dmm_gain",
            ),
            ("Ndigits", json!(9), "Ndigits"),
            ("NPLC", json!(1e-300), "NPLC"),
            ("name", json!("DCV\u{202E}V01-CD"), "name"),
            ("reference", json!("Z2\u{0}x"), "reference"),
            ("reference", json!("R".repeat(10_000)), "reference"),
        ] {
            let mut v = base();
            v[key] = value;
            let p: Procedure = serde_json::from_value(v).unwrap();
            let e = p.validate().unwrap_err();
            assert!(e.message.contains(word), "{key}: {}", e.message);
            let field = e.details.as_ref().unwrap()["field"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(field, format!("procedure.{word}"));
        }
        let p: Procedure = serde_json::from_value(base()).unwrap();
        p.validate().unwrap();
        let mut v = base();
        v["nplc"] = json!(10);
        assert!(
            serde_json::from_value::<Procedure>(v).is_err(),
            "unknown fields are refused"
        );
    }
}
